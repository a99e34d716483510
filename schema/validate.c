/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RelaxNG validation of <domain> and <network> documents against rng/, embedded at build time. */
#include <libxml/relaxng.h>
#include <string.h>

#include "schema/schema-internal.h"

/* Compiled once per set: compiling costs far more than validating. */
struct schema_validators {
        xmlRelaxNG *rng[_VF_KIND_MAX];
};

DEFINE_POINTER_CLEANUP(xmlRelaxNGParserCtxt, xmlRelaxNGFreeParserCtxt);
DEFINE_POINTER_CLEANUP(xmlRelaxNGValidCtxt, xmlRelaxNGFreeValidCtxt);

void schema_validators_free(struct schema_validators *v) {
        if (!v)
                return;
        for (size_t i = 0; i < ELEMENTSOF(v->rng); i++)
                if (v->rng[i])
                        xmlRelaxNGFree(v->rng[i]);
        free(v);
}

/* The embedded schemas are ours and known to compile; their errors must not reach stderr. */
static void ignore_error(void *userdata, xmlError *e) {
}

static xmlRelaxNG *compile(const char *text) {
        _cleanup_(xmlRelaxNGFreeParserCtxtp) xmlRelaxNGParserCtxt *ctxt =
                xmlRelaxNGNewMemParserCtxt(text, (int) strlen(text));
        if (!ctxt)
                return NULL;
        xmlRelaxNGSetParserStructuredErrors(ctxt, ignore_error, NULL);
        return xmlRelaxNGParse(ctxt);
}

/* NULL means out of memory: the embedded schemas compile, as the tests show. */
static xmlRelaxNG *validator_for(schema_set *set, vf_kind kind) {
        if (!set->validators && !(set->validators = calloc(1, sizeof(struct schema_validators))))
                return NULL;
        xmlRelaxNG **rng = &set->validators->rng[kind];
        if (!*rng)
                *rng = compile(kind == VF_KIND_DOMAIN ? schema_rng_domain : schema_rng_network);
        return *rng;
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

int schema_validate(const xml_origin *o, vf_kind kind, xmlDoc *doc) {
        const char *root = vf_kind_to_string(kind);
        xmlRelaxNG *rng = validator_for(o->file->set, kind);
        if (!rng)
                return -ENOMEM;

        _cleanup_free_ char *prefix = vf_printf("invalid <%s> (checked against virtform's %s.rng): ", root, root);
        _cleanup_(xmlRelaxNGFreeValidCtxtp) xmlRelaxNGValidCtxt *ctxt = xmlRelaxNGNewValidCtxt(rng);
        if (!prefix || !ctxt)
                return -ENOMEM;
        validation v = { .origin = o, .prefix = prefix, .root = xmlDocGetRootElement(doc) };
        xmlRelaxNGSetValidStructuredErrors(ctxt, on_invalid, &v);
        int r = xmlRelaxNGValidateDoc(ctxt, doc);
        if (v.has_unplaced)
                report_unplaced(&v, v.root);
        if (r == 0)
                return kind == VF_KIND_DOMAIN ? check_domain_memory(o, doc) : 0;
        if (!v.reported)
                xml_origin_error(o, 0, 0, "%sthe document does not validate", prefix);
        return -EINVAL;
}
