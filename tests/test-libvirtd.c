/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A real hypervisor under faults: the test starts its own libvirtd and
 * virtlogd, runs the virtform daemon in-process against qemu:///system through
 * their socket, with a TCG guest, and then kills libvirtd and the guest's QEMU
 * behind its back. Every daemon and guest it started is stopped by PID.
 *
 * Nothing of the host's libvirt is touched: the daemons are private, in
 * namespaces of the test's own (tests/libvirtd.h). The guests' names are the
 * test's own (its PID in them), and the private tree goes with the temp tree.
 */
#include "tests/env.h"
#include "tests/libvirtd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#define DEADLINE_USEC (120 * 1000000LL)
/* A watchdog for the whole run: a hung hypervisor must fail the test, not hang the suite. */
#define WATCHDOG_SEC 600

#define GUEST_STATE(state)                                                                       \
        "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: %s}\nspec:\n  memory: %s\n"      \
        "  type: qemu\n  arch: x86_64\n  state: " state "\n"
/* A guest without an operating system: nothing in it answers an ACPI shutdown request. */
#define GUEST GUEST_STATE("running")

typedef struct fixture {
        th_env *env;
        char *guest;
        char *second_guest;
        th_libvirtd *libvirtd;
        vf_daemon *daemon;
        pthread_t thread;
        bool running;
        state_store *reader;
        FILE *log; /* the daemons' log lines, one per resource reconciled */
} fixture;

static void wait_until(bool (*p)(fixture *f, const void *arg), fixture *f, const void *arg, const char *what) {
        int64_t deadline = vf_now_monotonic_usec() + DEADLINE_USEC;
        while (!p(f, arg)) {
                if (vf_now_monotonic_usec() > deadline)
                        fail_msg("timed out waiting for %s", what);
                usleep(20 * 1000); /* polling the condition, not waiting for a time */
        }
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
        f->guest = vf_printf("vf-guest-%d", (int) getpid());
        f->second_guest = vf_printf("vf-guest-%d-b", (int) getpid());
        f->libvirtd = th_libvirtd_new(f->env->dir);
        f->env->opts.uri = f->libvirtd->uri;
        f->env->opts.retry_base_sec = 1;
        f->env->opts.retry_max_sec = 2;
        *state = f;
        return 0;
}

/* The test's own guests, in the test's own libvirtd. */
static void remove_guests(fixture *f) {
        virConnectPtr conn = f->libvirtd->libvirtd > 0 ? virConnectOpen(f->env->opts.uri) : NULL;
        const char *names[] = { f->guest, f->second_guest };

        for (size_t i = 0; conn && i < ELEMENTSOF(names); i++) {
                virDomainPtr d = virDomainLookupByName(conn, names[i]);
                if (!d)
                        continue;
                virDomainDestroy(d);
                virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM);
                virDomainFree(d);
        }
        if (conn)
                virConnectClose(conn);
}

static int teardown(void **state) {
        fixture *f = *state;

        if (f->running) {
                kill(getpid(), SIGTERM);
                pthread_join(f->thread, NULL);
        }
        vf_daemon_free(f->daemon);
        state_close(f->reader);
        th_env_close(f->env);
        if (f->log)
                fclose(f->log);
        remove_guests(f);
        th_libvirtd_free(f->libvirtd);
        f->env->opts.uri = "test:///default";
        th_env_free(f->env);
        free(f->guest);
        free(f->second_guest);
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
        if (!f->log) {
                _cleanup_free_ char *path = vf_printf("%s/daemon.log", f->env->dir);
                f->log = fopen(path, "ae");
                assert_non_null(f->log);
                assert_int_equal(setvbuf(f->log, NULL, _IOLBF, 0), 0);
        }
        f->env->c.log = f->log;
        f->env->open = true;
        assert_int_equal(pthread_create(&f->thread, NULL, run_daemon, f), 0);
        f->running = true;
        assert_int_equal(state_open(f->env->state, STATE_OPEN_READONLY, &f->reader, &errmsg), 0);
}

static bool guest_runs_other_than(fixture *f, const void *arg) {
        pid_t old = *(const pid_t *) arg;
        pid_t now = th_libvirtd_guest_pid(f->guest);
        return now > 0 && now != old;
}

static int64_t guest_generation(fixture *f) {
        _cleanup_(state_record_freep) state_record *rec = NULL;
        assert_int_equal(state_get(f->reader, "domain", f->guest, &rec), 0);
        return rec->generation;
}

/* A generation after arg applied and Ready: a pass that finds nothing to do writes nothing to show it ran. */
static bool applied_after(fixture *f, const void *arg) {
        int64_t generation = *(const int64_t *) arg;
        _cleanup_(state_record_freep) state_record *rec = NULL;
        if (state_get(f->reader, "domain", f->guest, &rec) < 0)
                return false;
        const state_condition *ready = state_record_condition(rec, "Ready");
        return ready && ready->status && rec->generation > generation && rec->observed_generation == rec->generation;
}

