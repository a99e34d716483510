/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The host layer of the hostdev reconciler: what sysfs and rtnetlink say about
 * an SR-IOV VF, and the few writes that move it between drivers or configure it
 * through its PF. docs/sriov.md is the specification.
 *
 * Every sysfs function takes the sysfs root ("/sys" on a host, a fixture tree
 * in tests). Every netlink request goes through one transport, the kernel or a
 * fake, so the reconciler can be tested on a machine without SR-IOV.
 *
 * Nothing here prints: functions return 0 or a negative errno.
 */
#pragma once

#include <netlink/msg.h>

#include "common/common.h"

#define HD_BDF_LEN 12 /* "0000:3b:02.1" */
#define HD_MAC_LEN 6

/* True for a canonical PCI address: [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}.[0-7]. */
bool hd_bdf_is_valid(const char *s);

/* ---- resolution (sysfs.c) ------------------------------------------------ */

/* How the PF netdev of a VF was chosen. */
typedef enum hd_method {
        HD_METHOD_NONE,           /* not a VF: there is no PF to choose */
        HD_METHOD_PHYS_PORT_ID,   /* the VF netdev's phys_port_id matched one PF netdev */
        HD_METHOD_PHYS_PORT_NAME, /* skipping switchdev representors left exactly one PF netdev */
        HD_METHOD_FIRST,          /* the first remaining PF netdev, sorted by name */
        HD_METHOD_RECORDED,       /* the VF had no netdev; an earlier resolution was reused */
        _HD_METHOD_MAX,
} hd_method;

/* "none", "phys_port_id", "phys_port_name", "first", "recorded". */
const char *hd_method_to_string(hd_method m);

/* What an earlier resolution stored while the VF still had its netdev (the vfio-pci trap, sriov.md step 6). */
typedef struct hd_recorded {
        char pf[HD_BDF_LEN + 1];
        char *pf_netdev;
        int vf_index;
        char *phys_port_id; /* NULL: no id */
} hd_recorded;

typedef struct hd_resolution {
        char device[HD_BDF_LEN + 1];
        bool is_vf;         /* false: a plain PCI device (fine for passthrough); the PF fields are empty */
        char pf[HD_BDF_LEN + 1];
        char *pf_netdev;
        int vf_index;       /* -1 when not a VF */
        char *vf_netdev;    /* NULL when the VF is on vfio-pci or no driver */
        char *phys_port_id; /* the VF netdev's, or the recorded one; NULL: no id */
        char *driver;       /* the device's current driver, NULL when unbound */
        hd_method method;
} hd_resolution;

void hd_resolution_done(hd_resolution *r);

/*
 * Resolves bdf under sysfs_root. 0: resolved (is_vf says whether it is a VF).
 * On error *errmsg (when errmsg is not NULL) names the device and what to do:
 *   -EINVAL   bdf is not a canonical PCI address
 *   -ENODEV   no such PCI device
 *   -ENXIO    the VF is missing from its PF's virtfnN links
 *   -ENOLINK  the PF has no netdev (empty or missing net/, or only representors)
 *   -ENOTUNIQ the VF has no netdev, no usable record, and the PF has more than one candidate netdev
 *   others    read errors (-EIO, -EACCES, -ENOMEM...)
 * recorded may be NULL. It is used only when the VF has no netdev and it names
 * the PF, VF index and a PF netdev that sysfs still shows; otherwise it is stale.
 */
int hd_resolve(const char *sysfs_root, const char *bdf, const hd_recorded *recorded, hd_resolution *ret, char **errmsg);

/* ---- drivers (pci.c, bind.c), sriov.md "Binding" ------------------------- */

/*
 * Where the binding writes go. The kernel acts on each write to these
 * attributes before write() returns; a fixture tree has no kernel behind it,
 * so a test puts its emulation here. NULL: the files themselves.
 */
typedef struct hd_sysfs_writer {
        /* Writes value to the attribute at path in one write(); 0 or the kernel's negative errno. */
        int (*write)(void *userdata, const char *path, const char *value);
        void *userdata;
} hd_sysfs_writer;

/* Each returns -EINVAL for a bad bdf and -ENODEV when the device does not exist. */

/* *ret is NULL when the device is bound to no driver. */
int hd_device_driver(const char *sysfs_root, const char *bdf, char **ret);
/* *ret is NULL when no override is set (the kernel shows "(null)"). */
int hd_read_driver_override(const char *sysfs_root, const char *bdf, char **ret);

