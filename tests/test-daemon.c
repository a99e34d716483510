/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon in-process: its loop runs on a thread of this test, against
 * test:///default, while the test writes files, changes libvirt behind its
 * back, toggles veth links and sends signals. Every wait is for a condition,
 * with a deadline; nothing sleeps a fixed time to wait for convergence.
 */
#include "tests/env.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <poll.h>
#include <dirent.h>
#include <sys/socket.h>
#include <linux/rtnetlink.h>
#include <linux/netlink.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/un.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>

#include "tests/sysfs-fixture.h"

/* A deadline only ends a wait that failed: under valgrind here, 500 defines take about 20 s. */
#define DEADLINE_USEC (60 * 1000000)

#define NETWORK_LAN                                                                                     \
        "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec:\n  forward: nat\n"        \
        "  bridge: virbr10\n  ipv4: {address: 192.168.110.1/24}\n"

#define DOMAIN_WEB(memory)                                                                                  \
        "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web1}\nspec:\n  memory: " memory "\n"      \
        "  interfaces: [{network: lan}]\n"

typedef struct fixture {
        th_env *env;
        th_libvirt_view *events; /* what libvirt itself reports, through the second connection */
        char *dirs[4]; /* etc, run, usr: the three drop-in layers */
        vf_daemon *daemon;
        vf_daemon_stats stats;
        pthread_t thread;
        _Atomic pid_t tid; /* the daemon's thread, for its state in /proc */
        FILE *log; /* what it logs, for the operator's view of what it did */
        bool running;
        int result;
        state_store *reader; /* the test's own view of the store */
        const vf_observer *observer; /* told of the daemon's passes, if a test needs to hold one */
        th_sysfs *sysfs; /* a VF's sysfs, for the tests whose PF is a veth */
} fixture;

static void *run_daemon(void *userdata) {
        fixture *f = userdata;
        _cleanup_free_ char *errmsg = NULL;
        bool converged;

        atomic_store(&f->tid, gettid());
        f->result = vf_daemon_run(f->daemon, &f->env->c, &converged, &errmsg);
        if (f->result < 0)
                fprintf(stderr, "daemon: %s\n", errmsg ? errmsg : strerror(-f->result));
        return NULL;
}

static void start_daemon(fixture *f) {
        _cleanup_free_ char *errmsg = NULL;
        vf_daemon_options o = { .stats = &f->stats };

        f->env->opts.daemon = true;
        assert_int_equal(vf_daemon_new(&o, &f->daemon), 0);
        assert_int_equal(vf_controller_open(&f->env->c, &f->env->opts, &errmsg), 0);
        _cleanup_free_ char *log = vf_printf("%s/daemon.log", f->env->dir);
        f->log = fopen(log, "we");
        assert_non_null(f->log);
        assert_int_equal(setvbuf(f->log, NULL, _IOLBF, 0), 0);
        f->env->c.log = f->log;
        f->env->c.observer = f->observer;
        f->env->open = true;
        assert_int_equal(pthread_create(&f->thread, NULL, run_daemon, f), 0);
        f->running = true;
        assert_int_equal(state_open(f->env->state, STATE_OPEN_READONLY, &f->reader, &errmsg), 0);
}

/* Waits for the daemon to stop of its own accord, or on a signal already sent. */
static void join_daemon(fixture *f) {
        assert_int_equal(pthread_join(f->thread, NULL), 0);
        f->running = false;
        assert_int_equal(f->result, 0);
        vf_daemon_free(f->daemon);
        f->daemon = NULL;
        th_env_close(f->env);
        fclose(f->log);
}

static void stop_daemon(fixture *f) {
        if (!f->running)
                return;
        assert_int_equal(kill(getpid(), SIGTERM), 0);
        join_daemon(f);
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        const char *layers[] = { "etc", "run", "usr" };

        f->env = th_env_new();
        for (size_t i = 0; i < ELEMENTSOF(layers); i++) {
                f->dirs[i] = vf_printf("%s/%s", f->env->dir, layers[i]);
                assert_int_equal(mkdir(f->dirs[i], 0755), 0);
        }
        f->env->opts.paths = f->dirs;
        f->env->opts.debounce_msec = 20;
        /* They stand for the default directories, which may be missing. */
        f->env->opts.default_paths = true;
        *state = f;
        return 0;
}

static void events_stop(fixture *f);

static int teardown(void **state) {
        fixture *f = *state;

        events_stop(f);
        stop_daemon(f);
        if (f->sysfs)
                (void) system("for l in enp59s0f0 vf-filler vf-u1 vf-u2 vf-u3 vf-u4 vf-u5 vf-u6; do "
                              "ip link del $l 2>/dev/null; done");
        th_sysfs_free(f->sysfs);
        state_close(f->reader);
        th_env_free(f->env);
        for (size_t i = 0; f->dirs[i]; i++)
                free(f->dirs[i]);
        free(f);
        return 0;
}

/* Writes the way configuration management should: a hidden temp file renamed into place. */
static void drop_in(const char *dir, const char *name, const char *content) {
        _cleanup_free_ char *tmp = vf_printf(".%s.tmp", name);
        _cleanup_free_ char *from = vf_printf("%s/%s", dir, tmp), *to = vf_printf("%s/%s", dir, name);
        th_write(dir, tmp, "%s", content);
        assert_int_equal(rename(from, to), 0);
}

/*
 * Writes in place, as an editor without atomic saves does: over content of
 * the same length, in one write and without truncating, so that these tests
 * see one change and no empty file. Writers that empty a file first are the
 * business of the tests of files open for writing.
 */
static void overwrite(const char *dir, const char *name, const char *content) {
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, name), *old = th_slurp(path);
        int fd = open(path, O_WRONLY | O_CLOEXEC);

        assert_int_equal(strlen(old), strlen(content));
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        assert_int_equal(close(fd), 0);
}

typedef bool (*predicate)(fixture *f, const void *arg);

/* What the daemon logged, for a failure to show what it did and did not see. */
static void print_daemon_log(fixture *f) {
        _cleanup_free_ char *path = vf_printf("%s/daemon.log", f->env->dir), *log = path ? th_slurp(path) : NULL;

        /* Not print_error: its buffer would cut the log short. */
        fprintf(stderr, "the daemon's log:\n%s", log ? log : "(none)\n");
}

/*
 * what is formatted only on a timeout, on the stack: fail_msg jumps out of
 * every frame above it, past any cleanup, and a string built on the heap for
 * it would be reported as lost on top of the failure.
 */
static void wait_for(fixture *f, predicate p, const void *arg, const char *what_fmt, ...) _printf_(4, 5);

static void wait_for(fixture *f, predicate p, const void *arg, const char *what_fmt, ...) {
        int64_t deadline = vf_now_monotonic_usec() + DEADLINE_USEC;
        char what[256];
        va_list ap;

        while (!p(f, arg)) {
                if (vf_now_monotonic_usec() > deadline) {
                        va_start(ap, what_fmt);
                        vsnprintf(what, sizeof what, what_fmt, ap);
                        va_end(ap);
                        print_daemon_log(f);
                        fail_msg("timed out waiting for %s", what);
                }
                usleep(10 * 1000); /* polling the condition, not waiting for a time */
        }
}

/* ---- asleep, seen from outside: its thread in /proc, its descriptors polled ---------------- */

/* Every timerfd of the process is disarmed ("it_value: (0, 0)" in its fdinfo). */
static bool timers_disarmed(void) {
        DIR *dir = opendir("/proc/self/fd");
        bool disarmed = true;

        assert_non_null(dir);
        for (struct dirent *de; disarmed && (de = readdir(dir));) {
                _cleanup_free_ char *fd = vf_printf("/proc/self/fd/%s", de->d_name),
                                    *info = vf_printf("/proc/self/fdinfo/%s", de->d_name);
                char target[64] = "";
                if (readlink(fd, target, sizeof target - 1) < 0 || strcmp(target, "anon_inode:[timerfd]") != 0)
                        continue;
                FILE *in = fopen(info, "re");
                char line[128];
                while (in && fgets(line, sizeof line, in))
                        if (strncmp(line, "it_value:", 9) == 0)
                                disarmed = strstr(line, "(0, 0)") != NULL;
                if (in)
                        fclose(in);
        }
        closedir(dir);
        return disarmed;
}

