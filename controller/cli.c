/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The command line: parses options, runs one subcommand, maps the outcome to
 * an exit status. Exit statuses: 0 converged (or valid), 1 an error stopped
 * the run, 2 the run completed but something is waiting or failed.
 *
 * One table describes every option and names the commands that take it, so
 * that a command's --help lists exactly what it accepts, and an option given
 * to a command that does not take it is refused, naming those that do.
 */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <time.h>

#include "config.h"
#include "controller/controller.h"
#include "controller/output.h"

enum {
        EXIT_CONVERGED = 0,
        EXIT_ERROR = 1,
        EXIT_NOT_CONVERGED = 2,
};

/* Each command (with hostdev's and state's verbs) is a bit, so that an option can name the commands that take it. */
enum {
        CMD_APPLY = 1 << 0,
        CMD_PLAN = 1 << 1,
        CMD_VALIDATE = 1 << 2,
        CMD_STATUS = 1 << 3,
        CMD_RUN = 1 << 4,
        CMD_LOG = 1 << 5,
        CMD_HOSTDEV_RESOLVE = 1 << 6,
        CMD_STATE_CHECK = 1 << 7,
        CMD_STATE_RECOVER = 1 << 8,
        CMD_CLOUDINIT_RENDER = 1 << 9,
        CMD_ALL = (1 << 10) - 1,
        /* Those that converge libvirt to the files, or show how they would. */
        CMD_CONVERGE = CMD_APPLY | CMD_PLAN | CMD_RUN,
        /* Those that write the state file through the controller, holding its lock. */
        CMD_WRITER = CMD_APPLY | CMD_RUN | CMD_STATE_RECOVER,
        /* Those that log through the controller. */
        CMD_LOGGING = CMD_CONVERGE | CMD_STATE_RECOVER,
        /* Those that print every resource on stdout: stderr gets what went wrong, unless asked for more. */
        CMD_PRINTS_RESOURCES = CMD_APPLY | CMD_PLAN,
};

enum {
        OPT_STATE = 0x100,
        OPT_NO_PRUNE,
        OPT_SHUTDOWN_TIMEOUT,
        OPT_LOG_LEVEL,
        OPT_SYSFS_ROOT,
        OPT_WAIT,
        OPT_TIMEOUT,
        OPT_TRANSITION_TIMEOUT,
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
        OPT_DETAILED_EXITCODE,
        OPT_NAME,
};

typedef struct option_spec {
        const char *name;
        int id; /* getopt_long's value: the short option's letter, or an OPT_ */
        const char *arg; /* the value's name in the help; NULL for a flag */
        unsigned commands; /* the CMD_ bits of the commands that take it */
        /* An option that must be given too, where the command takes it (--timeout needs --wait); 0: none. */
        int needs;
        const char *help; /* lines after the first are indented under it */
        struct {
                size_t offset; /* of its unsigned field in vf_options */
                unsigned long min, max;
                const char *unit; /* what it counts, for messages; NULL: not a number */
        } number;
} option_spec;

/* An option whose value is a whole number from min to max, into that field of vf_options. */
#define NUMBER(field, min, max, unit) .number = { offsetof(vf_options, field), min, max, unit }

