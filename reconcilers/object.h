/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to reconcilers/: what domains, networks and storage pools have in
 * common.
 *
 * libvirt gives them parallel APIs (define, get XML, start, autostart,
 * undefine). rc_object_class puts one face on all, so that the convergence
 * logic (ownership, drift, define, autostart, activity) is written once in
 * converge.c and the kind-specific parts stay in their own directory.
 */
#pragma once

#include <libxml/tree.h>

#include "reconcilers/reconciler.h"

/* What one write call that succeeded makes libvirt report of the object (see rc_caused). */
typedef struct rc_call_events {
        uint16_t events; /* one of each, from every driver */
        uint16_t also; /* one of each, from some drivers only */
} rc_call_events;

/*
 * How an active object runs, for kinds whose active objects may not (a domain can be paused): what
 * converge.c does about an object wanted running that is active but not running.
 */
typedef enum rc_run_state {
        RC_RUNS,
        RC_RUN_PAUSED, /* paused by a user (virsh suspend), or found so by libvirt: resumed, as drift */
        RC_RUN_IN_TRANSITION, /* libvirt is starting, saving, migrating or stopping it: looked at again */
        RC_RUN_HELD, /* paused by the hypervisor for a cause (a disk I/O error, a watchdog): the operator's to resume */
} rc_run_state;

typedef struct rc_object_class {
        vf_kind kind;
        /*
         * libvirt keeps no metadata on objects of this kind (storage pools): they carry no ownership
         * marker, and what this store owns, and what it last defined, is what its records say.
         */
        bool unmarked;
        int missing_code; /* libvirt's error for an object of this kind that is not there (any more) */
        int (*list_all)(virConnectPtr conn, void ***objs, unsigned filter); /* count, or -1 */
        /*
         * libvirt's filters of list_all() for active objects of this kind, transient and persistent ones,
         * autostarted and not autostarted ones, and those that run (0: every active one runs).
         */
        unsigned list_active, list_transient, list_persistent, list_autostart, list_no_autostart, list_running;
        /*
         * list_all() unfiltered, and in the same call each object's rc_listed bits for active and running
         * into *states (the caller frees it): count, -1 with libvirt's error, or -ENOMEM. NULL: filtered
         * listings ask those.
         */
        int (*list_all_stated)(virConnectPtr conn, void ***objs, unsigned **states);
        void *(*lookup_by_name)(virConnectPtr conn, const char *name);
        const char *(*get_name)(void *obj);
        void *(*define_xml)(virConnectPtr conn, const char *xml);
        char *(*get_xml)(void *obj, bool inactive);
        int (*is_active)(void *obj);
        /* How an active object runs, and why, if not, in words (static); NULL: every active one runs. */
        int (*run_state)(void *obj, rc_run_state *ret, const char **why);
        int (*resume)(void *obj); /* a paused object's, where run_state can say RC_RUN_PAUSED */
        int (*is_persistent)(void *obj); /* 0 for a transient object: running, but not defined */
        int (*get_autostart)(void *obj, int *autostart);
        int (*set_autostart)(void *obj, int autostart);
        int (*get_uuid_string)(void *obj, char *buf);
        int (*start)(void *obj);
        int (*destroy)(void *obj);
        int (*undefine)(void *obj);
        int (*free)(void *obj);
        const rc_call_events *caused; /* by rc_call: what each write is seen as, counted into rc_result.caused */
} rc_object_class;

extern const rc_object_class rc_domain_class;
extern const rc_object_class rc_network_class;
extern const rc_object_class rc_pool_class;

/* The object of that kind and name from this pass's listing, or NULL. */
void *rc_inventory_lookup(rc_context *ctx, vf_kind kind, const char *name);
/*
 * What this pass knows of an object's state without asking libvirt: from
 * its listings (a filtered listing per question, not a call per object), or
 * from its own define of a new object. RC_LISTED and the states it is in, or
 * 0 when the pass knows nothing of it (looked up by name, redefined, or
 * written to since). An answer that calls for a write is read again first:
 * listed_as() in converge.c.
 */
