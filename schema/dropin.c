/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Drop-in layers: which file wins each name, and what it overrides or is masked by. */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "schema/schema-internal.h"

const char *const schema_default_dirs[] = { "/etc/virtform.d", "/run/virtform.d", "/usr/lib/virtform.d", NULL };

typedef enum entry_kind {
        ENTRY_NONE,
        ENTRY_FILE,
        ENTRY_MASK,
} entry_kind;

static const char *path_name(const char *path, size_t *ret_len) {
        size_t len = strlen(path);

        while (len > 1 && path[len - 1] == '/')
                len--;
        const char *slash = memrchr(path, '/', len);
        const char *start = slash ? slash + 1 : path;
        *ret_len = (size_t) (path + len - start);
        return start;
}

char *schema_path_name(const char *path) {
        size_t len;
        const char *start = path_name(path, &len);
        return strndup(start, len);
}

int schema_path_name_cmp(const char *path, const char *name) {
        size_t len;
        const char *start = path_name(path, &len);
        int c = strncmp(start, name, len);
        if (c != 0)
                return c;
        return name[len] == 0 ? 0 : -1;
}

/* With trust checks, what symlinks and files in the directory need to know about it. */
static int check_directory(schema_layer *layer) {
        struct stat st;

        if (fstat(layer->fd, &st) < 0)
                return -errno;
        int r = schema_trust_stat(&st, layer->path, true, &layer->distrust);
        if (r < 0)
                return r;
        /* Without /proc nothing can be shown to point here: symlinks into it are refused, not followed blindly. */
        r = schema_fd_path(layer->fd, &layer->real);
        if (r == -ENOMEM)
                return r;
        /* Whoever can rename a directory above it can put another directory in its place. */
        if (r >= 0 && !layer->distrust)
                r = vf_trust_ancestors(layer->real, 0, "its parent directory", &layer->distrust);
        return r == -ENOMEM ? r : 0;
}

/*
 * Opens a path as a directory layer (*ret_fd), or finds it is a file layer
 * (*ret_fd -1): a path that is not a directory is read as a file, which
 * reports why it fails. Anything else is an error of the path itself: it
 * does not exist, a component is not a directory, it cannot be opened.
 */
static int open_layer(const char *path, int *ret_fd) {
        struct stat st;

        *ret_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (*ret_fd >= 0)
                return 0;
        int error = -errno;
        if (error == -ENOTDIR && stat(path, &st) >= 0 && !S_ISDIR(st.st_mode))
                return 0;
        return error;
}

static int add_unopened(schema_layers *l, const char *path, int error) {
        schema_unopened *u = reallocarray(l->unopened, l->n_unopened + 1, sizeof *u);

        if (!u)
                return -ENOMEM;
        l->unopened = u;
        /* The default directories are optional; a path the user named has to be there. */
        u[l->n_unopened++] = (schema_unopened) { path, error, error == -ENOENT && l->options.default_dirs };
        return 0;
}

int schema_layers_open(char *const *paths, const schema_load_options *options, schema_layers *ret) {
        size_t n = vf_strv_length(paths);
        _cleanup_(schema_layers_close) schema_layers l = {
                .layers = calloc(n ? n : 1, sizeof(schema_layer)),
                .options = options ? *options : (schema_load_options) {},
        };

        if (!l.layers)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int fd, r = open_layer(paths[i], &fd);
                if (r < 0) {
                        r = add_unopened(&l, paths[i], r);
                        if (r < 0)
                                return r;
                        continue;
                }
                schema_layer *layer = &l.layers[l.n++];
                *layer = (schema_layer) { .path = paths[i], .fd = fd };
                r = fd >= 0 && l.options.check_trust ? check_directory(layer) : 0;
                if (r < 0)
                        return r;
        }
        *ret = l;
        l = (schema_layers) {};
        return 0;
}

void schema_layers_close(schema_layers *l) {
        for (size_t i = 0; i < l->n; i++) {
                if (l->layers[i].fd >= 0)
                        close(l->layers[i].fd);
                free(l->layers[i].real);
                free(l->layers[i].distrust);
        }
        free(l->layers);
        free(l->unopened);
        *l = (schema_layers) {};
}

static int list_directory(int dir_fd, char ***names, size_t *n) {
        int fd = dup(dir_fd);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        int r = 0;
        for (struct dirent *de; r >= 0 && (de = readdir(d));)
                if (schema_file_is_candidate(de->d_name))
                        r = schema_strv_insert(names, n, *n, de->d_name);
        closedir(d);
        return r;
}

static int list_layer(const schema_layer *l, char ***names, size_t *n) {
        if (l->fd >= 0)
                return list_directory(l->fd, names, n);
        _cleanup_free_ char *name = schema_path_name(l->path);
        return name ? schema_strv_insert(names, n, *n, name) : -ENOMEM;
}

int schema_layers_list(const schema_layers *l, char ***ret) {
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;

        for (size_t i = 0; i < l->n; i++) {
                int r = list_layer(&l->layers[i], &names, &n);
                if (r < 0)
                        return r;
        }
        schema_strv_sort_unique(names);
        *ret = TAKE_PTR(names);
        return 0;
}