/* In the order --help lists them. */
static const option_spec option_specs[] = {
        { "connect", 'c', "URI", CMD_CONVERGE | CMD_STATE_RECOVER, 0,
          "libvirt URI (default: $LIBVIRT_DEFAULT_URI, else libvirt's default)" },
        { "state", OPT_STATE, "PATH", CMD_ALL & ~(CMD_VALIDATE | CMD_CLOUDINIT_RENDER), 0,
          "state file (default: /var/lib/virtform/state.db as root,\n"
          "$XDG_STATE_HOME/virtform/state.db otherwise)" },
        { "wait-lock", OPT_WAIT_LOCK, "SEC", CMD_WRITER, 0,
          "wait up to SEC seconds for another virtform writing the state\n"
          "file to finish, instead of refusing at once", NUMBER(wait_lock_sec, 0, 86400, "seconds") },
        { "no-prune", OPT_NO_PRUNE, NULL, CMD_CONVERGE, 0, "keep owned objects whose declaration is gone" },
        { "shutdown-timeout", OPT_SHUTDOWN_TIMEOUT, "SEC", CMD_CONVERGE, 0,
          "graceful shutdown before destroy (default 60)", NUMBER(shutdown_timeout_sec, 0, 86400, "seconds") },
        { "transition-timeout", OPT_TRANSITION_TIMEOUT, "SEC", CMD_APPLY, 0,
          "without --wait: wait this long for what libvirt is in the middle\n"
          "of on a guest (a start, a save, a migration), then exit 2 (default 60)",
          NUMBER(transition_timeout_sec, 0, 86400, "seconds") },
        { "wait", OPT_WAIT, NULL, CMD_APPLY, 0, "retry and follow events until every resource is Ready" },
        { "timeout", OPT_TIMEOUT, "SEC", CMD_APPLY, OPT_WAIT,
          "with --wait: give up after SEC seconds, exit 2 (default 600; 0: never)",
          NUMBER(wait_timeout_sec, 0, 86400, "seconds") },
        { "debounce", OPT_DEBOUNCE, "MSEC", CMD_RUN, 0,
          "let file changes settle this long before reading them (default 200);\n"
          "a file still open for writing waits up to 100 times that",
          NUMBER(debounce_msec, 0, 86400, "milliseconds") },
        { "retry-base", OPT_RETRY_BASE, "SEC", CMD_APPLY | CMD_RUN, OPT_WAIT,
          "first retry delay; doubles per attempt, with jitter (default 1;\n"
          "apply: with --wait)", NUMBER(retry_base_sec, 1, 86400, "seconds") },
        { "retry-max", OPT_RETRY_MAX, "SEC", CMD_APPLY | CMD_RUN, OPT_WAIT,
          "longest retry delay (default 300; apply: with --wait)", NUMBER(retry_max_sec, 1, 86400, "seconds") },
        { "sysfs-root", OPT_SYSFS_ROOT, "DIR", CMD_CONVERGE | CMD_HOSTDEV_RESOLVE | CMD_STATE_RECOVER, 0,
          "read sysfs under DIR instead of /sys" },
        { "insecure-permissions", OPT_INSECURE_PERMISSIONS, NULL,
          CMD_CONVERGE | CMD_VALIDATE | CMD_CLOUDINIT_RENDER, 0,
          "as root, read files anyone but root could change (with a warning)" },
        { "log-level", OPT_LOG_LEVEL, "LEVEL", CMD_LOGGING, 0,
          "error, warning, notice, info or debug\n"
          "(default: warning for apply and plan, notice otherwise)" },
        { "log-format", OPT_LOG_FORMAT, "FORMAT", CMD_LOGGING, 0, "text (default) or json" },
        { "log-retention-days", OPT_LOG_RETENTION_DAYS, "N", CMD_APPLY | CMD_RUN, 0,
          "keep N days of the event log (default 90)", NUMBER(log_retention_days, 1, 86400, "days") },
        { "log-retention-rows", OPT_LOG_RETENTION_ROWS, "N", CMD_APPLY | CMD_RUN, 0,
          "and at most N events (default 100000)", NUMBER(log_retention_rows, 1, 1000000000, "a count") },
        { "instance", OPT_INSTANCE, "ID", CMD_STATE_RECOVER, 0,
          "the instance id to take when markers of several are found" },
        { "since", OPT_SINCE, "TIME|DURATION", CMD_LOG, 0,
          "only what was intended since then: 2026-12-03T10:00:00Z (UTC),\n"
          "or 30m, 12h, 7d back from now" },
        { "detailed-exitcode", OPT_DETAILED_EXITCODE, NULL, CMD_PLAN, 0,
          "exit 0 nothing to do, 2 changes pending, 1 an error (as terraform)" },
        { "name", OPT_NAME, "NAME", CMD_CLOUDINIT_RENDER, 0, "the CloudInit to render, when FILE declares several" },
        { "output", 'o', "FORMAT", CMD_PLAN | CMD_STATUS | CMD_LOG | CMD_HOSTDEV_RESOLVE, 0, "one of:" },
        /* The same letter, where what a command writes is a file rather than a report. */
        { "output", 'o', "FILE", CMD_CLOUDINIT_RENDER, 0, "write the seed to FILE (required; - for stdout)" },
        { "help", 'h', NULL, CMD_ALL, 0, "show this help" },
};

/* What the command line asked for, parsed. */
typedef struct cli_args {
        vf_options opts;
        const char *output; /* -o, or the command's default */
        int64_t since_usec; /* log --since; 0: from the start */
        bool detailed_exitcode; /* plan: 2 when apply would do anything */
        const char *output_file; /* cloud-init render -o */
        const char *name; /* cloud-init render --name */
        uint64_t given; /* bit i: option_specs[i] was given */
        char **args; /* positional arguments, NULL-terminated */
        size_t n_args;
} cli_args;

typedef struct command command;
struct command {
        const char *name;
        const char *verb; /* the word that follows name (hostdev resolve, state check), or NULL */
        unsigned id; /* its CMD_ bit */
        const char *args; /* positional arguments, for the usage line */
        size_t min_args, max_args;
        const char *const *outputs; /* what -o takes, the default first (NULL: table, json) */
        const char *summary;
        const char *help;
        int (*run)(const command *cmd, cli_args *a);
};

static const char *const default_outputs[] = { "table", "json", NULL };
static const char *const status_outputs[] = { "table", "wide", "json", "yaml", NULL };
static const char *const plan_outputs[] = { "text", "json", NULL };

static int usage_error(const command *cmd, const char *fmt, ...) _printf_(2, 3);

static int usage_error(const command *cmd, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "virtform%s%s%s%s: ", cmd ? " " : "", cmd ? cmd->name : "", cmd && cmd->verb ? " " : "",
                cmd && cmd->verb ? cmd->verb : "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'virtform %s%s%s%s--help'.\n", cmd ? cmd->name : "", cmd && cmd->verb ? " " : "",
                cmd && cmd->verb ? cmd->verb : "", cmd ? " " : "");
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

