/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening the state store: where the file lives, proving it is ours before
 * touching it, and migrating its schema forward.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "state/state-internal.h"

/* Stamped into the database header, so we can tell our files from anyone else's. */
#define STATE_APPLICATION_ID 0x76667331 /* "vfs1" */

/* Long enough for another virtform run to finish one write transaction. */
#define STATE_BUSY_TIMEOUT_MSEC 5000

#define REFUSAL "refusing to touch it. Move it away or pass --state with another path."

/*
 * Step N takes the schema from user_version N to N+1, each in its own
 * transaction. Released steps are never edited, only appended to.
 */
static const char *const migrations[] = {
        "CREATE TABLE meta ("
        "        key TEXT PRIMARY KEY NOT NULL,"
        "        value TEXT NOT NULL"
        ") WITHOUT ROWID;"
        /* A rowid table: applied_desired_xml makes rows too large for WITHOUT ROWID to pay off. */
        "CREATE TABLE resources ("
        "        kind TEXT NOT NULL,"
        "        name TEXT NOT NULL,"
        "        source_file TEXT,"
        "        desired_hash TEXT,"
        "        generation INTEGER NOT NULL DEFAULT 0,"
        "        observed_generation INTEGER NOT NULL DEFAULT 0,"
        "        uuid TEXT,"
        "        applied_xml_hash TEXT,"
        "        applied_desired_xml TEXT,"
        "        last_error TEXT,"
        "        attempts INTEGER NOT NULL DEFAULT 0,"
        "        next_retry_usec INTEGER NOT NULL DEFAULT 0,"
        "        updated_usec INTEGER NOT NULL DEFAULT 0,"
        "        PRIMARY KEY (kind, name)"
        ");"
        "CREATE TABLE conditions ("
        "        kind TEXT NOT NULL,"
        "        name TEXT NOT NULL,"
        "        type TEXT NOT NULL,"
        "        status INTEGER NOT NULL CHECK (status IN (0, 1)),"
        "        reason TEXT,"
        "        message TEXT,"
        "        last_transition_usec INTEGER NOT NULL DEFAULT 0,"
        "        PRIMARY KEY (kind, name, type),"
        "        FOREIGN KEY (kind, name) REFERENCES resources (kind, name) ON DELETE CASCADE"
        ") WITHOUT ROWID;"
        /*
         * AUTOINCREMENT: an id is never handed out twice, so readers can remember where they stopped
         * (kept so without it since the step to version 6).
         */
        "CREATE TABLE events ("
        "        id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "        time_usec INTEGER NOT NULL,"
        "        kind TEXT NOT NULL,"
        "        name TEXT NOT NULL,"
        "        generation INTEGER NOT NULL,"
        "        action TEXT NOT NULL,"
        "        outcome TEXT NOT NULL,"
        "        message TEXT"
        ");"
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
        "        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;"
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
        "        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;",
        /* Host devices, keyed by PCI address: they outlive any one resource that names them. */
        "CREATE TABLE devices ("
        "        bdf TEXT PRIMARY KEY NOT NULL,"
        "        pf TEXT,"
        "        pf_netdev TEXT,"
        "        vf_index INTEGER NOT NULL DEFAULT -1,"
        "        phys_port_id TEXT,"
        "        saved INTEGER NOT NULL DEFAULT 0 CHECK (saved IN (0, 1)),"
        "        saved_pf_netdev TEXT,"
        "        saved_vf_index INTEGER NOT NULL DEFAULT -1,"
        "        saved_admin_mac TEXT,"
        "        saved_vlan INTEGER NOT NULL DEFAULT 0,"
        "        saved_own_mac TEXT,"
        "        original_driver TEXT,"
        "        bind_phase TEXT,"
        "        updated_usec INTEGER NOT NULL DEFAULT 0"
        ") WITHOUT ROWID;",
        /*
         * The write-ahead intent log: an event is written "intended" before its write and closed
         * once after it; retention deletes old closed events. Older rows were all written after
         * their write, so they are closed already.
         */
        "DROP TRIGGER events_no_update;"
        "DROP TRIGGER events_no_delete;"
        "ALTER TABLE events ADD COLUMN finished_usec INTEGER;"
        "UPDATE events SET finished_usec = time_usec;"
        "CREATE TRIGGER events_closed_once BEFORE UPDATE ON events WHEN OLD.outcome <> 'intended'"
        "        BEGIN SELECT RAISE(ABORT, 'a closed event is never rewritten'); END;"
        "CREATE INDEX events_by_time ON events (time_usec);"
        "CREATE INDEX events_by_resource ON events (kind, name, action);"
        "CREATE INDEX events_open ON events (kind, name) WHERE outcome = 'intended';",
        /* Each file the last pass could not use, with its first error, for status: rewritten by every pass. */
        "CREATE TABLE file_errors ("
        "        file TEXT PRIMARY KEY NOT NULL,"
        "        line INTEGER NOT NULL,"
        "        col INTEGER NOT NULL,"
        "        message TEXT NOT NULL,"
        "        n_errors INTEGER NOT NULL"
        ") WITHOUT ROWID;",
        /* The keys a resource's last applied declaration depended on, one a line: its removal goes before theirs. */
        "ALTER TABLE resources ADD COLUMN depends TEXT;",
        /*
         * The log without AUTOINCREMENT and without an index on time: every intent's commit wrote
         * a page of each, two of five. An id is still never handed out twice: an insert takes the
         * highest id plus one, and a trim never deletes the newest row (STMT_TRIM_EVENTS). Where a
         * trim had deleted the newest rows, this step's own event takes the id after the highest
         * one handed out. Ids grow as events are written, so a trim by age walks them in order.
         */
        "CREATE TABLE events_v6 ("
        "        id INTEGER PRIMARY KEY,"
        "        time_usec INTEGER NOT NULL,"
        "        kind TEXT NOT NULL,"
        "        name TEXT NOT NULL,"
        "        generation INTEGER NOT NULL,"
        "        action TEXT NOT NULL,"
        "        outcome TEXT NOT NULL,"
        "        message TEXT,"
        "        finished_usec INTEGER"
        ");"
        "INSERT INTO events_v6 SELECT id, time_usec, kind, name, generation, action, outcome, message, finished_usec "
        "        FROM events;"
        "INSERT INTO events_v6 (id, time_usec, kind, name, generation, action, outcome, message, finished_usec) "
        "        SELECT seq + 1, now, 'state', 'events', 0, 'migrate', 'ok', "
        "               'the event log was rebuilt; ids continue after ' || seq || ', the highest handed out', now "
        "        FROM sqlite_sequence, (SELECT CAST(strftime('%s', 'now') AS INTEGER) * 1000000 AS now) "
        "        WHERE name = 'events' AND seq > (SELECT coalesce(max(id), 0) FROM events);"
        "DROP TABLE events;"
        "ALTER TABLE events_v6 RENAME TO events;"
        "CREATE TRIGGER events_closed_once BEFORE UPDATE ON events WHEN OLD.outcome <> 'intended'"
        "        BEGIN SELECT RAISE(ABORT, 'a closed event is never rewritten'); END;"
        "CREATE INDEX events_by_resource ON events (kind, name, action);"
        "CREATE INDEX events_open ON events (kind, name) WHERE outcome = 'intended';",
        /*
         * libvirt's document a drift baseline was taken of, kept until a pass projects it: a define
         * then costs a row here instead of a parse and a projection. applied_xml_hash says which
         * baseline of the record the row belongs to; one the record no longer names is stale.
         */
        "CREATE TABLE baselines ("
        "        kind TEXT NOT NULL,"
        "        name TEXT NOT NULL,"
        "        applied_xml_hash TEXT NOT NULL,"
        "        xml TEXT NOT NULL,"
        "        PRIMARY KEY (kind, name),"
        "        FOREIGN KEY (kind, name) REFERENCES resources (kind, name) ON DELETE CASCADE"
        ");",
        /*
         * Schema 8 changes no table. A store at 8 has its objects marked in the ownership marker's
         * second form (virtform.d(5), OWNERSHIP), which a virtform that knows schema 7 at most does
         * not read: it would take each object it recorded for one whose marker was lost, redefine it
         * and, where the restart policy says on-change, restart it. Refusing the store as written by
         * a newer virtform, it touches nothing.
         */
        "SELECT 1;",
        /*
         * A record read at every pass holds a hash of its last applied declaration, no longer the
         * document: that was each declaration's XML held a second time. A row of before has none,
         * and a pass reads its document to compare (reconcilers/converge.c).
         */
        "ALTER TABLE resources ADD COLUMN applied_desired_hash TEXT;",
};