static bool timer_armed(fixture *f, const void *unused) {
        return !timers_disarmed();
}

/* The epoll descriptor the daemon's thread waits in without a timeout, or -1 when it is not doing that. */
static int waiting_forever_in(fixture *f) {
        _cleanup_free_ char *path = vf_printf("/proc/self/task/%d/syscall", (int) atomic_load(&f->tid));
        FILE *in = atomic_load(&f->tid) ? fopen(path, "re") : NULL;
        long nr = -1;
        unsigned long epfd = 0, events, max, timeout = 0;

        if (in) {
                if (fscanf(in, "%ld %lx %lx %lx %lx", &nr, &epfd, &events, &max, &timeout) != 5)
                        nr = -1;
                fclose(in);
        }
        if ((nr != SYS_epoll_wait && nr != SYS_epoll_pwait) || (int) timeout != -1)
                return -1;
        return (int) epfd;
}

/*
 * Asleep for good: the daemon's thread waits in epoll without a timeout,
 * none of its sources has anything to say, and no timer is armed. Only new
 * input can wake it.
 */
static bool daemon_asleep(fixture *f, const void *unused) {
        int epfd = waiting_forever_in(f);
        struct pollfd p = { .fd = epfd, .events = POLLIN };

        if (epfd < 0 || poll(&p, 1, 0) != 0 || !timers_disarmed())
                return false;
        return waiting_forever_in(f) == epfd;
}

/* Waits until the daemon sleeps, the events of what it did delivered first. */
static void events_start(fixture *f);

static void wait_asleep(fixture *f) {
        events_start(f);
        wait_for(f, daemon_asleep, NULL, "the daemon asleep, no timer armed");
}

static unsigned log_count(fixture *f, const char *needle) {
        _cleanup_free_ char *path = vf_printf("%s/daemon.log", f->env->dir);
        return th_count_in_file(path, needle);
}

typedef struct expect {
        const char *kind, *name;
        const char *reason; /* of the Ready condition; NULL: the record is gone */
        bool ready;
} expect;

static bool record_matches(fixture *f, const void *arg) {
        const expect *e = arg;
        _cleanup_(state_record_freep) state_record *rec = NULL;
        int r = state_get(f->reader, e->kind, e->name, &rec);

        if (!e->reason)
                return r == -ENOENT;
        if (r < 0)
                return false;
        const state_condition *ready = state_record_condition(rec, "Ready");
        return ready && ready->status == e->ready && vf_streq_ptr(ready->reason, e->reason);
}

static void wait_record(fixture *f, const char *kind, const char *name, bool ready, const char *reason) {
        expect e = { kind, name, reason, ready };
        wait_for(f, record_matches, &e, "%s/%s %s %s", kind, name, ready ? "Ready" : "not Ready",
                 reason ? reason : "gone");
}

static bool memory_is(fixture *f, const void *arg) {
        _cleanup_free_ char *xml = th_domain_xml(f->env->other, "web1", true);
        return xml && strstr(xml, arg);
}

/* Running, not merely active: a paused guest is active too. */
static bool domain_running(fixture *f, const void *arg) {
        virDomainPtr d = virDomainLookupByName(f->env->other, arg);
        int state = VIR_DOMAIN_NOSTATE, reason;
        bool running = d && virDomainGetState(d, &state, &reason, 0) == 0 && state == VIR_DOMAIN_RUNNING;
        if (d)
                virDomainFree(d);
        return running;
}

static bool domain_gone(fixture *f, const void *arg) {
        _cleanup_free_ char *xml = th_domain_xml(f->env->other, arg, true);
        return !xml;
}

/* ---- libvirt as the observer ----------------------------------------------------- */

/* Starts recording libvirt's events anew, those of what happened before delivered and forgotten. */
static void events_start(fixture *f) {
        if (f->events)
                th_libvirt_view_barrier(f->events, true);
        else
                f->events = th_libvirt_view_new(f->env->other, "test");
}

static void events_stop(fixture *f) {
        th_libvirt_view_free(TAKE_PTR(f->events));
}

static const char *const destructive[] = { "Undefined", "Stopped", "Shutdown", NULL };
static const char *const any_write[] = { "Defined", "Undefined", "Started", "Stopped", "Shutdown", NULL };

static bool source_is(fixture *f, const void *arg) {
        _cleanup_(state_record_freep) state_record *rec = NULL;
        return state_get(f->reader, "domain", "web1", &rec) >= 0 && vf_streq_ptr(rec->source_file, arg);
}

/* ---- files --------------------------------------------------------------------- */

static void test_drop_in_applies_and_removal_prunes(void **state) {
        fixture *f = *state;

        start_daemon(f);
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        wait_record(f, "network", "lan", true, "Applied");
        wait_record(f, "domain", "web1", true, "Applied");
        wait_for(f, domain_running, "web1", "web1 running");

        /* An in-place edit, as an editor without atomic saves makes it. */
        overwrite(f->dirs[0], "20-web.yaml", DOMAIN_WEB("2GiB"));
        wait_for(f, memory_is, "<memory unit='KiB'>2097152</memory>", "web1 with 2 GiB");

        /* Editors' leftovers are ignored: a broken swap file changes nothing. */
        th_write(f->dirs[0], ".20-web.yaml.swp", "memory: [broken");
        th_write(f->dirs[0], "20-web.yaml~", "nonsense: {");

        th_remove(f->dirs[0], "20-web.yaml");
        wait_record(f, "domain", "web1", false, NULL);
        wait_for(f, domain_gone, "web1", "web1 undefined");
        /* Settled: nothing is due, no timer armed; and the events of the removal did not remove it again. */
        wait_asleep(f);
        assert_int_equal(log_count(f, "domain/web1: deleted"), 1);
}

static void test_precedence_override_and_mask(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *masked = vf_printf("%s/20-web.yaml", f->dirs[0]);

        drop_in(f->dirs[2], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[2], "20-web.yaml", DOMAIN_WEB("1GiB"));
        start_daemon(f);
        wait_for(f, memory_is, "<memory unit='KiB'>1048576</memory>", "the vendor's web1");

        /* /run overrides /usr/lib; /etc overrides /run. */
        drop_in(f->dirs[1], "20-web.yaml", DOMAIN_WEB("2GiB"));
        wait_for(f, memory_is, "<memory unit='KiB'>2097152</memory>", "web1 from /run");
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("3GiB"));
        wait_for(f, memory_is, "<memory unit='KiB'>3145728</memory>", "web1 from /etc");

        /* A /dev/null symlink in /etc masks the name in every layer: the domain goes. */
        assert_int_equal(unlink(masked), 0);
        assert_int_equal(symlink("/dev/null", masked), 0);
        wait_for(f, domain_gone, "web1", "web1 masked away");

        /* Unmasked: the highest remaining layer, /run, wins again. */
        assert_int_equal(unlink(masked), 0);
        wait_for(f, memory_is, "<memory unit='KiB'>2097152</memory>", "web1 from /run again");
}

static bool uuid_is(fixture *f, const void *arg) {
        _cleanup_free_ char *uuid = th_domain_uuid(f->env->other, "web1");
        return strcmp(uuid, arg) == 0;
}

/* A directory moved away while running is no order to prune: held until it is back, then picked up again. */
static void test_directory_that_vanishes_holds(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *away = vf_printf("%s.away", f->dirs[1]);

        drop_in(f->dirs[1], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[1], "20-web.yaml", DOMAIN_WEB("1GiB"));
        start_daemon(f);
        wait_record(f, "domain", "web1", true, "Applied");
        _cleanup_free_ char *uuid = th_domain_uuid(f->env->other, "web1");

        assert_int_equal(rename(f->dirs[1], away), 0);
        wait_record(f, "domain", "web1", false, "PruneHeld");
        wait_record(f, "network", "lan", false, "PruneHeld");
        assert_true(uuid_is(f, uuid));
        assert_true(domain_running(f, "web1"));
        /* Meanwhile the other directories are followed as ever. */
        drop_in(f->dirs[0], "30-db.yaml",
                "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: db}\nspec: {memory: 256MiB}\n");
        wait_record(f, "domain", "db", true, "Applied");
        assert_true(uuid_is(f, uuid));

        assert_int_equal(rename(away, f->dirs[1]), 0);
        wait_record(f, "domain", "web1", true, "Applied");
        assert_true(uuid_is(f, uuid));
        assert_true(domain_running(f, "web1"));
}

