/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz/fuzz-util.h"

#include <ftw.h>
#include <stdarg.h>

static char *tmpdir;

void fuzz_fail(const char *fmt, ...) {
        va_list ap;

        fputs("virtform-fuzz: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        abort();
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

void fuzz_rmtree(const char *path) {
        /* FTW_PHYS: a symbolic link is removed, never followed. */
        (void) nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void remove_tmpdir(void) {
        fuzz_rmtree(tmpdir);
        free(tmpdir);
        tmpdir = NULL;
}

const char *fuzz_tmpdir(void) {
        if (tmpdir)
                return tmpdir;

        const char *base = getenv("TMPDIR");
        tmpdir = vf_printf("%s/virtform-fuzz-XXXXXX", base && base[0] ? base : "/tmp");
        if (!tmpdir || !mkdtemp(tmpdir))
                fuzz_fail("cannot make a temporary directory: %m");
        atexit(remove_tmpdir);
        return tmpdir;
}