static int fail_sqlite(char **errmsg, sqlite3 *db, int rc, const char *path, const char *what) {
        return vf_error(errmsg, state_errno_from_sqlite(db, rc), "%s: %s: %s", path, what, sqlite3_errmsg(db));
}

/* ---- the file ---------------------------------------------------------- */

char *state_default_path(void) {
        if (geteuid() == 0)
                return strdup("/var/lib/virtform/state.db");

        /* The XDG spec says to ignore relative values. */
        const char *xdg = getenv("XDG_STATE_HOME");
        if (xdg && xdg[0] == '/')
                return vf_printf("%s/virtform/state.db", xdg);

        const char *home = getenv("HOME");
        if (home && home[0] == '/')
                return vf_printf("%s/.local/state/virtform/state.db", home);
        return NULL;
}

/* Creates the missing directories above path, 0700 whatever the umask. */
static int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;

        for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = 0;
                if (mkdir(p, 0700) >= 0) {
                        if (chmod(p, 0700) < 0)
                                return -errno;
                } else if (errno != EEXIST)
                        return -errno;
                *slash = '/';
        }
        return 0;
}

/* The directory path is in, "." for a bare name. */
static char *directory_of(const char *path) {
        const char *slash = strrchr(path, '/');
        if (!slash)
                return strdup(".");
        return strndup(path, slash == path ? 1 : (size_t) (slash - path));
}

