/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The command line: parses options, runs one subcommand, maps the outcome to
 * an exit status. Exit statuses: 0 converged (or valid), 1 an error stopped
 * the run, 2 the run completed but something is waiting or failed.
 */
#include <getopt.h>
#include <stdarg.h>
#include <time.h>

#include "config.h"
#include "controller/controller.h"
#include "controller/output.h"

enum {
        EXIT_CONVERGED = 0,
        EXIT_ERROR = 1,
        EXIT_NOT_CONVERGED = 2,
};

enum {
        OPT_STATE = 0x100,
        OPT_NO_PRUNE,
        OPT_SHUTDOWN_TIMEOUT,
        OPT_LOG_LEVEL,
        OPT_SYSFS_ROOT,
        OPT_WAIT,
        OPT_TIMEOUT,
        OPT_DEBOUNCE,
        OPT_RETRY_BASE,
        OPT_RETRY_MAX,
        OPT_LOG_FORMAT,
        OPT_INSECURE_PERMISSIONS,
        OPT_WAIT_LOCK,
        OPT_SINCE,
        OPT_LOG_RETENTION_DAYS,
        OPT_LOG_RETENTION_ROWS,
        OPT_INSTANCE,
};

typedef struct command {
        const char *name;
        const char *usage;
        const char *help;
        bool takes_converge_options;
        int (*run)(vf_options *opts, int argc, char **argv);
} command;

