/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Native libvirt XML files: a <domain>, <network>, <pool> or <volume> as
 * `virsh dumpxml` (or pool-dumpxml, vol-dumpxml) writes it. virtform's policy
 * travels in <vf:policy .../>: inside <metadata> for domains and networks,
 * directly under the root for pools and volumes, which have no <metadata>.
 * It and the reconciler's ownership marker are removed from the stored XML,
 * so a dump of a managed object reads back as the same desired state.
 */
#include <libxml/tree.h>
#include <string.h>

#include "schema/schema-internal.h"

/* A volume's <vf:from volume|file|url=... clone=... sha256=.../>, as given. */
typedef struct from_decl {
        int source; /* a schema_volume_source; SCHEMA_SOURCE_NONE: no vf:from */
        xmlChar *value, *clone, *sha256;
        unsigned line, column;
} from_decl;

typedef struct policy {
        int state, restart, drift, deletion;
        bool autostart, adopt;
        xmlChar *pool; /* a volume's pool= */
        from_decl from;
} policy;

static void policy_done(policy *p) {
        xmlFree(p->pool);
        xmlFree(p->from.value);
        xmlFree(p->from.clone);
        xmlFree(p->from.sha256);
}

typedef enum policy_attr {
        POLICY_STATE,
        POLICY_AUTOSTART,
        POLICY_RESTART,
        POLICY_ADOPT,
        POLICY_DRIFT,
        POLICY_POOL,
        POLICY_DELETION,
} policy_attr;

/* Every attribute, in policy_attr order. */
static const char *const policy_attrs[] = { "state", "autostart", "restart", "adopt", "drift", "pool", "deletionPolicy",
                                            NULL };

static const char *const *const kind_policy_attrs[_VF_KIND_MAX] = {
        [VF_KIND_DOMAIN] = (const char *const[]) { "state", "autostart", "restart", "adopt", "drift", NULL },
        [VF_KIND_NETWORK] = (const char *const[]) { "autostart", "adopt", "drift", NULL },
        [VF_KIND_POOL] = (const char *const[]) { "autostart", "adopt", NULL },
        [VF_KIND_VOLUME] = (const char *const[]) { "pool", "deletionPolicy", "adopt", NULL },
};

static const char *const from_attrs[] = { "volume", "file", "url", "clone", "sha256", NULL };

static int read_policy_attr(const xml_origin *o, xmlAttr *a, policy_attr which, const char *value, policy *p) {
        static const char *const *const values[] = {
                [POLICY_STATE] = schema_state_names,
                [POLICY_AUTOSTART] = schema_yes_no_names,
                [POLICY_RESTART] = schema_restart_names,
                [POLICY_ADOPT] = schema_yes_no_names,
                [POLICY_DRIFT] = schema_drift_names,
                [POLICY_DELETION] = schema_deletion_names,
        };
        if (which == POLICY_POOL) {
                if (schema_name_is_valid(value))
                        return (p->pool = xmlStrdup(BAD_CAST value)) ? 0 : -ENOMEM;
                xml_origin_error(o, xml_line(a->parent), xml_column(a->parent),
                                 "vf:policy pool=\"%s\" is not valid: " SCHEMA_NAME_RULE, value);
                return -EINVAL;
        }
        int v = schema_lookup(values[which], value);
        if (v < 0) {
                _cleanup_free_ char *list = schema_join(values[which]);
                xml_origin_error(o, xml_line(a->parent), xml_column(a->parent), "vf:policy %s=\"%s\" is not valid; use one of %s",
                                 (const char *) a->name, value, list ? list : "");
                return -EINVAL;
        }
        switch (which) {
        case POLICY_STATE:
                p->state = v;
                break;
        case POLICY_AUTOSTART:
                p->autostart = v;
                break;
        case POLICY_RESTART:
                p->restart = v;
                break;
        case POLICY_ADOPT:
                p->adopt = v;
                break;
        case POLICY_DRIFT:
                p->drift = v;
                break;
        case POLICY_DELETION:
                p->deletion = v;
                break;
        case POLICY_POOL:
                break;
        }
        return 0;
}

static int read_policy(const xml_origin *o, xmlNode *node, vf_kind kind, policy *p) {
        const char *const *allowed = kind_policy_attrs[kind];
        int ret = 0;

        for (xmlAttr *a = node->properties; a; a = a->next) {
                if (a->ns || schema_lookup(allowed, (const char *) a->name) < 0) {
                        _cleanup_free_ char *list = schema_join(allowed);
                        xml_origin_error(o, xml_line(node), xml_column(node),
                                         "unknown vf:policy attribute \"%s\" for a %s; allowed: %s",
                                         (const char *) a->name, vf_kind_to_string(kind), list ? list : "");
                        ret = -EINVAL;
                        continue;
                }
                _cleanup_(xml_freep) xmlChar *value = xmlNodeGetContent((xmlNode *) a);
                policy_attr which = schema_lookup(policy_attrs, (const char *) a->name);
                int k = read_policy_attr(o, a, which, value ? (const char *) value : "", p);
                if (k == -ENOMEM)
                        return k;
                if (k < 0)
                        ret = k;
        }
        return ret;
}

