/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PCI devices in sysfs: their addresses, directories and drivers. */
#include "reconcilers/hostdev/host-internal.h"

#include <ctype.h>
#include <limits.h>

static bool is_lower_hex(char c) {
        return isdigit((unsigned char) c) || (c >= 'a' && c <= 'f');
}

bool hd_bdf_is_valid(const char *s) {
        /* The address comes from user files and becomes a path: accept the canonical form only. */
        static const char shape[] = "xxxx:xx:xx.f";

        if (!s || strlen(s) != HD_BDF_LEN)
                return false;
        for (size_t i = 0; i < HD_BDF_LEN; i++) {
                bool ok = shape[i] == 'x' ? is_lower_hex(s[i]) :
                          shape[i] == 'f' ? s[i] >= '0' && s[i] <= '7' :
                          s[i] == shape[i];
                if (!ok)
                        return false;
        }
        return true;
}

int hd_device_dir(const char *sysfs_root, const char *bdf, char **ret) {
        if (!hd_bdf_is_valid(bdf))
                return -EINVAL;

        _cleanup_free_ char *link = vf_printf("%s/bus/pci/devices/%s", sysfs_root, bdf);
        if (!link)
                return -ENOMEM;
        char *dir = realpath(link, NULL);
        if (!dir)
                return errno == ENOENT || errno == ENOTDIR ? -ENODEV : -errno;
        *ret = dir;
        return 0;
}

int hd_device_attr_path(const char *sysfs_root, const char *bdf, const char *attr, char **ret) {
        _cleanup_free_ char *dir = NULL;

        int r = hd_device_dir(sysfs_root, bdf, &dir);
        if (r < 0)
                return r;
        *ret = vf_printf("%s/%s", dir, attr);
        return *ret ? 0 : -ENOMEM;
}

int hd_device_driver(const char *sysfs_root, const char *bdf, char **ret) {
        _cleanup_free_ char *link = NULL;
        char target[PATH_MAX];

        int r = hd_device_attr_path(sysfs_root, bdf, "driver", &link);
        if (r < 0)
                return r;
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0) {
                if (errno != ENOENT)
                        return -errno;
                *ret = NULL;
                return 0;
        }
        target[n] = 0;
        const char *slash = strrchr(target, '/');
        char *name = strdup(slash ? slash + 1 : target);
        if (!name)
                return -ENOMEM;
        *ret = name;
        return 0;
}

int hd_read_driver_override(const char *sysfs_root, const char *bdf, char **ret) {
        _cleanup_free_ char *path = NULL, *value = NULL;

        int r = hd_device_attr_path(sysfs_root, bdf, "driver_override", &path);
        if (r < 0)
                return r;
        r = vf_read_file(path, 256, &value, NULL);
        if (r < 0)
                return r;
        value[strcspn(value, "\n")] = 0;
        *ret = value[0] && strcmp(value, "(null)") != 0 ? TAKE_PTR(value) : NULL;
        return 0;
}
