/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The CloudInit reconciler: a NoCloud seed (seed.c) in the raw volume
 * "NAME.cidata.iso" of spec.pool.
 *
 * The seed is derived data: it is built anew on every pass and uploaded only
 * when its hash differs from the one recorded, so a pass that changes nothing
 * writes nothing. A volume is ours when the store records its key; removing
 * the resource deletes the volume, but never while a domain's disk is it.
 */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

#include <libvirt/virterror.h>

/* A seed is a few KiB: rounding its volume up to this leaves room for it to grow without a resize. */
#define SEED_CAPACITY_STEP (UINT64_C(1024) * 1024)

typedef struct seed_run {
        rc_context *ctx;
        const rc_request *req;
        rc_result *res;
        const schema_cloudinit_spec *spec;
        char *volume; /* NAME.cidata.iso */
        rc_seed seed;
        virStoragePoolPtr pool;
        virStorageVolPtr vol; /* NULL: there is none (or, in a dry run, it is not made) */
        char *key; /* vol's */
        bool created; /* vol was made by this pass */
        size_t steps_before;
        char *unread; /* why what an interrupted upload left could not be read back, for the message */
} seed_run;

static void seed_run_done(seed_run *run) {
        free(run->volume);
        rc_seed_done(&run->seed);
        if (run->vol)
                virStorageVolFree(run->vol);
        if (run->pool)
                virStoragePoolFree(run->pool);
        free(run->key);
        free(run->unread);
}

static char *seed_volume_name(const char *name) {
        return vf_printf("%s" SCHEMA_CLOUDINIT_SUFFIX, name);
}

static uint64_t seed_capacity(size_t size) {
        return (size + SEED_CAPACITY_STEP - 1) / SEED_CAPACITY_STEP * SEED_CAPACITY_STEP;
}

static int step_end(seed_run *run, const char *what, bool ok, const char *fail_reason) {
        return rc_storage_step_end(run->ctx, run->req, run->res, run->volume, what, ok, fail_reason);
}

/* run->key from run->vol; -EIO when libvirt cannot say it. */
static int read_key(seed_run *run) {
        const char *key = virStorageVolGetKey(run->vol);

        if (!key)
                return -EIO;
        run->key = strdup(key);
        return run->key ? 0 : -ENOMEM;
}

static int lookup_volume(seed_run *run) {
        rc_count_read(run->ctx, RC_CALL_GET_INFO);
        run->vol = virStorageVolLookupByName(run->pool, run->volume);
        if (!run->vol)
                return virGetLastErrorCode() == VIR_ERR_NO_STORAGE_VOL ? 0 : -EIO;
        return read_key(run);
}

static int create_volume(seed_run *run) {
        _cleanup_free_ char *xml = vf_printf("<volume><name>%s</name><capacity unit='bytes'>%" PRIu64 "</capacity>"
                                             "<target><format type='raw'/></target></volume>",
                                             run->volume, seed_capacity(run->seed.size));
        int r = xml ? rc_step_begin(run->ctx, run->req, run->res, RC_CALL_CREATE_VOLUME, RC_STEP_CREATE_VOLUME)
                    : -ENOMEM;

        if (r <= 0)
                return r;
        run->vol = virStorageVolCreateXML(run->pool, xml, 0);
        r = step_end(run, RC_STEP_CREATE_VOLUME, run->vol != NULL, "CreateFailed");
        if (r < 0)
                return r;
        run->created = true;
        r = read_key(run);
        if (r == -EIO)
                rc_result_set(run->res, RC_FAILED, false, "ReadFailed", "cannot read the key of volume %s: %s",
                              run->volume, rc_libvirt_error());
        /* Ours from now on, whatever follows: a failed upload must not leave it someone else's. */
        return r < 0 ? r : vf_free_and_strdup(&run->res->uuid, run->key);
}

static int delete_volume(seed_run *run, const char *fail_reason) {
        int r = rc_step_begin(run->ctx, run->req, run->res, RC_CALL_DELETE_VOLUME, RC_STEP_DELETE_VOLUME);

        if (r <= 0)
                return r;
        r = step_end(run, RC_STEP_DELETE_VOLUME, virStorageVolDelete(run->vol, 0) == 0, fail_reason);
        if (r >= 0) {
                virStorageVolFree(TAKE_PTR(run->vol));
                free(TAKE_PTR(run->key));
        }
        return r;
}

