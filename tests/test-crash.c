/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crash consistency of domains (the matrix itself is tests/crash.h):
 * `virtform apply` is killed with SIGKILL and run again until it exits 0.
 * The hypervisor must outlive the process, so this runs the real QEMU driver
 * embedded (qemu:///embed?root=DIR): its definitions are files under DIR and
 * its guests (TCG, no OS: they ignore ACPI) go on running, there for the next
 * process as a daemon's would be. Networks, which the embedded driver
 * lacks, are tests/test-crash-net.c's, on a private libvirtd.
 *
 * Two applies: the first defines three domains, one of them running; the
 * second prunes one, redefines one and stops the running one (a graceful
 * shutdown that times out, then destroy). Kill points: every intent (just
 * durable, before its write), every libvirt write (made, its outcome not yet
 * recorded), every third state write of the first apply, and random moments.
 *
 * libvirt's end state is read by virsh through its own embedded driver:
 * domains, memory, active state, autostart; UUIDs kept across the second
 * apply. Its writes are seen in the driver's configuration directory.
 */
#include "tests/crash.h"
#include "tests/libvirtd.h"

#include <glob.h>

#define RANDOM_TRIALS 10

static void write_domain(const char *dir, const char *name, const char *memory, const char *state, bool autostart) {
        _cleanup_free_ char *file = vf_printf("%s.yaml", name);
        th_write(dir, file,
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: %s}\nspec:\n"
                 "  memory: %s\n  type: qemu\n  arch: x86_64\n  state: %s\n  autostart: %s\n",
                 name, memory, state, autostart ? "true" : "false");
}

static char *embed_uri(const th_crash *c, const char *root) {
        return vf_printf("qemu:///embed?root=%s/hv", root);
}

/* A hypervisor root without virtlogd, with the clean run's capability cache: probing QEMU anew costs seconds. */
static void embed_new_root(const th_crash *c, const char *root) {
        _cleanup_free_ char *etc = vf_printf("%s/hv/etc", root);
        _cleanup_free_ char *cmd = vf_printf("mkdir -p '%s' && { [ ! -d '%s/clean/hv/cache' ] || "
                                             "cp -a '%s/clean/hv/cache' '%s/hv/'; }",
                                             etc, c->dir, c->dir, root);
        assert_int_equal(system(cmd), 0);
        /* Guests run as root: the temporary directories are not for the qemu user to read. */
        th_write(etc, "qemu.conf", "stdio_handler = \"file\"\nuser = \"root\"\ngroup = \"root\"\n");
}

/*
 * Guests outlive every apply, and so do the QEMUs libvirt probes for capabilities (-machine none) when
 * apply is killed in the middle, and a QEMU whose start was cut short before libvirt recorded its PID:
 * each names a file under the root's hypervisor directory, and is killed before the files go.
 */
static void embed_end_root(const th_crash *c, const char *root) {
        _cleanup_free_ char *hv = vf_printf("%s/hv/", root);

        th_kill_processes_naming((const char *const[]) { hv, NULL });
}

/*
 * What libvirt has, through virsh's own embedded driver: nothing of virtform's
 * in between. Per domain, sorted: its state, whether it autostarts, and vm1's
 * memory (the second apply changes it); the reason for each state goes to
 * the detail alone, as two runs may reach the same state for other reasons.
 */
