/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kind: Volume — the typed spec, its checks, and the <volume> XML a create is
 * given. A Volume is named "POOL/NAME": metadata.name is its name in
 * spec.pool.
 *
 * The XML holds what virtform decides: <name>, <capacity unit='bytes'> when
 * spec.capacity is given (else the source's size, which the reconciler
 * knows), and <target><format type=.../>. The backing store of a
 * copy-on-write clone is the reconciler's to add: only it knows the source's
 * path.
 */
#include <inttypes.h>
#include <libxml/tree.h>
#include <string.h>

#include "schema/yaml-node.h"

static const char *const volume_keys[] = { "pool", "capacity", "format", "from", "deletionPolicy", NULL };
static const char *const from_keys[] = { "volume", "clone", "file", "url", "sha256", NULL };

/* The from keys that choose a source, indexed by schema_volume_source. */
static const char *const source_keys[] = {
        [SCHEMA_SOURCE_VOLUME] = "volume",
        [SCHEMA_SOURCE_FILE] = "file",
        [SCHEMA_SOURCE_URL] = "url",
};

static int read_capacity(schema_file *f, const ynode *spec, schema_resource *r) {
        const char *s;

        int k = yget_string(f, spec, "capacity", &s);
        if (k <= 0)
                return k;
        k = schema_parse_capacity(s, &r->volume.capacity);
        if (k == -EINVAL)
                ynode_error(f, ymap_get(spec, "capacity"),
                            "invalid capacity \"%s\"; write an integer and a unit (KiB, MiB, GiB or TiB), e.g. 20GiB", s);
        else if (k == -ERANGE)
                ynode_error(f, ymap_get(spec, "capacity"), "capacity %s is out of range; give 1MiB to 1024TiB", s);
        return k;
}

/* Which one of volume, file or url the mapping names; exactly one is allowed. */
static int source_of(schema_file *f, const ynode *from, schema_volume_source *ret) {
        unsigned n = 0;

        for (schema_volume_source s = SCHEMA_SOURCE_VOLUME; s <= SCHEMA_SOURCE_URL; s++)
                if (ymap_get(from, source_keys[s])) {
                        *ret = s;
                        n++;
                }
        if (n == 1)
                return 0;
        ynode_error(f, from, "from needs exactly one of volume, file or url; it has %u", n);
        return -EINVAL;
}

/* clone goes with volume, sha256 with url. */
static void check_from_extras(schema_file *f, const ynode *from, schema_volume_source source) {
        const ynode *clone = ymap_get(from, "clone"), *sha256 = ymap_get(from, "sha256");

        if (clone && source != SCHEMA_SOURCE_VOLUME)
                ynode_error(f, clone, "clone is only for from.volume, a copy of another volume; remove it");
        if (sha256 && source != SCHEMA_SOURCE_URL)
                ynode_error(f, sha256, "sha256 is only for from.url; remove it");
        if (!sha256 && source == SCHEMA_SOURCE_URL)
                ynode_error(f, ymap_get(from, "url"),
                            "from.url needs sha256: the image's SHA-256 digest in 64 hex digits; a download is "
                            "trusted only once it matches");
}

static void check_source_value(schema_file *f, const ynode *at, schema_volume_source source, const char *value,
                               const char *self) {
        switch (source) {
        case SCHEMA_SOURCE_VOLUME:
                if (!schema_volume_ref_is_valid(value))
                        ynode_error(f, at, "invalid from.volume \"%s\"; write POOL/NAME, where " SCHEMA_NAME_RULE,
                                    value);
                else if (strcmp(value, self) == 0)
                        ynode_error(f, at, "volume %s is made from itself; name another volume in from.volume",
                                    value);
                break;
        case SCHEMA_SOURCE_FILE:
                if (value[0] != '/')
                        ynode_error(f, at, "from.file \"%s\" is not an absolute path; start it with /", value);
                break;
        case SCHEMA_SOURCE_URL:
                if (!schema_url_is_http(value))
                        ynode_error(f, at, "from.url \"%s\" is not an http:// or https:// URL; give one, or import "
                                    "a local image with from.file", value);
                break;
        default:
                break;
        }
}

static int read_sha256(schema_file *f, const ynode *from, schema_resource *r) {
        char digest[VF_HASH_HEX_LEN + 1];
        const char *s;

        if (yget_string(f, from, "sha256", &s) <= 0)
                return 0;
        if (schema_parse_sha256(s, digest) < 0) {
                ynode_error(f, ymap_get(from, "sha256"),
                            "invalid sha256 \"%s\"; give the image's SHA-256 digest in 64 hex digits", s);
                return -EINVAL;
        }
        r->volume.sha256 = strdup(digest);
        return r->volume.sha256 ? 0 : -ENOMEM;
}

