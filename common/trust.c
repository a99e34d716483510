/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sshd's StrictModes, shared by the loader (watched directories) and the
 * state store (its file's directory): who besides root and one owner could
 * change, rename or replace what a path names.
 */
#include "common.h"

#include <string.h>
#include <sys/stat.h>

bool vf_trust_owner_mode(const struct stat *st, uid_t owner) {
        return (st->st_uid == 0 || st->st_uid == owner) && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* "owned by uid 4242, not root" or "..., neither root nor uid 1000". */
static char *describe_owner(const struct stat *st, uid_t owner) {
        if (owner == 0)
                return vf_printf("owned by uid %u, not root", (unsigned) st->st_uid);
        return vf_printf("owned by uid %u, neither root nor uid %u", (unsigned) st->st_uid, (unsigned) owner);
}

int vf_trust_stat(const struct stat *st, const char *path, uid_t owner, char *subject_taken, char **ret) {
        _cleanup_free_ char *subject = subject_taken;
        bool foreign = st->st_uid != 0 && st->st_uid != owner, writable = (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
        char mode[64] = "";

        *ret = NULL;
        if (vf_trust_owner_mode(st, owner))
                return 0;
        if (writable)
                snprintf(mode, sizeof mode, "writable by group or others (mode %04o)", (unsigned) st->st_mode & 07777);
        _cleanup_free_ char *who = foreign ? describe_owner(st, owner) : strdup("");
        _cleanup_free_ char *chown = !foreign ? strdup("")
                                     : owner == 0 ? vf_printf("chown root %s", path)
                                                  : vf_printf("chown %u %s", (unsigned) owner, path);
        _cleanup_free_ char *chmod = writable ? vf_printf("chmod go-w %s", path) : strdup("");
        if (!subject || !who || !chown || !chmod)
                return -ENOMEM;
        *ret = vf_printf("%s is %s%s%s; run '%s%s%s'", subject, who, foreign && writable ? ", and " : "", mode,
                         chown, foreign && writable ? " && " : "", chmod);
        return *ret ? 1 : -ENOMEM;
}

int vf_trust_ancestors(const char *real, uid_t owner, const char *what, char **ret) {
        _cleanup_free_ char *path = strdup(real);
        struct stat st;

        *ret = NULL;
        if (!path)
                return -ENOMEM;
        for (char *slash = strrchr(path, '/'); slash; slash = strrchr(path, '/')) {
                slash[slash == path] = 0; /* "/a/b" -> "/a" -> "/" */
                if (stat(path, &st) < 0)
                        return 0; /* gone meanwhile: the open below it says so */
                /* Like /tmp: only the owner of an entry may rename or remove it. */
                bool sticky_root = st.st_uid == 0 && (st.st_mode & S_ISVTX);
                if (!sticky_root) {
                        int r = vf_trust_stat(&st, path, owner, vf_printf("%s %s", what, path), ret);
                        if (r != 0)
                                return r;
                }
                if (slash == path)
                        break;
        }
        return 0;
}
