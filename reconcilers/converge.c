/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The convergence every libvirt object kind shares: ownership, change and
 * drift detection, define, autostart and active state, and removal.
 *
 * Whether to redefine is never decided by comparing our XML with libvirt's:
 * libvirt normalises what it is given, so they always differ. Instead the
 * desired hash is compared with the one in the object's ownership marker, and
 * drift is libvirt's XML now, projected onto what we asked for (drift.c),
 * against the same projection right after our define: what libvirt adds or
 * reorders is no drift.
 *
 * Storage pools carry no marker (libvirt keeps no metadata on them), yet
 * converge the same way: ownership is the record's UUID, and what was last
 * defined is the record's applied_desired_xml rather than the marker's hash.
 * The rest (drift by projection, define, autostart, start, removal) holds
 * as it is, so they share this code instead of a pool-shaped copy of it.
 */
#include "reconcilers/object.h"

#include <libvirt/virterror.h>
#include <string.h>

typedef struct observed {
        void *obj; /* borrowed from the inventory */
        bool transient; /* running, but undefined (out of band): gone for good once it stops */
        char *xml; /* inactive XML */
        char hash[VF_HASH_HEX_LEN + 1];
        xmlDoc *doc; /* parsed only when the fast path does not settle it */
        char projection[VF_HASH_HEX_LEN + 1]; /* rc_drift_hash() onto the desired document; "" until needed */
        bool define_unrecorded; /* defined by a run killed before its record: what runs may be older */
} observed;

static void observed_done(observed *o) {
        free(o->xml);
        if (o->doc)
                xmlFreeDoc(o->doc);
        *o = (observed) {};
}

/*
 * The pass's listings say the object is in that state exactly when it is wanted so: nothing to do, and
 * no call to libvirt to find so. Anything else (not listed, written since, or listed otherwise, which
 * calls for a write) is read from libvirt now, so that a write is never decided on the listing alone.
 */
static bool listed_as(rc_context *ctx, const rc_request *req, rc_listed state, bool want) {
        unsigned listed = rc_inventory_listed(ctx, req->kind, req->name);
        return (listed & RC_LISTED) && !!(listed & state) == want;
}

static int observe(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, observed *o, rc_result *res) {
        o->obj = rc_inventory_lookup(ctx, req->kind, req->name);
        if (!o->obj)
                return 0;
        rc_count_read(ctx, RC_CALL_GET_XML);
        o->xml = k->cls->get_xml(o->obj, true);
        if (!o->xml) {
                rc_result_set(res, RC_FAILED, false, "ReadFailed", "cannot read the definition of %s %s: %s",
                              vf_kind_to_string(req->kind), req->name, rc_libvirt_error());
                return -EIO;
        }
        vf_sha256_hex(o->xml, strlen(o->xml), o->hash);
        if (listed_as(ctx, req, RC_LISTED_TRANSIENT, false))
                return 0;
        rc_count_read(ctx, RC_CALL_GET_INFO);
        /* Unknown (-1) is taken as persistent: defining again is for what is known to need it. */
        o->transient = k->cls->is_persistent(o->obj) == 0;
        return 0;
}

static int observed_doc(observed *o, xmlDoc **ret) {
        if (!o->doc)
                o->doc = rc_xml_parse(o->xml);
        *ret = o->doc;
        return o->doc ? 0 : -EBADMSG;
}

/*
 * Records are committed in batches, after the writes their intents log. An unmarked object a killed
 * run defined has no record, then, and no marker to say whose it is: it is ours when this store's
 * intent log ends, for it, with a define that was made or may have been. Anything else of that name
 * (never defined here, or undefined or forgotten here since: rc_step_forget()) is someone else's.
 * A define or undefine that failed changed nothing, and is passed over: this run's own define,
 * failed because the killed run's was still being made when this one listed, must not hide it.
 */
static int defined_by_killed_run(rc_context *ctx, const rc_request *req, bool *ret) {
        static const char *const actions[] = { "define", "undefine", RC_STEP_FORGET };
        _cleanup_(state_event_freep) state_event *last = NULL;
        int r = state_event_newest(ctx->store, vf_kind_to_string(req->kind), req->name, actions, ELEMENTSOF(actions),
                                   "failed", &last);

        if (r < 0 && r != -ENOENT)
                return r;
        *ret = last && strcmp(last->action, "define") == 0;
        return 0;
}

/*
 * Ours when it carries our marker, or when it is the very object we recorded (marker lost to an
 * out-of-band redefine; for an unmarked class, always so), or an unmarked one a killed run defined.
 */
static int classify_owner(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, observed *o, rc_owner *owner,
                          bool *owned) {
        char uuid[VIR_UUID_STRING_BUFLEN];
        xmlDoc *doc;
        int r = observed_doc(o, &doc);

        if (r < 0)
                return r;
        *owned = false;
        if (!k->cls->unmarked && rc_owner_read(doc, owner) >= 0 && strcmp(owner->instance, ctx->instance_id) == 0) {
                *owned = true;
                return 0;
        }
        if (k->cls->unmarked && !req->record)
                return defined_by_killed_run(ctx, req, owned);
        if (!req->record || !req->record->uuid)
                return 0;
        rc_count_read(ctx, RC_CALL_GET_INFO);
        if (k->cls->get_uuid_string(o->obj, uuid) == 0)
                *owned = strcmp(uuid, req->record->uuid) == 0;
        return 0;
}

/*
 * The baseline a record keeps for drift, "WHOLE:PROJECTION": the hash of
 * libvirt's whole XML when last seen in sync, for the fast path (unchanged
 * since, there is nothing to compare), and the hash of its projection onto
 * the desired document, which drift is judged by. Or "WHOLE:stored": the
 * projection not taken yet, and the document kept in the state file to take
 * it from, once libvirt's whole XML is no longer that one (docs/drift.md).
 * A record written before projections holds WHOLE alone.
 */