static int read_from(schema_file *f, const ynode *spec, const char *self, schema_resource *r) {
        schema_volume_source source;
        const ynode *from;
        const char *value;
        int clone = 0;

        int k = yget_mapping(f, spec, "from", &from);
        if (k <= 0)
                return k;
        k = ymap_check(f, from, "from", from_keys);
        if (k == -ENOMEM)
                return k;
        if (source_of(f, from, &source) < 0)
                return -EINVAL;
        check_from_extras(f, from, source);
        if (yget_enum(f, from, "clone", schema_clone_names, &clone) == -ENOMEM)
                return -ENOMEM;
        if (yget_string(f, from, source_keys[source], &value) <= 0)
                return -EINVAL;
        check_source_value(f, ymap_get(from, source_keys[source]), source, value, self);
        r->volume.source = source;
        r->volume.full_copy = clone;
        r->volume.from = strdup(value);
        if (!r->volume.from)
                return -ENOMEM;
        return read_sha256(f, from, r);
}

/* A copy-on-write clone is a qcow2 overlay on its source. */
static void check_format(schema_file *f, const ynode *spec, const schema_resource *r) {
        if (r->volume.source != SCHEMA_SOURCE_VOLUME || r->volume.full_copy || r->volume.format == SCHEMA_VOLUME_QCOW2)
                return;
        ynode_error(f, ymap_get(spec, "format"),
                    "a copy-on-write clone (clone: cow, the default) is a qcow2 overlay; use format: qcow2, or "
                    "clone: copy for a raw copy");
}

static int set_identity(schema_resource *r, const char *pool) {
        r->volume.pool = strdup(pool);
        r->volume.volume = TAKE_PTR(r->name);
        r->name = vf_printf("%s/%s", pool, r->volume.volume);
        return r->volume.pool && r->name ? 0 : -ENOMEM;
}

static int read_spec(schema_file *f, const ynode *spec, schema_resource *r) {
        int format = SCHEMA_VOLUME_QCOW2, deletion = SCHEMA_DELETION_RETAIN;
        const char *pool;

        int k = yget_name(f, spec, "pool", &pool);
        if (k == 0)
                ynode_error(f, spec, "pool is missing; add pool: NAME, the StoragePool that holds the volume");
        if (k > 0 && set_identity(r, pool) < 0)
                return -ENOMEM;
        if (read_capacity(f, spec, r) == -ENOMEM)
                return -ENOMEM;
        (void) yget_enum(f, spec, "format", schema_volume_format_names, &format);
        (void) yget_enum(f, spec, "deletionPolicy", schema_deletion_names, &deletion);
        r->volume.format = format;
        r->volume.deletion = deletion;
        if (read_from(f, spec, r->name, r) == -ENOMEM)
                return -ENOMEM;
        if (!ymap_get(spec, "capacity") && !ymap_get(spec, "from"))
                ynode_error(f, spec, "capacity is missing; add capacity: SIZE, e.g. 20GiB, or from: the volume, "
                            "file or URL to take the content and size from");
        check_format(f, spec, r);
        return 0;
}

static int render(xmlNode *root, const schema_resource *r) {
        char bytes[32];

        xmlNode *name = xml_element(root, "name", NULL);
        if (!name || xml_set_text(name, r->volume.volume) < 0)
                return -ENOMEM;
        snprintf(bytes, sizeof bytes, "%" PRIu64, r->volume.capacity);
        xmlNode *capacity = r->volume.capacity ? xml_element(root, "capacity", "unit", "bytes", NULL) : NULL;
        if (r->volume.capacity && (!capacity || xml_set_text(capacity, bytes) < 0))
                return -ENOMEM;
        xmlNode *target = xml_element(root, "target", NULL);
        if (!target || !xml_element(target, "format", "type", schema_volume_format_names[r->volume.format], NULL))
                return -ENOMEM;
        return 0;
}

int schema_volume_depends(schema_resource *r) {
        int k = vf_strv_consume(&r->depends, schema_key(VF_KIND_POOL, r->volume.pool));
        if (k < 0 || r->volume.source != SCHEMA_SOURCE_VOLUME)
                return k;
        return vf_strv_consume(&r->depends, schema_key(VF_KIND_VOLUME, r->volume.from));
}

int spec_volume_parse(schema_file *f, const ynode *spec, schema_resource *r) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        unsigned errors = f->n_errors;
        xml_origin origin;

        int k = ymap_check(f, spec, "Volume spec", volume_keys);
        if (k == -ENOMEM)
                return k;
        k = read_spec(f, spec, r);
        if (k < 0)
                return k;
        if (f->n_errors != errors)
                return -EINVAL;
        k = spec_xml_base(f, spec, NULL, "volume", &origin, &doc);
        if (k < 0)
                return k;
        k = render(xmlDocGetRootElement(doc), r);
        if (k < 0)
                return k;
        k = spec_xml_finish(&origin, r, doc);
        return k < 0 ? k : schema_volume_depends(r);
}