/* Room for the seed: a resize where the driver can, else a new volume in place of the old. */
static int make_room(seed_run *run) {
        virStorageVolInfo info;

        rc_count_read(run->ctx, RC_CALL_GET_INFO);
        if (virStorageVolGetInfo(run->vol, &info) < 0) {
                rc_result_set(run->res, RC_FAILED, false, "ReadFailed", "cannot read the size of volume %s: %s",
                              run->volume, rc_libvirt_error());
                return -EIO;
        }
        if (info.capacity >= run->seed.size)
                return 0;
        int r = rc_step_begin(run->ctx, run->req, run->res, RC_CALL_RESIZE, "resize");
        if (r <= 0)
                return r;
        bool ok = virStorageVolResize(run->vol, seed_capacity(run->seed.size), 0) == 0;
        bool unsupported = !ok && rc_libvirt_unsupported();
        r = rc_step_end(run->ctx, run->req, run->res, "resize", ok, "ResizeFailed");
        if (r >= 0 || !unsupported)
                return r;
        r = delete_volume(run, "DeleteFailed");
        return r < 0 ? r : create_volume(run);
}

/* The stream stays open until its step is recorded: closing it clears libvirt's word on a failure. */
static int send_seed(seed_run *run, rc_upload *u) {
        int r = rc_upload_begin(run->ctx->conn, run->vol, run->seed.size, u);

        if (r >= 0)
                r = rc_upload_send(u, run->seed.data, run->seed.size);
        if (r >= 0)
                r = rc_upload_finish(u);
        return r;
}

/* The newest upload in the log; NULL when there is none. */
static int newest_upload(seed_run *run, state_event **ret) {
        static const char *const actions[] = { "upload" };
        int r = state_event_newest(run->ctx->store, vf_kind_to_string(run->req->kind), run->req->name, actions,
                                   ELEMENTSOF(actions), NULL, ret);

        if (r != -ENOENT)
                return r;
        *ret = NULL;
        return 0;
}

/*
 * A run killed while it uploaded left the volume half written under a record
 * that still names the content before: only the event log knows. The newest
 * upload must have finished for the recorded hash to be the volume's.
 */
static int last_upload_finished(seed_run *run, bool *ret) {
        _cleanup_(state_event_freep) state_event *last = NULL;
        int r = newest_upload(run, &last);

        *ret = !last || vf_streq_ptr(last->outcome, "ok");
        return r;
}

/*
 * A run killed after its upload and before the commit that carried the upload's outcome and the
 * record's new hash left the upload intended and the old hash recorded. What the volume holds
 * decides: the seed, byte for byte, is there already, and uploading it again would do the write
 * twice; anything else (a half-written one) is uploaded. Seeds are a few KiB: reading one back is
 * cheap, and it is read only after such a kill. A plan reads nothing back (libvirt streams no
 * volume out to a read-only connection): it lists the upload.
 */
static int interrupted_upload_done(seed_run *run, bool *ret) {
        _cleanup_(state_event_freep) state_event *last = NULL;
        _cleanup_free_ char *why = NULL;
        int r = newest_upload(run, &last);

        *ret = false;
        if (r < 0 || !last || !vf_streq_ptr(last->outcome, "intended") || run->ctx->dry_run)
                return r;
        rc_count_read(run->ctx, RC_CALL_DOWNLOAD);
        r = rc_volume_begins_with(run->ctx->conn, run->vol, run->seed.data, run->seed.size, ret, &why);
        if (r != -EIO)
                return r;
        run->unread = vf_printf("an interrupted upload's volume could not be read back (%s), so the seed was "
                                "uploaded again", why);
        return run->unread ? 0 : -ENOMEM;
}

static int upload(seed_run *run) {
        rc_upload u = {};
        /* Whatever the volume held is gone once an upload starts: until one succeeds, no hash is its. */
        int r = vf_free_and_strdup(&run->res->applied_xml_hash, "");

        if (r >= 0)
                r = rc_step_begin(run->ctx, run->req, run->res, RC_CALL_UPLOAD, "upload");
        if (r <= 0)
                return r;
        r = step_end(run, "upload", send_seed(run, &u) >= 0, "UploadFailed");
        /* Before a delete: libvirt may hold the volume open for it. */
        rc_upload_done(&u);
        /* A volume made for this seed and left without it would look like one: it goes; the result says why. */
        if (r < 0 && run->created)
                (void) delete_volume(run, "DeleteFailed");
        return r;
}

/* The volume's name is taken, and not by this store's seed (nor by one a killed run of it made). */
static int conflicts(const seed_run *run, bool *ret) {
        const state_record *rec = run->req->record;

        *ret = !(rec && vf_streq_ptr(rec->uuid, run->key)) && !run->req->desired->adopt;
        if (!*ret)
                return 0;
        bool ours;
        int r = rc_storage_made_unrecorded(run->ctx, run->req, &ours);
        if (r >= 0)
                *ret = !ours;
        return r;
}

