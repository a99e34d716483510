/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PLACEHOLDER: replaced by the pool reconciler. */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

static int pool_apply(rc_context *ctx, const rc_request *req, rc_result *res) {
        rc_result_set(res, RC_FAILED, false, "NotSupported", "not built yet");
        return 0;
}

static int pool_remove(rc_context *ctx, const rc_request *req, rc_result *res) {
        res->forget = true;
        return 0;
}

const rc_ops rc_pool_ops = {
        .kind = VF_KIND_POOL,
        .apply = pool_apply,
        .remove = pool_remove,
};
