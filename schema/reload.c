/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reloading one file name, and the later files that name's keys decide.
 *
 * A full load judges files in name order, each against the keys and PCI
 * addresses of the files before it. So a change to one name can only affect
 * later files that declare what it held before or holds now, and later files
 * whose volumes a change to its volumes closes into a cycle; they are judged
 * again, in name order, until nothing else changes hands.
 */
#include <string.h>

#include "schema/schema-internal.h"

typedef struct reload {
        schema_set *set;
        const schema_layers *layers;
        char **pending; /* names still to judge, sorted: a name depends only on names before it */
        size_t n_pending;
        char **judged;
        schema_resource **old; /* what the judged names held before, for the change report (owned) */
        size_t n_old;
} reload;

static void reload_done(reload *w) {
        vf_strv_free(w->pending);
        vf_strv_free(w->judged);
        for (size_t i = 0; i < w->n_old; i++)
                schema_resource_unref(w->old[i]);
        free(w->old);
}

static int schedule(reload *w, const char *name) {
        size_t pos = schema_strv_pos(w->pending, w->n_pending, name);
        if (pos < w->n_pending && strcmp(w->pending[pos], name) == 0)
                return 0;
        return schema_strv_insert(&w->pending, &w->n_pending, pos, name);
}

/* Takes the name's resources, diagnostics and claims out of the set; their tokens go to *touched. */
static int detach(reload *w, const char *name, char ***touched) {
        schema_set *set = w->set;
        schema_range res = schema_set_resources_of(set, name);
        size_t n = res.end - res.start;

        /* The arrays are NULL while empty, and NULL + 0 is undefined: no arithmetic on them then. */
        schema_resource **old = schema_array_insert(w->old, w->n_old, sizeof(schema_resource *), w->n_old,
                                                    n > 0 ? set->resources + res.start : NULL, n);
        if (!old)
                return -ENOMEM;
        w->old = old;
        w->n_old += n;
        schema_array_remove(set->resources, set->n_resources, sizeof(schema_resource *), res.start, n);
        set->n_resources -= n;
        for (size_t i = w->n_old - n; i < w->n_old; i++)
                if (schema_index_remove(set, w->old[i]) < 0 || schema_resource_tokens(w->old[i], touched) < 0)
                        return -ENOMEM;

        schema_range diags = schema_set_diags_of(set, name);
        if (diags.end > diags.start)
                schema_diags_clear(set->diags + diags.start, diags.end - diags.start);
        schema_array_remove(set->diags, set->n_diags, sizeof(schema_diag), diags.start, diags.end - diags.start);
        set->n_diags -= diags.end - diags.start;

        schema_strv_drop(&set->files_ok, &set->n_files_ok, name);
        schema_strv_drop(&set->files_failed, &set->n_files_failed, name);
        schema_index_withdraw(set, name);
        schema_index_unstamp(set, name);
        return 0;
}

/* Puts src (taken over) in the name's place in set->sources, or removes the name when src is NULL. */
static int place_source(schema_set *set, const char *name, schema_source *src) {
        size_t pos = schema_set_source_pos(set, name);
        bool present = pos < set->n_sources && strcmp(set->sources[pos].name, name) == 0;

        if (present) {
                schema_source_done(&set->sources[pos]);
                schema_array_remove(set->sources, set->n_sources, sizeof(schema_source), pos, 1);
                set->n_sources--;
        }
        if (!src)
                return 0;
        schema_source *s = schema_array_insert(set->sources, set->n_sources, sizeof(schema_source), pos, src, 1);
        if (!s)
                return -ENOMEM;
        set->sources = s;
        set->n_sources++;
        *src = (schema_source) {};
        return 0;
}

static int attached_tokens(const schema_set *set, const char *name, char ***touched) {
        schema_range res = schema_set_resources_of(set, name);

        for (size_t i = res.start; i < res.end; i++)
                if (schema_resource_tokens(set->resources[i], touched) < 0)
                        return -ENOMEM;
        return 0;
}