static bool guest_autostarts(fixture *f) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);

        assert_non_null(conn);
        bool autostart = th_domain_autostart(conn, f->guest);
        virConnectClose(conn);
        return autostart;
}

/* What the daemon recorded of its connection, as `virtform status` reads it: arg is in it. */
static bool connection_is(fixture *f, const void *arg) {
        _cleanup_free_ char *value = NULL;
        return state_meta_get(f->reader, STATE_META_DAEMON, &value) >= 0 && value && strstr(value, arg);
}

static void test_libvirtd_restart_and_killed_guest(void **state) {
        fixture *f = *state;
        pid_t none = 0;

        th_libvirtd_start(f->libvirtd);
        th_write(f->env->conf, "10-guest.yaml", GUEST, f->guest, "64MiB");
        start_daemon(f);
        wait_until(guest_runs_other_than, f, &none, "the guest's QEMU");

        /*
         * libvirtd dies and comes back: virtform reconnects, resyncs, and the guest keeps running. The
         * resync shows by what it applies: autostart, declared while there was no libvirtd to tell.
         */
        wait_until(connection_is, f, " connected", "the daemon saying it is connected");
        th_libvirtd_kill(f->libvirtd);
        wait_until(connection_is, f, " reconnecting ", "the daemon saying it is reconnecting");
        int64_t before_restart = guest_generation(f);
        th_write(f->env->conf, "10-guest.yaml", GUEST "  autostart: true\n", f->guest, "64MiB");
        th_libvirtd_start(f->libvirtd);
        wait_until(applied_after, f, &before_restart, "a resync after libvirtd's restart");
        wait_until(connection_is, f, " connected", "the daemon saying it is connected again");
        wait_until(guest_runs_other_than, f, &none, "the guest running after the resync");
        assert_true(guest_autostarts(f));

        /* The guest's QEMU is killed out of band: spec.state is running, so it is started again. */
        pid_t running = th_libvirtd_guest_pid(f->guest);
        kill(running, SIGKILL);
        wait_until(guest_runs_other_than, f, &running, "the guest started again");
}

/* ---- a graceful shutdown the guest ignores ------------------------------------ */

/* What libvirt itself says, through a connection of the test's own. */
static int domain_active(const fixture *f, const char *name) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        virDomainPtr d = conn ? virDomainLookupByName(conn, name) : NULL;
        int active = d ? virDomainIsActive(d) : -1;

        if (d)
                virDomainFree(d);
        if (conn)
                virConnectClose(conn);
        return active;
}

static bool defined_with(fixture *f, const void *arg) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        virDomainPtr d = conn ? virDomainLookupByName(conn, f->second_guest) : NULL;
        _cleanup_free_ char *xml = d ? virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE) : NULL;

        if (d)
                virDomainFree(d);
        if (conn)
                virConnectClose(conn);
        return xml && strstr(xml, arg);
}

static bool both_running(fixture *f, const void *arg) {
        return th_libvirtd_guest_pid(f->guest) > 0 && th_libvirtd_guest_pid(f->second_guest) > 0;
}

static bool first_guest_stopped(fixture *f, const void *arg) {
        return domain_active(f, f->guest) == 0;
}

static bool record_reason(fixture *f, const void *arg) {
        _cleanup_(state_record_freep) state_record *rec = NULL;
        if (state_get(f->reader, "domain", f->guest, &rec) < 0)
                return false;
        const state_condition *ready = state_record_condition(rec, "Ready");
        return ready && vf_streq_ptr(ready->reason, arg);
}

static void stop_daemon(fixture *f) {
        kill(getpid(), SIGTERM);
        assert_int_equal(pthread_join(f->thread, NULL), 0);
        f->running = false;
        vf_daemon_free(f->daemon);
        f->daemon = NULL;
        state_close(f->reader);
        f->reader = NULL;
        th_env_close(f->env);
}

/*
 * One guest is asked to shut down and ignores it for a minute. Meanwhile an
 * edit of the other guest is applied at once, and SIGTERM stops the daemon at
 * once; the shutdown's deadline is kept in the state, so the next daemon
 * destroys the guest when it has passed.
 */