static void test_directory_that_appears_later(void **state) {
        fixture *f = *state;

        assert_int_equal(rmdir(f->dirs[1]), 0);
        start_daemon(f);
        assert_int_equal(mkdir(f->dirs[1], 0755), 0);
        drop_in(f->dirs[1], "10-net.yaml", NETWORK_LAN);
        wait_record(f, "network", "lan", true, "Applied");
}

/*
 * The directory to make right after the daemon's inotify_add_watch found it
 * missing, and before it watches the parent instead: the narrowest of
 * windows, made certain. The definition here takes the place of libc's for
 * the daemon linked into this test.
 */
static _Atomic(const char *) make_once_missing;

int inotify_add_watch(int fd, const char *path, uint32_t mask) {
        int wd = (int) syscall(SYS_inotify_add_watch, fd, path, mask);
        const char *dir = atomic_load(&make_once_missing);

        if (wd < 0 && errno == ENOENT && dir && strcmp(path, dir) == 0 &&
            atomic_compare_exchange_strong(&make_once_missing, &dir, NULL)) {
                (void) mkdir(dir, 0755); /* failed, the file dropped into it next says so */
                errno = ENOENT;
        }
        return wd;
}

static bool first_pass_done(fixture *f, const void *unused) {
        return atomic_load(&f->stats.passes) > 0 && !atomic_load(&make_once_missing);
}

/* Made between being found missing and its parent being watched, it is followed all the same. */
static void test_directory_made_while_found_missing(void **state) {
        fixture *f = *state;

        assert_int_equal(rmdir(f->dirs[1]), 0);
        atomic_store(&make_once_missing, f->dirs[1]);
        start_daemon(f);
        /* After the first pass: only the directory's watch can tell of the file. */
        wait_for(f, first_pass_done, NULL, "the first pass, %s made once found missing", f->dirs[1]);
        drop_in(f->dirs[1], "10-net.yaml", NETWORK_LAN);
        wait_record(f, "network", "lan", true, "Applied");
}

/* A directory that waits for another inside it to appear shares its watch: neither loses its events. */
static void test_directory_inside_another_that_appears_later(void **state) {
        fixture *f = *state;

        assert_int_equal(rmdir(f->dirs[1]), 0);
        free(f->dirs[1]);
        f->dirs[1] = vf_printf("%s/later", f->dirs[0]);
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        start_daemon(f);
        wait_for(f, memory_is, "<memory unit='KiB'>1048576</memory>", "web1 with 1 GiB");
        /* In place: only IN_MODIFY and IN_CLOSE_WRITE tell of it, which the parent watch alone does not ask for. */
        overwrite(f->dirs[0], "20-web.yaml", DOMAIN_WEB("2GiB"));
        wait_for(f, memory_is, "<memory unit='KiB'>2097152</memory>", "web1 with 2 GiB");
        assert_int_equal(mkdir(f->dirs[1], 0755), 0);
        drop_in(f->dirs[1], "30-db.yaml",
                "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: db}\nspec: {memory: 256MiB}\n");
        wait_record(f, "domain", "db", true, "Applied");
        overwrite(f->dirs[0], "20-web.yaml", DOMAIN_WEB("4GiB"));
        wait_for(f, memory_is, "<memory unit='KiB'>4194304</memory>", "web1 with 4 GiB");
}

static void test_sighup_rescans(void **state) {
        fixture *f = *state;

        /* inotify would see the write: an hour of debounce leaves SIGHUP as the only way in. */
        f->env->opts.debounce_msec = 3600 * 1000;
        start_daemon(f);
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        assert_int_equal(kill(getpid(), SIGHUP), 0);
        wait_record(f, "network", "lan", true, "Applied");
}

static bool log_has(fixture *f, const void *needle) {
        return log_count(f, needle) > 0;
}

/*
 * The operator's view in the log: the start with what it runs against, each reload's counts and cost,
 * SIGTERM when it comes; every line starting with the time, in UTC with milliseconds.
 */
static void test_logs_start_reloads_and_stop_with_time(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *start = vf_printf(" starting: hypervisor test:///default, state file %s, directories %s, "
                                               "%s, %s\n", f->env->state, f->dirs[0], f->dirs[1], f->dirs[2]);
        _cleanup_free_ char *path = vf_printf("%s/daemon.log", f->env->dir);

        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        start_daemon(f);
        wait_for(f, log_has, "notice: started: 1 resources from 1 files (0 with errors) loaded and reconciled in ",
                 "the first load logged");
        assert_int_equal(log_count(f, start), 1);
        drop_in(f->dirs[0], "20-bad.yaml", "kind: [\n");
        wait_for(f, log_has,
                 "notice: 1 files changed: 1 resources from 2 files (1 with errors) loaded and reconciled in ",
                 "the reload of a changed file logged");
        assert_int_equal(kill(getpid(), SIGHUP), 0);
        wait_for(f, log_has, "notice: SIGHUP: 1 resources from 2 files (1 with errors) loaded and reconciled in ",
                 "the reload on SIGHUP logged");
        stop_daemon(f);
        assert_int_equal(log_count(f, "notice: Terminated: stopping\n"), 1);

        _cleanup_free_ char *log = th_slurp(path);
        th_assert_lines_match(log, "^" TH_LOG_TIME_ERE " virtform: (error|warning|notice|info): ");
        struct tm tm = {};
        assert_non_null(strptime(log, "%Y-%m-%dT%H:%M:%S", &tm));
        int64_t logged = (int64_t) timegm(&tm), now = vf_now_realtime_usec() / 1000000;
        /* UTC, as the Z says: a local time elsewhere than UTC would be hours off. */
        assert_true(logged <= now && logged > now - 600);
}

static void test_bad_file_is_terminal_until_fixed(void **state) {
        fixture *f = *state;

        start_daemon(f);
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        wait_record(f, "network", "lan", true, "Applied");
        drop_in(f->dirs[0], "10-net.yaml", "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\n"
                                           "spec: {forward: nat, bogus: 1}\n");
        wait_record(f, "network", "lan", false, "InvalidFile");
        /* Held: still there, and not retried on a timer. */
        wait_asleep(f);
        _cleanup_free_ char *net = th_network_xml(f->env->other, "lan");
        assert_non_null(net);
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        wait_record(f, "network", "lan", true, "Applied");
}

/* ---- renames and moves: identity is kind/name, never the file ---------------------------- */

static void start_running_web1(fixture *f, const char *dir, char **uuid) {
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        drop_in(dir, "20-web.yaml", DOMAIN_WEB("1GiB"));
        start_daemon(f);
        wait_record(f, "domain", "web1", true, "Applied");
        wait_for(f, domain_running, "web1", "web1 running");
        *uuid = th_domain_uuid(f->env->other, "web1");
        events_start(f);
}

static void assert_same_web1(fixture *f, const char *uuid) {
        _cleanup_free_ char *now = th_domain_uuid(f->env->other, "web1");
        assert_string_equal(now, uuid);
        assert_true(domain_running(f, "web1"));
}

/* web1's file, running, renamed from_dir/20-web.yaml -> to_dir/to_name: where it comes from changes, nothing else. */
static void assert_rename_is_an_update(fixture *f, const char *from_dir, const char *to_dir, const char *to_name) {
        _cleanup_free_ char *uuid = NULL, *from = vf_printf("%s/20-web.yaml", from_dir),
                            *to = vf_printf("%s/%s", to_dir, to_name);

        start_running_web1(f, from_dir, &uuid);
        assert_int_equal(rename(from, to), 0);
        wait_for(f, source_is, to, "%s", to);
        th_libvirt_view_assert_no_event(f->events, "domain", "web1", any_write);
        assert_same_web1(f, uuid);
}

