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

bool schema_trust_owner_mode(const struct stat *st) {
        return st->st_uid == 0 && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* subject: what the message calls it ("the file", "its directory PATH"); taken, even on failure. */
static int trust_stat_as(const struct stat *st, const char *path, char *subject_taken, char **ret) {
        _cleanup_free_ char *subject = subject_taken;
        bool foreign = st->st_uid != 0, writable = (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
        char owner[48] = "", mode[64] = "";

        *ret = NULL;
        if (schema_trust_owner_mode(st))
                return 0;
        if (foreign)
                snprintf(owner, sizeof owner, "owned by uid %u, not root", (unsigned) st->st_uid);
        if (writable)
                snprintf(mode, sizeof mode, "writable by group or others (mode %04o)", (unsigned) st->st_mode & 07777);
        _cleanup_free_ char *chown = foreign ? vf_printf("chown root %s", path) : strdup("");
        _cleanup_free_ char *chmod = writable ? vf_printf("chmod go-w %s", path) : strdup("");
        if (!subject || !chown || !chmod)
                return -ENOMEM;
        *ret = vf_printf("%s is %s%s%s; run '%s%s%s'", subject, owner, foreign && writable ? ", and " : "", mode,
                         chown, foreign && writable ? " && " : "", chmod);
        return *ret ? 1 : -ENOMEM;
}

int schema_trust_stat(const struct stat *st, const char *path, bool directory, char **ret) {
        return trust_stat_as(st, path, directory ? vf_printf("its directory %s", path) : strdup("the file"), ret);
}

int schema_trust_ancestors(const char *real, char **ret) {
        _cleanup_free_ char *path = strdup(real);
        struct stat st;

        *ret = NULL;
        if (!path)
                return -ENOMEM;
        for (char *slash = strrchr(path, '/'); slash; slash = strrchr(path, '/')) {
                slash[slash == path] = 0; /* "/a/b" -> "/a" -> "/" */
                if (stat(path, &st) < 0)
                        return 0; /* gone meanwhile: the directory's own open says so */
                bool sticky_root = st.st_uid == 0 && (st.st_mode & S_ISVTX);
                if (!sticky_root) {
                        int r = trust_stat_as(&st, path, vf_printf("its parent directory %s", path), ret);
                        if (r != 0)
                                return r;
                }
                if (slash == path)
                        break;
        }
        return 0;
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