#define BASELINE_STORED ":stored"

static bool baseline_whole_is(const char *baseline, const char *hash) {
        return baseline && strncmp(baseline, hash, VF_HASH_HEX_LEN) == 0 &&
               (baseline[VF_HASH_HEX_LEN] == 0 || baseline[VF_HASH_HEX_LEN] == ':');
}

static const char *baseline_projection(const char *baseline) {
        return baseline && strlen(baseline) == 2 * VF_HASH_HEX_LEN + 1 ? baseline + VF_HASH_HEX_LEN + 1 : NULL;
}

static bool baseline_is_stored(const char *baseline) {
        return baseline && strlen(baseline) > VF_HASH_HEX_LEN &&
               strcmp(baseline + VF_HASH_HEX_LEN, BASELINE_STORED) == 0;
}

/* Fast path: we recorded this very hash and libvirt still returns what it returned when last in sync. */
static bool in_sync_with_record(const rc_request *req, const observed *o) {
        const state_record *rec = req->record;
        /*
         * The record's hash is what was last asked for; only an applied generation says it is what libvirt
         * holds. A spec that changed while it waited (on a dependency, say) is not in sync yet.
         */
        return rec && rec->uuid && rec->observed_generation == rec->generation &&
               vf_streq_ptr(rec->desired_hash, req->hash) && baseline_whole_is(rec->applied_xml_hash, o->hash);
}

/* A redefine must keep the object's UUID: libvirt refuses a new UUID under an existing name. */
static int inherit_uuid(xmlDoc *current, xmlDoc *desired) {
        xmlNode *root = xmlDocGetRootElement(desired);
        xmlNode *uuid = rc_xml_child(xmlDocGetRootElement(current), "uuid");

        if (!uuid || rc_xml_child(root, "uuid"))
                return 0;
        xmlNode *copy = xmlCopyNode(uuid, 1);
        if (!copy)
                return -ENOMEM;
        xmlNode *name = rc_xml_child(root, "name");
        if (name)
                xmlAddNextSibling(name, copy);
        else
                xmlAddChild(root, copy);
        return 0;
}

typedef enum define_reason {
        DEFINE_NONE,
        DEFINE_CREATE,
        DEFINE_RECREATE, /* we recorded it, and it was removed out of band */
        DEFINE_CHANGED,
        DEFINE_DRIFT,
        DEFINE_PERSIST, /* ours and as asked, but undefined out of band while it runs */
        DEFINE_ADOPT,
} define_reason;

/* The desired document as it is defined over current (NULL for a new object): what libvirt assigned kept. */
static int complete_doc(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, xmlDoc *current,
                        rc_result *res, xmlDoc **ret) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = rc_xml_parse(req->desired->xml);
        int r;

        if (!doc)
                return -EBADMSG;
        if (current) {
                r = inherit_uuid(current, doc);
                if (r < 0)
                        return r;
        }
        r = k->complete(ctx, req, current, doc, res);
        if (r != 0)
                return r;
        *ret = TAKE_PTR(doc);
        return 0;
}

/* libvirt's document projected onto the desired one, completed over it as a define would be. */
static int project(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, xmlDoc *current, rc_result *res,
                   char ret[VF_HASH_HEX_LEN + 1]) {
        _cleanup_(xmlFreeDocp) xmlDoc *want = NULL;
        int r = complete_doc(ctx, k, req, current, res, &want);

        return r != 0 ? r : rc_drift_hash(want, current, ret);
}

static int observed_projection(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, observed *o,
                               rc_result *res) {
        xmlDoc *doc;
        int r;

        if (o->projection[0])
                return 0;
        r = observed_doc(o, &doc);
        return r < 0 ? r : project(ctx, k, req, doc, res, o->projection);
}

/*
 * The projection of the document kept when the baseline was taken: 0, or 1 when it cannot be had (a
 * state file edited or restored by hand), and drift since then is unknown.
 */
static int stored_projection(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, rc_result *res,
                             char ret[VF_HASH_HEX_LEN + 1]) {
        const char *kind = vf_kind_to_string(req->kind), *recorded = req->record->applied_xml_hash;
        _cleanup_free_ char *xml = NULL;
        char hash[VF_HASH_HEX_LEN + 1];
        int r = state_baseline_get(ctx->store, kind, req->name, recorded, &xml);

        if (r < 0 && r != -ENOENT) {
                rc_result_set(res, RC_FAILED, false, "ReadFailed",
                              "cannot read the drift baseline of %s %s from the state file: %s", kind, req->name,
                              state_last_error(ctx->store));
                return r;
        }
        if (xml)
                vf_sha256_hex(xml, strlen(xml), hash);
        if (!xml || !baseline_whole_is(recorded, hash)) {
                rc_warn(ctx, "%s %s: the document its drift baseline was taken of is %s in the state file; what "
                        "libvirt holds now is taken as the baseline, and a change made outside virtform before now "
                        "stays unnoticed: check it with 'virsh dumpxml %s'",
                        kind, req->name, xml ? "not the one recorded" : "missing", req->name);
                return 1;
        }
        _cleanup_(xmlFreeDocp) xmlDoc *doc = rc_xml_parse(xml);
        if (!doc)
                return -EBADMSG;
        return project(ctx, k, req, doc, res, ret);
}

