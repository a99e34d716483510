/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Parsing untrusted XML. No DTD (so no entities, internal or external), no
 * network, no XInclude, libxml2's default size limits under the file size
 * cap, and a depth cap of our own. Errors come through the parser context,
 * never through global handlers.
 */
#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <stdint.h>
#include <string.h>

#include "schema/schema-internal.h"

DEFINE_POINTER_CLEANUP(xmlParserCtxt, xmlFreeParserCtxt);

typedef struct xml_reader {
        const xml_origin *origin;
        bool doctype;
        unsigned doctype_line;
        const char *data;
        size_t len;
        /* Where the last element started: data[pos] is at line, column (1-based, in characters). */
        size_t pos;
        unsigned line, column;
        bool seen;
} xml_reader;

_printf_(4, 0) static void xml_origin_errorv(const xml_origin *o, unsigned line, unsigned column, const char *fmt,
                                             va_list ap) {
        if (o->line == 0) {
                schema_file_errorv(o->file, line, column, fmt, ap);
                return;
        }
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0) {
                o->file->oom = true;
                return;
        }
        if (line > 0 && o->indent > 0)
                schema_file_error(o->file, o->line + line, o->indent + (column > 0 ? column : 1), "in spec.xml: %s",
                                  msg);
        else if (line > 0)
                schema_file_error(o->file, o->line, o->column, "in spec.xml, line %u: %s", line, msg);
        else
                schema_file_error(o->file, o->line, o->column, "in spec.xml: %s", msg);
}

void xml_origin_error(const xml_origin *o, unsigned line, unsigned column, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        xml_origin_errorv(o, line, column, fmt, ap);
        va_end(ap);
}

/* libxml2 messages end in a newline; diagnostics are one line. */
void xml_report_error(const xml_origin *o, const xmlError *e, const char *prefix) {
        const xmlNode *node = e->node;
        const char *msg = e->message ? e->message : "unknown error";
        int len = (int) strcspn(msg, "\n");
        bool at_element = node && node->type == XML_ELEMENT_NODE;
        unsigned line = at_element ? xml_line(node) : e->line > 0 ? (unsigned) e->line : 0;
        /* Only the parser puts a column into int2. */
        unsigned column = line == 0                                 ? 0
                          : at_element                              ? xml_column(node)
                          : e->domain == XML_FROM_PARSER && e->int2 > 0 ? (unsigned) e->int2
                                                                    : 1;

        xml_origin_error(o, line, column, "%s%.*s", prefix, len, msg);
}

static void on_parse_error(void *userdata, xmlError *e) {
        xmlParserCtxt *ctxt = userdata;
        xml_reader *reader = ctxt->_private;

        if (e->level >= XML_ERR_ERROR && !reader->doctype)
                xml_report_error(reader->origin, e, "XML: ");
}

static void reader_advance(xml_reader *reader, size_t to) {
        for (; reader->pos < to; reader->pos++) {
                unsigned char c = (unsigned char) reader->data[reader->pos];
                if (c == '\n') {
                        reader->line++;
                        reader->column = 1;
                } else if ((c & 0xc0) != 0x80) /* UTF-8 continuation bytes share their character's column */
                        reader->column++;
        }
}

/*
 * libxml2 keeps an element's line, taken where its start tag ends, and no
 * column. Diagnostics point at the '<' instead: the parser stands at the
 * tag's end when it calls this, and an attribute value cannot hold a '<', so
 * the last '<' before it starts the tag. Tags come in document order, so
 * both scans together read the document once.
 */
static void on_start_element(void *userdata, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                             int nb_namespaces, const xmlChar **namespaces, int nb_attributes, int nb_defaulted,
                             const xmlChar **attributes) {
        xmlParserCtxt *ctxt = userdata;
        xml_reader *reader = ctxt->_private;

        xmlSAX2StartElementNs(ctxt, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes, nb_defaulted,
                              attributes);
        long end = xmlByteConsumed(ctxt);
        /* Offsets into the input bytes mean characters only when libxml2 converts nothing. */
        if (!ctxt->node || end < 0 || reader->len == 0 || (ctxt->input->buf && ctxt->input->buf->encoder))
                return;
        /* Not back to the previous element's '<'. */
        size_t floor = reader->seen ? reader->pos + 1 : reader->pos;
        size_t lt = (size_t) end < reader->len ? (size_t) end : reader->len - 1;
        while (lt > floor && reader->data[lt] != '<')
                lt--;
        if (lt < floor || reader->data[lt] != '<')
                return;
        reader_advance(reader, lt);
        reader->seen = true;
        xml_set_position(ctxt->node, reader->line, reader->column);
}