typedef enum rc_listed {
        RC_LISTED = 1 << 0,
        RC_LISTED_ACTIVE = 1 << 1,
        RC_LISTED_TRANSIENT = 1 << 2,
        RC_LISTED_AUTOSTART = 1 << 3,
        RC_LISTED_RUNNING = 1 << 4, /* active, and not paused */
} rc_listed;
unsigned rc_inventory_listed(rc_context *ctx, vf_kind kind, const char *name);
/* Replaces (or adds) the handle for a name after a define, known in state (rc_listed, or 0); takes obj. */
int rc_inventory_replace(rc_context *ctx, vf_kind kind, const char *name, void *obj, unsigned state);
/* Forgets a name after an undefine, freeing its handle. */
void rc_inventory_forget(rc_context *ctx, vf_kind kind, const char *name);
/* Calls fn for every listed object of a kind; stops at the first negative return. */
int rc_inventory_foreach(rc_context *ctx, vf_kind kind, int (*fn)(void *obj, void *userdata), void *userdata);

/*
 * The domains that use something, as uses() judges from a definition: with running_only the live
 * definitions of running domains, otherwise the inactive definitions of them all. Their names joined
 * by ", " into *joined (NULL for none), and the first one's key into *first_key (may be NULL).
 */
int rc_domain_users(rc_context *ctx, bool running_only, int (*uses)(xmlDoc *doc, const void *what, bool *ret),
                    const void *what, char **joined, char **first_key);

/* Reads the marker from a parsed document; -ENOENT when there is none. */
int rc_owner_read(xmlDoc *doc, rc_owner *ret);
/* Whether href names a namespace of the ownership marker, of any form this version reads. */
bool rc_owner_ns_known(const xmlChar *href);
/* Replaces any marker in doc with one for this request, at that generation. */
int rc_owner_write(xmlDoc *doc, const rc_context *ctx, const rc_request *req, int64_t generation);

/*
 * The XML the request's record last applied (state_record.applied_desired_xml), read from the state
 * file: *ret is NULL when none is kept. A failed read fails res, with the state file's reason.
 */
int rc_applied_desired_read(rc_context *ctx, const rc_request *req, rc_result *res, char **ret);

/* Parses XML that libvirt or the schema produced. */
xmlDoc *rc_xml_parse(const char *xml);
/* Serialises a document without the XML declaration; NULL on OOM. */
char *rc_xml_format(xmlDoc *doc);
/* The first child element of parent with that name, or NULL. */
xmlNode *rc_xml_child(xmlNode *parent, const char *name);
/* n itself or the first element after it among its siblings with that name, or NULL. */
xmlNode *rc_xml_next(xmlNode *n, const char *name);
/* Text of an attribute on the first element matching an XPath expression; the caller frees. */
char *rc_xml_xpath_string(xmlDoc *doc, const char *expr);
/* Every match of an XPath expression yielding strings, as a string vector. */
int rc_xml_xpath_strings(xmlDoc *doc, const char *expr, char ***ret);

DEFINE_POINTER_CLEANUP(xmlDoc, xmlFreeDoc);

/* Drift (drift.c): what virtform asked for, as libvirt shows it. */

/*
 * The projection of have (libvirt's document) onto want (the desired one,
 * completed as it is defined): want's elements and attributes with have's
 * values, matched order-insensitively where libvirt's order means nothing.
 * Equal projections mean no drift. NULL on OOM.
 */
char *rc_drift_projection(xmlDoc *want, xmlDoc *have);
/* The SHA-256 (hex) of rc_drift_projection(): the baseline drift is judged by. */
int rc_drift_hash(xmlDoc *want, xmlDoc *have, char ret[VF_HASH_HEX_LEN + 1]);
/*
 * The same projection as lines of XML, for plan: want's elements with want's values (into ret_want)
 * and with have's (into ret_have), each line with the element's path in want, so that a line diff shows
 * only what a define would change. have may be NULL (nothing yet), either ret NULL (not wanted).
 */
