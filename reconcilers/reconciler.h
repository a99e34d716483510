/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * reconcilers: converge one resource at a time onto libvirt.
 *
 * The controller hands a reconciler one request (the desired resource, what
 * the store recorded, the state of its dependencies) and gets back a result:
 * an outcome, the conditions to record and the steps taken. Reconcilers never
 * call each other; what one needs of another arrives in the request.
 *
 * With ctx->dry_run the same code runs and records its steps without making a
 * single libvirt write call, which is what keeps `plan` exact.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "common/common.h"
#include "schema/schema.h"
#include "state/state.h"

/*
 * The XML namespace of the ownership marker in every object virtform creates:
 * one element whose text holds the facts, a line "key=value" each. libvirt
 * keeps every object's metadata as a tree of its own, and the marker's first
 * form, an attribute per fact, cost libvirt three times the memory.
 */
#define RC_OWNER_NS "https://virtform.org/xmlns/owner/2"
/*
 * The marker's first form, still read: objects marked before it changed are
 * rewritten only by their next define. Also the namespace of a volume's
 * deletion policy in the XML its record keeps.
 */
#define RC_OWNER_NS_1 "https://virtform.org/xmlns/owner/1"
/*
 * The namespace of virtform's policy in files. A domain's desired XML carries
 * one thing in it for the reconciler to resolve, which libvirt never sees: the
 * vf:cloudinit='NAME' of a seed's cdrom source, whose pool the seed decides.
 */
#define RC_POLICY_NS "https://virtform.org/xmlns/policy/1"

/* Every libvirt call a reconciler makes, so that tests and operators can count them. */
typedef enum rc_call {
        /* reads */
        RC_CALL_LIST,
        RC_CALL_GET_XML,
        RC_CALL_GET_INFO, /* is-active, autostart, uuid, capabilities */
        RC_CALL_DOWNLOAD, /* a volume's content streamed out */
        /* writes */
        RC_CALL_DEFINE,
        RC_CALL_UNDEFINE,
        RC_CALL_START,
        RC_CALL_SHUTDOWN,
        RC_CALL_DESTROY,
        RC_CALL_SET_AUTOSTART,
        RC_CALL_BUILD, /* a pool's target: virStoragePoolBuild */
        RC_CALL_CREATE_VOLUME, /* empty, or cloned from another volume */
        RC_CALL_UPLOAD, /* a volume's content streamed in */
        RC_CALL_RESIZE,
        RC_CALL_DELETE_VOLUME,
        _RC_CALL_MAX,
} rc_call;

#define RC_CALL_FIRST_WRITE RC_CALL_DEFINE

const char *rc_call_to_string(rc_call call);

typedef struct rc_counters {
        unsigned calls[_RC_CALL_MAX];
} rc_counters;

unsigned rc_counters_reads(const rc_counters *c);
unsigned rc_counters_writes(const rc_counters *c);
/* "define 3, start 2" listing only the write calls made; "none" when there were none. */
char *rc_counters_format_writes(const rc_counters *c);

typedef struct rc_inventory rc_inventory;

typedef struct rc_context {
        virConnectPtr conn;
        state_store *store; /* read in dry runs, written otherwise */
        const char *instance_id; /* the store's: marks what this store owns */
        bool dry_run;
        unsigned shutdown_timeout_sec; /* graceful shutdown before destroy */
        rc_counters counters;
        char *domain_type; /* picked from the hypervisor on first need */
        /* The hypervisor's default machine for an arch ("" for the host's), asked on first need; "" when it names none. */
        char *machine_arch, *default_machine;
        rc_inventory *inventory; /* one listing of libvirt's objects per pass */
        const char *sysfs_root; /* "/sys", or a fixture tree in tests */
        /* What each kind's reconciler keeps between passes, opaque here; freed by its rc_ops.context_free. */
        void *kind_state[_VF_KIND_MAX];
        /*
         * A named point (e.g. "hostdev-after-save") where the process kills
         * itself, so tests can show that a crash there loses nothing.
         */
        const char *fault_point;
        /* For crash tests: die with SIGKILL right after this many more libvirt writes; 0: never. */
        unsigned fault_after_libvirt_writes;
        /* Likewise right after this many more intents are durable, before their writes. */
        unsigned fault_after_intents;
        unsigned steps_begun; /* writes to libvirt and the host whose intents were recorded, ever */
        int64_t open_intent; /* the intent of the write in progress (rc_step_begin()), in the store's log */
        rc_call open_call; /* and its call, whose lifecycle events rc_step_end() counts once it succeeded */
        /* Told of each step as it begins, dry run or not (apply's progress line); NULL: nobody listens. */
        void (*on_step)(void *userdata, vf_kind kind, const char *name, const char *what);
        void *on_step_userdata;
        /*
         * Asked again and again during a write that takes long and can be undone (an import): true
         * abandons it and undoes what it made, so that SIGTERM stops a pass promptly. NULL: never.
         */
        bool (*interrupted)(void *userdata);
        void *interrupted_userdata;
        /* Told of a failure the pass worked around (a listing done another way): logged, never silent. */
        void (*on_warning)(void *userdata, const char *message);
        void *on_warning_userdata;
} rc_context;

