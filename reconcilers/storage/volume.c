/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The volume reconciler.
 *
 * libvirt keeps no metadata on volumes, so what virtform owns is what its
 * store recorded: the volume's key (its path) in record->uuid. A volume's
 * source (from.volume, from.file, from.url) is read only when it is created;
 * afterwards only its capacity follows the file, and only upward.
 *
 * An import streams the bytes into the volume (memory stays flat), checks
 * them as they pass (the qcow2 magic, the digest), and deletes the volume
 * when anything goes wrong: nothing half-made is recorded or Ready. A run
 * killed before it recorded a volume it made leaves it unrecorded, with its
 * create step the newest in the event log: the next run deletes it and makes
 * it again.
 */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

#include <fcntl.h>
#include <libvirt/virterror.h>
#include <nettle/sha2.h>
#include <sys/stat.h>

/* Step names of the volume's own writes, as the event log keeps them. */
#define STEP_UPLOAD "upload"
#define STEP_RESIZE "resize"

/* The first bytes of every qcow2 image; its header then gives where its backing file's name is (0: none). */
static const uint8_t qcow2_magic[4] = { 'Q', 'F', 'I', 0xfb };
#define QCOW2_BACKING_OFFSET 8
#define QCOW2_HEAD_SIZE 16

/* One volume as this pass sees it. */
typedef struct volume {
        rc_context *ctx;
        const rc_request *req;
        rc_result *res;
        char *pool_name;
        const char *name; /* in the pool */
        virStoragePoolPtr pool; /* NULL: the pool does not exist */
        virStorageVolPtr vol; /* NULL: the volume does not exist */
        char *key;
} volume;

static void volume_done(volume *v) {
        free(v->pool_name);
        free(v->key);
        if (v->vol)
                virStorageVolFree(v->vol);
        if (v->pool)
                virStoragePoolFree(v->pool);
}

static const char *format_name(schema_volume_format f) {
        return f == SCHEMA_VOLUME_QCOW2 ? "qcow2" : "raw";
}

/*
 * Looks up "POOL/NAME", the pool in the pass's inventory: *ret_pool NULL when the pool is missing, *ret_vol
 * NULL when the volume is.
 */
static int lookup(rc_context *ctx, const char *pool_and_name, virStoragePoolPtr *ret_pool, virStorageVolPtr *ret_vol,
                  char **errmsg) {
        const char *slash = strchr(pool_and_name, '/');
        _cleanup_free_ char *pool_name = slash ? strndup(pool_and_name, slash - pool_and_name) : NULL;

        *ret_pool = NULL;
        *ret_vol = NULL;
        if (!pool_name)
                return slash ? -ENOMEM : vf_error(errmsg, -EINVAL, "%s names no pool: POOL/NAME", pool_and_name);
        /* A pool missing from the pass's listing leaves no error of its own: none may linger from before. */
        virResetLastError();
        virStoragePoolPtr pool = rc_inventory_lookup(ctx, VF_KIND_POOL, pool_name);
        int code = pool ? VIR_ERR_OK : virGetLastErrorCode();
        if (code != VIR_ERR_OK && code != VIR_ERR_NO_STORAGE_POOL)
                return vf_error(errmsg, -EIO, "cannot look up pool %s: %s", pool_name, rc_libvirt_error());
        if (!pool)
                return 0;
        /* The inventory's handle goes when a pool is defined again: the volume holds its own. */
        if (virStoragePoolRef(pool) < 0)
                return vf_error(errmsg, -EIO, "cannot hold pool %s: %s", pool_name, rc_libvirt_error());
        *ret_pool = pool;
        rc_count_read(ctx, RC_CALL_GET_INFO);
        *ret_vol = virStorageVolLookupByName(*ret_pool, slash + 1);
        if (!*ret_vol && virGetLastErrorCode() != VIR_ERR_NO_STORAGE_VOL)
                return vf_error(errmsg, -EIO, "cannot look up volume %s: %s", pool_and_name, rc_libvirt_error());
        return 0;
}

static int volume_open(rc_context *ctx, const rc_request *req, rc_result *res, volume *v) {
        _cleanup_free_ char *errmsg = NULL;
        int r;

        *v = (volume) { .ctx = ctx, .req = req, .res = res };
        r = lookup(ctx, req->name, &v->pool, &v->vol, &errmsg);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                rc_result_set(res, RC_FAILED, false, "ReadFailed", "%s", errmsg);
                return r;
        }
        v->pool_name = strndup(req->name, strchr(req->name, '/') - req->name);
        v->name = strchr(req->name, '/') + 1;
        if (!v->pool_name)
                return -ENOMEM;
        if (!v->vol)
                return 0;
        rc_count_read(ctx, RC_CALL_GET_INFO);
        const char *key = virStorageVolGetKey(v->vol);
        v->key = key ? strdup(key) : NULL;
        if (!key) {
                rc_result_set(res, RC_FAILED, false, "ReadFailed", "cannot read the key of volume %s: %s", req->name,
                              rc_libvirt_error());
                return -EIO;
        }
        return v->key ? 0 : -ENOMEM;
}

