/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common.h"

#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

static const char *const kind_names[_VF_KIND_MAX] = {
        [VF_KIND_NETWORK] = "network",
        [VF_KIND_HOSTDEV] = "hostdev",
        [VF_KIND_POOL] = "pool",
        [VF_KIND_VOLUME] = "volume",
        [VF_KIND_CLOUDINIT] = "cloudinit",
        [VF_KIND_DOMAIN] = "domain",
};

static const char *const kind_yaml_names[_VF_KIND_MAX] = {
        [VF_KIND_NETWORK] = "Network",
        [VF_KIND_HOSTDEV] = "Hostdev",
        [VF_KIND_POOL] = "StoragePool",
        [VF_KIND_VOLUME] = "Volume",
        [VF_KIND_CLOUDINIT] = "CloudInit",
        [VF_KIND_DOMAIN] = "Domain",
};

static vf_kind lookup_kind(const char *const table[], const char *s) {
        if (!s)
                return -EINVAL;
        for (int k = 0; k < _VF_KIND_MAX; k++)
                if (strcmp(table[k], s) == 0)
                        return k;
        return -EINVAL;
}

const char *vf_kind_to_string(vf_kind kind) {
        return kind >= 0 && kind < _VF_KIND_MAX ? kind_names[kind] : "unknown";
}

vf_kind vf_kind_from_string(const char *s) {
        return lookup_kind(kind_names, s);
}

const char *vf_kind_to_yaml(vf_kind kind) {
        return kind >= 0 && kind < _VF_KIND_MAX ? kind_yaml_names[kind] : "Unknown";
}

vf_kind vf_kind_from_yaml(const char *s) {
        return lookup_kind(kind_yaml_names, s);
}

/*
 * One allocation of the exact size: glibc's vasprintf() makes two (a buffer, then its shrink), and
 * keys and messages are made by the thousand in every pass.
 */
char *vf_printf(const char *fmt, ...) {
        char buf[256];
        va_list ap, again;

        va_start(ap, fmt);
        va_copy(again, ap);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        char *s = n < 0 ? NULL : malloc((size_t) n + 1);
        if (s && (size_t) n < sizeof buf)
                memcpy(s, buf, (size_t) n + 1);
        else if (s)
                (void) vsnprintf(s, (size_t) n + 1, fmt, again);
        va_end(again);
        return s;
}

bool vf_streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

