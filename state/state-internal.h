/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the files of the state module share and nobody else sees.
 */
#pragma once

#include <sqlite3.h>

#include "state/state.h"

DEFINE_POINTER_CLEANUP(sqlite3, sqlite3_close);
DEFINE_POINTER_CLEANUP(sqlite3_stmt, sqlite3_finalize);

#define STATE_UUID_STRING_MAX 37 /* 36 characters and the NUL */

/* Every statement the store runs after open: prepared once there, then reset and reused. */
typedef enum state_stmt {
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_SAVEPOINT,
        STMT_RELEASE,
        STMT_ROLLBACK_TO,
        STMT_GET_RESOURCE,
        STMT_GET_CONDITIONS,
        STMT_LIST_RESOURCES,
        STMT_LIST_CONDITIONS,
        STMT_UPSERT_RESOURCE,
        STMT_TOUCH_RESOURCE,
        STMT_UPSERT_CONDITION,
        STMT_DELETE_CONDITION,
        STMT_DELETE_RESOURCE,
        STMT_UPSERT_BASELINE,
        STMT_DELETE_STALE_BASELINE,
        STMT_GET_BASELINE,
        STMT_GET_APPLIED_DESIRED,
        STMT_APPEND_EVENT,
        STMT_CLOSE_EVENT,
        STMT_RESOLVE_EVENTS,
        STMT_TRIM_EVENTS,
        STMT_LIST_EVENTS,
        STMT_NEWEST_EVENT,
        STMT_ANY_OPEN_INTENT,
        STMT_GET_DEVICE,
        STMT_UPSERT_DEVICE,
        STMT_DELETE_DEVICE,
        STMT_COUNT_OWNED,
        STMT_SET_INSTANCE_ID,
        STMT_GET_META,
        STMT_SET_META,
        STMT_DELETE_META,
        STMT_LIST_FILE_ERRORS,
        STMT_CLEAR_FILE_ERRORS,
        STMT_INSERT_FILE_ERROR,
        _STMT_MAX,
} state_stmt;

/* How the last writer left the store, as its lock file says. */
typedef enum state_last_writer {
        STATE_LAST_WRITER_CLEAN, /* it closed the store, or there was none */
        STATE_LAST_WRITER_OPENING, /* it died opening the store: before it had a -wal */
        STATE_LAST_WRITER_KILLED, /* it died with the store open, or the host went down */
        /*
         * It died closing the store: SQLite may have written its -wal back into the file and removed
         * it already, so a -wal gone is no loss.
         */
        STATE_LAST_WRITER_CLOSING,
} state_last_writer;

struct state_store {
        sqlite3 *db;
        int lock_fd; /* a writer's hold on PATH.lock; -1 for a reader */
        bool open; /* state_open() succeeded: state_close() leaves the store closed cleanly */
        state_last_writer last_writer; /* how the lock file is left when the open fails */
        sqlite3_stmt *stmts[_STMT_MAX];
        char instance_id[STATE_UUID_STRING_MAX];
        /* Copied on failure: the rollback that usually follows would replace sqlite3_errmsg(). */
        char last_error[256];
        /* Recovery: the store is being built at building, to be renamed onto target by state_publish(). */
        char *building;
        char *target;
        /* Crash tests: the process kills itself after this many more writes; 0: never. */
        unsigned fault_after_writes;
        /* Failure tests: the write this many writes from now fails without being made; 0: never. */
        unsigned fault_failing_write;
        /*
         * Records put inside a transaction, not yet written (state.c): they go in at its commit or
         * before anything reads records, so that an intent's commit does not carry them.
         */
        state_record **unwritten;
        size_t n_unwritten;
        size_t cap_unwritten;
        /* A writer's -wal (checkpoint.c): its pages after the last commit, and how many are written back. */
        int wal_pages;
        int wal_backfilled;
};

/*
 * Takes the single-instance lock of the store at path without waiting, says
 * how the last writer left it, and writes who holds it now into the lock
 * file. -EBUSY, with the holder's PID and command line in *errmsg, when
 * another process has it.
 */
int state_lock_take(const char *path, int *ret_fd, state_last_writer *ret_last, char **errmsg);
/* Records that the store is open with its -wal: a writer killed from now on left it KILLED. */
void state_lock_mark_open(int fd);
/* Records that the store is being closed: a writer killed from now on left it CLOSING; -1 is ignored. */
void state_lock_mark_closing(int fd);
/* Releases it, recording how the store is left; -1 is ignored. */
void state_lock_release(int fd, state_last_writer leave);

/* Maps an SQLite result code to a negative errno. */
int state_errno_from_sqlite(sqlite3 *db, int rc);
/* Prepares s->stmts once the schema is current; on failure state_last_error() says why. */
int state_prepare_statements(state_store *s);
/* Appends a condition without looking for an existing one of the same type. */
int state_record_add_condition(state_record *rec, const char *type, bool status, const char *reason,
                               const char *message, int64_t last_transition_usec);
/* Every field a put writes, the type included. */
bool state_condition_same(const state_condition *a, const state_condition *b);

/* Column positions in DEVICE_COLUMNS; SQL parameter ?N+1 carries column N. */
enum {
        DEV_BDF,
        DEV_PF,
        DEV_PF_NETDEV,
        DEV_VF_INDEX,
        DEV_PHYS_PORT_ID,
        DEV_SAVED,
        DEV_SAVED_PF_NETDEV,
        DEV_SAVED_VF_INDEX,
        DEV_SAVED_ADMIN_MAC,
        DEV_SAVED_VLAN,
        DEV_SAVED_OWN_MAC,
        DEV_ORIGINAL_DRIVER,
        DEV_BIND_PHASE,
        DEV_UPDATED_USEC,
};
#define DEVICE_COLUMNS                                                                             \
        "bdf, pf, pf_netdev, vf_index, phys_port_id, saved, saved_pf_netdev, saved_vf_index, "     \
        "saved_admin_mac, saved_vlan, saved_own_mac, original_driver, bind_phase, updated_usec"
/* Shared by the query files. */
int state_store_error(state_store *s, int rc);
/* A writer checkpoints inside a commit only past a cap, and otherwise when state_checkpoint() asks. */
void state_wal_watch(state_store *s);
int state_exec_bound(state_store *s, sqlite3_stmt *st, int bind_rc);
/* Steps a statement that yields at most one row, once bound with result bind_rc: 0 on it, -ENOENT for none. */
int state_step_row(state_store *s, sqlite3_stmt *st, int bind_rc);
int state_column_strdup(sqlite3_stmt *st, int column, char **ret);
void state_stmt_release(sqlite3_stmt **st);
#define _cleanup_stmt_release_ _cleanup_(state_stmt_release)

/* Counts a statement that wrote (or began, or ended a transaction), for state_fault_after_writes(). */
void state_count_write(state_store *s);

/* Forgets the records put in the open transaction and not yet written: a rollback's, or a close's. */
void state_drop_unwritten(state_store *s);
