/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests/sysfs-fixture.h"

#include <dirent.h>
#include <limits.h>
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

static char *kernel_file(const th_sysfs *s, const char *bdf, const char *what) {
        char *p = vf_printf("%s/%s.%s", s->kernel, bdf, what);
        assert_non_null(p);
        return p;
}

th_sysfs *th_sysfs_new(void) {
        th_sysfs *s = calloc(1, sizeof *s);
        assert_non_null(s);
        s->dir = th_mkdtemp();
        /* Resolved, as the code under test resolves the paths it writes to. */
        _cleanup_free_ char *dir = realpath(s->dir, NULL);
        assert_non_null(dir);
        s->root = vf_printf("%s/sys", dir);
        s->kernel = vf_printf("%s/kernel", dir);
        make_dirs(s->kernel);
        _cleanup_free_ char *devices = path_of(s, "devices/pci0000:00");
        _cleanup_free_ char *bus = path_of(s, "bus/pci/devices");
        _cleanup_free_ char *drivers = path_of(s, "bus/pci/drivers");
        _cleanup_free_ char *net = path_of(s, "class/net");
        _cleanup_free_ char *probe = path_of(s, "bus/pci/drivers_probe");
        _cleanup_free_ char *log = vf_printf("%s/writes", s->kernel);
        make_dirs(devices);
        make_dirs(bus);
        make_dirs(drivers);
        make_dirs(net);
        write_file(probe, "");
        write_file(log, "");
        th_sysfs_add_driver(s, "vfio-pci");
        return s;
}

void th_sysfs_free(th_sysfs *s) {
        if (!s)
                return;
        th_rmtree(s->dir);
        free(s->dir);
        free(s->root);
        free(s->kernel);
        free(s);
}

void th_sysfs_add_driver(th_sysfs *s, const char *driver) {
        _cleanup_free_ char *dir = path_of(s, "bus/pci/drivers/%s", driver);
        _cleanup_free_ char *unbind = path_of(s, "bus/pci/drivers/%s/unbind", driver);
        _cleanup_free_ char *bind = path_of(s, "bus/pci/drivers/%s/bind", driver);

        make_dirs(dir);
        if (access(unbind, F_OK) < 0) {
                write_file(unbind, "");
                write_file(bind, "");
        }
}

void th_sysfs_remove_driver(th_sysfs *s, const char *driver) {
        _cleanup_free_ char *dir = path_of(s, "bus/pci/drivers/%s", driver);
        th_rmtree(dir);
}

void th_sysfs_set_native_driver(th_sysfs *s, const char *bdf, const char *driver) {
        _cleanup_free_ char *path = kernel_file(s, bdf, "native");

        if (driver)
                write_file(path, driver);
        else
                (void) unlink(path);
}

static char *native_driver(th_sysfs *s, const char *bdf) {
        _cleanup_free_ char *path = kernel_file(s, bdf, "native");
        char *driver = NULL;
        return vf_read_file(path, 256, &driver, NULL) < 0 ? NULL : driver;
}

void th_sysfs_set_driver(th_sysfs *s, const char *bdf, const char *driver) {
        _cleanup_free_ char *link = path_of(s, "devices/pci0000:00/%s/driver", bdf);

        if (!driver) {
                (void) unlink(link);
                return;
        }
        _cleanup_free_ char *target = vf_printf("../../../bus/pci/drivers/%s", driver);
        th_sysfs_add_driver(s, driver);
        relink(target, link);
}

char *th_sysfs_driver(th_sysfs *s, const char *bdf) {
        _cleanup_free_ char *link = path_of(s, "devices/pci0000:00/%s/driver", bdf);
        char target[PATH_MAX];

        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0)
                return NULL;
        target[n] = 0;
        return strdup(strrchr(target, '/') + 1);
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
        th_sysfs_set_native_driver(s, bdf, driver && strcmp(driver, "vfio-pci") != 0 ? driver : NULL);
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

/* ---- the kernel behind the binding attributes ----------------------------------- */

static void log_write(th_sysfs *s, const char *path, const char *value) {
        _cleanup_free_ char *log = vf_printf("%s/writes", s->kernel);
        size_t root_len = strlen(s->root);
        FILE *f = fopen(log, "ae");

        assert_non_null(f);
        assert_true(strncmp(path, s->root, root_len) == 0);
        fprintf(f, "%s %.*s\n", path + root_len + 1, (int) strcspn(value, "\n"), value);
        assert_int_equal(fclose(f), 0);
}

/* The device a BDF names, NULL when the kernel knows no such device. */
static char *device_of(th_sysfs *s, const char *value) {
        _cleanup_free_ char *bdf = strndup(value, strcspn(value, "\n"));
        _cleanup_free_ char *link = path_of(s, "bus/pci/devices/%s", bdf);
        return access(link, F_OK) == 0 ? TAKE_PTR(bdf) : NULL;
}

