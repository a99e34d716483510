/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libyaml events to node trees, with the hostile-input limits enforced while
 * reading: documents per file, nesting depth, aliases per file, and nodes per
 * document with aliases counted expanded. An alias is a pointer to an already
 * complete node, so nothing is ever copied and cycles cannot form.
 */
#include <string.h>
#include <yaml.h>

#include "schema/yaml-node.h"

typedef struct ydoc {
        ynode **nodes;
        size_t n_nodes, cap_nodes;
        vf_map *anchors; /* name -> ynode*, per document as YAML scopes them */
        ynode *root;
        size_t weight;
} ydoc;

typedef struct ybuilder {
        schema_file *file;
        ydocument_handler on_document;
        ydoc doc;
        ynode *open[SCHEMA_MAX_DEPTH]; /* the sequences and mappings not yet ended */
        size_t open_weight[SCHEMA_MAX_DEPTH]; /* doc.weight when each was opened */
        size_t depth;
        unsigned n_documents, n_aliases;
        const char *data;
        size_t len;
        size_t line_start; /* where line `line` (0-based) starts in data: scalars come in order */
        unsigned line;
} ybuilder;

static void ydoc_done(ydoc *d) {
        for (size_t i = 0; i < d->n_nodes; i++) {
                free(d->nodes[i]->scalar);
                free(d->nodes[i]->children);
                free(d->nodes[i]);
        }
        free(d->nodes);
        vf_map_free(d->anchors);
        *d = (ydoc) {};
}

static void ybuilder_done(ybuilder *b) {
        ydoc_done(&b->doc);
}

static ynode *ydoc_new_node(ydoc *d, ynode_kind kind, const yaml_mark_t *mark) {
        ynode **nodes = vf_grow(d->nodes, &d->cap_nodes, d->n_nodes + 1, sizeof *nodes);
        if (!nodes)
                return NULL;
        d->nodes = nodes;
        ynode *n = calloc(1, sizeof(ynode));
        if (!n)
                return NULL;
        *n = (ynode) {
                .kind = kind,
                .line = (unsigned) mark->line + 1,
                .column = (unsigned) mark->column + 1,
                .weight = 1,
                .complete = kind == YNODE_SCALAR,
        };
        d->nodes[d->n_nodes++] = n;
        return n;
}

