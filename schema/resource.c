/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* schema_resource: allocation, the desired-state hash, and the shared XML finish. */
#include <libxml/tree.h>
#include <nettle/sha2.h>
#include <stddef.h>
#include <string.h>

#include "schema/schema-internal.h"

schema_resource *schema_resource_new(schema_file *f, vf_kind kind, const char *name, unsigned line, unsigned column) {
        _cleanup_(schema_resource_unrefp) schema_resource *r = calloc(1, sizeof(schema_resource));
        if (!r)
                return NULL;
        r->n_ref = 1;
        r->kind = kind;
        r->line = line;
        r->column = column;
        r->name = strdup(name);
        r->file = strdup(f->path);
        if (!r->name || !r->file)
                return NULL;
        if (kind == VF_KIND_HOSTDEV) {
                r->hostdev.vlan = -1;
                r->hostdev.managed = true;
        }
        if (kind == VF_KIND_POOL)
                r->pool.autostart = true;
        return TAKE_PTR(r);
}

/* What a resource owns, by kind: what freeing walks, so that a new field is added in one place. */
typedef enum field_type {
        FIELD_END,
        FIELD_STR, /* char *, may be NULL */
        FIELD_STRV, /* char **, NULL-terminated, may be NULL */
} field_type;

typedef struct resource_field {
        field_type type;
        size_t offset;
} resource_field;

#define FIELD(type, member) { type, offsetof(schema_resource, member) }

static const resource_field common_fields[] = {
        FIELD(FIELD_STR, name), FIELD(FIELD_STR, file), FIELD(FIELD_STR, xml), FIELD(FIELD_STRV, depends), {},
};

static const resource_field domain_fields[] = {
        FIELD(FIELD_STRV, domain.hostdevs), FIELD(FIELD_STRV, domain.cloudinits), {},
};

static const resource_field hostdev_fields[] = { FIELD(FIELD_STR, hostdev.pci), FIELD(FIELD_STR, hostdev.mac), {} };

static const resource_field pool_fields[] = { FIELD(FIELD_STR, pool.path), {} };

static const resource_field volume_fields[] = {
        FIELD(FIELD_STR, volume.pool), FIELD(FIELD_STR, volume.volume), FIELD(FIELD_STR, volume.from),
        FIELD(FIELD_STR, volume.sha256), {},
};

static const resource_field cloudinit_fields[] = {
        FIELD(FIELD_STR, cloudinit.pool),        FIELD(FIELD_STR, cloudinit.user_data),
        FIELD(FIELD_STR, cloudinit.instance_id), FIELD(FIELD_STR, cloudinit.hostname),
        FIELD(FIELD_STR, cloudinit.network_config), {},
};

/* What the kind's spec owns; each table ends with FIELD_END; NULL: nothing. */
static const resource_field *fields_of(vf_kind kind) {
        switch (kind) {
        case VF_KIND_DOMAIN:
                return domain_fields;
        case VF_KIND_HOSTDEV:
                return hostdev_fields;
        case VF_KIND_POOL:
                return pool_fields;
        case VF_KIND_VOLUME:
                return volume_fields;
        case VF_KIND_CLOUDINIT:
                return cloudinit_fields;
        default:
                return NULL;
        }
}

static void free_fields(schema_resource *r, const resource_field *fields) {
        for (const resource_field *f = fields; f && f->type; f++) {
                void *p = (char *) r + f->offset;
                if (f->type == FIELD_STR)
                        free(*(char **) p);
                else if (f->type == FIELD_STRV)
                        vf_strv_free(*(char ***) p);
        }
}

schema_resource *schema_resource_ref(schema_resource *r) {
        r->n_ref++;
        return r;
}

void schema_resource_unref(schema_resource *r) {
        if (!r || --r->n_ref > 0)
                return;
        free_fields(r, common_fields);
        free_fields(r, fields_of(r->kind));
        free(r);
}

/*
 * The hashed text is fed to SHA-256 as it is made, never built in memory.
 * Its bytes are the layout's, unchanged since markers first carried them:
 * numbers in decimal as printf("%ld") writes them, then a separator.
 */