/*
 * Only root and the user virtform runs as may write the directory a writer
 * keeps its state in, or any directory above it (sshd's StrictModes, as the
 * loader asks of watched directories): anyone else could swap the file, or a
 * directory on the way to it, for one of their own, or create it first.
 */
static int check_directory(const char *path, char **errmsg) {
        _cleanup_free_ char *dir = directory_of(path), *real = NULL, *why = NULL;
        struct stat st;

        if (!dir)
                return vf_error(errmsg, -ENOMEM, "%s: out of memory", path);
        real = realpath(dir, NULL);
        if (!real || stat(real, &st) < 0)
                return vf_error(errmsg, -errno, "%s: %s", dir, strerror(errno));
        int r = vf_trust_stat(&st, real, geteuid(), vf_printf("its directory %s", real), &why);
        if (r == 0)
                r = vf_trust_ancestors(real, geteuid(), "its ancestor directory", &why);
        if (r < 0)
                return vf_error(errmsg, r, "%s: out of memory", path);
        if (r > 0)
                return vf_error(errmsg, -EPERM, "the state file %s is not safe from other users: %s, or keep the "
                                "state elsewhere", path, why);
        return 0;
}

/*
 * What sits at path, looked at without following a symlink, before SQLite
 * opens it: SQLite would take a directory for a disk I/O error and create a
 * journal beside /dev/null. A writer also wants it private and its own.
 * *ret_exists is false when there is nothing.
 */
static int check_file(const char *path, bool writer, bool empty_is_missing, bool *ret_exists, char **errmsg) {
        struct stat st;

        _cleanup_close_ int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        *ret_exists = fd >= 0 || errno != ENOENT;
        if (!*ret_exists)
                return 0;
        if (fd < 0 || fstat(fd, &st) < 0)
                return vf_error(errmsg, -errno, "%s: %s", path, strerror(errno));

        if (S_ISLNK(st.st_mode))
                return vf_error(errmsg, -ELOOP, "%s is a symlink: point --state at the real file", path);
        if (S_ISDIR(st.st_mode))
                return vf_error(errmsg, -EISDIR, "%s is a directory: point --state at the state file, "
                                "such as %s/state.db", path, path);
        if (!S_ISREG(st.st_mode))
                return vf_error(errmsg, -EINVAL, "%s is not a regular file: point --state at the state file", path);
        /* Only `state recover` makes a store in place of a lost one, which it fills from libvirt's markers. */
        if (st.st_size == 0 && empty_is_missing) {
                *ret_exists = false;
                return 0;
        }
        if (st.st_size == 0)
                return vf_error(errmsg, -EBADMSG, "%s is empty: the state was lost or truncated; restore it from a "
                                "backup, or run 'virtform state recover --state %s' to rebuild it from what libvirt "
                                "shows", path, path);
        if (!writer)
                return 0;
        if (st.st_uid != geteuid())
                return vf_error(errmsg, -EPERM, "%s belongs to uid %u, not to uid %u that runs virtform; if it is "
                                "yours, run 'chown %u %s', else point --state elsewhere",
                                path, (unsigned) st.st_uid, (unsigned) geteuid(), (unsigned) geteuid(), path);
        if (st.st_mode & (S_IRWXG | S_IRWXO))
                return vf_error(errmsg, -EPERM, "%s is open to group or others (mode %04o); run 'chmod 600 %s'",
                                path, (unsigned) st.st_mode & 07777, path);
        return 0;
}

static int generate_uuid(char out[STATE_UUID_STRING_MAX]) {
        uint8_t b[16];
        int r = vf_random_bytes(b, sizeof b);

        if (r < 0)
                return r;

        /* RFC 4122 section 4.4: version 4, variant 10xx. */
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;

        char *p = out;
        for (size_t i = 0; i < sizeof b; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        *p++ = '-';
                p += sprintf(p, "%02x", b[i]);
        }
        return 0;
}

