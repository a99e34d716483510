/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the files of the host layer share and the reconciler does not need. */
#pragma once

#include "reconcilers/hostdev/host.h"

/* The resolved sysfs directory of a PCI device: -EINVAL for a bad bdf, -ENODEV when it does not exist. */
int hd_device_dir(const char *sysfs_root, const char *bdf, char **ret);
/* DIR/attr for the device's resolved directory DIR; the same errors. */
int hd_device_attr_path(const char *sysfs_root, const char *bdf, const char *attr, char **ret);

/* A request about one link, addressed by name, that asks for an ACK. */
int hd_link_msg_new(int type, const char *ifname, struct nl_msg **ret);
/* Sends req through the transport; reply may be NULL when no answer is wanted. */
int hd_netlink_request(hd_netlink *nl, struct nl_msg *req, struct nl_msg **reply);