static bool recorded_as(const rc_request *req, const char *key) {
        return req->record && req->record->uuid && key && strcmp(req->record->uuid, key) == 0;
}

static int end_step(volume *v, const char *what, bool ok, const char *fallback_reason) {
        return rc_storage_step_end(v->ctx, v->req, v->res, v->req->name, what, ok, fallback_reason);
}

static int volume_info(volume *v, virStorageVolPtr vol, virStorageVolInfo *info) {
        rc_count_read(v->ctx, RC_CALL_GET_INFO);
        if (virStorageVolGetInfo(vol, info) == 0)
                return 0;
        rc_result_set(v->res, RC_FAILED, false, "ReadFailed", "cannot read the size of volume %s: %s", v->req->name,
                      rc_libvirt_error());
        return -EIO;
}

/* A volume's format and, for a backing store, its path. */
static int volume_format(volume *v, virStorageVolPtr vol, char **ret) {
        rc_count_read(v->ctx, RC_CALL_GET_XML);
        _cleanup_free_ char *xml = virStorageVolGetXMLDesc(vol, 0);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xml ? rc_xml_parse(xml) : NULL;

        if (!doc) {
                rc_result_set(v->res, RC_FAILED, false, "ReadFailed", "cannot read the definition of volume %s: %s",
                              v->req->name, rc_libvirt_error());
                return -EIO;
        }
        *ret = rc_xml_xpath_string(doc, "/volume/target/format/@type");
        return 0;
}

static int pool_info(volume *v, virStoragePoolInfo *info) {
        rc_count_read(v->ctx, RC_CALL_GET_INFO);
        if (virStoragePoolGetInfo(v->pool, info) == 0)
                return 0;
        rc_result_set(v->res, RC_FAILED, false, "ReadFailed", "cannot read the size of pool %s: %s", v->pool_name,
                      rc_libvirt_error());
        return -EIO;
}

/*
 * A capacity larger than the whole pool is a mistake, not thin provisioning:
 * refused before anything is made or grown. Asked only then: a volume that
 * stays as it is reads nothing of its pool.
 */
static int check_fits_pool(volume *v, bool *ok) {
        uint64_t want = v->req->desired->volume.capacity;
        virStoragePoolInfo info;
        int r;

        *ok = true;
        if (!want)
                return 0;
        r = pool_info(v, &info);
        *ok = r >= 0 && want <= info.capacity;
        if (r < 0 || *ok)
                return r;
        rc_result_set(v->res, RC_FAILED, false, "InsufficientSpace",
                      "volume %s asks for a capacity of %" PRIu64 " bytes, more than pool %s holds in all (%llu "
                      "bytes); give a smaller capacity, or a larger pool",
                      v->req->name, want, v->pool_name, info.capacity);
        return 0;
}

/* Refused before anything is written: a pool filled to the brim is worse than a volume not made. */
static int check_space(volume *v, uint64_t needed, bool *ok) {
        virStoragePoolInfo info;
        int r = pool_info(v, &info);
        uint64_t available = r >= 0 ? info.available : 0;

        *ok = r >= 0 && needed <= available;
        if (r < 0 || *ok)
                return r;
        rc_result_set(v->res, RC_FAILED, false, "InsufficientSpace",
                      "volume %s needs %" PRIu64 " bytes, but pool %s has %" PRIu64
                      " available; free space in the pool or make the volume smaller",
                      v->req->name, needed, v->pool_name, available);
        return 0;
}

/* ---- the definition a create is given ------------------------------------------------ */

static xmlNode *child_or_new(xmlNode *parent, const char *name) {
        xmlNode *n = rc_xml_child(parent, name);
        return n ? n : xmlNewChild(parent, NULL, BAD_CAST name, NULL);
}

static int set_size(xmlNode *root, const char *name, uint64_t bytes) {
        char text[32];
        xmlNode *n = child_or_new(root, name);

        if (!n)
                return -ENOMEM;
        snprintf(text, sizeof text, "%" PRIu64, bytes);
        xmlNodeSetContent(n, BAD_CAST text);
        return xmlSetProp(n, BAD_CAST "unit", BAD_CAST "bytes") ? 0 : -ENOMEM;
}

/*
 * desired->xml with what only creation knows: the capacity taken from the
 * source, no allocation up front when the bytes are about to be written
 * anyway, and the backing store of a copy-on-write clone.
 */
typedef struct create_params {
        uint64_t capacity; /* 0: as the file says */
        bool sparse;
        const char *backing_path;
        const char *backing_format;
} create_params;

