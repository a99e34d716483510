/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A YAML file: each document is one resource with apiVersion, kind, metadata and spec. */
#include <string.h>

#include "schema/yaml-node.h"

#define API_VERSION "virtform/v1"

static const char *const document_keys[] = { "apiVersion", "kind", "metadata", "spec", NULL };
static const char *const metadata_keys[] = { "name", "adopt", NULL };

typedef int (*spec_parser)(schema_file *f, const ynode *spec, schema_resource *r);

static const spec_parser spec_parsers[_VF_KIND_MAX] = {
        [VF_KIND_NETWORK] = spec_network_parse,
        [VF_KIND_HOSTDEV] = spec_hostdev_parse,
        [VF_KIND_DOMAIN] = spec_domain_parse,
        [VF_KIND_POOL] = spec_pool_parse,
        [VF_KIND_VOLUME] = spec_volume_parse,
        [VF_KIND_CLOUDINIT] = spec_cloudinit_parse,
};

#define KIND_CHOICES "Network, Domain, Hostdev, StoragePool, Volume or CloudInit"

static void missing(schema_file *f, const ynode *n, const char *what, const char *hint) {
        ynode_error(f, n, "%s is missing; %s", what, hint);
}

static int check_api_version(schema_file *f, const ynode *root) {
        const char *version;
        int r = yget_string(f, root, "apiVersion", &version);
        if (r == 0)
                missing(f, root, "apiVersion", "add apiVersion: " API_VERSION);
        if (r <= 0)
                return -EINVAL;
        if (strcmp(version, API_VERSION) != 0) {
                ynode_error(f, ymap_get(root, "apiVersion"), "apiVersion \"%s\" is not supported; use " API_VERSION,
                            version);
                return -EINVAL;
        }
        return 0;
}

static int read_kind(schema_file *f, const ynode *root, vf_kind *ret) {
        const char *kind;
        int r = yget_string(f, root, "kind", &kind);
        if (r == 0)
                missing(f, root, "kind", "add kind: " KIND_CHOICES);
        if (r <= 0)
                return -EINVAL;
        *ret = vf_kind_from_yaml(kind);
        if (*ret < 0) {
                ynode_error(f, ymap_get(root, "kind"), "unknown kind \"%s\"; use " KIND_CHOICES, kind);
                return -EINVAL;
        }
        return 0;
}

/* The name node, for positions; NULL after reporting. */
static const ynode *read_metadata(schema_file *f, const ynode *root, bool *adopt) {
        const ynode *metadata;
        const char *name;

        int r = yget_mapping(f, root, "metadata", &metadata);
        if (r == 0)
                missing(f, root, "metadata", "add metadata: {name: NAME}");
        if (r <= 0 || ymap_check(f, metadata, "metadata", metadata_keys) < 0)
                return NULL;
        bool adopt_ok = yget_bool(f, metadata, "adopt", adopt) >= 0;
        r = yget_string(f, metadata, "name", &name);
        if (r == 0)
                missing(f, metadata, "metadata.name", "add name: NAME");
        if (r <= 0 || !adopt_ok)
                return NULL;
        if (!schema_name_is_valid(name)) {
                ynode_error(f, ymap_get(metadata, "name"), "invalid name \"%s\": " SCHEMA_NAME_RULE, name);
                return NULL;
        }
        return ymap_get(metadata, "name");
}

/* An absent value (spec:) reads as an empty mapping, like spec: {}. */
static const ynode *read_spec(schema_file *f, const ynode *root) {
        const ynode *spec = ymap_get(root, "spec");
        if (!spec)
                missing(f, root, "spec", "add spec: {} with the fields of the kind");
        else if (!ynode_is_null(spec) && spec->kind != YNODE_MAPPING)
                ynode_error(f, spec, "spec must be a mapping, not a single value or a list");
        else
                return spec;
        return NULL;
}

/*
 * The spec is checked even when the header has errors, so one pass reports
 * both; only a document without any error becomes a resource.
 */
static int on_document(schema_file *f, const ynode *root) {
        static const ynode empty = { .kind = YNODE_MAPPING };
        unsigned errors = f->n_errors;
        vf_kind kind = _VF_KIND_INVALID;
        bool adopt = false;

        if (root->kind != YNODE_MAPPING) {
                ynode_error(f, root, "a document must be a mapping with apiVersion, kind, metadata and spec");
                return -EINVAL;
        }
        if (ymap_check(f, root, "the document", document_keys) == -ENOMEM)
                return -ENOMEM;
        (void) check_api_version(f, root);
        (void) read_kind(f, root, &kind);
        const ynode *name = read_metadata(f, root, &adopt);
        const ynode *spec = read_spec(f, root);
        if (kind < 0 || !spec)
                return -EINVAL;

        const ynode *at = name ? name : root;
        _cleanup_(schema_resource_unrefp) schema_resource *res =
                schema_resource_new(f, kind, name ? name->scalar : "unnamed", at->line, at->column);
        if (!res)
                return -ENOMEM;
        res->adopt = adopt;
        int r = spec_parsers[kind](f, ynode_is_null(spec) ? &empty : spec, res);
        if (r < 0)
                return r;
        if (f->n_errors != errors)
                return -EINVAL;
        return schema_file_add(f, TAKE_PTR(res));
}

int schema_yaml_parse(schema_file *f, const char *data, size_t len) {
        return ytree_parse(f, data, len, on_document);
}
