/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtform binary as users run it: every exit status, the compiler-style
 * error format, and the README's main job on the examples.
 */
#include <ctype.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/helpers.h"


typedef th_run run;
#define run_done th_run_done

/* Starts $VIRTFORM with the NULL-terminated argument list in ap, beside the test. */
static th_child start_v(const char *first, va_list ap) {
        const char *argv[32] = { getenv("VIRTFORM"), first };
        size_t n = 2;

        assert_non_null(argv[0]);
        while (first && n < ELEMENTSOF(argv) - 1 && (argv[n] = va_arg(ap, const char *)))
                n++;
        argv[n] = NULL;
        return th_spawn_start(argv, NULL);
}

static th_child virtform_start(const char *first, ...) {
        va_list ap;

        va_start(ap, first);
        th_child c = start_v(first, ap);
        va_end(ap);
        return c;
}

/* Runs $VIRTFORM, capturing its output; it must exit, not die. */
static run virtform(const char *first, ...) {
        va_list ap;

        va_start(ap, first);
        th_child c = start_v(first, ap);
        va_end(ap);
        run r = th_spawn_wait(&c);
        assert_false(r.killed);
        return r;
}

typedef struct fixture {
        char *dir;
        char *state;
        char *examples;
} fixture;

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        f->dir = th_mkdtemp();
        f->state = vf_printf("%s/state.db", f->dir);
        f->examples = th_copy_examples();
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

/* Runs argv and compares its stdout with the golden file tests/data/help/NAME.txt. */
static void assert_help_golden(const char *name, const char *const *argv) {
        _cleanup_free_ char *path = vf_printf("%s/help/%s.txt", getenv("VIRTFORM_TEST_DATA"), name);
        _cleanup_free_ char *golden = th_slurp(path);
        _cleanup_(run_done) run r = th_spawn(argv, NULL);

        assert_int_equal(r.status, 0);
        if (strcmp(r.out, golden) != 0)
                fail_msg("'%s' differs from %s; if the change is meant, write this into it:\n%s", name, path, r.out);
}

/* Each command's --help lists its own options, and no other (golden files). */
static void test_help_and_version(void **state) {
        static const char *const commands[][2] = { { "apply" }, { "plan" }, { "validate" }, { "status" },
                                                   { "run" }, { "log" }, { "hostdev", "resolve" },
                                                   { "state", "check" }, { "state", "recover" },
                                                   { "cloud-init", "render" } };
        const char *virtform_help[] = { getenv("VIRTFORM"), "--help", NULL };

        assert_help_golden("virtform", virtform_help);
        _cleanup_(run_done) run version = virtform("--version", NULL);
        assert_int_equal(version.status, 0);
        assert_non_null(strstr(version.out, "virtform "));

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                const char *argv[] = { getenv("VIRTFORM"), commands[i][0], commands[i][1] ? commands[i][1] : "--help",
                                       commands[i][1] ? "--help" : NULL, NULL };
                _cleanup_free_ char *name = vf_printf("%s%s%s", commands[i][0], commands[i][1] ? "-" : "",
                                                      commands[i][1] ? commands[i][1] : "");
                assert_help_golden(name, argv);
        }
        /* A command with verbs shows the help of each. */
        _cleanup_(run_done) run state_help = virtform("state", "--help", NULL);
        assert_int_equal(state_help.status, 0);
        assert_non_null(strstr(state_help.out, "Usage: virtform state check"));
        assert_non_null(strstr(state_help.out, "Usage: virtform state recover"));
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The options a --help text lists ("-c", "--connect", ...), sorted, one a line. */
static char *help_options(const char *help) {
        _cleanup_strv_free_ char **names = NULL;
        vf_buf b = {};

        for (const char *line = help; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (strncmp(line, "  -", 3) != 0 && strncmp(line, "      --", 8) != 0)
                        continue;
                const char *p = line + strspn(line, " ");
                if (p[1] != '-') {
                        assert_int_equal(vf_strv_consume(&names, strndup(p, 2)), 0);
                        p += 4;
                }
                assert_int_equal(vf_strv_consume(&names, strndup(p, strcspn(p, " \n"))), 0);
        }
        qsort(names, vf_strv_length(names), sizeof(char *), compare_strings);
        for (size_t i = 0; names && names[i]; i++)
                vf_buf_printf(&b, "%s\n", names[i]);
        return vf_buf_steal(&b);
}

/* What bash completes after "virtform WORDS... -", sorted, one a line. */
static run complete_options(const char *words) {
        _cleanup_free_ char *script = vf_printf(
                "source \"$VIRTFORM_COMPLETION\"; COMP_WORDS=(virtform %s -); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                "_virtform; printf '%%s\\n' \"${COMPREPLY[@]}\" | LC_ALL=C sort",
                words);
        const char *argv[] = { "/bin/bash", "-c", script, NULL };
        return th_spawn(argv, NULL);
}

/* Bash completes exactly the options each command's --help lists. */
static void test_completion_offers_the_help_options(void **state) {
        static const char *const commands[] = { "apply", "plan", "validate", "status", "run", "log",
                                                "hostdev resolve", "state check", "state recover",
                                                "cloud-init render" };

        setenv("LC_ALL", "C", 1);
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                _cleanup_free_ char *verb = strchr(commands[i], ' ') ? strdup(strchr(commands[i], ' ') + 1) : NULL;
                _cleanup_free_ char *name = strndup(commands[i], strcspn(commands[i], " "));
                _cleanup_(run_done) run help = virtform(name, verb ? verb : "--help", verb ? "--help" : NULL, NULL);
                _cleanup_(run_done) run completed = complete_options(commands[i]);
                _cleanup_free_ char *expected = help_options(help.out);

                assert_int_equal(completed.status, 0);
                if (strcmp(completed.out, expected) != 0)
                        fail_msg("%s: bash completes\n%sbut --help lists\n%s", commands[i], completed.out, expected);
        }
}

/*
 * The options the man page's synopsis line of command lists, as help_options() lists them: a short
 * option with its long name (from help), and -h, --help, which have a synopsis line of their own.
 */
static char *synopsis_options(const char *man, const char *command, const char *help) {
        _cleanup_free_ char *start = vf_printf("\n*virtform %s* ", command);
        _cleanup_strv_free_ char **names = NULL;
        const char *line = strstr(man, start);
        vf_buf b = {};

        assert_non_null(line);
        line += strlen(start);
        assert_int_equal(vf_strv_push(&names, "-h"), 0);
        assert_int_equal(vf_strv_push(&names, "--help"), 0);
        for (const char *p = strstr(line, "*-"); p && p < strchr(line, '\n'); p = strstr(p + 1, "*-")) {
                _cleanup_free_ char *name = strndup(p + 1, strcspn(p + 1, "*"));
                if (name[1] != '-') {
                        _cleanup_free_ char *in_help = vf_printf("  %s, ", name);
                        const char *long_name = strstr(help, in_help);
                        assert_non_null(long_name);
                        long_name += strlen(in_help);
                        assert_int_equal(vf_strv_consume(&names, strndup(long_name, strcspn(long_name, " "))), 0);
                }
                assert_int_equal(vf_strv_consume(&names, TAKE_PTR(name)), 0);
        }
        qsort(names, vf_strv_length(names), sizeof(char *), compare_strings);
        for (size_t i = 0; names[i]; i++)
                vf_buf_printf(&b, "%s\n", names[i]);
        return vf_buf_steal(&b);
}