static void test_edit_applies_during_a_graceful_shutdown(void **state) {
        fixture *f = *state;
        vf_daemon_options o = {};

        th_libvirtd_start(f->libvirtd);
        th_write(f->env->conf, "10-guest.yaml", GUEST, f->guest, "64MiB");
        th_write(f->env->conf, "20-guest.yaml", GUEST, f->second_guest, "64MiB");
        f->env->opts.shutdown_timeout_sec = 60;
        f->env->opts.debounce_msec = 50;
        start_daemon(f);
        wait_until(both_running, f, NULL, "both guests' QEMU");

        /* Both far from the 60 s the first guest may take: the loop never waits for it. */
        int64_t asked = vf_now_monotonic_usec();
        th_write(f->env->conf, "10-guest.yaml", GUEST_STATE("shutoff"), f->guest, "64MiB");
        wait_until(record_reason, f, "ShuttingDown", "the first guest shutting down");
        assert_true(vf_now_monotonic_usec() - asked < 10 * 1000000LL);

        int64_t edited = vf_now_monotonic_usec();
        th_write(f->env->conf, "20-guest.yaml", GUEST, f->second_guest, "96MiB");
        wait_until(defined_with, f, "<memory unit='KiB'>98304</memory>", "the edit of the second guest");
        assert_true(vf_now_monotonic_usec() - edited < 10 * 1000000LL);
        assert_int_equal(domain_active(f, f->guest), 1);

        int64_t terminated = vf_now_monotonic_usec();
        stop_daemon(f);
        assert_true(vf_now_monotonic_usec() - terminated < 10 * 1000000LL);
        assert_int_equal(domain_active(f, f->guest), 1);

        /* A new daemon with a shorter timeout: the request made a while ago is past it, so it is destroyed. */
        f->env->opts.shutdown_timeout_sec = 1;
        assert_int_equal(vf_daemon_new(&o, &f->daemon), 0);
        start_daemon(f);
        wait_until(first_guest_stopped, f, NULL, "the first guest destroyed at its deadline");
        wait_until(record_reason, f, "Applied", "the first guest settled");
        assert_int_equal(domain_active(f, f->second_guest), 1);
}

/* Set to the hypervisor's URI, the next destroy is made first through a connection of the test's own. */
static const char *destroy_first_on;

int virDomainDestroy(virDomainPtr dom) {
        int (*real)(virDomainPtr) = dlsym(RTLD_NEXT, "virDomainDestroy");
        const char *uri = TAKE_PTR(destroy_first_on);

        if (uri) {
                virConnectPtr conn = virConnectOpen(uri);
                virDomainPtr d = conn ? virDomainLookupByName(conn, virDomainGetName(dom)) : NULL;
                assert_non_null(d);
                assert_int_equal(real(d), 0);
                virDomainFree(d);
                virConnectClose(conn);
        }
        return real(dom);
}

/*
 * A guest that stops just as its shutdown deadline comes (or a killed run's destroy still in flight
 * inside libvirtd) makes the destroy at the deadline fail with "domain is not running". What it was
 * for is done: the pass is Ready, and the log keeps libvirt's refusal.
 */
static void test_guest_stopped_at_its_deadline_fails_nothing(void **state) {
        fixture *f = *state;

        th_libvirtd_start(f->libvirtd);
        f->env->opts.shutdown_timeout_sec = 1;
        th_write(f->env->conf, "10-guest.yaml", GUEST, f->guest, "64MiB");
        th_env_pass(f->env);
        assert_int_equal(domain_active(f, f->guest), 1);
        th_write(f->env->conf, "10-guest.yaml", GUEST_STATE("shutoff"), f->guest, "64MiB");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_DOMAIN, f->guest, RC_WAITING, "ShuttingDown");

        usleep(1100 * 1000); /* past the deadline, which is a time: nothing to poll for */
        destroy_first_on = f->env->opts.uri;
        th_env_pass(f->env);
        assert_null(destroy_first_on);
        assert_true(vf_report_converged(&f->env->report));
        assert_int_equal(domain_active(f, f->guest), 0);

        state_event *events = NULL;
        size_t n = 0;
        assert_int_equal(state_event_list(f->env->c.store, "domain", f->guest, 0, &events, &n), 0);
        assert_true(n > 0);
        assert_string_equal(events[n - 1].action, "destroy");
        assert_string_equal(events[n - 1].outcome, "failed");
        assert_non_null(strstr(events[n - 1].message, "not running; found done already"));
        state_event_list_free(events, n);
}

/* ---- its own writes -------------------------------------------------------------- */

/* How many times the daemon reconciled domain name: one log line each, at debug when it found it in sync. */
static unsigned reconciles_logged(fixture *f, const char *name) {
        _cleanup_free_ char *path = vf_printf("%s/daemon.log", f->env->dir), *needle = vf_printf(": domain/%s: ", name);
        return th_count_in_file(path, needle);
}

static bool second_guest_reconciled_twice(fixture *f, const void *unused) {
        return reconciles_logged(f, f->second_guest) >= 2;
}

/* Someone else undefines the second guest, which is shut off. */
static void undefine_second_guest(fixture *f) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        virDomainPtr d = conn ? virDomainLookupByName(conn, f->second_guest) : NULL;

        assert_non_null(d);
        assert_int_equal(virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM), 0);
        virDomainFree(d);
        virConnectClose(conn);
}

static void destroy_guest(fixture *f) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        virDomainPtr d = conn ? virDomainLookupByName(conn, f->guest) : NULL;

        assert_non_null(d);
        assert_int_equal(virDomainDestroy(d), 0);
        virDomainFree(d);
        virConnectClose(conn);
}

/*
 * QEMU reports a start as RESUMED and STARTED, a destroy as SHUTDOWN and STOPPED: the daemon takes the
 * events of its own define and start as its own, so that its cold start reconciles the guest once, and
 * still sees someone else's destroy. libvirtd tells one connection its events in order: once the daemon
 * has answered the undefine of the second guest (which sorts after the first in a pass), it has read
 * every event of its cold start, and a first guest queued by them would have been reconciled by then.
 */
