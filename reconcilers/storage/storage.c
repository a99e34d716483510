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

int rc_storage_made_unrecorded(rc_context *ctx, const rc_request *req, bool *ret) {
        state_event *events = NULL;
        size_t n = 0;
        int r;

        *ret = false;
        if (req->record && req->record->uuid)
                return 0;
        r = state_event_list(ctx->store, vf_kind_to_string(req->kind), req->name, 0, &events, &n);
        if (r < 0)
                return r;
        for (size_t i = n; i > 0; i--) {
                const state_event *e = &events[i - 1];
                bool failed = vf_streq_ptr(e->outcome, "failed"), done = vf_streq_ptr(e->outcome, "ok");
                if (vf_streq_ptr(e->action, RC_STEP_CREATE_VOLUME))
                        *ret = !failed;
                else if (vf_streq_ptr(e->action, RC_STEP_DELETE_VOLUME))
                        *ret = !done;
                else if (!vf_streq_ptr(e->action, RC_STEP_FORGET))
                        continue;
                break;
        }
        state_event_list_free(events, n);
        return 0;
}
