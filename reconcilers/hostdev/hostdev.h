/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hostdev reconciler's one seam: the host it talks to, which a test replaces on a machine without SR-IOV. */
#pragma once

#include "reconcilers/hostdev/host.h"
#include "reconcilers/reconciler.h"

/*
 * From now on the hostdev reconciler of ctx sends its netlink requests to
 * netlink and its sysfs binding writes to sysfs (each NULL: the kernel's).
 * Both are copied.
 */
int rc_hostdev_use_host(rc_context *ctx, const hd_netlink_transport *netlink, const hd_sysfs_writer *sysfs);
