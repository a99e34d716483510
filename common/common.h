/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common: the few helpers every virtform module shares.
 *
 * Nothing here logs or keeps state: modules return 0 or a negative errno and
 * hand messages back to the controller, which alone decides what to print.
 */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_ __attribute__((unused))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Defines NAMEp(type **) that calls NAME on a non-NULL pointer, for _cleanup_. */
#define DEFINE_POINTER_CLEANUP(type, func)              \
        static inline void func##p(type **p) {          \
                if (*p)                                 \
                        func(*p);                       \
        }
DEFINE_POINTER_CLEANUP(DIR, closedir);

/* Moves ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _taken_ = (p);    \
                (p) = NULL;                     \
                _taken_;                        \
        })

/* ---- resource kinds ---------------------------------------------------- */

/*
 * Declaration order is dependency order: a kind depends on earlier kinds, and within a kind only
 * volumes depend on one another (one made from another); controller/graph.c orders those.
 */
typedef enum vf_kind {
        VF_KIND_NETWORK,
        VF_KIND_HOSTDEV,
        VF_KIND_POOL,
        VF_KIND_VOLUME,
        VF_KIND_CLOUDINIT,
        VF_KIND_DOMAIN,
        _VF_KIND_MAX,
        _VF_KIND_INVALID = -EINVAL,
} vf_kind;

/* "network", "hostdev", "pool", "volume", "cloudinit", "domain": the lower-case spelling used in keys and output. */
const char *vf_kind_to_string(vf_kind kind);
/* Accepts the lower-case spelling; returns -EINVAL for anything else. */
vf_kind vf_kind_from_string(const char *s);
/* "Network", "Hostdev", "StoragePool", "Volume", "CloudInit", "Domain": the spelling of the YAML `kind:` field. */
const char *vf_kind_to_yaml(vf_kind kind);
vf_kind vf_kind_from_yaml(const char *s);

/* ---- strings ----------------------------------------------------------- */

/* asprintf() that returns NULL on failure instead of leaving the pointer undefined. */
char *vf_printf(const char *fmt, ...) _printf_(1, 2);
bool vf_streq_ptr(const char *a, const char *b);
/*
 * Replaces *field with a copy of value (NULL allowed), unless it already holds the same string; returns 0
 * or -ENOMEM, leaving *field as it was.
 */
int vf_free_and_strdup(char **field, const char *value);
/* Sets *errmsg (when errmsg is not NULL) to a printf message and returns r: for "return vf_error(...)". */
int vf_error(char **errmsg, int r, const char *fmt, ...) _printf_(3, 4);
bool vf_str_has_suffix(const char *s, const char *suffix);
/*
 * The array, grown to hold at least need (> 0) elements of size bytes: to need, or
 * to twice its capacity when that is more. Appending one at a time then
 * copies each element a bounded number of times, where growing by one copies
 * the whole array each time; asking for what is known to come takes that
 * much, without slack. NULL when out of memory, the array as it was.
 */
void *vf_grow(void *array, size_t *cap, size_t need, size_t size);

/* NULL-terminated string vectors. */
typedef char **vf_strv;
size_t vf_strv_length(char *const *v);
void vf_strv_free(char **v);
/* Appends a copy of s; returns 0 or -ENOMEM. */
int vf_strv_push(char ***v, const char *s);
/* Appends s itself, taking ownership (s is freed on failure). */
int vf_strv_consume(char ***v, char *s);
/* A copy of v in *ret (NULL, or empty, gives NULL); 0 or -ENOMEM. */
int vf_strv_copy(char *const *v, char ***ret);
bool vf_strv_contains(char *const *v, const char *s);
/* The strings of v with separator between them ("" for none); NULL on OOM. */
char *vf_strv_join(const char *const *v, const char *separator);
static inline void vf_strv_freep(char ***v) {
        vf_strv_free(*v);
}
#define _cleanup_strv_free_ _cleanup_(vf_strv_freep)

/* A growable byte buffer that is always NUL-terminated. */
typedef struct vf_buf {
        char *data;
        size_t len;
        size_t cap;
        bool oom; /* sticky: once set, every append is a no-op */
} vf_buf;

void vf_buf_append(vf_buf *b, const char *s, size_t len);
void vf_buf_puts(vf_buf *b, const char *s);
void vf_buf_printf(vf_buf *b, const char *fmt, ...) _printf_(2, 3);
/* Appends s as a JSON string literal, quotes included; NULL becomes null, a byte not valid UTF-8 U+FFFD. */
void vf_buf_put_json_string(vf_buf *b, const char *s);
/* Hands the contents to the caller, or returns NULL (and frees) after an OOM. */
char *vf_buf_steal(vf_buf *b);
void vf_buf_done(vf_buf *b);

