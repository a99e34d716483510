/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A real hypervisor under faults: the test starts its own libvirtd and
 * virtlogd (a private socket directory, no autostarted network, no firewall
 * change), runs the virtform daemon in-process against qemu:///system through
 * that socket, with a TCG guest, and then kills libvirtd and the guest's QEMU
 * behind its back. Every daemon and guest it started is stopped by PID.
 */
#include "tests/env.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define DEADLINE_USEC (120 * 1000000LL)
/* A watchdog for the whole run: a hung hypervisor must fail the test, not hang the suite. */
#define WATCHDOG_SEC 400

#define GUEST                                                                                                  \
        "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: vf-tcg-guest}\nspec:\n  memory: 64MiB\n"     \
        "  type: qemu\n  arch: x86_64\n  state: running\n"

typedef struct fixture {
        th_env *env;
        char *sockdir;
        char *libvirtd_conf;
        char *log;
        pid_t libvirtd, virtlogd;
        vf_daemon *daemon;
        pthread_t thread;
        bool running;
        state_store *reader;
} fixture;

/* Daemons the test starts die with it (PDEATHSIG), and write to its log, not to its stdout. */
static pid_t start_process(const char *const *argv, const char *log) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                        _exit(127);
                execv(argv[0], (char **) argv);
                _exit(127);
        }
        return pid;
}

/* SIGTERM, then SIGKILL if it is still there after ten seconds. */
static void stop_process(pid_t *pid) {
        if (*pid <= 0)
                return;
        kill(*pid, SIGTERM);
        for (int i = 0; i < 1000 && waitpid(*pid, NULL, WNOHANG) == 0; i++)
                usleep(10 * 1000);
        if (waitpid(*pid, NULL, WNOHANG) == 0) {
                kill(*pid, SIGKILL);
                waitpid(*pid, NULL, 0);
        }
        *pid = 0;
}

static bool socket_exists(const char *path) {
        return access(path, F_OK) == 0;
}

static void wait_until(bool (*p)(fixture *f, const void *arg), fixture *f, const void *arg, const char *what) {
        int64_t deadline = vf_now_monotonic_usec() + DEADLINE_USEC;
        while (!p(f, arg)) {
                if (vf_now_monotonic_usec() > deadline)
                        fail_msg("timed out waiting for %s", what);
                usleep(20 * 1000); /* polling the condition, not waiting for a time */
        }
}

static bool libvirtd_listening(fixture *f, const void *arg) {
        _cleanup_free_ char *sock = vf_printf("%s/libvirt-sock", f->sockdir);
        return socket_exists(sock);
}

static void start_libvirtd(fixture *f) {
        _cleanup_free_ char *sock = vf_printf("%s/libvirt-sock", f->sockdir);
        const char *argv[] = { "/usr/sbin/libvirtd", "-f", f->libvirtd_conf, NULL };

        (void) unlink(sock);
        f->libvirtd = start_process(argv, f->log);
        wait_until(libvirtd_listening, f, NULL, "libvirtd's socket");
}

static bool have_libvirtd(void) {
        return geteuid() == 0 && access("/usr/sbin/libvirtd", X_OK) == 0 && access("/usr/sbin/virtlogd", X_OK) == 0 &&
               access("/usr/bin/qemu-system-x86_64", X_OK) == 0;
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        vf_daemon_options o = {};

        /*
         * First of all: the signals the daemon reads must be blocked before any
         * thread exists, and libvirt's event loop registered before any
         * connection is opened, or remote connections deliver no events.
         */
        assert_int_equal(vf_daemon_new(&o, &f->daemon), 0);
        f->env = th_env_new();
        f->sockdir = vf_printf("%s/run", f->env->dir);
        f->libvirtd_conf = vf_printf("%s/libvirtd.conf", f->env->dir);
        f->log = vf_printf("%s/daemons.log", f->env->dir);
        assert_int_equal(mkdir(f->sockdir, 0755), 0);
        th_write(f->env->dir, "libvirtd.conf",
                 "unix_sock_dir = \"%s\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n"
                 "listen_tls = 0\nlisten_tcp = 0\n",
                 f->sockdir);
        f->env->opts.uri = vf_printf("qemu:///system?socket=%s/libvirt-sock", f->sockdir);
        f->env->opts.retry_base_sec = 1;
        f->env->opts.retry_max_sec = 2;
        *state = f;
        return 0;
}

static void remove_guest(fixture *f) {
        virConnectPtr conn = f->libvirtd > 0 ? virConnectOpen(f->env->opts.uri) : NULL;
        virDomainPtr d = conn ? virDomainLookupByName(conn, "vf-tcg-guest") : NULL;
        if (d) {
                virDomainDestroy(d);
                virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM);
                virDomainFree(d);
        }
        if (conn)
                virConnectClose(conn);
}