static void test_cold_start_reconciles_once_and_sees_a_destroy(void **state) {
        fixture *f = *state;

        th_libvirtd_start(f->libvirtd);
        th_write(f->env->conf, "10-guest.yaml", GUEST, f->guest, "64MiB");
        th_write(f->env->conf, "20-guest.yaml", GUEST_STATE("shutoff"), f->second_guest, "64MiB");
        f->env->opts.log_level = VF_LOG_DEBUG; /* a resource found in sync is logged at debug */
        start_daemon(f);
        wait_until(defined_with, f, "<domain", "the second guest defined");
        pid_t first = 0;
        wait_until(guest_runs_other_than, f, &first, "the guest's QEMU");
        first = th_libvirtd_guest_pid(f->guest);

        undefine_second_guest(f);
        wait_until(second_guest_reconciled_twice, f, NULL, "the daemon answering the second guest's undefine");
        wait_until(defined_with, f, "<domain", "the second guest defined again");
        assert_int_equal(reconciles_logged(f, f->guest), 1);

        destroy_guest(f);
        wait_until(guest_runs_other_than, f, &first, "the guest started again after someone else's destroy");
}

/* ---- a network changed under a running guest ------------------------------------ */

#define NETWORK_LAN(mtu)                                                                                     \
        "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: vflan}\nspec:\n  forward: isolated\n"    \
        "  bridge: vflan\n  mtu: " mtu "\n"
#define GUEST_ON_LAN(state) GUEST_STATE(state) "  interfaces: [{network: vflan}]\n"

/* What runs of the network, read by a connection of the test's own: arg is in its live XML. */
static bool network_runs_with(fixture *f, const void *arg) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        virNetworkPtr n = conn ? virNetworkLookupByName(conn, "vflan") : NULL;
        _cleanup_free_ char *xml = n && virNetworkIsActive(n) == 1 ? virNetworkGetXMLDesc(n, 0) : NULL;

        if (n)
                virNetworkFree(n);
        if (conn)
                virConnectClose(conn);
        return xml && strstr(xml, arg);
}

static bool network_restart_pending(fixture *f, const void *arg) {
        _cleanup_(state_record_freep) state_record *rec = NULL;
        if (state_get(f->reader, "network", "vflan", &rec) < 0)
                return false;
        const state_condition *c = state_record_condition(rec, "RestartPending");
        return c && c->status;
}

static void remove_network(fixture *f) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        virNetworkPtr n = conn ? virNetworkLookupByName(conn, "vflan") : NULL;

        if (n) {
                (void) virNetworkDestroy(n);
                (void) virNetworkUndefine(n);
                virNetworkFree(n);
        }
        if (conn)
                virConnectClose(conn);
}

/*
 * A network changed while a guest runs on it is not restarted under the
 * guest; once the guest stops, the daemon restarts it with the new
 * definition by itself: the guest's stop brings it back.
 */
static void test_network_restarted_once_its_guest_stops(void **state) {
        fixture *f = *state;

        th_libvirtd_start(f->libvirtd);
        th_write(f->env->conf, "10-lan.yaml", NETWORK_LAN("1500"));
        th_write(f->env->conf, "20-guest.yaml", GUEST_ON_LAN("running"), f->guest, "64MiB");
        f->env->opts.shutdown_timeout_sec = 1;
        f->env->opts.debounce_msec = 50;
        start_daemon(f);
        pid_t none = 0;
        wait_until(guest_runs_other_than, f, &none, "the guest's QEMU");
        wait_until(network_runs_with, f, "<mtu size='1500'/>", "the network");

        th_write(f->env->conf, "10-lan.yaml", NETWORK_LAN("1400"));
        wait_until(network_restart_pending, f, NULL, "the network's RestartPending");
        assert_true(network_runs_with(f, "<mtu size='1500'/>"));
        assert_int_equal(domain_active(f, f->guest), 1);

        th_write(f->env->conf, "20-guest.yaml", GUEST_ON_LAN("shutoff"), f->guest, "64MiB");
        wait_until(network_runs_with, f, "<mtu size='1400'/>", "the network restarted with its new MTU");
        assert_int_equal(domain_active(f, f->guest), 0);
        stop_daemon(f);
        remove_network(f);
}

/* ---- a git mv pulled into the watched directory ------------------------------------ */

static bool source_is(fixture *f, const void *path) {
        _cleanup_(state_record_freep) state_record *rec = NULL;
        return state_get(f->reader, "domain", f->guest, &rec) >= 0 && vf_streq_ptr(rec->source_file, path);
}

/*
 * The watched directory is a git clone; upstream renames the running guest's
 * file, and a git pull brings it; then the file is renamed again with mv. The
 * daemon records the new file and libvirt sees nothing: no event, the same
 * UUID, the same QEMU process.
 */