static void test_rename_is_an_update(void **state) {
        fixture *f = *state;
        assert_rename_is_an_update(f, f->dirs[0], f->dirs[0], "30-web.yaml");
}

/* git mv and an edit, as a git pull brings them: the old name goes, the new one comes with other content. */
static void test_git_mv_with_edit_is_an_update(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *uuid = NULL, *to = vf_printf("%s/30-web.yaml", f->dirs[0]);

        /* Long enough that both steps are one batch even on a busy machine. */
        f->env->opts.debounce_msec = 500;
        start_running_web1(f, f->dirs[0], &uuid);
        th_remove(f->dirs[0], "20-web.yaml");
        drop_in(f->dirs[0], "30-web.yaml", DOMAIN_WEB("2GiB"));
        wait_for(f, source_is, to, "web1 recorded from 30-web.yaml");
        wait_for(f, memory_is, "<memory unit='KiB'>2097152</memory>", "web1 with 2 GiB");
        th_libvirt_view_assert_no_event(f->events, "domain", "web1", destructive);
        assert_same_web1(f, uuid);
}

/* From the vendor's layer to the administrator's, under another name. */
static void test_move_between_layers_is_an_update(void **state) {
        fixture *f = *state;
        assert_rename_is_an_update(f, f->dirs[2], f->dirs[0], "50-web.yaml");
}

/*
 * What a writer that pauses does to web1's file, far longer than the debounce
 * (30 of them) and with the file open: the daemon must wait for the close.
 * Read before, the file would be empty, a mask, and web1 would be pruned.
 */
#define WRITER_PAUSE_USEC (30 * 20 * 1000)

static void assert_written_once_closed(fixture *f, const char *uuid, int fd) {
        const char *content = DOMAIN_WEB("3GiB");

        usleep(WRITER_PAUSE_USEC);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        assert_int_equal(close(fd), 0);
        wait_for(f, memory_is, "<memory unit='KiB'>3145728</memory>", "web1 with 3 GiB");
        th_libvirt_view_assert_no_event(f->events, "domain", "web1", destructive);
        assert_same_web1(f, uuid);
        assert_int_equal(log_count(f, "20-web.yaml is open for writing"), 1);
}

/* web1 running, then its file emptied by O_TRUNC and left open: the descriptor to write it with. */
static int truncate_running_web1(fixture *f, char **uuid) {
        _cleanup_free_ char *path = vf_printf("%s/20-web.yaml", f->dirs[0]);

        start_running_web1(f, f->dirs[0], uuid);
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

/* Emptied by O_TRUNC, then written after a pause. */
static void test_file_truncated_is_read_once_closed(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *uuid = NULL;
        int fd = truncate_running_web1(f, &uuid);

        assert_written_once_closed(f, uuid, fd);
}

/* SIGHUP while a file is open for writing: reading every file again waits for it, as a batch does. */
static void test_sighup_waits_for_a_file_open_for_writing(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *uuid = NULL;
        int fd = truncate_running_web1(f, &uuid);

        wait_for(f, log_has, "20-web.yaml is open for writing", "the daemon waiting for 20-web.yaml");
        assert_int_equal(kill(getpid(), SIGHUP), 0);
        assert_written_once_closed(f, uuid, fd);
        wait_for(f, log_has, "notice: SIGHUP: 2 resources from 2 files (0 with errors) loaded and reconciled in ",
                 "the reload on SIGHUP, once the file was closed");
}

/*
 * A hard link (ln, cp -l, rsync --link-dest) is made whole by one call and never closed: it is read
 * at the debounce, not held as a file being written until the hold runs out.
 */
static void test_file_linked_in_is_not_held(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *uuid = NULL, *staged = vf_printf("%s/staged.yaml", f->env->dir),
                            *linked = vf_printf("%s/30-web.yaml", f->dirs[0]);

        /* Long enough that the removal and the link are one batch even on a busy machine. */
        f->env->opts.debounce_msec = 500;
        start_running_web1(f, f->dirs[0], &uuid);
        th_write(f->env->dir, "staged.yaml", "%s", DOMAIN_WEB("2GiB"));
        th_remove(f->dirs[0], "20-web.yaml");
        assert_int_equal(link(staged, linked), 0);
        wait_for(f, memory_is, "<memory unit='KiB'>2097152</memory>", "web1 with 2 GiB from the linked file");
        assert_int_equal(log_count(f, "open for writing"), 0);
        th_libvirt_view_assert_no_event(f->events, "domain", "web1", destructive);
        assert_same_web1(f, uuid);
}

/* An editor's swap file, open for writing all along, holds back no edit: it is never read. */
static void test_swap_file_open_for_writing_holds_nothing(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *uuid = NULL, *swap = vf_printf("%s/.20-web.yaml.swp", f->dirs[0]);

        start_running_web1(f, f->dirs[0], &uuid);
        int fd = open(swap, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "b0VIM", 5), 5);
        overwrite(f->dirs[0], "20-web.yaml", DOMAIN_WEB("2GiB"));
        wait_for(f, memory_is, "<memory unit='KiB'>2097152</memory>", "web1 with 2 GiB, the swap file still open");
        assert_int_equal(log_count(f, "open for writing"), 0);
        assert_int_equal(close(fd), 0);
}

/*
 * Replaced in place, as git checkout does: deleted, made again empty, then
 * written. The deletion waits with the file being written, in one batch.
 */
static void test_file_replaced_in_place_is_read_once_closed(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *uuid = NULL, *path = vf_printf("%s/20-web.yaml", f->dirs[0]);

        start_running_web1(f, f->dirs[0], &uuid);
        th_remove(f->dirs[0], "20-web.yaml");
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_written_once_closed(f, uuid, fd);
}

/* A writer that never closes its file: it is read as it is once the hold ends (100 debounces), and said so. */
static void test_file_never_closed_is_read_after_the_hold(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *uuid = NULL;
        const char *content = DOMAIN_WEB("3GiB");
        int fd = truncate_running_web1(f, &uuid);

        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        wait_for(f, memory_is, "<memory unit='KiB'>3145728</memory>", "web1 with 3 GiB, its file still open");
        assert_int_equal(log_count(f, "20-web.yaml is still open for writing after 2.0 s: reading it as it is"), 1);
        assert_int_equal(close(fd), 0);
        th_libvirt_view_assert_no_event(f->events, "domain", "web1", destructive);
        assert_same_web1(f, uuid);
}

/* ---- libvirt ---------------------------------------------------------------------- */

/* lan and web1 declared, the daemon started, web1 running. */
static void start_with_web1_running(fixture *f) {
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        start_daemon(f);
        wait_for(f, domain_running, "web1", "web1 running");
}

/* web1 stopped behind the daemon's back, through the test's own connection. */
static void destroy_web1(fixture *f) {
        virDomainPtr d = virDomainLookupByName(f->env->other, "web1");
        assert_non_null(d);
        assert_int_equal(virDomainDestroy(d), 0);
        virDomainFree(d);
}

static void test_out_of_band_changes_are_put_back(void **state) {
        fixture *f = *state;

        start_with_web1_running(f);

        destroy_web1(f);
        wait_for(f, domain_running, "web1", "web1 started again after an out-of-band destroy");

        virDomainPtr paused = virDomainLookupByName(f->env->other, "web1");
        assert_int_equal(virDomainSuspend(paused), 0);
        virDomainFree(paused);
        wait_for(f, domain_running, "web1", "web1 resumed after an out-of-band pause");

        virDomainPtr d = virDomainLookupByName(f->env->other, "web1");
        assert_int_equal(virDomainDestroy(d), 0);
        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        wait_for(f, domain_running, "web1", "web1 recreated after an out-of-band undefine");
}

/*
 * A full pass lets the last graph go before it builds the next. One that fails then (the state file
 * cannot be read) must not leave the daemon blind: it says so, reads every file again by itself once
 * the state file reads, and events find their resources after that.
 */
