/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state recover: a lost state file rebuilt from libvirt's ownership markers,
 * judged from outside: the next apply of the same files writes nothing to
 * libvirt (no event, no change of UUID, XML or autostart seen through the
 * test's own connection), and the records come back as they were.
 */
#include <fcntl.h>

#include "tests/env.h"
#include "tests/sysfs-fixture.h"

typedef struct fixture {
        th_env *env;
        char *examples;
} fixture;

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        f->env = th_env_new();
        f->examples = th_copy_examples();
        f->env->paths[0] = f->examples;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        th_env_free(f->env);
        th_rmtree(f->examples);
        free(f->examples);
        free(f);
        return 0;
}

/* `state recover` in-process on opts: its result, with what it printed and its error in *out and *err. */
static int recover(const vf_options *opts, const char *instance, char **out, char **err) {
        vf_options o = *opts;
        vf_controller c = {};
        size_t len = 0;
        FILE *f = open_memstream(out, &len);

        assert_non_null(f);
        o.recover = true;
        *err = NULL;
        int r = vf_controller_open(&c, &o, err);
        if (r >= 0) {
                c.log = NULL;
                r = vf_controller_recover(&c, instance, f, err);
        }
        vf_controller_close(&c);
        fclose(f);
        return r;
}

static void recover_ok(const vf_options *opts, const char *instance) {
        _cleanup_free_ char *out = NULL, *err = NULL;
        int r = recover(opts, instance, &out, &err);
        if (r < 0)
                fail_msg("recover: %s", err ? err : strerror(-r));
}

/* The store's records, and its instance id if ret_instance is not NULL. */
static void list_records(th_env *env, state_record ***recs, size_t *n, char **ret_instance) {
        _cleanup_(state_closep) state_store *s = NULL;
        _cleanup_free_ char *err = NULL;

        assert_int_equal(state_open(env->state, STATE_OPEN_READONLY | STATE_OPEN_EXISTING, &s, &err), 0);
        assert_int_equal(state_list(s, recs, n), 0);
        if (ret_instance)
                assert_non_null(*ret_instance = strdup(state_instance_id(s)));
}

static void truncate_state(th_env *env) {
        _cleanup_free_ char *wal = vf_printf("%s-wal", env->state), *shm = vf_printf("%s-shm", env->state);

        assert_int_equal(truncate(env->state, 0), 0);
        (void) unlink(wal);
        (void) unlink(shm);
}

static void remove_state(th_env *env) {
        _cleanup_free_ char *wal = vf_printf("%s-wal", env->state), *shm = vf_printf("%s-shm", env->state);

        assert_int_equal(unlink(env->state), 0);
        (void) unlink(wal);
        (void) unlink(shm);
}

/*
 * Files changed once, so that a generation above 1 has to come back: a
 * running domain's memory, which waits for its restart. (Not a network's: the
 * test driver shows an active network's live XML only, where the marker is
 * the one it was started with.)
 */
static void apply_examples_twice(fixture *f) {
        _cleanup_free_ char *path = vf_printf("%s/20-web.yaml", f->examples);
        _cleanup_free_ char *text = th_slurp(path);
        char *memory = strstr(text, "memory: 1GiB");

        th_env_pass(f->env);
        assert_true(vf_report_converged(&f->env->report));
        assert_non_null(memory);
        memory[strlen("memory: ")] = '2';
        th_write(f->examples, "20-web.yaml", "%s", text);
        th_env_pass(f->env);
        assert_true(vf_report_converged(&f->env->report));
        th_env_close(f->env);
}

/*
 * baseline_len: how much of the drift baseline must match. Recovered, only
 * libvirt's whole XML is known (VF_HASH_HEX_LEN); the next pass completes it.
 */
static void assert_same_records(state_record **a, size_t na, state_record **b, size_t nb, size_t baseline_len) {
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
                assert_string_equal(a[i]->kind, b[i]->kind);
                assert_string_equal(a[i]->name, b[i]->name);
                assert_int_equal(a[i]->generation, b[i]->generation);
                assert_int_equal(a[i]->observed_generation, b[i]->observed_generation);
                assert_string_equal(a[i]->uuid, b[i]->uuid);
                assert_string_equal(a[i]->desired_hash, b[i]->desired_hash);
                assert_non_null(b[i]->applied_xml_hash);
                const state_condition *pending_a = state_record_condition(a[i], "RestartPending");
                const state_condition *pending_b = state_record_condition(b[i], "RestartPending");
                assert_int_equal(pending_a && pending_a->status, pending_b && pending_b->status);
                assert_memory_equal(a[i]->applied_xml_hash, b[i]->applied_xml_hash, baseline_len);
        }
}

