/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the volume and cloud-init reconcilers share: whose a volume is, and which domains use it. */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

static bool attr_is(xmlNode *n, const char *name, const char *value) {
        xmlChar *v = n && value ? xmlGetProp(n, BAD_CAST name) : NULL;
        bool same = v && strcmp((const char *) v, value) == 0;

        xmlFree(v);
        return same;
}

int rc_disk_uses_volume(xmlDoc *doc, const void *what, bool *ret) {
        const rc_volume_use *u = what;
        xmlNode *devices = rc_xml_child(xmlDocGetRootElement(doc), "devices");

        *ret = false;
        for (xmlNode *disk = devices ? devices->children : NULL; disk && !*ret; disk = disk->next) {
                if (disk->type != XML_ELEMENT_NODE || xmlStrcmp(disk->name, BAD_CAST "disk") != 0)
                        continue;
                xmlNode *source = rc_xml_child(disk, "source");
                *ret = (attr_is(source, "pool", u->pool) && attr_is(source, "volume", u->name)) ||
                       attr_is(source, "file", u->path) || attr_is(source, "dev", u->path);
        }
        return 0;
}

const char *rc_storage_failure_reason(const char *fallback) {
        return rc_libvirt_no_space() ? "NoSpace" : rc_libvirt_unsupported() ? "NotSupported" : fallback;
}

int rc_storage_step_end(rc_context *ctx, const rc_request *req, rc_result *res, const char *volume, const char *what,
                        bool ok, const char *fallback_reason) {
        const char *reason = ok ? fallback_reason : rc_storage_failure_reason(fallback_reason);
        bool unsupported = !ok && strcmp(reason, "NotSupported") == 0;
        int r = rc_step_end(ctx, req, res, what, ok, reason);

        if (r >= 0 || !unsupported)
                return r;
        _cleanup_free_ char *uri = virConnectGetURI(ctx->conn);
        rc_result_set(res, RC_FAILED, false, "NotSupported",
                      "%s %s: the hypervisor %s cannot %s volumes; use one that can (qemu:///system)", what, volume,
                      uri ? uri : "in use", what);
        (void) rc_result_wait(res, RC_WAIT_CHANGE, NULL, 0);
        return r;
}

int rc_storage_made_unrecorded(rc_context *ctx, const rc_request *req, bool *ret) {
        static const char *const actions[] = { RC_STEP_CREATE_VOLUME, RC_STEP_DELETE_VOLUME, RC_STEP_FORGET };
        _cleanup_(state_event_freep) state_event *last = NULL;

        *ret = false;
        if (req->record && req->record->uuid)
                return 0;
        int r = state_event_newest(ctx->store, vf_kind_to_string(req->kind), req->name, actions, ELEMENTSOF(actions), NULL,
                                   &last);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (vf_streq_ptr(last->action, RC_STEP_CREATE_VOLUME))
                *ret = !vf_streq_ptr(last->outcome, "failed");
        else if (vf_streq_ptr(last->action, RC_STEP_DELETE_VOLUME))
                *ret = !vf_streq_ptr(last->outcome, "ok");
        return 0;
}
