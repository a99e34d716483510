/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The queries of the state store. Every statement is prepared once by
 * state_open() and reset after each use, so a pass over thousands of
 * resources costs no parsing.
 */
#include <signal.h>
#include <string.h>

#include "state/state-internal.h"

/*
 * Column positions in RESOURCE_COLUMNS, then the one a put writes and a read leaves; SQL parameter
 * ?N+1 always carries column N.
 */
enum {
        RES_KIND,
        RES_NAME,
        RES_SOURCE_FILE,
        RES_DESIRED_HASH,
        RES_GENERATION,
        RES_OBSERVED_GENERATION,
        RES_UUID,
        RES_APPLIED_XML_HASH,
        RES_APPLIED_DESIRED_HASH,
        RES_LAST_ERROR,
        RES_ATTEMPTS,
        RES_NEXT_RETRY_USEC,
        RES_UPDATED_USEC,
        RES_DEPENDS,
        RES_APPLIED_DESIRED_XML,
};
#define RESOURCE_COLUMNS                                                                      \
        "kind, name, source_file, desired_hash, generation, observed_generation, uuid, "      \
        "applied_xml_hash, applied_desired_hash, last_error, attempts, next_retry_usec, "      \
        "updated_usec, depends"

enum {
        COND_KIND,
        COND_NAME,
        COND_TYPE,
        COND_STATUS,
        COND_REASON,
        COND_MESSAGE,
        COND_LAST_TRANSITION_USEC,
};
#define CONDITION_COLUMNS "kind, name, type, status, reason, message, last_transition_usec"

enum {
        BL_KIND,
        BL_NAME,
        BL_APPLIED_XML_HASH,
        BL_XML,
};
#define BASELINE_COLUMNS "kind, name, applied_xml_hash, xml"

enum {
        EV_ID,
        EV_TIME_USEC,
        EV_KIND,
        EV_NAME,
        EV_GENERATION,
        EV_ACTION,
        EV_OUTCOME,
        EV_MESSAGE,
        EV_FINISHED_USEC,
};
#define EVENT_COLUMNS "id, time_usec, kind, name, generation, action, outcome, message, finished_usec"

enum {
        FE_FILE,
        FE_LINE,
        FE_COLUMN,
        FE_MESSAGE,
        FE_N_ERRORS,
};
#define FILE_ERROR_COLUMNS "file, line, col, message, n_errors"