/* The next apply after recover: nothing written to libvirt, every resource in sync with its old record. */
static void apply_changes_nothing(fixture *f, state_record **before, size_t n_before) {
        state_record **after = NULL;
        size_t n_after = 0;
        _cleanup_(th_libvirt_view_freep) th_libvirt_view *view = th_libvirt_view_new(f->env->other, "test");

        th_env_pass(f->env);
        th_libvirt_view_assert_untouched(view);
        assert_true(vf_report_converged(&f->env->report));
        for (size_t i = 0; i < f->env->report.n_entries; i++)
                assert_int_equal(f->env->report.entries[i].result.outcome, RC_UNCHANGED);
        th_env_close(f->env);
        list_records(f->env, &after, &n_after, NULL);
        assert_same_records(before, n_before, after, n_after, strlen(before[0]->applied_xml_hash) + 1);
        state_record_list_free(after, n_after);
}

static void lost_state_recovered(fixture *f, void (*lose)(th_env *env)) {
        state_record **before = NULL, **recovered = NULL;
        size_t n_before = 0, n_recovered = 0;
        bool bumped = false;
        _cleanup_free_ char *instance = NULL, *recovered_instance = NULL;

        apply_examples_twice(f);
        list_records(f->env, &before, &n_before, &instance);
        assert_true(n_before >= 3);
        for (size_t i = 0; i < n_before; i++)
                bumped = bumped || (before[i]->generation > 1 && state_record_condition(before[i], "RestartPending"));
        assert_true(bumped);

        lose(f->env);
        recover_ok(&f->env->opts, NULL);
        list_records(f->env, &recovered, &n_recovered, &recovered_instance);
        /* The store owns what the lost one did: objects it did not record yet are still its own to prune. */
        assert_string_equal(instance, recovered_instance);
        assert_same_records(before, n_before, recovered, n_recovered, VF_HASH_HEX_LEN);
        state_record_list_free(recovered, n_recovered);

        apply_changes_nothing(f, before, n_before);
        state_record_list_free(before, n_before);
}

static void test_truncated_state_recovered(void **state) {
        lost_state_recovered(*state, truncate_state);
}

static void test_deleted_state_recovered(void **state) {
        lost_state_recovered(*state, remove_state);
}

/* Without recover, a truncated state is an error that names recover, and libvirt is left alone. */
static void test_truncated_state_refused_by_apply(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *err = NULL;
        vf_controller c = {};

        th_env_pass(f->env);
        th_env_close(f->env);
        truncate_state(f->env);
        assert_int_equal(vf_controller_open(&c, &f->env->opts, &err), -EBADMSG);
        vf_controller_close(&c);
        assert_non_null(strstr(err, "state recover"));
}

/* Nothing to recover from (another hypervisor, say): the emptied file stays empty, still refused by apply. */
static void test_nothing_found_leaves_the_file(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *out = NULL, *err = NULL;
        struct stat st;

        th_write(f->env->dir, "state.db", "%s", "");
        assert_int_equal(chmod(f->env->state, 0600), 0);
        assert_int_equal(recover(&f->env->opts, NULL, &out, &err), -ENOENT);
        assert_non_null(strstr(err, "nothing to recover"));
        assert_int_equal(stat(f->env->state, &st), 0);
        assert_int_equal(st.st_size, 0);
}

/*
 * A write that fails in the middle of recover leaves the lost file as it
 * was (so apply still refuses it), and nothing beside it; recover then works.
 */
