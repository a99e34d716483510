/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Files to resources, committing a file only when it is clean, at its name's place in the set. */
#include <fcntl.h>
#include <string.h>

#include "schema/schema-internal.h"

static const char *const candidate_suffixes[] = { ".yaml", ".yml", ".xml", NULL };
static const char *const leftover_suffixes[] = { "~", ".swp", ".tmp", NULL };

static bool has_any_suffix(const char *s, const char *const *suffixes) {
        for (size_t i = 0; suffixes[i]; i++)
                if (vf_str_has_suffix(s, suffixes[i]))
                        return true;
        return false;
}

bool schema_file_is_candidate(const char *filename) {
        const char *slash = strrchr(filename, '/');
        const char *base = slash ? slash + 1 : filename;

        /* A leading dot covers hidden files and Emacs lock files (.#name) alike. */
        if (base[0] == 0 || base[0] == '.' || has_any_suffix(base, leftover_suffixes))
                return false;
        return has_any_suffix(base, candidate_suffixes);
}

static int read_error(schema_file *f, int error) {
        if (error == -EFBIG)
                schema_file_error(f, 0, 0, "file is larger than the %u MiB limit (SCHEMA_MAX_FILE_SIZE); "
                                  "split it into several files", SCHEMA_MAX_FILE_SIZE / (1024 * 1024));
        else if (error == -EBADF)
                schema_file_error(f, 0, 0, "not a regular file; give a file or a directory");
        else
                schema_file_error(f, 0, 0, "cannot read the file: %s", strerror(-error));
        return error;
}

/* A refusal fails the file; with insecure permissions allowed it is a warning, and the file is read. */
static int distrust(schema_file *f, const char *why) {
        if (f->layers->options.insecure_permissions) {
                schema_file_warning(f, 0, 0, "insecure permissions allowed: %s", why);
                return 0;
        }
        schema_file_error(f, 0, 0, "not read: %s, or pass --insecure-permissions to read it anyway", why);
        return -EPERM;
}

/* distrust() on the result of a check: 0 trusted, 1 not (*why is taken), or -ENOMEM. */
static int judge(schema_file *f, int r, char **why) {
        _cleanup_free_ char *w = TAKE_PTR(*why);
        return r <= 0 ? r : distrust(f, w);
}

/* The opened file: a symlink has to land in a trusted directory, and root alone may be able to change it. */
static int check_opened(schema_file *f, int fd, const struct stat *st, bool link) {
        char *why = NULL;
        int r = 0;

        if (link)
                r = judge(f, schema_trust_link(f->layers, fd, &why), &why);
        if (r >= 0)
                r = judge(f, schema_trust_stat(st, f->path, false, &why), &why);
        return r;
}

/*
 * What is read is what was checked: the checks look at the fd the file is
 * then read from, and a symlink is followed only if it was one a moment
 * before (O_NOFOLLOW otherwise), to be judged by where the fd landed.
 * O_NONBLOCK: a FIFO is reported, not waited on.
 */
