/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Paths to files, files to resources, and committing a file only when it is clean. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

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

static int commit(schema_set *set, schema_file *f) {
        size_t n = set->n_resources + f->n_resources;
        schema_resource **list = realloc(set->resources, (n ? n : 1) * sizeof(schema_resource *));
        if (!list)
                return -ENOMEM;
        set->resources = list;
        for (size_t i = 0; i < f->n_resources; i++) {
                schema_resource *r = f->resources[i];
                _cleanup_free_ char *key = schema_key(r->kind, r->name);
                if (!key || vf_map_put(set->by_key, key, r) < 0)
                        return -ENOMEM;
                set->resources[set->n_resources++] = r;
                f->resources[i] = NULL;
        }
        f->n_resources = 0;
        return vf_strv_push(&set->files_ok, f->path);
}

int schema_load_file(schema_set *set, const char *path) {
        _cleanup_(schema_file_done) schema_file f = { .set = set, .path = path };

        int r = parse_file(&f);
        if (r == -ENOMEM || f.oom)
                return -ENOMEM;
        if (f.n_errors == 0)
                return commit(set, &f);
        return vf_strv_push(&set->files_failed, path);
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Candidate regular files (symlinks followed), sorted by name. */
static int list_directory(schema_set *set, const char *dir, char ***ret) {
        _cleanup_strv_free_ char **files = NULL;
        DIR *d = opendir(dir);

        if (!d) {
                schema_file f = { .set = set, .path = dir };
                (void) read_error(&f, -errno);
                return f.oom ? -ENOMEM : vf_strv_push(&set->files_failed, dir);
        }
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                if (!schema_file_is_candidate(de->d_name))
                        continue;
                char *path = vf_printf("%s%s%s", dir, vf_str_has_suffix(dir, "/") ? "" : "/", de->d_name);
                if (!path || stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
                        free(path);
                        continue;
                }
                if (vf_strv_consume(&files, path) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        if (files)
                qsort(files, vf_strv_length(files), sizeof(char *), compare_names);
        *ret = TAKE_PTR(files);
        return 0;
}

static int load_path(schema_set *set, const char *path) {
        _cleanup_strv_free_ char **files = NULL;
        struct stat st;

        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
                return schema_load_file(set, path);
        int r = list_directory(set, path, &files);
        for (size_t i = 0; r >= 0 && files && files[i]; i++)
                r = schema_load_file(set, files[i]);
        return r;
}

int schema_load(char *const *paths, size_t n_paths, schema_set **ret) {
        _cleanup_(schema_set_freep) schema_set *set = schema_set_new();
        if (!set)
                return -ENOMEM;
        for (size_t i = 0; i < n_paths; i++) {
                int r = load_path(set, paths[i]);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(set);
        return 0;
}