static void test_failed_recovery_leaves_the_file(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *out = NULL, *err = NULL, *building = vf_printf("%s.new", f->env->state);
        state_record **before = NULL;
        size_t n_before = 0;
        vf_options o = f->env->opts;
        struct stat lost, after;

        apply_examples_twice(f);
        list_records(f->env, &before, &n_before, NULL);
        truncate_state(f->env);
        assert_int_equal(stat(f->env->state, &lost), 0);

        /*
         * The begin, the instance id (savepoint, update, release), the first record (savepoint, row,
         * conditions deleted, one or two put, release): the second record's row fails.
         */
        o.fault_point = "state-fail:12";
        assert_int_equal(recover(&o, NULL, &out, &err), -EIO);
        assert_non_null(strstr(err, "the state file is left as it was"));
        assert_non_null(strstr(out, "recovered ")); /* it failed in the middle, not before the first record */
        assert_int_equal(stat(f->env->state, &after), 0);
        assert_int_equal(after.st_ino, lost.st_ino);
        assert_int_equal(after.st_size, 0);
        assert_int_equal(after.st_mtim.tv_sec, lost.st_mtim.tv_sec);
        assert_int_equal(after.st_mtim.tv_nsec, lost.st_mtim.tv_nsec);
        static const char *const sqlite_files[] = { "-journal", "-wal", "-shm" };
        for (size_t i = 0; i < ELEMENTSOF(sqlite_files); i++) {
                _cleanup_free_ char *side = vf_printf("%s%s", f->env->state, sqlite_files[i]),
                                    *building_side = vf_printf("%s%s", building, sqlite_files[i]);
                assert_int_equal(access(side, F_OK), -1);
                assert_int_equal(access(building_side, F_OK), -1);
        }
        assert_int_equal(access(building, F_OK), -1);

        recover_ok(&f->env->opts, NULL);
        apply_changes_nothing(f, before, n_before);
        state_record_list_free(before, n_before);
}

static void test_records_refused(void **state) {
        fixture *f = *state;
        state_record **before = NULL;
        size_t n_before = 0;
        _cleanup_free_ char *out = NULL, *err = NULL;

        th_env_pass(f->env);
        th_env_close(f->env);
        list_records(f->env, &before, &n_before, NULL);
        assert_int_equal(recover(&f->env->opts, NULL, &out, &err), -ENOTEMPTY);
        assert_non_null(strstr(err, "records already"));
        apply_changes_nothing(f, before, n_before);
        state_record_list_free(before, n_before);
}

#define NETWORK(name, bridge, net)                                                                         \
        "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: " name "}\nspec:\n  forward: isolated\n" \
        "  bridge: " bridge "\n  ipv4: {address: " net ".1/24}\n"

/* Another virtform with a state of its own applies dir, on the same host. */
static char *apply_beside(fixture *f, const char *dir) {
        _cleanup_free_ char *path = vf_printf("%s/other.db", f->env->dir), *err = NULL;
        char *paths[] = { (char *) dir, NULL };
        vf_options o = f->env->opts;
        vf_controller c = {};
        vf_report report = {};

        o.state_path = path;
        o.paths = paths;
        assert_int_equal(vf_controller_open(&c, &o, &err), 0);
        c.log = NULL;
        assert_int_equal(vf_controller_pass(&c, &report, &err), 0);
        assert_true(vf_report_converged(&report));
        char *instance = strdup(state_instance_id(c.store));
        vf_report_done(&report);
        vf_controller_close(&c);
        return instance;
}

/* Two stores' objects on one host: recover takes neither unless told which, then only that one's. */
static void test_two_instances_need_a_choice(void **state) {
        fixture *f = *state;
        state_record **before = NULL;
        size_t n_before = 0;
        _cleanup_free_ char *out = NULL, *err = NULL, *instance = NULL, *other = NULL;
        _cleanup_free_ char *other_conf = vf_printf("%s/other", f->env->dir);

        th_write(f->env->conf, "a.yaml", NETWORK("a", "virbr30", "10.30.0"));
        f->env->paths[0] = f->env->conf;
        th_env_pass(f->env);
        instance = strdup(state_instance_id(f->env->c.store));
        th_env_close(f->env);
        assert_int_equal(mkdir(other_conf, 0755), 0);
        th_write(other_conf, "b.yaml", NETWORK("b", "virbr31", "10.31.0"));
        other = apply_beside(f, other_conf);
        assert_string_not_equal(instance, other);
        list_records(f->env, &before, &n_before, NULL);

        remove_state(f->env);
        assert_int_equal(recover(&f->env->opts, NULL, &out, &err), -ENOTUNIQ);
        assert_non_null(strstr(err, instance));
        assert_non_null(strstr(err, other));
        assert_non_null(strstr(err, "network/a"));
        assert_non_null(strstr(err, "network/b"));
        /* Refused, it made no store: a later apply must still find the state lost, not started over. */
        assert_int_equal(access(f->env->state, F_OK), -1);
        assert_int_equal(errno, ENOENT);

        recover_ok(&f->env->opts, instance);
        apply_changes_nothing(f, before, n_before);
        state_record_list_free(before, n_before);
}

