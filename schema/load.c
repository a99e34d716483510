/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Files to resources, committing a file only when it is clean, at its name's place in the set. */
#include <fcntl.h>
#include <sys/stat.h>
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

/* ---- stamps --------------------------------------------------------------------- */

/* Wider than the timestamp granularity of any file system virtform may read from (ext3, NFSv2: 1 s). */
#define STAMP_SETTLE_USEC (2 * 1000000LL)

static schema_stamp stamp_of(const struct stat *st) {
        return (schema_stamp) {
                .dev = st->st_dev, .ino = st->st_ino, .size = st->st_size, .mtime = st->st_mtim, .ctime = st->st_ctim,
        };
}

static bool same_time(struct timespec a, struct timespec b) {
        return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool stamp_equal(const schema_stamp *a, const schema_stamp *b) {
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size && same_time(a->mtime, b->mtime) &&
               same_time(a->ctime, b->ctime);
}

/*
 * A write after the read sets a ctime no earlier than the read, less the
 * file system's granularity. So when the ctime seen was well before the
 * read, any later write shows as another ctime; when it was not, a write in
 * the same tick could leave the stamp as it was, and the stamp is not kept.
 */
static bool stamp_settled(const schema_stamp *s, int64_t read_at_usec) {
        int64_t changed_usec = (int64_t) s->ctime.tv_sec * 1000000 + s->ctime.tv_nsec / 1000;
        return changed_usec + STAMP_SETTLE_USEC < read_at_usec;
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
        f->stamp = stamp_of(&st);
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

/*
 * Where the file is, as a directory fd and the entry in it. A directory's
 * file is found in the directory that was checked, whatever its path names now.
 */
static int file_at(const schema_file *f, const char **ret_entry) {
        const schema_layer *layer = f->layer;

        *ret_entry = layer->fd >= 0 ? f->name : layer->path;
        return layer->fd >= 0 ? layer->fd : AT_FDCWD;
}

int schema_file_read(schema_file *f) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        const char *entry;
        size_t len;
        int dir_fd = file_at(f, &entry);
        int64_t read_at = vf_now_realtime_usec();

        int r = open_checked(f, dir_fd, entry, &fd);
        if (r < 0)
                return r;
        f->settled = stamp_settled(&f->stamp, read_at);
        r = read_fd(fd, &data, &len);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return read_error(f, r);
        if (vf_str_has_suffix(f->path, ".xml"))
                return schema_native_parse(f, data, len);
        return schema_yaml_parse(f, data, len);
}

/* The regular file itself, trusted as a read would judge it; a symlink is left to the read. */
static bool stat_unread(schema_file *f, struct stat *ret) {
        const schema_layer *layer = f->layer;
        const schema_load_options *o = &f->layers->options;
        _cleanup_free_ char *why = NULL;
        const char *entry;
        int dir_fd = file_at(f, &entry);

        /* The layers were resolved a moment ago with the same call: not asked twice. */
        if (f->entry_st->st_mode != 0)
                *ret = *f->entry_st;
        else if (schema_stat_entry(dir_fd, entry, ret) < 0)
                return false;
        if (!S_ISREG(ret->st_mode))
                return false;
        return !o->check_trust || (!layer->distrust && schema_trust_stat(ret, f->path, false, &why) == 0);
}

/*
 * 1 when the previous set read this very file clean and it has not changed
 * since: its resources are shared with that set and go through the same
 * checks against this one as a read's. 0 when the file has to be read.
 */
static int reuse_file(schema_file *f) {
        const schema_set *previous = f->layers->previous;
        const char *path;
        struct stat st;

        if (!previous || !f->name)
                return 0;
        const schema_stamp *was = schema_index_stamp_of(previous, f->name, &path);
        if (!was || strcmp(path, f->path) != 0 || !stat_unread(f, &st))
                return 0;
        f->stamp = stamp_of(&st);
        if (!stamp_equal(&f->stamp, was))
                return 0;
        f->settled = true;
        schema_range range = schema_set_resources_of(previous, f->name);
        for (size_t i = range.start; i < range.end; i++)
                if (schema_file_add(f, schema_resource_ref(previous->resources[i])) == -ENOMEM)
                        return -ENOMEM;
        return 1;
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
        if (f->name && f->settled && f->n_diags == 0) {
                int r = schema_index_stamp(set, f->name, f->path, &f->stamp);
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

int schema_file_load(schema_set *set, const schema_layers *layers, const schema_entry *entry, const char *path,
                     const char *name, char ***displaced) {
        _cleanup_(schema_file_done) schema_file f = {
                .set = set, .layers = layers, .layer = entry->layer, .entry_st = &entry->st, .path = path,
                .name = name,
        };

        int r = reuse_file(&f);
        if (r == 0)
                r = schema_readahead_take(layers->ahead, &f);
        if (r == 0)
                r = schema_file_read(&f);
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

/* A set loaded with other options may have judged the same file otherwise. */
static bool same_options(const schema_load_options *a, const schema_load_options *b) {
        return a->check_trust == b->check_trust && a->insecure_permissions == b->insecure_permissions &&
               vf_streq_ptr(a->libvirt_schemas, b->libvirt_schemas);
}

int schema_load_reusing(char *const *paths, size_t n_paths, const schema_load_options *options,
                        const schema_set *previous, schema_set **ret) {
        _cleanup_(schema_set_freep) schema_set *set = schema_set_new();
        _cleanup_(schema_layers_close) schema_layers layers = {};
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_(schema_readahead_freep) schema_readahead *ahead = NULL;

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
        if (previous && same_options(&previous->options, &set->options))
                layers.previous = previous;
        r = schema_layers_list(&layers, &names);
        /* A set to take files from unread leaves little to read: only a load without one reads ahead. */
        if (r >= 0 && !layers.previous && names)
                r = schema_readahead_start(&layers, names, &ahead);
        layers.ahead = ahead;
        /* Loading in name order leaves nothing for a reload to cascade to: each name is judged once. */
        for (size_t i = 0; r >= 0 && names && names[i]; i++)
                r = schema_reload_name(set, &layers, names[i], NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(set);
        return 0;
}

int schema_load_with_options(char *const *paths, size_t n_paths, const schema_load_options *options,
                             schema_set **ret) {
        return schema_load_reusing(paths, n_paths, options, NULL, ret);
}

int schema_load(char *const *paths, size_t n_paths, schema_set **ret) {
        return schema_load_with_options(paths, n_paths, NULL, ret);
}