/* The man page's synopsis of each command lists exactly the options its --help lists. */
static void test_man_synopsis_lists_the_help_options(void **state) {
        static const char *const commands[] = { "apply", "plan", "validate", "status", "run", "log",
                                                "hostdev resolve", "state check", "state recover",
                                                "cloud-init render" };
        _cleanup_free_ char *man = th_slurp(getenv("VIRTFORM_MAN"));

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                _cleanup_free_ char *verb = strchr(commands[i], ' ') ? strdup(strchr(commands[i], ' ') + 1) : NULL;
                _cleanup_free_ char *name = strndup(commands[i], strcspn(commands[i], " "));
                _cleanup_(run_done) run help = virtform(name, verb ? verb : "--help", verb ? "--help" : NULL, NULL);
                _cleanup_free_ char *expected = help_options(help.out);
                _cleanup_free_ char *listed = synopsis_options(man, commands[i], help.out);

                if (strcmp(listed, expected) != 0)
                        fail_msg("%s: the man page lists\n%sbut --help lists\n%s", commands[i], listed, expected);
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
        assert_non_null(strstr(badopt.err, "invalid --shutdown-timeout 'soon': give seconds, 0..86400\n"));
        /* Each number within its range, both ends said. */
        static const char *const out_of_range[][4] = {
                { "run", "--retry-base", "0", "invalid --retry-base '0': give seconds, 1..86400\n" },
                { "run", "--debounce", "86401", "invalid --debounce '86401': give milliseconds, 0..86400\n" },
                { "apply", "--log-retention-rows", "1000000001",
                  "invalid --log-retention-rows '1000000001': give a count, 1..1000000000\n" },
                { "apply", "--wait-lock", "-1", "invalid --wait-lock '-1': give seconds, 0..86400\n" },
        };
        for (size_t i = 0; i < ELEMENTSOF(out_of_range); i++) {
                _cleanup_(run_done) run r = virtform(out_of_range[i][0], out_of_range[i][1], out_of_range[i][2], NULL);
                assert_int_equal(r.status, 1);
                if (!strstr(r.err, out_of_range[i][3]))
                        fail_msg("'%s' lacks '%s'", r.err, out_of_range[i][3]);
        }
        _cleanup_(run_done) run no_verb = virtform("state", NULL);
        assert_int_equal(no_verb.status, 1);
        assert_non_null(strstr(no_verb.err, "expected: virtform state check|recover"));
        _cleanup_(run_done) run no_value = virtform("status", "--state", NULL);
        assert_int_equal(no_value.status, 1);
        assert_non_null(strstr(no_value.err, "--state needs a value"));
        _cleanup_(run_done) run bad_output = virtform("log", "-o", "yaml", NULL);
        assert_int_equal(bad_output.status, 1);
        assert_non_null(strstr(bad_output.err, "invalid --output 'yaml': use table|json"));
}

/* An option a command does not take is a usage error naming the commands that take it; nothing runs. */
static void test_option_of_another_command_exits_1(void **state) {
        static const struct {
                const char *argv[5];
                const char *message;
        } cases[] = {
                { { "run", "--wait" }, "virtform run: --wait does not apply to run; it is an option of apply\n" },
                { { "status", "--no-prune" }, "--no-prune does not apply to status; it is an option of apply, plan, run\n" },
                { { "apply", "--instance", "x" }, "--instance does not apply to apply; it is an option of state recover\n" },
                { { "plan", "--wait-lock", "5" }, "--wait-lock does not apply to plan; it is an option of apply, run, state recover\n" },
                { { "validate", "--state", "x" }, "--state does not apply to validate" },
                { { "state", "check", "-c", "test:///default" },
                  "virtform state check: --connect does not apply to state check; it is an option of apply, plan, run, state recover\n" },
                { { "apply", "--since", "1h" }, "--since does not apply to apply; it is an option of log\n" },
                { { "apply", "-o", "json" }, "--output does not apply to apply" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *const *a = cases[i].argv;
                _cleanup_(run_done) run r = virtform(a[0], a[1], a[2], a[3], a[4]);
                assert_int_equal(r.status, 1);
                if (!strstr(r.err, cases[i].message))
                        fail_msg("%s %s: '%s' lacks '%s'", a[0], a[1], r.err, cases[i].message);
                assert_string_equal(r.out, "");
        }
}

/* An option that only matters with another is refused without it, where the command takes that other. */
static void test_option_without_the_one_it_needs_exits_1(void **state) {
        fixture *f = *state;
        const char *needs_wait[] = { "--timeout", "--retry-base", "--retry-max" };

        for (size_t i = 0; i < ELEMENTSOF(needs_wait); i++) {
                _cleanup_free_ char *message = vf_printf("virtform apply: %s has no effect without --wait\n",
                                                         needs_wait[i]);
                _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state,
                                                     needs_wait[i], "5", f->examples, NULL);
                assert_int_equal(r.status, 1);
                if (!strstr(r.err, message))
                        fail_msg("'%s' lacks '%s'", r.err, message);
                assert_int_equal(access(f->state, F_OK), -1);
        }
        /* run retries without being asked to wait: it takes --retry-base alone, and goes on to what it names. */
        _cleanup_(run_done) run daemon = virtform("run", "-c", "nosuchdriver:///system", "--state", f->state,
                                                  "--retry-base", "5", f->examples, NULL);
        assert_int_equal(daemon.status, 1);
        assert_non_null(strstr(daemon.err, "cannot connect to the hypervisor"));
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

/* The event log as an operator reads it: every write of the apply, filtered by resource and time. */
static void test_log_shows_the_writes(void **state) {
        fixture *f = *state;
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state,
                                             f->examples, NULL);
        assert_int_equal(r.status, 0);

        _cleanup_(run_done) run all = virtform("log", "--state", f->state, NULL);
        assert_int_equal(all.status, 0);
        assert_non_null(strstr(all.out, "network/lan"));
        assert_non_null(strstr(all.out, "domain/web1"));
        assert_null(strstr(all.out, "intended"));

        _cleanup_(run_done) run one = virtform("log", "--state", f->state, "--since", "1h", "domain/web1", "-o",
                                               "json", NULL);
        assert_int_equal(one.status, 0);
        assert_int_equal(one.out[0], '[');
        assert_non_null(strstr(one.out, "\"name\":\"web1\",\"generation\":1,\"action\":\"define\",\"outcome\":\"ok\""));
        assert_null(strstr(one.out, "\"name\":\"lan\""));

        /* Nothing is intended in the future; a header and no line. */
        _cleanup_(run_done) run later = virtform("log", "--state", f->state, "--since", "2999-01-01", NULL);
        assert_int_equal(later.status, 0);
        assert_null(strchr(strchr(later.out, '\n') + 1, '\n'));

        _cleanup_(run_done) run bad = virtform("log", "--state", f->state, "--since", "soon", NULL);
        assert_int_equal(bad.status, 1);
        assert_non_null(strstr(bad.err, "invalid --since"));
        _cleanup_(run_done) run missing = virtform("log", "--state", "/nonexistent/state.db", NULL);
        assert_int_equal(missing.status, 1);
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
        int64_t started = vf_now_monotonic_usec();
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state, "--wait",
                                             "--timeout", "1", f->dir, NULL);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.out, "waiting   domain/web"));
        assert_non_null(strstr(r.err, "gave up after 1 s"));
        /* The timeout is kept, not overrun by the retries' backoff (a bound, not a speed measurement). */
        assert_true(vf_now_monotonic_usec() - started < 5 * 1000000LL);

        _cleanup_free_ char *state2 = vf_printf("%s/state2.db", f->dir);
        _cleanup_(run_done) run ok = virtform("apply", "-c", "test:///default", "--state", state2, "--wait",
                                              "--timeout", "30", f->examples, NULL);
        assert_int_equal(ok.status, 0);
        assert_null(strstr(ok.out, "waiting"));
        /* The report is the whole run's: what it created, not a last pass that found nothing to do. */
        assert_non_null(strstr(ok.out, "created   domain/web1"));
        assert_null(strstr(ok.out, "unchanged"));
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
        assert_int_equal(r.err[strlen(r.err) - 1], '\n');
        /* Each line an object, its time with milliseconds, under journald too. */
        th_assert_lines_match(r.err, "^\\{\"time\":\"" TH_LOG_TIME_ERE "\",\"level\":.*\\}$");
}