/* What was asked for shows differently now than right after our define. */
static int judge_drift(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, observed *o, rc_result *res,
                       define_reason *ret) {
        const char *recorded = req->record ? req->record->applied_xml_hash : NULL;
        const char *baseline = baseline_projection(recorded);
        char stored[VF_HASH_HEX_LEN + 1];
        int r;

        *ret = DEFINE_NONE;
        if (baseline_is_stored(recorded)) {
                r = stored_projection(ctx, k, req, res, stored);
                if (r < 0)
                        return r;
                baseline = r == 0 ? stored : NULL;
        }
        /* None, or one from before projections: what is there now becomes the baseline, redefining nothing. */
        if (!baseline)
                return 0;
        r = observed_projection(ctx, k, req, o, res);
        if (r != 0)
                return r;
        if (strcmp(baseline, o->projection) != 0)
                *ret = DEFINE_DRIFT;
        return 0;
}

/*
 * The baseline of an object found in sync: the record's when libvirt's document is still the one it
 * was taken of; else the projection, when this pass took it anyway (to judge drift), or the document
 * to take it from later, kept in the state file: most objects never need it (docs/drift.md).
 */
static int baseline_now(const rc_request *req, observed *o, rc_result *res) {
        const char *recorded = req->record ? req->record->applied_xml_hash : NULL;

        if ((baseline_projection(recorded) || baseline_is_stored(recorded)) && baseline_whole_is(recorded, o->hash))
                return vf_free_and_strdup(&res->applied_xml_hash, recorded);
        free(res->applied_xml_hash);
        if (o->projection[0]) {
                res->applied_xml_hash = vf_printf("%s:%s", o->hash, o->projection);
                return res->applied_xml_hash ? 0 : -ENOMEM;
        }
        res->applied_xml_hash = vf_printf("%s" BASELINE_STORED, o->hash);
        return res->applied_xml_hash ? vf_free_and_strdup(&res->baseline_xml, o->xml) : -ENOMEM;
}

static bool reports_drift(const rc_request *req) {
        return req->desired->drift == SCHEMA_DRIFT_REPORT;
}

/* Under drift: report an out-of-band change is described, not undone; several are joined. */
static int report_drift(rc_result *res, const char *what) {
        char *joined = res->drifted ? vf_printf("%s; %s", res->drifted, what) : strdup(what);
        if (!joined)
                return -ENOMEM;
        free(res->drifted);
        res->drifted = joined;
        return 0;
}

/*
 * Drift is measured against what libvirt returned after our define of the hash the marker carries. A
 * run killed after that define, before its record was committed, left the record of an older define:
 * then libvirt's XML is no drift but the baseline, and defining again would do the action twice.
 */
static bool recorded_this_define(const rc_request *req, const rc_owner *owner) {
        return req->record && vf_streq_ptr(req->record->desired_hash, owner->hash);
}

/* The declaration the record last applied is the one requested: its hash names it (state_record). */
static bool applied_is_requested(const rc_request *req) {
        return req->record && vf_streq_ptr(req->record->applied_desired_hash, req->definition_hash);
}

/*
 * The spec changed since the define of what libvirt has: the marker's hash says so, or for an unmarked
 * class the definition this store last applied. An autostart change alone redefines no unmarked object.
 * A record of before state schema 9 names what it applied by no hash: its document is compared, or
 * the first pass after an upgrade would define every unmarked object again.
 */
static int definition_changed(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req,
                              const rc_owner *owner, rc_result *res, bool *ret) {
        _cleanup_free_ char *applied = NULL;

        if (!k->cls->unmarked) {
                *ret = !vf_streq_ptr(owner->hash, req->hash);
                return 0;
        }
        if (!req->record || req->record->applied_desired_hash) {
                *ret = !applied_is_requested(req);
                return 0;
        }
        int r = rc_applied_desired_read(ctx, req, res, &applied);
        *ret = !vf_streq_ptr(applied, req->desired->xml);
        return r;
}

static int decide_define(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, observed *o, rc_result *res, define_reason *ret) {
        _cleanup_(rc_owner_done) rc_owner owner = {};
        bool owned, changed = false;
        int r;

        if (!o->obj) {
                *ret = req->record && req->record->uuid ? DEFINE_RECREATE : DEFINE_CREATE;
                return 0;
        }
        if (!o->transient && in_sync_with_record(req, o)) {
                *ret = DEFINE_NONE;
                return 0;
        }
        r = classify_owner(ctx, k, req, o, &owner, &owned);
        if (r >= 0 && owned)
                r = definition_changed(ctx, k, req, &owner, res, &changed);
        if (r < 0)
                return r;
        if (!owned && !req->desired->adopt) {
                rc_result_set(res, RC_FAILED, false, "Conflict",
                              "%s %s already exists and is not managed by this virtform state%s; "
                              "rename the resource, remove the existing object, or set metadata.adopt: true to take it over",
                              vf_kind_to_string(req->kind), req->name,
                              owner.instance ? " (it belongs to another virtform state)" : "");
                return 1;
        }
        if (!owned)
                *ret = DEFINE_ADOPT;
        else if (changed) {
                *ret = DEFINE_CHANGED;
                /*
                 * A run killed after its define and before its record committed left a generation the
                 * record does not know: a new spec must not be defined under that number again.
                 */
                if (owner.generation >= req->generation)
                        res->generation = owner.generation + 1;
        }
        else if (o->transient)
                *ret = DEFINE_PERSIST;
        else if (!k->cls->unmarked && !recorded_this_define(req, &owner)) {
                *ret = DEFINE_NONE; /* what libvirt has now becomes the baseline */
                o->define_unrecorded = true;
        } else
                return judge_drift(ctx, k, req, o, res, ret);
        return 0;
}

