/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The set's arrays are kept in file-name order, so one name's entries are
 * found by binary search; the private index answers the questions a reload
 * asks about one key without scanning every resource.
 */
#include <string.h>

#include "schema/schema-internal.h"

struct schema_index {
        vf_map *by_pci; /* "0000:3b:02.1" -> the committed Hostdev (borrowed) */
        vf_map *claims; /* token -> char **: the failed files (by name) that declared it */
        vf_map *claimed; /* failed file name -> char **: its tokens, to withdraw them */
        vf_map *stamps; /* file name -> stamped: the files read clean, as they were */
};

typedef struct stamped {
        schema_stamp stamp;
        char path[]; /* the file the name was read from */
} stamped;

static void free_strv_values(vf_map *m) {
        const char *key;
        void *value;

        for (size_t it = 0; vf_map_next(m, &it, &key, &value);)
                vf_strv_free(value);
        vf_map_free(m);
}

void schema_index_free(schema_index *x) {
        if (!x)
                return;
        vf_map_free(x->by_pci);
        free_strv_values(x->claims);
        free_strv_values(x->claimed);
        vf_map_free_with(x->stamps, free);
        free(x);
}

schema_index *schema_index_new(void) {
        schema_index *x = calloc(1, sizeof(schema_index));
        if (!x)
                return NULL;
        x->by_pci = vf_map_new();
        x->claims = vf_map_new();
        x->claimed = vf_map_new();
        x->stamps = vf_map_new();
        if (!x->by_pci || !x->claims || !x->claimed || !x->stamps) {
                schema_index_free(x);
                return NULL;
        }
        return x;
}

/* ---- name-ordered arrays ---------------------------------------------------- */

void *schema_array_insert(void *base, size_t n, size_t size, size_t pos, const void *items, size_t k) {
        /* Most files bring no diagnostic: nothing to move, and no realloc() of the set's whole array. */
        if (k == 0 && base)
                return base;
        char *a = realloc(base, (n + k ? n + k : 1) * size);
        if (!a)
                return NULL;
        memmove(a + (pos + k) * size, a + pos * size, (n - pos) * size);
        if (k > 0)
                memcpy(a + pos * size, items, k * size);
        return a;
}

void schema_array_remove(void *base, size_t n, size_t size, size_t pos, size_t k) {
        char *a = base;
        /* An empty range may come with a NULL array, which memmove() must not see. */
        if (k > 0)
                memmove(a + pos * size, a + (pos + k) * size, (n - pos - k) * size);
}

typedef const char *(*path_at_fn)(const void *array, size_t i);