static pid_t guest_pid(void);

static int teardown(void **state) {
        fixture *f = *state;

        if (f->running) {
                kill(getpid(), SIGTERM);
                pthread_join(f->thread, NULL);
        }
        vf_daemon_free(f->daemon);
        state_close(f->reader);
        th_env_close(f->env);
        remove_guest(f);
        pid_t guest = guest_pid();
        if (guest > 0)
                kill(guest, SIGKILL); /* libvirtd did not take it down: the test does, by PID */
        stop_process(&f->libvirtd);
        stop_process(&f->virtlogd);
        free((char *) f->env->opts.uri);
        f->env->opts.uri = "test:///default";
        th_env_free(f->env);
        free(f->sockdir);
        free(f->libvirtd_conf);
        free(f->log);
        free(f);
        return 0;
}

static void *run_daemon(void *userdata) {
        fixture *f = userdata;
        _cleanup_free_ char *errmsg = NULL;
        bool converged;

        if (vf_daemon_run(f->daemon, &f->env->c, &converged, &errmsg) < 0)
                fprintf(stderr, "daemon: %s\n", errmsg ? errmsg : "failed");
        return NULL;
}

static void start_daemon(fixture *f) {
        _cleanup_free_ char *errmsg = NULL;

        f->env->opts.daemon = true;
        if (vf_controller_open(&f->env->c, &f->env->opts, &errmsg) < 0)
                fail_msg("cannot open the controller: %s", errmsg);
        f->env->c.log = NULL;
        f->env->open = true;
        assert_int_equal(pthread_create(&f->thread, NULL, run_daemon, f), 0);
        f->running = true;
        assert_int_equal(state_open(f->env->state, STATE_OPEN_READONLY, &f->reader, &errmsg), 0);
}

/* The guest's QEMU, by the pid file libvirt keeps; 0 when it does not run. */
static pid_t guest_pid(void) {
        _cleanup_free_ char *text = NULL;
        if (vf_read_file("/run/libvirt/qemu/vf-tcg-guest.pid", 64, &text, NULL) < 0)
                return 0;
        pid_t pid = (pid_t) strtol(text, NULL, 10);
        return pid > 0 && kill(pid, 0) == 0 ? pid : 0;
}

static bool guest_runs_other_than(fixture *f, const void *arg) {
        pid_t old = *(const pid_t *) arg;
        pid_t now = guest_pid();
        return now > 0 && now != old;
}

static bool ready_since(fixture *f, const void *arg) {
        int64_t since = *(const int64_t *) arg;
        _cleanup_(state_record_freep) state_record *rec = NULL;
        if (state_get(f->reader, "domain", "vf-tcg-guest", &rec) < 0)
                return false;
        const state_condition *ready = state_record_condition(rec, "Ready");
        return ready && ready->status && rec->updated_usec > since;
}

static void test_libvirtd_restart_and_killed_guest(void **state) {
        fixture *f = *state;
        const char *virtlogd[] = { "/usr/sbin/virtlogd", NULL };
        pid_t none = 0;

        if (!have_libvirtd())
                skip();
        f->virtlogd = start_process(virtlogd, f->log);
        start_libvirtd(f);
        remove_guest(f); /* left over by a run that was killed before its teardown */
        th_write(f->env->conf, "10-guest.yaml", GUEST);
        start_daemon(f);
        wait_until(guest_runs_other_than, f, &none, "the guest's QEMU");

        /* libvirtd dies and comes back: virtform reconnects, resyncs, and the guest keeps running. */
        int64_t before_restart = vf_now_realtime_usec();
        kill(f->libvirtd, SIGKILL);
        waitpid(f->libvirtd, NULL, 0);
        f->libvirtd = 0;
        start_libvirtd(f);
        wait_until(ready_since, f, &before_restart, "a resync after libvirtd's restart");
        wait_until(guest_runs_other_than, f, &none, "the guest running after the resync");

        /* The guest's QEMU is killed out of band: spec.state is running, so it is started again. */
        pid_t running = guest_pid();
        kill(running, SIGKILL);
        wait_until(guest_runs_other_than, f, &running, "the guest started again");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_libvirtd_restart_and_killed_guest, setup, teardown),
        };

        /* One libvirtd on /run/libvirt at a time, whichever build directory runs this. */
        int lock = open("/run/virtform-test-libvirtd.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock < 0 || flock(lock, LOCK_EX) < 0)
                return 77;
        alarm(WATCHDOG_SEC);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