static void test_git_mv_pulled_changes_nothing_in_libvirt(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *origin = vf_printf("%s/origin", f->env->dir),
                            *to = vf_printf("%s/30-guest.yaml", f->env->conf),
                            *moved = vf_printf("%s/40-guest.yaml", f->env->conf);
        _cleanup_free_ char *init = vf_printf("git init -q '%s' && cd '%s' && git add . && "
                                              "git -c user.name=t -c user.email=t@t commit -qm guest && "
                                              "git clone -q '%s' '%s'", origin, origin, origin, f->env->conf);
        _cleanup_free_ char *mv = vf_printf("cd '%s' && git mv 10-guest.yaml 30-guest.yaml && "
                                            "git -c user.name=t -c user.email=t@t commit -qm rename && "
                                            "cd '%s' && git pull -q", origin, f->env->conf);
        static const char *const any_write[] = { "Defined", "Undefined", "Started", "Stopped", "Shutdown", NULL };
        pid_t none = 0;

        th_libvirtd_start(f->libvirtd);
        assert_int_equal(mkdir(origin, 0755), 0);
        th_write(origin, "10-guest.yaml", GUEST, f->guest, "64MiB");
        assert_int_equal(system(init), 0);
        start_daemon(f);
        wait_until(guest_runs_other_than, f, &none, "the guest's QEMU");
        /* Started, as libvirt said before the record: its event comes before the observer's barrier. */
        wait_until(record_reason, f, "Applied", "the guest applied");
        pid_t qemu = th_libvirtd_guest_pid(f->guest);
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        assert_non_null(conn);
        _cleanup_free_ char *uuid = th_domain_uuid(conn, f->guest);
        th_libvirt_view *events = th_libvirt_view_new(conn, "qemu");

        assert_int_equal(system(mv), 0);
        wait_until(source_is, f, to, "the guest recorded from 30-guest.yaml");
        /* And a plain mv in the clone, whose events say the old name is gone before the new one is there. */
        assert_int_equal(rename(to, moved), 0);
        wait_until(source_is, f, moved, "the guest recorded from 40-guest.yaml");
        th_libvirt_view_assert_no_event(events, "domain", f->guest, any_write);
        _cleanup_free_ char *now = th_domain_uuid(conn, f->guest);
        assert_string_equal(now, uuid);
        assert_int_equal(th_libvirtd_guest_pid(f->guest), qemu);
        th_libvirt_view_free(events);
        virConnectClose(conn);
}

/* ---- a cloud-init seed on a guest's cdrom ------------------------------------------- */

#define SEED_POOL                                                                                      \
        "apiVersion: virtform/v1\nkind: StoragePool\nmetadata: {name: %s}\nspec:\n  type: dir\n"         \
        "  path: /var/lib/libvirt/images/%s\n"
/* A seed: its name, its pool, and the host name its user-data gives. */
#define SEED                                                                                           \
        "apiVersion: virtform/v1\nkind: CloudInit\nmetadata: {name: %s}\nspec:\n  pool: %s\n"           \
        "  userData: |\n    #cloud-config\n    hostname: %s\n"
/* A guest booting from its seed alone, on the machine its base document names (none: the default). */
#define SEEDED_GUEST(machine)                                                                          \
        GUEST "  disks: [{cloudInit: %s}]\n  xml: \"<domain><os><type" machine ">hvm</type></os></domain>\"\n"

/* The seed's cdrom as the running guest has it: one <disk> of libvirt's live XML, whole. */
static char *live_cdrom(virConnectPtr conn, const char *guest) {
        _cleanup_free_ char *xml = th_domain_xml(conn, guest, false);
        assert_non_null(xml);
        assert_null(strstr(xml, "cloudinit"));
        assert_null(strstr(xml, "https://virtform.org/xmlns/policy/1"));
        const char *disk = strstr(xml, "<disk type='volume' device='cdrom'>");
        assert_non_null(disk);
        const char *end = strstr(disk, "</disk>");
        assert_non_null(end);
        return strndup(disk, end - disk);
}

/* What the seed volume holds, as an ISO reader sees it: its volume id, and user-data with that host name. */
static void assert_seed_reads_back(fixture *f, virConnectPtr conn, const char *pool_name, const char *seed,
                                   const char *hostname) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(conn, pool_name);
        _cleanup_free_ char *name = vf_printf("%s.cidata.iso", seed);
        virStorageVolPtr vol = pool ? virStorageVolLookupByName(pool, name) : NULL;
        _cleanup_free_ char *path = vol ? virStorageVolGetPath(vol) : NULL;
        _cleanup_free_ char *out = vf_printf("%s/%s.user-data", f->env->dir, seed);
        _cleanup_free_ char *want = vf_printf("hostname: %s", hostname);

        assert_non_null(path);
        const char *pvd[] = { "/usr/bin/xorriso", "-indev", path, "-pvd_info", NULL };
        _cleanup_(th_run_done) th_run info = th_spawn(pvd, NULL);
        if (info.status != 0 || !strstr(info.out, "Volume Id    : cidata"))
                fail_msg("xorriso -pvd_info %s exited %d:\n%s%s", path, info.status, info.out, info.err);
        const char *extract[] = { "/usr/bin/xorriso", "-osirrox", "on", "-indev", path, "-extract", "/user-data",
                                  out, NULL };
        (void) unlink(out);
        _cleanup_(th_run_done) th_run extracted = th_spawn(extract, NULL);
        if (extracted.status != 0)
                fail_msg("xorriso -extract exited %d:\n%s", extracted.status, extracted.err);
        _cleanup_free_ char *user_data = th_slurp(out);
        assert_non_null(strstr(user_data, "#cloud-config"));
        assert_non_null(strstr(user_data, want));
        virStorageVolFree(vol);
        virStoragePoolFree(pool);
}