static int refuse_missing(const char *path, char **errmsg) {
        return vf_error(errmsg, -ENOENT, "%s does not exist: nothing was applied with this state file; check --state",
                        path);
}

/* ---- small queries ----------------------------------------------------- */

/* Prepares sql and steps to its first row, which the caller reads from *ret. */
static int query_first_row(sqlite3 *db, const char *sql, sqlite3_stmt **ret) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return rc;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? SQLITE_ERROR : rc;
        *ret = TAKE_PTR(st);
        return SQLITE_OK;
}

static int query_int(sqlite3 *db, const char *sql, int64_t *ret) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

        int rc = query_first_row(db, sql, &st);
        if (rc == SQLITE_OK)
                *ret = sqlite3_column_int64(st, 0);
        return rc;
}

/* Copies the first column of the first row; "" for NULL. */
static int query_text(sqlite3 *db, const char *sql, char *buf, size_t size) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

        int rc = query_first_row(db, sql, &st);
        if (rc == SQLITE_OK) {
                const unsigned char *text = sqlite3_column_text(st, 0);
                snprintf(buf, size, "%s", text ? (const char *) text : "");
        }
        return rc;
}

/* ---- proving the file is ours ------------------------------------------ */

static int connect_db(const char *path, int flags, sqlite3 **ret, char **errmsg) {
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;

        int rc = sqlite3_open_v2(path, &db, flags, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_busy_timeout(db, STATE_BUSY_TIMEOUT_MSEC);
        if (rc != SQLITE_OK)
                return fail_sqlite(errmsg, db, rc, path, "cannot open");
        *ret = TAKE_PTR(db);
        return 0;
}

/* quick_check, or with thorough the slower integrity_check that also compares indexes with their tables. */
static int check_integrity(sqlite3 *db, const char *path, bool thorough, char **errmsg) {
        char result[256];

        int rc = query_text(db, thorough ? "PRAGMA integrity_check" : "PRAGMA quick_check", result, sizeof result);
        if (rc != SQLITE_OK)
                return vf_error(errmsg, -EBADMSG, "%s failed SQLite's integrity check (%s); " REFUSAL, path,
                            sqlite3_errmsg(db));
        if (strcmp(result, "ok") != 0)
                return vf_error(errmsg, -EBADMSG, "%s failed SQLite's integrity check (%s); " REFUSAL, path,
                            result);
        return 0;
}

/*
 * Accepts an empty database or one of ours with a schema we know; refuses
 * anything else without writing a byte to it. Returns the schema version.
 */
static int check_identity(sqlite3 *db, const char *path, int64_t *ret_version, char **errmsg) {
        int64_t application_id, version, n_objects;


        int rc = query_int(db, "PRAGMA application_id", &application_id);
        if (rc == SQLITE_OK)
                rc = query_int(db, "PRAGMA user_version", &version);
        if (rc == SQLITE_OK)
                rc = query_int(db, "SELECT count(*) FROM sqlite_schema", &n_objects);
        if ((rc & 0xff) == SQLITE_NOTADB)
                return vf_error(errmsg, -EBADMSG, "%s is not a virtform state file (not an SQLite database); " REFUSAL,
                            path);
        if (rc != SQLITE_OK)
                return fail_sqlite(errmsg, db, rc, path, "cannot read");

        bool empty = application_id == 0 && version == 0 && n_objects == 0;
        if (!empty && application_id != STATE_APPLICATION_ID)
                return vf_error(errmsg, -EBADMSG,
                            "%s is not a virtform state file (application_id 0x%08" PRIx32 "); " REFUSAL, path,
                            (uint32_t) application_id);
        if (version < 0)
                return vf_error(errmsg, -EBADMSG, "%s has an invalid schema version %" PRIi64 "; " REFUSAL, path,
                            version);
        if (version > (int64_t) ELEMENTSOF(migrations))
                return vf_error(errmsg, -EPROTONOSUPPORT,
                            "%s was written by a newer virtform (schema version %" PRIi64
                            ", this one knows up to %zu); refusing to touch it. Run that virtform or a later one",
                            path, version, ELEMENTSOF(migrations));
        *ret_version = version;
        return 0;
}

/* "file:PATH?immutable=1", with the characters a URI gives meaning escaped. */
static char *immutable_uri(const char *path) {
        vf_buf b = {};

        vf_buf_puts(&b, "file:");
        for (const char *p = path; *p; p++)
                if (strchr("%?#", *p))
                        vf_buf_printf(&b, "%%%02X", (unsigned char) *p);
                else
                        vf_buf_append(&b, p, 1);
        vf_buf_puts(&b, "?immutable=1");
        return vf_buf_steal(&b);
}

/*
 * A reader in a directory it may not write (a read-only mount, a copy in a
 * directory of mode 0555) cannot make the -shm file SQLite needs to read a
 * WAL database. No writer can be at work there either, unless it left a
 * -wal: without one, the file is read as immutable, with no locks and no
 * side files.
 */
static bool reader_sees_immutable(const char *path) {
        _cleanup_free_ char *dir = directory_of(path), *wal = vf_printf("%s-wal", path);

        return dir && wal && faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) < 0 && access(wal, F_OK) < 0;
}