/* <vf:from/>: one source attribute, and clone or sha256 as it allows (schema_volume_from_problem()). */
static int read_from(const xml_origin *o, xmlNode *node, from_decl *from) {
        unsigned sources = 0;
        int ret = 0;

        from->line = xml_line(node);
        from->column = xml_column(node);
        for (xmlAttr *a = node->properties; a; a = a->next) {
                int i = a->ns ? -EINVAL : schema_lookup(from_attrs, (const char *) a->name);
                if (i < 0) {
                        _cleanup_free_ char *list = schema_join(from_attrs);
                        xml_origin_error(o, from->line, from->column, "unknown vf:from attribute \"%s\"; allowed: %s",
                                         (const char *) a->name, list ? list : "");
                        ret = -EINVAL;
                        continue;
                }
                xmlChar *value = xmlNodeGetContent((xmlNode *) a);
                if (!value)
                        return -ENOMEM;
                if (i <= 2) {
                        sources++;
                        from->source = SCHEMA_SOURCE_VOLUME + i;
                        xmlFree(from->value);
                        from->value = value;
                } else if (i == 3)
                        from->clone = value;
                else
                        from->sha256 = value;
        }
        if (sources != 1) {
                xml_origin_error(o, from->line, from->column,
                                 "<vf:from> needs exactly one of volume, file or url; it has %u", sources);
                return -EINVAL;
        }
        return ret;
}

/* A volume's vf:policy holds one <vf:from/>; other kinds' hold nothing virtform reads. */
static int read_policy_children(const xml_origin *o, xmlNode *node, vf_kind kind, policy *p) {
        int ret = 0;

        if (kind != VF_KIND_VOLUME)
                return 0;
        for (xmlNode *n = node->children; n; n = n->next) {
                if (n->type != XML_ELEMENT_NODE)
                        continue;
                if (!xml_in_namespace(n, SCHEMA_POLICY_NS) || !xmlStrEqual(n->name, BAD_CAST "from") ||
                    p->from.line) {
                        xml_origin_error(o, xml_line(n), xml_column(n),
                                         "a volume's <vf:policy> holds one <vf:from volume='POOL/NAME'/> (or file= or "
                                         "url= with sha256=) and nothing else; remove <%s>", (const char *) n->name);
                        ret = -EINVAL;
                        continue;
                }
                int k = read_from(o, n, &p->from);
                if (k == -ENOMEM)
                        return k;
                if (k < 0)
                        ret = k;
        }
        return ret;
}

/*
 * Removes vf:policy (reading it into p) and the ownership marker from the
 * children of container: <metadata>, dropped if that empties it, or the root
 * of a pool or volume.
 */
static int strip_virtform(const xml_origin *o, xmlNode *container, bool drop_empty, vf_kind kind, policy *p) {
        bool seen_policy = false;
        int ret = 0;

        for (xmlNode *n = container ? container->children : NULL, *next; n; n = next) {
                next = n->next;
                if (xml_in_namespace(n, SCHEMA_POLICY_NS)) {
                        int k = 0;
                        if (!xmlStrEqual(n->name, BAD_CAST "policy") || seen_policy) {
                                xml_origin_error(o, xml_line(n), xml_column(n),
                                                 "only one <vf:policy/> element is allowed in the virtform policy "
                                                 "namespace; remove <%s>",
                                                 (const char *) n->name);
                                k = -EINVAL;
                        } else {
                                k = read_policy(o, n, kind, p);
                                int c = read_policy_children(o, n, kind, p);
                                k = k == -ENOMEM || c == -ENOMEM ? -ENOMEM : k < 0 ? k : c;
                        }
                        if (k == -ENOMEM)
                                return k;
                        if (k < 0)
                                ret = k;
                        seen_policy = true;
                        xml_unlink_free(n);
                } else if (xml_in_namespace(n, SCHEMA_OWNER_NS) || xml_in_namespace(n, SCHEMA_OWNER_NS_1))
                        xml_unlink_free(n);
        }
        if (drop_empty && container && !xmlFirstElementChild(container))
                xml_unlink_free(container);
        return ret;
}