static const char *const stmt_sql[_STMT_MAX] = {
        /* IMMEDIATE takes the write lock up front, where the busy timeout can wait for it,
         * instead of failing with SQLITE_BUSY at the first write halfway through a pass. */
        [STMT_BEGIN] = "BEGIN IMMEDIATE",
        [STMT_COMMIT] = "COMMIT",
        [STMT_ROLLBACK] = "ROLLBACK",
        /* A savepoint nests inside state_begin() and acts as a transaction outside one. */
        [STMT_SAVEPOINT] = "SAVEPOINT state_op",
        [STMT_RELEASE] = "RELEASE state_op",
        [STMT_ROLLBACK_TO] = "ROLLBACK TO state_op",
        [STMT_GET_RESOURCE] = "SELECT " RESOURCE_COLUMNS " FROM resources WHERE kind = ?1 AND name = ?2",
        [STMT_GET_CONDITIONS] = "SELECT " CONDITION_COLUMNS " FROM conditions "
                                "WHERE kind = ?1 AND name = ?2 ORDER BY type",
        [STMT_LIST_RESOURCES] = "SELECT " RESOURCE_COLUMNS " FROM resources ORDER BY kind, name",
        [STMT_LIST_CONDITIONS] = "SELECT " CONDITION_COLUMNS " FROM conditions ORDER BY kind, name, type",
        /* Not INSERT OR REPLACE: that deletes the row first, which the foreign key would
         * cascade to the conditions behind our back. */
        [STMT_UPSERT_RESOURCE] =
                "INSERT INTO resources (" RESOURCE_COLUMNS ", applied_desired_xml) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
                "ON CONFLICT (kind, name) DO UPDATE SET "
                "source_file = excluded.source_file, desired_hash = excluded.desired_hash, "
                "generation = excluded.generation, observed_generation = excluded.observed_generation, "
                "uuid = excluded.uuid, applied_xml_hash = excluded.applied_xml_hash, "
                "applied_desired_hash = excluded.applied_desired_hash, "
                /* A record brings the document only with a new applied_desired_hash: none keeps it. */
                "applied_desired_xml = coalesce(excluded.applied_desired_xml, applied_desired_xml), "
                "last_error = excluded.last_error, "
                "attempts = excluded.attempts, next_retry_usec = excluded.next_retry_usec, "
                "updated_usec = excluded.updated_usec, depends = excluded.depends "
                /* A row that says the same is left alone: a pass that changes nothing writes no page.
                 * Not updated_usec, which says when the record last changed, not when it was last looked at. */
                "WHERE (source_file, desired_hash, generation, observed_generation, uuid, applied_xml_hash, "
                "applied_desired_hash, applied_desired_xml, last_error, attempts, next_retry_usec, depends) IS NOT "
                "(excluded.source_file, excluded.desired_hash, excluded.generation, excluded.observed_generation, "
                "excluded.uuid, excluded.applied_xml_hash, excluded.applied_desired_hash, "
                "coalesce(excluded.applied_desired_xml, applied_desired_xml), excluded.last_error, "
                "excluded.attempts, excluded.next_retry_usec, excluded.depends)",
        [STMT_TOUCH_RESOURCE] = "UPDATE resources SET updated_usec = ?13 WHERE kind = ?1 AND name = ?2",
        [STMT_UPSERT_CONDITION] = "INSERT INTO conditions (" CONDITION_COLUMNS ") "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                                  "ON CONFLICT (kind, name, type) DO UPDATE SET status = excluded.status, "
                                  "reason = excluded.reason, message = excluded.message, "
                                  "last_transition_usec = excluded.last_transition_usec",
        [STMT_DELETE_CONDITION] = "DELETE FROM conditions WHERE kind = ?1 AND name = ?2 AND type = ?3",
        [STMT_DELETE_RESOURCE] = "DELETE FROM resources WHERE kind = ?1 AND name = ?2",
        [STMT_UPSERT_BASELINE] = "INSERT OR REPLACE INTO baselines (" BASELINE_COLUMNS ") VALUES (?1, ?2, ?3, ?4)",
        [STMT_DELETE_STALE_BASELINE] = "DELETE FROM baselines WHERE kind = ?1 AND name = ?2 "
                                       "AND applied_xml_hash IS NOT ?3",
        [STMT_GET_BASELINE] = "SELECT xml FROM baselines WHERE kind = ?1 AND name = ?2 AND applied_xml_hash = ?3",
        [STMT_GET_APPLIED_DESIRED] = "SELECT applied_desired_xml FROM resources "
                                     "WHERE kind = ?1 AND name = ?2 AND applied_desired_xml IS NOT NULL",
        /* ?1 is left out so that SQLite picks the id: the highest plus one. */
        [STMT_APPEND_EVENT] = "INSERT INTO events (" EVENT_COLUMNS ") "
                              "VALUES (NULL, ?2, ?3, ?4, ?5, ?6, 'intended', NULL, NULL)",
        [STMT_CLOSE_EVENT] = "UPDATE events SET outcome = ?7, message = ?8, finished_usec = ?9 "
                             "WHERE id = ?1 AND outcome = 'intended'",
        /*
         * Reconciling is idempotent: had the interrupted write taken effect, a later run would
         * not have made it again. So an intent followed by the same action was not done, and
         * one that is not, found its effect in place. A later one that failed made nothing and
         * proves nothing: libvirt refuses a destroy when the interrupted one, still in flight
         * inside libvirtd as the rerun looked, stopped the guest after all. (An intended or
         * unknown one counts: this statement turns the first into the second as it goes.)
         */
        [STMT_RESOLVE_EVENTS] = "UPDATE events SET outcome = 'unknown', finished_usec = ?9, message = "
                                "CASE WHEN EXISTS (SELECT 1 FROM events AS later WHERE later.kind = events.kind "
                                "AND later.name = events.name AND later.action = events.action "
                                "AND later.id > events.id AND later.outcome <> 'failed') "
                                "THEN 'interrupted; not done' ELSE 'interrupted; found done' END "
                                "WHERE kind = ?3 AND name = ?4 AND outcome = 'intended'",
        /*
         * Open intents are kept whatever their age: they are resolved, never trimmed. So is the newest
         * row, whose id the next one follows: no id is handed out twice. By age, a trim deletes what was
         * written before the first event young enough to keep, in the order of ids: found from the
         * oldest, with no index on time to update at every write.
         */
        [STMT_TRIM_EVENTS] = "DELETE FROM events WHERE outcome <> 'intended' AND id < "
                             "(SELECT min(newest, max(coalesce(young, newest + 1), newest - ?1 + 1)) FROM "
                             "(SELECT (SELECT max(id) FROM events) AS newest, "
                             "(SELECT id FROM events WHERE time_usec >= ?2 ORDER BY id LIMIT 1) AS young))",
        [STMT_LIST_EVENTS] = "SELECT " EVENT_COLUMNS " FROM events WHERE time_usec >= ?2 "
                             "AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR name = ?4) ORDER BY id",
        /*
         * events_by_resource finds each action's rows; an action left unbound is NULL and matches none,
         * and so does an outcome: every event has one.
         */
        [STMT_NEWEST_EVENT] = "SELECT " EVENT_COLUMNS " FROM events WHERE kind = ?3 AND name = ?4 "
                              "AND action IN (:action0, :action1, :action2, :action3) AND outcome IS NOT :except "
                              "ORDER BY id DESC LIMIT 1",
        /* INDEXED BY: the partial index of open intents answers it, however long the log; SQLite must not scan. */
        [STMT_ANY_OPEN_INTENT] = "SELECT EXISTS (SELECT 1 FROM events INDEXED BY events_open WHERE outcome = 'intended')",
        [STMT_GET_DEVICE] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE bdf = ?1",
        [STMT_UPSERT_DEVICE] = "INSERT OR REPLACE INTO devices (" DEVICE_COLUMNS ") "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        [STMT_DELETE_DEVICE] = "DELETE FROM devices WHERE bdf = ?1",
        [STMT_COUNT_OWNED] = "SELECT (SELECT count(*) FROM resources) + (SELECT count(*) FROM devices)",
        [STMT_SET_INSTANCE_ID] = "UPDATE meta SET value = ?1 WHERE key = 'instance_id'",
        [STMT_GET_META] = "SELECT value FROM meta WHERE key = ?1",
        [STMT_SET_META] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        [STMT_DELETE_META] = "DELETE FROM meta WHERE key = ?1",
        [STMT_LIST_FILE_ERRORS] = "SELECT " FILE_ERROR_COLUMNS " FROM file_errors ORDER BY file",
        [STMT_CLEAR_FILE_ERRORS] = "DELETE FROM file_errors",
        [STMT_INSERT_FILE_ERROR] = "INSERT INTO file_errors (" FILE_ERROR_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5)",
};