/*
 * Two TCG guests boot with a seed each on a cdrom: the default machine
 * (i440fx) puts it on IDE, q35 on SATA. libvirt runs them with the seed's
 * volume, read-only, in the seed's pool, and never sees virtform's own
 * attribute; the seeds read back as NoCloud expects. A second pass writes
 * nothing, a rebuilt seed restarts nothing, and a seed moved to another pool
 * is a new definition.
 */
static void test_guests_boot_with_their_seeds(void **state) {
        fixture *f = *state;

        th_libvirtd_start(f->libvirtd);
        /* A host prepared for images has the directories: the pools are defined and started over them. */
        assert_int_equal(mkdir("/var/lib/libvirt/images", 0755), 0);
        assert_int_equal(mkdir("/var/lib/libvirt/images/vf-seeds", 0755), 0);
        assert_int_equal(mkdir("/var/lib/libvirt/images/vf-seeds-2", 0755), 0);
        th_write(f->env->conf, "10-pool.yaml", SEED_POOL, "vf-seeds", "vf-seeds");
        th_write(f->env->conf, "11-pool.yaml", SEED_POOL, "vf-seeds-2", "vf-seeds-2");
        th_write(f->env->conf, "20-seed.yaml", SEED, f->guest, "vf-seeds", "first");
        th_write(f->env->conf, "21-seed.yaml", SEED, f->second_guest, "vf-seeds", "second");
        th_write(f->env->conf, "30-guest.yaml", SEEDED_GUEST(""), f->guest, "64MiB", f->guest);
        th_write(f->env->conf, "31-guest.yaml", SEEDED_GUEST(" machine='q35'"), f->second_guest, "64MiB",
                 f->second_guest);
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_DOMAIN, f->guest, RC_CREATED, NULL);
        th_env_assert(f->env, VF_KIND_DOMAIN, f->second_guest, RC_CREATED, NULL);
        assert_true(vf_report_converged(&f->env->report));
        assert_true(th_libvirtd_guest_pid(f->guest) > 0);
        assert_true(th_libvirtd_guest_pid(f->second_guest) > 0);

        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        assert_non_null(conn);
        const char *const guests[] = { f->guest, f->second_guest }, *const targets[] = { "hda' bus='ide", "sda' bus='sata" };
        const char *const hostnames[] = { "first", "second" };
        for (size_t i = 0; i < ELEMENTSOF(guests); i++) {
                _cleanup_free_ char *cdrom = live_cdrom(conn, guests[i]);
                _cleanup_free_ char *source = vf_printf("<source pool='vf-seeds' volume='%s.cidata.iso'", guests[i]);
                _cleanup_free_ char *target = vf_printf("<target dev='%s'/>", targets[i]);
                if (!strstr(cdrom, source) || !strstr(cdrom, "<readonly/>") || !strstr(cdrom, target) ||
                    !strstr(cdrom, "type='raw'"))
                        fail_msg("expected %s, %s, read-only and raw in:\n%s", source, target, cdrom);
                assert_seed_reads_back(f, conn, "vf-seeds", guests[i], hostnames[i]);
        }

        th_env_pass(f->env);
        assert_int_equal(th_env_writes(f->env), 0);
        th_env_assert(f->env, VF_KIND_DOMAIN, f->guest, RC_UNCHANGED, NULL);
        th_env_assert(f->env, VF_KIND_DOMAIN, f->second_guest, RC_UNCHANGED, NULL);

        /* A rebuilt seed is read at the next boot: the guest is neither redefined nor restarted for it. */
        pid_t qemu = th_libvirtd_guest_pid(f->guest);
        th_write(f->env->conf, "20-seed.yaml", SEED, f->guest, "vf-seeds", "rebuilt");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, f->guest, RC_UPDATED, NULL);
        th_env_assert(f->env, VF_KIND_DOMAIN, f->guest, RC_UNCHANGED, NULL);
        assert_int_equal(f->env->report.counters.calls[RC_CALL_DEFINE], 0);
        assert_int_equal(th_libvirtd_guest_pid(f->guest), qemu);
        assert_seed_reads_back(f, conn, "vf-seeds", f->guest, "rebuilt");

        /* A seed moved to another pool changes the guest's definition: its next boot reads it there. */
        th_write(f->env->conf, "20-seed.yaml", SEED, f->guest, "vf-seeds-2", "moved");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_DOMAIN, f->guest, RC_UPDATED, NULL);
        assert_non_null(th_env_entry(f->env, VF_KIND_DOMAIN, f->guest)->result.restart_pending);
        assert_int_equal(th_libvirtd_guest_pid(f->guest), qemu);
        _cleanup_free_ char *defined = th_domain_xml(conn, f->guest, true);
        _cleanup_free_ char *moved = vf_printf("<source pool='vf-seeds-2' volume='%s.cidata.iso'/>", f->guest);
        if (!strstr(defined, moved))
                fail_msg("expected %s in:\n%s", moved, defined);
        assert_seed_reads_back(f, conn, "vf-seeds-2", f->guest, "moved");
        virConnectClose(conn);
}

