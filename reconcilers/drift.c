/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Drift is judged on what virtform asked for, never on libvirt's whole XML.
 *
 * libvirt adds to what it is given (addresses, controllers, channels,
 * defaults) and, when it loads its configuration again after a restart or
 * an upgrade, may write the same definition in another order. The projection
 * of libvirt's document onto the desired one keeps only the elements and
 * attributes the desired document sets, with libvirt's values, in the desired
 * document's order. Each desired element is matched to one of libvirt's by
 * name: a device by its identity (alias, address, or what names a device of
 * its kind), anything else by its place among the elements of that name. So
 * what libvirt adds, and the order it writes devices in, change nothing; a
 * value changed, or an element gone, changes the projection.
 */
#include "reconcilers/object.h"

#include <string.h>

/* What names a device of a kind, when the desired document gives it neither an alias nor an address. */
typedef struct identity {
        const char *device;
        const char *path; /* a child ("source/address"), or NULL for the device itself */
        const char *attr; /* NULL: every attribute the desired node at path sets */
} identity;

static const identity kind_identities[] = {
        { "interface", "mac", "address" },
        { "disk", "target", "dev" },
        { "filesystem", "target", "dir" },
        { "controller", NULL, "type" },
        { "controller", NULL, "index" },
        { "controller", NULL, "model" },
        { "hostdev", "source/address", NULL },
        { "channel", "target", "name" },
};

static const identity by_alias = { NULL, "alias", "name" };
static const identity by_address = { NULL, "address", NULL };
static const identity by_attributes = { NULL, NULL, NULL };

static bool same_name(const xmlNode *a, const xmlNode *b) {
        const xmlChar *ha = a->ns ? a->ns->href : NULL, *hb = b->ns ? b->ns->href : NULL;
        return xmlStrcmp(a->name, b->name) == 0 && xmlStrcmp(ha, hb) == 0;
}

static bool is_element(const xmlNode *n) {
        return n->type == XML_ELEMENT_NODE;
}

/* The ownership marker, of either form, changes with every define and is judged by its hash elsewhere. */
static bool is_owner_marker(const xmlNode *n) {
        return n->ns && rc_owner_ns_known(n->ns->href);
}

static xmlNode *descend(xmlNode *n, const char *path) {
        char step[64];

        while (n && path && *path) {
                size_t len = strcspn(path, "/");
                snprintf(step, sizeof step, "%.*s", (int) len, path);
                n = rc_xml_child(n, step);
                path += len + (path[len] == '/');
        }
        return n;
}

static bool attr_equal(xmlNode *want, xmlNode *have, const xmlChar *name) {
        xmlChar *a = xmlGetProp(want, name), *b = have ? xmlGetProp(have, name) : NULL;
        bool equal = xmlStrcmp(a, b) == 0;

        xmlFree(a);
        xmlFree(b);
        return equal;
}

/* Whether have carries want's values for id; *used says whether want has any. */
static bool identity_matches(const identity *id, xmlNode *want, xmlNode *have, bool *used) {
        xmlNode *w = descend(want, id->path), *h = descend(have, id->path);

        if (!w)
                return true;
        if (id->attr) {
                if (!xmlHasProp(w, BAD_CAST id->attr))
                        return true;
                *used = true;
                return attr_equal(w, h, BAD_CAST id->attr);
        }
        for (xmlAttr *a = w->properties; a; a = a->next) {
                *used = true;
                if (!attr_equal(w, h, a->name))
                        return false;
        }
        return true;
}

/* What want is told apart by: its alias, its address, what names its kind, or its own attributes. */
static const identity *identities_of(xmlNode *want, size_t *n) {
        const identity *first = NULL;

        *n = 1;
        if (rc_xml_child(want, "alias"))
                return &by_alias;
        if (rc_xml_child(want, "address"))
                return &by_address;
        *n = 0;
        for (size_t i = 0; i < ELEMENTSOF(kind_identities); i++)
                if (xmlStrcmp(want->name, BAD_CAST kind_identities[i].device) == 0) {
                        first = first ? first : &kind_identities[i]; /* a kind's rows are adjacent */
                        (*n)++;
                }
        if (first)
                return first;
        *n = 1;
        return &by_attributes;
}

/* Whether have may be the device want describes: it carries want's identity, or want gives none. */
static bool device_matches(xmlNode *want, xmlNode *have) {
        size_t n;
        const identity *ids = identities_of(want, &n);
        bool used = false, match = true;

        for (size_t i = 0; i < n; i++)
                match = identity_matches(&ids[i], want, have, &used) && match;
        return match || !used;
}