static int parse_number(const command *cmd, const option_spec *o, const char *value, vf_options *opts) {
        unsigned v;

        if (parse_uint_max(value, o->number.max, &v) < 0 || v < o->number.min)
                return usage_error(cmd, "invalid --%s '%s': give %s, %lu..%lu", o->name, value, o->number.unit,
                                   o->number.min, o->number.max);
        *(unsigned *) ((char *) opts + o->number.offset) = v;
        return 0;
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

static const char *const *command_outputs(const command *cmd) {
        return cmd->outputs ? cmd->outputs : default_outputs;
}

static int parse_output(const command *cmd, const char *value, cli_args *a) {
        for (const char *const *o = command_outputs(cmd); *o; o++)
                if (strcmp(value, *o) == 0) {
                        a->output = *o;
                        return 0;
                }
        _cleanup_free_ char *known = vf_strv_join(command_outputs(cmd), "|");
        return usage_error(cmd, "invalid --output '%s': use %s", value, known ? known : "another format");
}

/* Parses one option's value into a; returns 0, or EXIT_ERROR after saying what is wrong. */
static int parse_option_value(const command *cmd, const option_spec *o, const char *value, cli_args *a) {
        vf_options *opts = &a->opts;

        if (o->number.unit)
                return parse_number(cmd, o, value, opts);
        switch (o->id) {
        case 'c':
                opts->uri = value;
                return 0;
        case OPT_STATE:
                opts->state_path = value;
                return 0;
        case OPT_NO_PRUNE:
                opts->prune = false;
                return 0;
        case OPT_LOG_LEVEL:
                if (parse_log_level(value, &opts->log_level) < 0)
                        return usage_error(cmd, "invalid --log-level '%s': use error, warning, notice, info or debug",
                                           value);
                return 0;
        case OPT_SYSFS_ROOT:
                opts->sysfs_root = value;
                return 0;
        case OPT_WAIT:
                opts->wait = true;
                return 0;
        case OPT_LOG_FORMAT:
                if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0)
                        return usage_error(cmd, "invalid --log-format '%s': use text or json", value);
                opts->log_json = strcmp(value, "json") == 0;
                return 0;
        case OPT_INSECURE_PERMISSIONS:
                opts->insecure_permissions = true;
                return 0;
        case OPT_INSTANCE:
                opts->instance = value;
                return 0;
        case OPT_DETAILED_EXITCODE:
                a->detailed_exitcode = true;
                return 0;
        case OPT_SINCE:
                if (parse_since(value, vf_now_realtime_usec(), &a->since_usec) < 0)
                        return usage_error(cmd,
                                           "invalid --since '%s': give a duration (30m, 12h, 7d) or a UTC time "
                                           "(2026-12-03T10:00:00Z)",
                                           value);
                return 0;
        case OPT_NAME:
                a->name = value;
                return 0;
        case 'o':
                if (strcmp(o->arg, "FILE") == 0) {
                        a->output_file = value;
                        return 0;
                }
                return parse_output(cmd, value, a);
        }
        return usage_error(cmd, "%s", "invalid option");
}

/* DIR...: those given, or the drop-in directories. */
static void use_paths(cli_args *a) {
        a->opts.default_paths = a->n_args == 0;
        a->opts.paths = a->opts.default_paths ? (char **) schema_default_dirs : a->args;
}

static int fail_run(const char *errmsg, int r) {
        fprintf(stderr, "virtform: error: %s\n", errmsg ? errmsg : strerror(-r));
        return EXIT_ERROR;
}

