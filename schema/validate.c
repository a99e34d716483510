/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RelaxNG validation of <domain>, <network>, <pool> and <volume> documents
 * against rng/, embedded at build time, and on request against libvirt's own
 * schemas too.
 */
#include <libxml/relaxng.h>
#include <string.h>
#include <unistd.h>

#include "schema/schema-internal.h"

/* Compiled once per set: compiling costs far more than validating. */
struct schema_validators {
        xmlRelaxNG *rng[_VF_KIND_MAX];
        /* From schema_load_options.libvirt_schemas; NULL with why in libvirt_error when unusable. */
        xmlRelaxNG *libvirt[_VF_KIND_MAX];
        char *libvirt_error[_VF_KIND_MAX];
        bool libvirt_tried[_VF_KIND_MAX];
};

DEFINE_POINTER_CLEANUP(xmlRelaxNGParserCtxt, xmlRelaxNGFreeParserCtxt);
DEFINE_POINTER_CLEANUP(xmlRelaxNGValidCtxt, xmlRelaxNGFreeValidCtxt);

void schema_validators_free(struct schema_validators *v) {
        if (!v)
                return;
        for (size_t i = 0; i < ELEMENTSOF(v->rng); i++) {
                if (v->rng[i])
                        xmlRelaxNGFree(v->rng[i]);
                if (v->libvirt[i])
                        xmlRelaxNGFree(v->libvirt[i]);
                free(v->libvirt_error[i]);
        }
        free(v);
}

/* Keeps the first error of a schema that does not compile, for the report. */
static void keep_first_error(void *userdata, xmlError *e) {
        char **first = userdata;
        if (!*first && e->message)
                *first = vf_printf("%.*s", (int) strcspn(e->message, "\n"), e->message);
}

/* 0 and *ret; 0 and *ret_error, why the schema called name does not compile; or -ENOMEM. */
static int compile(xmlRelaxNGParserCtxt *ctxt, const char *name, xmlRelaxNG **ret, char **ret_error) {
        _cleanup_free_ char *first = NULL;
        if (!ctxt)
                return -ENOMEM;
        xmlRelaxNGSetParserStructuredErrors(ctxt, keep_first_error, &first);
        *ret = xmlRelaxNGParse(ctxt);
        if (!*ret)
                *ret_error = vf_printf("%s does not compile: %s", name, first ? first : "unknown error");
        return *ret || *ret_error ? 0 : -ENOMEM;
}

static struct schema_validators *validators_of(schema_set *set) {
        if (!set->validators)
                set->validators = calloc(1, sizeof(struct schema_validators));
        return set->validators;
}

/* The kinds that are libvirt XML: virtform's schema, and the file libvirt installs its own in. */
static const struct {
        const char *embedded;
        const char *libvirt;
} schemas[_VF_KIND_MAX] = {
        [VF_KIND_NETWORK] = { schema_rng_network, "network.rng" },
        [VF_KIND_DOMAIN] = { schema_rng_domain, "domain.rng" },
        [VF_KIND_POOL] = { schema_rng_pool, "storagepool.rng" },
        [VF_KIND_VOLUME] = { schema_rng_volume, "storagevol.rng" },
};

/*
 * virtform's own schema for the kind. The tests show each compiles; one that
 * does not is libxml2 failing (2.9.14 did, when two threads first looked up
 * its datatypes at once: readahead.c), and the file is refused with
 * libxml2's reason rather than "out of memory". A failure is not kept: the
 * next file compiles again.
 */
static int validator_for(const xml_origin *o, vf_kind kind, xmlDoc *doc, xmlRelaxNG **ret) {
        struct schema_validators *v = validators_of(o->file->set);
        if (!v)
                return -ENOMEM;
        xmlRelaxNG **rng = &v->rng[kind];
        if (!*rng) {
                const char *text = schemas[kind].embedded;
                _cleanup_(xmlRelaxNGFreeParserCtxtp) xmlRelaxNGParserCtxt *ctxt =
                        xmlRelaxNGNewMemParserCtxt(text, (int) strlen(text));
                _cleanup_free_ char *name = vf_printf("virtform's built-in %s.rng", vf_kind_to_string(kind));
                _cleanup_free_ char *error = NULL;
                int r = name ? compile(ctxt, name, rng, &error) : -ENOMEM;
                if (r < 0)
                        return r;
                if (error) {
                        xmlNode *root = xmlDocGetRootElement(doc);
                        xml_origin_error(o, xml_line(root), xml_column(root),
                                         "cannot check the file: %s; nothing of it is applied. The fault is "
                                         "virtform's or libxml2's (%s), not the file's: please report it",
                                         error, xmlParserVersion);
                        return -EINVAL;
                }
        }
        *ret = *rng;
        return 0;
}

