/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The schema loader on a buffer, for fuzz-yaml and fuzz-xml. It is the one
 * place in fuzz/ that reaches into schema/schema-internal.h: it runs the
 * parser schema_file_load() runs on a file's contents, without the file.
 */
#pragma once

#include "common/common.h"

typedef enum fuzz_schema_format {
        FUZZ_SCHEMA_YAML,
        FUZZ_SCHEMA_XML,
} fuzz_schema_format;

void fuzz_schema_init(void);

/*
 * Parses data as one desired-state file and checks what came out: no false
 * out-of-memory, one-line diagnostics, valid resources. A file accepted
 * without error is then loaded again through schema_load(), as a real file,
 * which must agree.
 */
void fuzz_schema_run(fuzz_schema_format format, const uint8_t *data, size_t size);
