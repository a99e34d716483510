/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crash consistency of networks (the matrix itself is tests/crash.h), on a
 * private libvirtd (tests/libvirtd.h): qemu:///embed has no network driver.
 * The libvirtd runs in the test's own mount and network namespaces, so the
 * bridges and firewall rules its network driver makes are the test's alone.
 * One libvirtd serves every trial: each starts from one emptied of objects.
 *
 * Two applies of isolated networks: the first defines and starts three,
 * two of them autostarted; the second prunes one (destroy, undefine),
 * changes the MTU of one (redefine, and a restart, since no domain uses it:
 * destroy, start) and autostarts the third. Kill points: every intent, every
 * libvirt write, every sixth state write of both applies, random moments, and
 * a moment when libvirtd dies too.
 *
 * libvirt's end state is read by virsh through the private socket: each
 * network's state, autostart, persistence, UUID (kept across the second
 * apply), and the fields virtform sets (forward, bridge, MTU); and the
 * kernel's side of it, the bridges in the namespace with their MTU and
 * whether they are up. libvirt's writes are seen in its network
 * configuration directory, its autostart links, and the status files it
 * keeps for active networks.
 */
#include <signal.h>
#include <sys/wait.h>

#include "tests/crash.h"
#include "tests/libvirtd.h"

/* A watchdog for the whole run: a hung hypervisor must fail the test, not hang the suite. */
#define WATCHDOG_SEC 800
#define RANDOM_TRIALS 4

typedef struct fixture {
        char *dir; /* the private libvirtd's tree */
        th_libvirtd *libvirtd;
        th_crash *crash;
} fixture;

static void write_network(const char *dir, const char *name, unsigned mtu, bool autostart) {
        _cleanup_free_ char *file = vf_printf("%s.yaml", name);
        th_write(dir, file,
                 "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: %s}\nspec:\n"
                 "  forward: isolated\n  bridge: vf%s\n  mtu: %u\n  autostart: %s\n",
                 name, name, mtu, autostart ? "true" : "false");
}

static char *libvirtd_uri(const th_crash *c, const char *root) {
        const th_libvirtd *d = c->userdata;
        return strdup(d->uri);
}

/* One libvirtd for every root: it is emptied when a trial ends. */
static void libvirtd_new_root(const th_crash *c, const char *root) {
}

/* The networks' names, as virsh lists them: by name. */
static char **network_names(const th_crash *c, const char *root) {
        _cleanup_free_ char *out = th_crash_virsh(c, root, "net-list --all --name");
        char *p = out;
        return th_crash_section(&p);
}

/* virsh's commands for each network, "{}" standing for its name, joined by "; ": one virsh run for all. */
static char *for_each_network(char **names, const char *commands) {
        vf_buf b = {};
        for (size_t i = 0; names && names[i]; i++) {
                vf_buf_puts(&b, i ? "; " : "");
                for (const char *p = commands, *at; *p; p = at + 2) {
                        at = strstr(p, "{}");
                        if (!at) {
                                vf_buf_puts(&b, p);
                                break;
                        }
                        vf_buf_append(&b, p, (size_t) (at - p));
                        vf_buf_puts(&b, names[i]);
                }
        }
        return vf_buf_steal(&b);
}

/* Inactive networks refuse net-destroy: its errors are expected, and the list must be empty after. */
static void libvirtd_end_root(const th_crash *c, const char *root) {
        const th_libvirtd *d = c->userdata;
        _cleanup_strv_free_ char **names = network_names(c, root);
        _cleanup_free_ char *batch = for_each_network(names, "net-destroy {}; net-undefine {}");
        const char *argv[] = { "/usr/bin/virsh", "-q", "-c", d->uri, batch, NULL };

        if (!batch)
                return;
        th_run r = th_spawn(argv, NULL);
        th_run_done(&r);
        _cleanup_strv_free_ char **left = network_names(c, root);
        if (left)
                fail_msg("networks left after a trial: %s ...", left[0]);
}

/* The bridges in the namespace, as the kernel has them: "host bridge NAME mtu N up|down". */
static void observe_bridges(vf_buf *b) {
        const char *argv[] = { "/usr/bin/ip", "-o", "link", "show", "type", "bridge", NULL };
        th_run r = th_spawn(argv, NULL);
        _cleanup_strv_free_ char **lines = NULL;

        if (r.status != 0)
                fail_msg("ip link exited %d: %s", r.status, r.err);
        for (char *p = r.out, *line = strsep(&p, "\n"); line; line = strsep(&p, "\n")) {
                char name[64], flags[256];
                unsigned mtu;
                if (sscanf(line, "%*d: %63[^:]: <%255[^>]> mtu %u", name, flags, &mtu) != 3)
                        continue;
                _cleanup_free_ char *list = vf_printf(",%s,", flags);
                assert_int_equal(vf_strv_consume(&lines, vf_printf("host bridge %s mtu %u %s\n", name, mtu,
                                                                   strstr(list, ",UP,") ? "up" : "down")),
                                 0);
        }
        th_run_done(&r);
        th_crash_sort_after_first_word(lines);
        for (size_t i = 0; lines && lines[i]; i++)
                vf_buf_puts(b, lines[i]);
}

/*
 * What libvirt has, through virsh: per network, sorted, "NAME STATE AUTOSTART
 * PERSISTENT" and the fields virtform sets; then the kernel's bridges.
 */