/*
 * The three writes, in this order, move a device to vfio-pci ("vfio-pci") or
 * back (""). "" clears the override: it is written as a lone newline, as the
 * kernel never sees an empty write.
 */
int hd_write_driver_override(const hd_sysfs_writer *w, const char *sysfs_root, const char *bdf, const char *driver);
/* 0 without writing anything when the device is bound to no driver. */
int hd_unbind(const hd_sysfs_writer *w, const char *sysfs_root, const char *bdf);
int hd_drivers_probe(const hd_sysfs_writer *w, const char *sysfs_root, const char *bdf);

/* ---- netlink (netlink.c, vf-config.c) ------------------------------------ */

DEFINE_POINTER_CLEANUP(struct nl_msg, nlmsg_free);

typedef struct hd_netlink hd_netlink;

/* A transport that replaces the kernel, for tests (this machine has no SR-IOV). */
typedef struct hd_netlink_transport {
        /*
         * Handles one request (borrowed); returns 0 or a negative errno as the
         * kernel's ACK would. reply is NULL when no answer is wanted
         * (RTM_SETLINK); otherwise, on success, *reply is set to the
         * RTM_NEWLINK answer, which the caller frees with nlmsg_free().
         */
        int (*request)(void *userdata, struct nl_msg *req, struct nl_msg **reply);
        void *userdata;
} hd_netlink_transport;

/* A rtnetlink socket in the current network namespace. */
int hd_netlink_open(hd_netlink **ret);
/* t is copied. */
int hd_netlink_open_with_transport(const hd_netlink_transport *t, hd_netlink **ret);
void hd_netlink_close(hd_netlink *nl);
DEFINE_POINTER_CLEANUP(hd_netlink, hd_netlink_close);

/*
 * Admin state (IFF_UP) and carrier of ifname, with one RTM_GETLINK by name.
 * -ENODEV when no link of that name exists in the namespace.
 */
int hd_link_state(hd_netlink *nl, const char *ifname, bool *admin_up, bool *carrier);

/* Sets the MAC address of a link (RTM_SETLINK with IFLA_ADDRESS), e.g. a VF's own netdev. */
int hd_link_set_address(hd_netlink *nl, const char *ifname, const uint8_t *mac);

typedef struct hd_vf_config {
        uint8_t mac[HD_MAC_LEN];
        int vlan; /* 0: none */
} hd_vf_config;

/*
 * Current config of a VF: RTM_GETLINK on the PF with IFLA_EXT_MASK =
 * RTEXT_FILTER_VF, matching IFLA_VF_INFO by index. -ENOENT if the reply has no
 * such VF.
 */
int hd_vf_get(hd_netlink *nl, const char *pf_netdev, int vf_index, hd_vf_config *ret);

/*
 * Sets the MAC (NULL: leave) and/or VLAN (-1: leave; 0 clears) of a VF through
 * its PF, as two separate requests so that each quirk is told apart:
 *  - an all-zero MAC refused with EINVAL is retried once as 02:00:00:00:00:00;
 *  - clearing the VLAN refused with EPERM is success.
 * Otherwise returns the kernel's errno: -EOPNOTSUPP, -ENODEV, -EBUSY or -EAGAIN
 * for a VF still in reset... The MAC may be set when the VLAN then fails.
 */
int hd_vf_set(hd_netlink *nl, const char *pf_netdev, int vf_index, const uint8_t *mac, int vlan);

/* Whether a VF holding the admin MAC held has mac: an all-zero mac may be held as its stand-in. */
bool hd_vf_mac_holds(const uint8_t *held, const uint8_t *mac);

/*
 * The RTM_SETLINK request of hd_vf_set(), exposed so tests decode its bytes.
 * The PF is addressed by name (IFLA_IFNAME, ifi_index 0), as RTM_GETLINK is:
 * no separate ifindex lookup, so no race with a rename in between.
 */
int hd_vf_build_setlink(const char *pf_netdev, int vf_index, const uint8_t *mac, int vlan, struct nl_msg **ret);

/* Parses an RTM_NEWLINK message for one VF's config; -ENOENT when it has no such VF, -EBADMSG when malformed. */
int hd_vf_parse_link(struct nlmsghdr *nlh, int vf_index, hd_vf_config *ret);