/* systemd's convention: an empty file, or a symlink to /dev/null, switches a name off. */
static bool is_mask(const struct stat *st) {
        return (S_ISREG(st->st_mode) && st->st_size == 0) ||
               (S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3));
}

/*
 * Strict trust lets only root switch a name off: a mask in a directory that is
 * not trusted, or an empty file anyone else could have emptied, is read as a
 * file instead, and refused (its declarations held) when it is read.
 */
static bool is_trusted_mask(const schema_layers *l, const schema_layer *layer, int dir_fd, const char *entry,
                            const struct stat *st) {
        struct stat lst;

        if (!is_mask(st))
                return false;
        if (!schema_trust_strict(&l->options))
                return true;
        if (layer->distrust)
                return false;
        if (S_ISCHR(st->st_mode))
                return true;
        return fstatat(dir_fd, entry, &lst, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISREG(lst.st_mode) &&
               vf_trust_owner_mode(&lst, 0);
}

static struct timespec timespec_of(struct statx_timestamp t) {
        return (struct timespec) { .tv_sec = t.tv_sec, .tv_nsec = t.tv_nsec };
}

/* What resolving the layers (a mask is a device), the trust checks and the stamp read of a struct stat. */
static void stat_from_statx(const struct statx *x, struct stat *st) {
        *st = (struct stat) {
                .st_dev = makedev(x->stx_dev_major, x->stx_dev_minor),
                .st_ino = x->stx_ino,
                .st_mode = x->stx_mode,
                .st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor),
                .st_nlink = x->stx_nlink,
                .st_uid = x->stx_uid,
                .st_gid = x->stx_gid,
                .st_size = (off_t) x->stx_size,
                .st_mtim = timespec_of(x->stx_mtime),
                .st_ctim = timespec_of(x->stx_ctime),
        };
}

int schema_stat_entry(int dir_fd, const char *entry, struct stat *ret) {
        struct statx x;

        if (statx(dir_fd, entry, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &x) < 0)
                return -errno;
        stat_from_statx(&x, ret);
        return 0;
}

/*
 * Dangling symlinks and subdirectories are not entries, as they were never
 * loadable files. *ret_st: the entry itself, which the read judges again.
 */
static entry_kind directory_entry(const schema_layers *l, const schema_layer *layer, const char *name,
                                  struct stat *ret_st) {
        struct stat st;

        if (!schema_file_is_candidate(name) || schema_stat_entry(layer->fd, name, &st) < 0)
                return ENTRY_NONE;
        *ret_st = st;
        /* Most entries are files, for which that was the whole answer; a symlink's target takes a second look. */
        if (S_ISLNK(st.st_mode) && fstatat(layer->fd, name, &st, 0) < 0)
                return ENTRY_NONE;
        if (is_trusted_mask(l, layer, layer->fd, name, &st))
                return ENTRY_MASK;
        return S_ISREG(st.st_mode) || is_mask(&st) ? ENTRY_FILE : ENTRY_NONE;
}

/* A file the user named is read whatever it is, so a missing or unreadable one is reported. */
static entry_kind file_entry(const schema_layers *l, const schema_layer *layer, const char *name) {
        struct stat st;

        if (schema_path_name_cmp(layer->path, name) != 0)
                return ENTRY_NONE;
        if (schema_file_is_candidate(name) && stat(layer->path, &st) >= 0 &&
            is_trusted_mask(l, layer, AT_FDCWD, layer->path, &st))
                return ENTRY_MASK;
        return ENTRY_FILE;
}

static char *entry_path(const schema_layer *l, const char *name) {
        if (l->fd < 0)
                return strdup(l->path);
        return vf_printf("%s%s%s", l->path, vf_str_has_suffix(l->path, "/") ? "" : "/", name);
}

static int source_add(schema_source *s, entry_kind kind, char *path) {
        if (s->path || s->masked_by)
                return vf_strv_consume(&s->overridden, path);
        if (kind == ENTRY_MASK)
                s->masked_by = path;
        else
                s->path = path;
        return 0;
}

int schema_layers_resolve(const schema_layers *l, const char *name, schema_source *ret, schema_entry *ret_entry) {
        _cleanup_(schema_source_done) schema_source s = {};
        schema_entry winner = {};

        for (size_t i = 0; i < l->n; i++) {
                const schema_layer *layer = &l->layers[i];
                struct stat st = {};
                entry_kind kind = layer->fd >= 0 ? directory_entry(l, layer, name, &st) : file_entry(l, layer, name);
                if (kind == ENTRY_NONE)
                        continue;
                char *path = entry_path(layer, name);
                if (!path)
                        return -ENOMEM;
                if (!s.path && !s.masked_by && kind == ENTRY_FILE)
                        winner = (schema_entry) { .layer = layer, .st = st };
                int r = source_add(&s, kind, path);
                if (r < 0)
                        return r;
        }
        if (!s.path && !s.masked_by)
                return 0;
        s.name = strdup(name);
        if (!s.name)
                return -ENOMEM;
        *ret = s;
        s = (schema_source) {};
        *ret_entry = winner;
        return 1;
}

void schema_source_done(schema_source *s) {
        free(s->name);
        free(s->path);
        free(s->masked_by);
        vf_strv_free(s->overridden);
        *s = (schema_source) {};
}