static int open_checked(schema_file *f, int dir_fd, const char *entry, int *ret_fd) {
        bool check = f->layers->options.check_trust, link = false;
        struct stat st;
        int r;

        if (check && f->layer->distrust) {
                r = distrust(f, f->layer->distrust);
                if (r < 0)
                        return r;
        }
        if (check)
                link = fstatat(dir_fd, entry, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISLNK(st.st_mode);
        _cleanup_close_ int fd = openat(dir_fd, entry, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
                                                               (check && !link ? O_NOFOLLOW : 0));
        if (fd < 0 || fstat(fd, &st) < 0)
                return read_error(f, -errno);
        if (!S_ISREG(st.st_mode))
                return read_error(f, S_ISDIR(st.st_mode) ? -EISDIR : -EBADF);
        if (check) {
                r = check_opened(f, fd, &st, link);
                if (r < 0)
                        return r;
        }
        if ((uint64_t) st.st_size > SCHEMA_MAX_FILE_SIZE)
                return read_error(f, -EFBIG);
        *ret_fd = fd;
        fd = -1;
        return 0;
}

/* To EOF rather than to st_size: the file may grow while it is read. */
static int read_fd(int fd, char **ret, size_t *ret_len) {
        _cleanup_(vf_buf_done) vf_buf b = {};
        char chunk[64 * 1024];

        for (;;) {
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                if (b.len + (size_t) n > SCHEMA_MAX_FILE_SIZE)
                        return -EFBIG;
                vf_buf_append(&b, chunk, (size_t) n);
        }
        *ret_len = b.len;
        *ret = vf_buf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}

static int parse_file(schema_file *f) {
        const schema_layer *layer = f->layer;
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        size_t len;

        /* A directory's file is opened in the directory that was checked, whatever its path names now. */
        int r = open_checked(f, layer->fd >= 0 ? layer->fd : AT_FDCWD, layer->fd >= 0 ? f->name : layer->path, &fd);
        if (r < 0)
                return r;
        r = read_fd(fd, &data, &len);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return read_error(f, r);
        if (vf_str_has_suffix(f->path, ".xml"))
                return schema_native_parse(f, data, len);
        return schema_yaml_parse(f, data, len);
}

/* Where a file's entries go in the set's name-ordered arrays. */
typedef struct slot {
        size_t resource, diag, ok, failed;
} slot;

static slot find_slot(const schema_file *f) {
        const schema_set *set = f->set;

        if (!f->name)
                return (slot) { set->n_resources, set->n_diags, set->n_files_ok, set->n_files_failed };
        return (slot) {
                .resource = schema_set_resources_of(set, f->name).start,
                .diag = schema_set_diags_of(set, f->name).start,
                .ok = schema_strv_pos(set->files_ok, set->n_files_ok, f->name),
                .failed = schema_strv_pos(set->files_failed, set->n_files_failed, f->name),
        };
}

static int commit(schema_file *f, slot at, char ***displaced) {
        schema_set *set = f->set;
        size_t n = f->n_resources;

        schema_resource **list = schema_array_insert(set->resources, set->n_resources, sizeof(schema_resource *),
                                                     at.resource, f->resources, n);
        if (!list)
                return -ENOMEM;
        set->resources = list;
        set->n_resources += n;
        f->n_resources = 0; /* the set owns them now */
        for (size_t i = 0; i < n; i++) {
                int r = schema_index_add(set, list[at.resource + i], displaced);
                if (r < 0)
                        return r;
        }
        return schema_strv_insert(&set->files_ok, &set->n_files_ok, at.ok, f->path);
}

/* Remembers what a failed file declared, so that it is judged again when one of those changes hands. */
static int fail(schema_file *f, slot at) {
        if (f->name) {
                int r = schema_index_claim(f->set, f->name, TAKE_PTR(f->tokens));
                if (r < 0)
                        return r;
        }
        return schema_strv_insert(&f->set->files_failed, &f->set->n_files_failed, at.failed, f->path);
}

static int insert_diags(schema_file *f, slot at) {
        schema_set *set = f->set;
        schema_diag *d = schema_array_insert(set->diags, set->n_diags, sizeof(schema_diag), at.diag, f->diags,
                                             f->n_diags);
        if (!d)
                return -ENOMEM;
        set->diags = d;
        set->n_diags += f->n_diags;
        free(f->diags);
        f->diags = NULL;
        f->n_diags = 0;
        return 0;
}

int schema_file_load(schema_set *set, const schema_layers *layers, const schema_layer *layer, const char *path,
                     const char *name, char ***displaced) {
        _cleanup_(schema_file_done) schema_file f = {
                .set = set, .layers = layers, .layer = layer, .path = path, .name = name,
        };

        int r = parse_file(&f);
        if (r != -ENOMEM && f.n_errors == 0)
                r = schema_file_check_set(&f);
        if (r == -ENOMEM || f.oom)
                return -ENOMEM;
        slot at = find_slot(&f);
        r = f.n_errors == 0 ? commit(&f, at, displaced) : fail(&f, at);
        return r < 0 ? r : insert_diags(&f, at);
}

static char *unopened_message(int error) {
        if (error == -ENOENT)
                return vf_printf("does not exist; while a path given cannot be read nothing is pruned: "
                                 "correct the path, or create the directory");
        return vf_printf("cannot be read: %s; while a path given cannot be read nothing is pruned: "
                         "correct the path or its permissions", strerror(-error));
}

static int add_path_error(schema_set *set, const schema_unopened *u) {
        schema_diag *d = reallocarray(set->path_errors, set->n_path_errors + 1, sizeof *d);

        if (!d)
                return -ENOMEM;
        set->path_errors = d;
        d = &d[set->n_path_errors];
        *d = (schema_diag) { .file = strdup(u->path), .message = unopened_message(u->error) };
        if (!d->file || !d->message) {
                schema_diags_clear(d, 1);
                return -ENOMEM;
        }
        set->n_path_errors++;
        return 0;
}

static int record_unopened(schema_set *set, const schema_layers *layers) {
        for (size_t i = 0; i < layers->n_unopened; i++) {
                const schema_unopened *u = &layers->unopened[i];
                int r = u->optional ? vf_strv_push(&set->dirs_missing, u->path) : add_path_error(set, u);
                if (r < 0)
                        return r;
        }
        return 0;
}

int schema_load_with_options(char *const *paths, size_t n_paths, const schema_load_options *options,
                             schema_set **ret) {
        _cleanup_(schema_set_freep) schema_set *set = schema_set_new();
        _cleanup_(schema_layers_close) schema_layers layers = {};
        _cleanup_strv_free_ char **names = NULL;

        if (!set)
                return -ENOMEM;
        if (options)
                set->options = *options;
        for (size_t i = 0; i < n_paths; i++)
                if (vf_strv_push(&set->dirs, paths[i]) < 0)
                        return -ENOMEM;
        int r = schema_layers_open(set->dirs, &set->options, &layers);
        if (r >= 0)
                r = record_unopened(set, &layers);
        if (r < 0)
                return r;
        r = schema_layers_list(&layers, &names);
        /* Loading in name order leaves nothing for a reload to cascade to: each name is judged once. */
        for (size_t i = 0; r >= 0 && names && names[i]; i++)
                r = schema_reload_name(set, &layers, names[i], NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(set);
        return 0;
}

int schema_load(char *const *paths, size_t n_paths, schema_set **ret) {
        return schema_load_with_options(paths, n_paths, NULL, ret);
}
