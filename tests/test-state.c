/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "state/state.h"
#include "tests/helpers.h"

/* The on-disk identity of our files: a change here would orphan every existing store. */
#define APPLICATION_ID 0x76667331
#define SCHEMA_VERSION 9

typedef struct fixture {
        char *dir;
        bool mounted; /* a tmpfs at dir/tmpfs, unmounted in teardown */
} fixture;

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        f->dir = th_mkdtemp();
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        if (f->mounted) {
                _cleanup_free_ char *mnt = vf_printf("%s/tmpfs", f->dir);
                assert_int_equal(umount2(mnt, MNT_DETACH), 0);
        }
        th_rmtree(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static char *path_in(void **state, const char *relative) {
        fixture *f = *state;
        char *p = vf_printf("%s/%s", f->dir, relative);

        assert_non_null(p);
        return p;
}

static state_store *open_store(const char *path, state_open_flags flags) {
        _cleanup_free_ char *errmsg = NULL;
        state_store *s = NULL;

        int r = state_open(path, flags, &s, &errmsg);
        if (r < 0)
                fail_msg("state_open(%s): %s", path, errmsg ? errmsg : strerror(-r));
        return s;
}

/* Opens path and asserts it is refused with error r and a message containing needle. */
static void assert_open_refused(const char *path, state_open_flags flags, int r, const char *needle) {
        _cleanup_free_ char *errmsg = NULL;
        state_store *s = NULL;

        assert_int_equal(state_open(path, flags, &s, &errmsg), r);
        assert_null(s);
        assert_non_null(errmsg);
        if (!strstr(errmsg, needle))
                fail_msg("'%s' does not mention '%s'", errmsg, needle);
}

static sqlite3 *raw_open(const char *path) {
        sqlite3 *db = NULL;

        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
        return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
        char *err = NULL;

        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
                fail_msg("%s: %s", sql, err);
}

static char *raw_text(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st = NULL;

        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        char *s = strdup((const char *) sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        assert_non_null(s);
        return s;
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
        _cleanup_free_ char *s = raw_text(db, sql);
        return strtoll(s, NULL, 0);
}

static int64_t file_int(const char *path, const char *sql) {
        sqlite3 *db = raw_open(path);
        int64_t v = raw_int(db, sql);

        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        return v;
}

typedef struct file_snapshot {
        char *data;
        size_t len;
        struct stat st;
} file_snapshot;

static file_snapshot snapshot_file(const char *path) {
        file_snapshot snap = {};

        assert_int_equal(vf_read_file(path, 64 << 20, &snap.data, &snap.len), 0);
        assert_int_equal(stat(path, &snap.st), 0);
        return snap;
}

/* Asserts path has the same bytes, size and mtime as when snapshotted, then frees the snapshot. */
static void assert_file_unchanged(const char *path, file_snapshot *before) {
        file_snapshot after = snapshot_file(path);

        assert_int_equal(after.len, before->len);
        assert_memory_equal(after.data, before->data, before->len);
        assert_int_equal(after.st.st_mtim.tv_sec, before->st.st_mtim.tv_sec);
        assert_int_equal(after.st.st_mtim.tv_nsec, before->st.st_mtim.tv_nsec);
        free(after.data);
        free(before->data);
}

/* Asserts that neither path nor any of SQLite's files beside it exists. */
static void assert_no_sqlite_files(const char *path) {
        static const char *const suffixes[] = { "", "-journal", "-wal", "-shm" };

        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *file = vf_printf("%s%s", path, suffixes[i]);
                if (access(file, F_OK) == 0 || errno != ENOENT)
                        fail_msg("%s is there", file);
        }
}

static void write_file(const char *path, const void *data, size_t len) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t) len);
}

static state_record *full_record(const char *kind, const char *name) {
        state_record *rec = state_record_new(kind, name);

        assert_non_null(rec);
        rec->source_file = strdup("/etc/virtform/vm.yaml");
        rec->desired_hash = strdup("d3s1r3d");
        rec->generation = 7;
        rec->observed_generation = 6;
        rec->uuid = strdup("2f1e0c3a-5b7d-4e8f-9a0b-1c2d3e4f5a6b");
        rec->applied_xml_hash = strdup("4ppl13d");
        rec->applied_desired_hash = strdup("d3f1n1t10n");
        rec->applied_desired_xml = strdup("<domain type='kvm'>\n  <name>vm</name>\n</domain>\n");
        rec->last_error = strdup("internal error: ünïcode and 'quotes'");
        rec->attempts = 3;
        rec->next_retry_usec = INT64_C(1764120000000000);
        rec->updated_usec = INT64_C(1764119999000001);
        assert_int_equal(vf_strv_push(&rec->depends, "network/lan"), 0);
        assert_int_equal(vf_strv_push(&rec->depends, "volume/images/base.qcow2"), 0);
        assert_int_equal(state_record_set_condition(rec, "Ready", false, "DefineFailed", "libvirt said no", 100), 0);
        assert_int_equal(state_record_set_condition(rec, "RestartPending", true, NULL, NULL, 200), 0);
        return rec;
}

static void assert_condition(const state_record *rec, const char *type, bool status, const char *reason,
                             const char *message, int64_t last_transition_usec) {
        const state_condition *c = state_record_condition(rec, type);

        if (!c)
                fail_msg("%s/%s has no condition %s", rec->kind, rec->name, type);
        assert_int_equal(c->status, status);
        assert_true(vf_streq_ptr(c->reason, reason));
        assert_true(vf_streq_ptr(c->message, message));
        assert_int_equal(c->last_transition_usec, last_transition_usec);
}

static void assert_records_equal(const state_record *a, const state_record *b) {
        assert_string_equal(a->kind, b->kind);
        assert_string_equal(a->name, b->name);
        assert_true(vf_streq_ptr(a->source_file, b->source_file));
        assert_true(vf_streq_ptr(a->desired_hash, b->desired_hash));
        assert_int_equal(a->generation, b->generation);
        assert_int_equal(a->observed_generation, b->observed_generation);
        assert_true(vf_streq_ptr(a->uuid, b->uuid));
        assert_true(vf_streq_ptr(a->applied_xml_hash, b->applied_xml_hash));
        assert_true(vf_streq_ptr(a->applied_desired_hash, b->applied_desired_hash));
        /* A record read back holds no applied document (applied_document_is()). */
        assert_true(!a->applied_desired_xml || vf_streq_ptr(a->applied_desired_xml, b->applied_desired_xml));
        assert_true(vf_streq_ptr(a->last_error, b->last_error));
        assert_int_equal(a->attempts, b->attempts);
        assert_int_equal(a->next_retry_usec, b->next_retry_usec);
        assert_int_equal(a->updated_usec, b->updated_usec);
        assert_int_equal(vf_strv_length(a->depends), vf_strv_length(b->depends));
        for (size_t i = 0; a->depends && a->depends[i]; i++)
                assert_string_equal(a->depends[i], b->depends[i]);
        assert_int_equal(a->n_conditions, b->n_conditions);
        for (size_t i = 0; i < a->n_conditions; i++) {
                const state_condition *c = &a->conditions[i];
                assert_condition(b, c->type, c->status, c->reason, c->message, c->last_transition_usec);
        }
}

static void put_simple(state_store *s, const char *kind, const char *name, const char *condition) {
        _cleanup_(state_record_freep) state_record *rec = state_record_new(kind, name);

        assert_non_null(rec);
        if (condition)
                assert_int_equal(state_record_set_condition(rec, condition, true, "Ok", name, 1), 0);
        assert_int_equal(state_put(s, rec), 0);
}

static void assert_uuid_v4(const char *id) {
        assert_non_null(id);
        assert_int_equal(strlen(id), 36);
        for (size_t i = 0; i < 36; i++)
                if (i == 8 || i == 13 || i == 18 || i == 23)
                        assert_int_equal(id[i], '-');
                else
                        assert_non_null(strchr("0123456789abcdef", id[i]));
        assert_int_equal(id[14], '4');
        assert_non_null(strchr("89ab", id[19]));
}

/* ---- creating and reopening -------------------------------------------- */

