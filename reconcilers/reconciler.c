/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "reconcilers/reconciler.h"

#include <stdarg.h>

static const char *const call_names[_RC_CALL_MAX] = {
        [RC_CALL_LIST] = "list",
        [RC_CALL_GET_XML] = "get-xml",
        [RC_CALL_GET_INFO] = "get-info",
        [RC_CALL_DOWNLOAD] = "download",
        [RC_CALL_DEFINE] = "define",
        [RC_CALL_UNDEFINE] = "undefine",
        [RC_CALL_START] = "start",
        [RC_CALL_SHUTDOWN] = "shutdown",
        [RC_CALL_DESTROY] = "destroy",
        [RC_CALL_SET_AUTOSTART] = "set-autostart",
        [RC_CALL_BUILD] = "build",
        [RC_CALL_CREATE_VOLUME] = "create-volume",
        [RC_CALL_UPLOAD] = "upload",
        [RC_CALL_RESIZE] = "resize",
        [RC_CALL_DELETE_VOLUME] = "delete-volume",
};

const char *rc_call_to_string(rc_call call) {
        return call_names[call];
}

static unsigned sum_calls(const rc_counters *c, rc_call from, rc_call to) {
        unsigned n = 0;
        for (rc_call i = from; i < to; i++)
                n += c->calls[i];
        return n;
}

unsigned rc_counters_reads(const rc_counters *c) {
        return sum_calls(c, 0, RC_CALL_FIRST_WRITE);
}

unsigned rc_counters_writes(const rc_counters *c) {
        return sum_calls(c, RC_CALL_FIRST_WRITE, _RC_CALL_MAX);
}

char *rc_counters_format_writes(const rc_counters *c) {
        vf_buf b = {};

        for (rc_call i = RC_CALL_FIRST_WRITE; i < _RC_CALL_MAX; i++)
                if (c->calls[i] > 0)
                        vf_buf_printf(&b, "%s%s %u", b.len ? ", " : "", call_names[i], c->calls[i]);
        if (b.len == 0)
                vf_buf_puts(&b, "none");
        return vf_buf_steal(&b);
}

static const char *const outcome_names[_RC_OUTCOME_MAX] = {
        [RC_UNCHANGED] = "unchanged",
        [RC_CREATED] = "created",
        [RC_UPDATED] = "updated",
        [RC_DELETED] = "deleted",
        [RC_KEPT] = "kept",
        [RC_WAITING] = "waiting",
        [RC_FAILED] = "failed",
};

const char *rc_outcome_to_string(rc_outcome outcome) {
        return outcome_names[outcome];
}

void rc_xml_lines_done(rc_xml_lines *l) {
        vf_strv_free(l->lines);
        vf_strv_free(l->paths);
        *l = (rc_xml_lines) {};
}

void rc_result_done(rc_result *res) {
        free(res->reason);
        free(res->message);
        free(res->restart_pending);
        free(res->drifted);
        free(res->uuid);
        free(res->applied_xml_hash);
        free(res->baseline_xml);
        free(res->applied_desired_xml);
        free(res->applied_desired_hash);
        vf_strv_free(res->steps);
        rc_xml_lines_done(&res->plan_desired);
        rc_xml_lines_done(&res->plan_current);
        free(res->shutting_down);
        free(res->wait.target);
        *res = (rc_result) {};
}

void rc_caused_add(rc_caused *to, const rc_caused *from) {
        for (size_t i = 0; i < RC_LIFECYCLE_EVENTS; i++) {
                unsigned sum = to->counts[i] + from->counts[i];
                to->counts[i] = sum < UINT8_MAX ? (uint8_t) sum : UINT8_MAX;
        }
        to->also |= from->also;
}

void rc_result_set(rc_result *res, rc_outcome outcome, bool ready, const char *reason, const char *fmt, ...) {
        va_list ap;
        char *message = NULL;

        va_start(ap, fmt);
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        va_end(ap);
        res->outcome = outcome;
        res->ready = ready;
        free(res->reason);
        res->reason = strdup(reason);
        free(res->message);
        res->message = message;
}

int rc_result_wait(rc_result *res, rc_wait_kind kind, const char *target, int64_t deadline_usec) {
        char *copy = target ? strdup(target) : NULL;

        if (target && !copy)
                return -ENOMEM;
        free(res->wait.target);
        res->wait = (rc_wait) { .kind = kind, .target = copy, .deadline_usec = deadline_usec };
        return 0;
}

void rc_marked_object_list_free(rc_marked_object *objs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(objs[i].name);
                rc_owner_done(&objs[i].owner);
                free(objs[i].uuid);
                free(objs[i].baseline);
                vf_strv_free(objs[i].hostdevs);
        }
        free(objs);
}

void rc_warn(const rc_context *ctx, const char *fmt, ...) {
        _cleanup_free_ char *message = NULL;
        va_list ap;

        if (!ctx->on_warning)
                return;
        va_start(ap, fmt);
        int r = vasprintf(&message, fmt, ap);
        va_end(ap);
        ctx->on_warning(ctx->on_warning_userdata, r < 0 ? "out of memory" : message);
}

bool rc_interrupted(const rc_context *ctx) {
        return ctx->interrupted && ctx->interrupted(ctx->interrupted_userdata);
}

const rc_ops *rc_ops_for_kind(vf_kind kind) {
        switch (kind) {
        case VF_KIND_NETWORK:
                return &rc_network_ops;
        case VF_KIND_DOMAIN:
                return &rc_domain_ops;
        case VF_KIND_HOSTDEV:
                return &rc_hostdev_ops;
        case VF_KIND_POOL:
                return &rc_pool_ops;
        case VF_KIND_VOLUME:
                return &rc_volume_ops;
        case VF_KIND_CLOUDINIT:
                return &rc_cloudinit_ops;
        default:
                return NULL;
        }
}