static int set_applied(seed_run *run, rc_outcome outcome) {
        vf_buf b = {};

        for (size_t i = run->steps_before; run->res->steps && run->res->steps[i]; i++)
                vf_buf_printf(&b, "%s%s", i > run->steps_before ? ", " : "", run->res->steps[i]);
        _cleanup_free_ char *steps = vf_buf_steal(&b);
        if (!steps)
                return -ENOMEM;
        rc_result_set(run->res, outcome, true, "Applied", "%s", outcome == RC_UNCHANGED ? "in sync" : steps);
        int r = vf_free_and_strdup(&run->res->applied_xml_hash, run->seed.hash);
        if (r >= 0 && run->key)
                r = vf_free_and_strdup(&run->res->uuid, run->key);
        return r;
}

/*
 * The domains that use a volume, by their definitions or, running, by what they run with. -EIO with
 * *why set when libvirt cannot say the volume's pool or path.
 */
static int volume_users(rc_context *ctx, virStorageVolPtr vol, const char *name, char **users, char **first,
                        char **why) {
        virStoragePoolPtr pool = virStoragePoolLookupByVolume(vol);
        _cleanup_free_ char *path = pool ? virStorageVolGetPath(vol) : NULL;
        int r;

        rc_count_read(ctx, RC_CALL_GET_INFO);
        if (!path)
                r = vf_error(why, -EIO, "cannot read the pool and path of volume %s: %s", name, rc_libvirt_error());
        else {
                rc_volume_use use = { virStoragePoolGetName(pool), name, path };
                r = rc_domain_users(ctx, false, rc_disk_uses_volume, &use, users, first);
                if (r >= 0 && !*users)
                        r = rc_domain_users(ctx, true, rc_disk_uses_volume, &use, users, first);
        }
        if (pool)
                virStoragePoolFree(pool);
        return r;
}

/*
 * The seed moved to another pool: the volume it had there is derived data, deleted unless a domain
 * still uses it (one whose definition follows the move later in this pass, or that runs with it),
 * and then left, as *left says.
 */
static int delete_moved(seed_run *run, char **left) {
        const char *old = run->req->record ? run->req->record->uuid : NULL;
        _cleanup_free_ char *users = NULL, *why = NULL;
        _cleanup_(seed_run_done) seed_run moved = { .ctx = run->ctx, .req = run->req, .res = run->res };

        if (!old || vf_streq_ptr(old, run->key))
                return 0;
        rc_count_read(run->ctx, RC_CALL_GET_INFO);
        moved.vol = virStorageVolLookupByKey(run->ctx->conn, old);
        if (!moved.vol)
                return 0;
        moved.volume = strdup(virStorageVolGetName(moved.vol));
        if (!moved.volume)
                return -ENOMEM;
        int r = volume_users(run->ctx, moved.vol, moved.volume, &users, NULL, &why);
        if (r == -EIO)
                *left = vf_printf("its volume before the move, %s, is left: %s", old, why);
        else if (r >= 0 && users)
                *left = vf_printf("its volume before the move, %s, is left: domains use it (%s)", old, users);
        else
                return r < 0 ? r : delete_volume(&moved, "DeleteFailed");
        return *left ? 0 : -ENOMEM;
}

/* 1: the pool is there to look in; 2: plan, before the same apply makes the pool; 0: waiting for it. */
static int open_pool(seed_run *run) {
        rc_count_read(run->ctx, RC_CALL_GET_INFO);
        run->pool = virStoragePoolLookupByName(run->ctx->conn, run->spec->pool);
        if (run->pool && virStoragePoolIsActive(run->pool) == 1)
                return 1;
        if (run->ctx->dry_run)
                return 2;
        _cleanup_free_ char *key = schema_key(VF_KIND_POOL, run->spec->pool);
        rc_result_set(run->res, RC_WAITING, false, "DependencyNotReady", "waiting: pool %s %s", run->spec->pool,
                      run->pool ? "is not active" : "does not exist");
        return key ? rc_result_wait(run->res, RC_WAIT_DEPENDENCY, key, 0) : -ENOMEM;
}

static int append_to_message(rc_result *res, const char *note) {
        if (!note)
                return 0;
        _cleanup_free_ char *message = vf_printf("%s; %s", res->message, note);
        return message ? vf_free_and_strdup(&res->message, message) : -ENOMEM;
}