/*
 * apply's stderr, to the file err, when systemd says its journal stream is the file named: as systemd does,
 * JOURNAL_STREAM gives that file's device and inode.
 */
static char *apply_logs_beside_journal(const char *conf, const char *state, const char *err, const char *named) {
        const char *argv[] = { "/bin/sh", "-c",
                               "exec 2>\"$1\"; export JOURNAL_STREAM=\"$(stat -c %d:%i \"$2\")\"; "
                               "exec \"$VIRTFORM\" apply -c test:///default --state \"$3\" --log-level info \"$4\"",
                               "sh", err, named, state, conf, NULL };
        _cleanup_(run_done) run r = th_spawn(argv, NULL);

        assert_int_equal(r.status, 0);
        return th_slurp(err);
}

/* Text logs start with the time, in UTC with milliseconds; not on journald's stream, which adds its own. */
static void test_text_logs_carry_time(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *conf = vf_printf("%s/conf", f->dir), *err = vf_printf("%s/err", f->dir),
                            *other = vf_printf("%s/other", f->dir), *state2 = vf_printf("%s/state2.db", f->dir),
                            *state3 = vf_printf("%s/state3.db", f->dir);

        assert_int_equal(mkdir(conf, 0700), 0);
        th_write(conf, "lan.yaml", "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec: {}\n");
        th_write(f->dir, "other", "%s", "");
        _cleanup_(run_done) run plain = virtform("apply", "-c", "test:///default", "--state", f->state, "--log-level",
                                                 "info", conf, NULL);
        assert_int_equal(plain.status, 0);
        assert_non_null(strstr(plain.err, "network/lan: created"));
        th_assert_lines_match(plain.err, "^" TH_LOG_TIME_ERE " virtform: (notice|info): ");

        _cleanup_free_ char *journal = apply_logs_beside_journal(conf, state2, err, err);
        assert_non_null(strstr(journal, "network/lan: created"));
        th_assert_lines_match(journal, "^virtform: (notice|info): ");

        /* JOURNAL_STREAM inherited from elsewhere (a shell started by a unit) names another file: time it. */
        _cleanup_free_ char *elsewhere = apply_logs_beside_journal(conf, state3, err, other);
        assert_non_null(strstr(elsewhere, "network/lan: created"));
        th_assert_lines_match(elsewhere, "^" TH_LOG_TIME_ERE " virtform: (notice|info): ");
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

/* A typo in a path: exit 1 with the path's error, the state untouched; the daemon refuses to start. */
static void test_missing_path_exits_1(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *typo = vf_printf("%s-typo", getenv("VIRTFORM_EXAMPLES"));
        _cleanup_free_ char *expected = vf_printf("error: %s: error: does not exist; while a path given cannot be "
                                                  "read nothing is pruned", typo);
        const char *commands[] = { "apply", "plan", "run" };

        _cleanup_(run_done) run applied = virtform("apply", "-c", "test:///default", "--state", f->state,
                                                   getenv("VIRTFORM_EXAMPLES"), NULL);
        assert_int_equal(applied.status, 0);
        _cleanup_(run_done) run before = virtform("status", "--state", f->state, "-o", "json", NULL);
        assert_non_null(strstr(before.out, "\"name\":\"web1\""));

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                _cleanup_(run_done) run r = virtform(commands[i], "-c", "test:///default", "--state", f->state,
                                                     typo, NULL);
                assert_int_equal(r.status, 1);
                assert_non_null(strstr(r.err, expected));
                assert_non_null(strstr(r.err, "nothing was applied or pruned"));
                assert_string_equal(r.out, "");
        }
        /* Every record is still there, as it was. */
        _cleanup_(run_done) run after = virtform("status", "--state", f->state, "-o", "json", NULL);
        assert_string_equal(after.out, before.out);

        _cleanup_(run_done) run validate = virtform("validate", typo, NULL);
        assert_int_equal(validate.status, 1);
        assert_non_null(strstr(validate.err, expected + strlen("error: ")));
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

/* validate checks against libvirt's installed schemas too: a device only they know to be wrong is an error. */
static void test_validate_libvirt_schemas(void **state) {
        fixture *f = *state;
        if (access("/usr/share/libvirt/schemas/domain.rng", R_OK) < 0)
                th_skip("libvirt's schemas are not installed in /usr/share/libvirt/schemas");
        th_write(f->dir, "x.xml", "<domain>\n  <name>x</name>\n  <memory>1024</memory>\n  <os><type>hvm</type></os>\n"
                                  "  <devices><frobnicator/></devices>\n</domain>\n");
        _cleanup_free_ char *file = vf_printf("%s/x.xml", f->dir);
        _cleanup_free_ char *expected = vf_printf("%s:5:3: error: invalid <domain> (checked against libvirt's "
                                                  "/usr/share/libvirt/schemas/domain.rng)", file);
        _cleanup_(run_done) run r = virtform("validate", file, NULL);
        assert_int_equal(r.status, 1);
        assert_ptr_equal(strstr(r.err, expected), r.err);
}

/* validate names what a set refers to and does not declare, as a warning: the set is still valid. */
static void test_validate_undeclared_reference(void **state) {
        fixture *f = *state;
        th_write(f->dir, "web.yaml", "apiVersion: virtform/v1\nkind: Domain\nmetadata:\n  name: web\nspec:\n"
                                     "  memory: 1GiB\n  interfaces: [{network: wan}]\n");
        _cleanup_free_ char *file = vf_printf("%s/web.yaml", f->dir);
        _cleanup_free_ char *expected = vf_printf("%s:4:9: warning: domain/web refers to network/wan, which no file "
                                                  "declares", file);
        _cleanup_(run_done) run r = virtform("validate", file, NULL);
        assert_int_equal(r.status, 0);
        assert_ptr_equal(strstr(r.err, expected), r.err);
        assert_non_null(strstr(r.out, "1 resources in 1 files are valid"));
}

#define CLOUDINIT_YAML(name)                                                                                   \
        "apiVersion: virtform/v1\nkind: CloudInit\nmetadata: {name: " name "}\nspec:\n  pool: images\n"         \
        "  userData: |\n    #cloud-config\n    packages: [nginx]\n"                                                 \
        "  metaData: {local-hostname: web1.example.org}\n  networkConfig: |\n    version: 2\n"

/* Runs xorriso on an image. */
static run xorriso(const char *iso, const char *a, const char *b, const char *c, const char *d) {
        const char *argv[] = { "/usr/bin/xorriso", "-osirrox", "on", "-indev", iso, a, b, c, d, NULL };
        return th_spawn(argv, NULL);
}

static char *slurp_in(const char *dir, const char *name) {
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, name);
        return th_slurp(path);
}

