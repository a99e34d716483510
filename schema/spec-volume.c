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
#include <stdarg.h>
#include <string.h>

#include "schema/yaml-node.h"

static const char *const volume_keys[] = { "pool", "capacity", "format", "from", "deletionPolicy", NULL };
static const char *const from_keys[] = { "volume", "clone", "file", "url", "sha256", NULL };

#define source_keys schema_volume_source_keys

static int read_capacity(schema_file *f, const ynode *spec, schema_resource *r) {
        const char *s;

        int k = yget_string(f, spec, "capacity", &s);
        if (k <= 0)
                return k;
        k = schema_parse_capacity(s, &r->volume.capacity);
        if (k == -EINVAL)
                ynode_error(f, ymap_get(spec, "capacity"),
                            "invalid capacity \"%s\"; write an integer and a unit (KiB, MiB, GiB or TiB), e.g. 20GiB",
                            s);
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

const char *const schema_volume_source_keys[] = {
        [SCHEMA_SOURCE_VOLUME] = "volume",
        [SCHEMA_SOURCE_FILE] = "file",
        [SCHEMA_SOURCE_URL] = "url",
};

/* 1 with the message in *ret, or -ENOMEM. */
_printf_(2, 3) static int problem(char **ret, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        int k = vasprintf(ret, fmt, ap);
        va_end(ap);
        if (k < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 1;
}

int schema_volume_from_problem(schema_volume_source source, bool has_clone, bool has_sha256, const char **ret_key,
                               char **ret) {
        *ret_key = NULL;
        if (has_clone && source != SCHEMA_SOURCE_VOLUME) {
                *ret_key = "clone";
                return problem(ret, "clone is only for from.volume, a copy of another volume; remove it");
        }
        if (has_sha256 && source != SCHEMA_SOURCE_URL) {
                *ret_key = "sha256";
                return problem(ret, "sha256 is only for from.url; remove it");
        }
        if (!has_sha256 && source == SCHEMA_SOURCE_URL)
                return problem(ret, "from.url needs sha256: the image's SHA-256 digest in 64 hex digits; a download "
                               "is trusted only once it matches");
        return 0;
}

int schema_volume_source_problem(schema_volume_source source, const char *value, const char *self, char **ret) {
        if (source == SCHEMA_SOURCE_VOLUME && !schema_volume_ref_is_valid(value))
                return problem(ret, "invalid from.volume \"%s\"; write POOL/NAME, where " SCHEMA_NAME_RULE, value);
        if (source == SCHEMA_SOURCE_VOLUME && strcmp(value, self) == 0)
                return problem(ret, "volume %s is made from itself; name another volume in from.volume", value);
        if (source == SCHEMA_SOURCE_FILE && value[0] != '/')
                return problem(ret, "from.file \"%s\" is not an absolute path; start it with /", value);
        if (source == SCHEMA_SOURCE_URL && !schema_url_is_http(value))
                return problem(ret, "from.url \"%s\" is not an http:// or https:// URL; give one, or import a local "
                               "image with from.file", value);
        return 0;
}

int schema_volume_sha256_problem(const char *value, char **ret_digest, char **ret) {
        char digest[VF_HASH_HEX_LEN + 1];

        if (schema_parse_sha256(value, digest) < 0)
                return problem(ret, "invalid sha256 \"%s\"; give the image's SHA-256 digest in 64 hex digits", value);
        *ret_digest = strdup(digest);
        return *ret_digest ? 0 : -ENOMEM;
}

int schema_volume_format_problem(const schema_resource *r, char **ret) {
        if (r->volume.source != SCHEMA_SOURCE_VOLUME || r->volume.full_copy || r->volume.format == SCHEMA_VOLUME_QCOW2)
                return 0;
        return problem(ret, "a copy-on-write clone (clone: cow, the default) is a qcow2 overlay; use format: qcow2, "
                       "or clone: copy for a raw copy");
}

/* A check's outcome k: a problem is reported at n. */
static int report(schema_file *f, const ynode *n, int k, char *problem) {
        _cleanup_free_ char *p = problem;
        if (k > 0)
                ynode_error(f, n, "%s", p);
        return k;
}

/* clone goes with volume, sha256 with url. */
static int check_from_extras(schema_file *f, const ynode *from, schema_volume_source source) {
        const char *key;
        char *p = NULL;
        int k = schema_volume_from_problem(source, ymap_get(from, "clone"), ymap_get(from, "sha256"), &key, &p);
        return report(f, ymap_get(from, key ? key : source_keys[source]), k, p);
}

static int read_sha256(schema_file *f, const ynode *from, schema_resource *r) {
        const char *s;
        char *p = NULL;

        if (yget_string(f, from, "sha256", &s) <= 0)
                return 0;
        int k = schema_volume_sha256_problem(s, &r->volume.sha256, &p);
        return report(f, ymap_get(from, "sha256"), k, p);
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
        if (check_from_extras(f, from, source) == -ENOMEM ||
            yget_enum(f, from, "clone", schema_clone_names, &clone) == -ENOMEM)
                return -ENOMEM;
        if (yget_string(f, from, source_keys[source], &value) <= 0)
                return -EINVAL;
        char *p = NULL;
        k = schema_volume_source_problem(source, value, self, &p);
        if (report(f, ymap_get(from, source_keys[source]), k, p) == -ENOMEM)
                return -ENOMEM;
        r->volume.source = source;
        r->volume.full_copy = clone;
        r->volume.from = strdup(value);
        if (!r->volume.from)
                return -ENOMEM;
        return read_sha256(f, from, r);
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
        char *p = NULL;
        k = schema_volume_format_problem(r, &p);
        return report(f, ymap_get(spec, "format"), k, p) == -ENOMEM ? -ENOMEM : 0;
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
