/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Moving a PCI device between drivers: driver_override, unbind, drivers_probe. */
#include "reconcilers/hostdev/host-internal.h"

#include <fcntl.h>

/* sysfs takes an attribute in one write(): a short write means the kernel refused the rest. */
static int write_attr(const char *path, const char *value) {
        /* No O_CREAT: a missing attribute means the kernel lacks the feature, not a file to make. */
        _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        size_t len = strlen(value);

        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, value, len);
        if (n < 0)
                return -errno;
        return (size_t) n == len ? 0 : -EIO;
}

static int write_via(const hd_sysfs_writer *w, const char *path, const char *value) {
        return w ? w->write(w->userdata, path, value) : write_attr(path, value);
}

static int write_device_attr(const hd_sysfs_writer *w, const char *sysfs_root, const char *bdf, const char *attr,
                             const char *value) {
        _cleanup_free_ char *path = NULL;

        int r = hd_device_attr_path(sysfs_root, bdf, attr, &path);
        return r < 0 ? r : write_via(w, path, value);
}

int hd_write_driver_override(const hd_sysfs_writer *w, const char *sysfs_root, const char *bdf, const char *driver) {
        /* sysfs drops an empty write before the driver sees it; a lone newline is what clears the override. */
        return write_device_attr(w, sysfs_root, bdf, "driver_override", driver[0] ? driver : "\n");
}

int hd_unbind(const hd_sysfs_writer *w, const char *sysfs_root, const char *bdf) {
        _cleanup_free_ char *driver = NULL;

        int r = hd_device_driver(sysfs_root, bdf, &driver);
        if (r < 0 || !driver)
                return r;
        return write_device_attr(w, sysfs_root, bdf, "driver/unbind", bdf);
}

int hd_drivers_probe(const hd_sysfs_writer *w, const char *sysfs_root, const char *bdf) {
        _cleanup_free_ char *dir = NULL, *path = NULL;

        /* Checked first so that a missing device reads -ENODEV, as for the other writes. */
        int r = hd_device_dir(sysfs_root, bdf, &dir);
        if (r < 0)
                return r;
        path = vf_printf("%s/bus/pci/drivers_probe", sysfs_root);
        if (!path)
                return -ENOMEM;
        return write_via(w, path, bdf);
}
