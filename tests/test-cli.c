/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtform binary as users run it: every exit status, the compiler-style
 * error format, and the README's main job on the examples.
 */
#include "tests/helpers.h"

#include <dirent.h>

typedef th_run run;
#define run_done th_run_done

/* Runs $VIRTFORM with a NULL-terminated argument list, capturing its output; it must exit, not die. */
static run virtform(const char *first, ...) {
        const char *argv[32] = { getenv("VIRTFORM"), first };
        size_t n = 2;
        va_list ap;

        assert_non_null(argv[0]);
        va_start(ap, first);
        while (first && n < ELEMENTSOF(argv) - 1 && (argv[n] = va_arg(ap, const char *)))
                n++;
        va_end(ap);
        argv[n] = NULL;
        run r = th_spawn(argv, NULL);
        assert_false(r.killed);
        return r;
}

typedef struct fixture {
        char *dir;
        char *state;
        char *examples;
} fixture;

/*
 * The examples' files, copied into a directory of the test's own with the
 * modes root trusts: a checkout made with umask 002 has them writable by its
 * group, and root refuses to read them there.
 */
static char *copy_examples(void) {
        const char *from = getenv("VIRTFORM_EXAMPLES");
        char *to = th_mkdtemp();
        DIR *d = opendir(from);
        struct dirent *e;

        assert_non_null(d);
        assert_int_equal(chmod(to, 0755), 0);
        while ((e = readdir(d))) {
                _cleanup_free_ char *path = vf_printf("%s/%s", from, e->d_name);
                struct stat st;
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                _cleanup_free_ char *content = th_slurp(path), *copy = vf_printf("%s/%s", to, e->d_name);
                th_write(to, e->d_name, "%s", content);
                assert_int_equal(chmod(copy, 0644), 0);
        }
        closedir(d);
        return to;
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        f->dir = th_mkdtemp();
        f->state = vf_printf("%s/state.db", f->dir);
        f->examples = copy_examples();
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        th_rmtree(f->dir);
        th_rmtree(f->examples);
        free(f->dir);
        free(f->state);
        free(f->examples);
        free(f);
        return 0;
}

static void test_help_and_version(void **state) {
        _cleanup_(run_done) run help = virtform("--help", NULL);
        assert_int_equal(help.status, 0);
        assert_non_null(strstr(help.out, "apply"));
        assert_non_null(strstr(help.out, "status"));

        _cleanup_(run_done) run version = virtform("--version", NULL);
        assert_int_equal(version.status, 0);
        assert_non_null(strstr(version.out, "virtform "));

        const char *commands[] = { "apply", "plan", "validate", "status", "run", "hostdev" };
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                _cleanup_(run_done) run sub = virtform(commands[i], "--help", NULL);
                assert_int_equal(sub.status, 0);
                assert_non_null(strstr(sub.out, commands[i]));
        }
}

static void test_bad_usage_exits_1(void **state) {
        _cleanup_(run_done) run none = virtform(NULL);
        assert_int_equal(none.status, 1);
        _cleanup_(run_done) run unknown = virtform("frobnicate", NULL);
        assert_int_equal(unknown.status, 1);
        assert_non_null(strstr(unknown.err, "unknown command"));
        _cleanup_(run_done) run extra = virtform("status", "surplus", NULL);
        assert_int_equal(extra.status, 1);
        _cleanup_(run_done) run badopt = virtform("apply", "--shutdown-timeout", "soon", ".", NULL);
        assert_int_equal(badopt.status, 1);
}

static void test_examples_apply_ready(void **state) {
        fixture *f = *state;
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state,
                                             f->examples, NULL);

        if (r.status != 0)
                fail_msg("apply exited %d:\n%s\n%s", r.status, r.out, r.err);
        assert_non_null(strstr(r.out, "created   network/lan"));
        assert_non_null(strstr(r.out, "created   domain/web1"));
        assert_non_null(strstr(r.out, "created   domain/db1"));
        assert_null(strstr(r.out, "failed"));

        _cleanup_(run_done) run status = virtform("status", "--state", f->state, "-o", "json", NULL);
        assert_int_equal(status.status, 0);
        assert_int_equal(status.out[0], '[');
        assert_non_null(strstr(status.out, "\"name\":\"web1\""));
        assert_non_null(strstr(status.out, "\"type\":\"Ready\",\"status\":\"True\""));
}

