/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The native XML loader: the input is one *.xml file, a <domain> or a <network>. */
#include "fuzz/fuzz-schema.h"
#include "fuzz/fuzz-util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_schema_init();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_schema_run(FUZZ_SCHEMA_XML, data, size);
        return 0;
}