static void hash_decimal(struct sha256_ctx *h, bool negative, unsigned long long value, char separator) {
        char text[24], *p = text + sizeof text;

        *--p = separator;
        do
                *--p = (char) ('0' + value % 10);
        while ((value /= 10) > 0);
        if (negative)
                *--p = '-';
        sha256_update(h, (size_t) (text + sizeof text - p), (const uint8_t *) p);
}

/* Length-prefixed, so no field's content can be mistaken for a separator. */
static void hash_field(struct sha256_ctx *h, const char *s) {
        s = s ? s : "";
        size_t len = strlen(s);
        hash_decimal(h, false, len, ':');
        sha256_update(h, len, (const uint8_t *) s);
}

static void hash_number(struct sha256_ctx *h, long n) {
        hash_decimal(h, n < 0, n < 0 ? 0ULL - (unsigned long long) n : (unsigned long long) n, ';');
}

/* An absent text and an empty one are different seeds. */
static void hash_optional(struct sha256_ctx *h, const char *s) {
        hash_number(h, !!s);
        hash_field(h, s);
}

static void hash_volume(struct sha256_ctx *h, const schema_resource *r) {
        hash_field(h, r->volume.pool);
        hash_field(h, r->volume.volume);
        hash_decimal(h, false, r->volume.capacity, ';');
        hash_number(h, r->volume.format);
        hash_number(h, r->volume.source);
        hash_field(h, r->volume.from);
        hash_field(h, r->volume.sha256);
        hash_number(h, r->volume.full_copy);
        hash_number(h, r->volume.deletion);
}

/* All of a seed is its content: a change of any field is a new seed. */
static void hash_cloudinit(struct sha256_ctx *h, const schema_resource *r) {
        hash_field(h, r->cloudinit.pool);
        hash_optional(h, r->cloudinit.user_data);
        hash_optional(h, r->cloudinit.instance_id);
        hash_optional(h, r->cloudinit.hostname);
        hash_optional(h, r->cloudinit.network_config);
}

/* The devices the domain reconciler resolves: Hostdevs, and the seeds' pools. */
static void hash_domain_devices(struct sha256_ctx *h, const schema_resource *r) {
        hash_number(h, (long) vf_strv_length(r->domain.hostdevs));
        for (size_t i = 0; r->domain.hostdevs && r->domain.hostdevs[i]; i++)
                hash_field(h, r->domain.hostdevs[i]);
        /* Only when there are any: the hash of a domain without seeds stays what markers already carry. */
        if (!r->domain.cloudinits)
                return;
        hash_number(h, (long) vf_strv_length(r->domain.cloudinits));
        for (size_t i = 0; r->domain.cloudinits[i]; i++)
                hash_field(h, r->domain.cloudinits[i]);
}

static void hash_spec(struct sha256_ctx *h, const schema_resource *r) {
        switch (r->kind) {
        case VF_KIND_NETWORK:
                hash_number(h, r->network.autostart);
                break;
        case VF_KIND_DOMAIN:
                hash_number(h, r->domain.state);
                hash_number(h, r->domain.autostart);
                hash_number(h, r->domain.restart);
                hash_domain_devices(h, r);
                break;
        case VF_KIND_HOSTDEV:
                hash_field(h, r->hostdev.pci);
                hash_field(h, r->hostdev.mac);
                hash_number(h, r->hostdev.vlan);
                hash_number(h, r->hostdev.managed);
                break;
        case VF_KIND_POOL:
                hash_number(h, r->pool.autostart);
                break;
        case VF_KIND_VOLUME:
                hash_volume(h, r);
                break;
        case VF_KIND_CLOUDINIT:
                hash_cloudinit(h, r);
                break;
        default:
                break;
        }
}

static void hash_identity(struct sha256_ctx *h, const schema_resource *r) {
        hash_field(h, vf_kind_to_string(r->kind));
        hash_field(h, r->name);
        hash_field(h, r->xml);
}

/*
 * Covers what is desired only: where it was declared and metadata.adopt are
 * left out. The layout of hash is what markers in libvirt carry: changing it
 * would redefine every object on upgrade.
 */
