/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * YAML documents as node trees, and typed access to them. Internal to schema/.
 *
 * Aliases make a document a DAG: an alias is a pointer to its anchored node,
 * never a copy, and every node is owned by the document's node list.
 */
#pragma once

#include "schema/schema-internal.h"

typedef enum ynode_kind {
        YNODE_SCALAR,
        YNODE_SEQUENCE,
        YNODE_MAPPING,
} ynode_kind;

typedef struct ynode {
        ynode_kind kind;
        unsigned line, column; /* 1-based */
        char *scalar;
        bool plain; /* unquoted, so it may be a bool, an integer or null */
        /* A literal block scalar ('|'): how far its lines, from line + 1 on, are indented; else 0. */
        unsigned literal_indent;
        struct ynode **children; /* a sequence's items; a mapping's keys and values, alternating */
        size_t n_children, cap_children;
        size_t weight; /* nodes it stands for, aliases expanded */
        bool complete; /* its end was seen: only complete nodes may be aliased */
} ynode;

/* Calls on_document for every non-empty document; stops at the first syntax error or broken limit. */
typedef int (*ydocument_handler)(schema_file *f, const ynode *root);
int ytree_parse(schema_file *f, const char *data, size_t len, ydocument_handler on_document);

/* ---- typed access (yaml-node.c) ----------------------------------------- */

void ynode_error(schema_file *f, const ynode *n, const char *fmt, ...) _printf_(3, 4);
bool ynode_is_null(const ynode *n);
const ynode *ymap_get(const ynode *map, const char *key);
/* Reports unknown and repeated keys; `what` names the mapping in messages. */
int ymap_check(schema_file *f, const ynode *map, const char *what, const char *const *allowed);

/*
 * Getters: 1 when the key is there and valid, 0 when it is absent, -EINVAL
 * after reporting a wrong type or value.
 */
int yget_string(schema_file *f, const ynode *map, const char *key, const char **ret);
int yget_bool(schema_file *f, const ynode *map, const char *key, bool *ret);
int yget_uint(schema_file *f, const ynode *map, const char *key, unsigned min, unsigned max, unsigned *ret);
int yget_enum(schema_file *f, const ynode *map, const char *key, const char *const *names, int *ret);
/* A unicast MAC, normalised to lower case. */
int yget_mac(schema_file *f, const ynode *map, const char *key, char ret[18]);
/* A host network interface name, as the kernel accepts it. */
int yget_ifname(schema_file *f, const ynode *map, const char *key, const char **ret);
/* The name of another resource, by schema_name_is_valid(). */
int yget_name(schema_file *f, const ynode *map, const char *key, const char **ret);
/* The value under key if it is a sequence (0 if absent); sequence items are children[]. */
int yget_sequence(schema_file *f, const ynode *map, const char *key, const ynode **ret);
int yget_mapping(schema_file *f, const ynode *map, const char *key, const ynode **ret);

/* ---- kinds (spec-*.c) ---------------------------------------------------- */

/* spec.xml, the escape hatch of Network and Domain: its node if given as a string, else NULL. */
const ynode *spec_xml_node(schema_file *f, const ynode *spec);
/*
 * The document typed fields are rendered into: spec.xml parsed, or a new
 * empty root element. Errors in it are reported at the xml scalar.
 */
int spec_xml_base(schema_file *f, const ynode *spec, const ynode *xml, const char *root, xml_origin *ret_origin,
                  xmlDoc **ret);

/* Validates the rendered document and keeps it in r. */
int spec_xml_finish(const xml_origin *o, schema_resource *r, xmlDoc *doc);

/* Each fills r from the spec mapping; r->name is set. */
int spec_network_parse(schema_file *f, const ynode *spec, schema_resource *r);
int spec_domain_parse(schema_file *f, const ynode *spec, schema_resource *r);
int spec_hostdev_parse(schema_file *f, const ynode *spec, schema_resource *r);
int spec_pool_parse(schema_file *f, const ynode *spec, schema_resource *r);
int spec_volume_parse(schema_file *f, const ynode *spec, schema_resource *r);
int spec_cloudinit_parse(schema_file *f, const ynode *spec, schema_resource *r);