int state_errno_from_sqlite(sqlite3 *db, int rc) {
        switch (rc & 0xff) {
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
                return -EINVAL;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
        case SQLITE_IOERR: {
                /* The system call that failed knows better than SQLite's summary. */
                int e = sqlite3_system_errno(db);
                return e > 0 ? -e : -EIO;
        }
        default:
                return -EIO;
        }
}

int state_store_error(state_store *s, int rc) {
        snprintf(s->last_error, sizeof s->last_error, "%s", sqlite3_errmsg(s->db));
        return state_errno_from_sqlite(s->db, rc);
}

const char *state_last_error(const state_store *s) {
        return s->last_error;
}

const char *state_instance_id(const state_store *s) {
        return s->instance_id;
}

int state_prepare_statements(state_store *s) {
        for (size_t i = 0; i < _STMT_MAX; i++) {
                int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[i], NULL);
                if (rc != SQLITE_OK)
                        return state_store_error(s, rc);
        }
        return 0;
}

/* Readies a shared statement for its next user; a statement left stepping would pin a read snapshot. */
void state_stmt_release(sqlite3_stmt **st) {
        sqlite3_reset(*st);
        sqlite3_clear_bindings(*st);
}

/* The caller's strings outlive the statement's use, which ends at stmt_releasep(): no copy needed. */
static int bind_text(sqlite3_stmt *st, int column, const char *s) {
        return sqlite3_bind_text(st, column + 1, s, -1, SQLITE_STATIC);
}

static int bind_int64(sqlite3_stmt *st, int column, int64_t v) {
        return sqlite3_bind_int64(st, column + 1, v);
}

/* Resources and conditions both key on (kind, name) as ?1 and ?2. */
static int bind_key(sqlite3_stmt *st, const char *kind, const char *name) {
        return bind_text(st, RES_KIND, kind) ?: bind_text(st, RES_NAME, name);
}

int state_step_row(state_store *s, sqlite3_stmt *st, int bind_rc) {
        if (bind_rc != SQLITE_OK)
                return state_store_error(s, bind_rc);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        return rc == SQLITE_ROW ? 0 : state_store_error(s, rc);
}

/* Steps a statement that yields no rows, once its parameters are bound with result bind_rc. */
int state_exec_bound(state_store *s, sqlite3_stmt *st, int bind_rc) {
        if (bind_rc != SQLITE_OK)
                return state_store_error(s, bind_rc);
        if (s->fault_failing_write > 0 && --s->fault_failing_write == 0) {
                snprintf(s->last_error, sizeof s->last_error, "a failure injected by VIRTFORM_FAULT_POINT");
                return -EIO;
        }
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return state_store_error(s, rc);
        state_count_write(s);
        return 0;
}

static int exec_stmt(state_store *s, state_stmt id) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[id];
        return state_exec_bound(s, st, SQLITE_OK);
}

/* Like exec_stmt(), but keeps state_last_error() on the failure being cleaned up after. */
static void exec_stmt_quietly(state_store *s, state_stmt id) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[id];
        (void) sqlite3_step(st);
}

/*
 * Ends the savepoint the caller opened, keeping its work if r and the release
 * succeed and undoing it otherwise. Failures of the undo itself are ignored:
 * they mean SQLite already rolled back the whole transaction.
 */
static int savepoint_end(state_store *s, int r) {
        if (r >= 0)
                r = exec_stmt(s, STMT_RELEASE);
        if (r < 0) {
                exec_stmt_quietly(s, STMT_ROLLBACK_TO);
                exec_stmt_quietly(s, STMT_RELEASE);
        }
        return r;
}

int state_begin(state_store *s) {
        return exec_stmt(s, STMT_BEGIN);
}

int state_commit(state_store *s) {
        int r = state_write_puts(s);
        return r < 0 ? r : exec_stmt(s, STMT_COMMIT);
}

void state_fault_after_writes(state_store *s, unsigned n) {
        s->fault_after_writes = n;
}

void state_fault_failing_write(state_store *s, unsigned n) {
        s->fault_failing_write = n;
}

void state_count_write(state_store *s) {
        if (s->fault_after_writes > 0 && --s->fault_after_writes == 0)
                raise(SIGKILL);
}

/* A put that failed when written rolled the transaction back already (state_write_puts()): nothing left to undo. */
int state_rollback(state_store *s) {
        state_drop_unwritten(s);
        if (sqlite3_get_autocommit(s->db))
                return 0;
        return exec_stmt(s, STMT_ROLLBACK);
}

int state_flush(state_store *s) {
        if (sqlite3_get_autocommit(s->db))
                return 0; /* no transaction open: every write is already committed */
        int r = exec_stmt(s, STMT_COMMIT);
        return r < 0 ? r : state_begin(s);
}