/* Later failed files that declared a token this name held before or holds now. */
static int schedule_claimants(reload *w, const char *name, char *const *touched) {
        for (size_t i = 0; touched && touched[i]; i++) {
                char *const *claimants = schema_index_claimants(w->set, touched[i]);
                for (size_t j = 0; claimants && claimants[j]; j++) {
                        if (strcmp(claimants[j], name) <= 0)
                                continue;
                        int r = schedule(w, claimants[j]);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* The set as a full load shows it to the file called name: the files up to that name. */
typedef struct upto {
        const schema_set *set;
        const char *name;
} upto;

static const schema_resource *lookup_upto(const void *userdata, const char *key) {
        const upto *u = userdata;
        const schema_resource *r = vf_map_get(u->set->by_key, key);
        return r && schema_path_name_cmp(r->file, u->name) <= 0 ? r : NULL;
}

static bool touches_volumes(char *const *touched) {
        for (size_t i = 0; touched && touched[i]; i++)
                if (strncmp(touched[i], "volume/", strlen("volume/")) == 0)
                        return true;
        return false;
}

/* Later files whose volumes now come round to themselves through what this name declares: they fail now. */
static int schedule_cycles(reload *w, const char *name, char *const *touched) {
        if (!touches_volumes(touched))
                return 0;
        for (size_t i = schema_set_resources_of(w->set, name).end; i < w->set->n_resources; i++) {
                const schema_resource *r = w->set->resources[i];
                _cleanup_free_ char *later = schema_path_name(r->file);
                if (!later)
                        return -ENOMEM;
                int k = schema_volume_cycle(r, lookup_upto, &(upto) { w->set, later }, NULL, NULL);
                if (k > 0)
                        k = schedule(w, later);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int judge(reload *w, const char *name) {
        _cleanup_(schema_source_done) schema_source src = {};
        _cleanup_strv_free_ char **touched = NULL, **displaced = NULL;
        schema_entry entry = {};

        int found = schema_layers_resolve(w->layers, name, &src, &entry);
        if (found < 0)
                return found;
        int r = detach(w, name, &touched);
        if (r >= 0 && src.path)
                r = schema_file_load(w->set, w->layers, &entry, src.path, name, &displaced);
        if (r >= 0)
                r = place_source(w->set, name, found ? &src : NULL);
        if (r >= 0)
                r = attached_tokens(w->set, name, &touched);
        if (r >= 0)
                r = schedule_claimants(w, name, touched);
        if (r >= 0)
                r = schedule_cycles(w, name, touched);
        for (size_t i = 0; r >= 0 && displaced && displaced[i]; i++)
                r = schedule(w, displaced[i]);
        return r;
}

static bool moved_or_changed(const schema_resource *before, const schema_resource *now) {
        return !now || strcmp(before->hash, now->hash) != 0 || strcmp(before->file, now->file) != 0;
}

static int report_old(const reload *w, vf_map *before, char ***changed) {
        for (size_t i = 0; i < w->n_old; i++) {
                const schema_resource *r = w->old[i];
                _cleanup_free_ char *key = schema_key(r->kind, r->name);
                if (!key || vf_map_put(before, key, (void *) r) < 0)
                        return -ENOMEM;
                if (moved_or_changed(r, vf_map_get(w->set->by_key, key)) && vf_strv_push(changed, key) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Keys that exist now and did not before; keys that were there are all in report_old(). */
static int report_new(const reload *w, const vf_map *before, char ***changed) {
        for (size_t i = 0; w->judged && w->judged[i]; i++) {
                schema_range res = schema_set_resources_of(w->set, w->judged[i]);
                for (size_t j = res.start; j < res.end; j++) {
                        const schema_resource *r = w->set->resources[j];
                        _cleanup_free_ char *key = schema_key(r->kind, r->name);
                        if (!key)
                                return -ENOMEM;
                        if (!vf_map_get(before, key) && vf_strv_push(changed, key) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int report(const reload *w, char ***ret) {
        _cleanup_(vf_map_freep) vf_map *before = vf_map_new();
        _cleanup_strv_free_ char **changed = NULL;

        if (!before)
                return -ENOMEM;
        int r = report_old(w, before, &changed);
        if (r >= 0)
                r = report_new(w, before, &changed);
        if (r < 0)
                return r;
        schema_strv_sort_unique(changed);
        *ret = TAKE_PTR(changed);
        return 0;
}

int schema_reload_name(schema_set *set, const schema_layers *layers, const char *name, char ***changed) {
        _cleanup_(reload_done) reload w = { .set = set, .layers = layers };

        int r = schedule(&w, name);
        while (r >= 0 && w.pending) {
                char *next = schema_strv_take(&w.pending, &w.n_pending, 0);
                r = judge(&w, next);
                if (r >= 0)
                        r = vf_strv_consume(&w.judged, next);
                else
                        free(next);
        }
        if (r < 0)
                return r;
        return changed ? report(&w, changed) : 0;
}

/*
 * Whether the paths are still as the set was loaded: the same ones read,
 * missing and failing. Then a name reloads as a full load would judge it now,
 * even while a path fails (what it declared stays unknown, and held); any
 * other change to them calls for a full load.
 */
static bool failed_at_load(const schema_set *set, const char *path) {
        for (size_t i = 0; i < set->n_path_errors; i++)
                if (strcmp(set->path_errors[i].file, path) == 0)
                        return true;
        return false;
}

static int paths_as_loaded(const schema_set *set, const schema_layers *layers) {
        size_t failing = 0, missing = 0;

        for (size_t i = 0; i < layers->n_unopened; i++) {
                const schema_unopened *u = &layers->unopened[i];
                if (u->optional && !vf_strv_contains(set->dirs_missing, u->path))
                        return -ENOENT; /* it vanished */
                if (!u->optional && !failed_at_load(set, u->path))
                        return u->error;
                if (u->optional)
                        missing++;
                else
                        failing++;
        }
        /* A path that reads again, or a default directory that appeared. */
        if (failing != set->n_path_errors || missing != vf_strv_length(set->dirs_missing))
                return -EAGAIN;
        return 0;
}

int schema_set_reload(schema_set *set, const char *name, char ***changed) {
        _cleanup_(schema_layers_close) schema_layers layers = {};
        _cleanup_free_ char *base = schema_path_name(name);

        if (!base)
                return -ENOMEM;
        int r = schema_layers_open(set->dirs, &set->options, &layers);
        if (r >= 0)
                r = paths_as_loaded(set, &layers);
        if (r < 0)
                return r;
        return schema_reload_name(set, &layers, base, changed);
}