int vf_free_and_strdup(char **field, const char *value) {
        /* A record rewritten with what it holds, a desired XML of a kilobyte each pass: no copy for that. */
        if (vf_streq_ptr(*field, value))
                return 0;
        char *copy = value ? strdup(value) : NULL;
        if (value && !copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

int vf_error(char **errmsg, int r, const char *fmt, ...) {
        va_list ap;

        if (!errmsg)
                return r;
        free(*errmsg);
        va_start(ap, fmt);
        if (vasprintf(errmsg, fmt, ap) < 0)
                *errmsg = NULL;
        va_end(ap);
        return r;
}

bool vf_str_has_suffix(const char *s, const char *suffix) {
        size_t ls = strlen(s), lx = strlen(suffix);
        return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

size_t vf_strv_length(char *const *v) {
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

void vf_strv_free(char **v) {
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

void *vf_grow(void *array, size_t *cap, size_t need, size_t size) {
        if (need <= *cap)
                return array;
        size_t new_cap = *cap * 2 > need ? *cap * 2 : need;
        if (new_cap < 16)
                new_cap = 16;
        void *p = reallocarray(array, new_cap, size);
        if (p)
                *cap = new_cap;
        return p;
}

int vf_strv_consume(char ***v, char *s) {
        if (!s)
                return -ENOMEM;
        size_t n = vf_strv_length(*v);
        char **nv = realloc(*v, (n + 2) * sizeof(char *));
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        nv[n] = s;
        nv[n + 1] = NULL;
        *v = nv;
        return 0;
}

int vf_strv_push(char ***v, const char *s) {
        return vf_strv_consume(v, strdup(s));
}

int vf_strv_copy(char *const *v, char ***ret) {
        char **copy = NULL;

        for (size_t i = 0; v && v[i]; i++) {
                int r = vf_strv_push(&copy, v[i]);
                if (r < 0) {
                        vf_strv_free(copy);
                        return r;
                }
        }
        *ret = copy;
        return 0;
}

bool vf_strv_contains(char *const *v, const char *s) {
        for (size_t i = 0; v && v[i]; i++)
                if (strcmp(v[i], s) == 0)
                        return true;
        return false;
}

char *vf_strv_join(const char *const *v, const char *separator) {
        vf_buf b = {};

        for (size_t i = 0; v && v[i]; i++) {
                if (i > 0)
                        vf_buf_puts(&b, separator);
                vf_buf_puts(&b, v[i]);
        }
        return vf_buf_steal(&b);
}

/* ---- vf_buf ------------------------------------------------------------ */

static bool buf_reserve(vf_buf *b, size_t extra) {
        if (b->oom)
                return false;
        if (b->len + extra + 1 <= b->cap)
                return true;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra + 1)
                cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
                b->oom = true;
                return false;
        }
        b->data = d;
        b->cap = cap;
        return true;
}

void vf_buf_append(vf_buf *b, const char *s, size_t len) {
        if (!buf_reserve(b, len))
                return;
        memcpy(b->data + b->len, s, len);
        b->len += len;
        b->data[b->len] = 0;
}

void vf_buf_puts(vf_buf *b, const char *s) {
        vf_buf_append(b, s, strlen(s));
}

void vf_buf_printf(vf_buf *b, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || !buf_reserve(b, (size_t) n))
                return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
}

/*
 * The length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF), or 0 for a byte that starts none: JSON must be UTF-8, and file names,
 * file contents and libvirt's messages need not be.
 */
static size_t utf8_sequence_length(const unsigned char *p) {
        size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
        unsigned char lo = 0x80, hi = 0xbf;

        if (p[0] < 0xc2 || p[0] > 0xf4)
                return 0;
        if (p[0] == 0xe0)
                lo = 0xa0;
        else if (p[0] == 0xed)
                hi = 0x9f;
        else if (p[0] == 0xf0)
                lo = 0x90;
        else if (p[0] == 0xf4)
                hi = 0x8f;
        if (p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (p[i] < 0x80 || p[i] > 0xbf)
                        return 0;
        return n;
}

void vf_buf_put_json_string(vf_buf *b, const char *s) {
        if (!s) {
                vf_buf_puts(b, "null");
                return;
        }
        vf_buf_puts(b, "\"");
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"':
                        vf_buf_puts(b, "\\\"");
                        break;
                case '\\':
                        vf_buf_puts(b, "\\\\");
                        break;
                case '\n':
                        vf_buf_puts(b, "\\n");
                        break;
                case '\t':
                        vf_buf_puts(b, "\\t");
                        break;
                case '\r':
                        vf_buf_puts(b, "\\r");
                        break;
                default:
                        if (*p < 0x20)
                                vf_buf_printf(b, "\\u%04x", *p);
                        else if (*p < 0x80)
                                vf_buf_append(b, (const char *) p, 1);
                        else {
                                size_t n = utf8_sequence_length(p);
                                if (n == 0)
                                        vf_buf_puts(b, "\\ufffd");
                                else
                                        vf_buf_append(b, (const char *) p, n);
                                p += n ? n - 1 : 0;
                        }
                }
        }
        vf_buf_puts(b, "\"");
}

char *vf_buf_steal(vf_buf *b) {
        if (b->oom) {
                vf_buf_done(b);
                return NULL;
        }
        char *d = b->data ? b->data : strdup("");
        *b = (vf_buf) {};
        return d;
}

void vf_buf_done(vf_buf *b) {
        free(b->data);
        *b = (vf_buf) {};
}

/* ---- hashing ----------------------------------------------------------- */

/* Not sprintf("%02x"): every hash the load and a no-op pass take goes through here, and sprintf was most of its cost. */
void vf_hex(const uint8_t *bytes, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[bytes[i] >> 4];
                out[2 * i + 1] = digits[bytes[i] & 0xf];
        }
        out[2 * n] = 0;
}