static bool is_uuid(const char *s) {
        static const char form[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

        if (strlen(s) != sizeof form - 1)
                return false;
        for (size_t i = 0; form[i]; i++)
                if (form[i] == '-' ? s[i] != '-' : !strchr("0123456789abcdef", s[i]) || !s[i])
                        return false;
        return true;
}

static int adopt_in_savepoint(state_store *s, const char *instance_id) {
        _cleanup_stmt_release_ sqlite3_stmt *count = s->stmts[STMT_COUNT_OWNED];
        _cleanup_stmt_release_ sqlite3_stmt *set = s->stmts[STMT_SET_INSTANCE_ID];

        int rc = sqlite3_step(count);
        if (rc != SQLITE_ROW)
                return state_store_error(s, rc);
        if (sqlite3_column_int64(count, 0) > 0)
                return -ENOTEMPTY;
        return state_exec_bound(s, set, sqlite3_bind_text(set, 1, instance_id, -1, SQLITE_STATIC));
}

int state_adopt_instance_id(state_store *s, const char *instance_id) {
        if (!is_uuid(instance_id))
                return -EINVAL;
        int r = state_write_puts(s); /* they count as records it holds */
        if (r >= 0)
                r = exec_stmt(s, STMT_SAVEPOINT);
        if (r < 0)
                return r;
        r = savepoint_end(s, adopt_in_savepoint(s, instance_id));
        if (r < 0)
                return r;
        memcpy(s->instance_id, instance_id, sizeof s->instance_id);
        return 0;
}

/* ---- reading ----------------------------------------------------------- */

/* sqlite3_column_text() also returns NULL when it runs out of memory converting a value. */
static int column_text(sqlite3_stmt *st, int column, const char **ret) {
        *ret = (const char *) sqlite3_column_text(st, column);
        return *ret || sqlite3_column_type(st, column) == SQLITE_NULL ? 0 : -ENOMEM;
}

int state_column_strdup(sqlite3_stmt *st, int column, char **ret) {
        const char *text;
        int r = column_text(st, column, &text);
        if (r < 0)
                return r;
        *ret = text ? strdup(text) : NULL;
        return !text || *ret ? 0 : -ENOMEM;
}

typedef struct record_list {
        state_record **items;
        size_t n, cap;
} record_list;

static void record_list_done(record_list *l) {
        state_record_list_free(l->items, l->n);
}

/* A column of lines as a string vector; NULL or "" is none. */
static int column_strv(sqlite3_stmt *st, int col, char ***ret) {
        const char *text = (const char *) sqlite3_column_text(st, col);

        for (const char *p = text; p && *p;) {
                size_t len = strcspn(p, "\n");
                char *line = strndup(p, len);
                int r = line ? vf_strv_consume(ret, line) : -ENOMEM;
                if (r < 0)
                        return r;
                p += len + (p[len] == '\n');
        }
        return 0;
}

static int record_from_row(sqlite3_stmt *st, state_record **ret) {
        _cleanup_(state_record_freep) state_record *rec = calloc(1, sizeof *rec);
        if (!rec)
                return -ENOMEM;

        int r = state_column_strdup(st, RES_KIND, &rec->kind) ?: state_column_strdup(st, RES_NAME, &rec->name) ?:
                state_column_strdup(st, RES_SOURCE_FILE, &rec->source_file) ?:
                state_column_strdup(st, RES_DESIRED_HASH, &rec->desired_hash) ?:
                state_column_strdup(st, RES_UUID, &rec->uuid) ?:
                state_column_strdup(st, RES_APPLIED_XML_HASH, &rec->applied_xml_hash) ?:
                state_column_strdup(st, RES_APPLIED_DESIRED_HASH, &rec->applied_desired_hash) ?:
                state_column_strdup(st, RES_LAST_ERROR, &rec->last_error) ?:
                column_strv(st, RES_DEPENDS, &rec->depends);
        if (r < 0)
                return r;
        rec->generation = sqlite3_column_int64(st, RES_GENERATION);
        rec->observed_generation = sqlite3_column_int64(st, RES_OBSERVED_GENERATION);
        rec->attempts = sqlite3_column_int64(st, RES_ATTEMPTS);
        rec->next_retry_usec = sqlite3_column_int64(st, RES_NEXT_RETRY_USEC);
        rec->updated_usec = sqlite3_column_int64(st, RES_UPDATED_USEC);
        *ret = TAKE_PTR(rec);
        return 0;
}

static int read_resources(state_store *s, sqlite3_stmt *st, record_list *l) {
        int rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                state_record **items = vf_grow(l->items, &l->cap, l->n + 1, sizeof *items);
                if (!items)
                        return -ENOMEM;
                l->items = items;

                int r = record_from_row(st, &l->items[l->n]);
                if (r < 0)
                        return r;
                l->n++;
        }
        return rc == SQLITE_DONE ? 0 : state_store_error(s, rc);
}

static int condition_from_row(sqlite3_stmt *st, state_record *rec) {
        const char *type, *reason, *message;
        int r = column_text(st, COND_TYPE, &type) ?: column_text(st, COND_REASON, &reason) ?:
                column_text(st, COND_MESSAGE, &message);
        if (r < 0)
                return r;
        return state_record_add_condition(rec, type, sqlite3_column_int(st, COND_STATUS), reason, message,
                                          sqlite3_column_int64(st, COND_LAST_TRANSITION_USEC));
}

/* Orders like SQLite's BINARY collation, which is what both ORDER BY clauses use. */
static int record_key_compare(const state_record *rec, const char *kind, const char *name) {
        int c = strcmp(rec->kind, kind);
        return c != 0 ? c : strcmp(rec->name, name);
}

/*
 * Both statements are sorted by (kind, name), so a single merge pass hands
 * every condition to its record without a query per record.
 */
