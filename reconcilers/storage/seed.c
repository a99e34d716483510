/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A NoCloud seed: the ISO 9660 image cloud-init looks for on a disk labelled
 * "cidata", with the files user-data, meta-data and network-config. Built in
 * memory with libisofs, byte for byte the same for the same spec, so that a
 * pass can tell a changed seed from an unchanged one by its hash alone.
 */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

#include <strings.h>
#include <sys/stat.h>
/* burn_source, which libisofs's reader of the image is, without libburn. */
#define LIBISOFS_WITHOUT_LIBBURN
#include <libisofs/libisofs.h>

#define SEED_VOLUME_ID "cidata"
#define SEED_BLOCK 2048
/* Every time in the image, so that the same spec makes the same bytes: 2000-01-01T00:00:00Z. */
#define SEED_TIME ((time_t) 946684800)
/* The same as ECMA-119 writes it: YYYYMMDDhhmmsscc, in GMT. */
#define SEED_TIME_DIGITS "2000010100000000"

void rc_seed_done(rc_seed *s) {
        free(s->data);
        *s = (rc_seed) {};
}

/* Length-prefixed, so that no two specs hash alike by moving bytes from one field to the next. */
static void put_field(vf_buf *b, const char *s) {
        if (!s) {
                vf_buf_puts(b, "-\n");
                return;
        }
        vf_buf_printf(b, "%zu:", strlen(s));
        vf_buf_puts(b, s);
}

/* spec's instance-id, or "iid-" and 16 hex digits of the content's hash: a changed seed gets a new one. */
static int seed_instance_id(const schema_cloudinit_spec *spec, char **ret) {
        char digest[VF_HASH_HEX_LEN + 1];
        vf_buf b = {};

        if (spec->instance_id) {
                *ret = strdup(spec->instance_id);
                return *ret ? 0 : -ENOMEM;
        }
        put_field(&b, spec->user_data);
        put_field(&b, spec->network_config);
        put_field(&b, spec->hostname);
        if (b.oom) {
                vf_buf_done(&b);
                return -ENOMEM;
        }
        vf_sha256_hex(b.data, b.len, digest);
        vf_buf_done(&b);
        *ret = vf_printf("iid-%.16s", digest);
        return *ret ? 0 : -ENOMEM;
}

/*
 * A YAML scalar that reads back as the string s: plain when it is a word YAML takes for nothing but a
 * string (a letter first, no number, no YAML 1.1 boolean or null), else double-quoted.
 */
static void put_yaml_scalar(vf_buf *b, const char *s) {
        static const char *const words[] = { "y", "n", "yes", "no", "on", "off", "true", "false", "null" };
        bool plain = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z');

        for (const char *p = s; plain && *p; p++)
                plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                        strchr("-._", *p);
        for (size_t i = 0; plain && i < ELEMENTSOF(words); i++)
                plain = strcasecmp(s, words[i]) != 0;
        if (plain)
                vf_buf_puts(b, s);
        else
                vf_buf_put_json_string(b, s); /* JSON's strings are YAML's double-quoted scalars */
}

/* The meta-data file: instance-id and, when given, local-hostname. */
static int seed_meta_data(const schema_cloudinit_spec *spec, char **ret) {
        _cleanup_free_ char *instance_id = NULL;
        vf_buf b = {};
        int r = seed_instance_id(spec, &instance_id);

        if (r < 0)
                return r;
        vf_buf_puts(&b, "instance-id: ");
        put_yaml_scalar(&b, instance_id);
        if (spec->hostname) {
                vf_buf_puts(&b, "\nlocal-hostname: ");
                put_yaml_scalar(&b, spec->hostname);
        }
        vf_buf_puts(&b, "\n");
        *ret = vf_buf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}

/* libisofs's own words for what failed. */
static int iso_failed(char **errmsg, int code, const char *what) {
        return vf_error(errmsg, code == (int) ISO_OUT_OF_MEM ? -ENOMEM : -EIO,
                        "cannot build the cloud-init seed: %s: %s", what, iso_error_to_msg(code));
}

static void fix_node(IsoNode *node, mode_t mode) {
        iso_node_set_permissions(node, mode);
        iso_node_set_uid(node, 0);
        iso_node_set_gid(node, 0);
        iso_node_set_mtime(node, SEED_TIME);
        iso_node_set_atime(node, SEED_TIME);
        iso_node_set_ctime(node, SEED_TIME);
}

static int add_file(IsoImage *image, const char *name, const char *content, char **errmsg) {
        size_t len = strlen(content);
        /* The stream owns (and frees) its buffer; malloc(0) may be NULL, so give it a byte. */
        unsigned char *buf = malloc(len ? len : 1);
        IsoStream *stream = NULL;
        IsoFile *file = NULL;
        int r;

        if (!buf)
                return -ENOMEM;
        memcpy(buf, content, len);
        r = iso_memory_stream_new(buf, len, &stream);
        if (r < 0) {
                free(buf);
                return iso_failed(errmsg, r, name);
        }
        r = iso_image_add_new_file(image, iso_image_get_root(image), name, stream, &file);
        if (r < 0) {
                iso_stream_unref(stream);
                return iso_failed(errmsg, r, name);
        }
        fix_node((IsoNode *) file, 0444);
        return 0;
}