static void test_waiting_exits_2(void **state) {
        fixture *f = *state;

        th_write(f->dir, "web.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web}\nspec:\n  memory: 1GiB\n"
                 "  interfaces: [{network: nowhere}]\n");
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state, f->dir, NULL);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.out, "waiting   domain/web: DependencyNotReady"));
        assert_non_null(strstr(r.out, "network nowhere"));
}

/* First-boot provisioning: --wait gives up after --timeout with the waiting status, or returns once converged. */
static void test_apply_wait_timeout(void **state) {
        fixture *f = *state;

        th_write(f->dir, "web.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web}\nspec:\n  memory: 1GiB\n"
                 "  interfaces: [{network: nowhere}]\n");
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state, "--wait",
                                             "--timeout", "1", f->dir, NULL);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.out, "waiting   domain/web"));

        _cleanup_free_ char *state2 = vf_printf("%s/state2.db", f->dir);
        _cleanup_(run_done) run ok = virtform("apply", "-c", "test:///default", "--state", state2, "--wait",
                                              "--timeout", "30", f->examples, NULL);
        assert_int_equal(ok.status, 0);
        assert_null(strstr(ok.out, "waiting"));
}

/* One JSON object a line on stderr, naming the resource it is about. */
static void test_json_logs(void **state) {
        fixture *f = *state;

        th_write(f->dir, "web.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web}\nspec:\n  memory: 1GiB\n");
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state, "--log-format",
                                             "json", "--log-level", "info", f->dir, NULL);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.err, "\"level\":\"notice\",\"resource\":\"domain/web\",\"message\":\"created: "));
        for (char *line = r.err; *line; line = strchr(line, '\n') + 1) {
                assert_int_equal(line[0], '{');
                assert_non_null(strchr(line, '\n'));
                assert_int_equal(*(strchr(line, '\n') - 1), '}');
        }
}

static void test_unreachable_hypervisor_exits_1(void **state) {
        fixture *f = *state;
        _cleanup_(run_done) run r = virtform("apply", "-c", "nosuchdriver:///system", "--state", f->state, f->dir, NULL);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "cannot connect to the hypervisor"));
}

static void test_unusable_state_exits_1(void **state) {
        fixture *f = *state;
        th_write(f->dir, "garbage.db", "this is not a database, and virtform must not overwrite it\n");
        _cleanup_free_ char *path = vf_printf("%s/garbage.db", f->dir);
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", path, f->dir, NULL);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "error"));
        _cleanup_free_ char *after = th_slurp(path);
        assert_string_equal(after, "this is not a database, and virtform must not overwrite it\n");
}

static void test_validate_unknown_key(void **state) {
        fixture *f = *state;
        th_write(f->dir, "web.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web}\nspec:\n  memory: 1GiB\n"
                 "  memroy: 2GiB\n");
        _cleanup_free_ char *file = vf_printf("%s/web.yaml", f->dir);
        _cleanup_free_ char *expected = vf_printf("%s:6:3: error: ", file);
        _cleanup_(run_done) run r = virtform("validate", file, NULL);
        assert_int_equal(r.status, 1);
        assert_ptr_equal(strstr(r.err, expected), r.err);
        assert_non_null(strstr(r.err, "memroy"));

        _cleanup_(run_done) run ok = virtform("validate", f->examples, NULL);
        assert_int_equal(ok.status, 0);
}