static void test_failed_full_pass_is_tried_again(void **state) {
        fixture *f = *state;

        start_with_web1_running(f);

        th_state_exec(f->env->state, "ALTER TABLE conditions RENAME TO conditions_away");
        assert_int_equal(kill(getpid(), SIGHUP), 0);
        wait_for(f, log_has, "cannot read the state file", "the failed pass in the log");
        th_state_exec(f->env->state, "ALTER TABLE conditions_away RENAME TO conditions");

        destroy_web1(f);
        wait_for(f, domain_running, "web1", "web1 started again after a full pass failed");
        /* SQLite's words for the missing table vary with when the read fails; the retry's are ours. */
        if (!log_has(f, "; every file is read again in 1 s")) {
                print_daemon_log(f);
                fail_msg("the failed pass's retry not in the log");
        }
        /* The retry may be the pass that starts web1 again: its line comes once it ends. */
        wait_for(f, log_has, "SIGHUP: 2 resources from", "the retried pass's end in the log");
        assert_int_equal(log_count(f, "SIGHUP: 2 resources from"), 1);
}

static bool pool_running(fixture *f, const void *arg) {
        virStoragePoolPtr p = virStoragePoolLookupByName(f->env->other, arg);
        bool active = p && virStoragePoolIsActive(p) == 1;
        if (p)
                virStoragePoolFree(p);
        return active;
}

/* A pool's events are the daemon's cue as a domain's are: stopped out of band, it is started again. */
static void test_out_of_band_pool_changes_are_put_back(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->env->dir);
        _cleanup_free_ char *pool = vf_printf("apiVersion: virtform/v1\nkind: StoragePool\nmetadata: {name: images}\n"
                                              "spec: {type: dir, path: %s}\n",
                                              path);

        assert_int_equal(mkdir(path, 0755), 0);
        drop_in(f->dirs[0], "10-pool.yaml", pool);
        start_daemon(f);
        wait_for(f, pool_running, "images", "pool images running");

        /*
         * Stopped only: an undefine needs the pool stopped first, and the daemon may start it again in
         * between. The same event brings an undefined pool back, as test-apply shows of a pass.
         */
        virStoragePoolPtr p = virStoragePoolLookupByName(f->env->other, "images");
        assert_int_equal(virStoragePoolDestroy(p), 0);
        virStoragePoolFree(p);
        wait_for(f, pool_running, "images", "pool images started again after an out-of-band destroy");
}

static bool pool_gone(fixture *f, const void *arg) {
        virStoragePoolPtr p = virStoragePoolLookupByName(f->env->other, arg);
        if (p)
                virStoragePoolFree(p);
        return !p;
}

/*
 * A pool no longer declared waits while the store records a volume in it; the volume's own removal,
 * which libvirt tells nothing of, is what lets it go.
 */
static void test_pool_waiting_for_its_volume_goes_with_it(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->env->dir);
        _cleanup_free_ char *pool = vf_printf("apiVersion: virtform/v1\nkind: StoragePool\nmetadata: {name: images}\n"
                                              "spec: {type: dir, path: %s}\n",
                                              path);

        assert_int_equal(mkdir(path, 0755), 0);
        drop_in(f->dirs[0], "10-pool.yaml", pool);
        drop_in(f->dirs[0], "20-disk.yaml",
                "apiVersion: virtform/v1\nkind: Volume\nmetadata: {name: disk.qcow2}\n"
                "spec: {pool: images, capacity: 1GiB}\n");
        start_daemon(f);
        wait_for(f, pool_running, "images", "pool images running");
        th_remove(f->dirs[0], "10-pool.yaml");
        wait_record(f, "pool", "images", false, "InUse");
        assert_true(pool_running(f, "images"));
        th_remove(f->dirs[0], "20-disk.yaml");
        wait_for(f, pool_gone, "images", "pool images removed once its volume is no longer declared");
        wait_record(f, "pool", "images", false, NULL);
}

static bool domain_persistent(fixture *f, const void *arg) {
        return th_domain_persistent(f->env->other, arg);
}

/* virsh undefine of the running domain leaves it transient: the event brings a define, not a restart. */
static void test_undefine_while_running_is_defined_again(void **state) {
        fixture *f = *state;
        static const char *const restarted[] = { "Stopped", "Shutdown", "Started", NULL };
        _cleanup_free_ char *uuid = NULL;

        start_running_web1(f, f->dirs[0], &uuid);
        virDomainPtr d = virDomainLookupByName(f->env->other, "web1");
        assert_non_null(d);
        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        wait_for(f, domain_persistent, "web1", "web1 defined again while it runs");
        th_libvirt_view_assert_no_event(f->events, "domain", "web1", restarted);
        assert_same_web1(f, uuid);
}

/* How many times the daemon reconciled key: each reconcile logs one line, at debug when it found the object in sync. */
static unsigned reconciles_logged(fixture *f, const char *key) {
        _cleanup_free_ char *needle = vf_printf(": %s: ", key);
        return log_count(f, needle);
}

/*
 * The lifecycle events of its own writes are its own, not news: after a cold start that defines and
 * starts a network, builds and starts a pool, and defines and starts one domain and only defines
 * another, each resource has been reconciled once, its events delivered and the daemon asleep.
 */
static void test_cold_start_reconciles_each_resource_once(void **state) {
        fixture *f = *state;
        static const char *const keys[] = { "network/lan", "pool/images", "domain/web1", "domain/off" };
        _cleanup_free_ char *pool = vf_printf("apiVersion: virtform/v1\nkind: StoragePool\nmetadata: {name: images}\n"
                                              "spec: {type: dir, path: %s/images}\n",
                                              f->env->dir);

        f->env->opts.log_level = VF_LOG_DEBUG; /* a resource found in sync is logged at debug */
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[0], "10-pool.yaml", pool); /* its directory is missing: built, then started */
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        drop_in(f->dirs[0], "30-off.yaml", "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: off}\n"
                                           "spec: {memory: 256MiB, state: shutoff}\n");
        start_daemon(f);
        wait_for(f, domain_running, "web1", "web1 running");
        wait_asleep(f);
        th_libvirt_view_assert_no_event(f->events, "domain", "web1", any_write);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (reconciles_logged(f, keys[i]) != 1) {
                        print_daemon_log(f);
                        fail_msg("%s reconciled %u times by the cold start, not once", keys[i],
                                 reconciles_logged(f, keys[i]));
                }
}

/* The records the state file holds without its -wal, as a copy of it alone shows them. */
static size_t records_without_wal(fixture *f) {
        _cleanup_free_ char *copy = vf_printf("%s/main-only.db", f->env->dir), *errmsg = NULL;
        _cleanup_(state_closep) state_store *s = NULL;
        state_record **records = NULL;
        size_t n = 0;

        th_copy_file(f->env->state, copy);
        if (state_open(copy, STATE_OPEN_READONLY | STATE_OPEN_EXISTING, &s, &errmsg) < 0)
                fail_msg("%s", errmsg);
        assert_int_equal(state_list(s, &records, &n), 0);
        state_record_list_free(records, n);
        assert_int_equal(unlink(copy), 0);
        return n;
}

/*
 * Commits leave the state file to its -wal (state/checkpoint.c); the daemon, once idle, writes it back.
 * 500 domains make some 1800 pages (each define's intent commits three): past the 1000 a checkpoint
 * waits for, short of the cap at which a commit makes one itself.
 */
static void test_idle_daemon_writes_the_journal_back(void **state) {
        fixture *f = *state;

        for (unsigned i = 0; i < 500; i++) {
                _cleanup_free_ char *name = vf_printf("vm%03u.yaml", i);
                _cleanup_free_ char *yaml = vf_printf("apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: vm%03u}\n"
                                                      "spec: {memory: 64MiB, state: shutoff}\n", i);
                th_write(f->dirs[0], name, "%s", yaml);
        }
        start_daemon(f);
        wait_record(f, "domain", "vm499", true, "Applied");
        wait_asleep(f);
        assert_int_equal(records_without_wal(f), 500);
}