static void apply_policy(schema_resource *r, const policy *p) {
        r->adopt = p->adopt;
        r->drift = p->drift;
        switch (r->kind) {
        case VF_KIND_NETWORK:
                r->network.autostart = p->autostart;
                break;
        case VF_KIND_DOMAIN:
                r->domain.state = p->state;
                r->domain.autostart = p->autostart;
                r->domain.restart = p->restart;
                break;
        case VF_KIND_POOL:
                r->pool.autostart = p->autostart;
                break;
        case VF_KIND_VOLUME:
                r->volume.deletion = p->deletion;
                break;
        default:
                break;
        }
}

/* Valid by the RelaxNG schema, so exactly one non-empty <name> is there. */
static int read_name(const xml_origin *o, xmlNode *root, xmlChar **ret, unsigned *ret_line) {
        xmlNode *name = xml_child(root, "name");
        _cleanup_(xml_freep) xmlChar *text = xmlNodeGetContent(name);
        if (!text)
                return -ENOMEM;
        *ret_line = xml_line(name);
        if (!schema_name_is_valid((const char *) text)) {
                xml_origin_error(o, *ret_line, xml_column(name), "invalid name \"%s\": " SCHEMA_NAME_RULE, (const char *) text);
                return -EINVAL;
        }
        *ret = TAKE_PTR(text);
        return 0;
}

/* ---- pools and volumes ------------------------------------------------------ */

/* A check's outcome k (schema_volume_*_problem()): a problem is reported at line:column. */
static int report(const xml_origin *o, unsigned line, unsigned column, int k, char *problem) {
        _cleanup_free_ char *p = problem;
        if (k > 0)
                xml_origin_error(o, line, column, "%s", p);
        return k;
}

static int native_pool(const xml_origin *o, xmlNode *root, schema_resource *r) {
        const char *problem;

        int k = schema_pool_finish(root, r, &problem);
        if (problem)
                xml_origin_error(o, xml_line(root), xml_column(root), "%s", problem);
        return k < 0 ? k : problem ? -EINVAL : 0;
}

/* <capacity> in bytes; 0 when there is none. */
static int read_capacity(const xml_origin *o, xmlNode *root, schema_resource *r) {
        xmlNode *n = xml_child(root, "capacity");
        if (!n)
                return 0;
        _cleanup_(xml_freep) xmlChar *unit = xmlGetNoNsProp(n, BAD_CAST "unit");
        _cleanup_(xml_freep) xmlChar *text = xmlNodeGetContent(n);
        if (!text)
                return -ENOMEM;
        if (schema_parse_scaled((const char *) text, (const char *) unit, &r->volume.capacity) == 0 &&
            r->volume.capacity > 0)
                return 0;
        xml_origin_error(o, xml_line(n), xml_column(n),
                         "<capacity> %s %s is no size a volume can have; give a positive number of bytes, or a unit "
                         "such as GiB", (const char *) text, unit ? (const char *) unit : "bytes");
        return -EINVAL;
}

/* <target><format type=.../>: qcow2 or raw; without one qcow2, written into the XML as the YAML kind does. */
static int read_format(const xml_origin *o, xmlNode *root, schema_resource *r) {
        xmlNode *target = xml_child_or_new(root, "target");
        if (!target)
                return -ENOMEM;
        xmlNode *format = xml_child(target, "format");
        if (!format)
                return xml_element(target, "format", "type", schema_volume_format_names[r->volume.format], NULL) ? 0
                                                                                                             : -ENOMEM;
        _cleanup_(xml_freep) xmlChar *type = xmlGetNoNsProp(format, BAD_CAST "type");
        int i = type ? schema_lookup(schema_volume_format_names, (const char *) type) : -EINVAL;
        if (i < 0) {
                xml_origin_error(o, xml_line(format), xml_column(format),
                                 "virtform makes qcow2 and raw volumes; use <format type='qcow2'/> or "
                                 "<format type='raw'/>");
                return -EINVAL;
        }
        r->volume.format = i;
        return 0;
}

static int read_source(const xml_origin *o, const from_decl *from, schema_resource *r) {
        const char *key;
        char *problem = NULL;

        if (from->source == SCHEMA_SOURCE_NONE)
                return 0;
        int k = schema_volume_from_problem(from->source, from->clone, from->sha256, &key, &problem);
        if (report(o, from->line, from->column, k, problem) != 0)
                return k;
        k = schema_volume_source_problem(from->source, (const char *) from->value, r->name, &problem);
        if (report(o, from->line, from->column, k, problem) != 0)
                return k;
        int clone = from->clone ? schema_lookup(schema_clone_names, (const char *) from->clone) : 0;
        if (clone < 0) {
                xml_origin_error(o, from->line, from->column, "vf:from clone=\"%s\" is not valid; use cow or copy",
                                 (const char *) from->clone);
                return -EINVAL;
        }
        if (from->sha256) {
                k = schema_volume_sha256_problem((const char *) from->sha256, &r->volume.sha256, &problem);
                if (report(o, from->line, from->column, k, problem) != 0)
                        return k;
        }
        r->volume.source = from->source;
        r->volume.full_copy = clone;
        r->volume.from = strdup((const char *) from->value);
        return r->volume.from ? 0 : -ENOMEM;
}

