/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kind: CloudInit — a NoCloud seed: user-data, meta-data and network-config,
 * which the reconciler builds into the ISO volume "NAME.cidata.iso" in
 * spec.pool. Nothing of it is libvirt XML.
 */
#include <string.h>

#include "schema/yaml-node.h"

/* A seed is uploaded whole; SCHEMA_MAX_FILE_SIZE, lower, usually stops a larger one first. */
#define CLOUDINIT_MAX_DATA (16u * 1024 * 1024)

static const char *const cloudinit_keys[] = { "pool", "userData", "metaData", "networkConfig", NULL };
static const char *const meta_data_keys[] = { "instance-id", "local-hostname", NULL };

/* Verbatim text, kept as given. */
static int read_data(schema_file *f, const ynode *spec, const char *key, char **ret) {
        const char *s;

        int k = yget_string(f, spec, key, &s);
        if (k <= 0)
                return k;
        if (strlen(s) > CLOUDINIT_MAX_DATA) {
                ynode_error(f, ymap_get(spec, key), "%s is larger than %u MiB; a seed is not the place for big "
                            "files: have cloud-init fetch them", key, CLOUDINIT_MAX_DATA / (1024 * 1024));
                return -EINVAL;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* Labels of letters, digits and '-', as a host name is (RFC 1123). */
static bool hostname_is_valid(const char *s) {
        size_t len = strlen(s);
        if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-' || s[len - 1] == '.' || strstr(s, ".."))
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == len;
}

/* Printable, without spaces: it becomes a YAML value and cloud-init's directory name. */
static bool instance_id_is_valid(const char *s) {
        size_t len = strlen(s);
        if (len == 0 || len > 255)
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f || *p == '/')
                        return false;
        return true;
}

static int read_meta_data(schema_file *f, const ynode *spec, schema_resource *r) {
        const ynode *meta;
        const char *s;

        int k = yget_mapping(f, spec, "metaData", &meta);
        if (k <= 0)
                return k;
        k = ymap_check(f, meta, "metaData", meta_data_keys);
        if (k == -ENOMEM)
                return k;
        if (yget_string(f, meta, "instance-id", &s) > 0) {
                if (!instance_id_is_valid(s))
                        ynode_error(f, ymap_get(meta, "instance-id"),
                                    "invalid instance-id \"%s\"; use 1 to 255 printable characters without spaces "
                                    "or '/'", s);
                else if (!(r->cloudinit.instance_id = strdup(s)))
                        return -ENOMEM;
        }
        if (yget_string(f, meta, "local-hostname", &s) > 0) {
                if (!hostname_is_valid(s))
                        ynode_error(f, ymap_get(meta, "local-hostname"),
                                    "invalid local-hostname \"%s\"; use labels of letters, digits and '-' "
                                    "separated by dots", s);
                else if (!(r->cloudinit.hostname = strdup(s)))
                        return -ENOMEM;
        }
        return 0;
}

int spec_cloudinit_parse(schema_file *f, const ynode *spec, schema_resource *r) {
        unsigned errors = f->n_errors;
        const char *pool;

        int k = ymap_check(f, spec, "CloudInit spec", cloudinit_keys);
        if (k == -ENOMEM)
                return k;
        k = yget_name(f, spec, "pool", &pool);
        if (k == 0)
                ynode_error(f, spec, "pool is missing; add pool: NAME, the StoragePool that receives the seed");
        if (k > 0 && !(r->cloudinit.pool = strdup(pool)))
                return -ENOMEM;
        if (read_data(f, spec, "userData", &r->cloudinit.user_data) == -ENOMEM ||
            read_data(f, spec, "networkConfig", &r->cloudinit.network_config) == -ENOMEM ||
            read_meta_data(f, spec, r) == -ENOMEM)
                return -ENOMEM;
        if (f->n_errors != errors)
                return -EINVAL;
        return vf_strv_consume(&r->depends, schema_key(VF_KIND_POOL, r->cloudinit.pool));
}