static int render(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, observed *o, rc_result *res,
                  char **ret) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        xmlDoc *current = NULL;
        int r = o->obj ? observed_doc(o, &current) : 0;

        if (r >= 0)
                r = complete_doc(ctx, k, req, current, res, &doc);
        if (r != 0)
                return r;
        /* plan shows what the define changes, judged as drift is: what libvirt adds or reorders is no change. */
        if (ctx->dry_run) {
                r = rc_drift_lines(doc, current, &res->plan_desired, &res->plan_current);
                if (r < 0)
                        return r;
        }
        if (!k->cls->unmarked) {
                r = rc_owner_write(doc, ctx, req, res->generation ? res->generation : req->generation);
                if (r < 0)
                        return r;
        }
        *ret = rc_xml_format(doc);
        return *ret ? 0 : -ENOMEM;
}

static int record_uuid(rc_context *ctx, const rc_kind_hooks *k, void *obj, rc_result *res) {
        char uuid[VIR_UUID_STRING_BUFLEN];

        rc_count_read(ctx, RC_CALL_GET_INFO);
        if (k->cls->get_uuid_string(obj, uuid) < 0)
                return 0; /* the next pass records it */
        return vf_free_and_strdup(&res->uuid, uuid);
}

/* The baseline right after our define: libvirt's document as it took what we asked for. */
static int record_applied(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, void *obj,
                          rc_result *res) {
        _cleanup_(observed_done) observed now = { .obj = obj };

        rc_count_read(ctx, RC_CALL_GET_XML);
        now.xml = k->cls->get_xml(obj, true);
        if (!now.xml)
                return record_uuid(ctx, k, obj, res); /* the next pass takes what it finds as its baseline */
        vf_sha256_hex(now.xml, strlen(now.xml), now.hash);
        int r = baseline_now(req, &now, res);
        if (r != 0)
                return r;
        return record_uuid(ctx, k, obj, res);
}

/*
 * Not there when the pass listed objects, and there now that a define of it
 * failed: most likely a killed run's define still in flight inside libvirtd
 * when this run listed, which libvirt took first. Put in the inventory, it is
 * looked at once more as if found at the start: a killed run's is known as
 * ours by its marker, someone else's is a Conflict.
 */
static bool appeared_meanwhile(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req) {
        rc_count_read(ctx, RC_CALL_GET_INFO);
        void *obj = k->cls->lookup_by_name(ctx->conn, req->name);
        return obj && rc_inventory_replace(ctx, req->kind, req->name, obj, 0) >= 0;
}

/* -EEXIST: it failed, and the object appeared meanwhile (see appeared_meanwhile()). */
static int define(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, observed *o, rc_result *res) {
        _cleanup_free_ char *xml = NULL;
        int r = render(ctx, k, req, o, res, &xml);

        if (r != 0)
                return r;
        res->config_changed = true;
        r = rc_step_begin(ctx, req, res, RC_CALL_DEFINE, "define");
        if (r <= 0)
                return r;
        void *obj = k->cls->define_xml(ctx->conn, xml);
        r = rc_step_end(ctx, req, res, "define", obj != NULL, "DefineFailed");
        if (r == -EIO && !obj && !o->obj && appeared_meanwhile(ctx, k, req))
                return -EEXIST;
        if (r < 0)
                return r;
        /* A define that made the object made it as libvirt makes every new one: inactive, persistent, no autostart. */
        r = rc_inventory_replace(ctx, req->kind, req->name, obj, o->obj ? 0 : RC_LISTED);
        if (r < 0)
                return r;
        o->obj = obj;
        return record_applied(ctx, k, req, obj, res);
}

static int converge_autostart(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, void *obj,
                              rc_result *res) {
        int want = k->want_autostart(req), cur = 0;

        if (obj && listed_as(ctx, req, RC_LISTED_AUTOSTART, want))
                cur = want;
        else if (obj) {
                rc_count_read(ctx, RC_CALL_GET_INFO);
                if (k->cls->get_autostart(obj, &cur) < 0)
                        cur = !want; /* unknown: setting it is harmless */
        }
        if (cur == want)
                return 0;
        const char *what = want ? "autostart on" : "autostart off";
        int r = rc_step_begin(ctx, req, res, RC_CALL_SET_AUTOSTART, what);
        if (r <= 0)
                return r;
        return rc_step_end(ctx, req, res, what, k->cls->set_autostart(obj, want) == 0, "AutostartFailed");
}

/*
 * Whether what a refused start, stop or undefine was for is in place all the same: the object runs,
 * is stopped, or is defined no more. Its write then came from elsewhere (rc_object_set_active()).
 */
static bool found_in_place(rc_context *ctx, const rc_object_class *cls, void *obj, rc_call call) {
        rc_count_read(ctx, RC_CALL_GET_INFO);
        if (call == RC_CALL_UNDEFINE) {
                int persistent = cls->is_persistent(obj);
                return persistent == 0 || (persistent < 0 && virGetLastErrorCode() == cls->missing_code);
        }
        int active = cls->is_active(obj);
        if (active <= 0 || call != RC_CALL_START || !cls->run_state)
                return active >= 0 && (active > 0) == (call == RC_CALL_START);
        /* A start's goal is a guest that runs: one that is active but paused is not there yet. */
        rc_run_state state;
        const char *why;
        return cls->run_state(obj, &state, &why) == 0 && state == RC_RUNS;
}

/* rc_step_end() of a start, stop or undefine, which a refusal fails only if its goal is not in place. */
static int end_object_step(rc_context *ctx, const rc_object_class *cls, const rc_request *req, void *obj,
                           rc_result *res, rc_call call, const char *what, const char *fail_reason, bool ok) {
        if (ok)
                return rc_step_end(ctx, req, res, what, true, NULL);
        _cleanup_free_ char *refusal = strdup(rc_libvirt_error());
        bool found = refusal && found_in_place(ctx, cls, obj, call);
        return rc_step_end_refused(ctx, req, res, what, refusal ? refusal : "out of memory", found ? NULL : fail_reason);
}

/* A change of whether an object runs: what the log calls it, and the reason a refusal fails the resource with. */
typedef struct active_step {
        rc_call call;
        const char *what, *fail_reason;
} active_step;

