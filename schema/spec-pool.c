/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kind: StoragePool — the typed spec, its checks, and its rendering to libvirt <pool> XML. */
#include <libxml/tree.h>
#include <string.h>

#include "schema/yaml-node.h"

typedef enum pool_type { POOL_DIR, POOL_LOGICAL } pool_type;

static const char *const pool_keys[] = { "type", "path", "volumeGroup", "autostart", "xml", NULL };
static const char *const pool_type_names[] = { "dir", "logical", NULL };

typedef struct pool_decl {
        int type; /* a pool_type; -1: not given, spec.xml's or dir */
        const char *path, *volume_group;
        const ynode *xml;
} pool_decl;

/* What LVM accepts as a volume group name (lvm(8), "VALID NAMES"). */
static bool volume_group_is_valid(const char *s) {
        size_t len = strlen(s);
        return len > 0 && len <= 127 && s[0] != '-' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
                strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+_.-") == len;
}

static void read_spec(schema_file *f, const ynode *spec, pool_decl *d, schema_resource *r) {
        (void) yget_enum(f, spec, "type", pool_type_names, &d->type);
        if (yget_string(f, spec, "path", &d->path) > 0 && d->path[0] != '/')
                ynode_error(f, ymap_get(spec, "path"), "pool path \"%s\" is not an absolute path; start it with /",
                            d->path);
        if (yget_string(f, spec, "volumeGroup", &d->volume_group) > 0 && !volume_group_is_valid(d->volume_group))
                ynode_error(f, ymap_get(spec, "volumeGroup"),
                            "invalid volumeGroup \"%s\"; an LVM volume group name is 1 to 127 of A-Z a-z 0-9 + _ . -, "
                            "not starting with -",
                            d->volume_group);
        (void) yget_bool(f, spec, "autostart", &r->pool.autostart);
        d->xml = spec_xml_node(f, spec);
}

/* The type the pool ends up with: spec.type, else spec.xml's, else dir. NULL: spec.xml has none (RelaxNG says so). */
static xmlChar *effective_type(const pool_decl *d, xmlNode *root) {
        if (d->type >= 0 || !d->xml)
                return xmlStrdup(BAD_CAST pool_type_names[d->type >= 0 ? d->type : POOL_DIR]);
        return xmlGetNoNsProp(root, BAD_CAST "type");
}

/* path and volumeGroup each belong to one type. */
static void check_type_fields(schema_file *f, const ynode *spec, const pool_decl *d, const char *type) {
        bool logical = type && strcmp(type, "logical") == 0;
        if (logical && d->path)
                ynode_error(f, ymap_get(spec, "path"),
                            "path is not allowed with type: logical, whose volumes are in /dev/VOLUMEGROUP; remove it");
        if (!logical && d->volume_group)
                ynode_error(f, ymap_get(spec, "volumeGroup"),
                            "volumeGroup is only allowed with type: logical; remove it");
}

static int render_text_child(xmlNode *parent, const char *name, const char *text) {
        xmlNode *n = xml_replace(parent, name, NULL);
        return n ? xml_set_text(n, text) : -ENOMEM;
}

static int render_target_path(xmlNode *root, const char *path) {
        xmlNode *target = xml_child_or_new(root, "target");
        return target ? render_text_child(target, "path", path) : -ENOMEM;
}

/* An existing volume group, never built: <source> names it and the target is its /dev directory. */
static int render_volume_group(xmlNode *root, const char *volume_group) {
        _cleanup_free_ char *dev = vf_printf("/dev/%s", volume_group);
        xmlNode *source = xml_child_or_new(root, "source");
        if (!dev || !source || render_text_child(source, "name", volume_group) < 0 ||
            !xml_replace(source, "format", "type", "lvm2", NULL))
                return -ENOMEM;
        return render_target_path(root, dev);
}

static int render(xmlNode *root, const char *name, const pool_decl *d, const char *type) {
        if (!xmlSetProp(root, BAD_CAST "type", BAD_CAST type) || render_text_child(root, "name", name) < 0)
                return -ENOMEM;
        if (d->path && render_target_path(root, d->path) < 0)
                return -ENOMEM;
        return d->volume_group ? render_volume_group(root, d->volume_group) : 0;
}

static xmlNode *child_path(xmlNode *root, const char *parent, const char *name) {
        xmlNode *n = xml_child(root, parent);
        return n ? xml_child(n, name) : NULL;
}

int schema_pool_finish(xmlNode *root, schema_resource *r, const char **ret_problem) {
        _cleanup_(xml_freep) xmlChar *type = xmlGetNoNsProp(root, BAD_CAST "type");
        bool dir = type && xmlStrEqual(type, BAD_CAST "dir");

        *ret_problem = NULL;
        if (dir && !child_path(root, "target", "path"))
                *ret_problem = "a dir pool needs path (<target><path> in XML): the absolute directory that holds its "
                               "volumes";
        else if (type && xmlStrEqual(type, BAD_CAST "logical") && !child_path(root, "source", "name"))
                *ret_problem = "type: logical needs volumeGroup (<source><name> in XML): the name of an existing LVM "
                               "volume group";
        if (*ret_problem || !dir)
                return 0;
        _cleanup_(xml_freep) xmlChar *path = xmlNodeGetContent(child_path(root, "target", "path"));
        r->pool.path = path ? strdup((const char *) path) : NULL;
        return r->pool.path ? 0 : -ENOMEM;
}

int spec_pool_parse(schema_file *f, const ynode *spec, schema_resource *r) {
        pool_decl d = { .type = -1 };
        unsigned errors = f->n_errors;
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        xml_origin origin;

        if (ymap_check(f, spec, "StoragePool spec", pool_keys) == -ENOMEM)
                return -ENOMEM;
        read_spec(f, spec, &d, r);
        if (f->n_errors != errors)
                return -EINVAL;
        int k = spec_xml_base(f, spec, d.xml, "pool", &origin, &doc);
        if (k < 0)
                return k;
        xmlNode *root = xmlDocGetRootElement(doc);
        _cleanup_(xml_freep) xmlChar *type = effective_type(&d, root);
        check_type_fields(f, spec, &d, (const char *) type);
        if (f->n_errors != errors)
                return -EINVAL;
        /* Without a type spec.xml fails validation, which says so at the element. */
        if (type && render(root, r->name, &d, (const char *) type) < 0)
                return -ENOMEM;
        k = spec_xml_finish(&origin, r, doc);
        if (k < 0)
                return k;
        const char *problem;
        k = schema_pool_finish(root, r, &problem);
        if (problem)
                ynode_error(f, spec, "%s", problem);
        return k < 0 ? k : problem ? -EINVAL : 0;
}
