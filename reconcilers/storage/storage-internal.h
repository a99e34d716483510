/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to reconcilers/storage/: what the pool, volume and cloud-init
 * reconcilers share. Nothing outside this directory includes it.
 */
#pragma once

#ifndef VF_STORAGE_INTERNAL
# error "storage-internal.h is private to reconcilers/storage/"
#endif

#include "reconcilers/object.h"

/* A CloudInit's seed (seed.c): the ISO image its volume holds. */
typedef struct rc_seed {
        uint8_t *data;
        size_t size; /* a whole number of 2 KiB blocks */
        char hash[VF_HASH_HEX_LEN + 1]; /* SHA-256 of data */
} rc_seed;

void rc_seed_done(rc_seed *s);
/* The same bytes for the same spec; errmsg says what libisofs could not do. */
int rc_seed_build(const schema_cloudinit_spec *spec, rc_seed *ret, char **errmsg);
/* spec.instanceId, or "iid-" and 16 hex digits of the content's hash: a changed seed gets a new one. */
int rc_seed_instance_id(const schema_cloudinit_spec *spec, char **ret);
/* The meta-data file: instance-id and, when given, local-hostname, as YAML. */
int rc_seed_meta_data(const schema_cloudinit_spec *spec, char **ret);

/* What the storage reconcilers share (storage.c). */

/*
 * Streams size bytes into vol from its start (virStorageVolUpload). On failure *errmsg has libvirt's
 * words: -EOPNOTSUPP when the connection's driver cannot upload at all, -EIO otherwise.
 */
int rc_storage_upload_buffer(virConnectPtr conn, virStorageVolPtr vol, const uint8_t *data, size_t size,
                             char **errmsg);
/*
 * The first domain (defined or running, whoever owns it) with a disk that is the volume: by pool and
 * name, or by path. *ret is NULL when none is.
 */
int rc_storage_volume_user(rc_context *ctx, const char *pool, const char *volume, const char *path, char **ret);

/* How much of a volume's content is in memory at once while it streams in: the whole cost of an import. */
#define RC_UPLOAD_CHUNK_SIZE (256 * 1024)

/*
 * A volume's content streamed in (virStorageVolUpload) in chunks of any size,
 * so that memory stays flat whatever the size. Each call returns 0, or -EIO
 * with libvirt's last error telling why (rc_libvirt_error()).
 */
typedef struct rc_upload {
        virStreamPtr stream;
        uint64_t sent;
        bool finished;
} rc_upload;

/* length: the bytes that follow; 0 when not known in advance (up to the end of the stream). */
int rc_upload_begin(virConnectPtr conn, virStorageVolPtr vol, uint64_t length, rc_upload *u);
int rc_upload_send(rc_upload *u, const void *data, size_t len);
/* Waits for libvirt to have written everything. */
int rc_upload_finish(rc_upload *u);
/* Frees it, abandoning what was not finished; safe on one never begun. Resets libvirt's last error. */
void rc_upload_done(rc_upload *u);

/* Whether libvirt's last error is a full disk (ENOSPC) on the daemon's side. */
bool rc_libvirt_no_space(void);
/* Whether libvirt's last error says the driver cannot do it at all (the test driver's upload). */
bool rc_libvirt_unsupported(void);

/*
 * A download (fetch.c) handed over as it arrives: begin() once, with the
 * length the server announced (-1: none), before the first chunk; then
 * chunk() for each piece. A negative return from either stops the download
 * and is returned by rc_fetch().
 */
typedef struct rc_fetch_sink {
        int (*begin)(void *userdata, int64_t length);
        int (*chunk)(void *userdata, const void *data, size_t len);
        void *userdata;
} rc_fetch_sink;

/*
 * Downloads an http(s) URL into sink, redirects followed. Returns 0; the
 * sink's own negative errno; -EINTR when rc_interrupted(ctx) asked it to stop;
 * or -EIO with *errmsg saying what went wrong with the download (an HTTP
 * error, a connection that failed or stalled, an empty body).
 */
int rc_fetch(const rc_context *ctx, const char *url, const rc_fetch_sink *sink, char **errmsg);