static int attach_conditions(state_store *s, sqlite3_stmt *st, record_list *l) {
        size_t i = 0;
        int rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *kind, *name;
                int r = column_text(st, COND_KIND, &kind) ?: column_text(st, COND_NAME, &name);
                if (r < 0)
                        return r;

                while (i < l->n && record_key_compare(l->items[i], kind, name) < 0)
                        i++;
                /* The foreign key rules out orphans, unless a client without it wrote the file. */
                if (i == l->n || record_key_compare(l->items[i], kind, name) != 0)
                        continue;

                r = condition_from_row(st, l->items[i]);
                if (r < 0)
                        return r;
        }
        return rc == SQLITE_DONE ? 0 : state_store_error(s, rc);
}

/* Inside a savepoint, so that records and conditions come from one snapshot. */
static int read_records(state_store *s, sqlite3_stmt *resources, sqlite3_stmt *conditions, record_list *l) {
        int r = exec_stmt(s, STMT_SAVEPOINT);
        if (r < 0)
                return r;

        r = read_resources(s, resources, l);
        if (r >= 0)
                r = attach_conditions(s, conditions, l);
        return savepoint_end(s, r);
}

int state_get(state_store *s, const char *kind, const char *name, state_record **ret) {
        _cleanup_stmt_release_ sqlite3_stmt *resources = s->stmts[STMT_GET_RESOURCE];
        _cleanup_stmt_release_ sqlite3_stmt *conditions = s->stmts[STMT_GET_CONDITIONS];
        _cleanup_(record_list_done) record_list l = {};

        int r = state_write_puts(s);
        if (r < 0)
                return r;
        int rc = bind_key(resources, kind, name) ?: bind_key(conditions, kind, name);
        if (rc != SQLITE_OK)
                return state_store_error(s, rc);

        r = read_records(s, resources, conditions, &l);
        if (r < 0)
                return r;
        if (l.n == 0)
                return -ENOENT;
        *ret = TAKE_PTR(l.items[0]);
        l.n = 0;
        return 0;
}

int state_list(state_store *s, state_record ***ret, size_t *n) {
        _cleanup_stmt_release_ sqlite3_stmt *resources = s->stmts[STMT_LIST_RESOURCES];
        _cleanup_stmt_release_ sqlite3_stmt *conditions = s->stmts[STMT_LIST_CONDITIONS];
        _cleanup_(record_list_done) record_list l = {};

        int r = state_write_puts(s);
        if (r >= 0)
                r = read_records(s, resources, conditions, &l);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l.items);
        *n = l.n;
        l.n = 0;
        return 0;
}

/* A document kept beside a record, asked by st once bound: the puts this transaction holds go in first. */
static int get_document(state_store *s, sqlite3_stmt *st, int bind_rc, char **ret) {
        *ret = NULL;
        int r = state_write_puts(s);
        if (r >= 0)
                r = state_step_row(s, st, bind_rc);
        return r < 0 ? r : state_column_strdup(st, 0, ret);
}

int state_baseline_get(state_store *s, const char *kind, const char *name, const char *applied_xml_hash,
                       char **ret) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_GET_BASELINE];
        return get_document(s, st, bind_key(st, kind, name) ?: bind_text(st, BL_APPLIED_XML_HASH, applied_xml_hash),
                            ret);
}

int state_applied_desired_get(state_store *s, const char *kind, const char *name, char **ret) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_GET_APPLIED_DESIRED];
        return get_document(s, st, bind_key(st, kind, name), ret);
}

/* ---- writing ----------------------------------------------------------- */

static int upsert_resource(state_store *s, const state_record *rec) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_UPSERT_RESOURCE];
        _cleanup_free_ char *depends = rec->depends ? vf_strv_join((const char *const *) rec->depends, "\n") : NULL;

        if (rec->depends && !depends)
                return -ENOMEM;

        int rc = bind_key(st, rec->kind, rec->name) ?: bind_text(st, RES_SOURCE_FILE, rec->source_file) ?:
                 bind_text(st, RES_DESIRED_HASH, rec->desired_hash) ?:
                 bind_int64(st, RES_GENERATION, rec->generation) ?:
                 bind_int64(st, RES_OBSERVED_GENERATION, rec->observed_generation) ?:
                 bind_text(st, RES_UUID, rec->uuid) ?:
                 bind_text(st, RES_APPLIED_XML_HASH, rec->applied_xml_hash) ?:
                 bind_text(st, RES_APPLIED_DESIRED_HASH, rec->applied_desired_hash) ?:
                 bind_text(st, RES_APPLIED_DESIRED_XML, rec->applied_desired_xml) ?:
                 bind_text(st, RES_LAST_ERROR, rec->last_error) ?:
                 bind_int64(st, RES_ATTEMPTS, rec->attempts) ?:
                 bind_int64(st, RES_NEXT_RETRY_USEC, rec->next_retry_usec) ?:
                 bind_int64(st, RES_UPDATED_USEC, rec->updated_usec) ?:
                 bind_text(st, RES_DEPENDS, depends);
        return state_exec_bound(s, st, rc);
}

static int upsert_condition(state_store *s, const state_record *rec, const state_condition *c) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_UPSERT_CONDITION];

        int rc = bind_key(st, rec->kind, rec->name) ?: bind_text(st, COND_TYPE, c->type) ?:
                 bind_int64(st, COND_STATUS, c->status) ?: bind_text(st, COND_REASON, c->reason) ?:
                 bind_text(st, COND_MESSAGE, c->message) ?:
                 bind_int64(st, COND_LAST_TRANSITION_USEC, c->last_transition_usec);
        return state_exec_bound(s, st, rc);
}

static int delete_condition(state_store *s, const state_record *rec, const char *type) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_DELETE_CONDITION];
        return state_exec_bound(s, st, bind_key(st, rec->kind, rec->name) ?: bind_text(st, COND_TYPE, type));
}

