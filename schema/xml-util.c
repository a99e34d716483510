/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small libxml2 tree helpers used when rendering and editing documents. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "schema/schema-internal.h"

bool xml_is_element(const xmlNode *node, const char *name) {
        return node->type == XML_ELEMENT_NODE && !node->ns && xmlStrEqual(node->name, BAD_CAST name);
}

bool xml_in_namespace(const xmlNode *node, const char *href) {
        return node->type == XML_ELEMENT_NODE && node->ns && xmlStrEqual(node->ns->href, BAD_CAST href);
}

unsigned xml_line(const xmlNode *node) {
        long line = xmlGetLineNo(node);
        return line > 0 ? (unsigned) line : 0;
}

/*
 * An element parsed from text knows the column of its '<' (xml_read()). It
 * lives in _private, the one field libxml2 leaves to applications (RelaxNG
 * validation writes psvi).
 */
void xml_set_position(xmlNode *node, unsigned line, unsigned column) {
        if (line < USHRT_MAX)
                node->line = (unsigned short) line;
        node->_private = (void *) (uintptr_t) column;
}

unsigned xml_column(const xmlNode *node) {
        unsigned column = node->type == XML_ELEMENT_NODE ? (unsigned) (uintptr_t) node->_private : 0;
        return column > 0 ? column : 1;
}

xmlNode *xml_child(xmlNode *parent, const char *name) {
        for (xmlNode *n = parent->children; n; n = n->next)
                if (xml_is_element(n, name))
                        return n;
        return NULL;
}

void xml_unlink_free(xmlNode *node) {
        xmlUnlinkNode(node);
        xmlFreeNode(node);
}

static int set_props(xmlNode *node, va_list ap) {
        for (const char *attr; (attr = va_arg(ap, const char *));) {
                const char *value = va_arg(ap, const char *);
                if (!xmlSetProp(node, BAD_CAST attr, BAD_CAST value))
                        return -ENOMEM;
        }
        return 0;
}

xmlNode *xml_element(xmlNode *parent, const char *name, ...) {
        va_list ap;

        xmlNode *node = xmlNewChild(parent, NULL, BAD_CAST name, NULL);
        if (!node)
                return NULL;
        va_start(ap, name);
        int r = set_props(node, ap);
        va_end(ap);
        return r < 0 ? NULL : node;
}

void xml_remove_children(xmlNode *parent, const char *name, const xmlNode *keep) {
        for (xmlNode *n = parent->children, *next; n; n = next) {
                next = n->next;
                if (n != keep && xml_is_element(n, name))
                        xml_unlink_free(n);
        }
}

/* Keeps the position of the first replaced element, so edited base documents stay readable. */
xmlNode *xml_replace(xmlNode *parent, const char *name, ...) {
        va_list ap;

        xmlNode *node = xmlNewDocNode(parent->doc, NULL, BAD_CAST name, NULL);
        if (!node)
                return NULL;
        xmlNode *first = xml_child(parent, name);
        if (first)
                xmlAddPrevSibling(first, node);
        else
                xmlAddChild(parent, node);
        xml_remove_children(parent, name, node);
        va_start(ap, name);
        int r = set_props(node, ap);
        va_end(ap);
        return r < 0 ? NULL : node;
}

xmlNode *xml_child_or_new(xmlNode *parent, const char *name) {
        xmlNode *node = xml_child(parent, name);
        return node ? node : xmlNewChild(parent, NULL, BAD_CAST name, NULL);
}

/* Raw text: unlike xmlNodeSetContent() nothing in it is read as an entity reference. */
int xml_set_text(xmlNode *node, const char *text) {
        xmlNode *t = xmlNewDocText(node->doc, BAD_CAST text);
        if (!t)
                return -ENOMEM;
        xmlNodeSetContent(node, NULL);
        xmlAddChild(node, t);
        return 0;
}