void vf_sha256_hex(const void *data, size_t len, char out[VF_HASH_HEX_LEN + 1]) {
        struct sha256_ctx ctx;
        uint8_t digest[SHA256_DIGEST_SIZE];

        sha256_init(&ctx);
        sha256_update(&ctx, len, data);
        sha256_digest(&ctx, sizeof digest, digest);
        vf_hex(digest, sizeof digest, out);
}

/* Open addressing with linear probing; tombstones keep probe chains intact. */
typedef struct map_slot {
        char *key; /* NULL: empty; TOMBSTONE: deleted */
        void *value;
        /* The key's hash: a probe past another key costs a compare in the slot array, not a strcmp away. */
        uint64_t hash;
} map_slot;

static char tombstone_marker;
#define TOMBSTONE (&tombstone_marker)

struct vf_map {
        map_slot *slots;
        size_t cap; /* power of two */
        size_t used; /* live + tombstones */
        size_t live;
        bool borrows_keys; /* the keys are the caller's: not copied, not freed */
};

static uint64_t hash_key(const char *s) {
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 1099511628211ULL;
        return h;
}

vf_map *vf_map_new(void) {
        return calloc(1, sizeof(vf_map));
}

vf_map *vf_map_new_borrowing_keys(void) {
        vf_map *m = vf_map_new();
        if (m)
                m->borrows_keys = true;
        return m;
}

static void free_key(const vf_map *m, char *key) {
        if (!m->borrows_keys)
                free(key);
}

void vf_map_free(vf_map *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->cap; i++)
                if (m->slots[i].key && m->slots[i].key != TOMBSTONE)
                        free_key(m, m->slots[i].key);
        free(m->slots);
        free(m);
}

void vf_map_free_with(vf_map *m, void (*free_value)(void *value)) {
        for (size_t i = 0; m && i < m->cap; i++)
                if (m->slots[i].key && m->slots[i].key != TOMBSTONE)
                        free_value(m->slots[i].value);
        vf_map_free(m);
}

static map_slot *map_find(const vf_map *m, const char *key, uint64_t hash) {
        if (m->cap == 0)
                return NULL;
        for (size_t i = hash & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
                map_slot *s = &m->slots[i];
                if (!s->key)
                        return NULL;
                if (s->hash == hash && s->key != TOMBSTONE && strcmp(s->key, key) == 0)
                        return s;
        }
}

static int map_grow(vf_map *m) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        map_slot *slots = calloc(cap, sizeof(map_slot));
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
                map_slot *s = &m->slots[i];
                if (!s->key || s->key == TOMBSTONE)
                        continue;
                size_t j = s->hash & (cap - 1);
                while (slots[j].key)
                        j = (j + 1) & (cap - 1);
                slots[j] = *s;
        }
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
        m->used = m->live;
        return 0;
}

int vf_map_put(vf_map *m, const char *key, void *value) {
        uint64_t hash = hash_key(key);
        map_slot *s = map_find(m, key, hash);
        if (s) {
                s->value = value;
                /* A borrowed key may belong to the value replaced: the new one's lives on. */
                if (m->borrows_keys)
                        s->key = (char *) key;
                return 0;
        }
        if ((m->used + 1) * 4 >= m->cap * 3) {
                int r = map_grow(m);
                if (r < 0)
                        return r;
        }
        char *k = m->borrows_keys ? (char *) key : strdup(key);
        if (!k)
                return -ENOMEM;
        size_t i = hash & (m->cap - 1);
        while (m->slots[i].key && m->slots[i].key != TOMBSTONE)
                i = (i + 1) & (m->cap - 1);
        if (!m->slots[i].key)
                m->used++;
        m->slots[i] = (map_slot) { k, value, hash };
        m->live++;
        return 0;
}

void *vf_map_get(const vf_map *m, const char *key) {
        map_slot *s = map_find(m, key, hash_key(key));
        return s ? s->value : NULL;
}

void *vf_map_remove(vf_map *m, const char *key) {
        map_slot *s = map_find(m, key, hash_key(key));
        if (!s)
                return NULL;
        void *v = s->value;
        free_key(m, s->key);
        s->key = TOMBSTONE;
        s->value = NULL;
        m->live--;
        return v;
}

size_t vf_map_size(const vf_map *m) {
        return m->live;
}

