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