static int build_tree(IsoImage *image, const schema_cloudinit_spec *spec, char **errmsg) {
        _cleanup_free_ char *meta_data = NULL;
        int r = seed_meta_data(spec, &meta_data);

        if (r < 0)
                return r;
        iso_image_set_volume_id(image, SEED_VOLUME_ID);
        fix_node((IsoNode *) iso_image_get_root(image), 0555);
        /* NoCloud wants user-data even when there is nothing in it. */
        r = add_file(image, "user-data", spec->user_data ? spec->user_data : "", errmsg);
        if (r >= 0)
                r = add_file(image, "meta-data", meta_data, errmsg);
        if (r >= 0 && spec->network_config)
                r = add_file(image, "network-config", spec->network_config, errmsg);
        return r;
}

/* Rock Ridge and Joliet keep the names' dashes and case; every time and owner is fixed. */
static int make_write_opts(IsoWriteOpts **ret, char **errmsg) {
        IsoWriteOpts *opts = NULL;
        char uuid[] = SEED_TIME_DIGITS;
        int r = iso_write_opts_new(&opts, 0);

        if (r < 0)
                return iso_failed(errmsg, r, "write options");
        int results[] = {
                iso_write_opts_set_iso_level(opts, 3),
                iso_write_opts_set_rockridge(opts, 1),
                iso_write_opts_set_joliet(opts, 1),
                iso_write_opts_set_always_gmt(opts, 1),
                /* The volume id in lower case, as cloud-localds writes it. */
                iso_write_opts_set_relaxed_vol_atts(opts, 1),
                iso_write_opts_set_replace_mode(opts, 0, 0, 0, 0),
                iso_write_opts_set_replace_timestamps(opts, 2),
                iso_write_opts_set_default_timestamp(opts, SEED_TIME),
                iso_write_opts_set_dir_rec_mtime(opts, 1 | 2 | 4),
                iso_write_opts_set_pvd_times(opts, SEED_TIME, SEED_TIME, 0, 0, uuid),
        };
        for (size_t i = 0; i < ELEMENTSOF(results); i++)
                if (results[i] < 0) {
                        iso_write_opts_free(opts);
                        return iso_failed(errmsg, results[i], "write options");
                }
        *ret = opts;
        return 0;
}

/* Reads the image the burn source writes, to its end; cancels the writer on failure. */
static int read_image(struct burn_source *src, rc_seed *seed, char **errmsg) {
        off_t size = src->get_size(src);
        size_t at = 0;
        int n;

        if (size <= 0 || size % SEED_BLOCK != 0) {
                src->cancel(src);
                return vf_error(errmsg, -EIO, "cannot build the cloud-init seed: libisofs gives it %jd bytes",
                                (intmax_t) size);
        }
        seed->data = malloc((size_t) size);
        if (!seed->data) {
                src->cancel(src);
                return -ENOMEM;
        }
        while (at < (size_t) size && (n = src->read_xt(src, seed->data + at, SEED_BLOCK)) == SEED_BLOCK)
                at += SEED_BLOCK;
        if (at != (size_t) size) {
                src->cancel(src);
                return vf_error(errmsg, -EIO, "cannot build the cloud-init seed: libisofs wrote %zu of %jd bytes",
                                at, (intmax_t) size);
        }
        seed->size = at;
        return 0;
}

static int write_image(IsoImage *image, rc_seed *seed, char **errmsg) {
        struct burn_source *src = NULL;
        IsoWriteOpts *opts = NULL;
        int r = make_write_opts(&opts, errmsg);

        if (r < 0)
                return r;
        r = iso_image_create_burn_source(image, opts, &src);
        iso_write_opts_free(opts);
        if (r < 0)
                return iso_failed(errmsg, r, "image");
        r = read_image(src, seed, errmsg);
        /* Joins the writer thread. */
        src->free_data(src);
        free(src);
        return r;
}

int rc_seed_build(const schema_cloudinit_spec *spec, rc_seed *ret, char **errmsg) {
        _cleanup_(rc_seed_done) rc_seed seed = {};
        IsoImage *image = NULL;
        /*
         * libisofs keeps global state (its message queue) from iso_init() to iso_finish(): one pair per
         * build leaves nothing behind. Flag bit 0: it must not set the process's locale.
         */
        int r = iso_init_with_flag(1);

        if (r < 0)
                return iso_failed(errmsg, r, "init");
        /* Its messages go nowhere: what fails comes back as an error code, and is said with it. */
        r = iso_set_msgs_severities("NEVER", "NEVER", "libisofs");
        if (r < 0)
                r = iso_failed(errmsg, r, "messages");
        if (r >= 0) {
                r = iso_image_new(SEED_VOLUME_ID, &image);
                if (r < 0)
                        r = iso_failed(errmsg, r, "image");
        }
        if (r >= 0)
                r = build_tree(image, spec, errmsg);
        if (r >= 0)
                r = write_image(image, &seed, errmsg);
        if (image)
                iso_image_unref(image);
        iso_finish();
        if (r < 0)
                return r;
        vf_sha256_hex(seed.data, seed.size, seed.hash);
        *ret = seed;
        seed = (rc_seed) {};
        return 0;
}

int rc_cloudinit_render(const schema_resource *r, uint8_t **ret, size_t *ret_size, char **errmsg) {
        rc_seed seed = {};

        if (r->kind != VF_KIND_CLOUDINIT)
                return vf_error(errmsg, -EINVAL, "%s %s is no CloudInit", vf_kind_to_yaml(r->kind), r->name);
        int k = rc_seed_build(&r->cloudinit, &seed, errmsg);
        if (k < 0)
                return k;
        *ret = seed.data;
        *ret_size = seed.size;
        return 0;
}