static int compile_file(const char *path, xmlRelaxNG **ret, char **ret_error) {
        _cleanup_(xmlRelaxNGFreeParserCtxtp) xmlRelaxNGParserCtxt *ctxt = xmlRelaxNGNewParserCtxt(path);
        return compile(ctxt, path, ret, ret_error);
}

/*
 * libvirt's schema for the kind: 0 and *ret NULL when none is asked for or
 * the directory has none (libvirt is not installed); 0 and *ret_error when it
 * is there but unusable.
 */
static int libvirt_validator_for(schema_set *set, vf_kind kind, xmlRelaxNG **ret, const char **ret_error) {
        const char *dir = set->options.libvirt_schemas;
        struct schema_validators *v = validators_of(set);

        *ret = NULL;
        *ret_error = NULL;
        if (!dir)
                return 0;
        if (!v)
                return -ENOMEM;
        if (!v->libvirt_tried[kind]) {
                _cleanup_free_ char *path = vf_printf("%s/%s", dir, schemas[kind].libvirt);
                if (!path)
                        return -ENOMEM;
                int r = access(path, R_OK) < 0 && errno == ENOENT ? 0
                                                                   : compile_file(path, &v->libvirt[kind], &v->libvirt_error[kind]);
                if (r < 0)
                        return r;
                v->libvirt_tried[kind] = true;
        }
        *ret = v->libvirt[kind];
        *ret_error = v->libvirt_error[kind];
        return 0;
}

typedef struct validation {
        const xml_origin *origin;
        const char *prefix;
        xmlNode *root;
        /* A message libxml2 gave no place, as its interleave errors: it gets the next one's. */
        xmlError unplaced;
        bool has_unplaced;
        bool reported;
} validation;

static void report_unplaced(validation *v, xmlNode *at) {
        v->unplaced.node = at;
        xml_report_error(v->origin, &v->unplaced, v->prefix);
        xmlResetError(&v->unplaced);
        v->has_unplaced = false;
}

static void on_invalid(void *userdata, xmlError *e) {
        validation *v = userdata;
        xmlNode *node = e->node;
        bool placed = node && node->type == XML_ELEMENT_NODE;

        v->reported = true;
        if (v->has_unplaced)
                report_unplaced(v, placed ? node : v->root);
        if (placed)
                xml_report_error(v->origin, e, v->prefix);
        else if (xmlCopyError(e, &v->unplaced) == 0)
                v->has_unplaced = true;
        else { /* out of memory: said without a place rather than not at all */
                xmlResetError(&v->unplaced);
                xml_report_error(v->origin, e, v->prefix);
        }
}

/* libvirt takes the memory from <memory>, or when that is absent, adds up the NUMA cells' memory. */
static bool domain_has_memory(xmlNode *root) {
        if (xml_child(root, "memory"))
                return true;
        xmlNode *cpu = xml_child(root, "cpu");
        xmlNode *numa = cpu ? xml_child(cpu, "numa") : NULL;
        for (xmlNode *n = numa ? numa->children : NULL; n; n = n->next)
                if (xml_is_element(n, "cell") && xmlHasProp(n, BAD_CAST "memory"))
                        return true;
        return false;
}

static int check_domain_memory(const xml_origin *o, xmlDoc *doc) {
        xmlNode *root = xmlDocGetRootElement(doc);
        if (domain_has_memory(root))
                return 0;
        xml_origin_error(o, xml_line(root), xml_column(root),
                         "<domain> has no memory; add <memory unit='MiB'>N</memory>, or give each NUMA cell "
                         "its memory in <cpu><numa><cell memory='N' .../>");
        return -EINVAL;
}

/*
 * The units of <memory>, <currentMemory>, <capacity> and <allocation>. The
 * compact schemas take any text there: libxml2 compiles a RelaxNG pattern
 * again for every value it checks, which cost a domain's validation as much
 * as the rest of it together.
 */
static int check_units(const xml_origin *o, vf_kind kind, xmlDoc *doc) {
        static const char *const domain_amounts[] = { "memory", "currentMemory", NULL };
        static const char *const volume_amounts[] = { "capacity", "allocation", NULL };
        const char *const *amounts = kind == VF_KIND_DOMAIN ? domain_amounts
                                     : kind == VF_KIND_VOLUME ? volume_amounts
                                                              : NULL;
        xmlNode *root = xmlDocGetRootElement(doc);
        int ret = 0;

        for (xmlNode *n = root->children; amounts && n; n = n->next) {
                bool amount = n->type == XML_ELEMENT_NODE && !n->ns &&
                              vf_strv_contains((char *const *) amounts, (const char *) n->name);
                if (!amount)
                        continue;
                _cleanup_(xml_freep) xmlChar *unit = xmlGetNoNsProp(n, BAD_CAST "unit");
                if (!unit || schema_unit_is_valid((const char *) unit))
                        continue;
                xml_origin_error(o, xml_line(n), xml_column(n),
                                 "<%s unit='%s'>: not a unit libvirt knows; use b, KiB, MiB, GiB or TiB "
                                 "(k, M, G, T, KB, MB, GB and TB, in any case, also do)",
                                 (const char *) n->name, (const char *) unit);
                ret = -EINVAL;
        }
        return ret;
}