/* Tells ctx->on_warning, if anyone listens. */
void rc_warn(const rc_context *ctx, const char *fmt, ...) _printf_(2, 3);

/* Whether the write in progress is to be abandoned (rc_context.interrupted). */
bool rc_interrupted(const rc_context *ctx);

/* Dies with SIGKILL when point is ctx->fault_point: a crash at a chosen step. */
void rc_fault_point(const rc_context *ctx, const char *point);

/*
 * Starts a pass. With list_all, libvirt's domains and networks are listed
 * once up front (a full pass looks at all of them); otherwise each name is
 * looked up when first needed, and listed only if a reconciler must see all.
 */
int rc_context_begin_pass(rc_context *ctx, bool list_all, char **errmsg);
void rc_context_end_pass(rc_context *ctx);
/* Forgets what was asked of the hypervisor (domain type, default machine): another one may answer next. */
void rc_context_forget_hypervisor(rc_context *ctx);
void rc_context_done(rc_context *ctx);

typedef enum rc_outcome {
        RC_UNCHANGED,
        RC_CREATED,
        RC_UPDATED,
        RC_DELETED,
        RC_KEPT, /* no longer declared, kept by --no-prune */
        RC_WAITING,
        RC_FAILED,
        _RC_OUTCOME_MAX,
} rc_outcome;

const char *rc_outcome_to_string(rc_outcome outcome);

typedef struct rc_request {
        vf_kind kind;
        const char *name;
        const schema_resource *desired; /* NULL: the resource is to be removed */
        const state_record *record; /* NULL: never recorded */
        int64_t generation; /* the generation this pass applies */
        /*
         * What the ownership marker records: desired->hash folded with what the
         * resource takes from its dependencies (a domain: its hostdevs' addresses).
         */
        const char *hash;
        /* The same for what goes into the libvirt definition only: what decides a restart. */
        const char *definition_hash;
        /* Domains: the Hostdevs named by spec.hostdevs and hostdev interfaces, in that order. */
        const schema_resource *const *hostdevs;
        size_t n_hostdevs;
        /* Domains: the declared CloudInit seeds its disks name, in file order (their pools place the cdroms). */
        const schema_resource *const *cloudinits;
        size_t n_cloudinits;
        /* Hostdevs: the domain that claims the device (NULL: none), and whether it is to run. */
        const char *claimant;
        bool claimant_running;
} rc_request;

/*
 * What a resource that is not Ready waits for. The scheduler acts on this
 * type alone, never on the reason word, which is for people.
 */
typedef enum rc_wait_kind {
        RC_WAIT_NONE, /* Ready, or kept: nothing to wait for */
        RC_WAIT_TIMER, /* a retry with backoff: the default for anything that failed */
        RC_WAIT_DEPENDENCY, /* the resource target ("kind/name") to become Ready */
        RC_WAIT_USER, /* the object target ("kind/name") that uses this one to let go of it */
        RC_WAIT_OPERATION, /* an operation this resource started (a graceful shutdown): its own events, or the deadline */
        RC_WAIT_HYPERVISOR, /* an operation of libvirt's own on the object (a start another client asked for, a save,
                               a migration): its events, or the deadline to look again */
        RC_WAIT_LINK, /* link events of the netdev target (a VF's PF) */
        RC_WAIT_DEVICE, /* the PCI device target to appear or change */
        RC_WAIT_CHANGE, /* the desired state to change: a file to be fixed, a drift to be settled */
} rc_wait_kind;