/* Someone else defines web1 again with another memory size, keeping all the rest (its marker too). */
static void redefine_web1_with_2gib(fixture *f) {
        _cleanup_free_ char *xml = th_domain_xml(f->env->other, "web1", true);
        char *memory = xml ? strstr(xml, "<memory unit='KiB'>1048576</memory>") : NULL;

        assert_non_null(memory);
        memcpy(memory + strlen("<memory unit='KiB'>"), "2097152", strlen("2097152"));
        virDomainPtr d = virDomainDefineXML(f->env->other, xml);
        assert_non_null(d);
        virDomainFree(d);
}

/* The daemon's thread held in a pass, once a resource is decided, while the test acts. */
typedef struct hold {
        const char *key; /* held once this one is decided */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool holding, released;
} hold;

static void hold_after(void *userdata, const vf_report_entry *e) {
        hold *h = userdata;
        struct timespec deadline;

        if (strcmp(e->key, h->key) != 0)
                return;
        /* Never for good: a test that failed meanwhile must still be able to stop the daemon. */
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += DEADLINE_USEC / 1000000;
        pthread_mutex_lock(&h->lock);
        h->holding = true;
        pthread_cond_broadcast(&h->cond);
        while (!h->released && pthread_cond_timedwait(&h->cond, &h->lock, &deadline) == 0)
                ;
        h->released = true;
        pthread_mutex_unlock(&h->lock);
}

static void wait_held(hold *h) {
        struct timespec deadline;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += DEADLINE_USEC / 1000000;
        pthread_mutex_lock(&h->lock);
        while (!h->holding && pthread_cond_timedwait(&h->cond, &h->lock, &deadline) == 0)
                ;
        bool held = h->holding;
        pthread_mutex_unlock(&h->lock);
        assert_true(held);
}

static void release(hold *h) {
        pthread_mutex_lock(&h->lock);
        h->released = true;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
}

/*
 * Its own events are taken by count, not by time: what another connection does right after the
 * daemon's own writes is seen and put back. The cold start is held once web1 is defined and started,
 * while another connection defines web1 again: that define's event (DEFINED, as its own define's)
 * reaches the daemon with the events of its own writes, once more than it expects. Then a destroy right
 * after its own define, and an undefine right after its own start, bring other events.
 */
