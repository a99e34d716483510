/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal to reconcilers/domain/: what the domain reconciler's files share. */
#pragma once

#include "reconcilers/object.h"

/*
 * Completes the desired document's disks where the file leaves something to
 * the host: the pool of a cloud-init seed's cdrom (from req->cloudinits), the
 * bus and name of a disk without a target, the format of a volume whose disk
 * gives none. Returns 0, 1 when res says why the domain cannot be defined
 * now (it waits for a seed or a volume), or a negative errno with res set.
 */
int rc_domain_complete_disks(rc_context *ctx, const rc_request *req, xmlDoc *desired, rc_result *res);