static const struct option converge_options[] = {
        { "connect", required_argument, NULL, 'c' },
        { "state", required_argument, NULL, OPT_STATE },
        { "no-prune", no_argument, NULL, OPT_NO_PRUNE },
        { "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
        { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
        { "sysfs-root", required_argument, NULL, OPT_SYSFS_ROOT },
        { "wait", no_argument, NULL, OPT_WAIT },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "debounce", required_argument, NULL, OPT_DEBOUNCE },
        { "retry-base", required_argument, NULL, OPT_RETRY_BASE },
        { "retry-max", required_argument, NULL, OPT_RETRY_MAX },
        { "log-format", required_argument, NULL, OPT_LOG_FORMAT },
        { "insecure-permissions", no_argument, NULL, OPT_INSECURE_PERMISSIONS },
        { "wait-lock", required_argument, NULL, OPT_WAIT_LOCK },
        { "log-retention-days", required_argument, NULL, OPT_LOG_RETENTION_DAYS },
        { "log-retention-rows", required_argument, NULL, OPT_LOG_RETENTION_ROWS },
        { "instance", required_argument, NULL, OPT_INSTANCE },
        { "output", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        {},
};

static const command *find_command(const char *name);

static int usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);

static int usage_error(const char *cmd, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "virtform%s%s: ", cmd ? " " : "", cmd ? cmd : "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'virtform %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
        return EXIT_ERROR;
}

static int parse_uint_max(const char *s, unsigned long max, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v > max || *s == '-')
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int parse_uint(const char *s, unsigned *ret) {
        return parse_uint_max(s, 86400, ret);
}

static int parse_log_level(const char *s, vf_log_level *ret) {
        static const char *const names[] = { "error", "warning", "notice", "info", "debug" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcmp(s, names[i]) == 0) {
                        *ret = (vf_log_level) i;
                        return 0;
                }
        return -EINVAL;
}

static const char converge_help[];

static void print_command_help(const command *cmd) {
        printf("Usage: virtform %s %s\n\n%s%s", cmd->name, cmd->usage, cmd->help,
               cmd->takes_converge_options ? converge_help : "");
}

/* Parses the options every subcommand shares; leaves positional arguments at argv[optind...]. */
static int parse_options(const command *cmd, vf_options *opts, const char **output, int argc, char **argv,
                         bool *help) {
        int c;

        optind = 1;
        *help = false;
        while ((c = getopt_long(argc, argv, "+c:o:h", converge_options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        opts->uri = optarg;
                        break;
                case OPT_STATE:
                        opts->state_path = optarg;
                        break;
                case OPT_NO_PRUNE:
                        opts->prune = false;
                        break;
                case OPT_SHUTDOWN_TIMEOUT:
                        if (parse_uint(optarg, &opts->shutdown_timeout_sec) < 0)
                                return usage_error(cmd->name, "invalid --shutdown-timeout '%s': give seconds, 0..86400", optarg);
                        break;
                case OPT_LOG_LEVEL:
                        if (parse_log_level(optarg, &opts->log_level) < 0)
                                return usage_error(cmd->name, "invalid --log-level '%s': use error, warning, notice, info or debug", optarg);
                        break;
                case OPT_SYSFS_ROOT:
                        opts->sysfs_root = optarg;
                        break;
                case OPT_WAIT:
                        opts->wait = true;
                        break;
                case OPT_TIMEOUT:
                        if (parse_uint(optarg, &opts->wait_timeout_sec) < 0)
                                return usage_error(cmd->name, "invalid --timeout '%s': give seconds, 0..86400", optarg);
                        break;
                case OPT_DEBOUNCE:
                        if (parse_uint(optarg, &opts->debounce_msec) < 0)
                                return usage_error(cmd->name, "invalid --debounce '%s': give milliseconds", optarg);
                        break;
                case OPT_RETRY_BASE:
                        if (parse_uint(optarg, &opts->retry_base_sec) < 0 || opts->retry_base_sec == 0)
                                return usage_error(cmd->name, "invalid --retry-base '%s': give seconds, 1..86400", optarg);
                        break;
                case OPT_RETRY_MAX:
                        if (parse_uint(optarg, &opts->retry_max_sec) < 0 || opts->retry_max_sec == 0)
                                return usage_error(cmd->name, "invalid --retry-max '%s': give seconds, 1..86400", optarg);
                        break;
                case OPT_LOG_FORMAT:
                        if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0)
                                return usage_error(cmd->name, "invalid --log-format '%s': use text or json", optarg);
                        opts->log_json = strcmp(optarg, "json") == 0;
                        break;
                case OPT_INSECURE_PERMISSIONS:
                        opts->insecure_permissions = true;
                        break;
                case OPT_WAIT_LOCK:
                        if (parse_uint(optarg, &opts->wait_lock_sec) < 0)
                                return usage_error(cmd->name, "invalid --wait-lock '%s': give seconds, 0..86400", optarg);
                        break;
                case OPT_LOG_RETENTION_DAYS:
                        if (parse_uint(optarg, &opts->log_retention_days) < 0 || opts->log_retention_days == 0)
                                return usage_error(cmd->name, "invalid --log-retention-days '%s': give days, 1..86400", optarg);
                        break;
                case OPT_LOG_RETENTION_ROWS:
                        if (parse_uint_max(optarg, 1000000000, &opts->log_retention_rows) < 0 ||
                            opts->log_retention_rows == 0)
                                return usage_error(cmd->name, "invalid --log-retention-rows '%s': give a count, 1..1000000000", optarg);
                        break;
                case OPT_INSTANCE:
                        opts->instance = optarg;
                        break;
                case 'o':
                        if (!output || (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0))
                                return usage_error(cmd->name, "invalid --output '%s'", optarg);
                        *output = optarg;
                        break;
                case 'h':
                        *help = true;
                        return 0;
                default:
                        return usage_error(cmd->name, "%s", "invalid option");
                }
        }
        return 0;
}

/*
 * Parses a command's options and handles --help. Returns true when the
 * command goes on; false when it is done, with *status its exit status.
 */
static bool parse_command_line(const command *cmd, vf_options *opts, const char **output, int argc, char **argv,
                               int *status) {
        bool help;

        *status = parse_options(cmd, opts, output, argc, argv, &help);
        if (help)
                print_command_help(cmd);
        return *status == 0 && !help;
}

/* parse_command_line() for commands that take DIR... (by default the drop-in directories). */
static bool parse_command_line_with_paths(const command *cmd, vf_options *opts, int argc, char **argv, int *status) {
        /* apply and plan print every resource on stdout: stderr gets what went wrong, unless asked for more. */
        opts->log_level = strcmp(cmd->name, "run") == 0 ? VF_LOG_NOTICE : VF_LOG_WARNING;
        if (!parse_command_line(cmd, opts, NULL, argc, argv, status))
                return false;
        opts->default_paths = optind >= argc;
        opts->paths = opts->default_paths ? (char **) schema_default_dirs : argv + optind;
        return true;
}

static int fail_run(const char *errmsg, int r) {
        fprintf(stderr, "virtform: error: %s\n", errmsg ? errmsg : strerror(-r));
        return EXIT_ERROR;
}

/* plan: one pass with writes suppressed; there is nothing in flight to follow. */
static int plan_pass(vf_controller *c, vf_report *report, char **errmsg) {
        return vf_controller_pass(c, report, errmsg);
}

static int run_pass(vf_options *opts, void (*print)(FILE *, const vf_report *)) {
        _cleanup_free_ char *errmsg = NULL;
        vf_controller c = {};
        vf_report report = {};
        int r, status = EXIT_ERROR;

        r = vf_controller_open(&c, opts, &errmsg);
        if (r >= 0)
                r = (opts->dry_run ? plan_pass : vf_daemon_apply)(&c, &report, &errmsg);
        if (r < 0)
                status = fail_run(errmsg, r);
        else {
                print(stdout, &report);
                status = vf_report_converged(&report) ? EXIT_CONVERGED : EXIT_NOT_CONVERGED;
        }
        vf_report_done(&report);
        vf_controller_close(&c);
        return status;
}

static int cmd_run(vf_options *opts, int argc, char **argv) {
        const command *cmd = find_command("run");
        _cleanup_free_ char *errmsg = NULL;
        _cleanup_(vf_daemon_freep) vf_daemon *d = NULL;
        vf_daemon_options dopts = {};
        vf_controller c = {};
        bool converged;
        int r;

        if (!parse_command_line_with_paths(cmd, opts, argc, argv, &r))
                return r;
        opts->daemon = true;
        r = vf_daemon_new(&dopts, &d);
        if (r >= 0)
                r = vf_controller_open(&c, opts, &errmsg);
        if (r >= 0)
                r = vf_daemon_run(d, &c, &converged, &errmsg);
        vf_daemon_free(TAKE_PTR(d));
        vf_controller_close(&c);
        return r < 0 ? fail_run(errmsg, r) : EXIT_CONVERGED;
}

static int cmd_converge(const command *cmd, vf_options *opts, int argc, char **argv,
                        void (*print)(FILE *, const vf_report *)) {
        int r;

        if (!parse_command_line_with_paths(cmd, opts, argc, argv, &r))
                return r;
        return run_pass(opts, print);
}

static int cmd_apply(vf_options *opts, int argc, char **argv) {
        return cmd_converge(find_command("apply"), opts, argc, argv, output_apply);
}

static int cmd_plan(vf_options *opts, int argc, char **argv) {
        opts->dry_run = true;
        return cmd_converge(find_command("plan"), opts, argc, argv, output_plan);
}

static int cmd_validate(vf_options *opts, int argc, char **argv) {
        const command *cmd = find_command("validate");
        _cleanup_(schema_set_freep) schema_set *set = NULL;
        int r;

        if (!parse_command_line_with_paths(cmd, opts, argc, argv, &r))
                return r;
        schema_load_options options = vf_options_schema(opts);
        r = schema_load_with_options(opts->paths, vf_strv_length(opts->paths), &options, &set);
        if (r < 0) {
                fprintf(stderr, "virtform: error: %s\n", strerror(-r));
                return EXIT_ERROR;
        }
        output_diags(stderr, set);
        if (schema_set_n_errors(set) > 0)
                return EXIT_ERROR;
        printf("%zu resources in %zu files are valid\n", set->n_resources, vf_strv_length(set->files_ok));
        return EXIT_CONVERGED;
}

static int cmd_status(vf_options *opts, int argc, char **argv) {
        const command *cmd = find_command("status");
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL, *fallback = NULL;
        const char *output = "table", *path;
        state_record **recs = NULL;
        size_t n = 0;
        int r;

        if (!parse_command_line(cmd, opts, &output, argc, argv, &r))
                return r;
        if (optind < argc)
                return usage_error(cmd->name, "unexpected argument '%s'", argv[optind]);
        path = opts->state_path ? opts->state_path : (fallback = state_default_path());
        r = path ? state_open(path, STATE_OPEN_READONLY | STATE_OPEN_EXISTING, &store, &errmsg) : -ENOMEM;
        if (r >= 0)
                r = state_list(store, &recs, &n);
        if (r < 0) {
                fprintf(stderr, "virtform: error: %s\n", errmsg ? errmsg : strerror(-r));
                return EXIT_ERROR;
        }
        if (strcmp(output, "json") == 0)
                r = output_status_json(stdout, recs, n);
        else
                output_status_table(stdout, recs, n);
        state_record_list_free(recs, n);
        return r < 0 ? EXIT_ERROR : EXIT_CONVERGED;
}

static void print_explanation_table(const rc_hostdev_explanation *e) {
        static const char *const tristate[] = { "unknown (no such link)", "down", "up" };

        printf("device     %s\n", e->device);
        if (e->driver)
                printf("driver     %s\n", e->driver);
        if (e->error) {
                printf("error      %s\n", e->error);
                return;
        }
        printf("PF         %s\nPF netdev  %s\nVF index   %d\nmethod     %s\n", e->pf, e->pf_netdev, e->vf_index,
               e->method);
        printf("PF admin   %s\ncarrier    %s\n", tristate[e->pf_admin_up + 1],
               e->carrier < 0 ? "unknown" : e->carrier ? "yes" : "no");
}

static void json_tristate(vf_buf *b, const char *key, int value) {
        vf_buf_printf(b, ",\"%s\":%s", key, value < 0 ? "null" : value ? "true" : "false");
}

static int print_explanation_json(const rc_hostdev_explanation *e) {
        vf_buf b = {};

        vf_buf_puts(&b, "{\"vf\":");
        vf_buf_put_json_string(&b, e->device);
        vf_buf_puts(&b, ",\"pf\":");
        vf_buf_put_json_string(&b, e->pf);
        vf_buf_puts(&b, ",\"pf_netdev\":");
        vf_buf_put_json_string(&b, e->pf_netdev);
        if (e->is_vf)
                vf_buf_printf(&b, ",\"vf_index\":%d", e->vf_index);
        else
                vf_buf_puts(&b, ",\"vf_index\":null");
        vf_buf_puts(&b, ",\"method\":");
        vf_buf_put_json_string(&b, e->error ? NULL : e->method);
        json_tristate(&b, "pf_admin_up", e->pf_admin_up);
        json_tristate(&b, "carrier", e->carrier);
        vf_buf_puts(&b, ",\"error\":");
        vf_buf_put_json_string(&b, e->error);
        vf_buf_puts(&b, "}\n");
        _cleanup_free_ char *text = vf_buf_steal(&b);
        if (!text)
                return -ENOMEM;
        fputs(text, stdout);
        return 0;
}

/*
 * parse_command_line() for COMMAND SUBCOMMAND [OPTIONS] and n_args
 * arguments, where cmd->usage says what is expected. Returns true when the
 * command goes on, with its arguments at (*argv)[optind...].
 */
static bool parse_subcommand(const command *cmd, const char *sub, vf_options *opts, const char **output, int argc,
                             char ***argv, int n_args, int *status) {
        if (argc > 1 && (strcmp((*argv)[1], "--help") == 0 || strcmp((*argv)[1], "-h") == 0)) {
                print_command_help(cmd);
                *status = EXIT_CONVERGED;
                return false;
        }
        if (argc < 2 || strcmp((*argv)[1], sub) != 0) {
                *status = usage_error(cmd->name, "expected: %s", cmd->usage);
                return false;
        }
        if (!parse_command_line(cmd, opts, output, argc - 1, *argv + 1, status))
                return false;
        (*argv)++;
        if (argc - 1 - optind != n_args) {
                *status = usage_error(cmd->name, "expected: %s", cmd->usage);
                return false;
        }
        return true;
}

static int cmd_hostdev(vf_options *opts, int argc, char **argv) {
        const command *cmd = find_command("hostdev");
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL, *fallback = NULL;
        rc_hostdev_explanation e = {};
        const char *output = "table", *path;
        int r;

        if (!parse_subcommand(cmd, "resolve", opts, &output, argc, &argv, 1, &r))
                return r;
        /* The store only helps (a recorded resolution): without one, resolve from sysfs alone. */
        path = opts->state_path ? opts->state_path : (fallback = state_default_path());
        if (path && state_open(path, STATE_OPEN_READONLY, &store, &errmsg) < 0)
                fprintf(stderr, "virtform: warning: %s; resolving without recorded resolutions\n", errmsg);
        r = rc_hostdev_explain(opts->sysfs_root, store, argv[optind], &e);
        if (r < 0) {
                fprintf(stderr, "virtform: error: %s\n", strerror(-r));
                return EXIT_ERROR;
        }
        if (strcmp(output, "json") == 0)
                r = print_explanation_json(&e);
        else
                print_explanation_table(&e);
        int status = e.error || r < 0 ? EXIT_ERROR : EXIT_CONVERGED;
        rc_hostdev_explanation_done(&e);
        return status;
}

/* The check a writer makes after a crash, on demand: it also accepts what is left after a lost -wal. */
static int state_check(const command *cmd, vf_options *opts, int argc, char **argv) {
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL, *fallback = NULL;
        const char *path;
        int r;

        if (!parse_subcommand(cmd, "check", opts, NULL, argc, &argv, 0, &r))
                return r;
        path = opts->state_path ? opts->state_path : (fallback = state_default_path());
        r = path ? state_open(path, STATE_OPEN_CHECK, &store, &errmsg) : -ENOMEM;
        if (r < 0)
                return fail_run(errmsg, r);
        printf("%s: ok\n", path);
        return EXIT_CONVERGED;
}

/* --since: a duration back from now (90s, 30m, 12h, 7d) or a UTC time (2026-12-03, 2026-12-03T10:00:00Z). */
static int parse_since(const char *s, int64_t now_usec, int64_t *ret) {
        static const char *const formats[] = { "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                                               "%Y-%m-%d %H:%M", "%Y-%m-%d" };
        static const struct {
                char unit;
                int64_t usec;
        } units[] = { { 's', 1000000 }, { 'm', 60 * 1000000LL }, { 'h', 3600 * 1000000LL }, { 'd', 86400 * 1000000LL } };
        char *end;

        errno = 0;
        long long n = strtoll(s, &end, 10);
        for (size_t i = 0; errno == 0 && end != s && n >= 0 && n < 100000 && i < ELEMENTSOF(units); i++)
                if (end[0] == units[i].unit && end[1] == 0) {
                        *ret = now_usec - n * units[i].usec;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                struct tm tm = {};
                end = strptime(s, formats[i], &tm);
                if (end && *end == 0) {
                        *ret = (int64_t) timegm(&tm) * 1000000;
                        return 0;
                }
        }
        return -EINVAL;
}

static int print_log(state_store *store, const char *resource, int64_t since_usec, bool json) {
        _cleanup_free_ char *kind = resource ? strndup(resource, strcspn(resource, "/")) : NULL;
        const char *slash = resource ? strchr(resource, '/') : NULL;
        state_event *events = NULL;
        size_t n = 0;

        if (resource && !kind)
                return -ENOMEM;
        int r = state_event_list(store, kind, slash ? slash + 1 : NULL, since_usec, &events, &n);
        if (r < 0)
                return r;
        if (json)
                r = output_log_json(stdout, events, n);
        else
                output_log_table(stdout, events, n);
        state_event_list_free(events, n);
        return r;
}

static int cmd_log(vf_options *opts, int argc, char **argv) {
        static const struct option options[] = {
                { "state", required_argument, NULL, OPT_STATE },
                { "since", required_argument, NULL, OPT_SINCE },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const command *cmd = find_command("log");
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL, *fallback = NULL;
        const char *output = "table", *path;
        int64_t since = 0;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "o:h", options, NULL)) >= 0)
                switch (c) {
                case OPT_STATE:
                        opts->state_path = optarg;
                        break;
                case OPT_SINCE:
                        if (parse_since(optarg, vf_now_realtime_usec(), &since) < 0)
                                return usage_error(cmd->name,
                                                   "invalid --since '%s': give a duration (30m, 12h, 7d) or a UTC "
                                                   "time (2026-12-03T10:00:00Z)",
                                                   optarg);
                        break;
                case 'o':
                        if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0)
                                return usage_error(cmd->name, "invalid --output '%s'", optarg);
                        output = optarg;
                        break;
                case 'h':
                        print_command_help(cmd);
                        return EXIT_CONVERGED;
                default:
                        return usage_error(cmd->name, "%s", "invalid option");
                }
        if (argc - optind > 1)
                return usage_error(cmd->name, "unexpected argument '%s'", argv[optind + 1]);
        /* A reader: never locks, never writes, and works on a read-only file. */
        path = opts->state_path ? opts->state_path : (fallback = state_default_path());
        r = path ? state_open(path, STATE_OPEN_READONLY | STATE_OPEN_EXISTING, &store, &errmsg) : -ENOMEM;
        if (r >= 0)
                r = print_log(store, optind < argc ? argv[optind] : NULL, since, strcmp(output, "json") == 0);
        if (r < 0) {
                fprintf(stderr, "virtform: error: %s\n", errmsg ? errmsg : strerror(-r));
                return EXIT_ERROR;
        }
        return EXIT_CONVERGED;
}

