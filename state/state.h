/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state: the SQLite store of what virtform did.
 *
 * One file, WAL mode, schema versioned with PRAGMA user_version and migrated
 * forward. It knows resources only as (kind, name) strings: no reconciler,
 * no controller, no libvirt.
 */
#pragma once

#include "common/common.h"

typedef struct state_store state_store;

typedef struct state_condition {
        char *type; /* "Ready", "RestartPending", ... */
        bool status;
        char *reason; /* one CamelCase word */
        char *message; /* one line */
        int64_t last_transition_usec; /* realtime; changes only when status changes */
} state_condition;

typedef struct state_record {
        char *kind;
        char *name;
        char *source_file;
        char *desired_hash;
        int64_t generation; /* bumps on every change of desired_hash */
        int64_t observed_generation; /* the generation last applied successfully */
        char *uuid; /* the identity of what it manages: libvirt's UUID, or a hostdev's PCI address */
        char *applied_xml_hash; /* drift baseline, "WHOLE:PROJECTION" hashes or "WHOLE:stored" (reconcilers/converge.c) */
        /*
         * Names the declaration the stored applied_desired_xml was made from: the same hash, the same
         * document. Which hash is the reconciler's to choose, and NULL when none is stored or the
         * record is older than this column (state schema 9).
         */
        char *applied_desired_hash;
        char *last_error;
        int64_t attempts; /* consecutive failed attempts */
        int64_t next_retry_usec; /* realtime; 0 when no retry is scheduled */
        int64_t updated_usec; /* when the stored record last changed: a put that changes nothing keeps it */
        char **depends; /* the "kind/name" keys its last applied declaration depended on; NULL: none */
        state_condition *conditions;
        size_t n_conditions;
        /*
         * libvirt's document applied_xml_hash was taken of, for state_put() to keep beside the record
         * until drift needs it (state_baseline_get()); NULL keeps what is kept. Never read back into a
         * record: records are read at every pass, the document only when libvirt's has changed.
         */
        char *baseline_xml;
        /*
         * The XML last defined, for plan's diff and a volume's deletion policy, for state_put() to keep
         * with a new applied_desired_hash; NULL keeps what is kept. Never read back into a record either:
         * every pass reads every record, and this document only a removal or an old record needs
         * (state_applied_desired_get()). Held once per resource, in its declaration, instead of twice.
         */
        char *applied_desired_xml;
} state_record;

/*
 * One write to libvirt or the host, as the write-ahead intent log has it: recorded "intended" before
 * the write is made and closed with its outcome after.
 */
typedef struct state_event {
        int64_t id;
        int64_t time_usec; /* when the write was intended */
        char *kind;
        char *name;
        int64_t generation;
        char *action; /* "define", "start", "shutdown", "destroy", "undefine", ... */
        /*
         * "intended": not known yet (a run in progress, or one killed before it knew); "ok" or "failed";
         * "unknown": a killed run's intent, resolved later, with message "interrupted; found done" or
         * "interrupted; not done".
         */
        char *outcome;
        char *message; /* libvirt's or the kernel's words on failure */
        int64_t finished_usec; /* when the outcome was known; 0 while intended */
} state_event;

typedef enum state_open_flags {
        STATE_OPEN_READONLY = 1 << 0, /* for plan, status and hostdev: never creates, writes or locks */
        STATE_OPEN_EXISTING = 1 << 1, /* with READONLY: a missing file is an error (-ENOENT), not an empty store */
        /* A writer that runs integrity_check, and goes on after a lost -wal if it passes; -ENOENT when missing. */
        STATE_OPEN_CHECK = 1 << 2,
        /*
         * A writer that takes an empty file for a missing one (-EEXIST while the lost store's -wal is
         * beside it) and builds a new store beside it, as PATH.new, which state_publish() puts in its
         * place: for `state recover`, which fills it first.
         */
        STATE_OPEN_RECOVER = 1 << 3,
} state_open_flags;

/*
 * Opens (creating with mode 0600 and parent directories 0700 unless
 * STATE_OPEN_READONLY) and migrates the store.
 *
 * A writer takes the single-instance lock first (PATH.lock, flock(2)), and
 * holds it until state_close(): -EBUSY when another process has it, *errmsg
 * naming that process. A new store is made under the lock and renamed into
 * place whole. A writer refuses a file that is not its own or is open to
 * group or others (-EPERM), and a directory others may write (-EPERM).
 *
 * Every open refuses, without touching it, a symlink (-ELOOP), a directory
 * (-EISDIR), anything else that is not a regular file (-EINVAL) and an empty
 * file (-EBADMSG: a lost state is never made anew). A read-only open of a
 * missing file succeeds with an empty in-memory store, and one of a file
 * with an older schema migrates a private in-memory copy. On failure *errmsg
 * says why and what to do: -EBADMSG for a file that is not ours (other
 * application_id, not SQLite, failing its integrity check) and
 * -EPROTONOSUPPORT for a newer schema, both without writing to the file.
 *
 * The lock file names the writer until state_close() empties it. The next
 * writer to find a name there (the last one was killed, or the host went
 * down) runs SQLite's quick_check before trusting the file (only then: it
 * reads the whole file), and refuses it (-EBADMSG) when the -wal of the
 * writer that died is gone, unless STATE_OPEN_CHECK. A reader
 * that may not write the directory (a read-only mount or copy) reads a file
 * without a -wal as immutable.
 */