static int native_volume(const xml_origin *o, xmlNode *root, const char *pool, const char *name, const from_decl *from,
                         schema_resource *r) {
        unsigned errors = o->file->n_errors;
        char *problem = NULL;

        r->volume.pool = strdup(pool);
        r->volume.volume = strdup(name);
        if (!r->volume.pool || !r->volume.volume)
                return -ENOMEM;
        if (read_capacity(o, root, r) == -ENOMEM || read_format(o, root, r) == -ENOMEM ||
            read_source(o, from, r) == -ENOMEM)
                return -ENOMEM;
        if (!r->volume.capacity && from->source == SCHEMA_SOURCE_NONE)
                xml_origin_error(o, xml_line(root), xml_column(root),
                                 "a <volume> needs <capacity unit='GiB'>N</capacity>, or a <vf:from/> in its "
                                 "<vf:policy> to take its content and size from");
        int k = schema_volume_format_problem(r, &problem);
        if (report(o, xml_line(root), xml_column(root), k, problem) == -ENOMEM)
                return -ENOMEM;
        return o->file->n_errors == errors ? 0 : -EINVAL;
}

/* ---- any native file ------------------------------------------------------- */

static vf_kind kind_of_root(xmlNode *root) {
        for (vf_kind k = 0; k < _VF_KIND_MAX; k++)
                if (k != VF_KIND_HOSTDEV && k != VF_KIND_CLOUDINIT && xml_is_element(root, vf_kind_to_string(k)))
                        return k;
        return _VF_KIND_INVALID;
}

/* The resource's name: a volume's is "POOL/NAME", its pool from vf:policy. */
static int resource_name(const xml_origin *o, xmlNode *root, vf_kind kind, const policy *p, const char *name,
                         char **ret) {
        if (kind != VF_KIND_VOLUME) {
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }
        if (!p->pool) {
                xml_origin_error(o, xml_line(root), xml_column(root),
                                 "a <volume> names its pool: add <vf:policy xmlns:vf='" SCHEMA_POLICY_NS
                                 "' pool='POOL'/> as its first child");
                return -EINVAL;
        }
        *ret = vf_printf("%s/%s", (const char *) p->pool, name);
        return *ret ? 0 : -ENOMEM;
}

int schema_native_parse(schema_file *f, const char *data, size_t len) {
        const xml_origin origin = { .file = f };
        _cleanup_(policy_done) policy p = { .state = SCHEMA_DOMAIN_RUNNING, .restart = SCHEMA_RESTART_NEVER };
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        _cleanup_(xml_freep) xmlChar *name = NULL;
        _cleanup_free_ char *resource = NULL;
        unsigned line;

        int k = xml_read(&origin, data, len, NULL, &doc);
        if (k < 0)
                return k;
        xmlNode *root = xmlDocGetRootElement(doc);
        vf_kind kind = kind_of_root(root);
        bool storage = kind == VF_KIND_POOL || kind == VF_KIND_VOLUME;
        /* Like the YAML kind, a pool starts itself unless told otherwise. */
        p.autostart = kind == VF_KIND_POOL;
        int stripped = strip_virtform(&origin, storage ? root : xml_child(root, "metadata"), !storage, kind, &p);
        if (stripped == -ENOMEM)
                return stripped;
        k = schema_validate(&origin, kind, doc);
        if (k < 0 || stripped < 0)
                return k < 0 ? k : stripped;
        k = read_name(&origin, root, &name, &line);
        if (k >= 0)
                k = resource_name(&origin, root, kind, &p, (const char *) name, &resource);
        if (k < 0)
                return k;

        _cleanup_(schema_resource_unrefp) schema_resource *r = schema_resource_new(f, kind, resource, line, 1);
        if (!r)
                return -ENOMEM;
        apply_policy(r, &p);
        if (kind == VF_KIND_POOL)
                k = native_pool(&origin, root, r);
        else if (kind == VF_KIND_VOLUME)
                k = native_volume(&origin, root, (const char *) p.pool, (const char *) name, &p.from, r);
        if (k < 0)
                return k;
        k = schema_resource_take_xml(r, doc);
        if (k >= 0 && kind == VF_KIND_VOLUME)
                k = schema_volume_depends(r);
        return k < 0 ? k : schema_file_add(f, TAKE_PTR(r));
}
