/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Files to resources, committing a file only when it is clean, at its name's place in the set. */
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
                schema_file_error(f, 0, 0, "file is larger than the %u MiB limit; split it into several files",
                                  SCHEMA_MAX_FILE_SIZE / (1024 * 1024));
        else if (error == -EBADF)
                schema_file_error(f, 0, 0, "not a regular file; give a file or a directory");
        else
                schema_file_error(f, 0, 0, "cannot read the file: %s", strerror(-error));
        return error;
}

static int parse_file(schema_file *f) {
        _cleanup_free_ char *data = NULL;
        size_t len;

        int r = vf_read_file(f->path, SCHEMA_MAX_FILE_SIZE, &data, &len);
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
                return (slot) { set->n_resources, set->n_diags, vf_strv_length(set->files_ok),
                                vf_strv_length(set->files_failed) };
        return (slot) {
                .resource = schema_set_resources_of(set, f->name).start,
                .diag = schema_set_diags_of(set, f->name).start,
                .ok = schema_strv_pos(set->files_ok, f->name),
                .failed = schema_strv_pos(set->files_failed, f->name),
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
        return schema_strv_insert(&set->files_ok, at.ok, f->path);
}

/* Remembers what a failed file declared, so that it is judged again when one of those changes hands. */
static int fail(schema_file *f, slot at) {
        if (f->name) {
                int r = schema_index_claim(f->set, f->name, TAKE_PTR(f->tokens));
                if (r < 0)
                        return r;
        }
        return schema_strv_insert(&f->set->files_failed, at.failed, f->path);
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

int schema_file_load(schema_set *set, const char *path, const char *name, char ***displaced) {
        _cleanup_(schema_file_done) schema_file f = { .set = set, .path = path, .name = name };

        int r = parse_file(&f);
        if (r == -ENOMEM || f.oom)
                return -ENOMEM;
        slot at = find_slot(&f);
        r = f.n_errors == 0 ? commit(&f, at, displaced) : fail(&f, at);
        return r < 0 ? r : insert_diags(&f, at);
}

int schema_load_file(schema_set *set, const char *path) {
        return schema_file_load(set, path, NULL, NULL);
}

int schema_load(char *const *paths, size_t n_paths, schema_set **ret) {
        _cleanup_(schema_set_freep) schema_set *set = schema_set_new();
        _cleanup_(schema_layers_close) schema_layers layers = {};
        _cleanup_strv_free_ char **names = NULL;

        if (!set)
                return -ENOMEM;
        for (size_t i = 0; i < n_paths; i++)
                if (vf_strv_push(&set->dirs, paths[i]) < 0)
                        return -ENOMEM;
        int r = schema_layers_open(set->dirs, &layers);
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