bool vf_map_next(const vf_map *m, size_t *it, const char **key, void **value) {
        for (; *it < m->cap; (*it)++) {
                map_slot *s = &m->slots[*it];
                if (s->key && s->key != TOMBSTONE) {
                        if (key)
                                *key = s->key;
                        if (value)
                                *value = s->value;
                        (*it)++;
                        return true;
                }
        }
        return false;
}

/* ---- time -------------------------------------------------------------- */

static int64_t now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t vf_now_realtime_usec(void) {
        return now_usec(CLOCK_REALTIME);
}

int vf_random_bytes(void *buf, size_t n) {
        for (size_t got = 0; got < n;) {
                ssize_t r = getrandom((uint8_t *) buf + got, n - got, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t) r;
        }
        return 0;
}

int64_t vf_now_monotonic_usec(void) {
        return now_usec(CLOCK_MONOTONIC);
}

static void format_time(int64_t realtime_usec, bool msec, char out[32]) {
        if (realtime_usec <= 0) {
                strcpy(out, "-");
                return;
        }
        time_t t = (time_t) (realtime_usec / 1000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
        if (msec)
                snprintf(out + n, 32 - n, ".%03dZ", (int) (realtime_usec % 1000000 / 1000));
        else
                snprintf(out + n, 32 - n, "Z");
}

void vf_format_time(int64_t realtime_usec, char out[32]) {
        format_time(realtime_usec, false, out);
}

void vf_format_time_msec(int64_t realtime_usec, char out[32]) {
        format_time(realtime_usec, true, out);
}

void vf_format_duration(int64_t usec, char out[16]) {
        static const struct {
                int64_t usec;
                char unit;
        } units[] = { { 86400000000, 'd' }, { 3600000000, 'h' }, { 60000000, 'm' } };
        int64_t abs_usec = usec < 0 ? -usec : usec;

        /* Each count fits an int: at most INT64_MAX microseconds in days, and below 60 in seconds. */
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (abs_usec >= units[i].usec) {
                        snprintf(out, 16, "%d%c", (int) (abs_usec / units[i].usec), units[i].unit);
                        return;
                }
        snprintf(out, 16, "%ds", (int) (abs_usec / 1000000));
}

/* ---- files ------------------------------------------------------------- */

bool vf_fd_is_journal_stream(int fd) {
        const char *stream = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        int n = 0;

        if (!stream || sscanf(stream, "%llu:%llu%n", &dev, &ino, &n) != 2 || stream[n] != 0)
                return false;
        return fstat(fd, &st) >= 0 && (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

int vf_read_file(const char *path, size_t max_size, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADF;
        if ((uint64_t) st.st_size > max_size)
                return -EFBIG;

        /* Read to EOF rather than trusting st_size: the file may grow under us. */
        size_t cap = 4096, len = 0;
        _cleanup_free_ char *data = malloc(cap);
        if (!data)
                return -ENOMEM;
        for (;;) {
                if (len + 1 == cap) {
                        char *nd = realloc(data, cap * 2);
                        if (!nd)
                                return -ENOMEM;
                        data = nd;
                        cap *= 2;
                }
                ssize_t n = read(fd, data + len, cap - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max_size)
                        return -EFBIG;
        }
        data[len] = 0;
        *ret = TAKE_PTR(data);
        if (ret_len)
                *ret_len = len;
        return 0;
}

static int write_all(int fd, const void *data, size_t len) {
        for (size_t at = 0; at < len;) {
                ssize_t n = write(fd, (const char *) data + at, len - at);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                at += (size_t) n;
        }
        return 0;
}

int vf_write_file_atomic(const char *path, const void *data, size_t len) {
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *tmp = slash ? vf_printf("%.*s/.%s.XXXXXX", (int) (slash - path), path, slash + 1)
                                         : vf_printf(".%s.XXXXXX", path);
        mode_t mask = umask(0);
        int r;

        umask(mask);
        if (!tmp)
                return -ENOMEM;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* mkostemp() makes it 0600: give it the mode any new file gets. */
        r = fchmod(fd, 0666 & ~mask) < 0 ? -errno : write_all(fd, data, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}