/* libvirt's element for want: the first of its name, among those not yet taken, that may be it. */
static xmlNode *find_match(xmlNode *want, xmlNode *have_parent, bool devices, bool *taken) {
        size_t i = 0;

        for (xmlNode *h = have_parent ? have_parent->children : NULL; h; h = h->next) {
                if (!is_element(h))
                        continue;
                size_t at = i++;
                if (taken[at] || !same_name(want, h) || (devices && !device_matches(want, h)))
                        continue;
                taken[at] = true;
                return h;
        }
        return NULL;
}

/* Values are length-prefixed: no value can pass for another, whatever it holds. */
static void put_value(vf_buf *b, const xmlChar *v) {
        if (v)
                vf_buf_printf(b, "%zu:%s", strlen((const char *) v), (const char *) v);
        else
                vf_buf_puts(b, "-");
}

static bool has_text(xmlNode *n) {
        for (xmlNode *c = n->children; c; c = c->next)
                if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && !xmlIsBlankNode(c))
                        return true;
        return false;
}

/* The element's text without the blanks around it; NULL on OOM. */
static char *trimmed_text(xmlNode *n) {
        vf_buf text = {};

        for (xmlNode *c = n->children; c; c = c->next)
                if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
                        vf_buf_puts(&text, (const char *) c->content);
        char *s = vf_buf_steal(&text);
        if (!s)
                return NULL;
        size_t start = strspn(s, " \t\r\n"), end = strlen(s);
        while (end > start && strchr(" \t\r\n", s[end - 1]))
                end--;
        memmove(s, s + start, end - start);
        s[end - start] = 0;
        return s;
}

static void put_text(vf_buf *b, xmlNode *have) {
        _cleanup_free_ char *text = trimmed_text(have);

        if (!text)
                b->oom = true;
        else
                vf_buf_printf(b, " text=%zu:%s", strlen(text), text);
}

static size_t count_elements(xmlNode *parent) {
        size_t n = 0;
        for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
                n += is_element(c);
        return n;
}