/* ---- hashing ----------------------------------------------------------- */

#define VF_HASH_HEX_LEN 64

/* n bytes as 2n lower-case hex digits and a NUL. */
void vf_hex(const uint8_t *bytes, size_t n, char *out);
/* SHA-256 of data, as lower-case hex. */
void vf_sha256_hex(const void *data, size_t len, char out[VF_HASH_HEX_LEN + 1]);

/* A string-keyed hash map. Keys are copied (but see vf_map_new_borrowing_keys()); values are borrowed. */
typedef struct vf_map vf_map;
vf_map *vf_map_new(void);
/*
 * A map that keeps the caller's keys instead of copies: each must stay as it is, at the same
 * address, while it is in the map, as a string held by its value does. A put that replaces a
 * value takes the new key too.
 */
vf_map *vf_map_new_borrowing_keys(void);
void vf_map_free(vf_map *m);
/* Frees each value with free_value, then the map; safe on NULL. */
void vf_map_free_with(vf_map *m, void (*free_value)(void *value));
DEFINE_POINTER_CLEANUP(vf_map, vf_map_free);
/* Inserts or replaces; returns 0 or -ENOMEM. */
int vf_map_put(vf_map *m, const char *key, void *value);
void *vf_map_get(const vf_map *m, const char *key);
/* Returns the removed value, or NULL. */
void *vf_map_remove(vf_map *m, const char *key);
size_t vf_map_size(const vf_map *m);
/* Iterates in no particular order: start with *it = 0; returns false at the end. */
bool vf_map_next(const vf_map *m, size_t *it, const char **key, void **value);

/* ---- time -------------------------------------------------------------- */

/* CLOCK_REALTIME in microseconds: for timestamps people read. */
int64_t vf_now_realtime_usec(void);
/* CLOCK_MONOTONIC in microseconds: for timeouts and deadlines. */
int64_t vf_now_monotonic_usec(void);
/* Fills buf from the kernel's random pool (getrandom(2)); 0 or a negative errno. */
int vf_random_bytes(void *buf, size_t n);
/* RFC 3339 UTC with seconds, e.g. 2026-11-26T01:32:40Z; "-" for 0. */
void vf_format_time(int64_t realtime_usec, char out[32]);
/* The same with milliseconds, e.g. 2026-11-26T01:32:40.123Z: for log lines. */
void vf_format_time_msec(int64_t realtime_usec, char out[32]);
/* A length of time as people glance at it, in its largest whole unit: "12s", "3m", "2h", "5d" (sign dropped). */
void vf_format_duration(int64_t usec, char out[16]);

/* ---- files ------------------------------------------------------------- */

/*
 * Whether fd is the stream systemd connected to the journal: $JOURNAL_STREAM
 * names its device and inode ("DEV:INO"), as systemd.exec(5) documents. Such
 * a stream's lines get their time from journald.
 */
bool vf_fd_is_journal_stream(int fd);

/* Reads a whole regular file of at most max_size bytes (-EFBIG beyond). */
int vf_read_file(const char *path, size_t max_size, char **ret, size_t *ret_len);
/*
 * Writes a whole file under a temporary name beside it, then renames it into place: a reader
 * sees the old file or the new one, never a part. The mode is 0666 less the umask.
 */
int vf_write_file_atomic(const char *path, const void *data, size_t len);

/* ---- trust ------------------------------------------------------------- */

/*
 * sshd's StrictModes: whether only root and owner (root again, or the user
 * virtform runs as) can change what st describes: one of them owns it, and
 * neither group nor others may write it.
 */
struct stat;
bool vf_trust_owner_mode(const struct stat *st, uid_t owner);
/*
 * 0 when vf_trust_owner_mode(st, owner); else 1 and in *ret why not and the
 * command that changes that: "SUBJECT is owned by uid N, not root; run
 * 'chown root PATH'". subject is taken, even on failure. -ENOMEM.
 */
int vf_trust_stat(const struct stat *st, const char *path, uid_t owner, char *subject_taken, char **ret);
/*
 * The directories above real (a resolved path, which is not checked
 * itself), each as vf_trust_stat() asks, or owned by root and sticky (like
 * /tmp, whose entries only their owners may rename). 0 when they are; 1 with
 * *ret saying which is not ("WHAT PATH is ...") and what to do; or -ENOMEM.
 */
int vf_trust_ancestors(const char *real, uid_t owner, const char *what, char **ret);
