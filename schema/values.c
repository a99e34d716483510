/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parsing and checking of the scalar value types both YAML and native XML use. */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "schema/schema-internal.h"

const char *const schema_state_names[] = { "running", "shutoff", NULL };
const char *const schema_restart_names[] = { "never", "on-change", NULL };
const char *const schema_drift_names[] = { "correct", "report", NULL };
const char *const schema_yes_no_names[] = { "no", "yes", NULL };
const char *const schema_volume_format_names[] = { "qcow2", "raw", NULL };
const char *const schema_clone_names[] = { "cow", "copy", NULL };
const char *const schema_deletion_names[] = { "retain", "delete", NULL };

int schema_lookup(const char *const *names, const char *s) {
        for (int i = 0; names[i]; i++)
                if (strcmp(names[i], s) == 0)
                        return i;
        return -EINVAL;
}

char *schema_join(const char *const *names) {
        return vf_strv_join(names, ", ");
}

/* What the kernel accepts as an interface name (IFNAMSIZ, dev_valid_name()). */
bool schema_ifname_is_valid(const char *s) {
        size_t len = strlen(s);
        if (len == 0 || len > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (const char *p = s; *p; p++)
                if (*p == '/' || *p == ':' || isspace((unsigned char) *p))
                        return false;
        return true;
}

bool schema_token_is_valid(const char *s) {
        size_t len = strlen(s);
        return len > 0 && len <= 32 &&
                strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == len;
}

int schema_parse_ipv4(const char *s, uint32_t *ret) {
        struct in_addr a;

        /* inet_pton() takes dotted quads only: no shorthand forms, no octal. */
        if (inet_pton(AF_INET, s, &a) != 1)
                return -EINVAL;
        *ret = ntohl(a.s_addr);
        return 0;
}

static int parse_decimal(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!isdigit((unsigned char) *s))
                return -EINVAL;
        for (; isdigit((unsigned char) *s); s++) {
                if (v > (max - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return *s ? -EINVAL : 0;
}

int schema_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix) {
        const char *slash = strchr(s, '/');
        char addr[INET_ADDRSTRLEN];
        uint64_t prefix;

        if (!slash || (size_t) (slash - s) >= sizeof addr)
                return -EINVAL;
        memcpy(addr, s, (size_t) (slash - s));
        addr[slash - s] = 0;
        if (schema_parse_ipv4(addr, ret_addr) < 0 || parse_decimal(slash + 1, 32, &prefix) < 0)
                return -EINVAL;
        *ret_prefix = (unsigned) prefix;
        return 0;
}

void schema_format_ipv4(uint32_t addr, char out[16]) {
        snprintf(out, 16, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff, addr & 0xff);
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char) tolower((unsigned char) c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int schema_parse_mac(const char *s, char out[18]) {
        uint8_t octet[6];

        if (strlen(s) != 17)
                return -EINVAL;
        for (size_t i = 0; i < 6; i++) {
                const char *p = s + 3 * i;
                int hi = hex_digit(p[0]), lo = hex_digit(p[1]);
                if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
                        return -EINVAL;
                octet[i] = (uint8_t) (hi << 4 | lo);
        }
        if (octet[0] & 1)
                return -EDOM;
        snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", octet[0], octet[1], octet[2], octet[3], octet[4],
                 octet[5]);
        return 0;
}

/* Exactly `digits` hex digits at s, as a number. */
static int parse_hex_field(const char *s, size_t digits, unsigned *ret) {
        unsigned v = 0;

        for (size_t i = 0; i < digits; i++) {
                int d = hex_digit(s[i]);
                if (d < 0)
                        return -EINVAL;
                v = v << 4 | (unsigned) d;
        }
        *ret = v;
        return 0;
}

int schema_parse_pci(const char *s, char out[13]) {
        unsigned domain = 0, bus, slot, function;
        size_t len = strlen(s);

        if (len == 12) {
                if (parse_hex_field(s, 4, &domain) < 0 || s[4] != ':')
                        return -EINVAL;
                s += 5;
        } else if (len != 7)
                return -EINVAL;
        if (parse_hex_field(s, 2, &bus) < 0 || s[2] != ':' || parse_hex_field(s + 3, 2, &slot) < 0 ||
            s[5] != '.' || parse_hex_field(s + 6, 1, &function) < 0)
                return -EINVAL;
        if (slot > 0x1f || function > 7)
                return -EINVAL;
        snprintf(out, 13, "%04x:%02x:%02x.%x", domain, bus, slot, function);
        return 0;
}

static const struct {
        const char *suffix;
        uint64_t kib;
} memory_units[] = {
        { "KiB", 1 },
        { "MiB", UINT64_C(1) << 10 },
        { "GiB", UINT64_C(1) << 20 },
        { "TiB", UINT64_C(1) << 30 },
};

#define MEMORY_MIN_KIB (UINT64_C(1) << 10)
#define MEMORY_MAX_KIB (UINT64_C(16) << 30)
#define CAPACITY_MIN_KIB (UINT64_C(1) << 10)
#define CAPACITY_MAX_KIB (UINT64_C(1) << 40)

/* "<integer><unit>" in KiB, from min_kib to max_kib. */
static int parse_size_kib(const char *s, uint64_t min_kib, uint64_t max_kib, uint64_t *ret_kib) {
        size_t digits = strspn(s, "0123456789");
        uint64_t amount;

        if (digits == 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(memory_units); i++) {
                if (strcmp(s + digits, memory_units[i].suffix) != 0)
                        continue;
                _cleanup_free_ char *number = strndup(s, digits);
                if (!number)
                        return -ENOMEM;
                if (parse_decimal(number, max_kib, &amount) < 0 || amount > max_kib / memory_units[i].kib)
                        return -ERANGE;
                amount *= memory_units[i].kib;
                if (amount < min_kib)
                        return -ERANGE;
                *ret_kib = amount;
                return 0;
        }
        return -EINVAL;
}

int schema_parse_memory(const char *s, uint64_t *ret_kib) {
        return parse_size_kib(s, MEMORY_MIN_KIB, MEMORY_MAX_KIB, ret_kib);
}

int schema_parse_capacity(const char *s, uint64_t *ret_bytes) {
        uint64_t kib;

        int r = parse_size_kib(s, CAPACITY_MIN_KIB, CAPACITY_MAX_KIB, &kib);
        if (r < 0)
                return r;
        *ret_bytes = kib * 1024;
        return 0;
}

/* libvirt's scaled-integer units (virScaleInteger()): b and bytes, k, KiB and KB up to e, EiB and EB, in any case. */
static int unit_scale(const char *unit, uint64_t *ret) {
        static const char prefixes[] = "kmgtpe";
        uint64_t scale = 1;

        if (strcasecmp(unit, "b") == 0 || strcasecmp(unit, "byte") == 0 || strcasecmp(unit, "bytes") == 0) {
                *ret = 1;
                return 0;
        }
        const char *p = unit[0] ? strchr(prefixes, tolower((unsigned char) unit[0])) : NULL;
        const char *rest = unit + 1;
        if (!p)
                return -EINVAL;
        uint64_t base = strcasecmp(rest, "b") == 0 ? 1000 : (!*rest || strcasecmp(rest, "ib") == 0) ? 1024 : 0;
        if (!base)
                return -EINVAL;
        for (const char *q = prefixes; q <= p; q++)
                scale *= base;
        *ret = scale;
        return 0;
}

bool schema_unit_is_valid(const char *unit) {
        uint64_t scale;
        return unit_scale(unit, &scale) == 0;
}

int schema_parse_scaled(const char *number, const char *unit, uint64_t *ret_bytes) {
        uint64_t value, scale = 1;

        if (parse_decimal(number, UINT64_MAX, &value) < 0)
                return -EINVAL;
        if (unit && *unit && unit_scale(unit, &scale) < 0)
                return -EINVAL;
        if (value > UINT64_MAX / scale)
                return -ERANGE;
        *ret_bytes = value * scale;
        return 0;
}

bool schema_volume_ref_is_valid(const char *s) {
        const char *slash = strchr(s, '/');
        if (!slash || slash == s || (size_t) (slash - s) > SCHEMA_MAX_NAME_LEN)
                return false;
        char pool[SCHEMA_MAX_NAME_LEN + 1];
        memcpy(pool, s, (size_t) (slash - s));
        pool[slash - s] = 0;
        return schema_name_is_valid(pool) && schema_name_is_valid(slash + 1);
}

int schema_parse_sha256(const char *s, char out[VF_HASH_HEX_LEN + 1]) {
        if (strlen(s) != VF_HASH_HEX_LEN)
                return -EINVAL;
        for (size_t i = 0; i < VF_HASH_HEX_LEN; i++) {
                if (hex_digit(s[i]) < 0)
                        return -EINVAL;
                out[i] = (char) tolower((unsigned char) s[i]);
        }
        out[VF_HASH_HEX_LEN] = 0;
        return 0;
}

bool schema_url_is_http(const char *s) {
        const char *rest = strncmp(s, "https://", 8) == 0 ? s + 8 : strncmp(s, "http://", 7) == 0 ? s + 7 : NULL;
        if (!rest || !*rest || *rest == '/')
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return false;
        return true;
}