static const active_step active_steps[] = {
        { RC_CALL_START, "start", "StartFailed" },
        { RC_CALL_SHUTDOWN, "shutdown", "ShutdownFailed" },
        { RC_CALL_DESTROY, "destroy", "DestroyFailed" },
};

static const active_step *active_step_of(rc_call call) {
        for (size_t i = 0; i < ELEMENTSOF(active_steps); i++)
                if (active_steps[i].call == call)
                        return &active_steps[i];
        return NULL;
}

int rc_object_set_active(rc_context *ctx, const rc_object_class *cls, const rc_request *req, void *obj,
                         rc_result *res, rc_call call, int (*write)(void *obj)) {
        const active_step *step = active_step_of(call);
        if (!step)
                return -EINVAL;
        int r = rc_step_begin(ctx, req, res, call, step->what);
        if (r <= 0)
                return r;
        return end_object_step(ctx, cls, req, obj, res, call, step->what, step->fail_reason, write(obj) == 0);
}

int rc_object_start(rc_context *ctx, const rc_object_class *cls, const rc_request *req, void *obj, rc_result *res) {
        return rc_object_set_active(ctx, cls, req, obj, res, RC_CALL_START, cls->start);
}

int rc_object_destroy(rc_context *ctx, const rc_object_class *cls, const rc_request *req, void *obj, rc_result *res) {
        return rc_object_set_active(ctx, cls, req, obj, res, RC_CALL_DESTROY, cls->destroy);
}

static int start(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, void *obj, rc_result *res) {
        if (k->prepare_start) {
                int r = k->prepare_start(ctx, req, obj, res);
                if (r != 0)
                        return r;
        }
        return rc_object_start(ctx, k->cls, req, obj, res);
}

/* The generation asked for was applied before: an inactive object now is an out-of-band stop. */
static bool was_settled(const rc_request *req) {
        return req->record && req->record->observed_generation == req->generation;
}

static bool record_says(const state_record *rec, const char *condition_type) {
        const state_condition *c = rec ? state_record_condition(rec, condition_type) : NULL;
        return c && c->status;
}

/*
 * The marker in an object's definition (inactive) or in what runs; -ENOENT
 * without one, or without a readable document.
 */
static int read_marker(rc_context *ctx, const rc_object_class *cls, void *obj, bool inactive, rc_owner *owner,
                       char **ret_xml, xmlDoc **ret_doc) {
        rc_count_read(ctx, RC_CALL_GET_XML);
        _cleanup_free_ char *xml = cls->get_xml(obj, inactive);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xml ? rc_xml_parse(xml) : NULL;
        int r = doc ? rc_owner_read(doc, owner) : -ENOENT;

        if (r < 0)
                return r;
        if (ret_xml)
                *ret_xml = TAKE_PTR(xml);
        if (ret_doc)
                *ret_doc = TAKE_PTR(doc);
        return 0;
}

/*
 * The running instance carries the marker it was started with. Its
 * definition hash says whether what runs differs from what is asked; a
 * change of autostart, state or restart policy alone is no reason to restart.
 * Markers from before that hash was recorded only have the whole hash.
 */
static bool runs_older_definition(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, void *obj) {
        _cleanup_(rc_owner_done) rc_owner live = {};

        if (read_marker(ctx, k->cls, obj, false, &live, NULL, NULL) < 0)
                return true;
        if (live.definition_hash && req->definition_hash)
                return strcmp(live.definition_hash, req->definition_hash) != 0;
        return !vf_streq_ptr(live.hash, req->hash);
}

/*
 * Listed as wanted (running, when it should run; not active, when not), with nothing recorded or done
 * in this pass that asks to look at what runs.
 */
static bool active_as_listed(rc_context *ctx, const rc_request *req, bool want, bool redefined, bool changed) {
        return listed_as(ctx, req, want ? RC_LISTED_RUNNING : RC_LISTED_ACTIVE, want) && !redefined && !changed &&
               !record_says(req->record, "ShuttingDown") && !record_says(req->record, "RestartPending");
}

/* When libvirt's operation on a guest (a start, a save, a migration) is looked at again, without an event. */
#define IN_TRANSITION_RECHECK_USEC (2 * 1000000)

/* converge_running()'s answer once res says why the object's pass ends: r, an error, or 1. */
static int ends_here(int r) {
        return r < 0 ? r : 1;
}

/* libvirt would not say whether the object is active, or how it runs: nothing is decided on a guess. */
static int state_unreadable(const rc_request *req, rc_result *res) {
        rc_result_set(res, RC_FAILED, false, "ReadFailed", "cannot read the state of %s %s: %s",
                      vf_kind_to_string(req->kind), req->name, rc_libvirt_error());
        return -EIO;
}

/*
 * An active object that should run, but may be paused (a domain). A user's pause is drift, resumed as
 * the start it undoes: an interrupted start that left the guest paused is then not counted done. What
 * libvirt is in the middle of is waited for, its events or a short deadline bringing the resource
 * back; what the hypervisor paused for a cause waits for the operator. 1 when the pass of the object
 * ends here (res says why), 0 when it goes on: the object runs, or was resumed.
 */