static void embed_observe(const th_crash *c, const char *root, th_crash_outcome *o) {
        /* domstats first waits for virsh's driver to reconnect to running guests (see th_crash_virsh()). */
        _cleanup_free_ char *out = th_crash_virsh(c, root,
                                                  "domstats --list-active --balloon; echo @@; list --all; echo @@; "
                                                  "list --all --autostart --name; echo @@; list --all --uuid --name; "
                                                  "echo @@; domstats --state; echo @@; "
                                                  "dumpxml --inactive --xpath /domain/memory vm1");
        char *p = out;
        _cleanup_strv_free_ char **reconnected = th_crash_section(&p), **domains = th_crash_section(&p),
                                 **autostart = th_crash_section(&p), **uuids = th_crash_section(&p),
                                 **states = th_crash_section(&p);
        vf_buf state = {}, ids = {};

        th_crash_sort_after_first_word(domains);
        th_crash_sort_after_first_word(uuids);
        for (size_t i = 0; domains && domains[i]; i++) {
                char *name = domains[i] + strcspn(domains[i], " "), *st;
                name += strspn(name, " ");
                st = name + strcspn(name, " ");
                *st++ = 0;
                vf_buf_printf(&state, "%s %s autostart %d\n", name, st + strspn(st, " "),
                              vf_strv_contains(autostart, name));
        }
        for (size_t i = 0; uuids && uuids[i]; i++)
                vf_buf_printf(&ids, "%s\n", uuids[i]);
        vf_buf_printf(&state, "vm1 %s\n", p ? p : "");
        o->libvirt = vf_buf_steal(&state);
        o->uuids = vf_buf_steal(&ids);
        /* State and reason by number (virDomainState, and virDomainPausedReason and the like): for a failure's message. */
        o->detail = vf_strv_join((const char *const *) states, "\n");
}

/*
 * The status libvirt keeps of an active domain (hv/run/qemu/NAME.xml), by its first two start tags: its
 * state, reason and PID, and the job it records. What a driver that dies with apply leaves its successor
 * to reconnect to. NULL when unreadable.
 */
static char *status_tags(const char *path) {
        _cleanup_free_ char *text = NULL;

        if (vf_read_file(path, 1 << 20, &text, NULL) < 0)
                return NULL;
        const char *status = strstr(text, "<domstatus"), *job = strstr(text, "<job");
        return vf_printf("%.*s %.*s", status ? (int) strcspn(status, ">") + 1 : 0, status ? status : "",
                         job ? (int) strcspn(job, ">") + 1 : 0, job ? job : "");
}

static char *embed_kept_state(const th_crash *c, const char *root) {
        _cleanup_free_ char *pattern = vf_printf("%s/hv/run/qemu/*.xml", root);
        vf_buf b = {};
        glob_t g = {};

        if (glob(pattern, 0, NULL, &g) == 0)
                for (size_t i = 0; i < g.gl_pathc; i++) {
                        _cleanup_free_ char *tags = status_tags(g.gl_pathv[i]);
                        if (tags)
                                vf_buf_printf(&b, "%s: %s\n", g.gl_pathv[i], tags);
                }
        globfree(&g);
        return vf_buf_steal(&b);
}

/*
 * libvirt 9.0's QEMU driver saves the status of a guest it starts before it knows QEMU's PID. A process
 * killed in between leaves a status of PID 0 under a start job: the driver of every later process loads
 * the guest as active, paused while it starts, but reconnects only to guests with a PID, so the job
 * never ends and every call that needs one on the guest (destroy too) times out after 30 s. No API
 * undoes it. An operator removes the status file while no driver runs, and kills the QEMU it spawned.
 */
static char *embed_clear_stranded_start(const th_crash *c, const char *root) {
        _cleanup_free_ char *pattern = vf_printf("%s/hv/run/qemu/*.xml", root), *hv = vf_printf("%s/hv/", root);
        vf_buf b = {};
        glob_t g = {};

        if (glob(pattern, 0, NULL, &g) == 0)
                for (size_t i = 0; i < g.gl_pathc; i++) {
                        _cleanup_free_ char *tags = status_tags(g.gl_pathv[i]);
                        if (!tags || !strstr(tags, " pid='0'") || !strstr(tags, " async='start'"))
                                continue;
                        const char *file = strrchr(g.gl_pathv[i], '/') + 1;
                        _cleanup_free_ char *name = strndup(file, strlen(file) - 4);
                        _cleanup_free_ char *guest = vf_printf("guest=%s,", name);
                        th_kill_processes_naming((const char *const[]) { hv, guest, NULL });
                        assert_int_equal(unlink(g.gl_pathv[i]), 0);
                        vf_buf_printf(&b, "%slibvirt held %s starting with no PID (%s), a start no process can end: "
                                      "its status removed and its QEMU killed, as an operator would",
                                      b.len ? "; " : "", name, tags);
                }
        globfree(&g);
        return b.len ? vf_buf_steal(&b) : NULL;
}