/* ---- a storage pool on a real storage driver ------------------------------------------ */

#define POOL(path) "apiVersion: virtform/v1\nkind: StoragePool\nmetadata: {name: images}\nspec:\n" \
                   "  type: dir\n  path: %s\n  autostart: true\n", path

/* The pool's live definition, through a connection of the test's own; NULL when there is no such pool. */
static char *pool_live_xml(const fixture *f, int *active) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        virStoragePoolPtr p = conn ? virStoragePoolLookupByName(conn, "images") : NULL;
        char *xml = p ? virStoragePoolGetXMLDesc(p, 0) : NULL;

        *active = p ? virStoragePoolIsActive(p) : -1;
        if (p)
                virStoragePoolFree(p);
        if (conn)
                virConnectClose(conn);
        return xml;
}

static void assert_pool_runs_on(const fixture *f, const char *path) {
        _cleanup_free_ char *want = vf_printf("<path>%s</path>", path);
        int active;
        _cleanup_free_ char *xml = pool_live_xml(f, &active);

        assert_non_null(xml);
        assert_int_equal(active, 1);
        if (!strstr(xml, want))
                fail_msg("pool images does not run on %s:\n%s", path, xml);
}

/*
 * libvirt's storage driver builds the missing directory; a second pass writes
 * nothing; a new path is defined, built and takes effect by a restart; pruned,
 * the pool goes and its directories and files stay.
 */
static void test_pool_built_moved_and_pruned_keeping_its_files(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *first = vf_printf("%s/images", f->env->dir), *second = vf_printf("%s/images2", f->env->dir);
        _cleanup_free_ char *kept = vf_printf("%s/kept.raw", first);
        struct stat st;
        int active;

        th_libvirtd_start(f->libvirtd);
        th_write(f->env->conf, "10-pool.yaml", POOL(first));
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_POOL, "images", RC_CREATED, "Applied");
        assert_int_equal(stat(first, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_pool_runs_on(f, first);
        th_write(first, "kept.raw", "data");

        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_POOL, "images", RC_UNCHANGED, "Applied");
        assert_int_equal(th_env_writes(f->env), 0);

        th_write(f->env->conf, "10-pool.yaml", POOL(second));
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_POOL, "images", RC_UPDATED, "Applied");
        _cleanup_free_ char *steps = vf_strv_join((const char *const *) th_env_entry(f->env, VF_KIND_POOL, "images")
                                                          ->result.steps,
                                                  ", ");
        assert_string_equal(steps, "define, destroy, build, start");
        assert_pool_runs_on(f, second);
        th_env_pass(f->env);
        assert_int_equal(th_env_writes(f->env), 0);

        th_remove(f->env->conf, "10-pool.yaml");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_POOL, "images", RC_DELETED, "Removed");
        _cleanup_free_ char *gone = pool_live_xml(f, &active);
        assert_null(gone);
        assert_int_equal(stat(second, &st), 0);
        _cleanup_free_ char *data = th_slurp(kept);
        assert_string_equal(data, "data");
}

/* ---- a start libvirt is making ------------------------------------------------------ */

/* A QEMU whose guest start waits while the gate file is there; libvirt's probes of it go straight through. */
#define SLOW_QEMU "/var/lib/libvirt/slow-qemu"
#define SLOW_QEMU_GATE SLOW_QEMU ".gate"
#define SLOW_GUEST GUEST "  xml: \"<domain><devices><emulator>" SLOW_QEMU "</emulator></devices></domain>\"\n"

static void write_slow_qemu(const fixture *f) {
        th_write("/var/lib/libvirt", "slow-qemu",
                 "#!/bin/sh\ncase \"$*\" in *guest=%s,*) while [ -e " SLOW_QEMU_GATE " ]; do sleep 0.05; done ;; esac\n"
                 "exec /usr/bin/qemu-system-x86_64 \"$@\"\n",
                 f->guest);
        assert_int_equal(chmod(SLOW_QEMU, 0755), 0);
}

