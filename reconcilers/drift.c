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

/* The ownership marker changes with every define and is judged by its hash elsewhere. */
static bool is_owner_marker(const xmlNode *n) {
        return n->ns && xmlStrcmp(n->ns->href, BAD_CAST RC_OWNER_NS) == 0;
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

/* libvirt's text of the element, without the blanks around it. */
static void put_text(vf_buf *b, xmlNode *have) {
        vf_buf text = {};

        for (xmlNode *c = have->children; c; c = c->next)
                if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
                        vf_buf_puts(&text, (const char *) c->content);
        if (text.oom)
                b->oom = true;
        const char *s = text.data ? text.data : "";
        size_t start = strspn(s, " \t\r\n"), end = strlen(s);
        while (end > start && strchr(" \t\r\n", s[end - 1]))
                end--;
        vf_buf_printf(b, " text=%zu:%.*s", end - start, (int) (end - start), s + start);
        vf_buf_done(&text);
}

static size_t count_elements(xmlNode *parent) {
        size_t n = 0;
        for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
                n += is_element(c);
        return n;
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

        size_t n = count_elements(have);
        _cleanup_free_ bool *taken = calloc(n ? n : 1, sizeof(bool));
        if (!taken) {
                b->oom = true;
                return;
        }
        bool devices = xmlStrcmp(want->name, BAD_CAST "devices") == 0;
        for (xmlNode *w = want->children; w; w = w->next)
                if (is_element(w) && !is_owner_marker(w))
                        project(b, w, find_match(w, have, devices, taken));
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
