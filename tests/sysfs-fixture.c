/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests/sysfs-fixture.h"

#include <sys/stat.h>

#include "tests/helpers.h"

static char *path_of(const th_sysfs *s, const char *fmt, ...) _printf_(2, 3);

static char *path_of(const th_sysfs *s, const char *fmt, ...) {
        _cleanup_free_ char *rel = NULL;
        va_list ap;

        va_start(ap, fmt);
        assert_true(vasprintf(&rel, fmt, ap) >= 0);
        va_end(ap);
        char *p = vf_printf("%s/%s", s->root, rel);
        assert_non_null(p);
        return p;
}

static void make_dirs(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        for (char *p = copy + 1; *p; p++)
                if (*p == '/') {
                        *p = 0;
                        assert_true(mkdir(copy, 0755) == 0 || errno == EEXIST);
                        *p = '/';
                }
        assert_true(mkdir(copy, 0755) == 0 || errno == EEXIST);
}

static void write_file(const char *path, const char *content) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static void relink(const char *target, const char *link) {
        (void) unlink(link);
        assert_int_equal(symlink(target, link), 0);
}

th_sysfs *th_sysfs_new(void) {
        th_sysfs *s = calloc(1, sizeof *s);
        assert_non_null(s);
        s->root = th_mkdtemp();
        _cleanup_free_ char *devices = path_of(s, "devices/pci0000:00");
        _cleanup_free_ char *bus = path_of(s, "bus/pci/devices");
        _cleanup_free_ char *drivers = path_of(s, "bus/pci/drivers");
        _cleanup_free_ char *net = path_of(s, "class/net");
        _cleanup_free_ char *probe = path_of(s, "bus/pci/drivers_probe");
        make_dirs(devices);
        make_dirs(bus);
        make_dirs(drivers);
        make_dirs(net);
        write_file(probe, "");
        return s;
}

void th_sysfs_free(th_sysfs *s) {
        if (!s)
                return;
        th_rmtree(s->root);
        free(s->root);
        free(s);
}

void th_sysfs_set_driver(th_sysfs *s, const char *bdf, const char *driver) {
        _cleanup_free_ char *link = path_of(s, "devices/pci0000:00/%s/driver", bdf);

        if (!driver) {
                (void) unlink(link);
                return;
        }
        _cleanup_free_ char *dir = path_of(s, "bus/pci/drivers/%s", driver);
        _cleanup_free_ char *unbind = path_of(s, "bus/pci/drivers/%s/unbind", driver);
        _cleanup_free_ char *bind = path_of(s, "bus/pci/drivers/%s/bind", driver);
        _cleanup_free_ char *target = vf_printf("../../../bus/pci/drivers/%s", driver);
        make_dirs(dir);
        if (access(unbind, F_OK) < 0) {
                write_file(unbind, "");
                write_file(bind, "");
        }
        relink(target, link);
}

void th_sysfs_add_device(th_sysfs *s, const char *bdf, const char *driver) {
        _cleanup_free_ char *dir = path_of(s, "devices/pci0000:00/%s", bdf);
        _cleanup_free_ char *override = path_of(s, "devices/pci0000:00/%s/driver_override", bdf);
        _cleanup_free_ char *link = path_of(s, "bus/pci/devices/%s", bdf);
        _cleanup_free_ char *target = vf_printf("../../../devices/pci0000:00/%s", bdf);

        make_dirs(dir);
        write_file(override, "(null)\n");
        relink(target, link);
        th_sysfs_set_driver(s, bdf, driver);
}

void th_sysfs_add_vf(th_sysfs *s, const char *pf, int index, const char *vf, const char *driver) {
        char virtfn[32];
        th_sysfs_add_device(s, vf, driver);
        _cleanup_free_ char *physfn = path_of(s, "devices/pci0000:00/%s/physfn", vf);
        _cleanup_free_ char *pf_target = vf_printf("../%s", pf);
        relink(pf_target, physfn);
        snprintf(virtfn, sizeof virtfn, "virtfn%d", index);
        _cleanup_free_ char *link = path_of(s, "devices/pci0000:00/%s/%s", pf, virtfn);
        _cleanup_free_ char *vf_target = vf_printf("../%s", vf);
        relink(vf_target, link);
}

static void write_optional(const char *dir, const char *name, const char *content) {
        if (!content)
                return;
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, name);
        _cleanup_free_ char *line = vf_printf("%s\n", content);
        write_file(path, line);
}

void th_sysfs_add_netdev(th_sysfs *s, const char *bdf, const char *ifname, const char *phys_port_id,
                         const char *phys_port_name) {
        _cleanup_free_ char *dir = path_of(s, "devices/pci0000:00/%s/net/%s", bdf, ifname);
        _cleanup_free_ char *link = path_of(s, "class/net/%s", ifname);
        _cleanup_free_ char *target = vf_printf("../../devices/pci0000:00/%s/net/%s", bdf, ifname);

        make_dirs(dir);
        write_optional(dir, "phys_port_id", phys_port_id);
        write_optional(dir, "phys_port_name", phys_port_name);
        write_optional(dir, "address", "02:11:22:33:44:55");
        relink(target, link);
}

void th_sysfs_remove_netdevs(th_sysfs *s, const char *bdf) {
        _cleanup_free_ char *dir = path_of(s, "devices/pci0000:00/%s/net", bdf);
        th_rmtree(dir);
}

char *th_sysfs_read(th_sysfs *s, const char *relative) {
        _cleanup_free_ char *path = vf_printf("%s/%s", s->root, relative);
        char *data = NULL;
        assert_int_equal(vf_read_file(path, 65536, &data, NULL), 0);
        return data;
}
