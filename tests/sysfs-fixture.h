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
 *
 * th_sysfs_kernel_write() stands in for the kernel behind the binding
 * attributes (driver_override, DRV/unbind, drivers_probe): a test hands it to
 * the code under test as its sysfs writer. What the "kernel" remembers (each
 * device's native driver, the netdevs of an unbound device, a log of every
 * write) lives in files beside the tree, so a forked child's writes are seen by
 * its parent.
 */
#pragma once

#include "common/common.h"

/* The MAC a netdev comes back with when its native driver takes the device back. */
#define TH_SYSFS_FRESH_MAC "02:00:00:00:0f:01"

typedef struct th_sysfs {
        char *dir;    /* holds both below */
        char *root;   /* the sysfs tree */
        char *kernel; /* what the emulated kernel remembers */
} th_sysfs;

th_sysfs *th_sysfs_new(void);
/* Removes the whole tree. */
void th_sysfs_free(th_sysfs *s);
DEFINE_POINTER_CLEANUP(th_sysfs, th_sysfs_free);

/* A PCI function bound to driver (NULL: none); driver is also its native one unless it is vfio-pci. */
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

/* The driver the kernel matches by ID when nothing overrides it (NULL: none). */
void th_sysfs_set_native_driver(th_sysfs *s, const char *bdf, const char *driver);
/* A loaded driver (vfio-pci is loaded from the start); removing it is unloading the module. */
void th_sysfs_add_driver(th_sysfs *s, const char *driver);
void th_sysfs_remove_driver(th_sysfs *s, const char *driver);
/*
 * With hold, a native driver that takes the device back makes its netdevs
 * only when the hold is lifted, as a driver still probing would.
 */
void th_sysfs_hold_netdevs(th_sysfs *s, const char *bdf, bool hold);
/* The driver a device is bound to now (NULL: none); the caller frees. */
char *th_sysfs_driver(th_sysfs *s, const char *bdf);

/*
 * An hd_sysfs_writer's write (userdata: the th_sysfs): does what the kernel does
 * on a write to driver_override, DRV/unbind or drivers_probe, and logs it.
 */
int th_sysfs_kernel_write(void *userdata, const char *path, const char *value);
/* Every write so far, one "ATTRIBUTE VALUE" line each (ATTRIBUTE relative to the root); the caller frees. */
char *th_sysfs_write_log(th_sysfs *s);
/* How many logged writes went to an attribute whose path ends in suffix. */
unsigned th_sysfs_count_writes(th_sysfs *s, const char *suffix);
