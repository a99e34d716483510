/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Whether root should believe a file: root alone may be able to change it
 * (sshd's StrictModes), and a symlink has to stay within the directories
 * being loaded, which are themselves checked. Only the judging is here; the
 * loader decides between refusing and warning.
 */
#include <limits.h>
#include <string.h>

#include "schema/schema-internal.h"

int schema_trust_stat(const struct stat *st, const char *path, bool directory, char **ret) {
        return vf_trust_stat(st, path, 0, directory ? vf_printf("its directory %s", path) : strdup("the file"), ret);
}

int schema_fd_path(int fd, char **ret) {
        char proc[64], buf[PATH_MAX];

        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, buf, sizeof buf);
        if (n < 0)
                return -errno;
        if ((size_t) n == sizeof buf)
                return -ENAMETOOLONG;
        *ret = strndup(buf, (size_t) n);
        return *ret ? 0 : -ENOMEM;
}

/* Only the directory itself is checked, not its subdirectories: a file further down could be anyone's. */
static bool in_trusted_directory(const schema_layers *l, const char *path) {
        const char *slash = strrchr(path, '/');
        size_t len = slash == path ? 1 : (size_t) (slash - path);

        for (size_t i = 0; slash && i < l->n; i++) {
                const char *real = l->layers[i].real;
                if (real && !l->layers[i].distrust && strlen(real) == len && strncmp(real, path, len) == 0)
                        return true;
        }
        return false;
}

int schema_trust_link(const schema_layers *l, int fd, char **ret) {
        _cleanup_free_ char *target = NULL;

        *ret = NULL;
        int r = schema_fd_path(fd, &target);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                *ret = vf_printf("it is a symlink, and where it points cannot be told (%s); "
                                 "put the file itself in its place", strerror(-r));
        else if (in_trusted_directory(l, target))
                return 0;
        else
                *ret = vf_printf("it is a symlink to %s, which is not in a directory being loaded "
                                 "(only a mask, a symlink to /dev/null, may point elsewhere); "
                                 "put the file itself in its place", target);
        return *ret ? 1 : -ENOMEM;
}