static void test_changes_right_after_its_own_writes_are_put_back(void **state) {
        fixture *f = *state;
        /* Static: a failed assertion leaves this frame while the daemon may still tell the observer. */
        static hold h;
        static vf_observer observer = { .decided = hold_after, .userdata = &h };

        h = (hold) { .key = "domain/web1", .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        f->observer = &observer;
        start_daemon(f);
        wait_held(&h);
        assert_true(domain_running(f, "web1"));
        redefine_web1_with_2gib(f);
        events_start(f); /* its event delivered to every connection, the daemon's too */
        release(&h);
        wait_for(f, memory_is, "<memory unit='KiB'>1048576</memory>",
                 "web1's memory put back after a define right after its own");

        destroy_web1(f);
        wait_for(f, domain_running, "web1", "web1 started again after a destroy right after its own define");

        virDomainPtr d = virDomainLookupByName(f->env->other, "web1");
        assert_non_null(d);
        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        wait_for(f, domain_persistent, "web1", "web1 defined again after an undefine right after its own start");
}

/* Sends SIGTERM once the pass has begun its fifth resource: from inside the pass, so the pass is surely under way. */
static void terminate_at_the_fifth(void *userdata, const char *key, size_t index, size_t total) {
        _Atomic size_t *begun = userdata;

        (void) key, (void) index, (void) total;
        if (atomic_fetch_add(begun, 1) + 1 == 5)
                assert_int_equal(kill(getpid(), SIGTERM), 0);
}

/*
 * A shutdown must not wait for a long pass: SIGTERM stops it between two
 * resources, says so, and what it had done stays recorded. The signal is
 * looked for at most every millisecond, so a few resources more may begin;
 * nowhere near all of them.
 */
static void test_sigterm_stops_a_pass_between_two_resources(void **state) {
        enum { N = 400 };
        fixture *f = *state;
        /* Static: a failed assertion leaves this frame while the daemon may still tell the observer. */
        static _Atomic size_t begun;
        static vf_observer observer = { .begin = terminate_at_the_fifth, .userdata = &begun };

        atomic_store(&begun, 0);
        for (int i = 0; i < N; i++) {
                _cleanup_free_ char *name = vf_printf("%03d-g.yaml", i);
                _cleanup_free_ char *yaml = vf_printf("apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: g%03d}\n"
                                                      "spec:\n  memory: 64MiB\n", i);
                drop_in(f->dirs[0], name, yaml);
        }
        f->observer = &observer;
        start_daemon(f);
        join_daemon(f);
        size_t n = atomic_load(&begun);
        if (n < 5 || n > N / 2)
                fail_msg("%zu of %d resources begun after a SIGTERM at the fifth", n, N);
        assert_int_equal(log_count(f, "Terminated: stopping after the resource in flight; "
                                      "the rest resumes at the next start"), 1);
        /* What it defined, as libvirt says (its own domain "test" aside), is what it recorded Applied. */
        virDomainPtr *domains = NULL;
        int n_domains = virConnectListAllDomains(f->env->other, &domains, 0);
        assert_true(n_domains >= 0);
        size_t defined = 0;
        for (int i = 0; i < n_domains; i++) {
                defined += virDomainGetName(domains[i])[0] == 'g';
                virDomainFree(domains[i]);
        }
        free(domains);
        state_record **recs = NULL;
        size_t n_recs = 0;
        assert_int_equal(state_list(f->reader, &recs, &n_recs), 0);
        size_t applied = 0;
        for (size_t i = 0; i < n_recs; i++) {
                const state_condition *ready = state_record_condition(recs[i], "Ready");
                applied += ready && ready->status;
        }
        state_record_list_free(recs, n_recs);
        assert_true(defined >= 4);
        assert_int_equal(applied, defined);
}

/* Someone else makes network lan, which no file declares. */
/* Without asserting: a log hook calls it on apply's thread, where cmocka cannot fail the test. */
static bool lan_defined_and_started(fixture *f) {
        virNetworkPtr net = virNetworkDefineXML(f->env->other, "<network><name>lan</name><bridge name='virbr10'/>"
                                                               "<ip address='192.168.110.1' prefix='24'/></network>");
        bool started = net && virNetworkCreate(net) == 0;

        if (net)
                virNetworkFree(net);
        return started;
}

static void define_and_start_lan(fixture *f) {
        assert_true(lan_defined_and_started(f));
}

/* A network no file declares, made by someone else while web1 waits for it: its events wake web1. */
static void test_undeclared_dependency_wakes_its_dependents(void **state) {
        fixture *f = *state;

        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        start_daemon(f);
        wait_record(f, "domain", "web1", false, "DependencyNotReady");
        define_and_start_lan(f);
        wait_record(f, "domain", "web1", true, "Applied");
        wait_for(f, domain_running, "web1", "web1 running on the network someone else started");
}

typedef struct apply_run {
        fixture *f;
        vf_report report;
        int result;
        _Atomic bool done;
} apply_run;

static void *run_apply(void *userdata) {
        apply_run *a = userdata;
        _cleanup_free_ char *errmsg = NULL;

        _cleanup_(vf_daemon_freep) vf_daemon *d = NULL;

        a->result = vf_daemon_new_apply(&a->f->env->c.opts, &a->report, &d);
        if (a->result >= 0)
                a->result = vf_daemon_apply(d, &a->f->env->c, &errmsg);
        if (a->result < 0)
                fprintf(stderr, "apply: %s\n", errmsg ? errmsg : strerror(-a->result));
        atomic_store(&a->done, true);
        return NULL;
}

static bool apply_done(fixture *f, const void *arg) {
        return atomic_load(&((const apply_run *) arg)->done);
}

/* apply --wait on its own thread, logging to log (NULL: nowhere), with a reader of its state file. */
static void start_apply(fixture *f, apply_run *a, FILE *log, pthread_t *thread) {
        _cleanup_free_ char *errmsg = NULL;

        f->env->opts.wait = true;
        assert_int_equal(vf_controller_open(&f->env->c, &f->env->opts, &errmsg), 0);
        f->env->c.log = log;
        f->env->open = true;
        assert_int_equal(state_open(f->env->state, STATE_OPEN_READONLY, &f->reader, &errmsg), 0);
        *a = (apply_run) { .f = f };
        assert_int_equal(pthread_create(thread, NULL, run_apply, a), 0);
}

static void join_apply(fixture *f, apply_run *a, pthread_t thread) {
        wait_for(f, apply_done, a, "apply --wait to return");
        assert_int_equal(pthread_join(thread, NULL), 0);
        f->env->c.log = NULL;
        assert_int_equal(a->result, 0);
}

static void define_foreign_web1(fixture *f) {
        virDomainPtr foreign = virDomainDefineXML(f->env->other, "<domain type='test'><name>web1</name>"
                                                                 "<memory>1048576</memory><os><type>hvm</type></os>"
                                                                 "</domain>");
        assert_non_null(foreign);
        virDomainFree(foreign);
}

/* apply --wait is the daemon without the files: another connection's network wakes it, and it says what it did. */
static void test_apply_wait_follows_events_and_reports_the_run(void **state) {
        fixture *f = *state;
        apply_run a;
        pthread_t thread;

        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        /* Created in the first pass: the run says so, whatever later passes find. */
        drop_in(f->dirs[0], "30-solo.yaml",
                "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: solo}\nspec: {memory: 256MiB}\n");
        f->env->opts.wait_timeout_sec = 30;
        start_apply(f, &a, NULL, &thread);
        wait_record(f, "domain", "web1", false, "DependencyNotReady");
        assert_false(atomic_load(&a.done));

        define_and_start_lan(f);
        join_apply(f, &a, thread);
        assert_true(vf_report_converged(&a.report));
        assert_true(domain_running(f, "web1"));
        /* One line each, saying what the run did: created, though a later pass found them in sync. */
        size_t n = 0;
        for (size_t i = 0; i < a.report.n_entries; i++)
                if (a.report.entries[i].kind == VF_KIND_DOMAIN) {
                        n++;
                        assert_int_equal(a.report.entries[i].result.outcome, RC_CREATED);
                }
        assert_int_equal(n, 2);
        vf_report_done(&a.report);
}

/*
 * apply follows libvirt's events only from the end of its first pass. The log line that ends the pass
 * comes just before: the network someone starts as it is written has no event apply will see.
 */
typedef struct start_lan_at_pass_end {
        fixture *f;
        bool started; /* written by the apply thread, read after it is joined */
} start_lan_at_pass_end;

static ssize_t start_lan_on_log(void *cookie, const char *buf, size_t size) {
        start_lan_at_pass_end *s = cookie;

        if (!s->started && memmem(buf, size, "loaded and reconciled", strlen("loaded and reconciled")))
                s->started = lan_defined_and_started(s->f);
        return (ssize_t) size;
}

/* What changed between apply's first look and its following events is looked at again at once. */
static void test_apply_wait_sees_what_changed_before_it_followed_events(void **state) {
        fixture *f = *state;
        start_lan_at_pass_end hook = { .f = f };
        apply_run a;
        pthread_t thread;
        FILE *log = fopencookie(&hook, "w", (cookie_io_functions_t) { .write = start_lan_on_log });

        assert_non_null(log);
        assert_int_equal(setvbuf(log, NULL, _IOLBF, 0), 0);
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        f->env->opts.wait_timeout_sec = 30;
        start_apply(f, &a, log, &thread);
        /* Waiting for the network is event-driven only: no timer would ever look at web1 again. */
        join_apply(f, &a, thread);
        fclose(log);
        assert_true(hook.started);
        assert_true(vf_report_converged(&a.report));
        assert_true(domain_running(f, "web1"));
        vf_report_done(&a.report);
}

/* What fails keeps its retry timer when apply starts following events: it is not tried again before it. */
static void test_apply_wait_tries_a_failure_again_only_at_its_retry(void **state) {
        fixture *f = *state;
        apply_run a;
        pthread_t thread;

        define_foreign_web1(f);
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        f->env->opts.wait_timeout_sec = 2;
        f->env->opts.retry_base_sec = 600;
        start_apply(f, &a, NULL, &thread);
        join_apply(f, &a, thread);
        assert_false(vf_report_converged(&a.report));

        _cleanup_(state_record_freep) state_record *rec = NULL;
        assert_int_equal(state_get(f->reader, "domain", "web1", &rec), 0);
        assert_string_equal(state_record_condition(rec, "Ready")->reason, "Conflict");
        assert_int_equal(rec->attempts, 1);
        vf_report_done(&a.report);
}

static void test_failure_retried_with_visible_backoff(void **state) {
        fixture *f = *state;

        define_foreign_web1(f);
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        drop_in(f->dirs[0], "20-web.yaml", DOMAIN_WEB("1GiB"));
        start_daemon(f);
        wait_record(f, "domain", "web1", false, "Conflict");

        _cleanup_(state_record_freep) state_record *rec = NULL;
        assert_int_equal(state_get(f->reader, "domain", "web1", &rec), 0);
        assert_true(rec->attempts >= 1);
        assert_true(rec->next_retry_usec > rec->updated_usec);
        wait_for(f, timer_armed, NULL, "a retry's timer armed");

        /* The operator removes the clash: the next retry (1 s base, so within 2 s) succeeds. */
        virDomainPtr d = virDomainLookupByName(f->env->other, "web1");
        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        wait_record(f, "domain", "web1", true, "Applied");
}

/* ---- idle ------------------------------------------------------------------------- */

static void test_idle_when_converged(void **state) {
        fixture *f = *state;

        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        start_daemon(f);
        wait_record(f, "network", "lan", true, "Applied");
        /*
         * Once the events of its own actions (network define and start) are in, it sleeps for good:
         * in epoll without a timeout, nothing readable, no timer armed. Nothing but input wakes it.
         */
        wait_asleep(f);
}

/* sd_notify's protocol: READY=1 once the first pass is done, STOPPING=1 on SIGTERM. */
static void test_notifies_systemd(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/notify", f->env->dir);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        struct timeval timeout = { .tv_sec = DEADLINE_USEC / 1000000 };
        char buf[256];
        bool ready = false, status = false, stopping = false;
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
        assert_int_equal(bind(fd, (struct sockaddr *) &addr, sizeof addr), 0);
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), 0);
        assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
        drop_in(f->dirs[0], "10-net.yaml", NETWORK_LAN);
        start_daemon(f);
        while (!ready) {
                ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
                assert_true(n > 0);
                buf[n] = 0;
                status |= strncmp(buf, "STATUS=1 resources, 0 not ready", 31) == 0;
                ready |= strcmp(buf, "READY=1") == 0;
        }
        assert_true(status);
        stop_daemon(f);
        while (!stopping) {
                ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
                assert_true(n > 0);
                buf[n] = 0;
                stopping = strcmp(buf, "STOPPING=1") == 0;
        }
        assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
        close(fd);
}

/* ---- links -------------------------------------------------------------------------- */

static bool can_make_links(void) {
        return geteuid() == 0 && system("ip link add vf-probe type veth peer name vf-probe-p 2>/dev/null") == 0 &&
               system("ip link del vf-probe") == 0;
}

/*
 * A VF whose PF (a veth in the test's namespace) is down, and the domain that
 * uses it: vf waits on the link. Teardown deletes the links the tests make.
 */
static void start_with_pf_down(fixture *f) {
        if (!can_make_links())
                th_skip("veth links need a network namespace of the test's own (CAP_SYS_ADMIN, CAP_NET_ADMIN)");
        th_sysfs *sysfs = f->sysfs = th_sysfs_new();
        th_sysfs_add_device(sysfs, "0000:3b:00.0", "ice");
        th_sysfs_add_netdev(sysfs, "0000:3b:00.0", "enp59s0f0", NULL, NULL);
        th_sysfs_add_vf(sysfs, "0000:3b:00.0", 0, "0000:3b:02.0", "vfio-pci");
        assert_int_equal(system("ip link add enp59s0f0 type veth peer name enp59s0f0p"), 0);
        f->env->opts.sysfs_root = sysfs->root;
        drop_in(f->dirs[0], "10-vf.yaml",
                "apiVersion: virtform/v1\nkind: Hostdev\nmetadata: {name: vf}\nspec: {pci: \"0000:3b:02.0\"}\n");
        drop_in(f->dirs[0], "20-db.yaml",
                "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: db}\nspec:\n  memory: 256MiB\n"
                "  hostdevs: [vf]\n");
        start_daemon(f);
        wait_record(f, "hostdev", "vf", false, "PFDown");
        /* Waiting on the link, not on a timer. */
        wait_asleep(f);
}