static int converge_running(rc_context *ctx, const rc_object_class *cls, const rc_request *req, void *obj,
                            rc_result *res) {
        const char *kind = vf_kind_to_string(req->kind), *why;
        rc_run_state state;
        char when[32];

        rc_count_read(ctx, RC_CALL_GET_INFO);
        if (cls->run_state(obj, &state, &why) < 0)
                return state_unreadable(req, res);
        switch (state) {
        case RC_RUNS:
                return 0;
        case RC_RUN_PAUSED:
                if (reports_drift(req) && was_settled(req))
                        return ends_here(report_drift(res, "paused outside virtform; drift: report leaves it paused"));
                rc_warn(ctx, "%s %s is %s; resuming it, as it should run", kind, req->name, why);
                return rc_object_set_active(ctx, cls, req, obj, res, RC_CALL_START, cls->resume);
        case RC_RUN_IN_TRANSITION: {
                int64_t deadline = vf_now_realtime_usec() + IN_TRANSITION_RECHECK_USEC;
                vf_format_time(deadline, when);
                rc_result_set(res, RC_WAITING, false, "InTransition",
                              "%s %s is %s; looked at again when it changes, or at %s", kind, req->name,
                              why, when);
                return ends_here(rc_result_wait(res, RC_WAIT_HYPERVISOR, NULL, deadline));
        }
        case RC_RUN_HELD:
                rc_result_set(res, RC_WAITING, false, "HeldByHypervisor",
                              "%s %s is %s; deal with the cause, then resume it (virsh resume %s)", kind, req->name,
                              why, req->name);
                return ends_here(rc_result_wait(res, RC_WAIT_CHANGE, NULL, 0));
        }
        return -EINVAL;
}

/*
 * redefined: this pass changed the definition outside virtform's spec (drift
 * corrected, adopted): what runs may differ in anything. changed: this pass
 * defined a changed spec, or a killed run did and may have been killed
 * before it restarted what runs: what runs is restarted if its marker says it
 * runs another definition.
 */