static int create_xml(const volume *v, const create_params *p, char **ret) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = rc_xml_parse(v->req->desired->xml);
        xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
        int r = 0;

        if (!root)
                return -EBADMSG;
        if (p->capacity)
                r = set_size(root, "capacity", p->capacity);
        if (r >= 0 && p->sparse)
                r = set_size(root, "allocation", 0);
        if (r >= 0 && p->backing_path) {
                xmlNode *backing = xmlNewChild(root, NULL, BAD_CAST "backingStore", NULL);
                xmlNode *format = backing ? xmlNewChild(backing, NULL, BAD_CAST "format", NULL) : NULL;
                if (!format || !xmlNewTextChild(backing, NULL, BAD_CAST "path", BAD_CAST p->backing_path) ||
                    !xmlSetProp(format, BAD_CAST "type", BAD_CAST p->backing_format))
                        r = -ENOMEM;
        }
        if (r < 0)
                return r;
        *ret = rc_xml_format(doc);
        return *ret ? 0 : -ENOMEM;
}

/*
 * The record keeps what was applied, with the deletion policy beside it: when
 * nothing declares the volume any more, the record is all that says whether
 * its data goes.
 */
static int applied_xml(const volume *v, char **ret) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = rc_xml_parse(v->req->desired->xml);
        xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
        xmlNs *ns = root ? xmlNewNs(root, BAD_CAST RC_OWNER_NS_1, BAD_CAST "virtform") : NULL;
        bool delete = v->req->desired->volume.deletion == SCHEMA_DELETION_DELETE;

        if (!ns || !xmlSetNsProp(root, ns, BAD_CAST "deletionPolicy", BAD_CAST (delete ? "delete" : "retain")))
                return root ? -ENOMEM : -EBADMSG;
        *ret = rc_xml_format(doc);
        return *ret ? 0 : -ENOMEM;
}

/* What the record says becomes of the data; retain when it does not say: data is never lost by default. */
static int recorded_delete(const volume *v, bool *ret) {
        _cleanup_free_ char *applied = NULL;
        int r = rc_applied_desired_read(v->ctx, v->req, v->res, &applied);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = applied ? rc_xml_parse(applied) : NULL;
        xmlChar *policy = doc ? xmlGetNsProp(xmlDocGetRootElement(doc), BAD_CAST "deletionPolicy",
                                             BAD_CAST RC_OWNER_NS_1)
                              : NULL;

        *ret = policy && xmlStrcmp(policy, BAD_CAST "delete") == 0;
        xmlFree(policy);
        return r;
}

/* ---- writes ----------------------------------------------------------------------- */

static int create_step(volume *v, const char *xml, virStorageVolPtr clone_of) {
        int r = rc_step_begin(v->ctx, v->req, v->res, RC_CALL_CREATE_VOLUME, RC_STEP_CREATE_VOLUME);
        if (r <= 0)
                return r;
        virStorageVolPtr vol = clone_of ? virStorageVolCreateXMLFrom(v->pool, xml, clone_of, 0)
                                        : virStorageVolCreateXML(v->pool, xml, 0);
        r = end_step(v, RC_STEP_CREATE_VOLUME, vol != NULL, "CreateFailed");
        if (r < 0)
                return r;
        v->vol = vol;
        rc_count_read(v->ctx, RC_CALL_GET_INFO);
        const char *key = virStorageVolGetKey(vol);
        return key ? vf_free_and_strdup(&v->key, key) : 0;
}

/* In a dry run too, the volume is gone from then on, as it would be. */
static int delete_step(volume *v) {
        int r = rc_step_begin(v->ctx, v->req, v->res, RC_CALL_DELETE_VOLUME, RC_STEP_DELETE_VOLUME);
        if (r > 0)
                r = end_step(v, RC_STEP_DELETE_VOLUME, virStorageVolDelete(v->vol, 0) == 0, "DeleteFailed");
        if (r < 0)
                return r;
        virStorageVolFree(v->vol);
        v->vol = NULL;
        return 0;
}

static int resize_step(volume *v, uint64_t capacity) {
        int r = rc_step_begin(v->ctx, v->req, v->res, RC_CALL_RESIZE, STEP_RESIZE);
        if (r <= 0)
                return r;
        return end_step(v, STEP_RESIZE, virStorageVolResize(v->vol, capacity, 0) == 0, "ResizeFailed");
}

/* ---- imports -------------------------------------------------------------------------- */

typedef struct import {
        volume *v;
        const char *source; /* the path or the URL, for messages */
        rc_upload upload;
        bool uploading; /* the upload step is open */
        bool made; /* the volume was created: undone on failure */
        struct sha256_ctx sha256;
        uint8_t head[QCOW2_HEAD_SIZE];
        uint64_t received;
        const char *reason; /* why it failed, when it was not libvirt's own step that said so */
        char *message;
} import;

static void import_done(import *im) {
        rc_upload_done(&im->upload);
        free(im->message);
}

_printf_(3, 4) static int import_fail(import *im, const char *reason, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        free(im->message);
        if (vasprintf(&im->message, fmt, ap) < 0)
                im->message = NULL;
        va_end(ap);
        im->reason = reason;
        return im->message ? -ECANCELED : -ENOMEM;
}

