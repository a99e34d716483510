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

/* Whether the volume's first len bytes are data's; -EIO, with libvirt's reason in *why, when it cannot stream them out. */
int rc_volume_begins_with(virConnectPtr conn, virStorageVolPtr vol, const void *data, size_t len, bool *ret,
                          char **why);

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

/* A CloudInit's seed (seed.c): the ISO image its volume holds. */
typedef struct rc_seed {
        uint8_t *data;
        size_t size; /* a whole number of 2 KiB blocks */
        char hash[VF_HASH_HEX_LEN + 1]; /* SHA-256 of data */
} rc_seed;

void rc_seed_done(rc_seed *s);
/* The same bytes for the same spec; errmsg says what libisofs could not do. */
int rc_seed_build(const schema_cloudinit_spec *spec, rc_seed *ret, char **errmsg);

/* A volume as domains' disks name it: by pool and name, or by its path as a file or a block device. */
typedef struct rc_volume_use {
        const char *pool;
        const char *name;
        const char *path;
} rc_volume_use;

/* For rc_domain_users(): whether a domain's definition has a disk that is the volume (an rc_volume_use). */
int rc_disk_uses_volume(xmlDoc *doc, const void *what, bool *ret);

/* Why a libvirt write failed, as one word: a full disk and a driver that cannot are worth telling apart. */
const char *rc_storage_failure_reason(const char *fallback);
/*
 * Ends a libvirt step on volume (its name as the operator knows it), a failure's reason told by
 * rc_storage_failure_reason(). A driver that cannot do it at all is named, and the result waits for a
 * change, so that nobody waits for a retry.
 */
int rc_storage_step_end(rc_context *ctx, const rc_request *req, rc_result *res, const char *volume, const char *what,
                        bool ok, const char *fallback_reason);

/* Step names, as the event log keeps them: how a volume made by a killed run is told from another's. */
#define RC_STEP_CREATE_VOLUME "create-volume"
#define RC_STEP_DELETE_VOLUME "delete-volume"

/*
 * Whether the volume of an unrecorded resource is one this store made: a run killed between its
 * create and its record. The event log tells: of the resource's steps that make, delete or forget
 * its volume, the newest is a create that was not refused, or a delete that did not happen. *ret is
 * false for a recorded resource.
 */
int rc_storage_made_unrecorded(rc_context *ctx, const rc_request *req, bool *ret);