static bool guest_starting(fixture *f, const void *unused) {
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        virDomainPtr d = conn ? virDomainLookupByName(conn, f->guest) : NULL;
        int state = 0, reason = 0;

        assert_non_null(d);
        assert_int_equal(virDomainGetState(d, &state, &reason, 0), 0);
        virDomainFree(d);
        virConnectClose(conn);
        return state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_STARTING_UP;
}

static bool child_said(fixture *f, const void *arg) {
        const th_child *child = arg;
        _cleanup_free_ char *out = th_child_stdout(child);
        return out && strstr(out, "InTransition");
}

static th_run apply(const fixture *f, const char *transition_timeout) {
        const char *argv[] = { getenv("VIRTFORM"), "apply", "-c", f->env->opts.uri, "--state", f->env->state,
                               "--transition-timeout", transition_timeout, f->env->conf, NULL };
        return th_spawn(argv, NULL);
}

static void assert_waited(const th_run *r, int status, const char *what) {
        if (r->status != status || !strstr(r->out, "InTransition") || !strstr(r->out, "writes (none)"))
                fail_msg("apply %s exited %d (not %d), or did not wait, or wrote:\n%s%s", what, r->status, status,
                         r->out, r->err);
}

/*
 * Someone else starts the guest (as libvirtd's autostart does at boot), and the start takes its time:
 * the guest is paused, starting up. apply neither starts it again nor takes it for running. It waits
 * --transition-timeout for libvirt and then exits 2, the guest waiting, since a start that libvirt
 * lost never ends; given the time, it sees the start through and exits 0. It writes nothing either way.
 */
static void test_apply_waits_a_while_for_a_start_libvirt_is_making(void **state) {
        static const char *const any_write[] = { "Defined", "Undefined", "Started", "Stopped", "Shutdown", NULL };
        static const char *const not_a_start[] = { "Defined", "Undefined", "Stopped", "Shutdown", NULL };
        fixture *f = *state;

        th_libvirtd_start(f->libvirtd);
        write_slow_qemu(f);
        th_write(f->env->conf, "10-guest.yaml", SLOW_GUEST, f->guest, "64MiB");
        _cleanup_(th_run_done) th_run first = apply(f, "60");
        if (first.status != 0)
                fail_msg("the first apply exited %d:\n%s%s", first.status, first.out, first.err);
        destroy_guest(f);

        th_write("/var/lib/libvirt", "slow-qemu.gate", "%s", "");
        const char *start[] = { "/usr/bin/virsh", "-c", f->env->opts.uri, "start", f->guest, NULL };
        th_child virsh = th_spawn_start(start, NULL);
        wait_until(guest_starting, f, NULL, "the guest paused, starting up");
        virConnectPtr conn = virConnectOpen(f->env->opts.uri);
        assert_non_null(conn);
        th_libvirt_view *events = th_libvirt_view_new(conn, "qemu");

        _cleanup_(th_run_done) th_run impatient = apply(f, "1");
        assert_waited(&impatient, 2, "--transition-timeout 1");
        assert_non_null(strstr(impatient.err, "--transition-timeout"));
        assert_true(guest_starting(f, NULL));
        th_libvirt_view_barrier(events, true);
        th_libvirt_view_assert_no_event(events, "domain", f->guest, any_write);

        const char *patient_argv[] = { getenv("VIRTFORM"), "apply", "-c", f->env->opts.uri, "--state", f->env->state,
                                       f->env->conf, NULL };
        th_child patient = th_spawn_start(patient_argv, NULL);
        wait_until(child_said, f, &patient, "apply waiting for the start");
        assert_int_equal(unlink(SLOW_QEMU_GATE), 0);
        _cleanup_(th_run_done) th_run started = th_spawn_wait(&virsh);
        if (started.status != 0)
                fail_msg("virsh start exited %d:\n%s%s", started.status, started.out, started.err);
        _cleanup_(th_run_done) th_run waited = th_spawn_wait(&patient);
        assert_waited(&waited, 0, "with the default --transition-timeout");
        assert_int_equal(domain_active(f, f->guest), 1);
        /* The start was virsh's (Started, Resumed): nothing else happened to the guest. */
        th_libvirt_view_barrier(events, false);
        th_libvirt_view_assert_no_event(events, "domain", f->guest, not_a_start);
        th_libvirt_view_free(events);
        virConnectClose(conn);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_libvirtd_restart_and_killed_guest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_edit_applies_during_a_graceful_shutdown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_guest_stopped_at_its_deadline_fails_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_waits_a_while_for_a_start_libvirt_is_making, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_cold_start_reconciles_once_and_sees_a_destroy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_git_mv_pulled_changes_nothing_in_libvirt, setup, teardown),
                cmocka_unit_test_setup_teardown(test_network_restarted_once_its_guest_stops, setup, teardown),
                cmocka_unit_test_setup_teardown(test_guests_boot_with_their_seeds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_built_moved_and_pruned_keeping_its_files, setup, teardown),
        };

        /* Before any thread exists. */
        const char *missing = th_libvirtd_isolate(WATCHDOG_SEC);
        return th_run_group(tests, NULL, NULL, missing);
}