static int import_begin(void *userdata, int64_t length) {
        import *im = userdata;
        volume *v = im->v;
        const schema_volume_spec *spec = &v->req->desired->volume;
        _cleanup_free_ char *xml = NULL;
        bool room;
        int r;

        if (length < 0 && !spec->capacity)
                return import_fail(im, "ImportFailed",
                                   "%s announced no length, and spec.capacity is not given: the volume's size is "
                                   "not known; give spec.capacity",
                                   im->source);
        /* A raw volume keeps the capacity asked for when the image is smaller; a qcow2 image brings its own. */
        uint64_t capacity = length > 0 && (uint64_t) length > spec->capacity ? (uint64_t) length : spec->capacity;
        /* What is about to be written: the image, whatever the capacity it will have. */
        r = check_space(v, length >= 0 ? (uint64_t) length : spec->capacity, &room);
        if (r < 0 || !room)
                return r < 0 ? r : -ENOSPC;
        r = create_xml(v, &(create_params) { .capacity = capacity, .sparse = true }, &xml);
        if (r >= 0)
                r = create_step(v, xml, NULL);
        if (r < 0)
                return r;
        im->made = true;
        r = rc_step_begin(v->ctx, v->req, v->res, RC_CALL_UPLOAD, STEP_UPLOAD);
        if (r <= 0)
                return r;
        im->uploading = true;
        if (rc_upload_begin(v->ctx->conn, v->vol, length > 0 ? (uint64_t) length : 0, &im->upload) < 0) {
                im->uploading = false;
                r = end_step(v, STEP_UPLOAD, false, "ImportFailed");
                rc_upload_done(&im->upload);
                return r;
        }
        return 0;
}

/*
 * What a guest could do with the bytes decides: a raw volume holding a qcow2
 * image, or a qcow2 image with a backing file, would let a guest's disk name
 * host files (its backing file) and read them.
 */
static int check_format(import *im, size_t have) {
        bool magic = have >= sizeof qcow2_magic && memcmp(im->head, qcow2_magic, sizeof qcow2_magic) == 0;
        uint64_t backing = 0;

        if (im->v->req->desired->volume.format == SCHEMA_VOLUME_RAW)
                return !magic ? 0
                              : import_fail(im, "FormatMismatch",
                                            "%s is a qcow2 image, refused for a raw volume: a guest could then "
                                            "reach host files through its backing file; declare format: qcow2",
                                            im->source);
        if (!magic || have < QCOW2_HEAD_SIZE)
                return import_fail(im, "FormatMismatch",
                                   "%s is not a qcow2 image (it lacks the qcow2 magic); declare format: raw, or "
                                   "import the image it should be",
                                   im->source);
        for (size_t i = QCOW2_BACKING_OFFSET; i < QCOW2_BACKING_OFFSET + sizeof backing; i++)
                backing = backing << 8 | im->head[i];
        if (backing == 0)
                return 0;
        return import_fail(im, "FormatMismatch",
                           "%s is a qcow2 image with a backing file, which would name a file of this host; import a "
                           "standalone image (qemu-img convert -O qcow2 makes one)",
                           im->source);
}

static int import_chunk(void *userdata, const void *data, size_t len) {
        import *im = userdata;

        if (rc_interrupted(im->v->ctx))
                return -EINTR;
        if (im->received < sizeof im->head) {
                size_t missing = sizeof im->head - (size_t) im->received, n = len < missing ? len : missing;
                memcpy(im->head + im->received, data, n);
                int r = n == missing ? check_format(im, sizeof im->head) : 0;
                if (r < 0)
                        return r;
        }
        im->received += len;
        if (im->v->req->desired->volume.sha256)
                sha256_update(&im->sha256, len, data);
        if (rc_upload_send(&im->upload, data, len) < 0)
                return import_fail(im, rc_storage_failure_reason("ImportFailed"), "writing volume %s failed: %s",
                                   im->v->req->name, rc_libvirt_error());
        return 0;
}

static int check_digest(import *im) {
        const char *want = im->v->req->desired->volume.sha256;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char got[VF_HASH_HEX_LEN + 1];

        if (!want)
                return 0;
        sha256_digest(&im->sha256, sizeof digest, digest);
        vf_hex(digest, sizeof digest, got);
        if (strcmp(got, want) == 0)
                return 0;
        return import_fail(im, "ChecksumMismatch",
                           "%s has SHA-256 %s, but spec.from.sha256 is %s; the download is not the image declared",
                           im->source, got, want);
}

/* Once every byte has passed: the checks that need them all, then libvirt's word that they are written. */
static int import_end(import *im) {
        int r = im->received < sizeof im->head ? check_format(im, (size_t) im->received) : 0;

        if (r >= 0)
                r = check_digest(im);
        if (r >= 0 && rc_upload_finish(&im->upload) < 0)
                r = import_fail(im, rc_storage_failure_reason("ImportFailed"), "writing volume %s failed: %s",
                                im->v->req->name, rc_libvirt_error());
        if (r < 0)
                return r;
        im->uploading = false;
        rc_upload_done(&im->upload);
        return rc_host_step_end(im->v->ctx, im->v->req, im->v->res, STEP_UPLOAD, true, NULL);
}

