/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Resolving a PCI device to its PF, PF netdev and VF index from sysfs alone (sriov.md, "Resolving"). */
#include "reconcilers/hostdev/host-internal.h"

#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>

/* sysfs attributes are at most a page. */
#define ATTR_MAX_SIZE 4096

static const char *const method_names[_HD_METHOD_MAX] = {
        [HD_METHOD_NONE] = "none",
        [HD_METHOD_PHYS_PORT_ID] = "phys_port_id",
        [HD_METHOD_PHYS_PORT_NAME] = "phys_port_name",
        [HD_METHOD_FIRST] = "first",
        [HD_METHOD_RECORDED] = "recorded",
};

const char *hd_method_to_string(hd_method m) {
        return (unsigned) m < _HD_METHOD_MAX ? method_names[m] : "unknown";
}

void hd_resolution_done(hd_resolution *r) {
        free(r->pf_netdev);
        free(r->vf_netdev);
        free(r->phys_port_id);
        free(r->driver);
        *r = (hd_resolution) { .vf_index = -1 };
}

static int fail_read(char **errmsg, int r, const char *sysfs_root, const char *bdf) {
        return vf_error(errmsg, r, "cannot read the sysfs entries of PCI device %s under %s: %s; "
                    "check that sysfs is mounted there and that virtform runs as root",
                    bdf, sysfs_root, strerror(-r));
}

/* ---- sysfs reads ----------------------------------------------------------- */

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The entries of a directory sorted by name, so results never depend on readdir order; NULL when missing or empty. */
static int list_sorted(const char *path, char ***ret) {
        _cleanup_(closedirp) DIR *d = opendir(path);
        _cleanup_strv_free_ char **names = NULL;

        if (!d) {
                if (errno != ENOENT)
                        return -errno;
                *ret = NULL;
                return 0;
        }
        errno = 0;
        for (struct dirent *de; (de = readdir(d)); errno = 0) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                int r = vf_strv_push(&names, de->d_name);
                if (r < 0)
                        return r;
        }
        if (errno != 0)
                return -errno;
        if (names)
                qsort(names, vf_strv_length(names), sizeof(char *), compare_names);
        *ret = TAKE_PTR(names);
        return 0;
}

/* A netdev attribute such as phys_port_id, without its newline; *ret NULL when the netdev has none. */
static int read_netdev_attr(const char *sysfs_root, const char *ifname, const char *attr, char **ret) {
        _cleanup_free_ char *path = vf_printf("%s/class/net/%s/%s", sysfs_root, ifname, attr), *data = NULL;
        size_t len;

        if (!path)
                return -ENOMEM;
        int r = vf_read_file(path, ATTR_MAX_SIZE, &data, &len);
        /* Drivers without the callback fail the read with EOPNOTSUPP; older kernels lack the file. */
        if (r == -ENOENT || r == -EOPNOTSUPP) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return r;
        if (len > 0 && data[len - 1] == '\n')
                data[--len] = 0;
        *ret = len > 0 ? TAKE_PTR(data) : NULL;
        return 0;
}

/* The PF's device directory, NULL when the device is not a VF. */
static int resolve_physfn(const char *dev, char **ret) {
        _cleanup_free_ char *link = vf_printf("%s/physfn", dev);

        if (!link)
                return -ENOMEM;
        char *pf_dir = realpath(link, NULL);
        if (!pf_dir && errno != ENOENT)
                return -errno;
        *ret = pf_dir;
        return 0;
}

/* The N whose virtfnN resolves to dev: indexes need not follow function numbers. -ENXIO when none does. */
static int find_vf_index(const char *pf_dir, const char *dev, int *ret) {
        for (int n = 0;; n++) {
                _cleanup_free_ char *link = vf_printf("%s/virtfn%d", pf_dir, n), *target = NULL;

                if (!link)
                        return -ENOMEM;
                target = realpath(link, NULL);
                if (!target)
                        return errno == ENOENT ? -ENXIO : -errno;
                if (strcmp(target, dev) == 0) {
                        *ret = n;
                        return 0;
                }
        }
}

/* The VF's own netdev, NULL while it is on vfio-pci or unbound. */
static int read_vf_netdev(const char *dev, char **ret) {
        _cleanup_free_ char *net = vf_printf("%s/net", dev);
        _cleanup_strv_free_ char **names = NULL;

        if (!net)
                return -ENOMEM;
        int r = list_sorted(net, &names);
        if (r < 0)
                return r;
        /* A VF carries a single port; sorting keeps the answer stable were a driver ever to show more. */
        *ret = names ? strdup(names[0]) : NULL;
        return names && !*ret ? -ENOMEM : 0;
}