int state_open(const char *path, state_open_flags flags, state_store **ret, char **errmsg);
/*
 * Puts a store built by STATE_OPEN_RECOVER in place of the lost file: closes
 * its database (no transaction may be open), syncs it, renames it over PATH
 * and syncs the directory. Only state_close() may follow. Until it succeeds,
 * PATH is as it was, and state_close() removes what was built. 0 for any
 * other store.
 */
int state_publish(state_store *s, char **errmsg);
void state_close(state_store *s);
DEFINE_POINTER_CLEANUP(state_store, state_close);

/*
 * The default path: /var/lib/virtform/state.db for root, $XDG_STATE_HOME/virtform/state.db (or ~/.local/state/...)
 * otherwise. NULL when neither variable is set to an absolute path, or out of memory.
 */
char *state_default_path(void);

/*
 * For crash tests: the process dies with SIGKILL right after the nth write
 * statement from now succeeds (a put, delete, event, device change, or the
 * begin, savepoint or commit around them).
 */
void state_fault_after_writes(state_store *s, unsigned n);
/* For failure tests: the nth write statement from now fails with -EIO, as on a failing disk, and is not made. */
void state_fault_failing_write(state_store *s, unsigned n);

/* A random UUID made when the store was created; it marks the libvirt objects this store owns. */
const char *state_instance_id(const state_store *s);

/*
 * Makes the store take over an instance id (a lost store's, read from its markers) so that it owns what
 * that store owned. Only while it holds no record and no device: -ENOTEMPTY otherwise, -EINVAL for an id
 * that is not a UUID.
 */
int state_adopt_instance_id(state_store *s, const char *instance_id);

/*
 * SQLite's words for the last call that failed inside SQLite ("" if none has), for the log line next to
 * strerror(). Calls that succeed or fail for other reasons (-ENOENT, -ENOMEM) leave it alone.
 */
const char *state_last_error(const state_store *s);

/* Explicit transactions; writes outside one are each their own transaction. */
int state_begin(state_store *s);
int state_commit(state_store *s);
int state_rollback(state_store *s);
/*
 * Makes what the open transaction wrote durable before the caller touches the
 * host: commits it and opens the next one. Records put in it (state_put()) are
 * not written yet, and wait in the next one for state_commit().
 */
int state_flush(state_store *s);

/*
 * Writes the -wal back into the state file once enough has gathered, for a writer with nothing else
 * to do: commits do so only past a cap (checkpoint.c). -EBUSY inside a transaction.
 */
int state_checkpoint(state_store *s);

/* -ENOENT when absent. */
int state_get(state_store *s, const char *kind, const char *name, state_record **ret);
/*
 * Inserts or replaces the record and its conditions, writing only what differs from the stored record:
 * a record that says what the store says already (updated_usec aside) writes nothing. Outside a
 * transaction it is all or nothing. Inside the caller's (state_begin()) the record is copied and
 * written at state_commit(), or before the store next reads or deletes records, whose calls then
 * return its failure: one that fails rolls that transaction back, so that half a record is never
 * committed. Writes fail with -EROFS on a read-only store, -ENOSPC when the disk is full, -EBUSY when
 * another writer holds the lock too long. A record with two conditions of one type is refused with
 * -EINVAL before anything is written.
 */
int state_put(state_store *s, const state_record *rec);
/*
 * Writes the records put in the open transaction so far, so that its next commit (an intent's,
 * state_flush()) carries them.
 */
int state_write_puts(state_store *s);
/* Removes the record and its conditions; -ENOENT when absent. */
int state_delete(state_store *s, const char *kind, const char *name);
/* Every record, sorted by kind then name. */
int state_list(state_store *s, state_record ***ret, size_t *n);
/*
 * The baseline document a put kept for the record of kind/name while its applied_xml_hash was
 * applied_xml_hash; -ENOENT when none is (the record names another baseline, or none was kept).
 */
int state_baseline_get(state_store *s, const char *kind, const char *name, const char *applied_xml_hash,
                       char **ret);
/* The applied_desired_xml a put kept for the record of kind/name; -ENOENT when there is none. */
int state_applied_desired_get(state_store *s, const char *kind, const char *name, char **ret);

state_record *state_record_new(const char *kind, const char *name);
void state_record_free(state_record *rec);
DEFINE_POINTER_CLEANUP(state_record, state_record_free);
void state_record_list_free(state_record **recs, size_t n);
/* A deep copy; -ENOMEM. */
int state_record_copy(const state_record *rec, state_record **ret);
/*
 * Whether b says what a says in everything state_put() compares (every
 * column but updated_usec, the conditions as a set, and a baseline document
 * when b brings one): a put of b over a stored a would write nothing.
 */