static int converge_active(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, void *obj,
                           bool redefined, bool changed, rc_result *res) {
        bool want = k->want_active(req);
        int active = 0;

        if (obj && active_as_listed(ctx, req, want, redefined, changed))
                return 0;
        if (obj) {
                rc_count_read(ctx, RC_CALL_GET_INFO);
                active = k->cls->is_active(obj);
                if (active < 0)
                        return state_unreadable(req, res);
        }
        if (active && record_says(req->record, "ShuttingDown")) {
                /* A shutdown in flight is seen through whatever changed since: the guest was asked already. */
                int r = k->deactivate(ctx, req, obj, res);
                if (r != 0 || res->outcome == RC_WAITING)
                        return r;
                active = 0;
        }
        if (want && !active && reports_drift(req) && was_settled(req))
                return report_drift(res, "stopped outside virtform; drift: report leaves it stopped");
        if (want && !active)
                return start(ctx, k, req, obj, res);
        if (want && k->cls->run_state) {
                int r = converge_running(ctx, k->cls, req, obj, res);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        if (!want && active)
                return k->deactivate(ctx, req, obj, res);
        if (!active)
                return 0;
        if (redefined || (changed && runs_older_definition(ctx, k, req, obj)))
                return k->changed_while_active(ctx, req, obj, res);
        /* Asked again while what runs is older: a network whose users have stopped is restarted now. */
        if (record_says(req->record, "RestartPending") && runs_older_definition(ctx, k, req, obj))
                return k->changed_while_active(ctx, req, obj, res);
        return 0;
}

static const char *define_message(const rc_kind_hooks *k, define_reason why) {
        switch (why) {
        case DEFINE_RECREATE:
                return "recreated: it had been removed outside virtform";
        case DEFINE_CHANGED:
                return "redefined: the desired spec changed";
        case DEFINE_DRIFT:
                return "redefined: its definition had been changed outside virtform (drift corrected)";
        case DEFINE_PERSIST:
                return "defined again: it had been undefined outside virtform while running (drift corrected)";
        case DEFINE_ADOPT:
                return k->cls->unmarked ? "adopted: the existing object is now recorded as this virtform state's"
                                        : "adopted: the existing object now carries virtform's ownership marker";
        default:
                return "applied";
        }
}

static void set_final_outcome(const rc_kind_hooks *k, define_reason why, size_t steps_before, rc_result *res) {
        bool acted = vf_strv_length(res->steps) > steps_before;
        rc_outcome outcome = why == DEFINE_CREATE || why == DEFINE_RECREATE ? RC_CREATED
                             : acted                                        ? RC_UPDATED
                                                                            : RC_UNCHANGED;
        _cleanup_free_ char *steps = NULL;

        if (acted) {
                vf_buf b = {};
                for (size_t i = steps_before; res->steps[i]; i++)
                        vf_buf_printf(&b, "%s%s", i > steps_before ? ", " : "", res->steps[i]);
                steps = vf_buf_steal(&b);
        }
        if (why == DEFINE_CREATE)
                rc_result_set(res, outcome, true, "Applied", "%s", steps ? steps : "");
        else if (why != DEFINE_NONE)
                rc_result_set(res, outcome, true, "Applied", "%s (%s)", define_message(k, why), steps ? steps : "");
        else if (acted)
                rc_result_set(res, outcome, true, "Applied", "%s", steps ? steps : "");
        else
                rc_result_set(res, outcome, true, "Applied", "in sync");
}

/* Brings libvirt's definition to the desired one: *why says what was defined, DEFINE_NONE for nothing. */
static int converge_definition(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, observed *o,
                               rc_result *res, define_reason *why) {
        int r = observe(ctx, k, req, o, res);
        if (r < 0)
                return r;
        r = decide_define(ctx, k, req, o, res, why);
        if (r != 0)
                return r;
        if (*why == DEFINE_RECREATE && reports_drift(req)) {
                rc_result_set(res, RC_FAILED, false, "Drifted",
                              "%s %s was removed outside virtform; with drift: report it stays removed until the "
                              "file changes or drift: correct is set",
                              vf_kind_to_string(req->kind), req->name);
                r = rc_result_wait(res, RC_WAIT_CHANGE, NULL, 0);
                return r < 0 ? r : 1;
        }
        bool keep_baseline = (*why == DEFINE_DRIFT || *why == DEFINE_PERSIST) && reports_drift(req);
        if (keep_baseline) {
                r = report_drift(res, *why == DEFINE_PERSIST
                                              ? "undefined outside virtform while running; drift: report leaves "
                                                "it so, and it is gone once it stops"
                                              : "its definition was changed outside virtform; drift: report "
                                                "leaves it so");
                if (r < 0)
                        return r;
                *why = DEFINE_NONE;
        }

        /*
         * Left unset when the record has it already: a pass would copy every declaration twice for
         * nothing. A record with no hash for it (of before state schema 9) has it written once more.
         */
        if (!applied_is_requested(req)) {
                r = vf_free_and_strdup(&res->applied_desired_xml, req->desired->xml) ?:
                    vf_free_and_strdup(&res->applied_desired_hash, req->definition_hash);
                if (r < 0)
                        return r;
        }
        if (*why != DEFINE_NONE)
                return define(ctx, k, req, o, res);
        /* Under drift: report the baseline stays the one after our define, so the drift stays visible. */
        r = keep_baseline ? vf_free_and_strdup(&res->applied_xml_hash, req->record ? req->record->applied_xml_hash : NULL)
                          : baseline_now(req, o, res);
        if (r == 0 && req->record && req->record->uuid)
                r = vf_free_and_strdup(&res->uuid, req->record->uuid);
        else if (r == 0)
                r = record_uuid(ctx, k, o->obj, res);
        return r;
}

/* A define that failed because the object appeared meanwhile did nothing: the result says nothing of it. */
static void forget_failed_define(rc_result *res, size_t steps_before) {
        for (size_t i = steps_before; res->steps && res->steps[i]; i++)
                free(TAKE_PTR(res->steps[i]));
        res->config_changed = false;
}

int rc_converge_apply(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, rc_result *res) {
        _cleanup_(observed_done) observed o = {};
        define_reason why = DEFINE_NONE;
        size_t steps_before = vf_strv_length(res->steps);
        int r = converge_definition(ctx, k, req, &o, res, &why);

        if (r == -EEXIST) {
                observed_done(&o);
                forget_failed_define(res, steps_before);
                r = converge_definition(ctx, k, req, &o, res, &why);
        }
        if (r != 0)
                return r < 0 ? r : 0;

        r = converge_autostart(ctx, k, req, o.obj, res);
        if (r < 0)
                return r;
        /* Defined again as it runs (DEFINE_PERSIST), it runs what it was asked to: no change to restart for. */
        bool redefined = why == DEFINE_DRIFT || why == DEFINE_ADOPT;
        r = converge_active(ctx, k, req, o.obj, redefined, why == DEFINE_CHANGED || o.define_unrecorded, res);
        if (r != 0)
                return r < 0 ? r : 0;
        if (res->outcome == RC_WAITING)
                return 0;
        set_final_outcome(k, why, steps_before, res);
        return 0;
}

static int undefine(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, void *obj, rc_result *res) {
        int r = rc_step_begin(ctx, req, res, RC_CALL_UNDEFINE, "undefine");
        if (r <= 0)
                return r;
        r = end_object_step(ctx, k->cls, req, obj, res, RC_CALL_UNDEFINE, "undefine", "UndefineFailed",
                            k->cls->undefine(obj) == 0);
        if (r < 0)
                return r;
        rc_inventory_forget(ctx, req->kind, req->name);
        return 0;
}

/*
 * What goes, for plan: libvirt's definition as far as the file declared it when last applied, or whole
 * when the record does not say (one recovered from libvirt).
 */
static int plan_removal(rc_context *ctx, const rc_request *req, observed *o, rc_result *res) {
        _cleanup_free_ char *declared = NULL;
        _cleanup_(xmlFreeDocp) xmlDoc *want = NULL;
        xmlDoc *have = NULL;
        int r = rc_applied_desired_read(ctx, req, res, &declared) ?: observed_doc(o, &have);

        if (r < 0)
                return r;
        want = declared ? rc_xml_parse(declared) : NULL;
        return rc_drift_lines(want ? want : have, have, NULL, &res->plan_current);
}

int rc_converge_remove(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, rc_result *res) {
        _cleanup_(observed_done) observed o = {};
        _cleanup_(rc_owner_done) rc_owner owner = {};
        bool owned, ok = true;
        int r;

        r = observe(ctx, k, req, &o, res);
        if (r < 0)
                return r;
        if (!o.obj) {
                rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; it was already gone");
                return 0;
        }
        r = classify_owner(ctx, k, req, &o, &owner, &owned);
        if (r < 0)
                return r;
        if (!owned) {
                rc_result_set(res, RC_KEPT, true, "NotOwned",
                              "no longer declared, but the existing object does not carry this state's ownership "
                              "marker; left alone");
                res->forget = true;
                return 0;
        }
        if (k->removable) {
                r = k->removable(ctx, req, o.obj, res, &ok);
                if (r < 0 || !ok)
                        return r;
        }
        if (ctx->dry_run) {
                r = plan_removal(ctx, req, &o, res);
                if (r < 0)
                        return r;
        }
        rc_count_read(ctx, RC_CALL_GET_INFO);
        if (k->cls->is_active(o.obj) == 1) {
                r = k->deactivate(ctx, req, o.obj, res);
                if (r != 0 || res->outcome == RC_WAITING)
                        return r < 0 ? r : 0;
        }
        r = undefine(ctx, k, req, o.obj, res);
        if (r < 0)
                return r;
        rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; removed");
        return 0;
}

typedef struct owned_scan {
        rc_context *ctx;
        const rc_kind_hooks *k;
        const vf_map *known_keys;
        char **names;
} owned_scan;

static int scan_one(void *obj, void *userdata) {
        owned_scan *scan = userdata;
        const char *name = scan->k->cls->get_name(obj);
        _cleanup_free_ char *key = schema_key(scan->k->cls->kind, name);
        _cleanup_(rc_owner_done) rc_owner owner = {};

        if (!key)
                return -ENOMEM;
        if (vf_map_get(scan->known_keys, key))
                return 0;
        if (read_marker(scan->ctx, scan->k->cls, obj, true, &owner, NULL, NULL) < 0 ||
            strcmp(owner.instance, scan->ctx->instance_id) != 0)
                return 0;
        return vf_strv_push(&scan->names, name);
}

int rc_converge_owned_names(rc_context *ctx, const rc_kind_hooks *k, const vf_map *known_keys, char ***ret) {
        owned_scan scan = { ctx, k, known_keys, NULL };
        int r = rc_inventory_foreach(ctx, k->cls->kind, scan_one, &scan);

        if (r < 0) {
                vf_strv_free(scan.names);
                return r;
        }
        *ret = scan.names;
        return 0;
}

typedef struct marked_scan {
        rc_context *ctx;
        const rc_object_class *cls;
        rc_marked_object *objs;
        size_t n;
} marked_scan;

/* The PCI addresses an object passes through, as "DDDD:BB:SS.F". */
static int hostdev_addresses(xmlDoc *doc, char ***ret) {
        static const char *const fields[] = { "domain", "bus", "slot", "function" };
        char **parts[ELEMENTSOF(fields)] = {};
        char **addrs = NULL;
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(fields) && r >= 0; i++) {
                _cleanup_free_ char *e = vf_printf("/domain/devices/*[self::hostdev[@type='pci'] or "
                                                   "self::interface[@type='hostdev']]/source/address/@%s",
                                                   fields[i]);
                r = e ? rc_xml_xpath_strings(doc, e, &parts[i]) : -ENOMEM;
        }
        /* An address missing a part names no device we could have bound. */
        for (size_t j = 0; r >= 0 && j < vf_strv_length(parts[0]) && j < vf_strv_length(parts[1]) &&
                           j < vf_strv_length(parts[2]) && j < vf_strv_length(parts[3]);
             j++) {
                _cleanup_free_ char *bdf = vf_printf("%04lx:%02lx:%02lx.%lx", strtoul(parts[0][j], NULL, 16),
                                                     strtoul(parts[1][j], NULL, 16), strtoul(parts[2][j], NULL, 16),
                                                     strtoul(parts[3][j], NULL, 16));
                r = bdf ? vf_strv_push(&addrs, bdf) : -ENOMEM;
        }
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                vf_strv_free(parts[i]);
        if (r < 0) {
                vf_strv_free(addrs);
                return r;
        }
        *ret = addrs;
        return 0;
}