/* Calls fn for each child element of want's that is projected, with libvirt's element for it (or NULL). */
static int foreach_projected(xmlNode *want, xmlNode *have, int (*fn)(xmlNode *w, xmlNode *h, void *userdata),
                             void *userdata) {
        size_t n = count_elements(have);
        _cleanup_free_ bool *taken = calloc(n ? n : 1, sizeof(bool));
        bool devices = xmlStrcmp(want->name, BAD_CAST "devices") == 0;

        if (!taken)
                return -ENOMEM;
        for (xmlNode *w = want->children; w; w = w->next) {
                if (!is_element(w) || is_owner_marker(w))
                        continue;
                int r = fn(w, find_match(w, have, devices, taken), userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void project(vf_buf *b, xmlNode *want, xmlNode *have);

static int project_child(xmlNode *want, xmlNode *have, void *userdata) {
        project(userdata, want, have);
        return 0;
}

static void project(vf_buf *b, xmlNode *want, xmlNode *have) {
        vf_buf_printf(b, "(%s", (const char *) want->name);
        if (!have) {
                vf_buf_puts(b, " missing)");
                return;
        }
        for (xmlAttr *a = want->properties; a; a = a->next) {
                xmlChar *v = xmlGetProp(have, a->name);
                vf_buf_printf(b, " %s=", (const char *) a->name);
                put_value(b, v);
                xmlFree(v);
        }
        if (has_text(want))
                put_text(b, have);
        if (foreach_projected(want, have, project_child, b) < 0)
                b->oom = true;
        vf_buf_puts(b, ")");
}

char *rc_drift_projection(xmlDoc *want, xmlDoc *have) {
        xmlNode *w = xmlDocGetRootElement(want), *h = xmlDocGetRootElement(have);
        vf_buf b = {};

        if (!w)
                return strdup("");
        project(&b, w, h && same_name(w, h) ? h : NULL);
        return vf_buf_steal(&b);
}

int rc_drift_hash(xmlDoc *want, xmlDoc *have, char ret[VF_HASH_HEX_LEN + 1]) {
        _cleanup_free_ char *p = rc_drift_projection(want, have);

        if (!p)
                return -ENOMEM;
        vf_sha256_hex(p, strlen(p), ret);
        return 0;
}

/* ---- the projection as lines, for plan's diff ----------------------------------- */

/* Escapes what would end the value or the line: a definition shows one element per line. */
static void put_escaped(vf_buf *b, const char *s) {
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (c == '&')
                        vf_buf_puts(b, "&amp;");
                else if (c == '<')
                        vf_buf_puts(b, "&lt;");
                else if (c == '>')
                        vf_buf_puts(b, "&gt;");
                else if (c == '"')
                        vf_buf_puts(b, "&quot;");
                else if (c < 0x20)
                        vf_buf_printf(b, "&#x%x;", c);
                else
                        vf_buf_append(b, s, 1);
        }
}

static bool has_projected_children(xmlNode *n) {
        for (xmlNode *c = n->children; c; c = c->next)
                if (is_element(c) && !is_owner_marker(c))
                        return true;
        return false;
}

static void put_name(vf_buf *b, xmlNode *n) {
        if (n->ns && n->ns->prefix)
                vf_buf_printf(b, "%s:", (const char *) n->ns->prefix);
        vf_buf_puts(b, (const char *) n->name);
}

/* want's element with the values of values (want itself, or libvirt's match): its start, or all of it. */
static char *element_line(xmlNode *want, xmlNode *values, bool start_only) {
        vf_buf b = {};

        vf_buf_puts(&b, "<");
        put_name(&b, want);
        for (xmlAttr *a = want->properties; a; a = a->next) {
                xmlChar *v = xmlGetProp(values, a->name);
                if (v) {
                        vf_buf_printf(&b, " %s=\"", (const char *) a->name);
                        put_escaped(&b, (const char *) v);
                        vf_buf_puts(&b, "\"");
                }
                xmlFree(v);
        }
        _cleanup_free_ char *text = !start_only && has_text(want) ? trimmed_text(values) : NULL;
        if (text && *text) {
                vf_buf_puts(&b, ">");
                put_escaped(&b, text);
                vf_buf_puts(&b, "</");
                put_name(&b, want);
                vf_buf_puts(&b, ">");
        } else
                vf_buf_puts(&b, start_only ? ">" : "/>");
        return vf_buf_steal(&b);
}

static char *end_line(xmlNode *want) {
        vf_buf b = {};

        vf_buf_puts(&b, "</");
        put_name(&b, want);
        vf_buf_puts(&b, ">");
        return vf_buf_steal(&b);
}

static int push_line(rc_xml_lines *l, unsigned depth, char *line, const xmlChar *path) {
        _cleanup_free_ char *owned = line;

        if (!l)
                return 0;
        if (!line || !path)
                return -ENOMEM;
        _cleanup_free_ char *indented = vf_printf("%*s%s", (int) (2 * depth), "", line);
        int r = indented ? vf_strv_push(&l->lines, indented) : -ENOMEM;
        return r < 0 ? r : vf_strv_push(&l->paths, (const char *) path);
}

typedef struct lines_walk {
        unsigned depth;
        rc_xml_lines *want, *have; /* have: NULL below an element libvirt does not have */
} lines_walk;

static int element_lines(xmlNode *want, xmlNode *have, void *userdata) {
        const lines_walk *up = userdata;
        lines_walk walk = { up->depth + 1, up->want, have ? up->have : NULL };
        xmlChar *path = xmlGetNodePath(want);
        bool parent = has_projected_children(want);
        int r = push_line(walk.want, up->depth, element_line(want, want, parent), path);

        if (r >= 0 && walk.have)
                r = push_line(walk.have, up->depth, element_line(want, have, parent), path);
        if (r >= 0 && parent)
                r = foreach_projected(want, have, element_lines, &walk);
        if (r >= 0 && parent)
                r = push_line(walk.want, up->depth, end_line(want), path);
        if (r >= 0 && parent && walk.have)
                r = push_line(walk.have, up->depth, end_line(want), path);
        xmlFree(path);
        return r;
}

int rc_drift_lines(xmlDoc *want, xmlDoc *have, rc_xml_lines *ret_want, rc_xml_lines *ret_have) {
        xmlNode *w = xmlDocGetRootElement(want), *h = have ? xmlDocGetRootElement(have) : NULL;
        lines_walk top = { 0, ret_want, ret_have };

        if (!w)
                return 0;
        int r = element_lines(w, h && same_name(w, h) ? h : NULL, &top);
        if (r < 0) {
                if (ret_want)
                        rc_xml_lines_done(ret_want);
                if (ret_have)
                        rc_xml_lines_done(ret_have);
        }
        return r;
}