/*
 * A read-only connection for the checks: even reading through a read-write
 * one may write, for instance to roll back another program's hot journal.
 * immutable when nothing can change the file meanwhile: it then makes no
 * -wal and -shm either.
 */
static int open_checked(const char *path, bool immutable, sqlite3 **ret, int64_t *ret_version, char **errmsg) {
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_free_ char *uri = immutable ? immutable_uri(path) : NULL;
        int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW | (uri ? SQLITE_OPEN_URI : 0);

        if (immutable && !uri)
                return vf_error(errmsg, -ENOMEM, "%s: out of memory", path);
        int r = connect_db(uri ? uri : path, flags, &db, errmsg);
        if (r < 0)
                return r;
        r = check_identity(db, path, ret_version, errmsg);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(db);
        return 0;
}

/* ---- migrating --------------------------------------------------------- */

/* Applies the step after the current version, if any; *ret_done says whether there was none. */
static int migrate_step(sqlite3 *db, const char *instance_id, bool *ret_done) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int64_t version;
        char pragmas[128];

        /* Read the version inside the write transaction: another virtform may have just migrated. */
        int rc = query_int(db, "PRAGMA user_version", &version);
        *ret_done = rc == SQLITE_OK && version >= (int64_t) ELEMENTSOF(migrations);
        if (rc != SQLITE_OK || *ret_done)
                return rc;

        rc = sqlite3_exec(db, migrations[version], NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return rc;

        /* A store never exists without its instance id: it is made in the transaction that makes the tables. */
        rc = sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?1)", -1, &st,
                                NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 1, instance_id, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return rc;

        snprintf(pragmas, sizeof pragmas, "PRAGMA user_version = %" PRIi64 "; PRAGMA application_id = %d;",
                 version + 1, STATE_APPLICATION_ID);
        return sqlite3_exec(db, pragmas, NULL, NULL, NULL);
}

static int migrate(sqlite3 *db, const char *path, char **errmsg) {
        char instance_id[STATE_UUID_STRING_MAX];

        int r = generate_uuid(instance_id);
        if (r < 0)
                return vf_error(errmsg, r, "%s: cannot make an instance id: %s", path, strerror(-r));

        for (bool done = false; !done;) {
                int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
                if (rc == SQLITE_OK)
                        rc = migrate_step(db, instance_id, &done);
                if (rc == SQLITE_OK)
                        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
                if (rc != SQLITE_OK) {
                        r = fail_sqlite(errmsg, db, rc, path, "cannot migrate the schema");
                        if (!sqlite3_get_autocommit(db))
                                (void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                        return r;
                }
        }
        return 0;
}

/* ---- clean and unclean shutdowns --------------------------------------- */

/*
 * Checks the file before a writer trusts it: every time when asked, else
 * only after an unclean shutdown (the lock file says so), since the check
 * reads the whole file. When the last writer died with the store open and
 * its -wal, which held every commit since, is gone, the file is what it was
 * some time ago, which only a check on demand may accept. had_wal is looked
 * at before any connection: even a read-only one makes a new, empty -wal. So
 * does any reader that comes first, which hides the loss: this catches most
 * losses, not all.
 */
static int check_before_writing(sqlite3 *db, const char *path, state_last_writer last, bool had_wal,
                                bool on_demand, char **errmsg) {
        if (last == STATE_LAST_WRITER_KILLED && !had_wal && !on_demand)
                return vf_error(errmsg, -EBADMSG, "%s was not closed cleanly and its write-ahead log %s-wal is gone: "
                                "what virtform recorded since it last opened it is lost. Restore both from a "
                                "backup, or run 'virtform state check --state %s' to check what is left and go "
                                "on from it", path, path, path);
        if (last != STATE_LAST_WRITER_CLEAN || on_demand)
                return check_integrity(db, path, on_demand, errmsg);
        return 0;
}

/* ---- putting it together ----------------------------------------------- */

/*
 * WAL lets plan and status read while apply writes. With synchronous=NORMAL
 * a commit survives a crash of virtform; a power loss may drop the last few
 * commits but never corrupts the file, and the next pass redoes what was lost
 * because it converges from what it observes rather than from this record.
 */
static int configure_writable(sqlite3 *db, bool wal, const char *path, char **errmsg) {
        char mode[16];

        if (wal) {
                int rc = query_text(db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
                if (rc != SQLITE_OK)
                        return fail_sqlite(errmsg, db, rc, path, "cannot switch to WAL mode");
                if (strcmp(mode, "wal") != 0)
                        return vf_error(errmsg, -EOPNOTSUPP, "%s: cannot switch to WAL mode (still %s)", path, mode);
        }
        int rc = sqlite3_exec(db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return fail_sqlite(errmsg, db, rc, path, "cannot configure");
        return 0;
}

/* Creates path, which must not exist, 0600 whatever the umask: it describes the host's VMs and networks. */
static int create_private_file(const char *path, char **errmsg) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0 || fchmod(fd, 0600) < 0)
                return vf_error(errmsg, -errno, "%s: cannot create: %s", path, strerror(errno));
        /* Closed before SQLite opens it: closing a second descriptor would drop SQLite's fcntl locks. */
        return 0;
}

static int build_store(const char *path, char **errmsg) {
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;

        int r = create_private_file(path, errmsg);
        if (r >= 0)
                r = connect_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, &db, errmsg);
        if (r >= 0)
                r = configure_writable(db, true, path, errmsg);
        if (r >= 0)
                r = migrate(db, path, errmsg);
        return r;
}

