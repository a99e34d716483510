/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "controller/controller.h"
#include "controller/graph.h"
#include "controller/loop.h"

#include <libvirt/virterror.h>
#include <stdarg.h>

#define DEFAULT_SHUTDOWN_TIMEOUT_SEC 60
/* apply --wait gives up by itself: provisioning at first boot must end, with an exit status. */
#define DEFAULT_WAIT_TIMEOUT_SEC 600
/*
 * How long a plain apply waits for what libvirt is in the middle of on a guest (a start libvirtd's
 * autostart is making at boot): long enough for a start or a save, and then it ends, for one that a
 * dead driver left never ends.
 */
#define DEFAULT_TRANSITION_TIMEOUT_SEC 60

void vf_options_init(vf_options *o) {
        *o = (vf_options) {
                .prune = true,
                .shutdown_timeout_sec = DEFAULT_SHUTDOWN_TIMEOUT_SEC,
                .log_level = VF_LOG_NOTICE,
                .sysfs_root = "/sys",
                .retry_base_sec = 1,
                .retry_max_sec = 300,
                .debounce_msec = 200,
                .wait_timeout_sec = DEFAULT_WAIT_TIMEOUT_SEC,
                .transition_timeout_sec = DEFAULT_TRANSITION_TIMEOUT_SEC,
                .log_retention_days = 90,
                .log_retention_rows = 100000,
                .log_time = !vf_fd_is_journal_stream(STDERR_FILENO),
        };
}

static const char *const level_names[] = {
        [VF_LOG_ERR] = "error",
        [VF_LOG_WARNING] = "warning",
        [VF_LOG_NOTICE] = "notice",
        [VF_LOG_INFO] = "info",
        [VF_LOG_DEBUG] = "debug",
};

static void log_text(const vf_controller *c, vf_log_level level, const char *key, const char *message) {
        char when[32];

        if (c->opts.log_time)
                vf_format_time_msec(vf_now_realtime_usec(), when);
        fprintf(c->log, "%s%svirtform: %s: %s%s%s\n", c->opts.log_time ? when : "", c->opts.log_time ? " " : "",
                level_names[level], key ? key : "", key ? ": " : "", message);
}

static void log_json(const vf_controller *c, vf_log_level level, const char *key, const char *message) {
        char when[32];
        vf_buf b = {};

        vf_format_time_msec(vf_now_realtime_usec(), when);
        vf_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", when, level_names[level]);
        if (key) {
                vf_buf_puts(&b, ",\"resource\":");
                vf_buf_put_json_string(&b, key);
        }
        vf_buf_puts(&b, ",\"message\":");
        vf_buf_put_json_string(&b, message);
        vf_buf_puts(&b, "}\n");
        if (!b.oom)
                fputs(b.data, c->log);
        vf_buf_done(&b);
}

static void log_message(const vf_controller *c, vf_log_level level, const char *key, const char *fmt, va_list ap)
        _printf_(4, 0);

static void log_message(const vf_controller *c, vf_log_level level, const char *key, const char *fmt, va_list ap) {
        _cleanup_free_ char *message = NULL;

        if (level > c->opts.log_level || !c->log)
                return;
        if (vasprintf(&message, fmt, ap) < 0)
                return;
        (c->opts.log_json ? log_json : log_text)(c, level, key, message);
}

void vf_log(const vf_controller *c, vf_log_level level, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_message(c, level, NULL, fmt, ap);
        va_end(ap);
}

void vf_log_resource(const vf_controller *c, vf_log_level level, const char *key, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_message(c, level, key, fmt, ap);
        va_end(ap);
}

void vf_log_diag(const vf_controller *c, const schema_diag *diag) {
        _cleanup_free_ char *line = schema_diag_format(diag);
        vf_log(c, diag->warning ? VF_LOG_WARNING : VF_LOG_ERR, "%s", line ? line : "out of memory");
}

/* libvirt prints every error to stderr by default; we report them ourselves, with context. */
static void ignore_libvirt_error(void *userdata, virErrorPtr error) {
}

/* A driver that runs inside this process (a URI path of /embed) rather than in a daemon. */
static bool connection_is_embedded(virConnectPtr conn) {
        _cleanup_free_ char *uri = virConnectGetURI(conn);
        return uri && strstr(uri, ":///embed");
}

static int open_hypervisor(vf_controller *c, char **errmsg) {
        virSetErrorFunc(NULL, ignore_libvirt_error);
        /*
         * Embedded drivers (qemu:///embed) need an event loop even for one
         * pass: the QEMU driver talks to its guests' monitors through it.
         */
        int r = libvirt_events_start_thread();
        if (r < 0)
                return vf_error(errmsg, r, "cannot start libvirt's event loop: %s", strerror(-r));
        c->conn = c->opts.dry_run ? virConnectOpenReadOnly(c->opts.uri) : virConnectOpen(c->opts.uri);
        if (!c->conn) {
                *errmsg = vf_printf("cannot connect to the hypervisor%s%s: %s; check that libvirtd runs and -c names "
                                    "the right URI",
                                    c->opts.uri ? " at " : "", c->opts.uri ? c->opts.uri : "", rc_libvirt_error());
                return -ECONNREFUSED;
        }
        if (connection_is_embedded(c->conn) && rc_domain_wait_reconnected(c->conn) < 0)
                return vf_error(errmsg, -EIO, "cannot list the running domains: %s", rc_libvirt_error());
        return 0;
}