static size_t lower_bound(const void *array, size_t n, path_at_fn path_at, const char *name) {
        size_t lo = 0, hi = n;

        /*
         * A full load adds files in name order and looks at the name it just added: a compare or two with
         * the last entries, where a search would miss the cache at each probe.
         */
        int last = n > 0 ? schema_path_name_cmp(path_at(array, n - 1), name) : -1;
        if (last < 0)
                return n;
        if (last == 0 && (n == 1 || schema_path_name_cmp(path_at(array, n - 2), name) < 0))
                return n - 1;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (schema_path_name_cmp(path_at(array, mid), name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static schema_range equal_range(const void *array, size_t n, path_at_fn path_at, const char *name) {
        schema_range range = { .start = lower_bound(array, n, path_at, name) };

        range.end = range.start;
        while (range.end < n && schema_path_name_cmp(path_at(array, range.end), name) == 0)
                range.end++;
        return range;
}

static const char *resource_path(const void *array, size_t i) {
        return ((schema_resource *const *) array)[i]->file;
}

static const char *diag_path(const void *array, size_t i) {
        return ((const schema_diag *) array)[i].file;
}

static const char *source_name(const void *array, size_t i) {
        return ((const schema_source *) array)[i].name;
}

static const char *strv_entry(const void *array, size_t i) {
        return ((char *const *) array)[i];
}

schema_range schema_set_resources_of(const schema_set *set, const char *name) {
        return equal_range(set->resources, set->n_resources, resource_path, name);
}

schema_range schema_set_diags_of(const schema_set *set, const char *name) {
        return equal_range(set->diags, set->n_diags, diag_path, name);
}

size_t schema_set_source_pos(const schema_set *set, const char *name) {
        return lower_bound(set->sources, set->n_sources, source_name, name);
}

size_t schema_strv_pos(char *const *v, size_t n, const char *name) {
        return lower_bound(v, n, strv_entry, name);
}

int schema_strv_insert(char ***v, size_t *n, size_t pos, const char *s) {
        char *copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        char **nv = realloc(*v, (*n + 2) * sizeof(char *));
        if (!nv) {
                free(copy);
                return -ENOMEM;
        }
        memmove(nv + pos + 1, nv + pos, (*n - pos) * sizeof(char *));
        nv[pos] = copy;
        nv[++*n] = NULL;
        *v = nv;
        return 0;
}

char *schema_strv_take(char ***v, size_t *n, size_t pos) {
        char *s = (*v)[pos];

        schema_array_remove(*v, *n + 1, sizeof(char *), pos, 1);
        /* An empty list is NULL, as a fresh load leaves it. */
        if (--*n == 0) {
                free(*v);
                *v = NULL;
        }
        return s;
}

void schema_strv_drop(char ***v, size_t *n, const char *name) {
        size_t pos = schema_strv_pos(*v, *n, name);
        if (pos < *n && schema_path_name_cmp((*v)[pos], name) == 0)
                free(schema_strv_take(v, n, pos));
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

void schema_strv_sort_unique(char **v) {
        size_t n = vf_strv_length(v), k = 0;

        if (n == 0)
                return;
        qsort(v, n, sizeof(char *), compare_strings);
        for (size_t i = 0; i < n; i++) {
                if (k > 0 && strcmp(v[k - 1], v[i]) == 0)
                        free(v[i]);
                else
                        v[k++] = v[i];
        }
        v[k] = NULL;
}

/* ---- keys and PCI addresses ------------------------------------------------- */

int schema_resource_tokens(const schema_resource *r, char ***tokens) {
        int k = vf_strv_consume(tokens, schema_key(r->kind, r->name));
        if (k < 0 || r->kind != VF_KIND_HOSTDEV)
                return k;
        return vf_strv_consume(tokens, vf_printf("pci/%s", r->hostdev.pci));
}

schema_resource *schema_index_pci(const schema_set *set, const char *pci) {
        return vf_map_get(set->index->by_pci, pci);
}

static int take_over(vf_map *m, const char *key, schema_resource *r, char ***displaced) {
        const schema_resource *previous = vf_map_get(m, key);

        if (previous && displaced) {
                int k = vf_strv_consume(displaced, schema_path_name(previous->file));
                if (k < 0)
                        return k;
        }
        return vf_map_put(m, key, r);
}

int schema_index_add(schema_set *set, schema_resource *r, char ***displaced) {
        _cleanup_free_ char *key = schema_key(r->kind, r->name);
        if (!key)
                return -ENOMEM;
        int k = take_over(set->by_key, key, r, displaced);
        if (k < 0 || r->kind != VF_KIND_HOSTDEV)
                return k;
        return take_over(set->index->by_pci, r->hostdev.pci, r, displaced);
}

static void forget(vf_map *m, const char *key, const schema_resource *r) {
        if (vf_map_get(m, key) == r)
                (void) vf_map_remove(m, key);
}

int schema_index_remove(schema_set *set, const schema_resource *r) {
        _cleanup_free_ char *key = schema_key(r->kind, r->name);
        if (!key)
                return -ENOMEM;
        forget(set->by_key, key, r);
        if (r->kind == VF_KIND_HOSTDEV)
                forget(set->index->by_pci, r->hostdev.pci, r);
        return 0;
}

/* ---- claims of failed files ------------------------------------------------- */

static int claim_one(vf_map *claims, const char *token, const char *name) {
        char **names = vf_map_get(claims, token);
        size_t n = vf_strv_length(names);

        /* A file declaring a token twice is its own duplicate: one claim is enough. */
        if (n > 0 && strcmp(names[n - 1], name) == 0)
                return 0;
        int r = vf_strv_push(&names, name);
        if (r < 0)
                return r;
        /* The push may have moved the list. Replacing a value never fails, so a failure left a new list. */
        r = vf_map_put(claims, token, names);
        if (r < 0)
                vf_strv_free(names);
        return r;
}

int schema_index_claim(schema_set *set, const char *name, char **tokens) {
        schema_index *x = set->index;

        if (!tokens)
                return 0;
        int r = vf_map_put(x->claimed, name, tokens);
        if (r < 0) {
                vf_strv_free(tokens);
                return r;
        }
        for (size_t i = 0; r >= 0 && tokens[i]; i++)
                r = claim_one(x->claims, tokens[i], name);
        return r;
}

static void unclaim_one(vf_map *claims, const char *token, const char *name) {
        char **names = vf_map_get(claims, token);
        size_t k = 0;

        if (!names)
                return;
        for (size_t i = 0; names[i]; i++) {
                if (strcmp(names[i], name) == 0)
                        free(names[i]);
                else
                        names[k++] = names[i];
        }
        names[k] = NULL;
        if (k == 0)
                vf_strv_free(vf_map_remove(claims, token));
}

void schema_index_withdraw(schema_set *set, const char *name) {
        char **tokens = vf_map_remove(set->index->claimed, name);

        for (size_t i = 0; tokens && tokens[i]; i++)
                unclaim_one(set->index->claims, tokens[i], name);
        vf_strv_free(tokens);
}

char *const *schema_index_claimants(const schema_set *set, const char *token) {
        return vf_map_get(set->index->claims, token);
}

/* ---- stamps of files read clean ------------------------------------------------- */

int schema_index_stamp(schema_set *set, const char *name, const char *path, const schema_stamp *stamp) {
        size_t len = strlen(path) + 1;
        stamped *s = malloc(sizeof(stamped) + len);

        if (!s)
                return -ENOMEM;
        s->stamp = *stamp;
        memcpy(s->path, path, len);
        schema_index_unstamp(set, name);
        int r = vf_map_put(set->index->stamps, name, s);
        if (r < 0)
                free(s);
        return r;
}

void schema_index_unstamp(schema_set *set, const char *name) {
        free(vf_map_remove(set->index->stamps, name));
}

const schema_stamp *schema_index_stamp_of(const schema_set *set, const char *name, const char **ret_path) {
        const stamped *s = vf_map_get(set->index->stamps, name);

        if (!s)
                return NULL;
        *ret_path = s->path;
        return &s->stamp;
}
