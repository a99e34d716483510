/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the tests share: temporary trees, files, and a clean hypervisor. */
#pragma once

#include <libvirt/libvirt.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/common.h"

/*
 * Skips the running test and says why. Outside CI the skip is printed and
 * counted (scripts/count-tests); under CI (CI=true), which runs as root with
 * every capability, it is a failure. It longjmps, as skip() does: call it
 * before any _cleanup_ variable is set, or their cleanup never runs.
 */
void th_skip(const char *fmt, ...) _printf_(1, 2);
/*
 * Runs a group of tests, each suite's main calls it once. When skip_reason
 * is set, the group needs something this run lacks, and each of its tests is
 * skipped with that reason (and so counted once, and fails under CI).
 *
 * What a failing test leaves is cleaned up here: an assertion longjmps past
 * _cleanup_ attributes and the end of the test. The suite runs with $TMPDIR
 * set to a directory of its own (for the rest of the process), removed at
 * the end; children still alive or unreaped at the end are killed. Both are
 * failures when the suite passed otherwise: a passing test leaves nothing.
 */
int th_run_tests(const char *group, const struct CMUnitTest *tests, size_t n, CMFixtureFunction group_setup,
                 CMFixtureFunction group_teardown, const char *skip_reason);
#define th_run_group(tests, group_setup, group_teardown, skip_reason) \
        th_run_tests(#tests, tests, ELEMENTSOF(tests), group_setup, group_teardown, skip_reason)
/* Moves the process into a network namespace of its own, with lo up; false when it may not. */
bool th_enter_netns(void);

/* A fresh directory under $TMPDIR; the caller removes it with th_rmtree(). */
char *th_mkdtemp(void);
/*
 * The entries of dir but "." and ".."; 0 when it cannot be opened. With
 * name_them_as, each is named on stderr after that text and a space.
 */
int th_count_entries(const char *dir, const char *name_them_as);
/* Removes a tree; safe on NULL. */
void th_rmtree(const char *path);
/* Writes dir/name (printf-formatted contents), replacing it. */
void th_write(const char *dir, const char *name, const char *fmt, ...) _printf_(3, 4);
void th_remove(const char *dir, const char *name);
/*
 * The examples' files ($VIRTFORM_EXAMPLES, not its subdirectories), copied
 * into a fresh directory with the modes root trusts: a checkout made with
 * umask 002 has them writable by its group, and root refuses to read them
 * there. The caller removes it with th_rmtree().
 */
char *th_copy_examples(void);

/*
 * test:///default keeps its objects for the life of the process, whatever
 * connection defined them: undefine everything but the driver's own "test"
 * domain and "default" network so each test starts from the same host.
 */
void th_reset_test_driver(void);
/* A second connection, for changes made behind virtform's back. */
virConnectPtr th_connect(void);
/* The inactive XML of a domain or network; NULL when it does not exist. */
char *th_domain_xml(virConnectPtr conn, const char *name, bool inactive);
char *th_network_xml(virConnectPtr conn, const char *name);
bool th_domain_active(virConnectPtr conn, const char *name);
bool th_domain_autostart(virConnectPtr conn, const char *name);
/* Of a domain that must exist: its UUID (the caller frees it), and whether it is defined (not transient). */
char *th_domain_uuid(virConnectPtr conn, const char *name);
bool th_domain_persistent(virConnectPtr conn, const char *name);

/*
 * libvirt as seen from outside virtform (tests/libvirt-view.c), through a
 * connection of the test's own: the lifecycle events of every domain and
 * network that libvirt sends it, recorded as "domain NAME Event" and
 * "network NAME Event" (Defined, Undefined, Started, Stopped, Shutdown, ...),
 * and every object's UUID, XML, autostart and active state as when the view
 * was taken. Events are delivered on whichever thread runs libvirt's event
 * loop (the controller starts one); without one, the view turns the loop
 * itself. Needs virEventRegisterDefaultImpl() before any connection is
 * opened, or remote connections deliver no events.
 *
 * A barrier defines and undefines a throwaway domain of domain_type ("test",
 * "qemu") and waits for its events: once they are delivered, so is every
 * event caused before. The view starts with one, forgetting what came before.
 */
typedef struct th_libvirt_view th_libvirt_view;
th_libvirt_view *th_libvirt_view_new(virConnectPtr conn, const char *domain_type);
/* Returns once every event caused before it has been delivered (and, with forget, forgets them). */
void th_libvirt_view_barrier(th_libvirt_view *view, bool forget);
/* After a barrier, fails when libvirt reported any of events (NULL-terminated) for kind ("domain", "network") name. */
void th_libvirt_view_assert_no_event(th_libvirt_view *view, const char *kind, const char *name,
                                     const char *const *events);
/* After a barrier, fails, listing them, when libvirt sent any event or any object differs from the view's. */
void th_libvirt_view_assert_untouched(th_libvirt_view *view);
/* Deregisters; libvirt frees the view once no callback can run any more. */
void th_libvirt_view_free(th_libvirt_view *view);
static inline void th_libvirt_view_freep(th_libvirt_view **view) {
        th_libvirt_view_free(*view);
}

/* A finished child: its exit status (or 128 + signal) and what it wrote. */
typedef struct th_run {
        int status;
        bool killed; /* by a signal: status is 128 + its number */
        char *out;
        char *err;
} th_run;

void th_run_done(th_run *r);

/* A log line's time: RFC 3339 in UTC with milliseconds. */
#define TH_LOG_TIME_ERE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"
/* Fails the test unless text has lines, and each matches the POSIX extended regex ere (anchor it with ^ and $). */
void th_assert_lines_match(const char *text, const char *ere);
/* A whole file, which must exist; the caller frees it. */
char *th_slurp(const char *path);
/* Copies the file at from, which must exist, to a new file to (mode 0600). */
void th_copy_file(const char *from, const char *to);
/* Runs sql on the state file at path through a connection of the test's own; the rows its last statement changed. */
int th_state_exec(const char *path, const char *sql);
/* How many times needle occurs in text, not overlapping. */
unsigned th_count_in_text(const char *text, const char *needle);
/* How many times needle occurs in the file at path, which must exist (a log: its lines that say something). */
unsigned th_count_in_file(const char *path, const char *needle);
/* Runs argv (NULL-terminated) with extra environment entries (NAME=VALUE, NULL-terminated, may be NULL). */
th_run th_spawn(const char *const *argv, const char *const *extra_env);

/* The same in two halves, for a child that runs beside the test: start it, then wait for it to exit. */
typedef struct th_child {
        pid_t pid;
        char *dir; /* where its stdout and stderr go */
        char *command; /* argv joined, for a failure to name it */
        int deadline_sec; /* th_spawn_wait()'s; TH_SPAWN_DEADLINE_SEC unless the test lowers it */
} th_child;

th_child th_spawn_start(const char *const *argv, const char *const *extra_env);
/* What the running child wrote to stdout, or stderr, so far. */
char *th_child_stdout(const th_child *c);
char *th_child_stderr(const th_child *c);
/*
 * Waits for the child to exit. One still running after its deadline_sec is
 * stuck, since every child a test runs ends by itself or when the test
 * tells it to: the test fails naming it, with where each of its threads
 * waits in the kernel and what it wrote, and the child is killed.
 */
#define TH_SPAWN_DEADLINE_SEC 300
th_run th_spawn_wait(th_child *c);