/* A define renames the domain's new config file into place, an undefine deletes it, autostart is a link. */
static void embed_watched(const th_crash *c, const char *root, th_crash_dir *dirs) {
        dirs[0] = (th_crash_dir) { vf_printf("%s/hv/etc/qemu", root), "define", "undefine" };
        dirs[1] = (th_crash_dir) { vf_printf("%s/hv/etc/qemu/autostart", root), "autostart on", "autostart off" };
}

static const th_crash_hypervisor embed = {
        .uri = embed_uri,
        .new_root = embed_new_root,
        .end_root = embed_end_root,
        .observe = embed_observe,
        .watched = embed_watched,
        .kept_state = embed_kept_state,
        .clear_stranded_start = embed_clear_stranded_start,
};

static int setup(void **state) {
        static const char *const kept[] = { "vm1", "vm2", NULL };
        th_crash *c = th_crash_new(&embed, kept);

        write_domain(c->conf[0], "vm0", "64MiB", "shutoff", true);
        write_domain(c->conf[0], "vm1", "64MiB", "shutoff", false);
        write_domain(c->conf[0], "vm2", "64MiB", "running", true);
        /* vm0 is pruned, vm1 redefined, vm2 shut down. */
        write_domain(c->conf[1], "vm1", "96MiB", "shutoff", false);
        write_domain(c->conf[1], "vm2", "64MiB", "shutoff", true);
        *state = c;
        return 0;
}

static int teardown(void **state) {
        th_crash_free(*state);
        return 0;
}

static bool embedded_qemu_works(const th_crash *c) {
        _cleanup_free_ char *root = vf_printf("%s/probe", c->dir);
        assert_int_equal(mkdir(root, 0700), 0);
        embed_new_root(c, root);
        th_run r = th_crash_apply(c, root, "/nonexistent-virtform-dir", NULL);
        bool works = !strstr(r.err, "cannot connect to the hypervisor");
        if (!works)
                print_message("qemu:///embed is not usable here (%s); skipped\n", r.err);
        th_run_done(&r);
        th_rmtree(root);
        return works;
}

static void clean_runs(th_crash *c) {
        th_crash_clean_runs(c);
        assert_non_null(strstr(c->clean[0].libvirt, "vm2 running"));
        assert_non_null(strstr(c->clean[1].libvirt, "vm2 shut off"));
}

static void test_kill_at_every_point(void **state) {
        th_crash *c = *state;

        if (!embedded_qemu_works(c))
                th_skip("the embedded QEMU driver does not start a TCG guest here");
        clean_runs(c);
        for (int phase = 0; phase < 2; phase++) {
                th_crash_at_every_point(c, phase, "intent", 1);
                th_crash_at_every_point(c, phase, "libvirt", 1);
        }
        /*
         * Every third state write of the first apply: the points between are in the same
         * places relative to libvirt's writes (a step's commit, insert, begin).
         */
        th_crash_at_every_point(c, 0, "state", 3);
}

/* Kills apply at random moments of its clean run's duration: wherever it is, even inside a libvirt call. */
static void test_kill_at_random(void **state) {
        th_crash *c = *state;

        if (!embedded_qemu_works(c))
                th_skip("the embedded QEMU driver does not start a TCG guest here");
        clean_runs(c);
        th_crash_at_random(c, RANDOM_TRIALS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_kill_at_every_point, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kill_at_random, setup, teardown),
        };
        return th_run_group(tests, NULL, NULL, NULL);
}
