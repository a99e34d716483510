/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * controller: the context that owns everything mutable, the dependency graph,
 * one convergence pass, and the CLI on top.
 *
 * Data flows one way: schema_set -> graph -> reconciler -> libvirt -> state.
 * The CLI is a thin layer: tests drive vf_controller in-process.
 */
#pragma once

#include <stdatomic.h>

#include "reconcilers/reconciler.h"
#include "schema/schema.h"
#include "state/state.h"

typedef enum vf_log_level {
        VF_LOG_ERR,
        VF_LOG_WARNING,
        VF_LOG_NOTICE,
        VF_LOG_INFO,
        VF_LOG_DEBUG,
} vf_log_level;

typedef struct vf_options {
        const char *uri; /* NULL: LIBVIRT_DEFAULT_URI, else libvirt's default */
        const char *state_path; /* NULL: state_default_path() */
        char **paths; /* directories and files of desired state */
        bool default_paths; /* paths are schema_default_dirs, which may be missing */
        bool prune; /* remove owned objects whose declaration is gone */
        bool dry_run; /* plan: read-only connection, read-only store */
        unsigned shutdown_timeout_sec;
        vf_log_level log_level;
        const char *sysfs_root; /* "/sys" unless tests or --sysfs-root say otherwise */
        bool daemon; /* schedule retries with backoff, and keep the graph between passes */
        unsigned retry_base_sec; /* the first retry's delay; it doubles per attempt */
        unsigned retry_max_sec;
        unsigned debounce_msec; /* how long file events settle before a reload */
        bool log_json; /* one JSON object per log line */
        bool log_time; /* text log lines start with the time: not on journald's stream, which adds its own */
        bool wait; /* apply --wait: follow events until converged */
        unsigned wait_timeout_sec; /* with wait: give up after this long (default 600); 0: never */
        unsigned transition_timeout_sec; /* apply without wait: how long it follows libvirt's own operations */
        const char *fault_point; /* $VIRTFORM_FAULT_POINT: see rc_fault_point() */
        bool insecure_permissions; /* as root, read files others could have changed, with a warning */
        unsigned wait_lock_sec; /* how long to wait for another writer to release the state file; 0: refuse */
        unsigned log_retention_days; /* the event log keeps this many days of history... */
        unsigned log_retention_rows; /* ...and at most this many events */
        bool recover; /* state recover: an empty state file is made anew, to be filled from libvirt */
        const char *instance; /* state recover --instance: the lost store's id, when markers of several are found */
} vf_options;

void vf_options_init(vf_options *o);

/* How files are loaded: as root, only what root alone can change is believed, unless told otherwise. */
static inline schema_load_options vf_options_schema(const vf_options *o) {
        return (schema_load_options) { .check_trust = geteuid() == 0, .insecure_permissions = o->insecure_permissions,
                                        .default_dirs = o->default_paths };
}

/* What one pass did to one resource. */
typedef struct vf_report_entry {
        vf_kind kind;
        char *name;
        char *key; /* "kind/name" */
        char *source_file;
        rc_result result;
} vf_report_entry;

typedef struct vf_report {
        vf_report_entry *entries;
        size_t n_entries, cap_entries;
        const schema_set *desired; /* borrowed: diagnostics of the files read */
        rc_counters counters; /* libvirt calls made by this pass */
        unsigned by_outcome[_RC_OUTCOME_MAX];
        unsigned n_file_errors;
        bool interrupted; /* stopped between two resources (SIGTERM, a deadline): the rest was not looked at */
        vf_map *by_key; /* "kind/name" -> 1 + entry index, once vf_report_absorb() has merged into it */
} vf_report;

void vf_report_done(vf_report *r);
/*
 * Folds a later pass's report into r, emptying from: one entry per resource with its latest result,
 * whose outcome still says what the run did (created, then unchanged, is created) and whose steps are
 * all the steps the run took. For `apply`, which may take several passes.
 */
int vf_report_absorb(vf_report *r, vf_report *from);
/* What the run did stays said: an action is not undone by a later pass that found nothing to do. */
rc_outcome vf_report_run_outcome(rc_outcome earlier, rc_outcome later);
/* True when every resource is Ready, every file was valid and the pass was not interrupted. */
bool vf_report_converged(const vf_report *r);

/*
 * Told of each resource as its turn in a pass comes and once it is decided,
 * and, between events, of what waits on an operation it started: how apply
 * streams its lines. Every callback may be NULL.
 */
typedef struct vf_observer {
        void (*begin)(void *userdata, const char *key, size_t index, size_t total);
        /* Each write the resource begun makes, as its step is named ("define", "shutdown"). */
        void (*step)(void *userdata, vf_kind kind, const char *name, const char *what);
        void (*decided)(void *userdata, const vf_report_entry *e);
        /* About once a second while key waits; reason is its CamelCase Ready reason, deadline realtime. */
        void (*in_flight)(void *userdata, const char *key, const char *reason, int64_t deadline_usec);
        void *userdata;
} vf_observer;

struct graph;

typedef struct vf_controller {
        vf_options opts;
        virConnectPtr conn;
        state_store *store;
        rc_context rc;
        schema_set *desired;
        struct graph *graph; /* from the last full pass, updated by incremental ones */
        /* A full pass failed after letting the last graph go: graph is empty until a full pass succeeds. */
        bool graph_lost;
        /*
         * Why nothing is pruned now: a path given cannot be read, or a
         * directory vanished while running. NULL when prune may go ahead.
         */
        char *prune_held;
        char **dirs_seen; /* every directory read in a full pass since open: its vanishing holds prune */
        FILE *log; /* where log lines go: stderr */
        /* Asked between two resources of a pass: true stops it there (SIGTERM, apply's deadline). */
        bool (*should_stop)(void *userdata);
        void *should_stop_userdata;
        const vf_observer *observer; /* optional: apply's streamed output */
} vf_controller;