static int fsync_directory_of(const char *path, char **errmsg) {
        _cleanup_free_ char *dir = directory_of(path);
        if (!dir)
                return vf_error(errmsg, -ENOMEM, "%s: out of memory", path);
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return vf_error(errmsg, -errno, "%s: cannot sync: %s", dir, strerror(errno));
        return 0;
}

static const char *const sqlite_files[] = { "", "-journal", "-wal", "-shm" };

/* Removes a store that is being built at tmp, with its SQLite side files. */
static int remove_build(const char *tmp, char **errmsg) {
        for (size_t i = 0; i < ELEMENTSOF(sqlite_files); i++) {
                _cleanup_free_ char *file = vf_printf("%s%s", tmp, sqlite_files[i]);
                if (!file)
                        return vf_error(errmsg, -ENOMEM, "%s: out of memory", tmp);
                if (unlink(file) < 0 && errno != ENOENT)
                        return vf_error(errmsg, -errno, "%s: cannot remove: %s", file, strerror(errno));
        }
        return 0;
}

/*
 * A new store is built beside its path, as PATH.new, and renamed into place
 * whole (put_in_place()), so that nobody ever sees it half made, and an
 * empty file at path can only mean a lost state. Called under the lock: what
 * a build that died left is ours.
 */
static int build_beside(const char *path, char **ret_tmp, char **errmsg) {
        _cleanup_free_ char *tmp = vf_printf("%s.new", path);

        if (!tmp)
                return vf_error(errmsg, -ENOMEM, "%s: out of memory", path);
        int r = remove_build(tmp, errmsg);
        if (r < 0)
                return r;
        r = build_store(tmp, errmsg);
        if (r < 0) {
                (void) remove_build(tmp, NULL);
                return r;
        }
        *ret_tmp = TAKE_PTR(tmp);
        return 0;
}