/* An <ip> without family='ipv6' holds IPv4 addresses, as libvirt reads it. */
static int check_ip(const xml_origin *o, xmlNode *ip) {
        static const char *const attributes[] = { "address", "netmask" };
        _cleanup_(xml_freep) xmlChar *family = xmlGetNoNsProp(ip, BAD_CAST "family");
        int ret = 0;

        if (family && xmlStrEqual(family, BAD_CAST "ipv6"))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(attributes); i++) {
                _cleanup_(xml_freep) xmlChar *value = xmlGetNoNsProp(ip, BAD_CAST attributes[i]);
                uint32_t addr;
                if (!value || schema_parse_ipv4((const char *) value, &addr) == 0)
                        continue;
                xml_origin_error(o, xml_line(ip), xml_column(ip),
                                 "<ip %s='%s'>: not an IPv4 address; write A.B.C.D, e.g. 192.168.110.1 "
                                 "(an IPv6 address needs family='ipv6')",
                                 attributes[i], (const char *) value);
                ret = -EINVAL;
        }
        return ret;
}

/* A dir pool's <target><path>: libvirt takes a relative one and makes it relative to its own working directory. */
static int check_pool_path(const xml_origin *o, xmlNode *target) {
        int ret = 0;

        for (xmlNode *n = target ? target->children : NULL; n; n = n->next) {
                if (!xml_is_element(n, "path"))
                        continue;
                _cleanup_(xml_freep) xmlChar *path = xmlNodeGetContent(n);
                if (path && path[0] == '/')
                        continue;
                xml_origin_error(o, xml_line(n), xml_column(n),
                                 "<path>%s</path>: not an absolute path; give the pool's directory from the root, "
                                 "e.g. /var/lib/libvirt/images",
                                 path ? (const char *) path : "");
                ret = -EINVAL;
        }
        return ret;
}

/*
 * What a pattern in the compact schemas would check, checked here instead:
 * libxml2 compiles a RelaxNG pattern again for every value it checks, and
 * its error names the element, not what is wrong with the value.
 */
static int check_values(const xml_origin *o, vf_kind kind, xmlDoc *doc) {
        xmlNode *root = xmlDocGetRootElement(doc);
        int ret = check_units(o, kind, doc);

        for (xmlNode *n = root->children; kind == VF_KIND_NETWORK && n; n = n->next)
                if (xml_is_element(n, "ip") && check_ip(o, n) < 0)
                        ret = -EINVAL;
        if (kind == VF_KIND_POOL && check_pool_path(o, xml_child(root, "target")) < 0)
                ret = -EINVAL;
        return ret;
}

/* The <source> elements of a domain's disks that carry virtform's cloud-init marker (spec-domain.c), one per call. */
static xmlNode *next_seed_source(xmlNode *root, xmlNode *after) {
        xmlNode *devices = xml_child(root, "devices");
        xmlNode *n = after ? after->parent->next : devices ? devices->children : NULL;
        for (; n; n = n->next) {
                xmlNode *source = xml_is_element(n, "disk") ? xml_child(n, "source") : NULL;
                if (source && xmlHasNsProp(source, BAD_CAST "cloudinit", BAD_CAST SCHEMA_POLICY_NS))
                        return source;
        }
        return NULL;
}

static int check_domain_seeds(const xml_origin *o, xmlDoc *doc) {
        xmlNode *root = xmlDocGetRootElement(doc);
        int ret = 0;

        for (xmlNode *source = next_seed_source(root, NULL); source; source = next_seed_source(root, source)) {
                _cleanup_(xml_freep) xmlChar *name =
                        xmlGetNsProp(source, BAD_CAST "cloudinit", BAD_CAST SCHEMA_POLICY_NS);
                if (name && schema_name_is_valid((const char *) name))
                        continue;
                xml_origin_error(o, xml_line(source), xml_column(source),
                                 "invalid vf:cloudinit \"%s\": " SCHEMA_NAME_RULE, name ? (const char *) name : "");
                ret = -EINVAL;
        }
        return ret;
}

