/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PLACEHOLDER: replaced by the cloudinit reconciler. */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

static int cloudinit_apply(rc_context *ctx, const rc_request *req, rc_result *res) {
        rc_result_set(res, RC_FAILED, false, "NotSupported", "not built yet");
        return 0;
}

static int cloudinit_remove(rc_context *ctx, const rc_request *req, rc_result *res) {
        res->forget = true;
        return 0;
}

const rc_ops rc_cloudinit_ops = {
        .kind = VF_KIND_CLOUDINIT,
        .apply = cloudinit_apply,
        .remove = cloudinit_remove,
};
