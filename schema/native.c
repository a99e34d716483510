/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Native libvirt XML files: a <domain> or <network> as `virsh dumpxml` writes
 * it. virtform's policy travels in <metadata><vf:policy .../></metadata>;
 * both it and the reconciler's ownership marker are removed from the stored
 * XML, so a dump of a managed object reads back as the same desired state.
 */
#include <libxml/tree.h>
#include <string.h>

#include "schema/schema-internal.h"

typedef struct policy {
        int state, restart, drift;
        bool autostart, adopt;
} policy;

typedef enum policy_attr { POLICY_STATE, POLICY_AUTOSTART, POLICY_RESTART, POLICY_ADOPT, POLICY_DRIFT } policy_attr;

static const char *const domain_policy_attrs[] = { "state", "autostart", "restart", "adopt", "drift", NULL };
static const char *const network_policy_attrs[] = { "autostart", "adopt", "drift", NULL };

static int read_policy_attr(const xml_origin *o, xmlAttr *a, policy_attr which, const char *value, policy *p) {
        static const char *const *const values[] = {
                [POLICY_STATE] = schema_state_names,
                [POLICY_AUTOSTART] = schema_yes_no_names,
                [POLICY_RESTART] = schema_restart_names,
                [POLICY_ADOPT] = schema_yes_no_names,
                [POLICY_DRIFT] = schema_drift_names,
        };
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
        }
        return 0;
}

static int read_policy(const xml_origin *o, xmlNode *node, vf_kind kind, policy *p) {
        const char *const *allowed = kind == VF_KIND_DOMAIN ? domain_policy_attrs : network_policy_attrs;
        int ret = 0;

        for (xmlAttr *a = node->properties; a; a = a->next) {
                int i = a->ns ? -EINVAL : schema_lookup(allowed, (const char *) a->name);
                if (i < 0) {
                        _cleanup_free_ char *list = schema_join(allowed);
                        xml_origin_error(o, xml_line(node), xml_column(node), "unknown vf:policy attribute \"%s\" for a %s; allowed: %s",
                                         (const char *) a->name, vf_kind_to_string(kind), list ? list : "");
                        ret = -EINVAL;
                        continue;
                }
                _cleanup_(xml_freep) xmlChar *value = xmlNodeGetContent((xmlNode *) a);
                /* domain_policy_attrs holds every attribute, in policy_attr order. */
                policy_attr which = schema_lookup(domain_policy_attrs, (const char *) a->name);
                if (read_policy_attr(o, a, which, value ? (const char *) value : "", p) < 0)
                        ret = -EINVAL;
        }
        return ret;
}

/* Removes vf:policy (reading it into p) and the ownership marker; drops <metadata> if that empties it. */
static int strip_metadata(const xml_origin *o, xmlNode *root, vf_kind kind, policy *p) {
        xmlNode *metadata = xml_child(root, "metadata");
        bool seen_policy = false;
        int ret = 0;

        for (xmlNode *n = metadata ? metadata->children : NULL, *next; n; n = next) {
                next = n->next;
                if (xml_in_namespace(n, SCHEMA_POLICY_NS)) {
                        if (!xmlStrEqual(n->name, BAD_CAST "policy") || seen_policy) {
                                xml_origin_error(o, xml_line(n), xml_column(n),
                                                 "only one <vf:policy/> element is allowed in the virtform policy "
                                                 "namespace; remove <%s>",
                                                 (const char *) n->name);
                                ret = -EINVAL;
                        } else if (read_policy(o, n, kind, p) < 0)
                                ret = -EINVAL;
                        seen_policy = true;
                        xml_unlink_free(n);
                } else if (xml_in_namespace(n, SCHEMA_OWNER_NS))
                        xml_unlink_free(n);
        }
        if (metadata && !xmlFirstElementChild(metadata))
                xml_unlink_free(metadata);
        return ret;
}

static void apply_policy(schema_resource *r, const policy *p) {
        r->adopt = p->adopt;
        r->drift = p->drift;
        if (r->kind == VF_KIND_NETWORK) {
                r->network.autostart = p->autostart;
                return;
        }
        r->domain.state = p->state;
        r->domain.autostart = p->autostart;
        r->domain.restart = p->restart;
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

int schema_native_parse(schema_file *f, const char *data, size_t len) {
        const xml_origin origin = { .file = f };
        policy p = { .state = SCHEMA_DOMAIN_RUNNING, .restart = SCHEMA_RESTART_NEVER };
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        _cleanup_(xml_freep) xmlChar *name = NULL;
        unsigned line;

        int k = xml_read(&origin, data, len, NULL, &doc);
        if (k < 0)
                return k;
        xmlNode *root = xmlDocGetRootElement(doc);
        vf_kind kind = xml_is_element(root, "domain") ? VF_KIND_DOMAIN : VF_KIND_NETWORK;
        int stripped = strip_metadata(&origin, root, kind, &p);
        k = schema_validate(&origin, kind, doc);
        if (k < 0 || stripped < 0)
                return k < 0 ? k : stripped;
        k = read_name(&origin, root, &name, &line);
        if (k < 0)
                return k;

        _cleanup_(schema_resource_freep) schema_resource *r =
                schema_resource_new(f, kind, (const char *) name, line, 1);
        if (!r)
                return -ENOMEM;
        apply_policy(r, &p);
        k = schema_resource_take_xml(r, doc);
        return k < 0 ? k : schema_file_add(f, TAKE_PTR(r));
}