/* Entities live in the DTD: refusing the DOCTYPE before its subset is read refuses them all. */
static void on_doctype(void *userdata, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id) {
        xmlParserCtxt *ctxt = userdata;
        xml_reader *reader = ctxt->_private;

        reader->doctype = true;
        reader->doctype_line = ctxt->input ? (unsigned) ctxt->input->line : 0;
        xmlStopParser(ctxt);
}

/*
 * The parser does not process XInclude, and neither does libvirt: an
 * <xi:include> would only ever be a silent no-op, or a surprise if anything
 * downstream did process it. Either way it is not what the file means.
 */
static bool is_xinclude(const xmlNode *n) {
        return xml_in_namespace(n, "http://www.w3.org/2001/XInclude") ||
               xml_in_namespace(n, "http://www.w3.org/2003/XInclude");
}

static int check_tree(const xml_origin *o, xmlNode *node, unsigned depth) {
        for (xmlNode *n = node; n; n = n->next) {
                if (n->type != XML_ELEMENT_NODE)
                        continue;
                if (depth > SCHEMA_MAX_DEPTH) {
                        xml_origin_error(o, xml_line(n), xml_column(n),
                                         "XML nesting is deeper than %d levels (SCHEMA_MAX_DEPTH); flatten the document",
                                         SCHEMA_MAX_DEPTH);
                        return -EINVAL;
                }
                if (is_xinclude(n)) {
                        xml_origin_error(o, xml_line(n), xml_column(n),
                                         "XInclude is not allowed; put the included content here");
                        return -EINVAL;
                }
                int r = check_tree(o, n->children, depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_root(const xml_origin *o, xmlDoc *doc, const char *expected) {
        xmlNode *root = xmlDocGetRootElement(doc);
        const char *name = root ? (const char *) root->name : "";

        if (expected && root && xml_is_element(root, expected))
                return 0;
        if (!expected && root &&
            (xml_is_element(root, "domain") || xml_is_element(root, "network") || xml_is_element(root, "pool") ||
             xml_is_element(root, "volume")))
                return 0;
        if (expected)
                xml_origin_error(o, root ? xml_line(root) : 0, 1,
                                 "root element <%s> is not supported; this xml must hold a <%s> document", name,
                                 expected);
        else
                xml_origin_error(o, root ? xml_line(root) : 0, 1,
                                 "root element <%s> is not supported; a native XML file holds one <domain>, "
                                 "<network>, <pool> or <volume>",
                                 name);
        return -EINVAL;
}

static xmlDoc *parse(xml_reader *reader, const char *data, size_t len) {
        _cleanup_(xmlFreeParserCtxtp) xmlParserCtxt *ctxt = xmlCreateMemoryParserCtxt(data, (int) len);
        if (!ctxt)
                return NULL;
        /* Deliberately without NOENT, DTDLOAD, XINCLUDE and HUGE. */
        xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_BIG_LINES);
        ctxt->_private = reader;
        ctxt->sax->serror = on_parse_error;
        ctxt->sax->internalSubset = on_doctype;
        ctxt->sax->startElementNs = on_start_element;
        /* Encoding errors bypass the context for libxml2's global handler, stderr by default: take them too. */
        xmlStructuredErrorFunc saved = xmlStructuredError;
        void *saved_data = xmlStructuredErrorContext;
        xmlSetStructuredErrorFunc(ctxt, on_parse_error);
        xmlParseDocument(ctxt);
        xmlSetStructuredErrorFunc(saved_data, saved);
        if (ctxt->wellFormed && !reader->doctype)
                return ctxt->myDoc;
        xmlFreeDoc(ctxt->myDoc);
        ctxt->myDoc = NULL;
        return NULL;
}

int xml_read(const xml_origin *o, const char *data, size_t len, const char *expected_root, xmlDoc **ret) {
        /* A byte order mark takes no column. */
        size_t bom = len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
        xml_reader reader = { .origin = o, .data = data, .len = len, .pos = bom, .line = 1, .column = 1 };
        unsigned errors = o->file->n_errors;

        _cleanup_(xmlFreeDocp) xmlDoc *doc = parse(&reader, data, len);
        if (reader.doctype) {
                xml_origin_error(o, reader.doctype_line, 1,
                                 "DOCTYPE and entities are not allowed; remove the <!DOCTYPE ...> declaration");
                return -EINVAL;
        }
        if (!doc) {
                if (o->file->n_errors == errors)
                        xml_origin_error(o, 0, 0, "XML: the document is not well-formed");
                return -EINVAL;
        }
        int r = check_tree(o, xmlDocGetRootElement(doc), 1);
        if (r < 0)
                return r;
        r = check_root(o, doc, expected_root);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(doc);
        return 0;
}
