/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fixture sysfs trees in the shapes the kernel uses, with real directories,
 * files and symlinks, for the SR-IOV topologies this machine lacks:
 *
 *   devices/pci0000:00/BDF/{driver -> bus/pci/drivers/DRV, driver_override,
 *                           physfn -> ../PF, virtfnN -> ../VF, net/IF/{phys_port_id,...}}
 *   bus/pci/devices/BDF -> devices/pci0000:00/BDF
 *   bus/pci/drivers/DRV/{bind,unbind}, bus/pci/drivers_probe
 *   class/net/IF -> devices/pci0000:00/BDF/net/IF
 */
#pragma once

#include "common/common.h"

typedef struct th_sysfs {
        char *root;
} th_sysfs;

th_sysfs *th_sysfs_new(void);
/* Removes the whole tree. */
void th_sysfs_free(th_sysfs *s);
DEFINE_POINTER_CLEANUP(th_sysfs, th_sysfs_free);

/* A PCI function bound to driver (NULL: none). */
void th_sysfs_add_device(th_sysfs *s, const char *bdf, const char *driver);
/* A VF of pf at index, bound to driver. */
void th_sysfs_add_vf(th_sysfs *s, const char *pf, int index, const char *vf, const char *driver);
/* A netdev of a device; phys_port_id / phys_port_name NULL: the file is absent. */
void th_sysfs_add_netdev(th_sysfs *s, const char *bdf, const char *ifname, const char *phys_port_id,
                         const char *phys_port_name);
/* What the kernel does when a driver binds: relinks driver, and a VF on vfio-pci loses its netdevs. */
void th_sysfs_set_driver(th_sysfs *s, const char *bdf, const char *driver);
void th_sysfs_remove_netdevs(th_sysfs *s, const char *bdf);
/* Contents of a file below the root ("" when empty); the caller frees. */
char *th_sysfs_read(th_sysfs *s, const char *relative);