/* The seed as cloud-init reads it: read back with xorriso, file by file, and its volume id. */
static void test_cloudinit_render(void **state) {
        fixture *f = *state;
        if (access("/usr/bin/xorriso", X_OK) < 0)
                th_skip("xorriso is not installed: it reads the seed back");
        th_write(f->dir, "seed.yaml", CLOUDINIT_YAML("web1"));
        _cleanup_free_ char *file = vf_printf("%s/seed.yaml", f->dir);
        _cleanup_free_ char *iso = vf_printf("%s/seed.iso", f->dir);
        _cleanup_free_ char *out = vf_printf("%s/out", f->dir);

        _cleanup_(run_done) run r = virtform("cloud-init", "render", file, "-o", iso, NULL);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.out, "");
        assert_string_equal(r.err, "");
        _cleanup_(run_done) run pvd = xorriso(iso, "-pvd_info", NULL, NULL, NULL);
        assert_int_equal(pvd.status, 0);
        assert_non_null(strstr(pvd.out, "\nVolume Id    : cidata\n"));
        _cleanup_(run_done) run extract = xorriso(iso, "-extract", "/", out, NULL);
        assert_int_equal(extract.status, 0);
        _cleanup_free_ char *user_data = slurp_in(out, "user-data");
        _cleanup_free_ char *meta_data = slurp_in(out, "meta-data");
        _cleanup_free_ char *network_config = slurp_in(out, "network-config");
        assert_string_equal(user_data, "#cloud-config\npackages: [nginx]\n");
        assert_string_equal(network_config, "version: 2\n");
        th_assert_lines_match(meta_data, "^(instance-id: iid-[0-9a-f]{16}|local-hostname: web1.example.org)$");
        assert_non_null(strstr(meta_data, "local-hostname: web1.example.org\n"));

        /* The same file, the same bytes, to stdout as to a file; no state file is made anywhere. */
        _cleanup_free_ char *script = vf_printf("\"$VIRTFORM\" cloud-init render '%s' -o - >'%s/again.iso' && "
                                                "cmp '%s' '%s/again.iso'", file, f->dir, iso, f->dir);
        const char *sh[] = { "/bin/sh", "-c", script, NULL };
        _cleanup_(run_done) run again = th_spawn(sh, NULL);
        assert_int_equal(again.status, 0);
        assert_int_equal(access(f->state, F_OK), -1);

        /* Another hostname: another instance-id, so that cloud-init runs again. */
        _cleanup_free_ char *changed = strdup(CLOUDINIT_YAML("web1"));
        memcpy(strstr(changed, "web1.example"), "web2", 4);
        th_write(f->dir, "seed.yaml", "%s", changed);
        _cleanup_(run_done) run r2 = virtform("cloud-init", "render", file, "-o", iso, NULL);
        assert_int_equal(r2.status, 0);
        th_rmtree(out);
        _cleanup_(run_done) run extract2 = xorriso(iso, "-extract", "/", out, NULL);
        assert_int_equal(extract2.status, 0);
        _cleanup_free_ char *meta_data2 = slurp_in(out, "meta-data");
        assert_non_null(strstr(meta_data2, "local-hostname: web2.example.org\n"));
        assert_memory_not_equal(meta_data, meta_data2, strlen("instance-id: iid-0123456789abcdef"));

        /* An instance-id YAML would read as something else than a string is quoted. */
        th_write(f->dir, "seed.yaml", "apiVersion: virtform/v1\nkind: CloudInit\nmetadata: {name: web1}\n"
                                      "spec: {pool: images, metaData: {instance-id: 'no'}}\n");
        _cleanup_(run_done) run r3 = virtform("cloud-init", "render", file, "-o", iso, NULL);
        assert_int_equal(r3.status, 0);
        th_rmtree(out);
        _cleanup_(run_done) run extract3 = xorriso(iso, "-extract", "/", out, NULL);
        assert_int_equal(extract3.status, 0);
        _cleanup_free_ char *meta_data3 = slurp_in(out, "meta-data"), *user_data3 = slurp_in(out, "user-data");
        assert_string_equal(meta_data3, "instance-id: \"no\"\n");
        assert_string_equal(user_data3, "");
        _cleanup_free_ char *network_config3 = vf_printf("%s/network-config", out);
        assert_int_equal(access(network_config3, F_OK), -1);
}