#define LOST_INSTANCE "5a0e7c1e-0d7b-4a51-9c3e-2f4d6b8a9e10"

/* A domain as a lost store left it: its marker, of the first form, and two passed-through devices. */
static const char passthrough_domain[] =
        "<domain type='test'><name>vm</name><memory>65536</memory><os><type>hvm</type></os>"
        "<metadata><virtform:owner xmlns:virtform='" RC_OWNER_NS_1 "' instance='" LOST_INSTANCE "' "
        "resource='domain/vm' generation='3' hash='0123abcd'/></metadata>"
        "<devices>"
        "<hostdev mode='subsystem' type='pci' managed='no'><source>"
        "<address domain='0x0000' bus='0x03' slot='0x10' function='0x0'/></source></hostdev>"
        "<interface type='hostdev' managed='yes'><source>"
        "<address type='pci' domain='0x0000' bus='0x03' slot='0x10' function='0x1'/></source></interface>"
        "</devices></domain>";

static void assert_no_device(state_store *s, const char *bdf) {
        _cleanup_(state_device_freep) state_device *dev = NULL;
        assert_int_equal(state_device_get(s, bdf, &dev), -ENOENT);
}

/*
 * Only a device sysfs shows bound as virtform binds (vfio-pci, with the
 * override) gets a binding journal row, and with nothing invented in it.
 */
static void test_bound_device_journal_recovered(void **state) {
        fixture *f = *state;
        _cleanup_(th_sysfs_freep) th_sysfs *sysfs = th_sysfs_new();
        _cleanup_(state_closep) state_store *s = NULL;
        _cleanup_(state_device_freep) state_device *dev = NULL;
        _cleanup_(state_record_freep) state_record *rec = NULL;
        _cleanup_free_ char *err = NULL;
        vf_options o = f->env->opts;

        th_sysfs_add_device(sysfs, "0000:03:10.0", "vfio-pci");
        th_write(sysfs->root, "devices/pci0000:00/0000:03:10.0/driver_override", "vfio-pci\n");
        /* libvirt's managed mode binds without an override: not ours to give back. */
        th_sysfs_add_device(sysfs, "0000:03:10.1", "vfio-pci");
        /* On vfio-pci but not used by the domain. */
        th_sysfs_add_device(sysfs, "0000:03:10.2", "vfio-pci");
        th_write(sysfs->root, "devices/pci0000:00/0000:03:10.2/driver_override", "vfio-pci\n");
        virDomainPtr d = virDomainDefineXML(f->env->other, passthrough_domain);
        assert_non_null(d);
        virDomainFree(d);

        o.sysfs_root = sysfs->root;
        recover_ok(&o, NULL);
        assert_int_equal(state_open(f->env->state, STATE_OPEN_READONLY | STATE_OPEN_EXISTING, &s, &err), 0);
        assert_string_equal(state_instance_id(s), LOST_INSTANCE);
        assert_int_equal(state_get(s, "domain", "vm", &rec), 0);
        assert_int_equal(rec->generation, 3);
        assert_string_equal(rec->desired_hash, "0123abcd");

        assert_int_equal(state_device_get(s, "0000:03:10.0", &dev), 0);
        assert_string_equal(dev->bind_phase, "bound");
        assert_string_equal(dev->original_driver, "");
        assert_false(dev->saved);
        assert_null(dev->saved_admin_mac);
        assert_null(dev->saved_own_mac);
        assert_null(dev->pf);
        assert_no_device(s, "0000:03:10.1");
        assert_no_device(s, "0000:03:10.2");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_truncated_state_recovered, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deleted_state_recovered, setup, teardown),
                cmocka_unit_test_setup_teardown(test_truncated_state_refused_by_apply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_records_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_recovery_leaves_the_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_nothing_found_leaves_the_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_instances_need_a_choice, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bound_device_journal_recovered, setup, teardown),
        };
        /* Before any connection: the view of libvirt from outside counts its events. */
        assert_int_equal(virEventRegisterDefaultImpl(), 0);
        return th_run_group(tests, NULL, NULL, NULL);
}
