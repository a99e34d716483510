/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The schema_set container and the small public helpers around it. */
#include <string.h>

#include "schema/schema-internal.h"

schema_set *schema_set_new(void) {
        schema_set *set = calloc(1, sizeof(schema_set));
        if (!set)
                return NULL;
        set->by_key = vf_map_new();
        set->index = schema_index_new();
        if (!set->by_key || !set->index) {
                schema_set_free(set);
                return NULL;
        }
        return set;
}

void schema_set_free(schema_set *set) {
        if (!set)
                return;
        for (size_t i = 0; i < set->n_resources; i++)
                schema_resource_unref(set->resources[i]);
        free(set->resources);
        schema_diags_clear(set->diags, set->n_diags);
        free(set->diags);
        vf_strv_free(set->files_ok);
        vf_strv_free(set->files_failed);
        for (size_t i = 0; i < set->n_sources; i++)
                schema_source_done(&set->sources[i]);
        free(set->sources);
        vf_strv_free(set->dirs);
        schema_diags_clear(set->path_errors, set->n_path_errors);
        free(set->path_errors);
        vf_strv_free(set->dirs_missing);
        vf_map_free(set->by_key);
        schema_validators_free(set->validators);
        schema_index_free(set->index);
        free(set);
}

char *schema_key(vf_kind kind, const char *name) {
        return vf_printf("%s/%s", vf_kind_to_string(kind), name);
}

const schema_resource *schema_set_find(const schema_set *set, vf_kind kind, const char *name) {
        _cleanup_free_ char *key = schema_key(kind, name);
        return key ? vf_map_get(set->by_key, key) : NULL;
}

const schema_source *schema_set_source(const schema_set *set, const char *path_or_name) {
        _cleanup_free_ char *name = schema_path_name(path_or_name);
        if (!name)
                return NULL;
        size_t pos = schema_set_source_pos(set, name);
        if (pos == set->n_sources || strcmp(set->sources[pos].name, name) != 0)
                return NULL;
        return &set->sources[pos];
}

size_t schema_set_n_errors(const schema_set *set) {
        size_t n = set->n_path_errors;

        for (size_t i = 0; i < set->n_diags; i++)
                n += !set->diags[i].warning;
        return n;
}

char *schema_diag_format(const schema_diag *d) {
        const char *severity = d->warning ? "warning" : "error";

        if (d->line == 0)
                return vf_printf("%s: %s: %s", d->file, severity, d->message);
        return vf_printf("%s:%u:%u: %s: %s", d->file, d->line, d->column, severity, d->message);
}

/*
 * libvirt forbids '/' (domain_postparse.c, network_conf.c) and a newline (each
 * driver's define) in names and nothing else: "foo=1,bar=2", "8675309" and
 * "web 1" are names. virtform forbids the other control characters too, since
 * names go unquoted into one-line diagnostics, tables and logs.
 */
bool schema_name_is_valid(const char *name) {
        size_t len = name ? strlen(name) : 0;
        if (len == 0 || len > SCHEMA_MAX_NAME_LEN)
                return false;
        for (const char *p = name; *p; p++)
                if (*p == '/' || (unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

/* A network, pool or volume may be libvirt's own (its default) or one made with virsh. */
static bool may_be_libvirts(const char *ref) {
        static const vf_kind kinds[] = { VF_KIND_NETWORK, VF_KIND_POOL, VF_KIND_VOLUME };
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                const char *kind = vf_kind_to_string(kinds[i]);
                if (strncmp(ref, kind, strlen(kind)) == 0 && ref[strlen(kind)] == '/')
                        return true;
        }
        return false;
}

static char *undeclared_warning(const schema_resource *r, const char *ref) {
        _cleanup_free_ char *key = schema_key(r->kind, r->name);
        if (!key)
                return NULL;
        /* A Hostdev or a cloud-init seed is virtform's alone. */
        _cleanup_free_ char *remedy = may_be_libvirts(ref) ? vf_printf("libvirt must have that %.*s already",
                                                                       (int) strcspn(ref, "/"), ref)
                                                           : strdup("declare it");
        if (!remedy)
                return NULL;
        _cleanup_free_ char *msg = vf_printf("%s refers to %s, which no file declares: %s, or %s waits "
                                             "(DependencyNotReady)", key, ref, remedy, key);
        if (!msg)
                return NULL;
        schema_diag d = { .file = r->file, .line = r->line, .column = r->column, .message = msg, .warning = true };
        return schema_diag_format(&d);
}

int schema_set_undeclared_warnings(const schema_set *set, char ***ret) {
        _cleanup_strv_free_ char **warnings = NULL;

        for (size_t i = 0; i < set->n_resources; i++) {
                const schema_resource *r = set->resources[i];
                for (size_t j = 0; r->depends && r->depends[j]; j++) {
                        const char *ref = r->depends[j];
                        /* A failed file that declares it has said why already. */
                        if (vf_map_get(set->by_key, ref) || schema_index_claimants(set, ref))
                                continue;
                        _cleanup_free_ char *w = undeclared_warning(r, ref);
                        if (!w || vf_strv_push(&warnings, w) < 0)
                                return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(warnings);
        return 0;
}