/* What cannot be rendered exits 1, says why, and leaves no file behind. */
static void test_cloudinit_render_refused(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *web = vf_printf("%s/20-web.yaml", f->examples);
        _cleanup_free_ char *two = vf_printf("%s/two.yaml", f->dir);
        _cleanup_free_ char *iso = vf_printf("%s/seed.iso", f->dir);
        _cleanup_free_ char *unwritable = vf_printf("%s/missing/seed.iso", f->dir);
        th_write(f->dir, "two.yaml", CLOUDINIT_YAML("a") "---\n" CLOUDINIT_YAML("b"));
        th_write(f->dir, "bad.yaml", "apiVersion: virtform/v1\nkind: CloudInit\nmetadata: {name: x}\nspec: {}\n");
        _cleanup_free_ char *bad = vf_printf("%s/bad.yaml", f->dir);
        struct {
                const char *argv[6];
                const char *message;
        } cases[] = {
                { { "cloud-init", "render", web, "-o", iso }, "20-web.yaml declares no CloudInit\n" },
                { { "cloud-init", "render", two, "-o", iso },
                  "two.yaml declares 2 CloudInits (a, b); pick one with --name\n" },
                { { "cloud-init", "render", two, "--name", "c" }, "give the file to write with -o FILE" },
                { { "cloud-init", "render", bad, "-o", iso }, "bad.yaml:4:7: error: pool is missing" },
                { { "cloud-init", "render", two, "-o", unwritable }, "cannot write the seed to" },
                /* A directory in the way: the rename fails, and the temporary file goes. */
                { { "cloud-init", "render", two, "-o", f->dir }, "cannot write the seed to" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *const *a = cases[i].argv;
                const char *name = i >= 4 ? "--name" : NULL;
                _cleanup_(run_done) run r = name ? virtform(a[0], a[1], a[2], a[3], a[4], name, "a", NULL)
                                                 : virtform(a[0], a[1], a[2], a[3], a[4], NULL);
                assert_int_equal(r.status, 1);
                if (!strstr(r.err, cases[i].message))
                        fail_msg("case %zu: '%s' lacks '%s'", i, r.err, cases[i].message);
                assert_string_equal(r.out, "");
        }
        assert_int_equal(access(iso, F_OK), -1);
        _cleanup_(run_done) run ls = th_spawn((const char *[]) { "/bin/sh", "-c", "ls -A \"$0\"", f->dir, NULL }, NULL);
        assert_string_equal(ls.out, "bad.yaml\ntwo.yaml\n");
        _cleanup_(run_done) run picked = virtform("cloud-init", "render", two, "--name", "b", "-o", iso, NULL);
        assert_int_equal(picked.status, 0);
        assert_int_equal(access(iso, R_OK), 0);
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

/* ---- a strict JSON reader, to check that -o json parses (RFC 8259) ---- */

static void json_ws(const char **p) {
        while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
                (*p)++;
}

static bool json_utf8(const char **p) {
        const unsigned char *u = (const unsigned char *) *p;
        size_t n = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : 2;

        if (u[0] < 0xc2 || u[0] > 0xf4)
                return false;
        for (size_t i = 1; i < n; i++)
                if (u[i] < 0x80 || u[i] > 0xbf)
                        return false;
        *p += n;
        return true;
}

static bool json_string(const char **p) {
        if (*(*p)++ != '"')
                return false;
        while (**p != '"') {
                unsigned char c = (unsigned char) **p;
                if (c < 0x20)
                        return false;
                if (c >= 0x80) {
                        if (!json_utf8(p))
                                return false;
                        continue;
                }
                (*p)++;
                if (c != '\\')
                        continue;
                if (**p == 'u') {
                        for (int i = 1; i <= 4; i++)
                                if (!isxdigit((unsigned char) (*p)[i]))
                                        return false;
                        *p += 5;
                } else if (**p && strchr("\"\\/bfnrt", **p))
                        (*p)++;
                else
                        return false;
        }
        (*p)++;
        return true;
}

static bool json_value(const char **p);

/* An object's members or an array's items, after the opening bracket. */
static bool json_members(const char **p, char close, bool keys) {
        json_ws(p);
        if (**p == close) {
                (*p)++;
                return true;
        }
        for (;;) {
                json_ws(p);
                if (keys) {
                        if (!json_string(p))
                                return false;
                        json_ws(p);
                        if (*(*p)++ != ':')
                                return false;
                }
                if (!json_value(p))
                        return false;
                json_ws(p);
                char c = *(*p)++;
                if (c == close)
                        return true;
                if (c != ',')
                        return false;
        }
}

static bool json_value(const char **p) {
        json_ws(p);
        if (**p == '{' || **p == '[') {
                char open = *(*p)++;
                return json_members(p, open == '{' ? '}' : ']', open == '{');
        }
        if (**p == '"')
                return json_string(p);
        for (const char *const *lit = (const char *const[]) { "true", "false", "null", NULL }; *lit; lit++)
                if (strncmp(*p, *lit, strlen(*lit)) == 0) {
                        *p += strlen(*lit);
                        return true;
                }
        const char *start = *p;
        if (**p == '-')
                (*p)++;
        if (!isdigit((unsigned char) **p) || (**p == '0' && isdigit((unsigned char) (*p)[1])))
                return false;
        *p += strspn(*p, "0123456789");
        if (**p == '.' && isdigit((unsigned char) (*p)[1]))
                *p += 1 + strspn(*p + 1, "0123456789");
        if ((**p == 'e' || **p == 'E')) {
                (*p)++;
                *p += **p == '+' || **p == '-';
                if (!isdigit((unsigned char) **p))
                        return false;
                *p += strspn(*p, "0123456789");
        }
        return *p > start;
}

static void assert_json(const char *text) {
        const char *p = text;
        bool ok = json_value(&p);

        json_ws(&p);
        if (!ok || *p)
                fail_msg("not JSON at offset %td:\n%s", p - text, text);
}

/* plan's exit status, as terraform's: 0 nothing to do, 2 changes pending, 1 an error; 0 or 1 without the flag. */
static void test_plan_detailed_exitcode(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *empty = vf_printf("%s/empty", f->dir), *bad = vf_printf("%s/bad", f->dir);
        _cleanup_free_ char *node = vf_printf("test://%s/node.xml", f->dir);

        assert_int_equal(mkdir(empty, 0755), 0);
        assert_int_equal(mkdir(bad, 0755), 0);
        th_write(bad, "web.yaml", "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web}\nspec:\n  memroy: 1\n");
        /* A host with a network of the examples' name that is not ours: apply would fail on it. */
        th_write(f->dir, "node.xml", "<node><network><name>lan</name><bridge name='virbr10'/></network></node>\n");
        static const struct {
                const char *uri;
                int dir; /* 0: empty, 1: the examples, 2: a file with an error */
                bool detailed;
                int status;
        } cases[] = {
                { "test:///default", 0, true, 0 },  { "test:///default", 1, true, 2 },
                { "test:///default", 2, true, 1 },  { NULL, 1, true, 1 },
                { "test:///default", 0, false, 0 }, { "test:///default", 1, false, 0 },
                { "test:///default", 2, false, 1 }, { NULL, 1, false, 1 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *dirs[] = { empty, f->examples, bad };
                _cleanup_(run_done) run r = virtform("plan", "-c", cases[i].uri ? cases[i].uri : node, "--state",
                                                     f->state, dirs[cases[i].dir],
                                                     cases[i].detailed ? "--detailed-exitcode" : NULL, NULL);
                if (r.status != cases[i].status)
                        fail_msg("case %zu: plan exited %d, not %d:\n%s\n%s", i, r.status, cases[i].status, r.out,
                                 r.err);
        }
        assert_int_equal(access(f->state, F_OK), -1);
        _cleanup_(run_done) run apply = virtform("apply", "--detailed-exitcode", f->examples, NULL);
        assert_int_equal(apply.status, 1);
        assert_non_null(strstr(apply.err, "--detailed-exitcode does not apply to apply; it is an option of plan"));
}

/* plan -o json: one document, keys in a fixed order, valid whatever the files' names and contents hold. */
static void test_plan_json(void **state) {
        fixture *f = *state;
        const char *nasty = "bad \"quote\" back\\slash \x01\t\xff.yaml";

        th_write(f->examples, nasty, "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: \"x\xfe\"}\n");
        _cleanup_(run_done) run r = virtform("plan", "-c", "test:///default", "--state", f->state, "-o", "json",
                                         f->examples, NULL);
        assert_int_equal(r.status, 1);
        assert_json(r.out);
        _cleanup_free_ char *web1 = vf_printf(
                "{\"kind\":\"domain\",\"name\":\"web1\",\"file\":\"%s/20-web.yaml\",\"action\":\"create\","
                "\"reason\":\"Applied\",\"message\":\"define, autostart on, start\",\"diff\":\"@@ -0,0 +1,20 @@ "
                "/domain\\n+<domain type=\\\"test\\\">\\n+  <name>web1</name>\\n",
                f->examples);
        assert_ptr_equal(strstr(r.out, "{\"changes\":[\n  {\"kind\":\"network\",\"name\":\"lan\","), r.out);
        if (!strstr(r.out, web1))
                fail_msg("no\n%s\nin\n%s", web1, r.out);
        assert_non_null(strstr(r.out, "</domain>\\n\",\"steps\":[\"define\",\"autostart on\",\"start\"]}"));
        assert_non_null(strstr(r.out, "\n \"summary\":{\"resources\":5,\"unchanged\":0,\"create\":5,\"update\":0,"
                                      "\"delete\":0,\"keep\":0,\"waiting\":0,\"failed\":0,\"fileErrors\":1},\n"
                                      " \"errors\":[\n  {\"file\":\""));
        assert_non_null(strstr(r.out, "bad \\\"quote\\\" back\\\\slash \\u0001\\t\\ufffd.yaml\",\"line\":"));

        /* A run that cannot be made still prints a document, with its error. */
        _cleanup_free_ char *typo = vf_printf("%s-typo", f->examples);
        _cleanup_(run_done) run failed = virtform("plan", "-c", "test:///default", "--state", f->state, "-o",
                                                  "json", typo, NULL);
        assert_int_equal(failed.status, 1);
        assert_json(failed.out);
        assert_non_null(strstr(failed.out, "\"changes\":[]"));
        assert_non_null(strstr(failed.out, "cannot be read\"}]}\n"));
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

/* ---- the state file --------------------------------------------------- */

#define DEADLINE_USEC (30 * 1000000)
#define POLL_USEC 20000

/* Polls until path holds the text prefix; false at the deadline. */
static bool wait_for_file_prefix(const char *path, const char *prefix) {
        for (int64_t deadline = vf_now_monotonic_usec() + DEADLINE_USEC; vf_now_monotonic_usec() < deadline;
             usleep(POLL_USEC)) {
                _cleanup_free_ char *text = NULL;
                if (vf_read_file(path, 4096, &text, NULL) >= 0 && strncmp(text, prefix, strlen(prefix)) == 0)
                        return true;
        }
        return false;
}

/* Polls until the running child has written needle times times to what read reads; false at the deadline. */
static bool wait_for_output(const th_child *c, char *(*read)(const th_child *), const char *needle, size_t times) {
        for (int64_t deadline = vf_now_monotonic_usec() + DEADLINE_USEC; vf_now_monotonic_usec() < deadline;
             usleep(POLL_USEC)) {
                _cleanup_free_ char *text = read(c);
                if (th_count_in_text(text, needle) >= times)
                        return true;
        }
        return false;
}

static bool wait_for_stderr(const th_child *c, const char *needle) {
        return wait_for_output(c, th_child_stderr, needle, 1);
}

/* ---- apply's streamed lines ---------------------------------------------------------- */

#define LAN_NETWORK "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec: {}\n"
/* The test driver's own domain: not ours, so a Conflict, retried with backoff. */
#define CONFLICTING_DOMAIN "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: test}\nspec:\n  memory: 1GiB\n"

/*
 * apply --wait prints each resource's line as it is decided: both are out while the process still retries
 * the conflicting domain, whose retries (its log says they ran) do not repeat its line.
 */
static void test_apply_streams_lines(void **state) {
        fixture *f = *state;

        th_write(f->dir, "10-lan.yaml", LAN_NETWORK);
        th_write(f->dir, "20-test.yaml", CONFLICTING_DOMAIN);
        th_child c = virtform_start("apply", "-c", "test:///default", "--state", f->state, "--wait", "--timeout",
                                    "60", "--log-level", "notice", f->dir, NULL);
        assert_true(wait_for_output(&c, th_child_stderr, "domain/test: failed: Conflict", 2));
        /* Still waiting: what it wrote so far is what an operator watching it sees now. */
        assert_int_equal(waitpid(c.pid, NULL, WNOHANG), 0);
        assert_int_equal(kill(c.pid, SIGKILL), 0);
        _cleanup_(run_done) run r = th_spawn_wait(&c);

        assert_int_equal(th_count_in_text(r.out, "created   network/lan"), 1);
        assert_int_equal(th_count_in_text(r.out, "failed    domain/test: Conflict"), 1);
        assert_true(strstr(r.out, "network/lan") < strstr(r.out, "domain/test"));
        assert_null(strchr(r.out, '\r'));
}

/* SIGTERM stops apply --wait between two resources: exit 2 with its lines and summary, not killed, no timeout said. */
static void test_apply_sigterm_stops_with_a_summary(void **state) {
        fixture *f = *state;

        th_write(f->dir, "10-lan.yaml", LAN_NETWORK);
        th_write(f->dir, "20-test.yaml", CONFLICTING_DOMAIN);
        th_child c = virtform_start("apply", "-c", "test:///default", "--state", f->state, "--wait", "--timeout",
                                    "60", "--log-level", "notice", f->dir, NULL);
        assert_true(wait_for_output(&c, th_child_stderr, "domain/test: failed: Conflict", 1));
        assert_int_equal(kill(c.pid, SIGTERM), 0);
        _cleanup_(run_done) run r = th_spawn_wait(&c);

        if (r.killed || r.status != 2)
                fail_msg("apply %s %d on SIGTERM:\n%s%s", r.killed ? "died of signal" : "exited", r.status, r.out,
                         r.err);
        assert_non_null(strstr(r.out, "created   network/lan"));
        assert_non_null(strstr(r.out, "\napply: 2 resources"));
        /* It was stopped, and said so as SIGTERM came: not a timeout that never passed. */
        assert_null(strstr(r.err, "gave up"));
}

/* A failure is said once, on stdout with the other resources, not again on stderr. */
static void test_apply_failure_said_once(void **state) {
        fixture *f = *state;

        th_write(f->dir, "20-test.yaml", CONFLICTING_DOMAIN);
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state, f->dir, NULL);
        assert_int_equal(r.status, 2);
        assert_int_equal(th_count_in_text(r.out, "Conflict"), 1);
        if (strstr(r.err, "Conflict"))
                fail_msg("the failure is on stderr too:\n%s", r.err);
}

/* Runs $VIRTFORM with args on a pseudo-terminal; returns all it wrote there. */
static char *virtform_on_pty(const char *const *args) {
        const char *argv[16] = { getenv("VIRTFORM") };
        vf_buf out = {};
        char chunk[4096];
        ssize_t n;
        int master, status;

        for (size_t i = 0; args[i] && i + 2 < ELEMENTSOF(argv); i++)
                argv[i + 1] = args[i];
        pid_t pid = forkpty(&master, NULL, NULL, NULL);
        assert_true(pid >= 0);
        if (pid == 0) {
                execv(argv[0], (char **) argv);
                _exit(127);
        }
        /* The terminal's end reads EIO once the child and every copy of its side are gone. */
        while ((n = read(master, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))
                if (n > 0)
                        vf_buf_append(&out, chunk, (size_t) n);
        close(master);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        return vf_buf_steal(&out);
}

/* On a terminal, a progress line rewritten in place before each resource's line; never with JSON logs. */
static void test_apply_progress_on_a_terminal(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *state2 = vf_printf("%s/state2.db", f->dir);

        th_write(f->dir, "10-lan.yaml", LAN_NETWORK);
        th_write(f->dir, "20-test.yaml", CONFLICTING_DOMAIN);
        _cleanup_free_ char *tty = virtform_on_pty(
                (const char *[]) { "apply", "-c", "test:///default", "--state", f->state, f->dir, NULL });
        if (!strstr(tty, "\r\033[K[1/2] network/lan (") || !strstr(tty, "\r\033[K[1/2] network/lan: define ("))
                fail_msg("no progress line for the first resource and its step:\n%s", tty);
        assert_non_null(strstr(tty, "elapsed)\r\033[Kcreated   network/lan"));
        assert_non_null(strstr(tty, "\r\033[K[2/2] domain/test ("));

        _cleanup_free_ char *json = virtform_on_pty((const char *[]) {
                "apply", "-c", "test:///default", "--state", state2, "--log-format", "json", f->dir, NULL });
        assert_non_null(strstr(json, "created   network/lan"));
        assert_null(strstr(json, "\033[K"));
}

/* A writer beside a running daemon refuses at once, naming it; readers go on; --wait-lock waits for it. */
static void test_second_writer_refused(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *conf = vf_printf("%s/conf", f->dir), *lock = vf_printf("%s.lock", f->state);

        assert_int_equal(mkdir(conf, 0700), 0);
        th_write(conf, "lan.yaml", "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec: {}\n");
        th_child daemon = virtform_start("run", "-c", "test:///default", "--state", f->state, conf, NULL);
        _cleanup_free_ char *holder = vf_printf("%d ", (int) daemon.pid);
        assert_true(wait_for_file_prefix(lock, holder));
        _cleanup_free_ char *named = vf_printf("the state file %s is in use by PID %d (%s run -c test:///default",
                                               f->state, (int) daemon.pid, getenv("VIRTFORM"));

        int64_t start = vf_now_monotonic_usec();
        _cleanup_(run_done) run apply = virtform("apply", "-c", "test:///default", "--state", f->state, conf, NULL);
        int64_t took = vf_now_monotonic_usec() - start;
        assert_int_equal(apply.status, 1);
        if (!strstr(apply.err, named))
                fail_msg("'%s' does not name the daemon ('%s')", apply.err, named);
        assert_non_null(strstr(apply.err, "stop it, or wait with --wait-lock SEC"));
        assert_true(took < 2 * 1000000);

        /* plan and status only read: they need no lock. */
        _cleanup_(run_done) run plan = virtform("plan", "-c", "test:///default", "--state", f->state, conf, NULL);
        assert_int_equal(plan.status, 0);
        _cleanup_(run_done) run status = virtform("status", "--state", f->state, NULL);
        assert_int_equal(status.status, 0);
        assert_non_null(strstr(status.out, "lan"));

        _cleanup_(run_done) run gave_up = virtform("apply", "-c", "test:///default", "--state", f->state,
                                                   "--wait-lock", "1", conf, NULL);
        assert_int_equal(gave_up.status, 1);
        assert_non_null(strstr(gave_up.err, named));

        th_child waiter = virtform_start("apply", "-c", "test:///default", "--state", f->state, "--wait-lock", "60",
                                         conf, NULL);
        assert_true(wait_for_stderr(&waiter, "waiting up to 60 s"));
        assert_int_equal(kill(daemon.pid, SIGTERM), 0);
        _cleanup_(run_done) run stopped = th_spawn_wait(&daemon);
        assert_int_equal(stopped.status, 0);
        _cleanup_(run_done) run waited = th_spawn_wait(&waiter);
        if (waited.status != 0)
                fail_msg("apply --wait-lock exited %d:\n%s\n%s", waited.status, waited.out, waited.err);
        assert_non_null(strstr(waited.out, "network/lan"));
}

/* ---- status ---------------------------------------------------------------------------- */

/* $VIRTFORM status --state STATE [ARG] with $COLUMNS set to columns (NULL: unset). */
static run status_with_columns(const char *state_path, const char *columns, const char *arg) {
        _cleanup_free_ char *env = columns ? vf_printf("COLUMNS=%s", columns) : NULL;
        const char *argv[] = { getenv("VIRTFORM"), "status", "--state", state_path, arg, NULL };
        const char *extra_env[] = { env, NULL };

        return th_spawn(argv, extra_env);
}

static size_t longest_line(const char *text) {
        size_t longest = 0;

        for (const char *line = text; *line;) {
                size_t len = strcspn(line, "\n");
                longest = len > longest ? len : longest;
                line += len + (line[len] ? 1 : 0);
        }
        return longest;
}

/* The examples and a conflicting domain, whose message is long, retried in ten minutes. */
static void apply_with_a_long_message(const fixture *f) {
        th_write(f->examples, "90-test.yaml", CONFLICTING_DOMAIN);
        _cleanup_(run_done) run r = virtform("apply", "-c", "test:///default", "--state", f->state, "--wait",
                                             "--timeout", "1", "--retry-base", "600", "--retry-max", "600", f->examples, NULL);
        assert_int_equal(r.status, 2);
}

/* The default table fits the width it is given, or 100 columns; -o wide and -o yaml keep the whole message. */
static void test_status_fits(void **state) {
        fixture *f = *state;
        const char *whole = "rename the resource, remove the existing object, or set metadata.adopt: true";
        static const struct {
                const char *columns;
                size_t width;
        } widths[] = { { NULL, 100 }, { "80", 80 }, { "100", 100 }, { "200", 200 } };

        apply_with_a_long_message(f);
        for (size_t i = 0; i < ELEMENTSOF(widths); i++) {
                _cleanup_(run_done) run r = status_with_columns(f->state, widths[i].columns, NULL);
                assert_int_equal(r.status, 0);
                if (longest_line(r.out) > widths[i].width)
                        fail_msg("wider than %zu columns:\n%s", widths[i].width, r.out);
                assert_true(strncmp(r.out, "KIND/NAME", 9) == 0);
                assert_non_null(strstr(r.out, "\nnetwork/lan "));
                /* Cut on a narrow terminal, whole on a wide one. */
                assert_true((strstr(r.out, whole) != NULL) == (widths[i].width == 200));
        }

        _cleanup_(run_done) run wide = status_with_columns(f->state, "80", "-owide");
        assert_int_equal(wide.status, 0);
        assert_non_null(strstr(wide.out, whole));
        assert_non_null(strstr(wide.out, "GEN/OBS"));
        _cleanup_(run_done) run yaml = status_with_columns(f->state, "80", "-oyaml");
        assert_int_equal(yaml.status, 0);
        assert_non_null(strstr(yaml.out, "- kind: domain\n  name: test\n"));
        assert_non_null(strstr(yaml.out, whole));
        assert_non_null(strstr(yaml.out, "    status: 'True'\n"));
}

/* Relative times: the age of Ready's last change, and when the failed resource is retried. */
static void test_status_relative_times(void **state) {
        fixture *f = *state;

        apply_with_a_long_message(f);
        _cleanup_(run_done) run r = status_with_columns(f->state, "200", NULL);
        assert_int_equal(r.status, 0);
        const char *row = strstr(r.out, "\ndomain/test ");
        assert_non_null(row);
        int age = -1, retry = -1;
        char unit = 0;
        if (sscanf(row, " domain/test False Conflict %ds retry in %d%c: ", &age, &retry, &unit) != 3)
                fail_msg("no relative age and retry in:\n%s", row);
        assert_true(age >= 0 && age < 600);
        /* 300 to 600 s of backoff (its jitter), less what passed since: minutes, not a timestamp. */
        if (unit != 'm' || retry < 4 || retry > 10)
                fail_msg("retry in %d%c, not in 4 to 10 minutes:\n%s", retry, unit, row);
}

/* status KIND/NAME: its conditions and its recent writes; an unknown one or a bad name is an error. */
static void test_status_of_one_resource(void **state) {
        fixture *f = *state;

        apply_with_a_long_message(f);
        _cleanup_(run_done) run one = status_with_columns(f->state, NULL, "domain/web1");
        assert_int_equal(one.status, 0);
        assert_true(strncmp(one.out, "domain/web1\n", 12) == 0);
        assert_non_null(strstr(one.out, "\nReady            True   Applied "));
        assert_non_null(strstr(one.out, " domain/web1                      1     define "));
        assert_null(strstr(one.out, "network/lan"));

        _cleanup_(run_done) run json = virtform("status", "--state", f->state, "-o", "json", "domain/web1", NULL);
        assert_int_equal(json.status, 0);
        assert_non_null(strstr(json.out, "\"name\":\"web1\""));
        assert_null(strstr(json.out, "\"name\":\"lan\""));

        _cleanup_(run_done) run missing = status_with_columns(f->state, NULL, "domain/nowhere");
        assert_int_equal(missing.status, 1);
        assert_non_null(strstr(missing.err, "domain/nowhere is not recorded"));
        _cleanup_(run_done) run bad = status_with_columns(f->state, NULL, "web1");
        assert_int_equal(bad.status, 1);
        assert_non_null(strstr(bad.err, "give KIND/NAME"));
}

/* A file the pass could not use is a row with its first error where it is, until the file is fixed. */
static void test_status_shows_file_errors(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *bad = vf_printf("%s/50-bad.yaml", f->examples);
        _cleanup_free_ char *where = vf_printf("%s:6:12: \"forward\" must be one of", bad);

        th_write(f->examples, "50-bad.yaml",
                 "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: bad}\nspec:\n  bridge: {name: x}\n"
                 "  forward: nowhere\n");
        _cleanup_(run_done) run applied = virtform("apply", "-c", "test:///default", "--state", f->state,
                                                   f->examples, NULL);
        assert_int_equal(applied.status, 2);
        _cleanup_(run_done) run r = status_with_columns(f->state, "300", NULL);
        assert_int_equal(r.status, 0);
        const char *row = strstr(r.out, "\nfile/50-bad.yaml ");
        if (!row || !strstr(row, " False InvalidFile ") || !strstr(row, where) || !strstr(row, "(and 1 more)"))
                fail_msg("no row for the file's first error at %s:\n%s", where, r.out);
        _cleanup_(run_done) run json = status_with_columns(f->state, NULL, "-ojson");
        assert_non_null(strstr(json.out, "{\"kind\":\"file\",\"name\":"));

        th_remove(f->examples, "50-bad.yaml");
        _cleanup_(run_done) run fixed = virtform("apply", "-c", "test:///default", "--state", f->state,
                                                 f->examples, NULL);
        assert_int_equal(fixed.status, 0);
        _cleanup_(run_done) run after = status_with_columns(f->state, NULL, NULL);
        assert_null(strstr(after.out, "file/"));
}

/* While a daemon runs, status says it is connected; once it stopped, nothing. */
static void test_status_shows_the_daemon(void **state) {
        fixture *f = *state;
        th_child daemon = virtform_start("run", "-c", "test:///default", "--state", f->state, f->examples, NULL);
        _cleanup_free_ char *connected = vf_printf("\ndaemon: PID %d, connected\n", (int) daemon.pid);
        bool seen = false;

        for (int64_t deadline = vf_now_monotonic_usec() + DEADLINE_USEC; !seen && vf_now_monotonic_usec() < deadline;
             usleep(POLL_USEC)) {
                run r = status_with_columns(f->state, NULL, NULL);
                seen = r.status == 0 && strstr(r.out, connected);
                run_done(&r);
        }
        assert_int_equal(kill(daemon.pid, SIGTERM), 0);
        _cleanup_(run_done) run stopped = th_spawn_wait(&daemon);
        assert_true(seen);
        assert_int_equal(stopped.status, 0);
        _cleanup_(run_done) run after = status_with_columns(f->state, NULL, NULL);
        assert_int_equal(after.status, 0);
        assert_null(strstr(after.out, "daemon:"));
}

static void test_status_missing_state_exits_1(void **state) {
        fixture *f = *state;
        _cleanup_(run_done) run r = virtform("status", "--state", f->state, NULL);

        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "does not exist"));
        assert_string_equal(r.out, "");
}

/* What --state names must be the state file itself: not a directory, a device or a symlink. */
static void test_state_not_a_file_exits_1(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *link = vf_printf("%s/link.db", f->dir);
        _cleanup_free_ char *dir_msg = vf_printf("%s is a directory", f->dir);
        bool had_journal = access("/dev/null-journal", F_OK) == 0, had_wal = access("/dev/null-wal", F_OK) == 0;

        _cleanup_(run_done) run dir = virtform("apply", "-c", "test:///default", "--state", f->dir, f->dir, NULL);
        assert_int_equal(dir.status, 1);
        assert_non_null(strstr(dir.err, dir_msg));

        _cleanup_(run_done) run null = virtform("apply", "-c", "test:///default", "--state", "/dev/null", f->dir, NULL);
        assert_int_equal(null.status, 1);
        assert_non_null(strstr(null.err, "/dev/null is not a regular file"));
        _cleanup_(run_done) run null_status = virtform("status", "--state", "/dev/null", NULL);
        assert_int_equal(null_status.status, 1);
        assert_true(had_journal || access("/dev/null-journal", F_OK) < 0);
        assert_true(had_wal || access("/dev/null-wal", F_OK) < 0);

        _cleanup_(run_done) run made = virtform("apply", "-c", "test:///default", "--state", f->state, f->dir, NULL);
        assert_int_equal(made.status, 0);
        assert_int_equal(symlink(f->state, link), 0);
        _cleanup_(run_done) run linked = virtform("apply", "-c", "test:///default", "--state", link, f->dir, NULL);
        assert_int_equal(linked.status, 1);
        assert_non_null(strstr(linked.err, "is a symlink: point --state at the real file"));
}

/* A crash whose -wal is then lost is refused, until a check on demand accepts what is left. */
static void test_lost_wal_needs_state_check(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *conf = vf_printf("%s/conf", f->dir), *wal = vf_printf("%s-wal", f->state);
        const char *argv[] = { getenv("VIRTFORM"), "apply", "-c", "test:///default", "--state", f->state, conf, NULL };
        const char *kill_at_first_write[] = { "VIRTFORM_FAULT_POINT=state-write:1", NULL };

        assert_int_equal(mkdir(conf, 0700), 0);
        th_write(conf, "lan.yaml", "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec: {}\n");
        _cleanup_(run_done) run missing = virtform("state", "check", "--state", f->state, NULL);
        assert_int_equal(missing.status, 1);
        assert_non_null(strstr(missing.err, "does not exist"));

        _cleanup_(run_done) run killed = th_spawn(argv, kill_at_first_write);
        assert_true(killed.killed);
        assert_int_equal(unlink(wal), 0);
        _cleanup_(run_done) run refused = virtform("apply", "-c", "test:///default", "--state", f->state, conf, NULL);
        assert_int_equal(refused.status, 1);
        assert_non_null(strstr(refused.err, "was not closed cleanly and its write-ahead log"));
        _cleanup_free_ char *hint = vf_printf("run 'virtform state check --state %s'", f->state);
        assert_non_null(strstr(refused.err, hint));

        _cleanup_(run_done) run checked = virtform("state", "check", "--state", f->state, NULL);
        assert_int_equal(checked.status, 0);
        _cleanup_free_ char *ok = vf_printf("%s: ok\n", f->state);
        assert_string_equal(checked.out, ok);
        _cleanup_(run_done) run applied = virtform("apply", "-c", "test:///default", "--state", f->state, conf, NULL);
        if (applied.status != 0)
                fail_msg("apply after the check exited %d:\n%s\n%s", applied.status, applied.out, applied.err);
}

/*
 * state recover as the operator runs it: on a hypervisor with no virtform
 * marker (a new process's test:///default) it exits 1 saying so, and the
 * emptied state file is still refused by apply, naming recover.
 */
static void test_state_recover_finds_nothing(void **state) {
        fixture *f = *state;

        th_write(f->dir, "state.db", "%s", "");
        assert_int_equal(chmod(f->state, 0600), 0);
        _cleanup_(run_done) run refused = virtform("apply", "-c", "test:///default", "--state", f->state, f->dir, NULL);
        assert_int_equal(refused.status, 1);
        _cleanup_free_ char *hint = vf_printf("virtform state recover --state %s", f->state);
        assert_non_null(strstr(refused.err, hint));
        _cleanup_(run_done) run nothing = virtform("state", "recover", "-c", "test:///default", "--state", f->state,
                                                  NULL);
        assert_int_equal(nothing.status, 1);
        assert_non_null(strstr(nothing.err, "nothing to recover"));
        _cleanup_(run_done) run still = virtform("apply", "-c", "test:///default", "--state", f->state, f->dir, NULL);
        assert_int_equal(still.status, 1);
        _cleanup_(run_done) run bad = virtform("state", "recover", "extra", NULL);
        assert_int_equal(bad.status, 1);
}

/* Two writers making a new store at once: one makes it whole, the other uses it or refuses; no half-made file. */
static void test_two_writers_create_one_store(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *conf = vf_printf("%s/conf", f->dir);

        assert_int_equal(mkdir(conf, 0700), 0);
        th_write(conf, "lan.yaml", "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec: {}\n");
        for (int round = 0; round < 5; round++) {
                _cleanup_free_ char *path = vf_printf("%s/new-%d/state.db", f->dir, round);
                th_child a = virtform_start("apply", "-c", "test:///default", "--state", path, conf, NULL);
                th_child b = virtform_start("apply", "-c", "test:///default", "--state", path, conf, NULL);
                run runs[2] = { th_spawn_wait(&a), th_spawn_wait(&b) };
                int ok = 0;
                for (size_t i = 0; i < ELEMENTSOF(runs); i++) {
                        if (runs[i].status == 0)
                                ok++;
                        else if (runs[i].status != 1 || !strstr(runs[i].err, "is in use by"))
                                fail_msg("round %d: apply exited %d:\n%s", round, runs[i].status, runs[i].err);
                        run_done(&runs[i]);
                }
                assert_true(ok >= 1);
                _cleanup_(run_done) run status = virtform("status", "--state", path, NULL);
                assert_int_equal(status.status, 0);
                assert_non_null(strstr(status.out, "lan"));
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_help_and_version),
                cmocka_unit_test(test_bad_usage_exits_1),
                cmocka_unit_test(test_option_of_another_command_exits_1),
                cmocka_unit_test(test_completion_offers_the_help_options),
                cmocka_unit_test(test_man_synopsis_lists_the_help_options),
                cmocka_unit_test_setup_teardown(test_cloudinit_render, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloudinit_render_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_option_without_the_one_it_needs_exits_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_examples_apply_ready, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_shows_the_writes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_waiting_exits_2, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_wait_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_streams_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_sigterm_stops_with_a_summary, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_failure_said_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_progress_on_a_terminal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_json_logs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_text_logs_carry_time, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unreachable_hypervisor_exits_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unusable_state_exits_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_path_exits_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_validate_unknown_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_validate_libvirt_schemas, setup, teardown),
                cmocka_unit_test_setup_teardown(test_validate_undeclared_reference, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_exit_and_no_state_written, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_shows_override, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_detailed_exitcode, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_untrusted_file_as_root, setup, teardown),
                cmocka_unit_test_setup_teardown(test_second_writer_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status_fits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status_relative_times, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status_of_one_resource, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status_shows_file_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status_shows_the_daemon, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status_missing_state_exits_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_not_a_file_exits_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lost_wal_needs_state_check, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_writers_create_one_store, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_recover_finds_nothing, setup, teardown),
        };
        /* What the tests write is theirs to trust, whatever umask the caller has. */
        umask(022);
        return th_run_group(tests, NULL, NULL, NULL);
}