bool state_record_same(const state_record *a, const state_record *b);

const state_condition *state_record_condition(const state_record *rec, const char *type);
/*
 * Sets a condition, keeping last_transition_usec when the status does not
 * change. Returns 0 or -ENOMEM.
 */
int state_record_set_condition(state_record *rec, const char *type, bool status, const char *reason,
                               const char *message, int64_t now_usec);
/* Removes a condition type if present. */
void state_record_clear_condition(state_record *rec, const char *type);

/*
 * The write-ahead intent log. state_intent_begin() makes the intent durable before it returns: it is
 * its own committed transaction, so a transaction the caller has open is committed with it and a new
 * one opened after. *ret_id names the intent to end. state_intent_end() writes an "ok" into the
 * caller's transaction, committed with it (by the next intent, or the caller's commit), and commits a
 * "failed" at once; outside a transaction either is its own. A crash before an "ok" is committed
 * leaves the intent open, for state_intent_resolve().
 */
int state_intent_begin(state_store *s, const char *kind, const char *name, int64_t generation, const char *action,
                       int64_t *ret_id);
/* -ENOENT when the intent is not open (ended already, or resolved). */
int state_intent_end(state_store *s, int64_t id, bool ok, const char *message);
/*
 * Closes the intents of one resource that a killed run left open, once a reconcile of it has
 * converged: as "unknown", "interrupted; not done" when a later event made the same action again,
 * "interrupted; found done" when none did.
 */
int state_intent_resolve(state_store *s, const char *kind, const char *name);
/* Whether any intent is open, a killed run's or one whose outcome could not be written: else none needs resolving. */
int state_intent_any_open(state_store *s, bool *ret);
/*
 * Deletes closed events written before the first one at or after older_than_usec (in the order of ids,
 * which is the order they were written in), and those beyond the keep_rows newest ids; never the newest
 * event, so that no id is handed out twice.
 */
int state_event_trim(state_store *s, int64_t older_than_usec, int64_t keep_rows);
/* Events intended at or after since_usec, oldest first; kind/name NULL for all. */
int state_event_list(state_store *s, const char *kind, const char *name, int64_t since_usec, state_event **ret,
                     size_t *n);
void state_event_list_free(state_event *events, size_t n);
/*
 * The newest event of one resource whose action is one of actions (1 to STATE_EVENT_NEWEST_MAX of them,
 * -EINVAL otherwise) and whose outcome is not except_outcome (NULL: any): what a resource's history says
 * of it without reading the whole log. -ENOENT when none.
 */
#define STATE_EVENT_NEWEST_MAX 4
int state_event_newest(state_store *s, const char *kind, const char *name, const char *const *actions,
                       size_t n_actions, const char *except_outcome, state_event **ret);
void state_event_free(state_event *ev);
DEFINE_POINTER_CLEANUP(state_event, state_event_free);


/* A file the last pass could not use, with its first error: what status shows of the files. */
typedef struct state_file_error {
        char *file;
        int64_t line, column; /* 0 when the error has no position */
        char *message;
        int64_t n_errors; /* in that file */
} state_file_error;

/* Replaces what is recorded of the files' errors (call it inside state_begin() for one transaction). */
int state_file_errors_set(state_store *s, const state_file_error *errors, size_t n);
int state_file_errors_list(state_store *s, state_file_error **ret, size_t *n);
void state_file_error_list_free(state_file_error *errors, size_t n);

/* A value the store keeps for readers, such as the daemon's connection; NULL removes it, *ret NULL if absent. */
#define STATE_META_DAEMON "daemon"
int state_meta_set(state_store *s, const char *key, const char *value);
int state_meta_get(state_store *s, const char *key, char **ret);

/* What virtform knows about one host PCI device, keyed by its address. */
typedef struct state_device {
        char *bdf;
        /* The VF's resolution, recorded while it still had its netdev; pf NULL: none. */
        char *pf;
        char *pf_netdev;
        int64_t vf_index;
        char *phys_port_id;
        /* The VF's config before virtform changed it; kept until it is restored. */
        bool saved;
        char *saved_pf_netdev;
        int64_t saved_vf_index;
        char *saved_admin_mac;
        int64_t saved_vlan;
        char *saved_own_mac;
        /* The binding journal: the driver to give it back to, and the step reached. */
        char *original_driver;
        char *bind_phase; /* NULL: virtform has not bound it */
        int64_t updated_usec;
} state_device;

/* -ENOENT when nothing is recorded. */
int state_device_get(state_store *s, const char *bdf, state_device **ret);
int state_device_put(state_store *s, const state_device *dev);
int state_device_delete(state_store *s, const char *bdf);
state_device *state_device_new(const char *bdf);
void state_device_free(state_device *dev);
DEFINE_POINTER_CLEANUP(state_device, state_device_free);
