/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Typed, strict access to YAML mappings: every wrong type or unknown key is a diagnostic. */
#include <string.h>

#include "schema/yaml-node.h"

static const char *describe_kind(ynode_kind kind) {
        switch (kind) {
        case YNODE_SEQUENCE:
                return "a list";
        case YNODE_MAPPING:
                return "a mapping";
        default:
                return "a scalar";
        }
}

static const char *describe(const ynode *n) {
        return describe_kind(n->kind);
}

void ynode_error(schema_file *f, const ynode *n, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        schema_file_errorv(f, n->line, n->column, fmt, ap);
        va_end(ap);
}

bool ynode_is_null(const ynode *n) {
        static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
        return n->kind == YNODE_SCALAR && n->plain && schema_lookup(nulls, n->scalar) >= 0;
}

const ynode *ymap_get(const ynode *map, const char *key) {
        for (size_t i = 0; i + 1 < map->n_children; i += 2) {
                const ynode *k = map->children[i];
                if (k->kind == YNODE_SCALAR && strcmp(k->scalar, key) == 0)
                        return map->children[i + 1];
        }
        return NULL;
}

static int check_key(schema_file *f, const ynode *key, const char *what, const char *const *allowed,
                     uint64_t *seen) {
        if (key->kind != YNODE_SCALAR) {
                ynode_error(f, key, "%s has %s as a key; keys are plain words", what, describe(key));
                return -EINVAL;
        }
        int i = schema_lookup(allowed, key->scalar);
        if (i < 0) {
                _cleanup_free_ char *list = schema_join(allowed);
                if (!list)
                        return -ENOMEM;
                ynode_error(f, key, "unknown key \"%s\" in %s; allowed keys: %s", key->scalar, what, list);
                return -EINVAL;
        }
        if (*seen & (UINT64_C(1) << i)) {
                ynode_error(f, key, "key \"%s\" appears twice in %s; keep one", key->scalar, what);
                return -EINVAL;
        }
        *seen |= UINT64_C(1) << i;
        return 0;
}

int ymap_check(schema_file *f, const ynode *map, const char *what, const char *const *allowed) {
        uint64_t seen = 0;
        int ret = 0;

        if (map->kind != YNODE_MAPPING) {
                ynode_error(f, map, "%s must be a mapping, not %s", what, describe(map));
                return -EINVAL;
        }
        for (size_t i = 0; i + 1 < map->n_children; i += 2) {
                int r = check_key(f, map->children[i], what, allowed, &seen);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        ret = r;
        }
        return ret;
}

/* The scalar under key: 1, or 0 if absent, or -EINVAL (reported) if it is not a non-null scalar. */
static int get_scalar(schema_file *f, const ynode *map, const char *key, const ynode **ret) {
        const ynode *n = ymap_get(map, key);
        if (!n)
                return 0;
        if (n->kind != YNODE_SCALAR) {
                ynode_error(f, n, "\"%s\" must be a single value, not %s", key, describe(n));
                return -EINVAL;
        }
        if (ynode_is_null(n)) {
                ynode_error(f, n, "\"%s\" has no value; give it one or remove the key", key);
                return -EINVAL;
        }
        *ret = n;
        return 1;
}

int yget_string(schema_file *f, const ynode *map, const char *key, const char **ret) {
        const ynode *n;
        int r = get_scalar(f, map, key, &n);
        if (r > 0)
                *ret = n->scalar;
        return r;
}

int yget_bool(schema_file *f, const ynode *map, const char *key, bool *ret) {
        static const char *const bools[] = { "false", "true", NULL };
        const ynode *n;
        int r = get_scalar(f, map, key, &n);
        if (r <= 0)
                return r;
        int i = n->plain ? schema_lookup(bools, n->scalar) : -EINVAL;
        if (i < 0) {
                ynode_error(f, n, "\"%s\" must be true or false, not \"%s\"", key, n->scalar);
                return -EINVAL;
        }
        *ret = i;
        return 1;
}

int yget_uint(schema_file *f, const ynode *map, const char *key, unsigned min, unsigned max, unsigned *ret) {
        const ynode *n;
        int r = get_scalar(f, map, key, &n);
        if (r <= 0)
                return r;
        const char *s = n->scalar;
        size_t digits = strspn(s, "0123456789");
        unsigned long v = 0;
        bool ok = n->plain && digits > 0 && digits <= 9 && s[digits] == 0;
        if (ok)
                v = strtoul(s, NULL, 10);
        if (!ok || v < min || v > max) {
                ynode_error(f, n, "\"%s\" must be an integer from %u to %u, not \"%s\"", key, min, max, s);
                return -EINVAL;
        }
        *ret = (unsigned) v;
        return 1;
}

int yget_enum(schema_file *f, const ynode *map, const char *key, const char *const *names, int *ret) {
        const ynode *n;
        int r = get_scalar(f, map, key, &n);
        if (r <= 0)
                return r;
        int i = schema_lookup(names, n->scalar);
        if (i < 0) {
                _cleanup_free_ char *list = schema_join(names);
                if (!list)
                        return -ENOMEM;
                ynode_error(f, n, "\"%s\" must be one of %s, not \"%s\"", key, list, n->scalar);
                return -EINVAL;
        }
        *ret = i;
        return 1;
}

static int get_container(schema_file *f, const ynode *map, const char *key, ynode_kind kind, const ynode **ret) {
        const ynode *n = ymap_get(map, key);
        if (!n)
                return 0;
        if (n->kind != kind) {
                ynode_error(f, n, "\"%s\" must be %s, not %s", key, describe_kind(kind), describe(n));
                return -EINVAL;
        }
        *ret = n;
        return 1;
}

int yget_sequence(schema_file *f, const ynode *map, const char *key, const ynode **ret) {
        return get_container(f, map, key, YNODE_SEQUENCE, ret);
}

int yget_mapping(schema_file *f, const ynode *map, const char *key, const ynode **ret) {
        return get_container(f, map, key, YNODE_MAPPING, ret);
}

int yget_mac(schema_file *f, const ynode *map, const char *key, char ret[18]) {
        const ynode *n;
        int r = get_scalar(f, map, key, &n);
        if (r <= 0)
                return r;
        r = schema_parse_mac(n->scalar, ret);
        if (r == -EDOM)
                ynode_error(f, n, "multicast MAC address \"%s\"; use a unicast one (even first octet)", n->scalar);
        else if (r < 0)
                ynode_error(f, n, "invalid MAC address \"%s\"; write six hex octets like 52:54:00:12:34:56",
                            n->scalar);
        return r < 0 ? -EINVAL : 1;
}

int yget_ifname(schema_file *f, const ynode *map, const char *key, const char **ret) {
        int r = yget_string(f, map, key, ret);
        if (r <= 0 || schema_ifname_is_valid(*ret))
                return r;
        ynode_error(f, ymap_get(map, key),
                    "invalid interface name \"%s\" in \"%s\"; use 1 to 15 characters without '/', ':' or spaces",
                    *ret, key);
        return -EINVAL;
}

int yget_name(schema_file *f, const ynode *map, const char *key, const char **ret) {
        int r = yget_string(f, map, key, ret);
        if (r <= 0 || schema_name_is_valid(*ret))
                return r;
        ynode_error(f, ymap_get(map, key), "invalid name \"%s\" in \"%s\": " SCHEMA_NAME_RULE, *ret, key);
        return -EINVAL;
}