static int run_pass(vf_options *opts, void (*print)(FILE *, const vf_report *)) {
        _cleanup_free_ char *errmsg = NULL;
        _cleanup_(output_stream_freep) output_stream *stream = NULL;
        _cleanup_(vf_daemon_freep) vf_daemon *d = NULL;
        vf_controller c = {};
        vf_report report = {};
        int r, status = EXIT_ERROR;

        r = vf_daemon_new_apply(opts, &report, &d);
        if (r < 0)
                errmsg = vf_printf("cannot set up the event loop: %s", strerror(-r));
        if (r >= 0)
                r = vf_controller_open(&c, opts, &errmsg);
        if (r >= 0)
                /* Each resource's line as it is decided; on a terminal, what is being done meanwhile. */
                r = output_stream_new(stdout, isatty(STDOUT_FILENO) && !opts->log_json, &stream);
        if (r >= 0) {
                c.observer = output_stream_observer(stream);
                r = vf_daemon_apply(d, &c, &errmsg);
        }
        vf_daemon_free(TAKE_PTR(d));
        output_stream_free(TAKE_PTR(stream));
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

static int cmd_run(const command *cmd, cli_args *a) {
        _cleanup_free_ char *errmsg = NULL;
        _cleanup_(vf_daemon_freep) vf_daemon *d = NULL;
        vf_daemon_options dopts = {};
        vf_controller c = {};
        bool converged;
        int r;

        use_paths(a);
        a->opts.daemon = true;
        r = vf_daemon_new(&dopts, &d);
        if (r >= 0)
                r = vf_controller_open(&c, &a->opts, &errmsg);
        if (r >= 0)
                r = vf_daemon_run(d, &c, &converged, &errmsg);
        vf_daemon_free(TAKE_PTR(d));
        vf_controller_close(&c);
        return r < 0 ? fail_run(errmsg, r) : EXIT_CONVERGED;
}

static int cmd_apply(const command *cmd, cli_args *a) {
        use_paths(a);
        return run_pass(&a->opts, output_apply);
}

/* Whether apply would do anything: write to libvirt, the host or the state file, or wait for something. */
static bool plan_pending(const vf_report *r) {
        for (rc_outcome o = 0; o < _RC_OUTCOME_MAX; o++)
                if (o != RC_UNCHANGED && o != RC_KEPT && r->by_outcome[o] > 0)
                        return true;
        return false;
}

/*
 * As terraform's plan: 1 when the plan shows an error (a file, or a resource apply would fail on),
 * else 0; with --detailed-exitcode, 2 when apply would do anything.
 */
static int plan_status(const vf_report *r, bool detailed) {
        if (r->n_file_errors > 0 || r->by_outcome[RC_FAILED] > 0)
                return EXIT_ERROR;
        return detailed && plan_pending(r) ? EXIT_NOT_CONVERGED : EXIT_CONVERGED;
}

/* plan: one pass with writes suppressed; there is nothing in flight to follow. */
static int cmd_plan(const command *cmd, cli_args *a) {
        _cleanup_free_ char *errmsg = NULL;
        bool json = strcmp(a->output, "json") == 0;
        vf_controller c = {};
        vf_report report = {};
        int r, status;

        use_paths(a);
        a->opts.dry_run = true;
        r = vf_controller_open(&c, &a->opts, &errmsg);
        if (r >= 0)
                r = vf_controller_pass(&c, &report, &errmsg);
        if (r < 0)
                status = fail_run(errmsg, r);
        else
                status = plan_status(&report, a->detailed_exitcode);
        /* A CI gate that parses stdout gets a document even when the run could not be made. */
        if (json && output_plan_json(stdout, &report, r < 0 ? (errmsg ? errmsg : strerror(-r)) : NULL) < 0)
                status = fail_run("out of memory", -ENOMEM);
        else if (!json && r >= 0)
                output_plan(stdout, &report);
        vf_report_done(&report);
        vf_controller_close(&c);
        return status;
}

static int cmd_validate(const command *cmd, cli_args *a) {
        _cleanup_(schema_set_freep) schema_set *set = NULL;
        _cleanup_strv_free_ char **undeclared = NULL;
        int r;

        use_paths(a);
        schema_load_options options = vf_options_schema(&a->opts);
        /* Agree with the host's libvirt where it is installed; apply keeps to the compact schemas. */
        options.libvirt_schemas = SCHEMA_LIBVIRT_SCHEMAS;
        r = schema_load_with_options(a->opts.paths, vf_strv_length(a->opts.paths), &options, &set);
        if (r < 0) {
                fprintf(stderr, "virtform: error: %s\n", strerror(-r));
                return EXIT_ERROR;
        }
        output_diags(stderr, set);
        /* The set as a whole, as CI checks it before a file lands: what it refers to and does not declare. */
        if (schema_set_undeclared_warnings(set, &undeclared) < 0) {
                fprintf(stderr, "virtform: error: %s\n", strerror(ENOMEM));
                return EXIT_ERROR;
        }
        for (size_t i = 0; undeclared && undeclared[i]; i++)
                fprintf(stderr, "%s\n", undeclared[i]);
        if (schema_set_n_errors(set) > 0)
                return EXIT_ERROR;
        printf("%zu resources in %zu files are valid\n", set->n_resources, set->n_files_ok);
        return EXIT_CONVERGED;
}

/* What the default status table fits in: $COLUMNS, else the terminal's width, else 100. */
static int status_width(void) {
        const char *columns = getenv("COLUMNS");
        struct winsize ws;
        unsigned w;

        if (columns && parse_uint_max(columns, 10000, &w) >= 0 && w > 0)
                return (int) w;
        if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0 && ws.ws_col > 0)
                return ws.ws_col;
        return 100;
}

static int print_status(const char *output, const output_status *st) {
        if (strcmp(output, "json") == 0)
                return output_status_json(stdout, st);
        if (strcmp(output, "yaml") == 0)
                return output_status_yaml(stdout, st);
        output_status_table(stdout, st, strcmp(output, "wide") == 0 ? 0 : status_width());
        return 0;
}

/*
 * The daemon's connection as it recorded it ("PID connected" or "PID reconnecting REALTIME_USEC"),
 * said for people, while that process lives: "PID 1234, reconnecting in 12s". NULL when none runs.
 */
static char *daemon_connection(state_store *store) {
        _cleanup_free_ char *value = NULL;
        long long at = 0;
        char state[16];
        int pid;

        if (state_meta_get(store, STATE_META_DAEMON, &value) < 0 || !value ||
            sscanf(value, "%d %15s %lld", &pid, state, &at) < 2 || pid <= 0)
                return NULL;
        if (kill(pid, 0) < 0 && errno == ESRCH)
                return NULL; /* killed without a word: what it recorded is stale */
        if (strcmp(state, "reconnecting") != 0)
                return vf_printf("PID %d, %s", pid, state);
        char in[16];
        int64_t left = (int64_t) at - vf_now_realtime_usec();
        vf_format_duration(left > 0 ? left : 0, in);
        return vf_printf("PID %d, reconnecting in %s", pid, in);
}

/* How many of a resource's latest writes its own status shows. */
#define STATUS_RECENT_EVENTS 10

/* status KIND/NAME: one resource; as a table, with its conditions and its latest writes. Returns an exit status. */
static int print_status_of(state_store *store, const command *cmd, const char *output, const char *key) {
        _cleanup_(state_record_freep) state_record *rec = NULL;
        _cleanup_free_ char *kind = strndup(key, strcspn(key, "/"));
        const char *slash = strchr(key, '/');
        state_event *events = NULL;
        size_t n = 0;
        int r;

        if (!slash || slash == key || !slash[1])
                return usage_error(cmd, "invalid resource '%s': give KIND/NAME, as status lists them", key);
        r = kind ? state_get(store, kind, slash + 1, &rec) : -ENOMEM;
        if (r == -ENOENT) {
                fprintf(stderr, "virtform: error: %s is not recorded; 'virtform status' lists what is\n", key);
                return EXIT_ERROR;
        }
        if (r >= 0 && strcmp(output, "table") != 0)
                r = print_status(output, &(output_status) { .recs = &rec, .n_recs = 1 });
        else if (r >= 0)
                r = state_event_list(store, kind, slash + 1, 0, &events, &n);
        if (r < 0)
                return fail_run(r == -ENOMEM ? NULL : state_last_error(store), r);
        if (strcmp(output, "table") == 0) {
                size_t from = n > STATUS_RECENT_EVENTS ? n - STATUS_RECENT_EVENTS : 0;
                output_status_one(stdout, rec, events + from, n - from);
        }
        state_event_list_free(events, n);
        return EXIT_CONVERGED;
}