static int touch_resource(state_store *s, const state_record *rec) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_TOUCH_RESOURCE];
        return state_exec_bound(s, st,
                                bind_key(st, rec->kind, rec->name) ?:
                                bind_int64(st, RES_UPDATED_USEC, rec->updated_usec));
}

/* The conditions stored under rec's key, in a record of their own. */
static int read_stored_conditions(state_store *s, const state_record *rec, state_record **ret) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_GET_CONDITIONS];
        _cleanup_(state_record_freep) state_record *stored = state_record_new(rec->kind, rec->name);
        int rc;

        if (!stored)
                return -ENOMEM;
        rc = bind_key(st, rec->kind, rec->name);
        if (rc != SQLITE_OK)
                return state_store_error(s, rc);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int r = condition_from_row(st, stored);
                if (r < 0)
                        return r;
        }
        if (rc != SQLITE_DONE)
                return state_store_error(s, rc);
        *ret = TAKE_PTR(stored);
        return 0;
}

/* Writes the conditions that differ from the stored ones and deletes the ones rec no longer has. */
static int sync_conditions(state_store *s, const state_record *rec, bool *changed) {
        _cleanup_(state_record_freep) state_record *stored = NULL;
        int r = read_stored_conditions(s, rec, &stored);

        for (size_t i = 0; r >= 0 && i < rec->n_conditions; i++) {
                const state_condition *c = &rec->conditions[i];
                const state_condition *was = state_record_condition(stored, c->type);
                if (was && state_condition_same(was, c))
                        continue;
                r = upsert_condition(s, rec, c);
                *changed = true;
        }
        for (size_t i = 0; r >= 0 && i < stored->n_conditions; i++) {
                const char *type = stored->conditions[i].type;
                if (state_record_condition(rec, type))
                        continue;
                r = delete_condition(s, rec, type);
                *changed = true;
        }
        return r;
}

/* An upsert would fold two conditions of one type into one, silently: refused before anything is written. */
static int check_condition_types(state_store *s, const state_record *rec) {
        for (size_t i = 0; i < rec->n_conditions; i++)
                if (state_record_condition(rec, rec->conditions[i].type) != &rec->conditions[i]) {
                        snprintf(s->last_error, sizeof s->last_error, "%s/%s has two conditions of type %s",
                                 rec->kind, rec->name, rec->conditions[i].type ? rec->conditions[i].type : "(none)");
                        return -EINVAL;
                }
        return 0;
}

/*
 * The record's baseline document when it brings one; else, when the record changed, the one it no
 * longer names goes (a row that could never be read is disk for nothing).
 */
static int put_baseline(state_store *s, const state_record *rec, bool resource_changed) {
        if (rec->baseline_xml) {
                _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_UPSERT_BASELINE];
                return state_exec_bound(s, st,
                                        bind_key(st, rec->kind, rec->name) ?:
                                        bind_text(st, BL_APPLIED_XML_HASH, rec->applied_xml_hash) ?:
                                        bind_text(st, BL_XML, rec->baseline_xml));
        }
        if (!resource_changed)
                return 0;
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_DELETE_STALE_BASELINE];
        return state_exec_bound(s, st,
                                bind_key(st, rec->kind, rec->name) ?:
                                bind_text(st, BL_APPLIED_XML_HASH, rec->applied_xml_hash));
}

/* Writes what differs from the stored record, and nothing when nothing does. */
static int put_changes(state_store *s, const state_record *rec) {
        int r = upsert_resource(s, rec);
        if (r < 0)
                return r;

        bool resource_changed = sqlite3_changes(s->db) > 0, conditions_changed = false;
        r = put_baseline(s, rec, resource_changed);
        if (r >= 0)
                r = sync_conditions(s, rec, &conditions_changed);
        if (r >= 0 && conditions_changed && !resource_changed)
                r = touch_resource(s, rec);
        return r;
}

/* ---- records put inside a transaction ------------------------------------ */

/*
 * Inside a transaction a put is kept, as a copy, and written when the
 * transaction commits (state_commit()) or before anything reads or deletes
 * records, so that this connection reads what it put. Written at once, every
 * put would go out with the next intent's commit (state_flush()): the pages
 * of the records' tables and index in the -wal again for each write to
 * libvirt, where a batch written at its end writes each page once.
 */
void state_drop_unwritten(state_store *s) {
        for (size_t i = 0; i < s->n_unwritten; i++)
                state_record_free(s->unwritten[i]);
        s->n_unwritten = 0;
}

static int keep_unwritten(state_store *s, const state_record *rec) {
        if (s->n_unwritten == s->cap_unwritten) {
                size_t cap = s->cap_unwritten ? 2 * s->cap_unwritten : 64;
                state_record **grown = reallocarray(s->unwritten, cap, sizeof *grown);
                if (!grown)
                        return -ENOMEM;
                s->unwritten = grown;
                s->cap_unwritten = cap;
        }
        int r = state_record_copy(rec, &s->unwritten[s->n_unwritten]);
        if (r >= 0)
                s->n_unwritten++;
        return r;
}

/*
 * In the order they were put: a record put twice ends as it was put last. One
 * that fails rolls the whole transaction back, so that half a record is never
 * committed; a savepoint per record would cost a statement journal for every
 * page it writes.
 */
