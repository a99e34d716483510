/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* spec.xml: raw libvirt XML as the base document that typed fields are rendered into. */
#include <libxml/tree.h>
#include <string.h>

#include "schema/yaml-node.h"

const ynode *spec_xml_node(schema_file *f, const ynode *spec) {
        const char *xml;
        return yget_string(f, spec, "xml", &xml) > 0 ? ymap_get(spec, "xml") : NULL;
}

static xmlDoc *new_document(const char *root) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xmlNewDoc(BAD_CAST "1.0");
        if (!doc)
                return NULL;
        xmlNode *node = xmlNewDocNode(doc, NULL, BAD_CAST root, NULL);
        if (!node)
                return NULL;
        xmlDocSetRootElement(doc, node);
        return TAKE_PTR(doc);
}

int spec_xml_base(schema_file *f, const ynode *spec, const ynode *xml, const char *root, xml_origin *ret_origin,
                  xmlDoc **ret) {
        const ynode *at = xml ? xml : spec;

        *ret_origin = (xml_origin) { .file = f, .line = at->line, .column = at->column,
                                     .indent = xml ? xml->literal_indent : 0, .rendered = !xml };
        if (!xml) {
                *ret = new_document(root);
                return *ret ? 0 : -ENOMEM;
        }
        return xml_read(ret_origin, xml->scalar, strlen(xml->scalar), root, ret);
}

int spec_xml_finish(const xml_origin *o, schema_resource *r, xmlDoc *doc) {
        int k = schema_validate(o, r->kind, doc);
        return k < 0 ? k : schema_resource_take_xml(r, doc);
}