static void test_pf_up_requeues_hostdev(void **state) {
        fixture *f = *state;

        start_with_pf_down(f);
        assert_int_equal(system("ip link set enp59s0f0 up"), 0);
        wait_record(f, "hostdev", "vf", true, "Assigned");
        wait_for(f, domain_running, "db", "db started once its PF is up");

        /* Down again under the running guest: reported, the guest untouched. */
        assert_int_equal(system("ip link set enp59s0f0 down"), 0);
        wait_record(f, "hostdev", "vf", false, "PFDown");
        assert_true(domain_running(f, "db"));
}

/* The daemon's netlink socket of a protocol subscribed to one of groups, found as any observer would. */
static int netlink_socket(int protocol, uint32_t groups) {
        DIR *dir = opendir("/proc/self/fd");
        int found = -1;

        assert_non_null(dir);
        for (struct dirent *de; found < 0 && (de = readdir(dir));) {
                int fd = atoi(de->d_name), domain = 0, proto = 0;
                socklen_t len = sizeof(int), addr_len = sizeof(struct sockaddr_nl);
                struct sockaddr_nl addr = {};
                if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_NETLINK ||
                    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 || proto != protocol ||
                    getsockname(fd, (struct sockaddr *) &addr, &addr_len) < 0)
                        continue;
                if (addr.nl_groups & groups)
                        found = fd;
        }
        closedir(dir);
        return found;
}

/* What the daemon's epoll keeps for fd ("tfd: FD events: MASK data: DATA" in its fdinfo). */
static uint64_t epoll_data_of(int epfd, int fd) {
        _cleanup_free_ char *path = vf_printf("/proc/self/fdinfo/%d", epfd);
        FILE *in = fopen(path, "re");
        char line[256];
        int tfd;
        unsigned events;
        unsigned long long data = 0;
        bool found = false;

        assert_non_null(in);
        while (!found && fgets(line, sizeof line, in))
                found = sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) == 3 && tfd == fd;
        fclose(in);
        assert_true(found);
        return data;
}

static bool in_epoll_wait(fixture *f, const void *unused) {
        return waiting_forever_in(f) >= 0;
}

/*
 * The daemon's epoll, read while it waits in it. A late event (the kernel's
 * own link messages after a link came up) may wake it at any time; the
 * descriptor stays the same.
 */
static int daemon_epoll(fixture *f) {
        int epfd;

        while ((epfd = waiting_forever_in(f)) < 0)
                wait_for(f, in_epoll_wait, NULL, "the daemon waiting in its epoll");
        return epfd;
}

/*
 * Runs cmd while the daemon's socket is out of its epoll with a buffer of one
 * message: what cmd makes the kernel send beyond that is dropped for certain,
 * and said once with ENOBUFS. Then the daemon gets the socket back.
 */
static void overflow_socket(fixture *f, int protocol, uint32_t groups, const char *cmd) {
        const int smallest = 0; /* the kernel makes it its minimum, about one message */
        int epfd = daemon_epoll(f), sock = netlink_socket(protocol, groups);

        assert_true(sock >= 0);
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = epoll_data_of(epfd, sock) };
        assert_int_equal(epoll_ctl(epfd, EPOLL_CTL_DEL, sock, NULL), 0);
        assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &smallest, sizeof smallest), 0);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(epoll_ctl(epfd, EPOLL_CTL_ADD, sock, &ev), 0);
}

/* A filler link's messages fill the link socket, then the PF comes up: its message is lost, not its effect. */
static void test_lost_link_events_resync(void **state) {
        fixture *f = *state;

        start_with_pf_down(f);
        assert_int_equal(system("ip link add vf-filler type veth peer name vf-fillerp"), 0);
        wait_asleep(f); /* the filler's own events seen to */
        overflow_socket(f, NETLINK_ROUTE, RTMGRP_LINK,
                        "ip link set vf-filler up && ip link set vf-filler down && ip link set vf-filler up && "
                        "ip link set enp59s0f0 up");
        wait_record(f, "hostdev", "vf", true, "Assigned");
}

static bool hostdev_looked_at_again(fixture *f, const void *before) {
        return log_count(f, "hostdev/vf: unchanged") > *(const unsigned *) before;
}

/*
 * New links' uevents overflow the device socket. Nothing else brings the
 * ready hostdev back (no event names it), so seeing it processed again is
 * seeing the resync.
 */
static void test_lost_device_events_resync(void **state) {
        fixture *f = *state;

        f->env->opts.log_level = VF_LOG_DEBUG; /* a resource found in sync is logged at debug */
        start_with_pf_down(f);
        assert_int_equal(system("ip link set enp59s0f0 up"), 0);
        wait_record(f, "hostdev", "vf", true, "Assigned");
        wait_asleep(f);
        unsigned before = log_count(f, "hostdev/vf: unchanged");
        overflow_socket(f, NETLINK_KOBJECT_UEVENT, ~0u,
                        "for i in 1 2 3 4 5 6; do ip link add vf-u$i type veth peer name vf-u${i}p || exit 1; done");
        wait_for(f, hostdev_looked_at_again, &before, "hostdev/vf looked at again after the lost device events");
        assert_true(log_count(f, "device events were lost") >= 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
                T(test_drop_in_applies_and_removal_prunes),
                T(test_precedence_override_and_mask),
                T(test_directory_that_appears_later),
                T(test_directory_made_while_found_missing),
                T(test_directory_inside_another_that_appears_later),
                T(test_directory_that_vanishes_holds),
                T(test_sighup_rescans),
                T(test_logs_start_reloads_and_stop_with_time),
                T(test_bad_file_is_terminal_until_fixed),
                T(test_rename_is_an_update),
                T(test_git_mv_with_edit_is_an_update),
                T(test_move_between_layers_is_an_update),
                T(test_file_truncated_is_read_once_closed),
                T(test_sighup_waits_for_a_file_open_for_writing),
                T(test_file_linked_in_is_not_held),
                T(test_swap_file_open_for_writing_holds_nothing),
                T(test_file_replaced_in_place_is_read_once_closed),
                T(test_file_never_closed_is_read_after_the_hold),
                T(test_out_of_band_changes_are_put_back),
                T(test_out_of_band_pool_changes_are_put_back),
                T(test_failed_full_pass_is_tried_again),
                T(test_pool_waiting_for_its_volume_goes_with_it),
                T(test_undefine_while_running_is_defined_again),
                T(test_cold_start_reconciles_each_resource_once),
                T(test_idle_daemon_writes_the_journal_back),
                T(test_changes_right_after_its_own_writes_are_put_back),
                T(test_undeclared_dependency_wakes_its_dependents),
                T(test_sigterm_stops_a_pass_between_two_resources),
                T(test_apply_wait_follows_events_and_reports_the_run),
                T(test_apply_wait_sees_what_changed_before_it_followed_events),
                T(test_apply_wait_tries_a_failure_again_only_at_its_retry),
                T(test_failure_retried_with_visible_backoff),
                T(test_idle_when_converged),
                T(test_notifies_systemd),
                T(test_pf_up_requeues_hostdev),
                T(test_lost_link_events_resync),
                T(test_lost_device_events_resync),
#undef T
        };

        /*
         * The daemon reads these through a signalfd, blocked from the start: cmocka restores the mask
         * it saw before a test when the test fails, and the teardown's SIGTERM must not kill the run.
         */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        /* Links live in a network namespace of this process alone, gone when it exits. */
        (void) th_enter_netns(); /* without it the link test skips */
        return th_run_group(tests, NULL, NULL, NULL);
}