int state_write_puts(state_store *s) {
        int r = 0;

        for (size_t i = 0; r >= 0 && i < s->n_unwritten; i++)
                r = put_changes(s, s->unwritten[i]);
        if (r < 0)
                exec_stmt_quietly(s, STMT_ROLLBACK);
        state_drop_unwritten(s);
        return r;
}

/* Outside a transaction the savepoint makes the put one. */
int state_put(state_store *s, const state_record *rec) {
        int r = check_condition_types(s, rec);
        if (r < 0)
                return r;
        if (!sqlite3_get_autocommit(s->db))
                return keep_unwritten(s, rec);
        r = exec_stmt(s, STMT_SAVEPOINT);
        if (r < 0)
                return r;
        return savepoint_end(s, put_changes(s, rec));
}

int state_delete(state_store *s, const char *kind, const char *name) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_DELETE_RESOURCE];

        /* A put of it before, in this transaction, goes in first: the delete is the newer. */
        int r = state_write_puts(s);
        if (r < 0)
                return r;
        /* The conditions go with it through the foreign key's ON DELETE CASCADE. */
        r = state_exec_bound(s, st, bind_key(st, kind, name));
        if (r < 0)
                return r;
        return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}

/* ---- events ------------------------------------------------------------ */

static int append_intent(state_store *s, const char *kind, const char *name, int64_t generation, const char *action,
                         int64_t *ret_id) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_APPEND_EVENT];

        int rc = bind_int64(st, EV_TIME_USEC, vf_now_realtime_usec()) ?: bind_text(st, EV_KIND, kind) ?:
                 bind_text(st, EV_NAME, name) ?: bind_int64(st, EV_GENERATION, generation) ?:
                 bind_text(st, EV_ACTION, action);
        int r = state_exec_bound(s, st, rc);
        if (r >= 0)
                *ret_id = sqlite3_last_insert_rowid(s->db);
        return r;
}

/*
 * An intent is durable when this returns, whatever becomes of the caller's
 * batch: written inside an open batch, it is committed with it at once and a
 * new batch is opened (one commit, not two); outside one, the write is its own
 * transaction (state_flush() has nothing to commit).
 */
int state_intent_begin(state_store *s, const char *kind, const char *name, int64_t generation, const char *action,
                       int64_t *ret_id) {
        int r = append_intent(s, kind, name, generation, action, ret_id);
        return r < 0 ? r : state_flush(s);
}

static int close_intent(state_store *s, int64_t id, const char *outcome, const char *message) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_CLOSE_EVENT];

        int rc = bind_int64(st, EV_ID, id) ?: bind_text(st, EV_OUTCOME, outcome) ?:
                 bind_text(st, EV_MESSAGE, message) ?: bind_int64(st, EV_FINISHED_USEC, vf_now_realtime_usec());
        int r = state_exec_bound(s, st, rc);
        if (r >= 0 && sqlite3_changes(s->db) == 0)
                return -ENOENT;
        return r;
}

/*
 * A write that succeeded needs no commit of its own: its outcome travels with
 * the caller's batch, committed by the next intent or the batch's end. A crash
 * before then leaves the intent open, as a crash between the write and a
 * commit of its own would, and an open intent reads as a write that may have
 * been made. That commit was a third of what the log cost a cold apply.
 *
 * A failure is committed at once: it says the write was not made, which an
 * open intent does not, and a reader deciding whose an object is passes over
 * a failed write where it counts an open one.
 */
int state_intent_end(state_store *s, int64_t id, bool ok, const char *message) {
        int r = close_intent(s, id, ok ? "ok" : "failed", message);
        return r < 0 || ok ? r : state_flush(s);
}

int state_intent_resolve(state_store *s, const char *kind, const char *name) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_RESOLVE_EVENTS];

        int rc = bind_text(st, EV_KIND, kind) ?: bind_text(st, EV_NAME, name) ?:
                 bind_int64(st, EV_FINISHED_USEC, vf_now_realtime_usec());
        return state_exec_bound(s, st, rc);
}

int state_intent_any_open(state_store *s, bool *ret) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_ANY_OPEN_INTENT];

        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return state_store_error(s, rc);
        *ret = sqlite3_column_int(st, 0) != 0;
        return 0;
}

int state_event_trim(state_store *s, int64_t older_than_usec, int64_t keep_rows) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_TRIM_EVENTS];

        int rc = bind_int64(st, EV_ID, keep_rows) ?: bind_int64(st, EV_TIME_USEC, older_than_usec);
        return state_exec_bound(s, st, rc);
}

static void event_done(state_event *ev) {
        free(ev->kind);
        free(ev->name);
        free(ev->action);
        free(ev->outcome);
        free(ev->message);
}

void state_event_list_free(state_event *events, size_t n) {
        for (size_t i = 0; i < n; i++)
                event_done(&events[i]);
        free(events);
}

static int event_from_row(sqlite3_stmt *st, void *item) {
        state_event *ev = item;

        *ev = (state_event) {
                .id = sqlite3_column_int64(st, EV_ID),
                .time_usec = sqlite3_column_int64(st, EV_TIME_USEC),
                .generation = sqlite3_column_int64(st, EV_GENERATION),
                .finished_usec = sqlite3_column_int64(st, EV_FINISHED_USEC),
        };
        return state_column_strdup(st, EV_KIND, &ev->kind) ?: state_column_strdup(st, EV_NAME, &ev->name) ?:
               state_column_strdup(st, EV_ACTION, &ev->action) ?: state_column_strdup(st, EV_OUTCOME, &ev->outcome) ?:
               state_column_strdup(st, EV_MESSAGE, &ev->message);
}