void schema_resource_hash(schema_resource *r) {
        struct sha256_ctx whole, definition;
        uint8_t digest[SHA256_DIGEST_SIZE];

        sha256_init(&whole);
        hash_identity(&whole, r);
        definition = whole; /* both begin with the identity */
        hash_spec(&whole, r);
        sha256_digest(&whole, sizeof digest, digest);
        vf_hex(digest, sizeof digest, r->hash);

        if (r->kind == VF_KIND_DOMAIN)
                hash_domain_devices(&definition, r);
        if (r->kind == VF_KIND_CLOUDINIT)
                hash_cloudinit(&definition, r);
        sha256_digest(&definition, sizeof digest, digest);
        vf_hex(digest, sizeof digest, r->definition_hash);
}

static int add_depend(schema_resource *r, vf_kind kind, const char *name) {
        _cleanup_free_ char *key = schema_key(kind, name);
        if (!key)
                return -ENOMEM;
        return vf_strv_contains(r->depends, key) ? 0 : vf_strv_push(&r->depends, key);
}

/* The <source> of a device element called name whose type attribute is type, or NULL. */
static xmlNode *typed_source(xmlNode *n, const char *name, const char *type) {
        if (!xml_is_element(n, name))
                return NULL;
        _cleanup_(xml_freep) xmlChar *t = xmlGetNoNsProp(n, BAD_CAST "type");
        return t && xmlStrEqual(t, BAD_CAST type) ? xml_child(n, "source") : NULL;
}

static int add_network_depend(schema_resource *r, xmlNode *n) {
        xmlNode *source = typed_source(n, "interface", "network");
        _cleanup_(xml_freep) xmlChar *network = source ? xmlGetNoNsProp(source, BAD_CAST "network") : NULL;
        return network ? add_depend(r, VF_KIND_NETWORK, (const char *) network) : 0;
}

/* A volume disk depends on its volume; one with virtform's marker on its seed (spec-domain.c has the form). */
static int add_disk_depend(schema_resource *r, xmlNode *n) {
        xmlNode *source = typed_source(n, "disk", "volume");
        if (!source)
                return 0;
        _cleanup_(xml_freep) xmlChar *seed = xmlGetNsProp(source, BAD_CAST "cloudinit", BAD_CAST SCHEMA_POLICY_NS);
        if (seed) {
                const char *name = (const char *) seed;
                if (!vf_strv_contains(r->domain.cloudinits, name) && vf_strv_push(&r->domain.cloudinits, name) < 0)
                        return -ENOMEM;
                return add_depend(r, VF_KIND_CLOUDINIT, name);
        }
        _cleanup_(xml_freep) xmlChar *pool = xmlGetNoNsProp(source, BAD_CAST "pool");
        _cleanup_(xml_freep) xmlChar *volume = xmlGetNoNsProp(source, BAD_CAST "volume");
        if (!pool || !volume || !*pool || !*volume)
                return 0;
        _cleanup_free_ char *name = vf_printf("%s/%s", (const char *) pool, (const char *) volume);
        return name ? add_depend(r, VF_KIND_VOLUME, name) : -ENOMEM;
}

static int add_device_depends(schema_resource *r, xmlNode *devices) {
        for (xmlNode *n = devices ? devices->children : NULL; n; n = n->next) {
                int k = add_network_depend(r, n);
                if (k >= 0)
                        k = add_disk_depend(r, n);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int serialize(xmlDoc *doc, char **ret) {
        xmlBuffer *buf = xmlBufferCreate();
        if (!buf)
                return -ENOMEM;
        int r = xmlNodeDump(buf, doc, xmlDocGetRootElement(doc), 0, 1);
        *ret = r < 0 ? NULL : strdup((const char *) xmlBufferContent(buf));
        xmlBufferFree(buf);
        return *ret ? 0 : -ENOMEM;
}

int schema_resource_take_xml(schema_resource *r, xmlDoc *doc) {
        if (r->kind == VF_KIND_DOMAIN) {
                int k = add_device_depends(r, xml_child(xmlDocGetRootElement(doc), "devices"));
                if (k < 0)
                        return k;
        }
        return serialize(doc, &r->xml);
}