static int cmd_status(const command *cmd, cli_args *a) {
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL, *fallback = NULL;
        const char *path;
        state_record **recs = NULL;
        state_file_error *file_errors = NULL;
        size_t n = 0, n_file_errors = 0;
        int r;

        path = a->opts.state_path ? a->opts.state_path : (fallback = state_default_path());
        r = path ? state_open(path, STATE_OPEN_READONLY | STATE_OPEN_EXISTING, &store, &errmsg) : -ENOMEM;
        if (r >= 0 && a->n_args > 0)
                return print_status_of(store, cmd, a->output, a->args[0]);
        if (r >= 0)
                r = state_list(store, &recs, &n);
        if (r >= 0)
                r = state_file_errors_list(store, &file_errors, &n_file_errors);
        if (r < 0) {
                state_record_list_free(recs, n);
                fprintf(stderr, "virtform: error: %s\n", errmsg ? errmsg : strerror(-r));
                return EXIT_ERROR;
        }
        _cleanup_free_ char *daemon = daemon_connection(store);
        r = print_status(a->output, &(output_status) { .recs = recs, .n_recs = n, .file_errors = file_errors,
                                                       .n_file_errors = n_file_errors, .daemon = daemon });
        state_record_list_free(recs, n);
        state_file_error_list_free(file_errors, n_file_errors);
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

static int cmd_hostdev_resolve(const command *cmd, cli_args *a) {
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL, *fallback = NULL;
        rc_hostdev_explanation e = {};
        const char *path;
        int r;

        /* The store only helps (a recorded resolution): without one, resolve from sysfs alone. */
        path = a->opts.state_path ? a->opts.state_path : (fallback = state_default_path());
        if (path && state_open(path, STATE_OPEN_READONLY, &store, &errmsg) < 0)
                fprintf(stderr, "virtform: warning: %s; resolving without recorded resolutions\n", errmsg);
        r = rc_hostdev_explain(a->opts.sysfs_root, store, a->args[0], &e);
        if (r < 0) {
                fprintf(stderr, "virtform: error: %s\n", strerror(-r));
                return EXIT_ERROR;
        }
        if (strcmp(a->output, "json") == 0)
                r = print_explanation_json(&e);
        else
                print_explanation_table(&e);
        int status = e.error || r < 0 ? EXIT_ERROR : EXIT_CONVERGED;
        rc_hostdev_explanation_done(&e);
        return status;
}

/* The check a writer makes after a crash, on demand: it also accepts what is left after a lost -wal. */
static int cmd_state_check(const command *cmd, cli_args *a) {
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL, *fallback = NULL;
        const char *path;
        int r;

        path = a->opts.state_path ? a->opts.state_path : (fallback = state_default_path());
        r = path ? state_open(path, STATE_OPEN_CHECK, &store, &errmsg) : -ENOMEM;
        if (r < 0)
                return fail_run(errmsg, r);
        printf("%s: ok\n", path);
        return EXIT_CONVERGED;
}

static int cmd_log(const command *cmd, cli_args *a) {
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_free_ char *errmsg = NULL, *fallback = NULL;
        const char *path;
        int r;

        /* A reader: never locks, never writes, and works on a read-only file. */
        path = a->opts.state_path ? a->opts.state_path : (fallback = state_default_path());
        r = path ? state_open(path, STATE_OPEN_READONLY | STATE_OPEN_EXISTING, &store, &errmsg) : -ENOMEM;
        if (r >= 0)
                r = print_log(store, a->n_args ? a->args[0] : NULL, a->since_usec, strcmp(a->output, "json") == 0);
        if (r < 0) {
                fprintf(stderr, "virtform: error: %s\n", errmsg ? errmsg : strerror(-r));
                return EXIT_ERROR;
        }
        return EXIT_CONVERGED;
}

/* The CloudInit to render: the one FILE declares, or the one --name names. NULL after saying why not. */
static const schema_resource *pick_cloudinit(const schema_set *set, const char *file, const char *name) {
        const schema_resource *found = NULL;
        _cleanup_strv_free_ char **names = NULL;

        for (size_t i = 0; i < set->n_resources; i++) {
                const schema_resource *r = set->resources[i];
                if (r->kind != VF_KIND_CLOUDINIT || (name && strcmp(r->name, name) != 0))
                        continue;
                found = r;
                if (vf_strv_push(&names, r->name) < 0) {
                        fail_run(NULL, -ENOMEM);
                        return NULL;
                }
        }
        if (vf_strv_length(names) == 1)
                return found;
        _cleanup_free_ char *list = names ? vf_strv_join((const char *const *) names, ", ") : NULL;
        if (names)
                fprintf(stderr, "virtform: error: %s declares %zu CloudInits (%s); pick one with --name\n", file,
                        vf_strv_length(names), list ? list : "");
        else if (name)
                fprintf(stderr, "virtform: error: %s declares no CloudInit named %s\n", file, name);
        else
                fprintf(stderr, "virtform: error: %s declares no CloudInit\n", file);
        return NULL;
}

static int write_seed(const char *path, const uint8_t *data, size_t size) {
        int r;

        if (strcmp(path, "-") == 0)
                r = fwrite(data, 1, size, stdout) == size && fflush(stdout) == 0 ? 0 : -(errno ? errno : EIO);
        else
                r = vf_write_file_atomic(path, data, size);
        if (r < 0)
                fprintf(stderr, "virtform: error: cannot write the seed to %s: %s\n",
                        strcmp(path, "-") == 0 ? "stdout" : path, strerror(-r));
        return r;
}

static int cmd_cloudinit_render(const command *cmd, cli_args *a) {
        _cleanup_(schema_set_freep) schema_set *set = NULL;
        _cleanup_free_ char *errmsg = NULL;
        _cleanup_free_ uint8_t *seed = NULL;
        schema_load_options options = vf_options_schema(&a->opts);
        size_t size;
        int r;

        if (!a->output_file)
                return usage_error(cmd, "%s", "give the file to write with -o FILE (- for stdout)");
        r = schema_load_with_options(a->args, 1, &options, &set);
        if (r < 0)
                return fail_run(NULL, r);
        output_diags(stderr, set);
        if (schema_set_n_errors(set) > 0)
                return EXIT_ERROR;
        const schema_resource *res = pick_cloudinit(set, a->args[0], a->name);
        if (!res)
                return EXIT_ERROR;
        r = rc_cloudinit_render(res, &seed, &size, &errmsg);
        if (r < 0)
                return fail_run(errmsg, r);
        return write_seed(a->output_file, seed, size) < 0 ? EXIT_ERROR : EXIT_CONVERGED;
}

static int cmd_state_recover(const command *cmd, cli_args *a) {
        _cleanup_free_ char *errmsg = NULL;
        vf_controller c = {};
        int r;

        a->opts.recover = true;
        r = vf_controller_open(&c, &a->opts, &errmsg);
        if (r >= 0)
                r = vf_controller_recover(&c, a->opts.instance, stdout, &errmsg);
        vf_controller_close(&c);
        return r < 0 ? fail_run(errmsg, r) : EXIT_CONVERGED;
}

static const command commands[] = {
        { "apply", NULL, CMD_APPLY, "[DIR...]", 0, SIZE_MAX, NULL, "converge libvirt once to the files",
          "Converge libvirt once to the resources declared in DIR (YAML and XML files) and print one line per\n"
          "resource: created, updated, unchanged, deleted, kept, waiting or failed.\n"
          "Exit status: 0 every resource Ready, 2 something waiting or failed, 1 an error stopped the run.\n",
          cmd_apply },
        { "plan", NULL, CMD_PLAN, "[DIR...]", 0, SIZE_MAX, plan_outputs, "show what apply would do; changes nothing",
          "Print what apply would do: a line per resource with its steps, and a unified diff of each definition\n"
          "it would change (what the files set, against libvirt's values for it), or that a delete removes.\n"
          "Changes neither libvirt nor the state file. -o json prints the same as one JSON document.\n"
          "Exit status: 0 the plan was made, 1 an error (a run that could not be made, a file with errors,\n"
          "a resource apply would fail on); with --detailed-exitcode, 2 when apply would do anything.\n",
          cmd_plan },
        { "validate", NULL, CMD_VALIDATE, "[PATH...]", 0, SIZE_MAX, NULL, "check files without a hypervisor",
          "Validate desired-state files or directories without a hypervisor. Errors are printed as\n"
          "FILE:LINE:COLUMN: error: MESSAGE. Exit status: 0 valid, 1 any error.\n"
          "As root, files and directories that anyone but root could change are errors, unless\n"
          "--insecure-permissions makes them warnings.\n",
          cmd_validate },
        { "status", NULL, CMD_STATUS, "[KIND/NAME]", 0, 1, status_outputs, "what was recorded, with conditions",
          "List every recorded resource: KIND/NAME, READY, REASON, AGE (since Ready last changed) and the\n"
          "message, cut to the terminal's width ($COLUMNS, else 100 columns off a terminal). -o wide shows\n"
          "every column whole; -o json and -o yaml everything recorded. With KIND/NAME, that resource with\n"
          "every condition and its latest writes.\n",
          cmd_status },
        { "run", NULL, CMD_RUN, "[DIR...]", 0, SIZE_MAX, NULL, "the daemon: converge, then follow every change",
          "Run the controller: converge, then follow file changes (inotify), libvirt's events, link and device\n"
          "events, and retry what failed with exponential backoff. With no DIR it reads /etc/virtform.d,\n"
          "/run/virtform.d and /usr/lib/virtform.d. SIGHUP reloads every file; SIGTERM and SIGINT stop it.\n",
          cmd_run },
        { "log", NULL, CMD_LOG, "[KIND[/NAME]]", 0, 1, NULL, "every write made to libvirt or the host",
          "Show the event log: every write virtform made to libvirt or the host, oldest first, with the\n"
          "resource, its generation, the action and its outcome: ok, failed (with libvirt's or the kernel's\n"
          "message), intended (in progress, or a run was killed before it knew), or unknown (a killed run's\n"
          "intent, resolved later: \"interrupted; found done\" or \"interrupted; not done\").\n",
          cmd_log },
        { "hostdev", "resolve", CMD_HOSTDEV_RESOLVE, "BDF", 1, 1, NULL, "explain how a PCI device resolves",
          "Explain how a PCI device resolves: for an SR-IOV VF its PF, PF netdev, VF index, the method that\n"
          "chose the PF netdev, and the PF's admin state and carrier. Resolutions recorded in the state file\n"
          "are used when it can be read. Exit status: 0 resolved, 1 otherwise.\n",
          cmd_hostdev_resolve },
        { "state", "check", CMD_STATE_CHECK, NULL, 0, 0, NULL, "check the whole state file (after a crash)",
          "Check the whole state file with SQLite's integrity_check, as apply and run do by themselves with\n"
          "quick_check after a crash. When the file's write-ahead log was lost after a crash, and apply and\n"
          "run refuse it, a check that passes accepts what is left. It takes the lock as apply does.\n"
          "Exit status: 0 the file is sound, 1 otherwise.\n",
          cmd_state_check },
        { "state", "recover", CMD_STATE_RECOVER, NULL, 0, 0, NULL, "rebuild a lost state file from libvirt's markers",
          "Rebuild a lost (missing or emptied) state file from the ownership markers of libvirt's domains and\n"
          "networks, and the vfio-pci bindings of the devices they pass through. It refuses a state file\n"
          "that holds records, and takes the lock as apply does.\n"
          "Exit status: 0 the file was recovered, 1 otherwise.\n",
          cmd_state_recover },
        { "cloud-init", "render", CMD_CLOUDINIT_RENDER, "FILE", 1, 1, NULL,
          "write the seed a CloudInit gets, as an ISO",
          "Write the NoCloud seed the CloudInit declared in FILE gets: an ISO 9660 image with the volume id\n"
          "cidata and the files user-data, meta-data and network-config, byte for byte what apply uploads.\n"
          "Needs no hypervisor and no state file. FILE is read as apply reads it; its errors are said as\n"
          "validate says them.\n"
          "Exit status: 0 the seed was written, 1 otherwise (an error in FILE, no such CloudInit in it).\n",
          cmd_cloudinit_render },
};

/* The option with that getopt value: the one the command takes, where two share a letter (-o). */
static size_t option_index(const command *cmd, int id) {
        size_t found = SIZE_MAX;

        for (size_t i = 0; i < ELEMENTSOF(option_specs); i++)
                if (option_specs[i].id == id) {
                        if (option_specs[i].commands & cmd->id)
                                return i;
                        if (found == SIZE_MAX)
                                found = i;
                }
        return found;
}

/* "apply, plan, run": the commands whose bits are in mask, for messages. */
static char *command_names(unsigned mask) {
        vf_buf b = {};

        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (commands[i].id & mask)
                        vf_buf_printf(&b, "%s%s%s%s", b.len ? ", " : "", commands[i].name, commands[i].verb ? " " : "",
                                      commands[i].verb ? commands[i].verb : "");
        return vf_buf_steal(&b);
}

static void print_option_help(const command *cmd, const option_spec *o) {
        enum { HELP_COLUMN = 29 };
        bool short_name = o->id < 0x100;
        int n = printf("  %c%c%c --%s%s%s", short_name ? '-' : ' ', short_name ? o->id : ' ', short_name ? ',' : ' ',
                       o->name, o->arg ? " " : "", o->arg ? o->arg : "");

        /* An option too long for the column has its help on the next line, as GNU tools do. */
        if (n >= HELP_COLUMN) {
                putchar('\n');
                n = 0;
        }
        printf("%*s", HELP_COLUMN - n, "");
        for (const char *p = o->help; *p; p++)
                if (*p == '\n')
                        printf("\n%*s", HELP_COLUMN, "");
                else
                        putchar(*p);
        if (o->id == 'o' && strcmp(o->arg, "FORMAT") == 0)
                for (const char *const *f = command_outputs(cmd); *f; f++)
                        printf("%s %s%s", f == command_outputs(cmd) ? "" : ",", *f, f == command_outputs(cmd) ? " (default)" : "");
        putchar('\n');
}

static void print_command_help(const command *cmd) {
        printf("Usage: virtform %s%s%s [OPTIONS]%s%s\n\n%s\nOptions:\n", cmd->name, cmd->verb ? " " : "",
               cmd->verb ? cmd->verb : "", cmd->args ? " " : "", cmd->args ? cmd->args : "", cmd->help);
        for (size_t i = 0; i < ELEMENTSOF(option_specs); i++)
                if (option_specs[i].commands & cmd->id)
                        print_option_help(cmd, &option_specs[i]);
}

/* getopt_long()'s view of option_specs (each letter once), into caller-provided arrays sized for them. */
static void getopt_tables(struct option *longopts, char *shortopts) {
        size_t n = 0, l = 0;

        /* A leading ':' makes a missing value ':' rather than '?', so that the message can say which. */
        shortopts[n++] = ':';
        for (size_t i = 0; i < ELEMENTSOF(option_specs); i++) {
                const option_spec *o = &option_specs[i];
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        seen = seen || option_specs[j].id == o->id;
                if (seen)
                        continue;
                longopts[l++] = (struct option) { o->name, o->arg ? required_argument : no_argument, NULL, o->id };
                if (o->id < 0x100) {
                        shortopts[n++] = (char) o->id;
                        if (o->arg)
                                shortopts[n++] = ':';
                }
        }
        longopts[l] = (struct option) {};
        shortopts[n] = 0;
}

/* An option given to a command that does not take it: a usage error that names the commands that do. */
static int refuse_option(const command *cmd, const option_spec *o) {
        unsigned mask = 0;

        for (size_t i = 0; i < ELEMENTSOF(option_specs); i++)
                if (option_specs[i].id == o->id)
                        mask |= option_specs[i].commands;
        _cleanup_free_ char *takers = command_names(mask);
        return usage_error(cmd, "--%s does not apply to %s%s%s; it is an option of %s", o->name, cmd->name,
                           cmd->verb ? " " : "", cmd->verb ? cmd->verb : "", takers ? takers : "other commands");
}

/* Each option given whose effect depends on another needs that one too, where the command takes it. */
static int check_needs(const command *cmd, const cli_args *a) {
        for (size_t i = 0; i < ELEMENTSOF(option_specs); i++) {
                const option_spec *o = &option_specs[i];
                size_t needed = o->needs ? option_index(cmd, o->needs) : SIZE_MAX;

                if (!(a->given & (UINT64_C(1) << i)) || needed == SIZE_MAX ||
                    !(option_specs[needed].commands & cmd->id) || (a->given & (UINT64_C(1) << needed)))
                        continue;
                return usage_error(cmd, "--%s has no effect without --%s", o->name, option_specs[needed].name);
        }
        return 0;
}

static int check_args(const command *cmd, const cli_args *a) {
        if (a->n_args < cmd->min_args)
                return usage_error(cmd, "expected: virtform %s%s%s %s", cmd->name, cmd->verb ? " " : "",
                                   cmd->verb ? cmd->verb : "", cmd->args);
        if (a->n_args > cmd->max_args)
                return usage_error(cmd, "unexpected argument '%s'", a->args[cmd->max_args]);
        return 0;
}

/*
 * Parses argv (argv[0] the command's last word) into a. Returns true when the
 * command goes on; false when it is done (--help, a usage error), with
 * *status its exit status.
 */
static bool parse_command_line(const command *cmd, int argc, char **argv, cli_args *a, int *status) {
        struct option longopts[ELEMENTSOF(option_specs) + 1];
        char shortopts[2 * ELEMENTSOF(option_specs) + 2];
        int c;

        if (cmd->id & CMD_PRINTS_RESOURCES)
                a->opts.log_level = VF_LOG_WARNING;
        a->output = command_outputs(cmd)[0];
        getopt_tables(longopts, shortopts);
        optind = 1;
        opterr = 0;
        *status = EXIT_CONVERGED;
        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) >= 0) {
                size_t i = option_index(cmd, c);

                if (c == ':')
                        *status = usage_error(cmd, "%s needs a value", argv[optind - 1]);
                else if (i == SIZE_MAX)
                        *status = usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
                else if (!(option_specs[i].commands & cmd->id))
                        *status = refuse_option(cmd, &option_specs[i]);
                else if (c == 'h') {
                        print_command_help(cmd);
                        return false;
                } else {
                        a->given |= UINT64_C(1) << i;
                        *status = parse_option_value(cmd, &option_specs[i], optarg, a);
                }
                if (*status != EXIT_CONVERGED)
                        return false;
        }
        a->args = argv + optind;
        a->n_args = (size_t) (argc - optind);
        *status = check_needs(cmd, a);
        if (*status == EXIT_CONVERGED)
                *status = check_args(cmd, a);
        return *status == EXIT_CONVERGED;
}