/* Undoes a failed import: the upload abandoned, the volume deleted. Then res says why. */
static int import_undo(import *im, int error) {
        volume *v = im->v;
        _cleanup_free_ char *reason = im->reason ? strdup(im->reason) : NULL, *message = TAKE_PTR(im->message);

        if (error == -EINTR) {
                free(reason);
                free(message);
                reason = strdup("Interrupted");
                message = vf_printf("the import from %s was stopped before it finished; it starts again at the next "
                                    "run", im->source);
        } else if (!reason && v->res->reason) {
                /* The step or the space check said why already. */
                reason = strdup(v->res->reason);
                free(message);
                message = v->res->message ? strdup(v->res->message) : NULL;
        } else if (!im->reason)
                return error;
        if (!reason || !message)
                return -ENOMEM;
        if (im->uploading) {
                rc_upload_done(&im->upload);
                im->uploading = false;
                (void) rc_host_step_end(v->ctx, v->req, v->res, STEP_UPLOAD, false, message);
        }
        bool deleted = !im->made || !v->vol || delete_step(v) >= 0;
        _cleanup_free_ char *why_kept = deleted ? NULL : strdup(v->res->message ? v->res->message : "");
        rc_result_set(v->res, RC_FAILED, false, reason, "%s%s%s%s", message,
                      im->made ? (deleted ? "; the half-made volume was deleted" : "; the half-made volume could "
                                                                                  "not be deleted (")
                               : "",
                      why_kept ? why_kept : "", why_kept ? "); delete it by hand" : "");
        return 0;
}

