/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the libFuzzer targets share: the entry points, checks that turn a broken
 * invariant into a crash libFuzzer keeps, and a private temporary directory.
 */
#pragma once

#include "common/common.h"

/* libFuzzer's entry points, declared for -Wmissing-prototypes. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define streq(a, b) (strcmp((a), (b)) == 0)

/* Prints the message and aborts: libFuzzer saves the input as a crash. */
_printf_(1, 2) __attribute__((noreturn)) void fuzz_fail(const char *fmt, ...);

#define fuzz_check(expr)                                                                  \
        do {                                                                              \
                if (!(expr))                                                              \
                        fuzz_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #expr); \
        } while (0)

/*
 * A directory of this process under $TMPDIR (or /tmp), made on first use and
 * removed with everything in it when the process exits normally. A crashing
 * run leaves it behind: the scripts point TMPDIR at a directory they remove.
 */
const char *fuzz_tmpdir(void);

/* Removes a tree without following symbolic links; a missing path is fine. */
void fuzz_rmtree(const char *path);