static void print_main_help(void) {
        printf("Usage: virtform COMMAND [OPTIONS] [ARGS]\n\n"
               "Converge a libvirt host to desired-state files: networks, domains, host devices.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                const command *cmd = &commands[i];
                _cleanup_free_ char *name = vf_printf("%s%s%s", cmd->name, cmd->verb ? " " : "",
                                                      cmd->verb ? cmd->verb : "");
                printf("  %-18s %s\n", name ? name : cmd->name, cmd->summary);
        }
        printf("\nRun 'virtform COMMAND --help' for a command's options.\n");
}

/*
 * The command argv names: argv[1], and argv[2] too for a command with verbs.
 * NULL after a usage error or the help of a command's verbs, with *status set.
 */
static const command *find_command(int argc, char **argv, int *status) {
        const command *named = NULL;

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (strcmp(commands[i].name, argv[1]) != 0)
                        continue;
                named = &commands[i];
                if (!named->verb || (argc > 2 && strcmp(named->verb, argv[2]) == 0))
                        return named;
        }
        if (!named) {
                *status = usage_error(NULL, "unknown command '%s'", argv[1]);
                return NULL;
        }
        /* "state --help": the help of each of its verbs. */
        bool help = argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0);
        vf_buf verbs = {};
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, named->name) == 0) {
                        if (help)
                                print_command_help(&commands[i]);
                        vf_buf_printf(&verbs, "%s%s", verbs.len ? "|" : "", commands[i].verb);
                }
        _cleanup_free_ char *list = vf_buf_steal(&verbs);
        const command bare = { .name = named->name };
        *status = help ? EXIT_CONVERGED
                       : usage_error(&bare, "expected: virtform %s %s", named->name, list ? list : "VERB");
        return NULL;
}

int vf_main(int argc, char **argv) {
        cli_args a = {};
        int status;

        vf_options_init(&a.opts);
        a.opts.fault_point = getenv("VIRTFORM_FAULT_POINT");
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
        const command *cmd = find_command(argc, argv, &status);
        if (!cmd)
                return status;
        int skip = cmd->verb ? 2 : 1;
        if (!parse_command_line(cmd, argc - skip, argv + skip, &a, &status))
                return status;
        return cmd->run(cmd, &a);
}