static int state_recover(const command *cmd, vf_options *opts, int argc, char **argv) {
        _cleanup_free_ char *errmsg = NULL;
        vf_controller c = {};
        int r;

        if (!parse_subcommand(cmd, "recover", opts, NULL, argc, &argv, 0, &r))
                return r;
        opts->recover = true;
        r = vf_controller_open(&c, opts, &errmsg);
        if (r >= 0)
                r = vf_controller_recover(&c, opts->instance, stdout, &errmsg);
        vf_controller_close(&c);
        return r < 0 ? fail_run(errmsg, r) : EXIT_CONVERGED;
}

static int cmd_state(vf_options *opts, int argc, char **argv) {
        const command *cmd = find_command("state");

        if (argc > 1 && strcmp(argv[1], "recover") == 0)
                return state_recover(cmd, opts, argc, argv);
        return state_check(cmd, opts, argc, argv);
}

static const char converge_help[] =
        "Options:\n"
        "  -c, --connect URI          libvirt URI (default: $LIBVIRT_DEFAULT_URI, else libvirt's default)\n"
        "      --state PATH           state file (default: /var/lib/virtform/state.db as root,\n"
        "                             $XDG_STATE_HOME/virtform/state.db otherwise)\n"
        "      --no-prune             keep owned objects whose declaration is gone\n"
        "      --shutdown-timeout SEC graceful shutdown before destroy (default 60)\n"
        "      --log-level LEVEL      error, warning, notice (default), info, debug\n"
        "      --sysfs-root DIR       read sysfs under DIR instead of /sys\n"
        "      --wait                 apply: follow events until every resource is Ready\n"
        "      --timeout SEC          with --wait: give up after SEC seconds, exit 2 (default 600; 0: never)\n"
        "      --log-format FORMAT    text (default) or json\n"
        "      --insecure-permissions as root, read files anyone but root could change (with a warning)\n"
        "      --wait-lock SEC        apply, run: wait up to SEC seconds for another virtform using the\n"
        "                             state file to finish, instead of refusing at once\n"
        "      --log-retention-days N keep N days of the event log (default 90)\n"
        "      --log-retention-rows N and at most N events (default 100000)\n"
        "  -h, --help                 show this help\n";