int rc_drift_lines(xmlDoc *want, xmlDoc *have, rc_xml_lines *ret_want, rc_xml_lines *ret_have);

/*
 * Step bookkeeping shared by every reconciler: the only way a reconciler
 * writes to libvirt or the host. Each write is a step: rc_step_begin() lists
 * it (for plan) and records it in the store's write-ahead intent log as
 * intended, durably, before the caller makes it; rc_step_end() records its
 * outcome, committed with the next step's intent or the pass's batch (a
 * failure at once). A crash before that leaves the intent open, and the next
 * run that converges the resource resolves it (state_intent_resolve()).
 */

/*
 * Returns 1 when the caller must now make the write, 0 in a dry run (the
 * step is listed all the same), or -EIO with res Failed when the intent could
 * not be recorded: then the write must not be made.
 */
int rc_step_begin(rc_context *ctx, const rc_request *req, rc_result *res, rc_call call, const char *what);
/*
 * Records the outcome of the write begun last. On failure it marks the result
 * Failed with fail_reason and libvirt's message, and returns -EIO; otherwise 0
 * (or -EIO when the outcome could not be recorded).
 */
int rc_step_end(rc_context *ctx, const rc_request *req, rc_result *res, const char *what, bool ok,
                const char *fail_reason);
/*
 * Records the write begun last as refused, with libvirt's words (copied before any other call reset
 * them). With fail_reason, as rc_step_end() does a failure. Without, what the write was for was found
 * in place since: the log says so, and 0 lets the resource go on (-EIO if it cannot be recorded).
 */
int rc_step_end_refused(rc_context *ctx, const rc_request *req, rc_result *res, const char *what,
                        const char *refusal, const char *fail_reason);
/* rc_step_begin() for a write to the host (sysfs, netlink) rather than to libvirt. */
int rc_host_step_begin(rc_context *ctx, const rc_request *req, rc_result *res, const char *what);
/* Records the outcome of the host write begun last, with the kernel's words on failure. */
int rc_host_step_end(rc_context *ctx, const rc_request *req, rc_result *res, const char *what, bool ok,
                     const char *message);
/*
 * Logs that nothing of this store's is left of the resource (step RC_STEP_FORGET): for what carries
 * no marker (pools, volumes), the log is what tells a later object of that name for someone else's,
 * not one a killed run made. 0, or -EIO (the result says why).
 */
#define RC_STEP_FORGET "forget"
int rc_step_forget(rc_context *ctx, const rc_request *req, rc_result *res);
/*
 * A step that changes only the state file (whose own transaction is its journal): listed for plan,
 * without an intent. Returns whether to perform it.
 */
bool rc_state_step(const rc_context *ctx, rc_result *res, const char *what);
/*
 * Starts or stops an object as a recorded step: call is RC_CALL_START, RC_CALL_SHUTDOWN or
 * RC_CALL_DESTROY, made by write(obj). One that libvirt refuses while the object is found in the
 * state the call leads to is no failure (rc_step_end_refused() without a reason): a killed run's
 * write was still in flight inside libvirtd as this run looked, or a guest got there by itself.
 */
int rc_object_set_active(rc_context *ctx, const rc_object_class *cls, const rc_request *req, void *obj,
                         rc_result *res, rc_call call, int (*write)(void *obj));
/* Starts an object as a recorded step. */
int rc_object_start(rc_context *ctx, const rc_object_class *cls, const rc_request *req, void *obj, rc_result *res);
/* Stops an active object at once (libvirt's destroy: a pool is deactivated, its target kept) as a recorded step. */
int rc_object_destroy(rc_context *ctx, const rc_object_class *cls, const rc_request *req, void *obj, rc_result *res);
/* Counts a read call. */
void rc_count_read(rc_context *ctx, rc_call call);

