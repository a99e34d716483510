/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The StoragePool reconciler: what only pools need on top of converge.c.
 *
 * A pool converges as networks do (define, start, autostart, drift, removal),
 * so it goes through converge.c with an unmarked class: libvirt keeps no
 * metadata on pools, and ownership is the store's record of the pool's UUID.
 * What is a pool's own: a dir pool's target is built before it starts when it
 * is missing (a logical pool never is: it names a volume group that exists),
 * a pool is not removed while this store records volumes in it, and removing
 * one destroys and undefines it, never deletes it: its directory and files
 * stay.
 */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

#include <sys/stat.h>

static bool pool_want_active(const rc_request *req) {
        return true;
}

static bool pool_want_autostart(const rc_request *req) {
        return req->desired->pool.autostart;
}

/* UUID aside (converge.c keeps it), libvirt assigns nothing to a pool that a define must keep. */
static int pool_complete(rc_context *ctx, const rc_request *req, xmlDoc *current, xmlDoc *desired, rc_result *res) {
        return 0;
}

/*
 * A dir pool (the only type the schema gives a path: a logical pool never has one, and is never built)
 * is built when its target is missing, and only then: building never overwrites anything.
 */
static bool pool_needs_build(const rc_request *req) {
        const char *path = req->desired->pool.path;
        struct stat st;

        return path && stat(path, &st) < 0 && errno == ENOENT;
}

/*
 * A dir pool's build makes its directory and overwrites nothing. It takes no
 * flags: libvirt reads NO_OVERWRITE (and OVERWRITE) on a dir pool as a request
 * to format a source device, which a dir pool has none of, and fails.
 */
static int pool_prepare_start(rc_context *ctx, const rc_request *req, void *obj, rc_result *res) {
        if (!pool_needs_build(req))
                return 0;
        int r = rc_step_begin(ctx, req, res, RC_CALL_BUILD, "build");
        if (r <= 0)
                return r;
        return rc_step_end(ctx, req, res, "build", virStoragePoolBuild(obj, 0) == 0, "BuildFailed");
}

/*
 * A pool defined anew while active keeps running the definition it started with until it starts
 * again. What runs differs from the definition when their projections onto the desired document
 * differ: capacity and allocation, which only a running pool fills in, are no difference.
 */
static int pool_runs_older_definition(rc_context *ctx, const rc_request *req, void *obj, rc_result *res,
                                      bool *ret) {
        _cleanup_(xmlFreeDocp) xmlDoc *want = rc_xml_parse(req->desired->xml);
        char projected[2][VF_HASH_HEX_LEN + 1];

        if (!want)
                return -EBADMSG;
        for (int inactive = 0; inactive <= 1; inactive++) {
                rc_count_read(ctx, RC_CALL_GET_XML);
                _cleanup_free_ char *xml = rc_pool_class.get_xml(obj, inactive);
                _cleanup_(xmlFreeDocp) xmlDoc *have = xml ? rc_xml_parse(xml) : NULL;
                if (!have) {
                        rc_result_set(res, RC_FAILED, false, "ReadFailed", "cannot read the definition of pool %s: %s",
                                      req->name, rc_libvirt_error());
                        return -EIO;
                }
                int r = rc_drift_hash(want, have, projected[inactive]);
                if (r < 0)
                        return r;
        }
        *ret = strcmp(projected[0], projected[1]) != 0;
        return 0;
}

/*
 * A new definition takes effect when the pool starts again. Stopping a pool
 * touches neither its target nor its volumes, and running guests keep the
 * volumes they have open, so it is restarted at once rather than left pending.
 */
static int pool_changed_while_active(rc_context *ctx, const rc_request *req, void *obj, rc_result *res) {
        bool older;
        int r = pool_runs_older_definition(ctx, req, obj, res, &older);

        if (r < 0 || !older)
                return r;
        r = rc_object_destroy(ctx, &rc_pool_class, req, obj, res);
        if (r < 0)
                return r;
        r = pool_prepare_start(ctx, req, obj, res);
        if (r < 0)
                return r;
        return rc_object_start(ctx, &rc_pool_class, req, obj, res);
}

static int pool_destroy(rc_context *ctx, const rc_request *req, void *obj, rc_result *res) {
        return rc_object_destroy(ctx, &rc_pool_class, req, obj, res);
}

/*
 * What this store records in a pool (volumes and cloud-init seeds), as "kind/name" keys in the store's
 * order: the records that depended on the pool when they were last applied.
 */
static int recorded_in_pool(rc_context *ctx, const char *pool, char ***ret) {
        _cleanup_free_ char *pool_key = schema_key(VF_KIND_POOL, pool);
        _cleanup_strv_free_ char **keys = NULL;
        state_record **records = NULL;
        size_t n = 0;
        int r = pool_key ? state_list(ctx->store, &records, &n) : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < n; i++)
                if (vf_strv_contains(records[i]->depends, pool_key))
                        r = vf_strv_consume(&keys, schema_key(vf_kind_from_string(records[i]->kind),
                                                              records[i]->name));
        state_record_list_free(records, n);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(keys);
        return 0;
}

/* A pool that holds volumes this store owns stays until they are gone from the store: their data is in it. */
static int pool_removable(rc_context *ctx, const rc_request *req, void *obj, rc_result *res, bool *ok) {
        _cleanup_strv_free_ char **volumes = NULL;
        int r = recorded_in_pool(ctx, req->name, &volumes);

        if (r < 0) {
                rc_result_set(res, RC_FAILED, false, "ReadFailed",
                              "cannot list what is recorded in pool %s from the state file: %s", req->name,
                              state_last_error(ctx->store));
                return r;
        }
        *ok = !volumes;
        if (!volumes)
                return 0;
        _cleanup_free_ char *joined = vf_strv_join((const char *const *) volumes, ", ");
        if (!joined)
                return -ENOMEM;
        rc_result_set(res, RC_WAITING, false, "InUse",
                      "no longer declared, but virtform still manages volumes or seeds in it (%s); the pool is "
                      "removed once they are no longer declared",
                      joined);
        return rc_result_wait(res, RC_WAIT_USER, volumes[0], 0);
}

static const rc_kind_hooks pool_hooks = {
        .cls = &rc_pool_class,
        .want_active = pool_want_active,
        .want_autostart = pool_want_autostart,
        .complete = pool_complete,
        .prepare_start = pool_prepare_start,
        .changed_while_active = pool_changed_while_active,
        .deactivate = pool_destroy,
        .removable = pool_removable,
};

static int pool_apply(rc_context *ctx, const rc_request *req, rc_result *res) {
        return rc_converge_apply(ctx, &pool_hooks, req, res);
}

/*
 * Once removed (or found gone already), nothing of this store's is left: its record goes, and the
 * log says so, since a pool found gone leaves no undefine of ours there (converge.c).
 */
static int pool_remove(rc_context *ctx, const rc_request *req, rc_result *res) {
        int r = rc_converge_remove(ctx, &pool_hooks, req, res);

        res->forget = r >= 0 && res->outcome == RC_DELETED;
        return res->forget ? rc_step_forget(ctx, req, res) : r;
}

/* A pool no file declares (a volume names it) serves when it exists and is active. */
static int pool_probe(rc_context *ctx, const char *name, bool *ready, char **why) {
        return rc_converge_probe(ctx, &pool_hooks, name, ready, why);
}

/* No owned_names nor marked_objects: with no marker, libvirt cannot say which pools are ours. */
const rc_ops rc_pool_ops = {
        .kind = VF_KIND_POOL,
        .apply = pool_apply,
        .remove = pool_remove,
        .probe = pool_probe,
};