/* Connects to libvirt and opens the store (with opts.recover, not yet). On failure *errmsg says why. */
int vf_controller_open(vf_controller *c, const vf_options *opts, char **errmsg);
/* Opens the store of a controller opened without it (opts.recover), as vf_controller_open() would. */
int vf_controller_open_store(vf_controller *c, char **errmsg);
void vf_controller_close(vf_controller *c);
/* Drops the hypervisor connection and opens a new one (after libvirtd went away). */
int vf_controller_reconnect(vf_controller *c, char **errmsg);

/*
 * Loads opts.paths, then converges once: applies what is declared in
 * dependency order and prunes what is gone in reverse order. Fills report.
 * Returns 0 when the pass ran (whatever the outcomes), or a negative errno
 * when it could not (hypervisor unreachable, store failing) with *errmsg set.
 */
int vf_controller_pass(vf_controller *c, vf_report *report, char **errmsg);

/*
 * Converges only the resources named by keys ("kind/name"), and what depends
 * on them, against the already loaded set and graph. For the daemon.
 */
int vf_controller_pass_keys(vf_controller *c, char *const *keys, vf_report *report, char **errmsg);

/*
 * `state recover` on a controller opened with opts.recover: reads the
 * ownership markers libvirt shows, then opens the store and fills it,
 * adopting their instance id
 * (instance: which one, when several stores' markers are found; NULL: the one
 * there is), and the binding journal of the devices those domains pass
 * through that sysfs shows bound to vfio-pci. One line per record on out.
 * Refused before the store is opened (several instances, none found), it
 * leaves a lost state file as it found it.
 * -ENOTEMPTY when the store holds records, -ENOTUNIQ for several instances
 * and none chosen, -ENOENT when no marker is found; *errmsg says what to do.
 */
int vf_controller_recover(vf_controller *c, const char *instance, FILE *out, char **errmsg);

/* ---- the daemon ---------------------------------------------------------- */

typedef struct vf_daemon vf_daemon;

typedef struct vf_daemon_stats {
        _Atomic uint64_t wakeups; /* times the event loop woke up */
        _Atomic uint64_t passes; /* passes run, full or incremental */
        _Atomic bool armed; /* a timer is armed: work is due later */
} vf_daemon_stats;

typedef struct vf_daemon_options {
        bool files_read_once; /* apply: no inotify; the files are read by the first pass only */
        bool exit_when_converged; /* apply --wait: stop once every resource is Ready */
        bool exit_when_settled; /* apply: stop once no operation it started is in flight (a graceful shutdown) */
        int64_t timeout_usec; /* with exit_when_*: give up after this long; 0: never */
        /* With exit_when_settled: what libvirt is in the middle of on an object is in flight this long too. */
        int64_t follow_hypervisor_usec;
        vf_report *report; /* optional: every pass's report is folded into it (vf_report_absorb) */
        vf_daemon_stats *stats; /* optional, read by tests from another thread */
} vf_daemon_options;

/*
 * Blocks the signals the daemon reads and starts libvirt's event thread:
 * call it before vf_controller_open(), so that the connection delivers events.
 */
int vf_daemon_new(const vf_daemon_options *o, vf_daemon **ret);
void vf_daemon_free(vf_daemon *d);
DEFINE_POINTER_CLEANUP(vf_daemon, vf_daemon_free);
/*
 * Converges, then follows files (unless files_read_once), libvirt, links and
 * devices until SIGTERM or SIGINT (returns 0); with exit_when_converged until
 * every resource is Ready (0), with exit_when_settled until nothing it started
 * is in flight (0), or until the timeout passes (-ETIMEDOUT). *converged says
 * whether every resource was Ready at the end. A pass stops between two
 * resources on SIGTERM or at the timeout.
 */
int vf_daemon_run(vf_daemon *d, vf_controller *c, bool *converged, char **errmsg);

/*
 * apply: the daemon without the files. vf_daemon_new_apply() makes it, before vf_controller_open() as
 * vf_daemon_new() says, so that SIGTERM stops it between two resources instead of killing it; report is
 * to cover the whole run. vf_daemon_apply() then converges on the open controller and follows what it
 * started (a graceful shutdown) to its end; with opts.wait it retries and follows events as the daemon
 * does until every resource is Ready or opts.wait_timeout_sec passes (not an error: report says what is
 * not Ready).
 */
int vf_daemon_new_apply(const vf_options *opts, vf_report *report, vf_daemon **ret);
int vf_daemon_apply(vf_daemon *d, vf_controller *c, char **errmsg);

/* One log line to stderr, as text or JSON; the _resource variant names the resource it is about. */
void vf_log(const vf_controller *c, vf_log_level level, const char *fmt, ...) _printf_(3, 4);
void vf_log_resource(const vf_controller *c, vf_log_level level, const char *key, const char *fmt, ...)
        _printf_(4, 5);
/* A file's diagnostic, at error or warning level as it is. */
void vf_log_diag(const vf_controller *c, const schema_diag *diag);

/* The CLI: returns the process exit status. */
int vf_main(int argc, char **argv);