/* What a kind adds to the shared convergence in converge.c. */
typedef struct rc_kind_hooks {
        const rc_object_class *cls;
        /* Whether the object should run (domain: spec.state) and start at boot. */
        bool (*want_active)(const rc_request *req);
        bool (*want_autostart)(const rc_request *req);
        /*
         * Completes the desired document before it is defined: keeps what
         * libvirt assigned and the file leaves open (UUID is shared; MACs,
         * bridge names are the kind's), picks hypervisor-specific values.
         * current is NULL when the object does not exist yet.
         */
        int (*complete)(rc_context *ctx, const rc_request *req, xmlDoc *current, xmlDoc *desired, rc_result *res);
        /* What an inactive object needs before it starts (a pool: its target built); NULL: nothing. */
        int (*prepare_start)(rc_context *ctx, const rc_request *req, void *obj, rc_result *res);
        /* The definition changed while the object is active: restart it, or say a restart is pending. */
        int (*changed_while_active)(rc_context *ctx, const rc_request *req, void *obj, rc_result *res);
        /*
         * Stops an active object (domain: graceful with timeout, then destroy). A stop that takes time
         * leaves res Waiting on RC_WAIT_OPERATION and returns 0; the caller then goes no further.
         */
        int (*deactivate)(rc_context *ctx, const rc_request *req, void *obj, rc_result *res);
        /* May the object go? Otherwise sets res Waiting and returns 0 with *ok false. NULL: always. */
        int (*removable)(rc_context *ctx, const rc_request *req, void *obj, rc_result *res, bool *ok);
} rc_kind_hooks;

int rc_converge_apply(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, rc_result *res);
int rc_converge_remove(rc_context *ctx, const rc_kind_hooks *k, const rc_request *req, rc_result *res);
int rc_converge_owned_names(rc_context *ctx, const rc_kind_hooks *k, const vf_map *known_keys, char ***ret);
/* Appends every object of the class that carries a marker, whichever store's, to *objs. */
int rc_converge_marked(rc_context *ctx, const rc_object_class *cls, rc_marked_object **objs, size_t *n);
int rc_converge_probe(rc_context *ctx, const rc_kind_hooks *k, const char *name, bool *ready, char **why);

/* Defines the rc_ops of a libvirt object kind from its hooks. */
#define RC_DEFINE_OBJECT_OPS(ops_name, vf_kind_value, hooks)                                                      \
        static int ops_name##_apply(rc_context *ctx, const rc_request *req, rc_result *res) {         \
                return rc_converge_apply(ctx, &hooks, req, res);                                      \
        }                                                                                             \
        static int ops_name##_remove(rc_context *ctx, const rc_request *req, rc_result *res) {        \
                return rc_converge_remove(ctx, &hooks, req, res);                                     \
        }                                                                                             \
        static int ops_name##_probe(rc_context *ctx, const char *name, bool *ready, char **why) {      \
                return rc_converge_probe(ctx, &hooks, name, ready, why);                              \
        }                                                                                             \
        static int ops_name##_owned(rc_context *ctx, const vf_map *known_keys, char ***ret) {         \
                return rc_converge_owned_names(ctx, &hooks, known_keys, ret);                         \
        }                                                                                             \
        static int ops_name##_marked(rc_context *ctx, rc_marked_object **objs, size_t *n) {           \
                return rc_converge_marked(ctx, hooks.cls, objs, n);                                   \
        }                                                                                             \
        const rc_ops ops_name = {                                                                     \
                .kind = vf_kind_value,                                                                \
                .apply = ops_name##_apply,                                                            \
                .remove = ops_name##_remove,                                                          \
                .probe = ops_name##_probe,                                                            \
                .owned_names = ops_name##_owned,                                                      \
                .marked_objects = ops_name##_marked,                                                  \
        }