/* ---- choosing the PF netdev ------------------------------------------------ */

static const char *skip_digits(const char *s) {
        const char *p = s;

        while (isdigit((unsigned char) *p))
                p++;
        return p > s ? p : NULL;
}

/* ^p[0-9]+$ or ^p[0-9]+s[0-9]+$: a physical port, possibly split. pf0vf1, pf0 and c1pf0vf2 are representors. */
static bool is_physical_port_name(const char *name) {
        const char *p = name[0] == 'p' ? skip_digits(name + 1) : NULL;

        if (p && *p == 's')
                p = skip_digits(p + 1);
        return p && *p == 0;
}

/* The PF's netdevs without the switchdev representors that kernels since 5.8 list beside them. */
static int drop_representors(const char *sysfs_root, char **entries, char ***ret) {
        _cleanup_strv_free_ char **kept = NULL;

        for (size_t i = 0; entries && entries[i]; i++) {
                _cleanup_free_ char *port_name = NULL;

                int r = read_netdev_attr(sysfs_root, entries[i], "phys_port_name", &port_name);
                if (r < 0)
                        return r;
                if (port_name && !is_physical_port_name(port_name))
                        continue;
                r = vf_strv_push(&kept, entries[i]);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(kept);
        return 0;
}

/* The candidate whose phys_port_id equals id (a dual-port function's port), NULL when none does. */
static int match_phys_port_id(const char *sysfs_root, char **candidates, const char *id, const char **ret) {
        for (size_t i = 0; candidates[i]; i++) {
                _cleanup_free_ char *candidate_id = NULL;

                int r = read_netdev_attr(sysfs_root, candidates[i], "phys_port_id", &candidate_id);
                if (r < 0)
                        return r;
                if (candidate_id && strcmp(candidate_id, id) == 0) {
                        *ret = candidates[i];
                        return 0;
                }
        }
        *ret = NULL;
        return 0;
}

static int choose(hd_resolution *res, const char *pf_netdev, hd_method method) {
        res->pf_netdev = strdup(pf_netdev);
        if (!res->pf_netdev)
                return -ENOMEM;
        res->method = method;
        return 0;
}

/* A record is trusted only while sysfs still agrees with it: same PF, same index, its PF netdev still there. */
static bool record_applies(const hd_recorded *rec, const hd_resolution *res, char **candidates) {
        return rec && strcmp(rec->pf, res->pf) == 0 && rec->vf_index == res->vf_index &&
               rec->pf_netdev && vf_strv_contains(candidates, rec->pf_netdev);
}

static int use_record(hd_resolution *res, const hd_recorded *rec) {
        if (rec->phys_port_id) {
                res->phys_port_id = strdup(rec->phys_port_id);
                if (!res->phys_port_id)
                        return -ENOMEM;
        }
        return choose(res, rec->pf_netdev, HD_METHOD_RECORDED);
}

static int fail_ambiguous(char **errmsg, const hd_resolution *res, char **candidates) {
        vf_buf names = {};

        for (size_t i = 0; candidates[i]; i++)
                vf_buf_printf(&names, "%s%s", i > 0 ? ", " : "", candidates[i]);
        _cleanup_free_ char *list = vf_buf_steal(&names);
        return vf_error(errmsg, -ENOTUNIQ,
                    "VF %s is ambiguous: its PF %s has several network interfaces (%s), the VF has none of its "
                    "own while bound to %s, and virtform has no record of it; let virtform see the VF once while "
                    "it is bound to its network driver: give it back to that driver (clear its driver_override, "
                    "then write %s to /sys/bus/pci/drivers_probe) and apply again",
                    res->device, res->pf, list ? list : "several", res->driver ? res->driver : "no driver",
                    res->device);
}

static int choose_pf_netdev(const char *sysfs_root, const char *pf_dir, const hd_recorded *recorded,
                            hd_resolution *res, char **errmsg) {
        _cleanup_strv_free_ char **entries = NULL, **candidates = NULL;
        _cleanup_free_ char *net = vf_printf("%s/net", pf_dir);
        const char *match = NULL;

        if (!net)
                return fail_read(errmsg, -ENOMEM, sysfs_root, res->pf);
        int r = list_sorted(net, &entries);
        if (r >= 0)
                r = drop_representors(sysfs_root, entries, &candidates);
        if (r >= 0 && candidates && res->phys_port_id)
                r = match_phys_port_id(sysfs_root, candidates, res->phys_port_id, &match);
        if (r < 0)
                return fail_read(errmsg, r, sysfs_root, res->pf);

        if (!candidates)
                return vf_error(errmsg, -ENOLINK, "PF %s of VF %s has no network interface%s; bind the PF to its "
                            "network driver and apply again",
                            res->pf, res->device, entries ? " besides switchdev representors" : "");
        if (match)
                return choose(res, match, HD_METHOD_PHYS_PORT_ID);

        size_t n = vf_strv_length(candidates);
        /* The vfio-pci trap: without the VF's netdev there is no phys_port_id to match, so never guess. */
        if (!res->vf_netdev) {
                if (record_applies(recorded, res, candidates))
                        return use_record(res, recorded);
                if (n > 1)
                        return fail_ambiguous(errmsg, res, candidates);
        }
        /* Skipping representors decided only if it left a single netdev out of several. */
        return choose(res, candidates[0],
                      n == 1 && vf_strv_length(entries) > 1 ? HD_METHOD_PHYS_PORT_NAME : HD_METHOD_FIRST);
}

/* ---- resolution ------------------------------------------------------------ */

static int resolve_vf(const char *sysfs_root, const char *dev, const char *pf_dir, const hd_recorded *recorded,
                      hd_resolution *res, char **errmsg) {
        /* realpath() made pf_dir absolute: it has a slash. */
        const char *pf_bdf = strrchr(pf_dir, '/') + 1;

        if (!hd_bdf_is_valid(pf_bdf))
                return vf_error(errmsg, -EIO, "the physfn link of VF %s leads to %s, which is not a PCI address "
                            "virtform can handle; report this with the output of 'ls -l /sys/bus/pci/devices/%s/'",
                            res->device, pf_dir, res->device);
        res->is_vf = true;
        strcpy(res->pf, pf_bdf);

        int r = find_vf_index(pf_dir, dev, &res->vf_index);
        if (r == -ENXIO)
                return vf_error(errmsg, r, "VF %s is not among the virtfn links of its PF %s; its VFs are probably "
                            "being recreated: virtform retries once sriov_numvfs of the PF is stable",
                            res->device, res->pf);
        if (r >= 0)
                r = read_vf_netdev(dev, &res->vf_netdev);
        if (r >= 0 && res->vf_netdev)
                r = read_netdev_attr(sysfs_root, res->vf_netdev, "phys_port_id", &res->phys_port_id);
        if (r < 0)
                return fail_read(errmsg, r, sysfs_root, res->device);
        return choose_pf_netdev(sysfs_root, pf_dir, recorded, res, errmsg);
}

int hd_resolve(const char *sysfs_root, const char *bdf, const hd_recorded *recorded, hd_resolution *ret,
               char **errmsg) {
        _cleanup_(hd_resolution_done) hd_resolution res = { .vf_index = -1 };
        _cleanup_free_ char *dev = NULL, *pf_dir = NULL;

        int r = hd_device_dir(sysfs_root, bdf, &dev);
        if (r == -EINVAL)
                return vf_error(errmsg, r, "'%s' is not a PCI address: write it as domain:bus:slot.function in "
                            "lower-case hex, e.g. 0000:3b:02.1", bdf);
        if (r == -ENODEV)
                return vf_error(errmsg, r, "PCI device %s does not exist on this host; check the address with "
                            "'lspci -D', and for a VF that its PF has created it (sriov_numvfs)", bdf);
        if (r < 0)
                return fail_read(errmsg, r, sysfs_root, bdf);

        strcpy(res.device, bdf);
        r = hd_device_driver(sysfs_root, bdf, &res.driver);
        if (r >= 0)
                r = resolve_physfn(dev, &pf_dir);
        if (r < 0)
                return fail_read(errmsg, r, sysfs_root, bdf);
        if (pf_dir) {
                r = resolve_vf(sysfs_root, dev, pf_dir, recorded, &res, errmsg);
                if (r < 0)
                        return r;
        }
        *ret = res;
        res = (hd_resolution) {};
        return 0;
}