/*
 * Steps st to its end, each row made an item of size bytes by from_row, appended to *items (*n of them).
 * On failure the caller frees what *items holds: an item is counted before it is filled, so that a
 * half-copied one is freed too.
 */
static int read_rows(state_store *s, sqlite3_stmt *st, size_t size, int (*from_row)(sqlite3_stmt *, void *),
                     void **items, size_t *n) {
        size_t cap = 0;
        int rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                char *more = vf_grow(*items, &cap, *n + 1, size);
                if (!more)
                        return -ENOMEM;
                *items = more;
                memset(more + *n * size, 0, size);
                int r = from_row(st, more + (*n)++ * size);
                if (r < 0)
                        return r;
        }
        return rc == SQLITE_DONE ? 0 : state_store_error(s, rc);
}

/* The events st yields, once its parameters are bound with result bind_rc. */
static int read_events(state_store *s, sqlite3_stmt *st, int bind_rc, state_event **ret, size_t *n) {
        void *events = NULL;
        size_t count = 0;

        if (bind_rc != SQLITE_OK)
                return state_store_error(s, bind_rc);
        int r = read_rows(s, st, sizeof(state_event), event_from_row, &events, &count);
        if (r < 0) {
                state_event_list_free(events, count);
                return r;
        }
        *ret = events;
        *n = count;
        return 0;
}

int state_event_list(state_store *s, const char *kind, const char *name, int64_t since_usec, state_event **ret,
                     size_t *n) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_LIST_EVENTS];

        int rc = bind_int64(st, EV_TIME_USEC, since_usec) ?: bind_text(st, EV_KIND, kind) ?:
                 bind_text(st, EV_NAME, name);
        return read_events(s, st, rc, ret, n);
}

void state_event_free(state_event *ev) {
        state_event_list_free(ev, 1);
}

/* A named parameter of a statement; SQLITE_RANGE when the statement has none of that name. */
static int bind_named(sqlite3_stmt *st, const char *parameter, const char *s) {
        int i = sqlite3_bind_parameter_index(st, parameter);
        return i > 0 ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : SQLITE_RANGE;
}

int state_event_newest(state_store *s, const char *kind, const char *name, const char *const *actions,
                       size_t n_actions, const char *except_outcome, state_event **ret) {
        static const char *const action_parameters[STATE_EVENT_NEWEST_MAX] = {
                ":action0", ":action1", ":action2", ":action3",
        };
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_NEWEST_EVENT];
        state_event *events;
        size_t n;

        if (n_actions == 0 || n_actions > STATE_EVENT_NEWEST_MAX)
                return -EINVAL;
        int rc = bind_text(st, EV_KIND, kind) ?: bind_text(st, EV_NAME, name);
        for (size_t i = 0; rc == SQLITE_OK && i < n_actions; i++)
                rc = bind_named(st, action_parameters[i], actions[i]);
        if (rc == SQLITE_OK && except_outcome)
                rc = bind_named(st, ":except", except_outcome);
        int r = read_events(s, st, rc, &events, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return -ENOENT;
        *ret = events;
        return 0;
}

/* ---- the store's own values ---------------------------------------------- */

int state_meta_get(state_store *s, const char *key, char **ret) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_GET_META];

        *ret = NULL;
        int r = state_step_row(s, st, bind_text(st, 0, key));
        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : state_column_strdup(st, 0, ret);
}

int state_meta_set(state_store *s, const char *key, const char *value) {
        if (!value) {
                _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_DELETE_META];
                return state_exec_bound(s, st, bind_text(st, 0, key));
        }
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_SET_META];
        return state_exec_bound(s, st, bind_text(st, 0, key) ?: bind_text(st, 1, value));
}

/* ---- what the files' last reading found wrong ------------------------------ */

void state_file_error_list_free(state_file_error *errors, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(errors[i].file);
                free(errors[i].message);
        }
        free(errors);
}

static int file_error_from_row(sqlite3_stmt *st, void *item) {
        state_file_error *e = item;

        *e = (state_file_error) { .line = sqlite3_column_int64(st, FE_LINE),
                                  .column = sqlite3_column_int64(st, FE_COLUMN),
                                  .n_errors = sqlite3_column_int64(st, FE_N_ERRORS) };
        return state_column_strdup(st, FE_FILE, &e->file) ?: state_column_strdup(st, FE_MESSAGE, &e->message);
}

int state_file_errors_list(state_store *s, state_file_error **ret, size_t *n) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_LIST_FILE_ERRORS];
        void *errors = NULL;
        size_t count = 0;

        int r = read_rows(s, st, sizeof(state_file_error), file_error_from_row, &errors, &count);
        if (r < 0) {
                state_file_error_list_free(errors, count);
                return r;
        }
        *ret = errors;
        *n = count;
        return 0;
}

static int insert_file_error(state_store *s, const state_file_error *e) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_INSERT_FILE_ERROR];

        return state_exec_bound(s, st,
                                bind_text(st, FE_FILE, e->file) ?: bind_int64(st, FE_LINE, e->line) ?:
                                bind_int64(st, FE_COLUMN, e->column) ?: bind_text(st, FE_MESSAGE, e->message) ?:
                                bind_int64(st, FE_N_ERRORS, e->n_errors));
}

int state_file_errors_set(state_store *s, const state_file_error *errors, size_t n) {
        int r = exec_stmt(s, STMT_CLEAR_FILE_ERRORS);

        for (size_t i = 0; r >= 0 && i < n; i++)
                r = insert_file_error(s, &errors[i]);
        return r;
}