static void test_plan_exit_and_no_state_written(void **state) {
        fixture *f = *state;
        _cleanup_(run_done) run r = virtform("plan", "-c", "test:///default", "--state", f->state,
                                             f->examples, NULL);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "+ create domain/web1"));
        assert_non_null(strstr(r.out, "0 writes"));
        assert_int_equal(access(f->state, F_OK), -1);
}

/* Drop-in precedence as plan shows it: the file that won, and the one it overrode. */
static void test_plan_shows_override(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *etc = vf_printf("%s/etc", f->dir), *usr = vf_printf("%s/usr", f->dir);
        const char *net = "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec: {forward: isolated}\n";

        assert_int_equal(mkdir(etc, 0755), 0);
        assert_int_equal(mkdir(usr, 0755), 0);
        th_write(etc, "10-net.yaml", "%s", net);
        th_write(usr, "10-net.yaml", "%s", net);
        th_write(usr, "20-other.yaml", "%s", "");
        _cleanup_free_ char *expected = vf_printf("+ create network/lan (%s/10-net.yaml, overriding %s/10-net.yaml)", etc, usr);
        _cleanup_(run_done) run r = virtform("plan", "-c", "test:///default", "--state", f->state, etc, usr, NULL);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, expected));
}

/* As root, a file others could change is refused, and applied only when the user says so (with a warning). */
static void test_untrusted_file_as_root(void **state) {
        fixture *f = *state;

        if (geteuid() != 0)
                th_skip("the trust checks are for root");
        th_write(f->dir, "lan.yaml", "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec: {}\n");
        _cleanup_free_ char *file = vf_printf("%s/lan.yaml", f->dir);
        assert_int_equal(chmod(file, 0664), 0);
        _cleanup_free_ char *refused = vf_printf("%s: error: not read: the file is writable by group or others "
                                                 "(mode 0664); run 'chmod go-w %s', or pass --insecure-permissions",
                                                 file, file);
        _cleanup_free_ char *warned = vf_printf("%s: warning: insecure permissions allowed: the file is writable",
                                                file);

        _cleanup_(run_done) run validate = virtform("validate", f->dir, NULL);
        assert_int_equal(validate.status, 1);
        assert_ptr_equal(strstr(validate.err, refused), validate.err);
        _cleanup_(run_done) run validate_ok = virtform("validate", "--insecure-permissions", f->dir, NULL);
        assert_int_equal(validate_ok.status, 0);
        assert_ptr_equal(strstr(validate_ok.err, warned), validate_ok.err);
        assert_non_null(strstr(validate_ok.out, "1 resources in 1 files are valid"));

        _cleanup_(run_done) run apply = virtform("apply", "-c", "test:///default", "--state", f->state, f->dir, NULL);
        assert_int_equal(apply.status, 2);
        assert_non_null(strstr(apply.err, refused));
        assert_non_null(strstr(apply.out, "1 file errors"));
        assert_null(strstr(apply.out, "network/lan"));
        _cleanup_(run_done) run apply_ok = virtform("apply", "-c", "test:///default", "--state", f->state,
                                                    "--insecure-permissions", f->dir, NULL);
        if (apply_ok.status != 0)
                fail_msg("apply exited %d:\n%s\n%s", apply_ok.status, apply_ok.out, apply_ok.err);
        assert_non_null(strstr(apply_ok.err, warned));
        assert_non_null(strstr(apply_ok.out, "created   network/lan"));
        assert_null(strstr(apply_ok.out, "file errors"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_help_and_version),
                cmocka_unit_test(test_bad_usage_exits_1),
                cmocka_unit_test_setup_teardown(test_examples_apply_ready, setup, teardown),
                cmocka_unit_test_setup_teardown(test_waiting_exits_2, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_wait_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_json_logs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unreachable_hypervisor_exits_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unusable_state_exits_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_validate_unknown_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_exit_and_no_state_written, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_shows_override, setup, teardown),
                cmocka_unit_test_setup_teardown(test_untrusted_file_as_root, setup, teardown),
        };
        /* What the tests write is theirs to trust, whatever umask the caller has. */
        umask(022);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