/*
 * The baseline is libvirt's whole XML alone, the form a record kept before
 * projections: with no desired document at hand there is nothing to project
 * onto, and the next pass takes the projection as it finds it, redefining
 * nothing.
 */
static int mark_one(void *obj, void *userdata) {
        marked_scan *scan = userdata;
        _cleanup_(rc_owner_done) rc_owner owner = {};
        _cleanup_free_ char *xml = NULL;
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        char uuid[VIR_UUID_STRING_BUFLEN], hash[VF_HASH_HEX_LEN + 1];

        if (read_marker(scan->ctx, scan->cls, obj, true, &owner, &xml, &doc) < 0)
                return 0;
        rc_count_read(scan->ctx, RC_CALL_GET_INFO);
        if (scan->cls->get_uuid_string(obj, uuid) < 0)
                return -EIO;
        vf_sha256_hex(xml, strlen(xml), hash);
        rc_marked_object *grown = reallocarray(scan->objs, scan->n + 1, sizeof *grown);
        if (!grown)
                return -ENOMEM;
        scan->objs = grown;
        rc_marked_object *m = &scan->objs[scan->n++];
        *m = (rc_marked_object) {
                .kind = scan->cls->kind,
                .name = strdup(scan->cls->get_name(obj)),
                .owner = owner,
                .uuid = strdup(uuid),
                .baseline = strdup(hash),
        };
        owner = (rc_owner) {};
        if (!m->name || !m->uuid || !m->baseline)
                return -ENOMEM;
        rc_count_read(scan->ctx, RC_CALL_GET_INFO);
        if (scan->cls->is_active(obj) == 1) {
                _cleanup_(rc_owner_done) rc_owner live = {};
                m->restart_pending = read_marker(scan->ctx, scan->cls, obj, false, &live, NULL, NULL) >= 0 &&
                                     !vf_streq_ptr(live.hash, m->owner.hash);
        }
        return hostdev_addresses(doc, &m->hostdevs);
}

int rc_converge_marked(rc_context *ctx, const rc_object_class *cls, rc_marked_object **objs, size_t *n) {
        marked_scan scan = { ctx, cls, *objs, *n };
        int r = rc_inventory_foreach(ctx, cls->kind, mark_one, &scan);

        *objs = scan.objs;
        *n = scan.n;
        return r;
}

int rc_converge_probe(rc_context *ctx, const rc_kind_hooks *k, const char *name, bool *ready, char **why) {
        void *obj = rc_inventory_lookup(ctx, k->cls->kind, name);
        const char *kind = vf_kind_to_string(k->cls->kind);

        *ready = false;
        if (!obj) {
                *why = vf_printf("%s %s does not exist; declare it in a file or create it", kind, name);
                return *why ? 0 : -ENOMEM;
        }
        rc_count_read(ctx, RC_CALL_GET_INFO);
        if (k->cls->is_active(obj) != 1) {
                *why = vf_printf("%s %s exists but is not active; start it", kind, name);
                return *why ? 0 : -ENOMEM;
        }
        *ready = true;
        return 0;
}