/* A net driver that takes a device back makes its netdevs anew, with a fresh MAC, as iavf does. */
static void renew_addresses(const char *net) {
        _cleanup_(closedirp) DIR *d = opendir(net);
        struct dirent *de;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.') {
                        _cleanup_free_ char *dir = vf_printf("%s/%s", net, de->d_name);
                        write_optional(dir, "address", TH_SYSFS_FRESH_MAC);
                }
}

/* A net driver's netdevs come and go with it; they wait beside the tree while the device is elsewhere. */
static void move_netdevs(th_sysfs *s, const char *bdf, bool back) {
        _cleanup_free_ char *net = path_of(s, "devices/pci0000:00/%s/net", bdf);
        _cleanup_free_ char *stash = kernel_file(s, bdf, "net");
        const char *from = back ? stash : net, *to = back ? net : stash;

        if (access(from, F_OK) < 0)
                return;
        assert_int_equal(rename(from, to), 0);
        if (back)
                renew_addresses(net);
}

static int write_override(th_sysfs *s, const char *path, const char *value) {
        size_t len = strcspn(value, "\n");
        _cleanup_free_ char *shown = len ? vf_printf("%.*s\n", (int) len, value) : strdup("(null)\n");

        write_file(path, shown);
        return 0;
}

static int unbind(th_sysfs *s, const char *driver, const char *value) {
        _cleanup_free_ char *bdf = device_of(s, value);
        _cleanup_free_ char *current = bdf ? th_sysfs_driver(s, bdf) : NULL;

        if (!current || strcmp(current, driver) != 0)
                return -ENODEV;
        th_sysfs_set_driver(s, bdf, NULL);
        move_netdevs(s, bdf, false);
        return 0;
}

/* The override if set, else the native driver; the device stays unbound when that driver is not loaded. */
static int probe(th_sysfs *s, const char *value) {
        _cleanup_free_ char *bdf = device_of(s, value);
        if (!bdf)
                return -ENODEV;
        _cleanup_free_ char *current = th_sysfs_driver(s, bdf);
        if (current)
                return 0;
        _cleanup_free_ char *override_path = vf_printf("devices/pci0000:00/%s/driver_override", bdf);
        _cleanup_free_ char *override = th_sysfs_read(s, override_path);
        _cleanup_free_ char *native = native_driver(s, bdf);
        override[strcspn(override, "\n")] = 0;
        const char *driver = strcmp(override, "(null)") != 0 ? override : native;
        if (!driver)
                return 0;
        _cleanup_free_ char *dir = path_of(s, "bus/pci/drivers/%s", driver);
        if (access(dir, F_OK) < 0)
                return 0;
        th_sysfs_set_driver(s, bdf, driver);
        _cleanup_free_ char *held = kernel_file(s, bdf, "held");
        if (vf_streq_ptr(driver, native) && access(held, F_OK) < 0)
                move_netdevs(s, bdf, true);
        return 0;
}

void th_sysfs_hold_netdevs(th_sysfs *s, const char *bdf, bool hold) {
        _cleanup_free_ char *held = kernel_file(s, bdf, "held");

        if (hold) {
                write_file(held, "");
                return;
        }
        (void) unlink(held);
        _cleanup_free_ char *driver = th_sysfs_driver(s, bdf);
        _cleanup_free_ char *native = native_driver(s, bdf);
        if (driver && vf_streq_ptr(driver, native))
                move_netdevs(s, bdf, true);
}

int th_sysfs_kernel_write(void *userdata, const char *path, const char *value) {
        th_sysfs *s = userdata;
        _cleanup_free_ char *real = realpath(path, NULL);
        _cleanup_free_ char *drivers = path_of(s, "bus/pci/drivers/");
        _cleanup_free_ char *probe_path = path_of(s, "bus/pci/drivers_probe");

        if (!real)
                return -errno;
        log_write(s, path, value);
        if (vf_str_has_suffix(real, "/driver_override"))
                return write_override(s, real, value);
        if (strcmp(real, probe_path) == 0)
                return probe(s, value);
        if (strncmp(real, drivers, strlen(drivers)) == 0 && vf_str_has_suffix(real, "/unbind")) {
                _cleanup_free_ char *driver = strndup(real + strlen(drivers), strcspn(real + strlen(drivers), "/"));
                return unbind(s, driver, value);
        }
        fail_msg("the fixture kernel has no attribute %s", path);
        return -EACCES;
}

char *th_sysfs_write_log(th_sysfs *s) {
        _cleanup_free_ char *log = vf_printf("%s/writes", s->kernel);
        char *data = NULL;
        assert_int_equal(vf_read_file(log, 1 << 20, &data, NULL), 0);
        return data;
}

unsigned th_sysfs_count_writes(th_sysfs *s, const char *suffix) {
        _cleanup_free_ char *log = th_sysfs_write_log(s);
        unsigned n = 0;

        for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
                *strchrnul(line, ' ') = 0;
                n += vf_str_has_suffix(line, suffix);
        }
        return n;
}