static void test_create_sets_modes(void **state) {
        _cleanup_free_ char *parent = path_in(state, "a"), *dir = path_in(state, "a/b"),
                            *path = path_in(state, "a/b/state.db");
        struct stat st;

        /* A umask that strips bits we need must not leave the file unwritable, or world-readable. */
        mode_t old_umask = umask(0277);
        state_store *s = open_store(path, 0);
        umask(old_umask);

        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(stat(parent, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        /* The WAL and its index hold the same data: SQLite gives them the database's mode. */
        static const char *const suffixes[] = { "-wal", "-shm" };
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *side = vf_printf("%s%s", path, suffixes[i]);
                assert_int_equal(stat(side, &st), 0);
                assert_int_equal(st.st_mode & 07777, 0600);
        }
        state_close(s);
}

/* What status reads without the lock: the files' first errors, replaced whole, and the daemon's word. */
static void test_file_errors_and_meta(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        const state_file_error errors[] = {
                { .file = "/etc/a.yaml", .line = 3, .column = 7, .message = "first", .n_errors = 2 },
                { .file = "/etc/b.xml", .line = 0, .column = 0, .message = "unreadable", .n_errors = 1 },
        };
        state_file_error *got = NULL;
        char *value = NULL;
        size_t n = 99;

        assert_int_equal(state_file_errors_set(s, errors, ELEMENTSOF(errors)), 0);
        assert_int_equal(state_meta_set(s, STATE_META_DAEMON, "42 connected"), 0);
        state_close(s);

        s = open_store(path, STATE_OPEN_READONLY);
        assert_int_equal(state_file_errors_list(s, &got, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(got[0].file, "/etc/a.yaml");
        assert_int_equal(got[0].line, 3);
        assert_int_equal(got[0].column, 7);
        assert_string_equal(got[0].message, "first");
        assert_int_equal(got[0].n_errors, 2);
        assert_string_equal(got[1].message, "unreadable");
        state_file_error_list_free(got, n);
        assert_int_equal(state_meta_get(s, STATE_META_DAEMON, &value), 0);
        assert_string_equal(value, "42 connected");
        free(value);
        state_close(s);

        s = open_store(path, 0);
        assert_int_equal(state_file_errors_set(s, NULL, 0), 0);
        assert_int_equal(state_meta_set(s, STATE_META_DAEMON, NULL), 0);
        assert_int_equal(state_file_errors_list(s, &got, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(state_meta_get(s, STATE_META_DAEMON, &value), 0);
        assert_null(value);
        state_file_error_list_free(got, n);
        state_close(s);
}

static void test_create_sets_pragmas(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        sqlite3 *db = raw_open(path);
        _cleanup_free_ char *mode = raw_text(db, "PRAGMA journal_mode");

        assert_string_equal(mode, "wal");
        assert_int_equal(raw_int(db, "PRAGMA user_version"), SCHEMA_VERSION);
        assert_int_equal(raw_int(db, "PRAGMA application_id"), APPLICATION_ID);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        state_close(s);
}

static void test_reopen_keeps_data_and_instance_id(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1"), *got = NULL;
        char id[37];

        state_store *s = open_store(path, 0);
        assert_uuid_v4(state_instance_id(s));
        strcpy(id, state_instance_id(s));
        assert_int_equal(state_put(s, rec), 0);
        state_close(s);

        s = open_store(path, 0);
        assert_string_equal(state_instance_id(s), id);
        assert_int_equal(state_get(s, "domain", "vm1", &got), 0);
        assert_records_equal(got, rec);
        state_close(s);

        /* A second store is a different instance. */
        _cleanup_free_ char *other = path_in(state, "other.db");
        s = open_store(other, 0);
        assert_string_not_equal(state_instance_id(s), id);
        state_close(s);
}

/* ---- records ----------------------------------------------------------- */

/* The applied document the store keeps for kind/name, NULL for none. */
static void applied_document_is(state_store *s, const char *kind, const char *name, const char *expected) {
        _cleanup_free_ char *xml = NULL;

        assert_int_equal(state_applied_desired_get(s, kind, name, &xml), expected ? 0 : -ENOENT);
        assert_true(vf_streq_ptr(xml, expected));
}

static void test_put_get_roundtrip(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *full = full_record("domain", "vm1"), *got_full = NULL,
                                                   *empty = state_record_new("network", "net0"), *got_empty = NULL;
        state_store *s = open_store(path, 0);

        assert_int_equal(state_put(s, full), 0);
        assert_int_equal(state_put(s, empty), 0);

        assert_int_equal(state_get(s, "domain", "vm1", &got_full), 0);
        assert_records_equal(got_full, full);
        assert_condition(got_full, "Ready", false, "DefineFailed", "libvirt said no", 100);
        assert_condition(got_full, "RestartPending", true, NULL, NULL, 200);
        assert_null(got_full->applied_desired_xml);
        applied_document_is(s, "domain", "vm1", full->applied_desired_xml);

        assert_int_equal(state_get(s, "network", "net0", &got_empty), 0);
        assert_records_equal(got_empty, empty);
        assert_null(got_empty->source_file);
        assert_null(got_empty->applied_desired_hash);
        applied_document_is(s, "network", "net0", NULL);
        assert_null(got_empty->depends);
        assert_int_equal(got_empty->n_conditions, 0);

        state_record *missing = NULL;
        assert_int_equal(state_get(s, "domain", "nope", &missing), -ENOENT);
        assert_int_equal(state_get(s, "network", "vm1", &missing), -ENOENT);
        assert_null(missing);
        state_close(s);
}

static void test_put_replaces_record_and_conditions(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1"), *got = NULL;
        state_store *s = open_store(path, 0);

        assert_int_equal(state_put(s, rec), 0);
        state_record_clear_condition(rec, "RestartPending");
        assert_int_equal(state_record_set_condition(rec, "Ready", true, "Applied", "running", 300), 0);
        assert_int_equal(state_record_set_condition(rec, "Drifted", false, "InSync", NULL, 400), 0);
        free(rec->uuid);
        rec->uuid = NULL;
        rec->generation = 8;
        assert_int_equal(state_put(s, rec), 0);

        assert_int_equal(state_get(s, "domain", "vm1", &got), 0);
        assert_records_equal(got, rec);
        assert_null(got->uuid);
        assert_null(state_record_condition(got, "RestartPending"));
        assert_condition(got, "Drifted", false, "InSync", NULL, 400);
        state_close(s);
}

/* Commits by other connections, as a connection of the test's own sees them. */
static int64_t data_version(sqlite3 *observer) {
        return raw_int(observer, "PRAGMA data_version");
}

static off_t wal_size(const char *path) {
        _cleanup_free_ char *wal = vf_printf("%s-wal", path);
        struct stat st;

        assert_non_null(wal);
        assert_int_equal(stat(wal, &st), 0);
        return st.st_size;
}

/* The stored record, which state_record_same() must judge as the put over it does. */
static state_record *stored(state_store *s, const state_record *rec) {
        state_record *got = NULL;

        assert_int_equal(state_get(s, rec->kind, rec->name, &got), 0);
        return got;
}

/*
 * Puts rec, alone and in a transaction, and asserts that neither commits anything, as another connection
 * sees it, and that state_record_same() said so beforehand.
 */
static void assert_put_writes_nothing(state_store *s, const char *path, sqlite3 *observer, const state_record *rec) {
        _cleanup_(state_record_freep) state_record *was = stored(s, rec);
        int64_t version = data_version(observer);
        off_t wal = wal_size(path);

        assert_true(state_record_same(was, rec));
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_begin(s), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_commit(s), 0);
        assert_int_equal(data_version(observer), version);
        assert_int_equal(wal_size(path), wal);
}

static void assert_put_writes(state_store *s, const char *path, sqlite3 *observer, const state_record *rec) {
        _cleanup_(state_record_freep) state_record *was = stored(s, rec);
        int64_t version = data_version(observer);
        _cleanup_(state_record_freep) state_record *got = NULL;

        assert_false(state_record_same(was, rec));
        assert_int_equal(state_put(s, rec), 0);
        assert_int_not_equal(data_version(observer), version);
        assert_int_equal(state_get(s, rec->kind, rec->name, &got), 0);
        assert_records_equal(got, rec);
        /* It reads back the same, but for the applied document, which is read on its own. */
        _cleanup_(state_record_freep) state_record *as_read = NULL;
        assert_int_equal(state_record_copy(rec, &as_read), 0);
        free(TAKE_PTR(as_read->applied_desired_xml));
        assert_true(state_record_same(got, as_read));
        if (rec->applied_desired_xml)
                applied_document_is(s, rec->kind, rec->name, rec->applied_desired_xml);
        assert_int_equal(file_int(path, "SELECT count(*) FROM conditions"), rec->n_conditions);
}

static void test_unchanged_put_writes_nothing(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1"), *got = NULL;
        state_store *s = open_store(path, 0);
        sqlite3 *observer = raw_open(path);

        assert_int_equal(state_put(s, rec), 0);
        /* Read back, a record holds no applied document, and one that brings none keeps the stored one. */
        _cleanup_free_ char *applied = TAKE_PTR(rec->applied_desired_xml);
        assert_put_writes_nothing(s, path, observer, rec);
        applied_document_is(s, "domain", "vm1", applied);

        /* A copy says the same, and the order of the conditions is not a change. */
        _cleanup_(state_record_freep) state_record *copy = NULL;
        assert_int_equal(state_record_copy(rec, &copy), 0);
        assert_records_equal(copy, rec);
        assert_int_equal(copy->n_conditions, 2);
        state_condition first = copy->conditions[0];
        copy->conditions[0] = copy->conditions[1];
        copy->conditions[1] = first;
        assert_put_writes_nothing(s, path, observer, copy);

        /* When it was last looked at is not a change: the stored time stays that of the last change. */
        int64_t changed_usec = rec->updated_usec;
        rec->updated_usec += 1000000;
        assert_put_writes_nothing(s, path, observer, rec);
        assert_int_equal(file_int(path, "SELECT updated_usec FROM resources"), changed_usec);

        /* Every other column and every condition's field is a change, and one alone is written. */
        char **strings[] = { &rec->source_file, &rec->desired_hash, &rec->uuid, &rec->applied_xml_hash,
                             &rec->applied_desired_hash, &rec->last_error };
        int64_t *numbers[] = { &rec->generation, &rec->observed_generation, &rec->attempts, &rec->next_retry_usec };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                _cleanup_free_ char *changed = vf_printf("%s, changed", *strings[i] ? *strings[i] : "");
                assert_int_equal(vf_free_and_strdup(strings[i], changed), 0);
                assert_put_writes(s, path, observer, rec);
                rec->updated_usec++;
        }
        for (size_t i = 0; i < ELEMENTSOF(numbers); i++) {
                (*numbers[i])++;
                assert_put_writes(s, path, observer, rec);
                rec->updated_usec++;
        }
        /* So is a new applied document, even under the same hash; brought no more, it is kept (below). */
        _cleanup_free_ char *changed_applied = vf_printf("%s<!-- changed -->", applied);
        rec->applied_desired_xml = strdup(changed_applied);
        assert_put_writes(s, path, observer, rec);
        free(TAKE_PTR(rec->applied_desired_xml));
        rec->updated_usec++;
        assert_int_equal(state_record_set_condition(rec, "Ready", false, "DefineFailed", "libvirt said no again", 300),
                         0);
        assert_put_writes(s, path, observer, rec);
        rec->updated_usec++;
        rec->conditions[0].last_transition_usec++;
        assert_put_writes(s, path, observer, rec);
        rec->updated_usec++;
        state_record_clear_condition(rec, "RestartPending");
        assert_put_writes(s, path, observer, rec);
        rec->updated_usec++;
        assert_int_equal(state_record_set_condition(rec, "Drifted", true, "ChangedOutOfBand", "memory", 500), 0);
        assert_put_writes(s, path, observer, rec);
        rec->updated_usec++;
        vf_strv_free(TAKE_PTR(rec->depends));
        assert_put_writes(s, path, observer, rec);
        assert_put_writes_nothing(s, path, observer, rec);
        applied_document_is(s, "domain", "vm1", changed_applied);

        assert_int_equal(sqlite3_close(observer), SQLITE_OK);
        state_close(s);
}

static void test_set_condition_transition_time(void **state) {
        _cleanup_(state_record_freep) state_record *rec = state_record_new("domain", "vm1");

        assert_non_null(rec);
        assert_null(state_record_condition(rec, "Ready"));

        assert_int_equal(state_record_set_condition(rec, "Ready", false, "Pending", "waiting", 10), 0);
        assert_condition(rec, "Ready", false, "Pending", "waiting", 10);

        /* Same status: reason and message change, the transition time does not. */
        assert_int_equal(state_record_set_condition(rec, "Ready", false, "Retrying", "again", 20), 0);
        assert_condition(rec, "Ready", false, "Retrying", "again", 10);

        assert_int_equal(state_record_set_condition(rec, "Ready", true, "Applied", NULL, 30), 0);
        assert_condition(rec, "Ready", true, "Applied", NULL, 30);

        /* Passing the condition's own strings back in must not read freed memory. */
        const state_condition *c = state_record_condition(rec, "Ready");
        assert_int_equal(state_record_set_condition(rec, "Ready", true, c->reason, c->message, 40), 0);
        assert_condition(rec, "Ready", true, "Applied", NULL, 30);

        assert_int_equal(state_record_set_condition(rec, "Other", true, NULL, NULL, 50), 0);
        assert_int_equal(rec->n_conditions, 2);
}

static void test_clear_condition(void **state) {
        _cleanup_(state_record_freep) state_record *rec = state_record_new("domain", "vm1");

        assert_int_equal(state_record_set_condition(rec, "A", true, NULL, NULL, 1), 0);
        assert_int_equal(state_record_set_condition(rec, "B", false, "b", NULL, 2), 0);
        assert_int_equal(state_record_set_condition(rec, "C", true, "c", "cc", 3), 0);

        state_record_clear_condition(rec, "B");
        assert_int_equal(rec->n_conditions, 2);
        assert_null(state_record_condition(rec, "B"));
        assert_condition(rec, "A", true, NULL, NULL, 1);
        assert_condition(rec, "C", true, "c", "cc", 3);

        state_record_clear_condition(rec, "missing");
        assert_int_equal(rec->n_conditions, 2);
}

static void test_delete_cascades_conditions(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1"), *got = NULL;
        state_store *s = open_store(path, 0);

        assert_int_equal(state_put(s, rec), 0);
        put_simple(s, "domain", "vm2", "Ready");
        assert_int_equal(state_delete(s, "domain", "vm1"), 0);

        assert_int_equal(state_get(s, "domain", "vm1", &got), -ENOENT);
        assert_int_equal(state_delete(s, "domain", "vm1"), -ENOENT);
        assert_int_equal(file_int(path, "SELECT count(*) FROM conditions WHERE name = 'vm1'"), 0);
        assert_int_equal(file_int(path, "SELECT count(*) FROM conditions WHERE name = 'vm2'"), 1);
        state_close(s);
}

static void assert_baseline(state_store *s, const char *applied_xml_hash, const char *expected) {
        _cleanup_free_ char *xml = NULL;

        assert_int_equal(state_baseline_get(s, "domain", "vm1", applied_xml_hash, &xml), expected ? 0 : -ENOENT);
        if (expected)
                assert_string_equal(xml, expected);
        else
                assert_null(xml);
}

/*
 * A baseline document is kept beside its record while the record names that baseline, read back only
 * on demand, and goes with the record or once the record names another.
 */
static void test_baseline_document_beside_record(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1"), *got = NULL;
        state_store *s = open_store(path, 0);
        state_record **recs = NULL;
        size_t n = 0;

        rec->baseline_xml = strdup("<domain><name>vm1</name></domain>");
        assert_int_equal(state_put(s, rec), 0);
        assert_baseline(s, "4ppl13d", "<domain><name>vm1</name></domain>");
        assert_baseline(s, "0th3r", NULL);
        /* Records are read at every pass: never with the document. */
        assert_int_equal(state_get(s, "domain", "vm1", &got), 0);
        assert_null(got->baseline_xml);
        assert_int_equal(state_list(s, &recs, &n), 0);
        assert_int_equal(n, 1);
        assert_null(recs[0]->baseline_xml);
        state_record_list_free(recs, n);

        /* A put without one keeps it, changed or not, while the record names the same baseline. */
        free(rec->baseline_xml);
        rec->baseline_xml = NULL;
        rec->attempts = 4;
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_baseline(s, "4ppl13d", "<domain><name>vm1</name></domain>");

        /* Another baseline: the document of the old one goes; a document of the new one replaces it. */
        free(rec->applied_xml_hash);
        rec->applied_xml_hash = strdup("pr0j3ct3d");
        assert_int_equal(state_put(s, rec), 0);
        assert_baseline(s, "4ppl13d", NULL);
        assert_int_equal(file_int(path, "SELECT count(*) FROM baselines"), 0);
        rec->baseline_xml = strdup("<domain><name>vm1</name><uuid/></domain>");
        assert_int_equal(state_put(s, rec), 0);
        free(rec->applied_xml_hash);
        rec->applied_xml_hash = strdup("n3w3r");
        assert_int_equal(state_put(s, rec), 0);
        assert_baseline(s, "pr0j3ct3d", NULL);
        assert_baseline(s, "n3w3r", "<domain><name>vm1</name><uuid/></domain>");
        assert_int_equal(file_int(path, "SELECT count(*) FROM baselines"), 1);

        /* It goes with its record. */
        assert_int_equal(state_delete(s, "domain", "vm1"), 0);
        assert_int_equal(file_int(path, "SELECT count(*) FROM baselines"), 0);
        state_close(s);
}

static void test_list_order_and_conditions(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_record **recs = NULL;
        size_t n = 99;

        assert_int_equal(state_list(s, &recs, &n), 0);
        assert_int_equal(n, 0);
        assert_null(recs);

        /* Prefixes and records without conditions next to ones with, to trip up the merge. */
        put_simple(s, "network", "b", "Ready");
        put_simple(s, "domain", "ab", NULL);
        put_simple(s, "domain", "a-b", "Ready");
        put_simple(s, "network", "a", NULL);
        put_simple(s, "domain", "a", "Ready");
        put_simple(s, "hostdev", "a", "Attached");

        static const char *const expected[][3] = {
                { "domain", "a", "Ready" },   { "domain", "a-b", "Ready" }, { "domain", "ab", NULL },
                { "hostdev", "a", "Attached" }, { "network", "a", NULL },  { "network", "b", "Ready" },
        };
        assert_int_equal(state_list(s, &recs, &n), 0);
        assert_int_equal(n, ELEMENTSOF(expected));
        for (size_t i = 0; i < n; i++) {
                assert_string_equal(recs[i]->kind, expected[i][0]);
                assert_string_equal(recs[i]->name, expected[i][1]);
                if (!expected[i][2]) {
                        assert_int_equal(recs[i]->n_conditions, 0);
                        continue;
                }
                assert_int_equal(recs[i]->n_conditions, 1);
                /* put_simple puts the record's own name in the message. */
                assert_condition(recs[i], expected[i][2], true, "Ok", expected[i][1], 1);
        }
        state_record_list_free(recs, n);
        state_close(s);
}

/* ---- transactions and failures ----------------------------------------- */

static void test_rollback_discards_puts(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_record *got = NULL;

        assert_int_equal(state_begin(s), 0);
        put_simple(s, "domain", "gone", "Ready");
        assert_int_equal(state_get(s, "domain", "gone", &got), 0);
        state_record_free(got);
        assert_int_equal(state_rollback(s), 0);
        assert_int_equal(state_get(s, "domain", "gone", &got), -ENOENT);

        assert_int_equal(state_begin(s), 0);
        put_simple(s, "domain", "kept", "Ready");
        assert_int_equal(state_commit(s), 0);
        state_close(s);

        s = open_store(path, 0);
        assert_int_equal(state_get(s, "domain", "kept", &got), 0);
        assert_int_equal(got->n_conditions, 1);
        state_record_free(got);
        assert_int_equal(state_get(s, "domain", "gone", &got), -ENOENT);
        state_close(s);
}

/* What a second connection reads of a record's last_error: the file's, not the writer's memory. */
static char *last_error_in_file(const char *path, const char *kind, const char *name) {
        state_store *reader = open_store(path, STATE_OPEN_READONLY);
        state_record *got = NULL;

        assert_int_equal(state_get(reader, kind, name, &got), 0);
        char *error = got->last_error ? strdup(got->last_error) : NULL;
        state_record_free(got);
        state_close(reader);
        return error;
}

static void assert_file_says(const char *path, const state_record *rec) {
        _cleanup_free_ char *error = last_error_in_file(path, rec->kind, rec->name);
        assert_string_equal(error, rec->last_error);
}

static void set_error(state_record *rec, const char *error) {
        assert_int_equal(vf_free_and_strdup(&rec->last_error, error), 0);
}

/*
 * A record whose last put was undone is written again by its next put,
 * however it was undone: a batch rolled back, a batch that a failed put
 * ended, the record deleted. The controller retries a rolled-back batch with
 * the records it holds, which are then ahead of the file; a store that
 * remembered what it had written would skip them.
 */
static void test_put_undone_is_made_again(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1"),
                                                   *other = full_record("domain", "vm2");
        state_store *s = open_store(path, 0);

        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_file_says(path, rec);

        set_error(rec, "rolled back");
        assert_int_equal(state_begin(s), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_rollback(s), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_file_says(path, rec);

        set_error(rec, "ended by a failed put");
        assert_int_equal(state_begin(s), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_put(s, other), 0);
        state_fault_failing_write(s, 1);
        assert_int_equal(state_commit(s), -EIO);
        assert_int_equal(state_rollback(s), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_file_says(path, rec);

        assert_int_equal(state_delete(s, "domain", "vm1"), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_file_says(path, rec);

        /* The same key from another record: what counts is what it says. */
        _cleanup_(state_record_freep) state_record *copy = full_record("domain", "vm1");
        set_error(copy, "a copy says otherwise");
        assert_int_equal(state_put(s, copy), 0);
        assert_file_says(path, copy);
        state_close(s);
}

/*
 * Inside a transaction a put is written at the commit, and whatever reads records in the meantime
 * reads it: state_get(), state_list(), a delete, the count of records an adoption refuses to go on
 * with. Another connection sees nothing before the commit.
 */
static void test_put_in_a_batch_reads_back(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1"), *got = NULL;
        state_store *s = open_store(path, 0);
        state_record **all = NULL;
        size_t n = 0;

        assert_int_equal(state_begin(s), 0);
        set_error(rec, "first");
        assert_int_equal(state_put(s, rec), 0);
        set_error(rec, "second");
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_get(s, "domain", "vm1", &got), 0);
        assert_records_equal(got, rec);
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources"), 0);

        put_simple(s, "domain", "vm2", "Ready");
        assert_int_equal(state_list(s, &all, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(all[1]->name, "vm2");
        state_record_list_free(all, n);

        put_simple(s, "domain", "vm3", NULL);
        assert_int_equal(state_delete(s, "domain", "vm3"), 0);
        put_simple(s, "domain", "vm4", NULL);
        assert_int_equal(state_adopt_instance_id(s, "0b5e8c1a-3f2d-4c6b-9a7e-1d2c3b4a5f60"), -ENOTEMPTY);
        assert_int_equal(state_commit(s), 0);

        assert_file_says(path, rec);
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources"), 3);
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources WHERE name = 'vm3'"), 0);
        assert_int_equal(file_int(path, "SELECT count(*) FROM conditions WHERE name = 'vm2'"), 1);

        /* A rollback forgets them. */
        assert_int_equal(state_begin(s), 0);
        put_simple(s, "domain", "vm5", NULL);
        assert_int_equal(state_rollback(s), 0);
        assert_int_equal(state_get(s, "domain", "vm5", &got), -ENOENT);
        state_close(s);
}

/* Appends a condition as it is, where state_record_set_condition() would merge it or refuse it. */
static void append_raw_condition(state_record *rec, state_condition condition) {
        state_condition *c = reallocarray(rec->conditions, rec->n_conditions + 1, sizeof *c);

        assert_non_null(c);
        rec->conditions = c;
        rec->conditions[rec->n_conditions++] = condition;
}

/* A condition without a type violates NOT NULL, after the changed resource row is already written. */
static state_record *record_failing_midway(const char *kind, const char *name) {
        state_record *rec = full_record(kind, name);

        free(rec->source_file);
        rec->source_file = strdup("/changed.yaml");
        append_raw_condition(rec, (state_condition) { .reason = strdup("Untyped") });
        return rec;
}

static void test_failed_put_leaves_previous_state(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *good = full_record("domain", "vm1"), *got = NULL,
                                                   *bad = record_failing_midway("domain", "vm1"),
                                                   *bad_new = record_failing_midway("domain", "new");
        state_store *s = open_store(path, 0);

        assert_string_equal(state_last_error(s), "");
        assert_int_equal(state_put(s, good), 0);

        /* On its own: the savepoint is the whole transaction. */
        assert_int_equal(state_put(s, bad), -EINVAL);
        assert_non_null(strstr(state_last_error(s), "NOT NULL"));
        assert_int_equal(state_put(s, bad_new), -EINVAL);
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources WHERE name = 'new'"), 0);
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources WHERE source_file = '/changed.yaml'"), 0);
        assert_int_equal(state_get(s, "domain", "vm1", &got), 0);
        assert_records_equal(got, good);
        state_record_free(TAKE_PTR(got));

        /* Inside a transaction: the failed put takes the transaction with it, never half a record. */
        assert_int_equal(state_begin(s), 0);
        put_simple(s, "domain", "before", NULL);
        assert_int_equal(state_put(s, bad), 0); /* written at the commit */
        assert_int_equal(state_commit(s), -EINVAL);
        assert_non_null(strstr(state_last_error(s), "NOT NULL"));
        assert_int_equal(state_rollback(s), 0);
        put_simple(s, "domain", "after", NULL);

        assert_int_equal(file_int(path, "SELECT count(*) FROM resources WHERE source_file = '/changed.yaml'"), 0);
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources WHERE name = 'before'"), 0);
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources WHERE name = 'after'"), 1);
        assert_int_equal(state_get(s, "domain", "vm1", &got), 0);
        assert_records_equal(got, good);
        state_close(s);
}

/* An upsert would keep one of two conditions of a type: the put is refused before it writes. */
static void test_put_refuses_two_conditions_of_a_type(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1");
        state_store *s = open_store(path, 0);

        append_raw_condition(rec, (state_condition) { .type = strdup("Ready"), .status = true });
        assert_int_equal(state_put(s, rec), -EINVAL);
        assert_non_null(strstr(state_last_error(s), "two conditions of type Ready"));
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources"), 0);
        state_close(s);
}

static void test_many_records_in_one_transaction(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_record **recs = NULL;
        size_t n = 0;
        enum { N = 10000 };

        assert_int_equal(state_begin(s), 0);
        for (int i = 0; i < N; i++) {
                char name[16];
                snprintf(name, sizeof name, "vm%05d", (i * 7919) % N);
                _cleanup_(state_record_freep) state_record *rec = state_record_new(i % 2 ? "network" : "domain", name);
                assert_int_equal(state_record_set_condition(rec, "Ready", i % 3 == 0, "Ok", name, i), 0);
                rec->generation = i;
                assert_int_equal(state_put(s, rec), 0);
        }
        assert_int_equal(state_commit(s), 0);

        assert_int_equal(state_list(s, &recs, &n), 0);
        assert_int_equal(n, N);
        for (size_t i = 0; i < n; i++) {
                if (i > 0) {
                        int c = strcmp(recs[i - 1]->kind, recs[i]->kind);
                        assert_true(c < 0 || (c == 0 && strcmp(recs[i - 1]->name, recs[i]->name) < 0));
                }
                assert_int_equal(recs[i]->n_conditions, 1);
                assert_string_equal(recs[i]->conditions[0].message, recs[i]->name);
                assert_int_equal(recs[i]->conditions[0].last_transition_usec, recs[i]->generation);
                assert_int_equal(recs[i]->conditions[0].status, recs[i]->generation % 3 == 0);
        }
        state_record_list_free(recs, n);
        state_close(s);
}

/* ---- events ------------------------------------------------------------ */

/* A write as a step records it: intended, then closed with its outcome. */
static int append_event(state_store *s, const char *kind, const char *name, int64_t generation, const char *action,
                        bool ok, const char *message) {
        int64_t id;
        int r = state_intent_begin(s, kind, name, generation, action, &id);
        return r < 0 ? r : state_intent_end(s, id, ok, message);
}

static void test_events_order_and_filter(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_event *events = NULL;
        size_t n = 0;
        int64_t before = vf_now_realtime_usec();

        assert_int_equal(append_event(s, "domain", "vm1", 1, "define", true, NULL), 0);
        assert_int_equal(append_event(s, "network", "vm1", 2, "define", false, "no bridge"), 0);
        assert_int_equal(append_event(s, "domain", "vm1", 2, "start", true, "booted"), 0);
        assert_int_equal(append_event(s, "domain", "vm2", 1, "undefine", true, NULL), 0);

        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 4);
        for (size_t i = 1; i < n; i++)
                assert_true(events[i].id > events[i - 1].id);
        assert_true(events[0].time_usec >= before);
        assert_true(events[0].finished_usec >= events[0].time_usec);
        assert_string_equal(events[1].kind, "network");
        assert_int_equal(events[1].generation, 2);
        assert_string_equal(events[1].action, "define");
        assert_string_equal(events[1].outcome, "failed");
        assert_string_equal(events[1].message, "no bridge");
        assert_string_equal(events[0].outcome, "ok");
        assert_null(events[0].message);
        int64_t third = events[2].time_usec;
        state_event_list_free(events, n);

        assert_int_equal(state_event_list(s, "domain", "vm1", 0, &events, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(events[0].action, "define");
        assert_string_equal(events[1].action, "start");
        state_event_list_free(events, n);

        assert_int_equal(state_event_list(s, "domain", NULL, 0, &events, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(events[2].name, "vm2");
        state_event_list_free(events, n);

        assert_int_equal(state_event_list(s, NULL, NULL, third, &events, &n), 0);
        assert_true(n >= 2 && n <= 4);
        assert_string_equal(events[n - 1].name, "vm2");
        state_event_list_free(events, n);

        assert_int_equal(state_event_list(s, "hostdev", NULL, 0, &events, &n), 0);
        assert_int_equal(n, 0);
        assert_null(events);
        state_close(s);
}

static void assert_newest(state_store *s, const char *name, const char *const *actions, size_t n_actions,
                          const char *except_outcome, const char *action, const char *outcome) {
        _cleanup_(state_event_freep) state_event *ev = NULL;

        assert_int_equal(state_event_newest(s, "volume", name, actions, n_actions, except_outcome, &ev), 0);
        assert_string_equal(ev->kind, "volume");
        assert_string_equal(ev->name, name);
        assert_string_equal(ev->action, action);
        assert_string_equal(ev->outcome, outcome);
}

/* The newest event of any of the actions asked about, of that resource alone. */
static void test_event_newest(void **state) {
        static const char *const made[] = { "create-volume", "delete-volume", "forget" };
        static const char *const upload[] = { "upload" };
        static const char *const too_many[STATE_EVENT_NEWEST_MAX + 1] = { "a", "b", "c", "d", "e" };
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_event *ev = NULL;
        int64_t id;

        assert_int_equal(state_event_newest(s, "volume", "v1", made, ELEMENTSOF(made), NULL, &ev), -ENOENT);
        assert_int_equal(append_event(s, "volume", "v1", 1, "create-volume", true, NULL), 0);
        assert_int_equal(append_event(s, "volume", "v1", 1, "upload", false, "stream broke"), 0);
        assert_int_equal(append_event(s, "volume", "v1", 2, "delete-volume", false, "busy"), 0);
        assert_int_equal(append_event(s, "volume", "v1", 2, "resize", true, NULL), 0);
        /* Other keys: same name of another kind, another name of the same kind. */
        assert_int_equal(append_event(s, "domain", "v1", 3, "forget", true, NULL), 0);
        assert_int_equal(append_event(s, "volume", "v2", 3, "create-volume", true, NULL), 0);
        assert_int_equal(append_event(s, "volume", "v10", 3, "upload", true, NULL), 0);

        assert_newest(s, "v1", made, ELEMENTSOF(made), NULL, "delete-volume", "failed");
        assert_newest(s, "v1", made, 1, NULL, "create-volume", "ok");
        assert_newest(s, "v1", upload, ELEMENTSOF(upload), NULL, "upload", "failed");
        assert_newest(s, "v2", made, ELEMENTSOF(made), NULL, "create-volume", "ok");
        /* What failed passed over: the newest that was made. */
        assert_newest(s, "v1", made, ELEMENTSOF(made), "failed", "create-volume", "ok");

        /* An intent still open is the newest too. */
        assert_int_equal(state_intent_begin(s, "volume", "v1", 4, "forget", &id), 0);
        assert_newest(s, "v1", made, ELEMENTSOF(made), NULL, "forget", "intended");
        assert_newest(s, "v1", made, ELEMENTSOF(made), "failed", "forget", "intended");

        assert_int_equal(state_event_newest(s, "volume", "v2", upload, ELEMENTSOF(upload), NULL, &ev), -ENOENT);
        assert_int_equal(state_event_newest(s, "volume", "v3", made, ELEMENTSOF(made), NULL, &ev), -ENOENT);
        assert_int_equal(state_event_newest(s, "volume", "v1", upload, ELEMENTSOF(upload), "failed", &ev), -ENOENT);
        assert_int_equal(state_event_newest(s, "volume", "v1", made, 0, NULL, &ev), -EINVAL);
        assert_int_equal(state_event_newest(s, "volume", "v1", too_many, ELEMENTSOF(too_many), NULL, &ev), -EINVAL);
        assert_null(ev);
        state_close(s);
}

/* An intent is closed once; a closed event is never rewritten, not even by another SQLite client. */
static void test_events_closed_once(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        int64_t id;

        assert_int_equal(append_event(s, "domain", "vm1", 1, "define", true, "first"), 0);
        assert_int_equal(state_intent_begin(s, "domain", "vm1", 2, "define", &id), 0);
        assert_int_equal(state_intent_end(s, id, true, "second"), 0);
        assert_int_equal(state_intent_end(s, id, false, "again"), -ENOENT);

        sqlite3 *db = raw_open(path);
        assert_int_not_equal(sqlite3_exec(db, "UPDATE events SET message = 'rewritten'", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(raw_int(db, "SELECT count(*) FROM events WHERE message = 'rewritten'"), 0);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);

        assert_int_equal(append_event(s, "domain", "vm1", 3, "start", true, NULL), 0);
        state_close(s);
}

/*
 * What a crash in the middle of a batch leaves: the intent, committed on its own. The records put
 * before it wait for the batch's commit: they are not written again with every intent.
 */
static void test_intent_outlives_the_batch(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_record *got = NULL;
        state_event *events = NULL;
        size_t n = 0;
        int64_t id;

        assert_int_equal(state_begin(s), 0);
        put_simple(s, "domain", "before", NULL);
        assert_int_equal(state_intent_begin(s, "domain", "vm1", 1, "start", &id), 0);
        assert_int_equal(file_int(path, "SELECT count(*) FROM events"), 1);
        assert_int_equal(file_int(path, "SELECT count(*) FROM resources"), 0);
        put_simple(s, "domain", "after", NULL);
        /* The batch is still open around the intent: this is what a kill would throw away. */
        assert_int_equal(state_rollback(s), 0);

        assert_int_equal(state_get(s, "domain", "before", &got), -ENOENT);
        assert_int_equal(state_get(s, "domain", "after", &got), -ENOENT);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(events[0].outcome, "intended");
        assert_int_equal(events[0].finished_usec, 0);
        state_event_list_free(events, n);

        /* Its outcome travels with the next batch: a kill before its commit leaves the intent open... */
        assert_int_equal(state_begin(s), 0);
        assert_int_equal(state_intent_end(s, id, true, NULL), 0);
        assert_int_equal(state_rollback(s), 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_string_equal(events[0].outcome, "intended");
        state_event_list_free(events, n);
        bool open = false;
        assert_int_equal(state_intent_any_open(s, &open), 0);
        assert_true(open);

        /* ...and its commit closes it. */
        assert_int_equal(state_begin(s), 0);
        assert_int_equal(state_intent_end(s, id, true, NULL), 0);
        assert_int_equal(state_commit(s), 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_string_equal(events[0].outcome, "ok");
        state_event_list_free(events, n);

        /* A failure is committed at once: an open intent would say the write may have been made. */
        assert_int_equal(state_intent_begin(s, "domain", "vm1", 1, "define", &id), 0);
        assert_int_equal(state_begin(s), 0);
        assert_int_equal(state_intent_end(s, id, false, "refused"), 0);
        assert_int_equal(state_rollback(s), 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(events[1].action, "define");
        assert_string_equal(events[1].outcome, "failed");
        state_event_list_free(events, n);
        state_close(s);
}

static void assert_event(const state_event *ev, const char *action, const char *outcome, const char *message) {
        assert_string_equal(ev->action, action);
        assert_string_equal(ev->outcome, outcome);
        if (message)
                assert_string_equal(ev->message, message);
}

static bool any_open_intent(state_store *s) {
        bool open = false;
        assert_int_equal(state_intent_any_open(s, &open), 0);
        return open;
}

/*
 * A killed run's intents: redone later means not done, left alone means the reconcile found it done,
 * and so does a later attempt that failed (libvirt refused a start the killed one had made).
 */
static void test_intents_resolved(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_event *events = NULL;
        size_t n = 0;
        int64_t id;

        assert_int_equal(state_intent_begin(s, "domain", "vm1", 1, "define", &id), 0);
        assert_int_equal(state_intent_begin(s, "domain", "vm1", 1, "start", &id), 0);
        assert_int_equal(state_intent_begin(s, "domain", "vm2", 1, "start", &id), 0);
        state_close(s);

        s = open_store(path, 0);
        assert_true(any_open_intent(s));
        assert_int_equal(append_event(s, "domain", "vm1", 1, "start", true, NULL), 0);
        assert_int_equal(append_event(s, "domain", "vm2", 1, "start", false, "domain is already running"), 0);
        assert_int_equal(state_intent_resolve(s, "domain", "vm1"), 0);
        assert_true(any_open_intent(s)); /* vm2's */
        assert_int_equal(state_intent_resolve(s, "domain", "vm2"), 0);
        assert_false(any_open_intent(s));
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 5);
        assert_event(&events[0], "define", "unknown", "interrupted; found done");
        assert_event(&events[1], "start", "unknown", "interrupted; not done");
        assert_true(events[1].finished_usec > 0);
        assert_event(&events[2], "start", "unknown", "interrupted; found done");
        assert_event(&events[3], "start", "ok", NULL);
        assert_event(&events[4], "start", "failed", "domain is already running");
        state_event_list_free(events, n);
        state_close(s);
}

static void test_trim_keeps_open_intents(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_event *events = NULL;
        size_t n = 0;
        int64_t id;

        assert_int_equal(state_intent_begin(s, "domain", "open", 1, "start", &id), 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(append_event(s, "domain", "vm", i, "define", true, NULL), 0);
        /* By count: the 4 newest ids stay, and the open intent whatever its place. */
        assert_int_equal(state_event_trim(s, 0, 4), 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 5);
        assert_string_equal(events[0].name, "open");
        assert_int_equal(events[1].generation, 6);
        state_event_list_free(events, n);

        /* By age: everything closed is older than the future, but the newest stays, for its id. */
        assert_int_equal(state_event_trim(s, vf_now_realtime_usec() + 1000000, 1000), 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(events[0].outcome, "intended");
        assert_int_equal(events[1].generation, 9);
        int64_t newest = events[1].id;
        state_event_list_free(events, n);

        /* An id is never handed out twice: the next follows the newest ever written. */
        assert_int_equal(state_event_trim(s, vf_now_realtime_usec() + 1000000, 0), 0);
        assert_int_equal(state_intent_begin(s, "domain", "next", 1, "start", &id), 0);
        assert_int_equal(id, newest + 1);
        state_close(s);
}

/*
 * An intent's commit is paid at every write to libvirt: it writes the event's row and its two
 * indexes, no more (an index on time and AUTOINCREMENT's counter were a page each).
 */
static void test_intent_commit_pages(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        int64_t id;

        for (int i = 0; i < 20; i++)
                assert_int_equal(append_event(s, "domain", "vm", i, "define", true, NULL), 0);
        off_t before = wal_size(path);
        assert_int_equal(state_intent_begin(s, "domain", "vm", 20, "define", &id), 0);
        /* A frame is a page and its 24-byte header. */
        assert_int_equal((wal_size(path) - before) % (4096 + 24), 0);
        assert_int_equal((wal_size(path) - before) / (4096 + 24), 3);
        state_close(s);
}

/* By age, a trim keeps what was written from the first event young enough on. */
static void test_trim_by_age_in_log_order(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        state_event *events = NULL;
        size_t n = 0;

        for (int i = 0; i < 6; i++)
                assert_int_equal(append_event(s, "domain", "vm", i, "define", true, NULL), 0);
        sqlite3 *db = raw_open(path);
        raw_exec(db, "DROP TRIGGER events_closed_once; UPDATE events SET time_usec = 1000 * id");
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        assert_int_equal(state_event_trim(s, 3001, 1000), 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(events[0].generation, 3);
        state_event_list_free(events, n);
        state_close(s);
}

/* ---- read-only opens --------------------------------------------------- */

static void test_readonly_missing_file(void **state) {
        _cleanup_free_ char *dir = path_in(state, "x"), *path = path_in(state, "x/state.db");
        _cleanup_(state_record_freep) state_record *rec = state_record_new("domain", "vm1");
        state_store *s = open_store(path, STATE_OPEN_READONLY);
        state_record **recs = NULL;
        state_event *events = NULL;
        size_t n = 99;
        struct stat st;

        assert_uuid_v4(state_instance_id(s));
        assert_int_equal(state_list(s, &recs, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(state_put(s, rec), -EROFS);
        assert_int_equal(append_event(s, "domain", "vm1", 1, "define", true, NULL), -EROFS);
        state_close(s);

        assert_int_equal(stat(path, &st), -1);
        assert_int_equal(stat(dir, &st), -1);
        assert_int_equal(errno, ENOENT);
}

static void test_readonly_never_writes(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        _cleanup_(state_record_freep) state_record *rec = full_record("domain", "vm1"), *got = NULL;
        state_record **recs = NULL;
        size_t n = 0;

        state_store *s = open_store(path, 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(append_event(s, "domain", "vm1", 1, "define", true, NULL), 0);
        _cleanup_free_ char *id = strdup(state_instance_id(s));
        state_close(s);

        file_snapshot before = snapshot_file(path);
        s = open_store(path, STATE_OPEN_READONLY);
        assert_string_equal(state_instance_id(s), id);
        assert_int_equal(state_get(s, "domain", "vm1", &got), 0);
        assert_records_equal(got, rec);
        assert_int_equal(state_put(s, rec), -EROFS);
        assert_int_equal(state_delete(s, "domain", "vm1"), -EROFS);
        assert_int_equal(append_event(s, "domain", "vm1", 2, "start", true, NULL), -EROFS);
        assert_int_equal(state_list(s, &recs, &n), 0);
        assert_int_equal(n, 1);
        state_record_list_free(recs, n);
        state_close(s);
        assert_file_unchanged(path, &before);
}

static void test_readonly_reads_while_writer_is_open(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *writer = open_store(path, 0), *reader = NULL;
        state_record *got = NULL;

        put_simple(writer, "domain", "vm1", "Ready");
        reader = open_store(path, STATE_OPEN_READONLY);
        assert_int_equal(state_get(reader, "domain", "vm1", &got), 0);
        state_record_free(got);

        /* WAL: a writer's open transaction does not block the reader, which sees the last commit. */
        assert_int_equal(state_begin(writer), 0);
        put_simple(writer, "domain", "vm2", NULL);
        assert_int_equal(state_get(reader, "domain", "vm2", &got), -ENOENT);
        assert_int_equal(state_commit(writer), 0);
        assert_int_equal(state_get(reader, "domain", "vm2", &got), 0);
        state_record_free(got);

        state_close(reader);
        state_close(writer);
}

/* An older schema is migrated in a private copy, never in the file. */
static void test_readonly_older_schema(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_record **recs = NULL;
        size_t n = 99;

        _cleanup_free_ char *sql = vf_printf("PRAGMA application_id = %d", APPLICATION_ID);
        sqlite3 *db = raw_open(path);
        raw_exec(db, sql); /* ours, but at user_version 0 */
        assert_int_equal(sqlite3_close(db), SQLITE_OK);

        file_snapshot before = snapshot_file(path);
        state_store *s = open_store(path, STATE_OPEN_READONLY);
        assert_uuid_v4(state_instance_id(s));
        assert_int_equal(state_list(s, &recs, &n), 0);
        assert_int_equal(n, 0);
        state_close(s);
        assert_file_unchanged(path, &before);
        assert_int_equal(file_int(path, "PRAGMA user_version"), 0);

        state_close(open_store(path, 0));
        assert_int_equal(file_int(path, "PRAGMA user_version"), SCHEMA_VERSION);
}

/* What a reader in a private mount namespace, with dir mounted read-only, makes of path: 0, or why not. */
static int read_on_readonly_mount(const char *dir, const char *path) {
        /* "none": the kernel ignores the type of these, and valgrind wants a string. */
        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount(dir, dir, "none", MS_BIND, NULL) < 0 ||
            mount("none", dir, "none", MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
                return 2;
        _cleanup_free_ char *probe = vf_printf("%s/probe", dir);
        if (mkdir(probe, 0700) >= 0 || errno != EROFS)
                return 3;

        state_store *s = NULL;
        state_record *got = NULL;
        _cleanup_free_ char *errmsg = NULL;
        if (state_open(path, STATE_OPEN_READONLY | STATE_OPEN_EXISTING, &s, &errmsg) < 0) {
                fprintf(stderr, "%s\n", errmsg);
                return 4;
        }
        int r = state_get(s, "domain", "vm1", &got);
        state_record_free(got);
        state_close(s);
        return r < 0 ? 5 : 0;
}

/* status on a read-only mount, or a read-only copy: root ignores mode bits, a read-only mount it cannot. */
static void test_readonly_on_readonly_mount(void **state) {
        fixture *f = *state;
        char dir[PATH_MAX], path[PATH_MAX]; /* not on the heap, which the child would leave behind when it exits */
        int status;

        snprintf(dir, sizeof dir, "%s/ro", f->dir);
        snprintf(path, sizeof path, "%s/ro/state.db", f->dir);
        state_store *s = open_store(path, 0);
        put_simple(s, "domain", "vm1", "Ready");
        state_close(s); /* a clean close removes the -wal and -shm */

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(read_on_readonly_mount(dir, path));
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 2)
                th_skip("cannot mount in a private namespace (CAP_SYS_ADMIN)");
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- files that are not ours ------------------------------------------- */

static void assert_refused_both_ways(const char *path, int r, const char *needle) {
        file_snapshot before = snapshot_file(path);

        assert_open_refused(path, 0, r, needle);
        assert_open_refused(path, STATE_OPEN_READONLY, r, needle);
        assert_file_unchanged(path, &before);
}

static void test_foreign_database_refused(void **state) {
        _cleanup_free_ char *path = path_in(state, "foreign.db"), *plain = path_in(state, "plain.db");

        sqlite3 *db = raw_open(path);
        raw_exec(db, "PRAGMA application_id = 305419896; CREATE TABLE t (x); INSERT INTO t VALUES (42);");
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        assert_refused_both_ways(path, -EBADMSG, "is not a virtform state file (application_id 0x12345678)");

        /* No application_id at all, but somebody's tables: not empty, so not ours either. */
        db = raw_open(plain);
        raw_exec(db, "CREATE TABLE resources (x);");
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        assert_refused_both_ways(plain, -EBADMSG, "application_id 0x00000000");
}

static void test_garbage_file_refused(void **state) {
        _cleanup_free_ char *small = path_in(state, "small.db"), *large = path_in(state, "large.db");
        char buf[3 * 4096];

        write_file(small, "hello, world\n", 13);
        assert_refused_both_ways(small, -EBADMSG, "not an SQLite database");

        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (char) (i * 31 + 7);
        write_file(large, buf, sizeof buf);
        assert_refused_both_ways(large, -EBADMSG, "Move it away or pass --state with another path.");
}

static void test_newer_schema_refused(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");

        state_close(open_store(path, 0));
        sqlite3 *db = raw_open(path);
        raw_exec(db, "PRAGMA user_version = 99");
        assert_int_equal(sqlite3_close(db), SQLITE_OK);

        assert_refused_both_ways(path, -EPROTONOSUPPORT,
                                 "newer virtform (schema version 99, this one knows up to 9); refusing to touch "
                                 "it. Run that virtform or a later one");
}

/* Page 2 onwards hold the tables: scribble over the last page, where the last records are. */
static void scribble_last_page(const char *path) {
        char junk[4096];
        struct stat st;

        memset(junk, 0xa5, sizeof junk);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(st.st_size >= 3 * 4096);
        assert_int_equal(pwrite(fd, junk, sizeof junk, st.st_size - 4096), (ssize_t) sizeof junk);
}

static void put_many(const char *path, int n) {
        state_store *s = open_store(path, 0);
        for (int i = 0; i < n; i++) {
                char name[16];
                snprintf(name, sizeof name, "vm%03d", i);
                put_simple(s, "domain", name, "Ready");
        }
        state_close(s);
}

/*
 * The whole file is checked when it pays: after a writer did not close it (killed, or the host went down),
 * and on demand. A clean open reads only what it needs, so that it costs the same with a large file.
 */
/* Opens a writer that is killed before it closes the store, as by a crash or a power cut. */
static void kill_writer(const char *path, const char *record) {
        int status;

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                state_store *s = NULL;
                _cleanup_(state_record_freep) state_record *rec = state_record_new("domain", record ? record : "-");
                if (state_open(path, 0, &s, NULL) < 0 || (record && state_put(s, rec) < 0))
                        _exit(1);
                raise(SIGKILL);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
}

static void test_corrupt_database_refused(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");

        put_many(path, 200);
        scribble_last_page(path);
        kill_writer(path, NULL);
        file_snapshot before = snapshot_file(path);
        assert_open_refused(path, 0, -EBADMSG, "failed SQLite's integrity check");
        assert_open_refused(path, STATE_OPEN_CHECK, -EBADMSG, "failed SQLite's integrity check");
        assert_file_unchanged(path, &before);
}

static void test_check_on_demand(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");

        put_many(path, 200);
        scribble_last_page(path);
        state_close(open_store(path, 0)); /* closed cleanly: no reason to read it all */
        assert_open_refused(path, STATE_OPEN_CHECK, -EBADMSG, "failed SQLite's integrity check");
}

/* A writer that is killed leaves its mark; one that closes clears it, and the mark outlives a lost -wal. */
static void test_lost_wal_refused(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db"), *wal = path_in(state, "state.db-wal");
        state_record *got = NULL;
        struct stat st;

        /* Killed with its -wal intact: the next writer checks the file and has every commit. */
        put_many(path, 1);
        kill_writer(path, "kept");
        assert_int_equal(stat(wal, &st), 0);
        state_store *s = open_store(path, 0);
        assert_int_equal(state_get(s, "domain", "kept", &got), 0);
        state_record_free(TAKE_PTR(got));
        state_close(s);

        /* The same crash, and then its -wal is deleted: refused, and again (the refusal hides nothing). */
        kill_writer(path, "gone");
        assert_int_equal(unlink(wal), 0);
        _cleanup_free_ char *hint = vf_printf("write-ahead log %s is gone", wal);
        assert_open_refused(path, 0, -EBADMSG, hint);
        assert_open_refused(path, 0, -EBADMSG, "run 'virtform state check --state");

        /* Checked on demand, what is left is accepted, and the store is clean again. */
        state_close(open_store(path, STATE_OPEN_CHECK));
        s = open_store(path, 0);
        assert_int_equal(state_get(s, "domain", "gone", &got), -ENOENT);
        assert_int_equal(state_get(s, "domain", "kept", &got), 0);
        state_record_free(TAKE_PTR(got));
        state_close(s);
}

/* SQLite's unlink(), which the test takes over: the process dies right after the -wal is removed. */
static sqlite3_syscall_ptr real_unlink;

static int unlink_then_die(const char *path) {
        int r = ((int (*)(const char *)) real_unlink)(path);
        size_t len = strlen(path);
        if (r == 0 && len > 4 && strcmp(path + len - 4, "-wal") == 0)
                raise(SIGKILL);
        return r;
}

/*
 * A writer killed as it closes, after SQLite wrote the -wal back into the file and removed it, lost
 * nothing: the next writer opens the store, every commit in it, rather than calling the -wal lost.
 */
static void test_writer_killed_closing_lost_nothing(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db"), *wal = path_in(state, "state.db-wal");
        state_record *got = NULL;
        struct stat st;
        int status;

        put_many(path, 1);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                state_store *s = NULL;
                _cleanup_(state_record_freep) state_record *rec = state_record_new("domain", "closing");
                sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
                if (state_open(path, 0, &s, NULL) < 0 || state_put(s, rec) < 0)
                        _exit(1);
                real_unlink = vfs->xGetSystemCall(vfs, "unlink");
                if (!real_unlink || vfs->xSetSystemCall(vfs, "unlink", (sqlite3_syscall_ptr) unlink_then_die) != SQLITE_OK)
                        _exit(1);
                state_close(s);
                _exit(2); /* closed without removing the -wal: the test proves nothing */
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(stat(wal, &st), -1);

        state_store *s = open_store(path, 0);
        assert_int_equal(state_get(s, "domain", "closing", &got), 0);
        state_record_free(got);
        state_close(s);
}

/* An empty file is a state that was lost, never a new one: a new store is renamed into place whole. */
static void test_empty_file_refused(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        struct stat st;

        write_file(path, "", 0);
        assert_open_refused(path, 0, -EBADMSG, "is empty: the state was lost or truncated; restore it from a backup");
        assert_open_refused(path, STATE_OPEN_READONLY, -EBADMSG, "is empty");
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, 0);
}

/*
 * Only recover makes a store in place of an empty file, not while the lost
 * store's -wal is beside it, and only once the new store is published.
 */
static void test_recover_replaces_empty_file(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db"), *wal = path_in(state, "state.db-wal"),
                            *building = path_in(state, "state.db.new"), *err = NULL;
        _cleanup_(state_record_freep) state_record *rec = state_record_new("network", "lan"), *got = NULL;
        file_snapshot before;
        struct stat st;

        write_file(path, "", 0);
        write_file(wal, "frames", 6);
        assert_open_refused(path, STATE_OPEN_RECOVER, -EEXIST, "is empty but its write-ahead log");
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, 0);
        assert_int_equal(unlink(wal), 0);

        /* Filled beside the lost file, which stays as it was until the new store is published. */
        before = snapshot_file(path);
        state_store *s = open_store(path, STATE_OPEN_RECOVER);
        assert_int_equal(state_put(s, rec), 0);
        state_close(s);
        assert_file_unchanged(path, &before);
        assert_no_sqlite_files(building);

        s = open_store(path, STATE_OPEN_RECOVER);
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_publish(s, &err), 0);
        state_close(s);
        assert_no_sqlite_files(building);
        s = open_store(path, STATE_OPEN_READONLY | STATE_OPEN_EXISTING);
        assert_int_equal(state_get(s, "network", "lan", &got), 0);
        state_close(s);
}

/* A lost store's instance id is taken over only by a store that owns nothing yet, and kept across opens. */
static void test_adopt_instance_id(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        static const char lost[] = "5a0e7c1e-0d7b-4a51-9c3e-2f4d6b8a9e10";
        _cleanup_(state_record_freep) state_record *rec = state_record_new("network", "lan");
        _cleanup_(state_device_freep) state_device *dev = state_device_new("0000:03:10.0");
        state_store *s = open_store(path, 0);

        assert_int_equal(state_adopt_instance_id(s, "not-a-uuid"), -EINVAL);
        assert_int_equal(state_adopt_instance_id(s, "5A0E7C1E-0D7B-4A51-9C3E-2F4D6B8A9E10"), -EINVAL);
        assert_int_equal(state_adopt_instance_id(s, lost), 0);
        assert_string_equal(state_instance_id(s), lost);
        state_close(s);
        s = open_store(path, 0);
        assert_string_equal(state_instance_id(s), lost);

        assert_int_equal(state_device_put(s, dev), 0);
        assert_int_equal(state_adopt_instance_id(s, "6b1f8d2f-1e8c-4b62-8d4f-3a5e7c9bafe1"), -ENOTEMPTY);
        assert_int_equal(state_device_delete(s, dev->bdf), 0);
        assert_int_equal(state_put(s, rec), 0);
        assert_int_equal(state_adopt_instance_id(s, "6b1f8d2f-1e8c-4b62-8d4f-3a5e7c9bafe1"), -ENOTEMPTY);
        assert_string_equal(state_instance_id(s), lost);
        state_close(s);
}

/* ---- the single-instance lock ------------------------------------------ */

/* flock(2) locks belong to an open file description: a second open in this process stands for another process. */
static void test_second_writer_refused(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db"), *lock = path_in(state, "state.db.lock");
        _cleanup_free_ char *holder = vf_printf("in use by PID %d (", (int) getpid());
        state_record *got = NULL;

        state_store *writer = open_store(path, 0);
        put_simple(writer, "domain", "vm1", "Ready");

        int64_t start = vf_now_monotonic_usec();
        assert_open_refused(path, 0, -EBUSY, holder);
        assert_open_refused(path, 0, -EBUSY, "test-state");
        /* At once, not after SQLite's busy timeout. */
        assert_true(vf_now_monotonic_usec() - start < 2 * 1000000);

        state_store *reader = open_store(path, STATE_OPEN_READONLY);
        assert_int_equal(state_get(reader, "domain", "vm1", &got), 0);
        state_record_free(got);
        state_close(reader);

        state_close(writer);
        struct stat st;
        assert_int_equal(stat(lock, &st), 0);
        assert_int_equal(st.st_size, 0); /* no stale holder once it is free */
        state_close(open_store(path, 0));
}

/* A new store's creation is locked too: the second writer waits for nothing half made. */
static void test_second_writer_refused_on_a_new_store(void **state) {
        _cleanup_free_ char *path = path_in(state, "new/state.db");

        state_store *writer = open_store(path, 0);
        assert_open_refused(path, 0, -EBUSY, "in use by PID");
        state_close(writer);
}

/* ---- what a state path may be -------------------------------------------- */

static void test_not_a_file_refused(void **state) {
        _cleanup_free_ char *dir = path_in(state, "dir"), *fifo = path_in(state, "fifo"),
                            *link = path_in(state, "link.db"), *target = path_in(state, "target.db");

        assert_int_equal(mkdir(dir, 0700), 0);
        assert_open_refused(dir, 0, -EISDIR, "is a directory: point --state at the state file");
        assert_open_refused(dir, STATE_OPEN_READONLY, -EISDIR, "is a directory");

        /* Opening a FIFO would block, and SQLite would make a journal beside it. */
        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_open_refused(fifo, 0, -EINVAL, "is not a regular file");
        assert_open_refused(fifo, STATE_OPEN_READONLY, -EINVAL, "is not a regular file");
        static const char *const sqlite_files[] = { "-journal", "-wal", "-shm" };
        for (size_t i = 0; i < ELEMENTSOF(sqlite_files); i++) {
                _cleanup_free_ char *side = vf_printf("%s%s", fifo, sqlite_files[i]);
                assert_int_equal(access(side, F_OK), -1);
        }

        state_close(open_store(target, 0));
        assert_int_equal(symlink(target, link), 0);
        assert_open_refused(link, 0, -ELOOP, "is a symlink: point --state at the real file");
        assert_open_refused(link, STATE_OPEN_READONLY, -ELOOP, "is a symlink");
}

/* A writer's file is its own and private, in a directory nobody else can write. */
static void test_unsafe_file_refused(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db"), *shared = path_in(state, "shared"),
                            *in_shared = path_in(state, "shared/state.db");

        state_close(open_store(path, 0));
        assert_int_equal(chmod(path, 0644), 0);
        _cleanup_free_ char *chmod_hint = vf_printf("is open to group or others (mode 0644); run 'chmod 600 %s'", path);
        assert_open_refused(path, 0, -EPERM, chmod_hint);
        state_close(open_store(path, STATE_OPEN_READONLY)); /* reading is harmless */
        assert_int_equal(chmod(path, 0600), 0);

        assert_int_equal(mkdir(shared, 0700), 0);
        assert_int_equal(chmod(shared, 01777), 0);
        assert_open_refused(in_shared, 0, -EPERM, "is writable by group or others (mode 1777)");
        assert_int_equal(access(in_shared, F_OK), -1);
}

/*
 * A directory anywhere above the state file that another user can change
 * lets them rename the path away and put their own in its place.
 */
static void test_unsafe_ancestor_refused(void **state) {
        if (geteuid() != 0)
                th_skip("only root can give a directory away");
        _cleanup_free_ char *shared = path_in(state, "shared"), *mine = path_in(state, "shared/mine"),
                            *path = path_in(state, "shared/mine/state.db"), *alias = path_in(state, "alias"),
                            *via_alias = path_in(state, "alias/state.db");

        assert_int_equal(mkdir(shared, 0700), 0);
        assert_int_equal(mkdir(mine, 0700), 0);
        assert_int_equal(chown(shared, 65534, 65534), 0);
        assert_int_equal(chmod(shared, 0775), 0);
        _cleanup_free_ char *hint = vf_printf("its ancestor directory %s is owned by uid 65534, not root, and writable "
                                              "by group or others (mode 0775); run 'chown root %s && chmod go-w %s'",
                                              shared, shared, shared);
        assert_open_refused(path, 0, -EPERM, hint);
        assert_int_equal(access(path, F_OK), -1);
        /* The directories checked are the real ones, not the names on the way. */
        assert_int_equal(symlink(mine, alias), 0);
        assert_open_refused(via_alias, 0, -EPERM, hint);

        /* Its owner can rename what is in it, whatever the mode. */
        assert_int_equal(chmod(shared, 0755), 0);
        assert_open_refused(path, 0, -EPERM, "is owned by uid 65534, not root; run");
        /* The sticky bit protects an entry from other users only in a directory of root's, as /tmp. */
        assert_int_equal(chmod(shared, 01777), 0);
        assert_open_refused(path, 0, -EPERM, "is owned by uid 65534, not root, and writable by group or others "
                                             "(mode 1777)");
        assert_int_equal(access(path, F_OK), -1);

        assert_int_equal(chown(shared, 0, 0), 0);
        assert_int_equal(chmod(shared, 01777), 0); /* chown cleared the sticky bit */
        state_close(open_store(path, 0));
        /* Reading is harmless: the checks are a writer's. */
        assert_int_equal(chown(shared, 65534, 65534), 0);
        state_close(open_store(path, STATE_OPEN_READONLY));
}

/* Another user's store, even a valid one, is not adopted. */
static void test_other_users_store_refused(void **state) {
        if (geteuid() != 0)
                th_skip("only root can give a file away");
        _cleanup_free_ char *path = path_in(state, "state.db");

        state_close(open_store(path, 0));
        assert_int_equal(chown(path, 4242, 4242), 0);
        file_snapshot before = snapshot_file(path);
        assert_open_refused(path, 0, -EPERM, "belongs to uid 4242, not to uid 0");
        assert_file_unchanged(path, &before);
}

static void test_default_path(void **state) {
        _cleanup_free_ char *path = NULL;

        if (geteuid() == 0) {
                path = state_default_path();
                assert_string_equal(path, "/var/lib/virtform/state.db");
                return;
        }
        assert_int_equal(setenv("XDG_STATE_HOME", "/xdg", 1), 0);
        path = state_default_path();
        assert_string_equal(path, "/xdg/virtform/state.db");
        free(path);
        assert_int_equal(unsetenv("XDG_STATE_HOME"), 0);
        assert_int_equal(setenv("HOME", "/home/u", 1), 0);
        path = state_default_path();
        assert_string_equal(path, "/home/u/.local/state/virtform/state.db");
}

/* ---- devices ----------------------------------------------------------- */

static void test_device_roundtrip_and_delete(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        _cleanup_(state_device_freep) state_device *dev = state_device_new("0000:3b:02.1");
        state_device *got = NULL;

        assert_int_equal(state_device_get(s, "0000:3b:02.1", &got), -ENOENT);
        dev->pf = strdup("0000:3b:00.0");
        dev->pf_netdev = strdup("enp59s0f0");
        dev->vf_index = 3;
        dev->saved = true;
        dev->saved_admin_mac = strdup("52:54:00:aa:bb:cc");
        dev->saved_vlan = 42;
        dev->bind_phase = strdup("bound");
        assert_int_equal(state_device_put(s, dev), 0);

        assert_int_equal(state_device_get(s, "0000:3b:02.1", &got), 0);
        assert_string_equal(got->pf, "0000:3b:00.0");
        assert_string_equal(got->pf_netdev, "enp59s0f0");
        assert_int_equal(got->vf_index, 3);
        assert_true(got->saved);
        assert_string_equal(got->saved_admin_mac, "52:54:00:aa:bb:cc");
        assert_int_equal(got->saved_vlan, 42);
        assert_null(got->saved_own_mac);
        assert_int_equal(got->saved_vf_index, -1);
        assert_string_equal(got->bind_phase, "bound");
        assert_true(got->updated_usec > 0);
        state_device_free(got);

        assert_int_equal(state_device_delete(s, "0000:3b:02.1"), 0);
        assert_int_equal(state_device_get(s, "0000:3b:02.1", &got), -ENOENT);
        state_close(s);
}

/* What state_flush() commits survives a rollback of the transaction that follows it. */
static void test_flush_makes_writes_durable(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        _cleanup_(state_device_freep) state_device *dev = state_device_new("0000:3b:02.1");
        state_device *got = NULL;

        assert_int_equal(state_begin(s), 0);
        dev->saved = true;
        assert_int_equal(state_device_put(s, dev), 0);
        assert_int_equal(state_flush(s), 0);
        assert_int_equal(state_device_delete(s, "0000:3b:02.1"), 0);
        assert_int_equal(state_rollback(s), 0);
        assert_int_equal(state_device_get(s, "0000:3b:02.1", &got), 0);
        assert_true(got->saved);
        state_device_free(got);
        /* Outside a transaction it is a no-op. */
        assert_int_equal(state_flush(s), 0);
        state_close(s);
}

/* ---- checkpoints (state/checkpoint.c) --------------------------------------------------------- */

/* SQLite's page size for a new file, and what each page costs in the -wal. */
#define PAGE_SIZE 4096
#define WAL_FRAME_SIZE (24 + PAGE_SIZE)

static long wal_pages(const char *path) {
        return (long) ((wal_size(path) - 32) / WAL_FRAME_SIZE);
}

/* When the main file was last written: in WAL mode, only a checkpoint writes it. */
static struct timespec main_written(const char *path) {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_mtim;
}

static bool same_time(struct timespec a, struct timespec b) {
        return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* A record whose XML takes several pages, so that the -wal grows by pages per commit, not bytes. */
static void put_large(state_store *s, unsigned i) {
        char name[16];
        snprintf(name, sizeof name, "vm%05u", i);
        _cleanup_(state_record_freep) state_record *rec = state_record_new("domain", name);

        assert_non_null(rec);
        rec->applied_desired_xml = malloc(8 * PAGE_SIZE);
        assert_non_null(rec->applied_desired_xml);
        memset(rec->applied_desired_xml, 'x', 8 * PAGE_SIZE - 1);
        rec->applied_desired_xml[8 * PAGE_SIZE - 1] = 0;
        assert_int_equal(state_put(s, rec), 0);
}

/* Puts large records until the -wal holds pages pages; bounded, so that a -wal that starts over fails. */
static void put_until_wal_holds(state_store *s, const char *path, long pages, unsigned *n) {
        for (unsigned bound = *n + (unsigned) pages / 8; wal_pages(path) < pages; (*n)++) {
                assert_true(*n < bound);
                put_large(s, *n);
        }
}

/* The records of the main file alone, as a copy without its -wal shows them. */
static int64_t records_in_main_file(void **state, const char *path) {
        _cleanup_free_ char *copy = path_in(state, "main-only.db");

        th_copy_file(path, copy);
        int64_t n = file_int(copy, "SELECT count(*) FROM resources");
        assert_int_equal(unlink(copy), 0);
        return n;
}

/*
 * Commits leave the main file alone below the cap; the writer, idle, writes the -wal back once SQLite's
 * 1000 pages have gathered, and not before: each time the -wal starts over costs a commit one fsync.
 */
static void test_checkpoint_waits_for_an_idle_writer(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        struct timespec before = main_written(path);
        unsigned n = 0;

        put_until_wal_holds(s, path, 500, &n);
        assert_int_equal(state_checkpoint(s), 0);
        assert_true(same_time(main_written(path), before));
        put_until_wal_holds(s, path, 1100, &n);
        assert_true(same_time(main_written(path), before));
        assert_int_equal(records_in_main_file(state, path), 0);

        assert_int_equal(state_begin(s), 0);
        assert_int_equal(state_checkpoint(s), -EBUSY);
        assert_int_equal(state_rollback(s), 0);
        assert_int_equal(state_checkpoint(s), 0);
        assert_int_equal(records_in_main_file(state, path), n);

        /* The -wal starts over at the next commit: as many pages again are written back again. */
        for (unsigned first = n; n < 2 * first; n++)
                put_large(s, n);
        assert_int_equal(state_checkpoint(s), 0);
        assert_int_equal(records_in_main_file(state, path), n);
        state_close(s);
}

/*
 * A reader reading across each commit keeps the -wal from starting over. Under SQLite's own rule every
 * commit past 1000 pages then checkpoints, two fsyncs each; here one commit per cap's worth of pages does.
 */
static void test_a_busy_reader_costs_no_checkpoint_per_commit(void **state) {
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_store *s = open_store(path, 0);
        sqlite3 *reader = raw_open(path);
        struct timespec last = main_written(path);
        unsigned checkpoints = 0, n = 0;

        for (unsigned bound = 10000 / 8; wal_pages(path) < 10000;) {
                assert_true(n < bound);
                raw_exec(reader, "BEGIN");
                assert_int_equal(raw_int(reader, "SELECT count(*) FROM resources"), n);
                put_large(s, n++);
                raw_exec(reader, "COMMIT");
                struct timespec now = main_written(path);
                checkpoints += !same_time(now, last);
                last = now;
        }
        /* One per 4096 pages (checkpoint.c): two by 10000. */
        assert_int_equal(checkpoints, 2);
        assert_int_equal(sqlite3_close(reader), SQLITE_OK);
        state_close(s);
}

/*
 * tests/data/state-v1.db was written by the first release (commit c67ed15,
 * schema version 1), never by today's code: its build applied examples/ to
 * test:///default, then again with web1's memory changed and a domain
 * "broken" waiting for a network that does not exist. Its tables as they
 * were, each row one line of the columns version 1 had.
 */
static const char *const v1_tables[] = {
        "SELECT key, value FROM meta ORDER BY key",
        "SELECT kind, name, source_file, desired_hash, generation, observed_generation, uuid, applied_xml_hash, "
        "applied_desired_xml, last_error, attempts, next_retry_usec, updated_usec FROM resources ORDER BY kind, name",
        "SELECT kind, name, type, status, reason, message, last_transition_usec FROM conditions "
        "ORDER BY kind, name, type",
        "SELECT id, time_usec, kind, name, generation, action, outcome, message FROM events ORDER BY id",
};

static char *dump_v1_tables(const char *path) {
        sqlite3 *db = raw_open(path);
        vf_buf b = {};

        for (size_t t = 0; t < ELEMENTSOF(v1_tables); t++) {
                sqlite3_stmt *st = NULL;
                assert_int_equal(sqlite3_prepare_v2(db, v1_tables[t], -1, &st, NULL), SQLITE_OK);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        for (int c = 0; c < sqlite3_column_count(st); c++) {
                                const char *v = (const char *) sqlite3_column_text(st, c);
                                vf_buf_printf(&b, "%s%s", c ? "|" : "", v ? v : "NULL");
                        }
                        vf_buf_printf(&b, "\n");
                }
                sqlite3_finalize(st);
                vf_buf_printf(&b, "--\n");
        }
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        return vf_buf_steal(&b);
}

/* A store the first release wrote is migrated with every record, condition and event as it was. */
static void test_migrates_golden_version_1(void **state) {
        _cleanup_free_ char *golden = vf_printf("%s/state-v1.db", getenv("VIRTFORM_TEST_DATA"));
        _cleanup_free_ char *path = path_in(state, "state.db");

        th_copy_file(golden, path);
        assert_int_equal(file_int(path, "PRAGMA user_version"), 1);
        _cleanup_free_ char *before = dump_v1_tables(path);
        sqlite3 *db = raw_open(path);
        _cleanup_free_ char *instance = raw_text(db, "SELECT value FROM meta WHERE key = 'instance_id'");
        assert_int_equal(raw_int(db, "SELECT count(*) FROM resources"), 6);
        assert_int_equal(raw_int(db, "SELECT count(*) FROM conditions"), 6);
        assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 26);
        int64_t broken_since = raw_int(db, "SELECT last_transition_usec FROM conditions WHERE name = 'broken'");
        assert_int_equal(sqlite3_close(db), SQLITE_OK);

        state_store *s = open_store(path, 0);
        assert_string_equal(state_instance_id(s), instance);
        state_record **recs = NULL;
        size_t n = 0;
        assert_int_equal(state_list(s, &recs, &n), 0);
        assert_int_equal(n, 6);
        state_record_list_free(recs, n);
        state_record *broken = NULL;
        assert_int_equal(state_get(s, "domain", "broken", &broken), 0);
        assert_condition(broken, "Ready", false, "DependencyNotReady",
                         "waiting: network nowhere does not exist; declare it in a file or create it", broken_since);
        assert_int_equal(broken->attempts, 1);
        /* A record of before schema 9 names its applied document by no hash, and the document is kept. */
        assert_null(broken->applied_desired_hash);
        state_record_free(broken);
        _cleanup_free_ char *applied = NULL;
        assert_int_equal(state_applied_desired_get(s, "domain", "web1", &applied), 0);
        assert_non_null(strstr(applied, "<name>web1</name>"));
        state_event *events = NULL;
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 26);
        assert_string_equal(events[25].action, "start");
        /* Written after their writes, the old events come closed: finished when they were written. */
        for (size_t i = 0; i < n; i++)
                assert_int_equal(events[i].finished_usec, events[i].time_usec);
        state_event_list_free(events, n);
        /* The new table works, and a closed event is never rewritten. */
        _cleanup_(state_device_freep) state_device *dev = state_device_new("0000:00:01.0");
        assert_int_equal(state_device_put(s, dev), 0);
        const state_file_error error = { .file = "/etc/a.yaml", .line = 1, .column = 1, .message = "m", .n_errors = 1 };
        assert_int_equal(state_file_errors_set(s, &error, 1), 0);
        state_close(s);

        assert_int_equal(file_int(path, "PRAGMA user_version"), SCHEMA_VERSION);
        _cleanup_free_ char *after = dump_v1_tables(path);
        assert_string_equal(after, before);
        db = raw_open(path);
        assert_int_equal(sqlite3_exec(db, "UPDATE events SET outcome = 'failed'", NULL, NULL, NULL), SQLITE_CONSTRAINT);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/*
 * A log whose newest events a trim had deleted hands out no id twice once AUTOINCREMENT is gone: the
 * migration writes its own event after the highest id handed out.
 */
static void test_migration_keeps_ids_unique(void **state) {
        _cleanup_free_ char *golden = vf_printf("%s/state-v1.db", getenv("VIRTFORM_TEST_DATA"));
        _cleanup_free_ char *path = path_in(state, "state.db");
        state_event *events = NULL;
        size_t n = 0;
        int64_t id;

        th_copy_file(golden, path);
        sqlite3 *db = raw_open(path);
        /* What a trim does in a later version, made in the first one's file. */
        raw_exec(db, "DROP TRIGGER events_no_delete; DELETE FROM events WHERE id > 20;"
                     "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'no'); END;");
        assert_int_equal(raw_int(db, "SELECT seq FROM sqlite_sequence WHERE name = 'events'"), 26);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);

        state_store *s = open_store(path, 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 21);
        assert_int_equal(events[20].id, 27);
        assert_string_equal(events[20].action, "migrate");
        assert_string_equal(events[20].outcome, "ok");
        assert_true(events[20].time_usec > 0 && events[20].time_usec <= vf_now_realtime_usec());
        state_event_list_free(events, n);
        assert_int_equal(state_intent_begin(s, "domain", "vm", 1, "define", &id), 0);
        assert_int_equal(id, 28);
        state_close(s);

        /* Without deletions the ids simply go on, and the migration says nothing. */
        _cleanup_free_ char *untrimmed = path_in(state, "untrimmed.db");
        th_copy_file(golden, untrimmed);
        s = open_store(untrimmed, 0);
        assert_int_equal(state_event_list(s, NULL, NULL, 0, &events, &n), 0);
        assert_int_equal(n, 26);
        state_event_list_free(events, n);
        assert_int_equal(state_intent_begin(s, "domain", "vm", 1, "define", &id), 0);
        assert_int_equal(id, 27);
        state_close(s);
}

/* ---- a full disk -------------------------------------------------------- */

/* A small tmpfs of the test's own at dir/tmpfs, so that the disk fills up in a moment; skips when mounting is not allowed. */
static void mount_small_fs(void **state) {
        fixture *f = *state;
        char dir[PATH_MAX]; /* on the stack: the skip longjmps */

        snprintf(dir, sizeof dir, "%s/tmpfs", f->dir);
        assert_int_equal(mkdir(dir, 0700), 0);
        if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0700") < 0)
                th_skip("cannot mount a tmpfs at %s: %s", dir, strerror(errno));
        f->mounted = true;
}

/* Distinct and large (a few pages each), so that the disk fills after a few dozen and a mix-up would show. */
static state_record *bulky_record(unsigned i) {
        char name[16];

        snprintf(name, sizeof name, "vm%03u", i);
        state_record *rec = full_record("domain", name);
        free(rec->applied_desired_xml);
        rec->applied_desired_xml = malloc(6000);
        assert_non_null(rec->applied_desired_xml);
        for (size_t k = 0; k < 5999; k++)
                rec->applied_desired_xml[k] = (char) ('a' + (k * 7 + i) % 26);
        rec->applied_desired_xml[5999] = 0;
        rec->generation = i;
        return rec;
}

/* Two records a transaction until a write fails; returns how many went in with their transactions committed. */
static size_t fill_until_full(state_store *s, state_record **recs, size_t max) {
        for (size_t n = 0; n + 2 <= max; n += 2) {
                recs[n] = bulky_record(n);
                recs[n + 1] = bulky_record(n + 1);
                int r = state_begin(s);
                if (r >= 0)
                        r = state_put(s, recs[n]);
                if (r >= 0)
                        r = state_put(s, recs[n + 1]);
                if (r >= 0)
                        r = state_commit(s);
                if (r >= 0)
                        continue;
                if (r != -ENOSPC)
                        fail_msg("write %zu failed with %s (%s), not ENOSPC", n, strerror(-r), state_last_error(s));
                /* Whether the failed put or SQLite rolled back already or not, the caller's rollback is no error. */
                assert_int_equal(state_rollback(s), 0);
                return n;
        }
        fail_msg("%zu records fit in a 256 KiB file system", max);
        return max;
}

static void test_disk_full_keeps_committed_state(void **state) {
        mount_small_fs(state);
        _cleanup_free_ char *path = path_in(state, "tmpfs/state.db");
        state_record *recs[512] = {};

        state_store *s = open_store(path, 0);
        size_t n = fill_until_full(s, recs, ELEMENTSOF(recs));
        assert_true(n >= 2);
        /* The store stays usable: it reads what it has, and a failed write is only that write. */
        state_record *got = NULL;
        assert_int_equal(state_get(s, "domain", recs[n]->name, &got), -ENOENT);
        assert_int_equal(state_get(s, "domain", recs[n - 1]->name, &got), 0);
        state_record_free(TAKE_PTR(got));
        state_close(s);

        sqlite3 *db = raw_open(path);
        _cleanup_free_ char *integrity = raw_text(db, "PRAGMA integrity_check");
        assert_string_equal(integrity, "ok");
        assert_int_equal(raw_int(db, "SELECT count(*) FROM resources"), n);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);

        s = open_store(path, 0);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(state_get(s, "domain", recs[i]->name, &got), 0);
                assert_records_equal(got, recs[i]);
                applied_document_is(s, "domain", recs[i]->name, recs[i]->applied_desired_xml);
                state_record_free(TAKE_PTR(got));
        }
        assert_int_equal(state_get(s, "domain", recs[n + 1]->name, &got), -ENOENT);
        state_close(s);
        for (size_t i = 0; i < ELEMENTSOF(recs); i++)
                state_record_free(recs[i]);
}

int main(void) {
        /* The files the tests make with SQLite directly must be as private as a writer requires. */
        umask(077);
        const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
                T(test_create_sets_modes),
                T(test_create_sets_pragmas),
                T(test_file_errors_and_meta),
                T(test_reopen_keeps_data_and_instance_id),
                T(test_put_get_roundtrip),
                T(test_put_replaces_record_and_conditions),
                T(test_unchanged_put_writes_nothing),
                cmocka_unit_test(test_set_condition_transition_time),
                cmocka_unit_test(test_clear_condition),
                T(test_delete_cascades_conditions),
                T(test_baseline_document_beside_record),
                T(test_list_order_and_conditions),
                T(test_rollback_discards_puts),
                T(test_put_undone_is_made_again),
                T(test_failed_put_leaves_previous_state),
                T(test_put_refuses_two_conditions_of_a_type),
                T(test_many_records_in_one_transaction),
                T(test_events_order_and_filter),
                T(test_events_closed_once),
                T(test_event_newest),
                T(test_intent_outlives_the_batch),
                T(test_put_in_a_batch_reads_back),
                T(test_intents_resolved),
                T(test_trim_keeps_open_intents),
                T(test_trim_by_age_in_log_order),
                T(test_intent_commit_pages),
                T(test_readonly_missing_file),
                T(test_readonly_never_writes),
                T(test_readonly_reads_while_writer_is_open),
                T(test_readonly_older_schema),
                T(test_readonly_on_readonly_mount),
                T(test_foreign_database_refused),
                T(test_garbage_file_refused),
                T(test_newer_schema_refused),
                T(test_corrupt_database_refused),
                T(test_check_on_demand),
                T(test_lost_wal_refused),
                T(test_writer_killed_closing_lost_nothing),
                T(test_empty_file_refused),
                T(test_recover_replaces_empty_file),
                T(test_adopt_instance_id),
                T(test_second_writer_refused),
                T(test_second_writer_refused_on_a_new_store),
                T(test_not_a_file_refused),
                T(test_unsafe_file_refused),
                T(test_unsafe_ancestor_refused),
                T(test_other_users_store_refused),
                cmocka_unit_test(test_default_path),
                T(test_device_roundtrip_and_delete),
                T(test_flush_makes_writes_durable),
                T(test_checkpoint_waits_for_an_idle_writer),
                T(test_a_busy_reader_costs_no_checkpoint_per_commit),
                T(test_migrates_golden_version_1),
                T(test_migration_keeps_ids_unique),
                T(test_disk_full_keeps_committed_state),
#undef T
        };

        return th_run_group(tests, NULL, NULL, NULL);
}