/* tmp is a closed store: its -wal was checkpointed into it when the last connection closed. */
static int put_in_place(const char *tmp, const char *path, char **errmsg) {
        _cleanup_close_ int fd = open(tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

        if (fd < 0 || fsync(fd) < 0)
                return vf_error(errmsg, -errno, "%s: cannot sync: %s", tmp, strerror(errno));
        if (rename(tmp, path) < 0)
                return vf_error(errmsg, -errno, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        return fsync_directory_of(path, errmsg);
}

static int create_store(const char *path, char **errmsg) {
        _cleanup_free_ char *tmp = NULL;

        int r = build_beside(path, &tmp, errmsg);
        if (r >= 0)
                r = put_in_place(tmp, path, errmsg);
        return r;
}

/* A -wal beside a lost (empty) file holds the lost state's last commits: a new store must not replay them. */
static int refuse_stale_wal(const char *path, const char *wal, char **errmsg) {
        if (access(wal, F_OK) < 0)
                return 0;
        return vf_error(errmsg, -EEXIST, "%s is empty but its write-ahead log %s is still there; keep both as a "
                        "backup elsewhere, remove them, and run recover again", path, wal);
}

static int open_readwrite(state_store *s, const char *path, state_open_flags flags, char **errmsg) {
        bool check = flags & STATE_OPEN_CHECK, recover = flags & STATE_OPEN_RECOVER;
        _cleanup_(sqlite3_closep) sqlite3 *probe = NULL;
        _cleanup_free_ char *wal = vf_printf("%s-wal", path);
        int64_t version;
        bool exists;

        if (!wal)
                return vf_error(errmsg, -ENOMEM, "%s: out of memory", path);
        /* First what --state names, which says more than its directory's mode when it is no file. */
        int r = check_file(path, true, recover, &exists, errmsg);
        if (r < 0)
                return r;
        if (!exists && check)
                return refuse_missing(path, errmsg);
        r = mkdir_parents(path);
        if (r < 0)
                return vf_error(errmsg, r, "%s: cannot create parent directories: %s", path, strerror(-r));
        r = check_directory(path, errmsg);
        if (r < 0)
                return r;
        /* Before anything reads the file: a second process would see a store being made or migrated. */
        r = state_lock_take(path, &s->lock_fd, &s->last_writer, errmsg);
        if (r < 0)
                return r;
        /* Again under the lock: another writer may have made the store meanwhile. */
        r = check_file(path, true, recover, &exists, errmsg);
        if (r >= 0 && !exists && recover) {
                r = refuse_stale_wal(path, wal, errmsg);
                /* Filled beside the lost file, which stays as it is until state_publish(). */
                if (r >= 0)
                        r = build_beside(path, &s->building, errmsg);
                if (r >= 0 && !(s->target = strdup(path)))
                        r = vf_error(errmsg, -ENOMEM, "%s: out of memory", path);
        } else if (r >= 0 && !exists)
                r = create_store(path, errmsg);
        if (r < 0)
                return r;
        if (!exists) {
                /* What a writer that died making it left is gone now: made whole under our lock. */
                s->last_writer = STATE_LAST_WRITER_CLEAN;
                path = s->building ? s->building : path;
        }
        /* Without a -wal, we hold the lock, and readers do not write: the file is all there is, and stays so. */
        bool had_wal = access(wal, F_OK) >= 0;
        r = open_checked(path, !had_wal, &probe, &version, errmsg);
        if (r >= 0)
                r = check_before_writing(probe, path, s->last_writer, had_wal, check, errmsg);
        if (r < 0)
                return r;
        sqlite3_close(TAKE_PTR(probe));

        r = connect_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, &s->db, errmsg);
        if (r < 0)
                return r;
        /* SQLite quietly falls back to read-only when it may not write; apply would only fail later. */
        if (sqlite3_db_readonly(s->db, "main") == 1)
                return vf_error(errmsg, -EACCES, "%s: cannot open for writing", path);
        r = configure_writable(s->db, true, path, errmsg);
        if (r >= 0)
                r = migrate(s->db, path, errmsg);
        if (r < 0)
                return r;
        state_wal_watch(s);
        state_lock_mark_open(s->lock_fd);
        return 0;
}

/*
 * A private in-memory database at the current schema, holding a copy of
 * source if there is one: how a read-only open sees a missing file or one
 * whose schema it would have to migrate.
 */
static int open_snapshot(state_store *s, sqlite3 *source, const char *path, char **errmsg) {
        int r = connect_db(":memory:", SQLITE_OPEN_READWRITE, &s->db, errmsg);
        if (r < 0)
                return r;

        if (source) {
                sqlite3_backup *backup = sqlite3_backup_init(s->db, "main", source, "main");
                if (!backup)
                        return fail_sqlite(errmsg, s->db, sqlite3_errcode(s->db), path, "cannot copy");
                int rc = sqlite3_backup_step(backup, -1);
                sqlite3_backup_finish(backup);
                if (rc != SQLITE_DONE)
                        return fail_sqlite(errmsg, s->db, rc, path, "cannot copy");
        }

        r = configure_writable(s->db, false, path, errmsg);
        if (r < 0)
                return r;
        return migrate(s->db, path, errmsg);
}

static int open_readonly(state_store *s, const char *path, bool must_exist, char **errmsg) {
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        int64_t version;
        bool exists;

        int r = check_file(path, false, false, &exists, errmsg);
        if (r < 0)
                return r;
        if (!exists && must_exist)
                return refuse_missing(path, errmsg);
        /* Nothing recorded yet: plan on a fresh host sees an empty store. */
        if (!exists)
                return open_snapshot(s, NULL, path, errmsg);

        r = open_checked(path, reader_sees_immutable(path), &db, &version, errmsg);
        if (r < 0)
                return r;
        if (version < (int64_t) ELEMENTSOF(migrations))
                return open_snapshot(s, db, path, errmsg);
        s->db = TAKE_PTR(db);
        return 0;
}

static int load_instance_id(state_store *s, const char *path, char **errmsg) {
        char id[STATE_UUID_STRING_MAX + 1];

        int rc = query_text(s->db, "SELECT value FROM meta WHERE key = 'instance_id'", id, sizeof id);
        if (rc != SQLITE_OK)
                return fail_sqlite(errmsg, s->db, rc, path, "cannot read the instance id");
        if (strlen(id) != STATE_UUID_STRING_MAX - 1)
                return vf_error(errmsg, -EBADMSG, "%s: malformed instance id '%s'", path, id);
        memcpy(s->instance_id, id, sizeof s->instance_id);
        return 0;
}

int state_open(const char *path, state_open_flags flags, state_store **ret, char **errmsg) {
        bool readonly = flags & STATE_OPEN_READONLY;

        if (errmsg)
                *errmsg = NULL;
        if (!path || !path[0])
                return vf_error(errmsg, -EINVAL, "no state file path given");

        _cleanup_(state_closep) state_store *s = calloc(1, sizeof *s);
        if (!s)
                return vf_error(errmsg, -ENOMEM, "%s: out of memory", path);

        s->lock_fd = -1;
        int r = readonly ? open_readonly(s, path, flags & STATE_OPEN_EXISTING, errmsg)
                         : open_readwrite(s, path, flags, errmsg);
        if (r < 0)
                return r;
        r = load_instance_id(s, path, errmsg);
        if (r < 0)
                return r;
        r = state_prepare_statements(s);
        if (r < 0)
                return vf_error(errmsg, r, "%s: %s", path, state_last_error(s));

        /* Makes a read-only in-memory snapshot refuse writes just like a read-only file (-EROFS). */
        if (readonly) {
                int rc = sqlite3_exec(s->db, "PRAGMA query_only = ON", NULL, NULL, NULL);
                if (rc != SQLITE_OK)
                        return fail_sqlite(errmsg, s->db, rc, path, "cannot configure");
        }

        s->open = true;
        *ret = TAKE_PTR(s);
        return 0;
}

/* Finalizes every statement first: sqlite3_close() refuses a connection that still has some. */
static int close_database(state_store *s) {
        for (size_t i = 0; i < _STMT_MAX; i++)
                sqlite3_finalize(TAKE_PTR(s->stmts[i]));
        int rc = sqlite3_close(s->db);
        if (rc == SQLITE_OK)
                s->db = NULL;
        return rc;
}

int state_publish(state_store *s, char **errmsg) {
        if (!s->building)
                return 0;
        if (!sqlite3_get_autocommit(s->db))
                return vf_error(errmsg, -EBUSY, "%s: a transaction is still open", s->building);
        int rc = close_database(s);
        if (rc != SQLITE_OK)
                return fail_sqlite(errmsg, s->db, rc, s->building, "cannot close");
        /* The last connection checkpoints its -wal and removes it; a failed checkpoint leaves it, and the commits. */
        _cleanup_free_ char *wal = vf_printf("%s-wal", s->building);
        if (!wal)
                return vf_error(errmsg, -ENOMEM, "%s: out of memory", s->building);
        if (access(wal, F_OK) >= 0)
                return vf_error(errmsg, -EIO, "%s was not written back into %s when it was closed; check the disk "
                                "and run recover again", wal, s->building);
        int r = put_in_place(s->building, s->target, errmsg);
        if (r < 0)
                return r;
        free(s->building);
        s->building = NULL;
        return 0;
}

void state_close(state_store *s) {
        if (!s)
                return;
        /*
         * The last connection's close writes the -wal back into the file and removes it. Killed after
         * that, before the lock file says the store is closed, a writer marked only open would leave a
         * store whose -wal looks lost, and the next writer would refuse it.
         */
        if (s->open)
                state_lock_mark_closing(s->lock_fd);
        (void) close_database(s);
        state_drop_unwritten(s);
        free(s->unwritten);
        /* Never published: the file it was to replace is left as it was. */
        if (s->building)
                (void) remove_build(s->building, NULL);
        free(s->building);
        free(s->target);
        /* Only once the database is closed, so that the next writer finds it at rest. */
        /* A failed open changes nothing about how the last writer left the store. */
        state_lock_release(s->lock_fd, s->open ? STATE_LAST_WRITER_CLEAN : s->last_writer);
        free(s);
}