static void libvirtd_observe(const th_crash *c, const char *root, th_crash_outcome *o) {
        _cleanup_strv_free_ char **names = network_names(c, root);
        _cleanup_free_ char *batch = for_each_network(
                names, "net-info {}; net-dumpxml --inactive --xpath "
                       "'/network/*[self::forward or self::bridge or self::mtu]' {}; echo @@");
        _cleanup_free_ char *out = batch ? th_crash_virsh(c, root, batch) : NULL;
        char *p = out;
        vf_buf state = {}, ids = {};

        for (size_t i = 0; names && names[i]; i++) {
                _cleanup_strv_free_ char **lines = th_crash_section(&p);
                for (size_t j = 0; lines && lines[j]; j++)
                        if (strncmp(lines[j], "UUID:", 5) == 0)
                                vf_buf_printf(&ids, "%s %s\n", lines[j] + 5 + strspn(lines[j] + 5, " "), names[i]);
                        else
                                vf_buf_printf(&state, "%s\n", lines[j]);
        }
        observe_bridges(&state);
        o->libvirt = vf_buf_steal(&state) ?: strdup("");
        o->uuids = vf_buf_steal(&ids) ?: strdup("");
}

/*
 * A define renames the network's new config file into place, an undefine
 * deletes it, autostart is a link; a start writes the network's status file,
 * a destroy deletes it.
 */
static void libvirtd_watched(const th_crash *c, const char *root, th_crash_dir *dirs) {
        dirs[0] = (th_crash_dir) { strdup("/etc/libvirt/qemu/networks"), "define", "undefine" };
        dirs[1] = (th_crash_dir) { strdup("/etc/libvirt/qemu/networks/autostart"), "autostart on", "autostart off" };
        /* A starting libvirtd starts the autostarted networks that are not running. */
        dirs[2] = (th_crash_dir) { strdup("/run/libvirt/network"), "status written", "status removed", true };
}

static char *libvirtd_revive(const th_crash *c) {
        return th_libvirtd_revive(c->userdata);
}

static const th_crash_hypervisor libvirtd = {
        .uri = libvirtd_uri,
        .new_root = libvirtd_new_root,
        .end_root = libvirtd_end_root,
        .observe = libvirtd_observe,
        .watched = libvirtd_watched,
        .revive = libvirtd_revive,
};

static int setup(void **state) {
        static const char *const kept[] = { "net1", "net2", NULL };
        fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        f->dir = th_mkdtemp();
        f->libvirtd = th_libvirtd_new(f->dir);
        th_libvirtd_start(f->libvirtd);
        f->crash = th_crash_new(&libvirtd, kept);
        f->crash->userdata = f->libvirtd;
        write_network(f->crash->conf[0], "net0", 1500, true);
        write_network(f->crash->conf[0], "net1", 1400, true);
        write_network(f->crash->conf[0], "net2", 1500, false);
        /* net0 is pruned, net1 changed (and restarted), net2 autostarted. */
        write_network(f->crash->conf[1], "net1", 1280, true);
        write_network(f->crash->conf[1], "net2", 1500, true);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        th_crash_free(f->crash);
        th_libvirtd_free(f->libvirtd);
        th_rmtree(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

static void clean_runs(th_crash *c) {
        th_crash_clean_runs(c);
        assert_non_null(strstr(c->clean[0].libvirt, "host bridge vfnet0 mtu 1500 up"));
        assert_non_null(strstr(c->clean[1].libvirt, "host bridge vfnet1 mtu 1280 up"));
        assert_null(strstr(c->clean[1].libvirt, "vfnet0"));
}

static void test_kill_at_every_point(void **state) {
        fixture *f = *state;

        clean_runs(f->crash);
        for (int phase = 0; phase < 2; phase++) {
                th_crash_at_every_point(f->crash, phase, "intent", 1);
                th_crash_at_every_point(f->crash, phase, "libvirt", 1);
                th_crash_at_every_point(f->crash, phase, "state", 6);
        }
}

/* Kills apply at random moments of its clean run's duration: wherever it is, even inside a libvirt call. */
static void test_kill_at_random(void **state) {
        fixture *f = *state;

        clean_runs(f->crash);
        th_crash_at_random(f->crash, RANDOM_TRIALS);
}

/*
 * libvirtd dies after apply is killed, as Debian's 9.0.0 was seen to: SIGKILL stands for its crash,
 * without a core. It dies once the killed apply's call is over (listing takes each network's lock, so
 * it waits for a start in progress): a libvirtd that dies inside a network's start leaves the bridge
 * behind, and libvirt itself then refuses to start that network ("error creating bridge interface:
 * File exists"), which virtform reports as StartFailed for the operator to remove the bridge.
 */
static void libvirtd_crash(const th_crash *c) {
        const th_libvirtd *d = c->userdata;
        _cleanup_free_ char *settled = th_crash_virsh(c, c->dir, "net-list --all --name");
        siginfo_t info = {};

        assert_int_equal(kill(d->libvirtd, SIGKILL), 0);
        /* WNOWAIT leaves it for the revive to find dead and reap. */
        assert_int_equal(waitid(P_PID, (id_t) d->libvirtd, &info, WEXITED | WNOWAIT), 0);
}

/* The rerun meets a libvirtd started again after it died, and still ends where a clean run does. */
static void test_libvirtd_dies_with_apply(void **state) {
        fixture *f = *state;

        clean_runs(f->crash);
        for (int phase = 0; phase < 2; phase++) {
                pid_t was = f->libvirtd->libvirtd;
                th_crash_with_hypervisor(f->crash, phase, libvirtd_crash);
                assert_int_not_equal(f->libvirtd->libvirtd, was);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_kill_at_every_point, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kill_at_random, setup, teardown),
                cmocka_unit_test_setup_teardown(test_libvirtd_dies_with_apply, setup, teardown),
        };

        /* Before any thread exists. */
        const char *missing = th_libvirtd_isolate(WATCHDOG_SEC);
        return th_run_group(tests, NULL, NULL, missing);
}