/* How often a writer looks again whether the lock was released, while --wait-lock lets it wait. */
#define LOCK_POLL_USEC 100000

/*
 * Opens the store; while another writer holds it, tries again until
 * --wait-lock passes. Polled rather than a blocking flock(2): that would
 * need a signal to stop it, and the daemon owns the signals.
 */
static int open_store(vf_controller *c, char **errmsg) {
        _cleanup_free_ char *fallback = NULL;
        const char *path = c->opts.state_path;
        state_open_flags flags = c->opts.dry_run ? STATE_OPEN_READONLY : c->opts.recover ? STATE_OPEN_RECOVER : 0;
        int64_t deadline = vf_now_monotonic_usec() + (int64_t) c->opts.wait_lock_sec * 1000000;

        if (!path) {
                path = fallback = state_default_path();
                if (!path)
                        return -ENOMEM;
        }
        for (bool told = false;; told = true) {
                int r = state_open(path, flags, &c->store, errmsg);
                if (r != -EBUSY || vf_now_monotonic_usec() >= deadline)
                        return r;
                if (!told)
                        vf_log(c, VF_LOG_WARNING, "%s; waiting up to %u s", *errmsg, c->opts.wait_lock_sec);
                free(TAKE_PTR(*errmsg));
                usleep(LOCK_POLL_USEC);
        }
}

/*
 * VIRTFORM_FAULT_POINT for crash tests: "libvirt-write:N" or "state-write:N"
 * kill the process after the Nth write of that kind, "intent-write:N" once the
 * Nth intent is durable, before its write; "state-fail:N" makes the Nth state
 * write fail instead; any other value names a point (rc_fault_point()).
 */
static int arm_fault(vf_controller *c) {
        const char *spec = c->opts.fault_point;
        unsigned n;
        char kind[16], what[8];

        if (!spec || sscanf(spec, "%15[a-z]-%7[a-z]:%u", kind, what, &n) != 3)
                return 0;
        if (n == 0)
                return -EINVAL;
        bool fail = strcmp(what, "fail") == 0;
        if (!fail && strcmp(what, "write") != 0)
                return -EINVAL;
        if (strcmp(kind, "state") == 0 && fail)
                state_fault_failing_write(c->store, n);
        else if (strcmp(kind, "state") == 0)
                state_fault_after_writes(c->store, n);
        else if (strcmp(kind, "libvirt") == 0 && !fail)
                c->rc.fault_after_libvirt_writes = n;
        else if (strcmp(kind, "intent") == 0 && !fail)
                c->rc.fault_after_intents = n;
        else
                return -EINVAL;
        return 0;
}

int vf_controller_reconnect(vf_controller *c, char **errmsg) {
        if (c->conn)
                virConnectClose(c->conn);
        c->conn = c->rc.conn = NULL;
        /* The new daemon may run another hypervisor build: ask again what domain type and machines it runs. */
        rc_context_forget_hypervisor(&c->rc);
        int r = open_hypervisor(c, errmsg);
        if (r >= 0)
                c->rc.conn = c->conn;
        return r;
}

int vf_controller_open_store(vf_controller *c, char **errmsg) {
        int r = open_store(c, errmsg);
        if (r < 0)
                return r;
        r = arm_fault(c);
        if (r < 0)
                return vf_error(errmsg, r, "invalid VIRTFORM_FAULT_POINT '%s'", c->opts.fault_point);
        c->rc.store = c->store;
        c->rc.instance_id = state_instance_id(c->store);
        return 0;
}

static void log_reconciler_warning(void *userdata, const char *message) {
        vf_log(userdata, VF_LOG_WARNING, "%s", message);
}

int vf_controller_open(vf_controller *c, const vf_options *opts, char **errmsg) {
        int r;

        *c = (vf_controller) { .opts = *opts, .log = stderr };
        /* recover opens the store once it knows what to fill it with: a failed recovery leaves none made. */
        r = opts->recover ? 0 : open_store(c, errmsg);
        if (r < 0)
                return r;
        r = open_hypervisor(c, errmsg);
        if (r < 0)
                return r;
        r = c->store ? arm_fault(c) : 0;
        if (r < 0)
                return vf_error(errmsg, r, "invalid VIRTFORM_FAULT_POINT '%s'", opts->fault_point);
        c->rc = (rc_context) {
                .conn = c->conn,
                .store = c->store,
                .instance_id = c->store ? state_instance_id(c->store) : NULL,
                .dry_run = opts->dry_run,
                .shutdown_timeout_sec = opts->shutdown_timeout_sec,
                .sysfs_root = opts->sysfs_root,
                .fault_point = opts->fault_point,
                .fault_after_libvirt_writes = c->rc.fault_after_libvirt_writes,
                .fault_after_intents = c->rc.fault_after_intents,
                .on_warning = log_reconciler_warning,
                .on_warning_userdata = c,
        };
        return 0;
}

void vf_controller_close(vf_controller *c) {
        if (c->graph) {
                graph_done(c->graph);
                free(c->graph);
        }
        rc_context_done(&c->rc);
        schema_set_free(c->desired);
        free(c->prune_held);
        vf_strv_free(c->dirs_seen);
        if (c->conn)
                virConnectClose(c->conn);
        state_close(c->store);
        *c = (vf_controller) {};
}