static int converge(seed_run *run) {
        const state_record *rec = run->req->record;
        int r = open_pool(run);

        if (r <= 0)
                return r;
        if (r == 2) {
                r = create_volume(run);
                if (r >= 0)
                        r = upload(run);
                return r < 0 ? r : set_applied(run, RC_CREATED);
        }
        r = lookup_volume(run);
        if (r == -EIO) {
                rc_result_set(run->res, RC_FAILED, false, "ReadFailed", "cannot look up volume %s in pool %s: %s",
                              run->volume, run->spec->pool, rc_libvirt_error());
                return r;
        }
        bool conflict = false;
        if (r >= 0 && run->vol)
                r = conflicts(run, &conflict);
        if (r < 0)
                return r;
        if (conflict) {
                rc_result_set(run->res, RC_FAILED, false, "Conflict",
                              "volume %s already exists in pool %s and is not managed by this virtform state; "
                              "remove it, or set metadata.adopt: true to take it over",
                              run->volume, run->spec->pool);
                return 0;
        }
        bool in_sync = run->vol && rec && vf_streq_ptr(rec->applied_xml_hash, run->seed.hash);
        if (in_sync)
                r = last_upload_finished(run, &in_sync);
        else if (run->vol)
                r = interrupted_upload_done(run, &in_sync);
        if (r < 0)
                return r;
        if (in_sync)
                return set_applied(run, RC_UNCHANGED);
        bool existed = run->vol;
        _cleanup_free_ char *left = NULL;
        r = existed ? make_room(run) : create_volume(run);
        /* In a dry run nothing was made: the upload is listed all the same. */
        if (r >= 0 && (run->vol || run->ctx->dry_run))
                r = upload(run);
        if (r >= 0)
                r = delete_moved(run, &left);
        if (r >= 0)
                r = set_applied(run, existed ? RC_UPDATED : RC_CREATED);
        if (r >= 0)
                r = append_to_message(run->res, run->unread);
        return r < 0 ? r : append_to_message(run->res, left);
}

static int cloudinit_apply(rc_context *ctx, const rc_request *req, rc_result *res) {
        _cleanup_(seed_run_done) seed_run run = {
                .ctx = ctx,
                .req = req,
                .res = res,
                .spec = &req->desired->cloudinit,
                .steps_before = vf_strv_length(res->steps),
        };
        _cleanup_free_ char *errmsg = NULL;

        run.volume = seed_volume_name(req->name);
        if (!run.volume)
                return -ENOMEM;
        int r = rc_seed_build(run.spec, &run.seed, &errmsg);
        if (r < 0) {
                rc_result_set(res, RC_FAILED, false, "SeedFailed", "%s", errmsg ? errmsg : strerror(-r));
                return r == -ENOMEM ? r : 0;
        }
        return converge(&run);
}

static int cloudinit_remove(rc_context *ctx, const rc_request *req, rc_result *res) {
        _cleanup_(seed_run_done) seed_run run = { .ctx = ctx, .req = req, .res = res };
        _cleanup_free_ char *users = NULL, *first = NULL, *why = NULL;
        const char *key = req->record ? req->record->uuid : NULL;

        /* Either way the record goes with no delete of ours in the log: it must say the name is not ours now. */
        if (!key) {
                rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; it had no seed volume");
                return rc_step_forget(ctx, req, res);
        }
        rc_count_read(ctx, RC_CALL_GET_INFO);
        run.vol = virStorageVolLookupByKey(ctx->conn, key);
        if (!run.vol) {
                rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; its seed volume was already gone");
                return rc_step_forget(ctx, req, res);
        }
        run.volume = strdup(virStorageVolGetName(run.vol));
        if (!run.volume)
                return -ENOMEM;
        int r = volume_users(ctx, run.vol, run.volume, &users, &first, &why);
        if (r == -EIO)
                rc_result_set(res, RC_FAILED, false, "ReadFailed", "%s", why);
        if (r < 0)
                return r;
        if (users) {
                rc_result_set(res, RC_WAITING, false, "InUse",
                              "no longer declared, but domains use its seed volume %s (%s); it is deleted once no "
                              "domain's disk names it",
                              run.volume, users);
                return rc_result_wait(res, RC_WAIT_USER, first, 0);
        }
        r = delete_volume(&run, "DeleteFailed");
        if (r < 0)
                return r;
        rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; its seed volume %s deleted", run.volume);
        return 0;
}

/* An undeclared seed is usable when its volume exists, in whichever pool. */
/*
 * A seed no file declares is never usable: the domain's cdrom takes its pool
 * from the declaration, and a volume of the seed's name in some pool says
 * nothing of what it holds.
 */
static int cloudinit_probe(rc_context *ctx, const char *name, bool *ready, char **why) {
        *ready = false;
        *why = vf_printf("no file declares cloudinit %s; declare it (kind: CloudInit) so that its seed is built", name);
        return *why ? 0 : -ENOMEM;
}

const rc_ops rc_cloudinit_ops = {
        .kind = VF_KIND_CLOUDINIT,
        .apply = cloudinit_apply,
        .remove = cloudinit_remove,
        .probe = cloudinit_probe,
};
