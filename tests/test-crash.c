/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crash consistency: `virtform apply` is killed with SIGKILL after its Nth
 * libvirt write, and after its Nth state write, for every N the run has, and
 * then run again. The hypervisor must outlive the process, so this runs the
 * real QEMU driver embedded (qemu:///embed?root=DIR): its definitions are
 * files under DIR, there for the next process as a daemon's would be.
 *
 * After each crash and rerun: the end state equals a clean run's, and the
 * event log shows no action done twice.
 */
#include "tests/helpers.h"

#include "state/state.h"

#define N_DOMAINS 3

typedef struct fixture {
        char *dir;
        char *conf;
} fixture;

static const char *virtform_binary(void) {
        const char *path = getenv("VIRTFORM");
        assert_non_null(path);
        return path;
}

static th_run apply(const char *root, const char *conf, const char *fault) {
        _cleanup_free_ char *uri = vf_printf("qemu:///embed?root=%s/hv", root);
        _cleanup_free_ char *state = vf_printf("%s/state.db", root);
        _cleanup_free_ char *env = fault ? vf_printf("VIRTFORM_FAULT_POINT=%s", fault) : NULL;
        const char *argv[] = { virtform_binary(), "apply", "-c", uri, "--state", state, conf, NULL };
        const char *extra[] = { env, NULL };
        return th_spawn(argv, extra);
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);

        f->dir = th_mkdtemp();
        f->conf = vf_printf("%s/conf", f->dir);
        assert_int_equal(mkdir(f->conf, 0755), 0);
        for (int i = 0; i < N_DOMAINS; i++) {
                _cleanup_free_ char *name = vf_printf("%d-vm.yaml", i);
                th_write(f->conf, name,
                         "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: vm%d}\nspec:\n"
                         "  memory: 64MiB\n  type: qemu\n  arch: x86_64\n  state: shutoff\n  autostart: true\n",
                         i);
        }
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        th_rmtree(f->dir);
        free(f->dir);
        free(f->conf);
        free(f);
        return 0;
}

/* What a run leaves, in a form two runs can be compared by: records and their conditions. */
static char *end_state(const char *root) {
        _cleanup_free_ char *path = vf_printf("%s/state.db", root);
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL;
        state_record **recs = NULL;
        size_t n = 0;
        vf_buf b = {};

        assert_int_equal(state_open(path, STATE_OPEN_READONLY, &store, &errmsg), 0);
        assert_int_equal(state_list(store, &recs, &n), 0);
        for (size_t i = 0; i < n; i++) {
                const state_condition *ready = state_record_condition(recs[i], "Ready");
                vf_buf_printf(&b, "%s/%s gen %" PRId64 "/%" PRId64 " hash %s ready %d %s\n", recs[i]->kind,
                              recs[i]->name, recs[i]->generation, recs[i]->observed_generation, recs[i]->desired_hash,
                              ready && ready->status, ready ? ready->reason : "-");
        }
        state_record_list_free(recs, n);
        return vf_buf_steal(&b);
}

static void assert_no_action_twice(const char *root) {
        _cleanup_free_ char *path = vf_printf("%s/state.db", root);
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL;
        _cleanup_(vf_map_freep) vf_map *seen = vf_map_new();
        state_event *events = NULL;
        size_t n = 0;

        assert_int_equal(state_open(path, STATE_OPEN_READONLY, &store, &errmsg), 0);
        assert_int_equal(state_event_list(store, NULL, NULL, &events, &n), 0);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *key = vf_printf("%s/%s %s gen %" PRId64, events[i].kind, events[i].name,
                                                     events[i].action, events[i].generation);
                if (vf_map_get(seen, key))
                        fail_msg("done twice: %s", key);
                assert_int_equal(vf_map_put(seen, key, (void *) 1), 0);
        }
        state_event_list_free(events, n);
}

static bool embedded_qemu_works(const char *dir) {
        _cleanup_free_ char *root = vf_printf("%s/probe", dir);
        assert_int_equal(mkdir(root, 0755), 0);
        th_run r = apply(root, "/nonexistent-virtform-dir", NULL);
        bool works = !strstr(r.err, "cannot connect to the hypervisor");
        if (!works)
                print_message("qemu:///embed is not usable here (%s); skipped\n", r.err);
        th_run_done(&r);
        return works;
}

/* Each hypervisor starts with the clean run's capability cache: probing QEMU anew costs seconds. */
static void new_root(const fixture *f, const char *root) {
        _cleanup_free_ char *cmd = vf_printf("mkdir -p '%s/hv' && cp -a '%s/clean/hv/cache' '%s/hv/'", root, f->dir, root);
        assert_int_equal(system(cmd), 0);
}

/* Kills the run after its Nth write of a kind, for every N until a run completes untouched. */
static void crash_at_every_write(fixture *f, const char *kind, const char *clean) {
        for (unsigned n = 1;; n++) {
                _cleanup_free_ char *root = vf_printf("%s/%s-%u", f->dir, kind, n);
                _cleanup_free_ char *fault = vf_printf("%s-write:%u", kind, n);
                new_root(f, root);

                th_run crashed = apply(root, f->conf, fault);
                bool died = crashed.killed;
                th_run_done(&crashed);
                if (!died) {
                        /* Past the last write: every point was covered; a run has more than a couple. */
                        print_message("%s: killed and recovered at %u points\n", kind, n - 1);
                        assert_true(n > 3);
                        return;
                }

                th_run rerun = apply(root, f->conf, NULL);
                if (rerun.status != 0)
                        fail_msg("rerun after a crash at %s exited %d:\n%s%s", fault, rerun.status, rerun.out,
                                 rerun.err);
                th_run_done(&rerun);
                _cleanup_free_ char *after = end_state(root);
                if (strcmp(after, clean) != 0)
                        fail_msg("after a crash at %s the end state differs:\n%s\nclean run:\n%s", fault, after, clean);
                assert_no_action_twice(root);
                assert_true(n < 200);
        }
}

static void test_kill_at_every_write(void **state) {
        fixture *f = *state;

        if (!embedded_qemu_works(f->dir))
                th_skip("the embedded QEMU driver does not start a TCG guest here");
        _cleanup_free_ char *clean_root = vf_printf("%s/clean", f->dir);
        assert_int_equal(mkdir(clean_root, 0755), 0);
        th_run clean_run = apply(clean_root, f->conf, NULL);
        if (clean_run.status != 0)
                fail_msg("clean run exited %d:\n%s%s", clean_run.status, clean_run.out, clean_run.err);
        th_run_done(&clean_run);
        _cleanup_free_ char *clean = end_state(clean_root);

        crash_at_every_write(f, "libvirt", clean);
        crash_at_every_write(f, "state", clean);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_kill_at_every_write, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