static int check(const xml_origin *o, xmlRelaxNG *rng, xmlDoc *doc, const char *prefix) {
        _cleanup_(xmlRelaxNGFreeValidCtxtp) xmlRelaxNGValidCtxt *ctxt = xmlRelaxNGNewValidCtxt(rng);
        if (!ctxt)
                return -ENOMEM;
        validation v = { .origin = o, .prefix = prefix, .root = xmlDocGetRootElement(doc) };
        xmlRelaxNGSetValidStructuredErrors(ctxt, on_invalid, &v);
        int r = xmlRelaxNGValidateDoc(ctxt, doc);
        if (v.has_unplaced)
                report_unplaced(&v, v.root);
        if (r == 0)
                return 0;
        if (!v.reported)
                xml_origin_error(o, 0, 0, "%sthe document does not validate", prefix);
        return -EINVAL;
}

/* Parsed elements know their column (xml_set_position()); a copy has to be told. */
static void copy_positions(const xmlNode *from, xmlNode *to) {
        for (; from && to; from = from->next, to = to->next)
                if (from->type == XML_ELEMENT_NODE) {
                        to->_private = from->_private;
                        copy_positions(from->children, to->children);
                }
}

/*
 * A seed's disk as the domain reconciler defines it: with the seed's pool, a
 * target and no marker. On a copy, so the stored document keeps them as they are.
 */
static int resolve_seeds_for_libvirt(xmlDoc *doc, xmlDoc **ret) {
        xmlNode *root = xmlDocGetRootElement(doc);

        *ret = NULL;
        if (!next_seed_source(root, NULL))
                return 0;
        _cleanup_(xmlFreeDocp) xmlDoc *copy = xmlCopyDoc(doc, 1);
        if (!copy)
                return -ENOMEM;
        root = xmlDocGetRootElement(copy);
        copy_positions(xmlDocGetRootElement(doc), root);
        for (xmlNode *source = next_seed_source(root, NULL); source; source = next_seed_source(root, source)) {
                xmlRemoveProp(xmlHasNsProp(source, BAD_CAST "cloudinit", BAD_CAST SCHEMA_POLICY_NS));
                if (!xmlSetProp(source, BAD_CAST "pool", BAD_CAST "seeds") ||
                    (!xml_child(source->parent, "target") &&
                     !xml_element(source->parent, "target", "dev", "sda", "bus", "sata", NULL)))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(copy);
        return 0;
}

static int check_libvirt(const xml_origin *o, vf_kind kind, xmlDoc *doc) {
        const char *root_name = vf_kind_to_string(kind), *error;
        xmlRelaxNG *rng;

        int k = libvirt_validator_for(o->file->set, kind, &rng, &error);
        if (k < 0 || (!rng && !error))
                return k;
        if (!rng) {
                schema_file_warning(o->file, 0, 0, "libvirt's schema is not used: %s; checked against virtform's only",
                                    error);
                return 0;
        }
        _cleanup_free_ char *prefix = vf_printf("invalid <%s> (checked against libvirt's %s/%s): ", root_name,
                                                o->file->set->options.libvirt_schemas, schemas[kind].libvirt);
        if (!prefix)
                return -ENOMEM;
        _cleanup_(xmlFreeDocp) xmlDoc *resolved = NULL;
        if (kind == VF_KIND_DOMAIN && resolve_seeds_for_libvirt(doc, &resolved) < 0)
                return -ENOMEM;
        if (resolved)
                doc = resolved;
        /* virtform gives a domain without a type the hypervisor's only when it defines it; libvirt's schema wants one. */
        xmlNode *root = xmlDocGetRootElement(doc);
        bool typeless = kind == VF_KIND_DOMAIN && !xmlHasProp(root, BAD_CAST "type");
        if (typeless && !xmlSetProp(root, BAD_CAST "type", BAD_CAST "kvm"))
                return -ENOMEM;
        k = check(o, rng, doc, prefix);
        if (typeless)
                xmlUnsetProp(root, BAD_CAST "type");
        return k;
}

/* Against virtform's compact schema: what a user wrote, not what virtform rendered from typed fields. */
static int check_compact(const xml_origin *o, vf_kind kind, xmlDoc *doc) {
        const char *root = vf_kind_to_string(kind);

        if (o->rendered)
                return 0;
        xmlRelaxNG *rng;
        int k = validator_for(o, kind, doc, &rng);
        if (k < 0)
                return k;
        _cleanup_free_ char *prefix = vf_printf("invalid <%s> (checked against virtform's %s.rng): ", root, root);
        if (!prefix)
                return -ENOMEM;
        return check(o, rng, doc, prefix);
}

int schema_validate(const xml_origin *o, vf_kind kind, xmlDoc *doc) {
        int k = check_compact(o, kind, doc);
        if (k == 0 && !o->rendered)
                k = check_values(o, kind, doc);
        if (k == 0 && kind == VF_KIND_DOMAIN)
                k = check_domain_memory(o, doc);
        if (k == 0 && kind == VF_KIND_DOMAIN)
                k = check_domain_seeds(o, doc);
        return k < 0 ? k : check_libvirt(o, kind, doc);
}
