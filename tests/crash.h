/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The crash matrix, whatever the hypervisor: `virtform apply` (a child
 * process) is killed with SIGKILL at a fault point or a random moment, run
 * again until it exits 0, and what it left is compared with a clean run's:
 *
 * - libvirt's objects, as the hypervisor's own observer sees them from
 *   outside virtform (virsh, the kernel);
 * - the writes libvirt made, as its files show them: an inotify watch the
 *   test holds across every run of a trial on the directories the
 *   hypervisor names (a define renames the new file into place, an undefine
 *   deletes it, autostart is a link, a running network has a status file);
 * - the records in the state file;
 * - the event log: the actions it shows done (ok, or interrupted and found
 *   done) are the clean run's, each once, and no intent is left open.
 *
 * Two applies, conf[0] then conf[1]: a trial of the second starts from a
 * clean first. What the second keeps (th_crash.kept) must keep its UUID.
 */
#pragma once

#include "tests/helpers.h"

typedef struct th_crash_outcome {
        char *libvirt; /* one line per object (and per host device), as the hypervisor describes it */
        char *uuids; /* one line per object: "UUID NAME" */
        char *records;
        char *journal; /* the actions done, sorted */
        char *writes; /* the writes libvirt made, as its files show them, sorted */
        char *detail; /* shown when a trial fails, never compared: each object's state at length, or NULL */
} th_crash_outcome;

/* A directory whose NAME.xml files are libvirt's trace, and what each change of one means. */
typedef struct th_crash_dir {
        char *path;
        const char *added; /* created or renamed into place */
        const char *removed; /* deleted */
        /* The hypervisor writes here as it starts (revive): after a restart, these are not compared. */
        bool written_at_start;
} th_crash_dir;

#define TH_CRASH_MAX_DIRS 4

typedef struct th_crash th_crash;

typedef struct th_crash_hypervisor {
        /* The URI apply connects to for a trial's root (a directory of its own under th_crash.dir). */
        char *(*uri)(const th_crash *c, const char *root);
        /* Makes the root's hypervisor ready and empty. */
        void (*new_root)(const th_crash *c, const char *root);
        /* Stops what the root's trial left running and empties its hypervisor. */
        void (*end_root)(const th_crash *c, const char *root);
        /* Fills o->libvirt and o->uuids. */
        void (*observe)(const th_crash *c, const char *root, th_crash_outcome *o);
        /* Fills up to TH_CRASH_MAX_DIRS directories to watch; path NULL ends them. */
        void (*watched)(const th_crash *c, const char *root, th_crash_dir *dirs);
        /*
         * A hypervisor that runs as a daemon and died by itself during a trial (the test killed
         * apply, not it) is started again, as systemd would on a host; says how it died. NULL
         * when it runs. No hook: an in-process hypervisor, which dies with apply.
         */
        char *(*revive)(const th_crash *c);
        /* Optional: what the hypervisor keeps of each domain's state, as it stands, for a failure's message. */
        char *(*kept_state)(const th_crash *c, const char *root);
        /*
         * Optional: a start the killed apply left that the hypervisor itself can never end, undone as an
         * operator would before the rerun; says what it undid. NULL when there was none.
         */
        char *(*clear_stranded_start)(const th_crash *c, const char *root);
} th_crash_hypervisor;

struct th_crash {
        const th_crash_hypervisor *hv;
        char *dir;
        char *conf[2]; /* the first and the second apply's files */
        const char *const *kept; /* what the second apply keeps, by name: its UUID must not change */
        void *userdata; /* the hypervisor's */
        th_crash_outcome clean[2];
        int64_t clean_usec[2]; /* how long the clean applies took */
};

th_crash *th_crash_new(const th_crash_hypervisor *hv, const char *const *kept);
/* Ends every root's trial (th_crash_hypervisor.end_root), then removes the tree. */
void th_crash_free(th_crash *c);

th_run th_crash_apply(const th_crash *c, const char *root, const char *conf, const char *fault);
/* Runs virsh on the root's hypervisor; a virsh killed by a signal is run again (see crash.c). */
char *th_crash_virsh(const th_crash *c, const char *root, const char *commands);
/* The non-blank lines of virsh's output up to an "@@" marker, from *p on; moves *p past it. */
char **th_crash_section(char **p);
/* Sorts lines by what follows their first word ("ID NAME ..." or "UUID NAME"). */
void th_crash_sort_after_first_word(char **lines);

/* Both applies, clean, from an empty root: what every trial is compared with. */
void th_crash_clean_runs(th_crash *c);
/* Kills the phase's apply at its Nth point of kind (intent, libvirt, state), every stride, until none is left. */
void th_crash_at_every_point(th_crash *c, int phase, const char *kind, unsigned stride);
/* Kills an apply at random moments of its clean run's duration; VIRTFORM_TEST_SEED replays a seed. */
void th_crash_at_random(th_crash *c, unsigned trials);
/*
 * Kills the phase's apply halfway through its clean run's duration, then the hypervisor by
 * hypervisor_crash (as if the kill had crashed it): the rerun must find it started again (revive).
 */
void th_crash_with_hypervisor(th_crash *c, int phase, void (*hypervisor_crash)(const th_crash *c));