static int ybuilder_error(ybuilder *b, const yaml_mark_t *mark, const char *fmt, ...) _printf_(3, 4);
static int ybuilder_error(ybuilder *b, const yaml_mark_t *mark, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        schema_file_errorv(b->file, (unsigned) mark->line + 1, (unsigned) mark->column + 1, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int ybuilder_too_big(ybuilder *b, const yaml_mark_t *mark, const char *alias) {
        if (alias)
                return ybuilder_error(b, mark,
                                      "alias *%s expands the document beyond %d nodes (SCHEMA_MAX_NODES); "
                                      "aliases that multiply content are refused, write the values out",
                                      alias, SCHEMA_MAX_NODES);
        return ybuilder_error(b, mark, "the document has more than %d nodes (SCHEMA_MAX_NODES); split it",
                              SCHEMA_MAX_NODES);
}

/* Places n (new, or the target of the alias) in the open container or as the root. */
static int ybuilder_attach(ybuilder *b, ynode *n, const yaml_mark_t *mark, const char *alias) {
        b->doc.weight += n->weight;
        if (b->doc.weight > SCHEMA_MAX_NODES)
                return ybuilder_too_big(b, mark, alias);
        if (b->depth == 0) {
                b->doc.root = n;
                return 0;
        }
        ynode *parent = b->open[b->depth - 1];
        ynode **children = vf_grow(parent->children, &parent->cap_children, parent->n_children + 1, sizeof *children);
        if (!children)
                return -ENOMEM;
        parent->children = children;
        parent->children[parent->n_children++] = n;
        return 0;
}

static int ybuilder_anchor(ybuilder *b, const yaml_char_t *anchor, ynode *n) {
        if (!anchor)
                return 0;
        if (!b->doc.anchors && !(b->doc.anchors = vf_map_new()))
                return -ENOMEM;
        return vf_map_put(b->doc.anchors, (const char *) anchor, n);
}

/* The offset of line (0-based), or len when the data has fewer lines. */
static size_t ybuilder_seek_line(ybuilder *b, unsigned line) {
        for (; b->line < line && b->line_start < b->len; b->line++) {
                const char *nl = memchr(b->data + b->line_start, '\n', b->len - b->line_start);
                b->line_start = nl ? (size_t) (nl - b->data) + 1 : b->len;
        }
        return b->line < line ? b->len : b->line_start;
}

/*
 * The indentation of a literal block scalar: that of its first line that is
 * not blank. (An explicit indentation indicator, rare, may make it less.)
 * Its lines start on the line after the '|', so a line in the value maps to
 * a line of the file, and an error in embedded XML to where it was written.
 */
static unsigned literal_indent(ybuilder *b, const yaml_mark_t *start) {
        if (start->line + 1 < b->line)
                return 0;
        size_t p = ybuilder_seek_line(b, (unsigned) start->line + 1);
        for (unsigned indent = 0; p < b->len; p++)
                if (b->data[p] == ' ')
                        indent++;
                else if (b->data[p] == '\n' || b->data[p] == '\r')
                        indent = 0;
                else
                        return indent;
        return 0;
}

static int on_scalar(ybuilder *b, const yaml_event_t *e) {
        if (memchr(e->data.scalar.value, 0, e->data.scalar.length))
                return ybuilder_error(b, &e->start_mark, "the value contains a NUL character; remove it");
        ynode *n = ydoc_new_node(&b->doc, YNODE_SCALAR, &e->start_mark);
        if (!n || !(n->scalar = strndup((const char *) e->data.scalar.value, e->data.scalar.length)))
                return -ENOMEM;
        n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (e->data.scalar.style == YAML_LITERAL_SCALAR_STYLE)
                n->literal_indent = literal_indent(b, &e->start_mark);
        int r = ybuilder_anchor(b, e->data.scalar.anchor, n);
        return r < 0 ? r : ybuilder_attach(b, n, &e->start_mark, NULL);
}

static int on_container_start(ybuilder *b, const yaml_event_t *e, ynode_kind kind, const yaml_char_t *anchor) {
        if (b->depth >= SCHEMA_MAX_DEPTH)
                return ybuilder_error(b, &e->start_mark,
                                      "YAML nesting is deeper than %d levels (SCHEMA_MAX_DEPTH); flatten the document",
                                      SCHEMA_MAX_DEPTH);
        ynode *n = ydoc_new_node(&b->doc, kind, &e->start_mark);
        if (!n)
                return -ENOMEM;
        int r = ybuilder_anchor(b, anchor, n);
        if (r >= 0)
                r = ybuilder_attach(b, n, &e->start_mark, NULL);
        if (r < 0)
                return r;
        b->open_weight[b->depth] = b->doc.weight;
        b->open[b->depth++] = n;
        return 0;
}

static int on_container_end(ybuilder *b) {
        ynode *n = b->open[--b->depth];
        n->weight = 1 + b->doc.weight - b->open_weight[b->depth];
        n->complete = true;
        return 0;
}

static int on_alias(ybuilder *b, const yaml_event_t *e) {
        const char *anchor = (const char *) e->data.alias.anchor;

        if (++b->n_aliases > SCHEMA_MAX_ALIASES)
                return ybuilder_error(b, &e->start_mark,
                                      "more than %d YAML aliases in one file (SCHEMA_MAX_ALIASES); "
                                      "write the values out instead",
                                      SCHEMA_MAX_ALIASES);
        ynode *target = b->doc.anchors ? vf_map_get(b->doc.anchors, anchor) : NULL;
        if (!target)
                return ybuilder_error(b, &e->start_mark, "alias *%s refers to no anchor &%s before it in this document",
                                      anchor, anchor);
        if (!target->complete)
                return ybuilder_error(b, &e->start_mark, "alias *%s refers to a node that contains it; remove the cycle",
                                      anchor);
        return ybuilder_attach(b, target, &e->start_mark, anchor);
}

static int on_document_start(ybuilder *b, const yaml_event_t *e) {
        if (++b->n_documents > SCHEMA_MAX_DOCUMENTS)
                return ybuilder_error(b, &e->start_mark,
                                      "more than %d YAML documents in one file (SCHEMA_MAX_DOCUMENTS); "
                                      "split it into several files",
                                      SCHEMA_MAX_DOCUMENTS);
        return 0;
}

static int on_document_end(ybuilder *b) {
        int r = 0;

        if (b->doc.root && !ynode_is_null(b->doc.root))
                r = b->on_document(b->file, b->doc.root);
        ydoc_done(&b->doc);
        return r == -ENOMEM ? r : 0;
}

/* 1 at the end of the stream, 0 to go on, negative to stop. */
static int on_event(ybuilder *b, const yaml_event_t *e) {
        switch (e->type) {
        case YAML_STREAM_END_EVENT:
                return 1;
        case YAML_DOCUMENT_START_EVENT:
                return on_document_start(b, e);
        case YAML_DOCUMENT_END_EVENT:
                return on_document_end(b);
        case YAML_SCALAR_EVENT:
                return on_scalar(b, e);
        case YAML_SEQUENCE_START_EVENT:
                return on_container_start(b, e, YNODE_SEQUENCE, e->data.sequence_start.anchor);
        case YAML_MAPPING_START_EVENT:
                return on_container_start(b, e, YNODE_MAPPING, e->data.mapping_start.anchor);
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                return on_container_end(b);
        case YAML_ALIAS_EVENT:
                return on_alias(b, e);
        default:
                return 0;
        }
}

static int report_syntax_error(schema_file *f, const yaml_parser_t *p) {
        const char *problem = p->problem ? p->problem : "cannot parse";

        if (p->context)
                schema_file_error(f, (unsigned) p->problem_mark.line + 1, (unsigned) p->problem_mark.column + 1,
                                  "YAML syntax: %s (%s at line %u)", problem, p->context,
                                  (unsigned) p->context_mark.line + 1);
        else
                schema_file_error(f, (unsigned) p->problem_mark.line + 1, (unsigned) p->problem_mark.column + 1,
                                  "YAML syntax: %s", problem);
        return -EINVAL;
}

DEFINE_POINTER_CLEANUP(yaml_parser_t, yaml_parser_delete);

int ytree_parse(schema_file *f, const char *data, size_t len, ydocument_handler on_document) {
        _cleanup_(ybuilder_done) ybuilder b = { .file = f, .on_document = on_document, .data = data, .len = len };
        yaml_parser_t parser;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        _cleanup_(yaml_parser_deletep) yaml_parser_t *p = &parser;
        yaml_parser_set_input_string(p, (const unsigned char *) data, len);
        for (;;) {
                yaml_event_t event;
                if (!yaml_parser_parse(p, &event))
                        return p->error == YAML_MEMORY_ERROR ? -ENOMEM : report_syntax_error(f, p);
                int r = on_event(&b, &event);
                yaml_event_delete(&event);
                if (r != 0)
                        return r > 0 ? 0 : r;
        }
}