typedef struct rc_wait {
        rc_wait_kind kind;
        char *target; /* what the kinds above name; NULL for the timer and a change */
        int64_t deadline_usec; /* realtime; RC_WAIT_OPERATION and _HYPERVISOR: come back by then without an event */
} rc_wait;

/* A definition as plan shows it: one element per line (its start, its end, or all of it), indented. */
typedef struct rc_xml_lines {
        char **lines;
        char **paths; /* of each line, its element's XPath: /domain/devices/interface[2] */
} rc_xml_lines;

void rc_xml_lines_done(rc_xml_lines *l);

/*
 * Room for every lifecycle event number libvirt gives an object of any kind (VIR_DOMAIN_EVENT_*,
 * VIR_NETWORK_EVENT_*, VIR_STORAGE_POOL_EVENT_*): a domain's go up to VIR_DOMAIN_EVENT_CRASHED (8).
 */
#define RC_LIFECYCLE_EVENTS 16

/*
 * The lifecycle events a resource's writes make libvirt report of its object, by libvirt's number for
 * the kind. The daemon takes them as its own, not as news (see controller/own-events.c).
 */
typedef struct rc_caused {
        uint8_t counts[RC_LIFECYCLE_EVENTS]; /* reported by every driver, this many of each */
        /* One of each may come with them from some drivers (QEMU's RESUMED before STARTED): RC_EVENT bits. */
        uint16_t also;
} rc_caused;
_Static_assert(RC_LIFECYCLE_EVENTS <= 16, "rc_caused.also and rc_call_events hold one bit per event in 16");

/* Adds from's counts to to's, each saturating at UINT8_MAX, and its also. */
void rc_caused_add(rc_caused *to, const rc_caused *from);

/* A lifecycle event number's bit. */
#define RC_EVENT(event) (1u << (event))

typedef struct rc_result {
        rc_outcome outcome;
        bool ready;
        char *reason; /* one CamelCase word: Applied, Conflict, DefineFailed, ... */
        char *message; /* one line an operator can act on */
        char *restart_pending; /* why a restart is pending, or NULL */
        char *drifted; /* with drift: report, what changed out of band and was left so; or NULL */
        char *uuid;
        char *applied_xml_hash;
        char *baseline_xml; /* the document applied_xml_hash defers its projection to (state_record.baseline_xml) */
        char *applied_desired_xml; /* a new one to record, with the hash that names it (state_record) */
        char *applied_desired_hash;
        char **steps; /* what was (or, in a dry run, would be) done, in order */
        bool config_changed; /* the definition changed: plan shows a diff */
        /*
         * Dry runs only, for plan's diff: what a define would write (NULL lines for a removal) and,
         * line for line, what libvirt has of it now, projected as drift is (empty for a new object).
         */
        rc_xml_lines plan_desired, plan_current;
        bool forget; /* nothing of this store's is left (removed, or never ours): the record goes */
        int64_t generation; /* when not 0: the generation actually applied, past the request's (see converge.c) */
        char *shutting_down; /* a graceful shutdown is in flight: what and until when, or NULL */
        /*
         * What brings it back. Not Ready: what it waits for (RC_WAIT_NONE: the timer). Ready: an event
         * source that can undo that (a VF's PF link), or RC_WAIT_NONE.
         */
        rc_wait wait;
        rc_caused caused; /* what its writes make libvirt report of the object */
} rc_result;

/* Of a resource that is not Ready: only its retry timer brings it back, no event will. */
static inline bool rc_wait_ends_by_timer(rc_wait_kind kind) {
        return kind == RC_WAIT_NONE || kind == RC_WAIT_TIMER;
}

void rc_result_done(rc_result *res);
/* Sets what a result waits for; target is copied (may be NULL). Returns 0 or -ENOMEM. */
int rc_result_wait(rc_result *res, rc_wait_kind kind, const char *target, int64_t deadline_usec);
/* Sets outcome, readiness, reason and a printf message in one go. */
void rc_result_set(rc_result *res, rc_outcome outcome, bool ready, const char *reason, const char *fmt, ...)
        _printf_(5, 6);

/* The ownership marker found in an object's definition. */
typedef struct rc_owner {
        char *instance;
        char *resource; /* "kind/name" */
        int64_t generation;
        char *hash;
        char *definition_hash; /* NULL in markers written before it was recorded */
} rc_owner;