static const command commands[] = {
        { "apply", "[-c URI] [--state PATH] [--wait-lock SEC] [--no-prune] [--wait [--timeout SEC]] [DIR...]",
          "Converge libvirt once to the resources declared in DIR (YAML and XML files) and print one line per\n"
          "resource: created, updated, unchanged, deleted, kept, waiting or failed.\n"
          "Exit status: 0 every resource Ready, 2 something waiting or failed, 1 an error stopped the run.\n\n",
          true, cmd_apply },
        { "plan", "[-c URI] [--state PATH] [--no-prune] [DIR...]",
          "Print what apply would do, with a diff per changed definition. Changes neither libvirt nor the\n"
          "state file. Exit status as for apply.\n\n",
          true, cmd_plan },
        { "validate", "[--insecure-permissions] [PATH...]",
          "Validate desired-state files or directories without a hypervisor. Errors are printed as\n"
          "FILE:LINE:COLUMN: error: MESSAGE. Exit status: 0 valid, 1 any error.\n"
          "As root, files and directories that anyone but root could change are errors, unless\n"
          "--insecure-permissions makes them warnings.\n\n",
          false, cmd_validate },
        { "status", "[--state PATH] [-o table|json]",
          "List every recorded resource with its conditions, generation, last error and next retry.\n\n"
          "Options:\n"
          "      --state PATH           state file\n"
          "  -o, --output FORMAT        table (default) or json\n",
          false, cmd_status },
        { "run", "[-c URI] [--state PATH] [--wait-lock SEC] [--debounce MSEC] [--retry-base SEC] [--retry-max SEC] [DIR...]",
          "Run the controller: converge, then follow file changes (inotify), libvirt's events, link and device\n"
          "events, and retry what failed with exponential backoff. With no DIR it reads /etc/virtform.d,\n"
          "/run/virtform.d and /usr/lib/virtform.d. SIGHUP reloads every file; SIGTERM and SIGINT stop it.\n\n"
          "      --debounce MSEC        let file changes settle this long before reading them (default 200)\n"
          "      --retry-base SEC       first retry delay; doubles per attempt, with jitter (default 1)\n"
          "      --retry-max SEC        longest retry delay (default 300)\n\n",
          true, cmd_run },
        { "log", "[--state PATH] [--since TIME|DURATION] [-o table|json] [KIND[/NAME]]",
          "Show the event log: every write virtform made to libvirt or the host, oldest first, with the\n"
          "resource, its generation, the action and its outcome: ok, failed (with libvirt's or the kernel's\n"
          "message), intended (in progress, or a run was killed before it knew), or unknown (a killed run's\n"
          "intent, resolved later: \"interrupted; found done\" or \"interrupted; not done\").\n\n"
          "Options:\n"
          "      --state PATH           state file\n"
          "      --since TIME|DURATION  only what was intended since then: 2026-12-03T10:00:00Z (UTC), or\n"
          "                             30m, 12h, 7d back from now\n"
          "  -o, --output FORMAT        table (default) or json\n",
          false, cmd_log },
        { "hostdev", "resolve [--sysfs-root DIR] [--state PATH] [-o table|json] BDF",
          "Explain how a PCI device resolves: for an SR-IOV VF its PF, PF netdev, VF index, the method that\n"
          "chose the PF netdev, and the PF's admin state and carrier. Exit status: 0 resolved, 1 otherwise.\n\n"
          "Options:\n"
          "      --sysfs-root DIR       read sysfs under DIR instead of /sys\n"
          "      --state PATH           state file with recorded resolutions\n"
          "  -o, --output FORMAT        table (default) or json\n",
          false, cmd_hostdev },
        { "state", "check|recover [-c URI] [--state PATH] [--instance ID]",
          "check: check the whole state file with SQLite's integrity_check, as apply and run do by themselves\n"
          "with quick_check after a crash. When the file's write-ahead log was lost after a crash, and apply\n"
          "and run refuse it, a check that passes accepts what is left.\n"
          "recover: rebuild a lost (missing or emptied) state file from the ownership markers of libvirt's\n"
          "domains and networks, and the vfio-pci bindings of the devices they pass through. It refuses a\n"
          "state file that holds records. Both take the lock as apply does.\n"
          "Exit status: 0 the file is sound (recovered), 1 otherwise.\n\n"
          "Options:\n"
          "  -c, --connect URI          recover: libvirt URI\n"
          "      --state PATH           state file\n"
          "      --instance ID          recover: the instance id to take when markers of several are found\n"
          "      --sysfs-root DIR       recover: read sysfs under DIR instead of /sys\n",
          false, cmd_state },
};

static const command *find_command(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static void print_main_help(void) {
        printf("Usage: virtform COMMAND [OPTIONS] [ARGS]\n\n"
               "Converge a libvirt host to desired-state files: networks, domains, host devices.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                printf("  %-9s %s\n", commands[i].name, commands[i].usage);
        printf("\nOptions shared by apply and plan:\n%s\n"
               "Run 'virtform COMMAND --help' for more about a command.\n",
               converge_help);
}

int vf_main(int argc, char **argv) {
        vf_options opts;

        vf_options_init(&opts);
        opts.fault_point = getenv("VIRTFORM_FAULT_POINT");
        if (argc < 2)
                return usage_error(NULL, "%s", "no command given");
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
                print_main_help();
                return EXIT_CONVERGED;
        }
        if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
                printf("virtform %s\n", VIRTFORM_VERSION);
                return EXIT_CONVERGED;
        }
        const command *cmd = find_command(argv[1]);
        if (!cmd)
                return usage_error(NULL, "unknown command '%s'", argv[1]);
        return cmd->run(&opts, argc - 1, argv + 1);
}