static int import_file(import *im) {
        _cleanup_close_ int fd = open(im->source, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        int r;

        if (fd < 0 || fstat(fd, &st) < 0)
                return import_fail(im, "ImportFailed", "cannot read %s: %s", im->source, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return import_fail(im, "ImportFailed", "%s is not a regular file; from.file names an image file",
                                   im->source);
        buf = malloc(RC_UPLOAD_CHUNK_SIZE);
        if (!buf)
                return -ENOMEM;
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        r = import_begin(im, st.st_size);
        if (r < 0 || !im->uploading)
                return r;
        for (;;) {
                ssize_t n = read(fd, buf, RC_UPLOAD_CHUNK_SIZE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return import_fail(im, "ImportFailed", "reading %s failed: %s", im->source, strerror(errno));
                if (n == 0)
                        break;
                r = import_chunk(im, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
        if (im->received != (uint64_t) st.st_size)
                return import_fail(im, "ImportFailed", "%s changed size while it was read; import it again once "
                                   "nothing writes it", im->source);
        return import_end(im);
}

static int import_url(import *im) {
        const rc_fetch_sink sink = { .begin = import_begin, .chunk = import_chunk, .userdata = im };
        _cleanup_free_ char *errmsg = NULL;
        int r = rc_fetch(im->v->ctx, im->source, &sink, &errmsg);

        if (r == -EIO && errmsg && !im->reason)
                return import_fail(im, "ImportFailed", "%s", errmsg);
        if (r < 0 || !im->uploading)
                return r;
        return import_end(im);
}

static int import_image(volume *v) {
        const schema_volume_spec *spec = &v->req->desired->volume;
        _cleanup_(import_done) import im = { .v = v, .source = spec->from };
        int r;

        if (v->ctx->dry_run) {
                (void) rc_step_begin(v->ctx, v->req, v->res, RC_CALL_CREATE_VOLUME, RC_STEP_CREATE_VOLUME);
                return rc_step_begin(v->ctx, v->req, v->res, RC_CALL_UPLOAD, STEP_UPLOAD);
        }
        sha256_init(&im.sha256);
        r = spec->source == SCHEMA_SOURCE_FILE ? import_file(&im) : import_url(&im);
        return r < 0 ? import_undo(&im, r) : 0;
}

/* ---- creation ------------------------------------------------------------------------- */

typedef struct source_volume {
        virStoragePoolPtr pool;
        virStorageVolPtr vol;
        virStorageVolInfo info;
        char *path;
        char *format;
} source_volume;

static void source_volume_done(source_volume *s) {
        if (s->vol)
                virStorageVolFree(s->vol);
        if (s->pool)
                virStoragePoolFree(s->pool);
        free(s->path);
        free(s->format);
}

static int open_source(volume *v, source_volume *s) {
        const char *from = v->req->desired->volume.from;
        _cleanup_free_ char *errmsg = NULL;
        int r = lookup(v->ctx, from, &s->pool, &s->vol, &errmsg);

        if (r == -ENOMEM)
                return r;
        if (r < 0 || !s->vol) {
                rc_result_set(v->res, RC_FAILED, false, "SourceNotFound", "from.volume %s: %s", from,
                              errmsg ? errmsg : "no such volume; declare it or create it");
                return -ENOENT;
        }
        r = volume_info(v, s->vol, &s->info);
        if (r >= 0)
                r = volume_format(v, s->vol, &s->format);
        if (r < 0)
                return r;
        rc_count_read(v->ctx, RC_CALL_GET_INFO);
        s->path = virStorageVolGetPath(s->vol);
        if (!s->path || !s->format) {
                rc_result_set(v->res, RC_FAILED, false, "ReadFailed", "cannot read the path and format of volume %s: %s",
                              from, rc_libvirt_error());
                return -EIO;
        }
        return 0;
}

/* from.volume: a qcow2 on top of the source (copy-on-write), or with clone: copy a full copy of it. */
static int create_from_volume(volume *v) {
        const schema_volume_spec *spec = &v->req->desired->volume;
        _cleanup_(source_volume_done) source_volume s = {};
        _cleanup_free_ char *xml = NULL;
        bool room = true;
        int r = open_source(v, &s);

        if (r < 0)
                return r;
        create_params p = { .capacity = spec->capacity ? spec->capacity : s.info.capacity };
        if (spec->full_copy)
                r = check_space(v, s.info.allocation, &room);
        else {
                p.backing_path = s.path;
                p.backing_format = s.format;
        }
        if (r < 0 || !room)
                return r;
        r = create_xml(v, &p, &xml);
        return r < 0 ? r : create_step(v, xml, spec->full_copy ? s.vol : NULL);
}

static int create(volume *v) {
        bool fits;
        int r = check_fits_pool(v, &fits);

        if (r < 0 || !fits)
                return r;
        switch (v->req->desired->volume.source) {
        case SCHEMA_SOURCE_VOLUME:
                return create_from_volume(v);
        case SCHEMA_SOURCE_FILE:
        case SCHEMA_SOURCE_URL:
                return import_image(v);
        default:
                return create_step(v, v->req->desired->xml, NULL);
        }
}

/* ---- apply -------------------------------------------------------------------------------- */

/* Capacity only grows: a smaller one is refused, since shrinking a volume cuts off what its guest wrote. */
static int converge_capacity(volume *v) {
        uint64_t want = v->req->desired->volume.capacity;
        virStorageVolInfo info;
        int r;

        if (!want || !v->vol)
                return 0; /* nothing asked, or a dry run's volume not made yet */
        r = volume_info(v, v->vol, &info);
        if (r < 0 || want == info.capacity)
                return r;
        if (want < info.capacity) {
                rc_result_set(v->res, RC_FAILED, false, "ShrinkRefused",
                              "volume %s has a capacity of %llu bytes; spec.capacity asks for %" PRIu64
                              ", but a volume is never shrunk (its guest's data would be cut off); the volume is "
                              "left as it is: give a capacity of at least %llu",
                              v->req->name, info.capacity, want, info.capacity);
                return rc_result_wait(v->res, RC_WAIT_CHANGE, NULL, 0);
        }
        bool fits;
        r = check_fits_pool(v, &fits);
        return r < 0 || !fits ? r : resize_step(v, want);
}

/* The format is chosen at creation, as the source is: a volume is never converted behind its guest's back. */
static int check_existing_format(volume *v) {
        const char *want = format_name(v->req->desired->volume.format);
        _cleanup_free_ char *have = NULL;
        int r = volume_format(v, v->vol, &have);

        if (r < 0 || vf_streq_ptr(have, want))
                return r;
        rc_result_set(v->res, RC_FAILED, false, "FormatChangeRefused",
                      "volume %s is %s, and the file now says %s; a volume's format is only chosen when it is "
                      "created: restore format: %s, or declare a new volume",
                      v->req->name, have ? have : "of unknown format", want, have ? have : "...");
        return rc_result_wait(v->res, RC_WAIT_CHANGE, NULL, 0);
}

static int conflict(volume *v) {
        rc_result_set(v->res, RC_FAILED, false, "Conflict",
                      "volume %s already exists and was not made by this virtform state (libvirt keeps no owner "
                      "on volumes: the state file records those it made); rename the resource, remove the "
                      "existing volume, or set metadata.adopt: true to take it over",
                      v->req->name);
        return 0;
}

/*
 * The XML to record, unless the record has it: it is named by the whole desired hash, since the
 * deletion policy it carries is a field of the spec, not of the definition.
 */
static int record_applied_xml(volume *v) {
        const state_record *rec = v->req->record;

        if (rec && vf_streq_ptr(rec->applied_desired_hash, v->req->hash))
                return 0;
        return applied_xml(v, &v->res->applied_desired_xml) ?:
               vf_free_and_strdup(&v->res->applied_desired_hash, v->req->hash);
}

static int set_applied(volume *v, rc_outcome outcome, size_t steps_before, const char *what) {
        const char *const *steps = (const char *const *) v->res->steps;
        _cleanup_free_ char *done = vf_strv_length(v->res->steps) > steps_before
                                            ? vf_strv_join(steps + steps_before, ", ")
                                            : strdup("in sync");
        int r = vf_free_and_strdup(&v->res->uuid, v->key);

        if (r >= 0)
                r = record_applied_xml(v);
        if (r < 0 || !done)
                return r < 0 ? r : -ENOMEM;
        if (outcome == RC_UNCHANGED && (what || vf_strv_length(v->res->steps) > steps_before))
                outcome = RC_UPDATED;
        rc_result_set(v->res, outcome, true, "Applied", "%s%s%s%s", what ? what : "", what ? " (" : "", done,
                      what ? ")" : "");
        return 0;
}

/* plan, before the pool is made (by the same apply): the volume is all to make, and nothing can be read of it. */
static int plan_in_missing_pool(volume *v, size_t steps_before) {
        schema_volume_source source = v->req->desired->volume.source;
        int r = rc_step_begin(v->ctx, v->req, v->res, RC_CALL_CREATE_VOLUME, RC_STEP_CREATE_VOLUME);

        if (r >= 0 && (source == SCHEMA_SOURCE_FILE || source == SCHEMA_SOURCE_URL))
                r = rc_step_begin(v->ctx, v->req, v->res, RC_CALL_UPLOAD, STEP_UPLOAD);
        return r < 0 ? r : set_applied(v, RC_CREATED, steps_before, NULL);
}

static int volume_apply(rc_context *ctx, const rc_request *req, rc_result *res) {
        _cleanup_(volume_done) volume v = {};
        size_t steps_before = vf_strv_length(res->steps);
        const char *what = NULL;
        bool ours = false, half_made = false, created;
        int r = volume_open(ctx, req, res, &v);

        if (r < 0)
                return r;
        if (!v.pool && ctx->dry_run)
                return plan_in_missing_pool(&v, steps_before);
        if (!v.pool) {
                rc_result_set(res, RC_FAILED, false, "PoolNotFound",
                              "pool %s does not exist; declare it in a file or create it", req->desired->volume.pool);
                return 0;
        }
        if (v.vol) {
                ours = recorded_as(req, v.key);
                r = ours ? 0 : rc_storage_made_unrecorded(ctx, req, &half_made);
                if (r < 0)
                        return r;
                if (!ours && !half_made && !req->desired->adopt)
                        return conflict(&v);
        }
        if (half_made) {
                /* Its content cannot be trusted: an import may have stopped halfway. */
                r = delete_step(&v);
                if (r < 0)
                        return r;
                what = "made again: a run that was making it stopped before it finished";
        } else if (!v.vol && req->record && req->record->uuid)
                what = "recreated: it had been deleted outside virtform";
        else if (v.vol && !ours)
                what = "adopted: the state file now records it";
        created = !v.vol;
        r = created ? create(&v) : check_existing_format(&v);
        /* Made, or ours already: recorded whatever follows, so that a refusal later is no half-made volume. */
        if (r >= 0 && v.vol && (created || ours))
                r = vf_free_and_strdup(&res->uuid, v.key);
        if (r < 0 || res->outcome == RC_FAILED)
                return r;
        r = converge_capacity(&v);
        if (r < 0 || res->outcome == RC_FAILED)
                return r;
        return set_applied(&v, created ? RC_CREATED : RC_UNCHANGED, steps_before, what);
}

/* ---- remove ------------------------------------------------------------------------------- */

/* Whether vol (in pool) is a copy-on-write volume on top of path; adds it to *users when it is. */
static int collect_overlay(volume *v, virStoragePoolPtr pool, virStorageVolPtr vol, const char *path, char ***users) {
        rc_count_read(v->ctx, RC_CALL_GET_XML);
        _cleanup_free_ char *xml = virStorageVolGetXMLDesc(vol, 0);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xml ? rc_xml_parse(xml) : NULL;
        _cleanup_free_ char *backing = doc ? rc_xml_xpath_string(doc, "/volume/backingStore/path") : NULL;

        if (!vf_streq_ptr(backing, path))
                return 0;
        return vf_strv_consume(users, vf_printf("%s/%s", virStoragePoolGetName(pool), virStorageVolGetName(vol)));
}

static int collect_overlays(volume *v, virStoragePoolPtr pool, const char *path, char ***users) {
        virStorageVolPtr *vols = NULL;
        int r = 0;

        rc_count_read(v->ctx, RC_CALL_LIST);
        int n = virStoragePoolListAllVolumes(pool, &vols, 0);
        for (int i = 0; i < n; i++) {
                if (r >= 0)
                        r = collect_overlay(v, pool, vols[i], path, users);
                virStorageVolFree(vols[i]);
        }
        free(vols);
        return r;
}

/* The volumes, in every active pool, made copy-on-write on top of path: deleting it would break each of them. */
static int overlays(volume *v, const char *path, char ***ret) {
        virStoragePoolPtr *pools = NULL;
        char **users = NULL;
        int r = 0;

        rc_count_read(v->ctx, RC_CALL_LIST);
        int n = virConnectListAllStoragePools(v->ctx->conn, &pools, VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE);
        if (n < 0) {
                rc_result_set(v->res, RC_FAILED, false, "ReadFailed",
                              "cannot list the pools to find the volumes made on top of %s: %s", v->req->name,
                              rc_libvirt_error());
                return -EIO;
        }
        for (int i = 0; i < n; i++) {
                if (r >= 0)
                        r = collect_overlays(v, pools[i], path, &users);
                virStoragePoolFree(pools[i]);
        }
        free(pools);
        if (r < 0)
                vf_strv_free(users);
        else
                *ret = users;
        return r;
}

/* In use: a domain's disk names it, or a volume is made on top of it (its backing store). */
static int removable(volume *v, bool *ok) {
        _cleanup_free_ char *users = NULL, *first = NULL;
        _cleanup_strv_free_ char **above = NULL;
        rc_count_read(v->ctx, RC_CALL_GET_INFO);
        _cleanup_free_ char *path = virStorageVolGetPath(v->vol);
        rc_volume_use use = { v->pool_name, v->name, path ? path : v->key };
        int r = rc_domain_users(v->ctx, false, rc_disk_uses_volume, &use, &users, &first);

        if (r >= 0 && !users)
                r = overlays(v, use.path, &above);
        *ok = r >= 0 && !users && !above;
        if (r < 0 || *ok)
                return r;
        if (users) {
                rc_result_set(v->res, RC_WAITING, false, "InUse",
                              "no longer declared, but domains use it (%s); it is deleted once no domain's disk "
                              "names it",
                              users);
                return rc_result_wait(v->res, RC_WAIT_USER, first, 0);
        }
        _cleanup_free_ char *joined = vf_strv_join((const char *const *) above, ", ");
        _cleanup_free_ char *key = schema_key(VF_KIND_VOLUME, above[0]);
        if (!joined || !key)
                return -ENOMEM;
        rc_result_set(v->res, RC_WAITING, false, "InUse",
                      "no longer declared, but volumes are made on top of it (%s, their backing store); it is "
                      "deleted once none is",
                      joined);
        return rc_result_wait(v->res, RC_WAIT_USER, key, 0);
}

static int forget(volume *v) {
        int r = rc_step_forget(v->ctx, v->req, v->res);
        if (r < 0)
                return r;
        rc_result_set(v->res, RC_KEPT, true, "Retained",
                      "no longer declared; forgotten, and its data kept (deletionPolicy: retain) at %s", v->key);
        v->res->forget = true;
        return 0;
}

static int volume_remove(rc_context *ctx, const rc_request *req, rc_result *res) {
        _cleanup_(volume_done) volume v = {};
        bool half_made = false, ok;
        int r = volume_open(ctx, req, res, &v);

        if (r < 0)
                return r;
        if (!v.vol) {
                /* The record goes with no delete of ours in the log: the log must say the name is not ours now. */
                rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; it was already gone");
                return rc_step_forget(ctx, req, res);
        }
        bool ours = recorded_as(req, v.key);
        r = ours ? 0 : rc_storage_made_unrecorded(ctx, req, &half_made);
        if (r < 0)
                return r;
        if (!ours && !half_made) {
                rc_result_set(res, RC_KEPT, true, "NotOwned",
                              "no longer declared, but the state file records no volume of this state there; left "
                              "alone");
                res->forget = true;
                return 0;
        }
        /* What a killed run half made is no one's data: it goes whatever the policy. */
        bool delete = true;
        r = ours ? recorded_delete(&v, &delete) : 0;
        if (r < 0)
                return r;
        if (!delete)
                return forget(&v);
        r = removable(&v, &ok);
        if (r < 0 || !ok)
                return r;
        r = delete_step(&v);
        if (r < 0)
                return r;
        rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; deleted (deletionPolicy: delete)");
        return 0;
}

/* ---- probe -------------------------------------------------------------------------------- */

/* A volume no file declares (a base image someone placed) is usable when it is there. */
static int volume_probe(rc_context *ctx, const char *name, bool *ready, char **why) {
        virStoragePoolPtr pool;
        virStorageVolPtr vol;
        _cleanup_free_ char *errmsg = NULL;
        int r = lookup(ctx, name, &pool, &vol, &errmsg);

        *ready = vol != NULL;
        if (vol)
                virStorageVolFree(vol);
        if (pool)
                virStoragePoolFree(pool);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                *why = TAKE_PTR(errmsg);
        else if (!*ready)
                *why = vf_printf("volume %s does not exist; declare it in a file or create it", name);
        return *ready || *why ? 0 : -ENOMEM;
}

const rc_ops rc_volume_ops = {
        .kind = VF_KIND_VOLUME,
        .apply = volume_apply,
        .remove = volume_remove,
        .probe = volume_probe,
};