void rc_owner_done(rc_owner *o);

/* An object that carries a virtform marker, whichever store's: what `state recover` rebuilds a record from. */
typedef struct rc_marked_object {
        vf_kind kind;
        char *name;
        rc_owner owner;
        char *uuid;
        char *baseline; /* the drift baseline a pass takes when it has no desired document to project onto */
        char **hostdevs; /* the PCI addresses ("DDDD:BB:SS.F") it passes through */
        bool restart_pending; /* it runs with another marked definition than the one it has */
} rc_marked_object;

void rc_marked_object_list_free(rc_marked_object *objs, size_t n);

typedef struct rc_ops {
        vf_kind kind;
        /* Creates or updates toward req->desired. */
        int (*apply)(rc_context *ctx, const rc_request *req, rc_result *res);
        /* Removes what req names, only if this store owns it. */
        int (*remove)(rc_context *ctx, const rc_request *req, rc_result *res);
        /* For a dependency no file declares: is an object of that name usable? *why says why not. */
        int (*probe)(rc_context *ctx, const char *name, bool *ready, char **why);
        /*
         * Names of the objects of this kind that carry this store's ownership
         * marker, looking only at those whose "kind/name" is not in known_keys.
         */
        int (*owned_names)(rc_context *ctx, const vf_map *known_keys, char ***ret);
        /* Appends to *objs every object of this kind that carries any store's marker; NULL: none can. */
        int (*marked_objects)(rc_context *ctx, rc_marked_object **objs, size_t *n);
        /* Frees ctx->kind_state[kind]; NULL for a kind that keeps none. */
        void (*context_free)(void *state);
} rc_ops;

extern const rc_ops rc_network_ops;
extern const rc_ops rc_domain_ops;
extern const rc_ops rc_hostdev_ops;
extern const rc_ops rc_pool_ops;
extern const rc_ops rc_volume_ops;
extern const rc_ops rc_cloudinit_ops;

/* What `virtform hostdev resolve` explains about one PCI device. */
typedef struct rc_hostdev_explanation {
        char *device;
        bool is_vf;
        char *pf;
        char *pf_netdev;
        int vf_index; /* -1 when not a VF */
        const char *method; /* static: "phys_port_id", "phys_port_name", "first", "recorded", "none" */
        char *driver;
        int pf_admin_up; /* 1, 0, or -1 when the link is not present */
        int carrier; /* likewise */
        char *error; /* NULL on success: why it cannot be resolved to a PF (not a VF included) */
} rc_hostdev_explanation;

/*
 * Resolves a device as the hostdev reconciler would, using the store's
 * recorded resolution (store may be NULL), and reads its PF's link state.
 * Returns 0 with ret->error set when the device cannot be resolved.
 */
int rc_hostdev_explain(const char *sysfs_root, state_store *store, const char *bdf, rc_hostdev_explanation *ret);
void rc_hostdev_explanation_done(rc_hostdev_explanation *e);

/*
 * Returns once an embedded driver (qemu:///embed) has reconnected to the
 * guests that were running when this process opened it, so that their state
 * is settled before a pass reads it and no reconnect is still running at exit.
 */
int rc_domain_wait_reconnected(virConnectPtr conn);

/*
 * The binding journal row `state recover` can honestly rebuild for a device a
 * recovered domain passes through: one that sysfs shows on vfio-pci with
 * driver_override=vfio-pci, bind phase "bound", original driver unknown ("")
 * and nothing saved of its VF config. *ret is NULL for any other device.
 */
int rc_hostdev_recovered_device(const char *sysfs_root, const char *bdf, state_device **ret);

/*
 * The seed a CloudInit's volume gets, as `virtform cloud-init render` writes it: an ISO 9660 image
 * (volume id cidata) in *ret, *ret_size bytes, the same for the same resource. Needs no hypervisor.
 */
int rc_cloudinit_render(const schema_resource *r, uint8_t **ret, size_t *ret_size, char **errmsg);

/* libvirt's last error message in this thread, or a fallback. */
const char *rc_libvirt_error(void);

/* The reconciler of a kind, or NULL if that kind has none yet. */
const rc_ops *rc_ops_for_kind(vf_kind kind);
