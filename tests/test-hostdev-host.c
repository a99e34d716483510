/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hostdev host layer: resolution and binding against fixture sysfs trees,
 * link state on real veth links in a throwaway network namespace, and VF
 * config through the netlink messages built and a fake kernel's answers.
 */
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <sched.h>
#include <sys/stat.h>

#include "reconcilers/hostdev/host.h"
#include "tests/helpers.h"
#include "tests/sysfs-fixture.h"

/* ---- fixture sysfs trees (tests/sysfs-fixture.h) ----------------------------- */

static int fixture_setup(void **state) {
        *state = th_sysfs_new();
        return 0;
}

static int fixture_teardown(void **state) {
        th_sysfs_free(*state);
        return 0;
}

static void assert_resolves(th_sysfs *fx, const char *bdf, const hd_recorded *rec, hd_resolution *ret) {
        _cleanup_free_ char *errmsg = NULL;
        int r = hd_resolve(fx->root, bdf, rec, ret, &errmsg);
        if (r < 0)
                fail_msg("hd_resolve(%s): %s", bdf, errmsg ? errmsg : strerror(-r));
        assert_null(errmsg);
        assert_string_equal(ret->device, bdf);
}

static void assert_resolve_fails(th_sysfs *fx, const char *bdf, const hd_recorded *rec, int error,
                                 const char *needle) {
        _cleanup_free_ char *errmsg = NULL;
        hd_resolution res = {};

        assert_int_equal(hd_resolve(fx->root, bdf, rec, &res, &errmsg), error);
        assert_non_null(errmsg);
        if (!strstr(errmsg, needle))
                fail_msg("'%s' does not mention '%s'", errmsg, needle);
}

/* ---- resolution ------------------------------------------------------------ */

#define SP_PF "0000:3b:00.0"

/* VF indexes need not follow function numbers: virtfn2 is 3b:02.1 here. */
static void single_port_tree(th_sysfs *fx) {
        static const char *const vfs[] = { "0000:3b:02.2", "0000:3b:02.3", "0000:3b:02.1" };

        th_sysfs_add_device(fx, SP_PF, "ice");
        th_sysfs_add_netdev(fx, SP_PF, "enp59s0f0", "6805cafe0001", NULL);
        for (int i = 0; i < (int) ELEMENTSOF(vfs); i++)
                th_sysfs_add_vf(fx, SP_PF, i, vfs[i], "iavf");
        th_sysfs_add_netdev(fx, "0000:3b:02.1", "enp59s0f0v2", "6805cafe0001", NULL);
}

static void test_single_port_index_by_device(void **state) {
        th_sysfs *fx = *state;
        _cleanup_(hd_resolution_done) hd_resolution res = {};

        single_port_tree(fx);
        assert_resolves(fx, "0000:3b:02.1", NULL, &res);
        assert_true(res.is_vf);
        assert_string_equal(res.pf, SP_PF);
        assert_string_equal(res.pf_netdev, "enp59s0f0");
        assert_int_equal(res.vf_index, 2);
        assert_string_equal(res.vf_netdev, "enp59s0f0v2");
        assert_string_equal(res.phys_port_id, "6805cafe0001");
        assert_string_equal(res.driver, "iavf");
        assert_int_equal(res.method, HD_METHOD_PHYS_PORT_ID);
        assert_string_equal(hd_method_to_string(res.method), "phys_port_id");

        /* On vfio-pci the VF keeps its index but loses its netdev; one PF netdev is no guess. */
        hd_resolution_done(&res);
        assert_resolves(fx, "0000:3b:02.2", NULL, &res);
        assert_int_equal(res.vf_index, 0);
        assert_null(res.vf_netdev);
        assert_null(res.phys_port_id);
        assert_string_equal(res.pf_netdev, "enp59s0f0");
        assert_int_equal(res.method, HD_METHOD_FIRST);
}

static void test_virtfn_gap_ends_the_list(void **state) {
        th_sysfs *fx = *state;

        single_port_tree(fx);
        /* virtfn3 is missing, so virtfn4 is never looked at. */
        th_sysfs_add_vf(fx, SP_PF, 4, "0000:3b:02.5", "iavf");
        assert_resolve_fails(fx, "0000:3b:02.5", NULL, -ENXIO, "virtfn");
}

/* A ConnectX-3: one function, two ports; port 2's netdev sorts after port 1's. */
#define DP_PF "0000:03:00.0"
#define DP_VF1 "0000:03:00.1"
#define DP_VF2 "0000:03:00.2"

static void dual_port_tree(th_sysfs *fx, const char *vf2_driver) {
        th_sysfs_add_device(fx, DP_PF, "mlx4_core");
        th_sysfs_add_netdev(fx, DP_PF, "enp3s0", "aa01", NULL);
        th_sysfs_add_netdev(fx, DP_PF, "enp3s0d1", "aa02", NULL);
        th_sysfs_add_vf(fx, DP_PF, 0, DP_VF1, "mlx4_core");
        th_sysfs_add_netdev(fx, DP_VF1, "enp3s0v0", "aa01", NULL);
        th_sysfs_add_vf(fx, DP_PF, 1, DP_VF2, vf2_driver);
        if (strcmp(vf2_driver, "mlx4_core") == 0)
                th_sysfs_add_netdev(fx, DP_VF2, "enp3s0v1", "aa02", NULL);
}

static void test_dual_port_by_phys_port_id(void **state) {
        th_sysfs *fx = *state;
        _cleanup_(hd_resolution_done) hd_resolution port1 = {}, port2 = {};

        dual_port_tree(fx, "mlx4_core");
        assert_resolves(fx, DP_VF1, NULL, &port1);
        assert_string_equal(port1.pf_netdev, "enp3s0");
        assert_int_equal(port1.vf_index, 0);
        assert_int_equal(port1.method, HD_METHOD_PHYS_PORT_ID);

        assert_resolves(fx, DP_VF2, NULL, &port2);
        assert_string_equal(port2.pf_netdev, "enp3s0d1");
        assert_int_equal(port2.vf_index, 1);
        assert_string_equal(port2.phys_port_id, "aa02");
        assert_int_equal(port2.method, HD_METHOD_PHYS_PORT_ID);
}

static void test_vfio_trap_ambiguous_without_record(void **state) {
        th_sysfs *fx = *state;

        dual_port_tree(fx, "vfio-pci");
        assert_resolve_fails(fx, DP_VF2, NULL, -ENOTUNIQ, "ambiguous");
        assert_resolve_fails(fx, DP_VF2, NULL, -ENOTUNIQ, "let virtform see the VF once");
        assert_resolve_fails(fx, DP_VF2, NULL, -ENOTUNIQ, "enp3s0, enp3s0d1");
}

static void test_vfio_trap_uses_record(void **state) {
        th_sysfs *fx = *state;
        _cleanup_(hd_resolution_done) hd_resolution res = {};
        hd_recorded rec = { .pf = DP_PF, .pf_netdev = (char *) "enp3s0d1", .vf_index = 1,
                            .phys_port_id = (char *) "aa02" };

        dual_port_tree(fx, "vfio-pci");
        assert_resolves(fx, DP_VF2, &rec, &res);
        assert_string_equal(res.pf_netdev, "enp3s0d1");
        assert_int_equal(res.vf_index, 1);
        assert_null(res.vf_netdev);
        assert_string_equal(res.phys_port_id, "aa02");
        assert_string_equal(res.driver, "vfio-pci");
        assert_int_equal(res.method, HD_METHOD_RECORDED);
        assert_string_equal(hd_method_to_string(res.method), "recorded");
}

static void test_vfio_trap_ignores_stale_record(void **state) {
        th_sysfs *fx = *state;
        hd_recorded other_pf = { .pf = "0000:04:00.0", .pf_netdev = (char *) "enp3s0d1", .vf_index = 1 };
        hd_recorded renamed = { .pf = DP_PF, .pf_netdev = (char *) "eth7", .vf_index = 1 };
        hd_recorded other_index = { .pf = DP_PF, .pf_netdev = (char *) "enp3s0d1", .vf_index = 0 };

        dual_port_tree(fx, "vfio-pci");
        assert_resolve_fails(fx, DP_VF2, &other_pf, -ENOTUNIQ, "ambiguous");
        assert_resolve_fails(fx, DP_VF2, &renamed, -ENOTUNIQ, "ambiguous");
        assert_resolve_fails(fx, DP_VF2, &other_index, -ENOTUNIQ, "ambiguous");
}

static void test_live_netdev_wins_over_record(void **state) {
        th_sysfs *fx = *state;
        _cleanup_(hd_resolution_done) hd_resolution res = {};
        hd_recorded wrong = { .pf = DP_PF, .pf_netdev = (char *) "enp3s0", .vf_index = 1 };

        dual_port_tree(fx, "mlx4_core");
        assert_resolves(fx, DP_VF2, &wrong, &res);
        assert_string_equal(res.pf_netdev, "enp3s0d1");
        assert_int_equal(res.method, HD_METHOD_PHYS_PORT_ID);
}

/* A switchdev PF: representors sort before the PF netdev and must be skipped. */
#define SW_PF "0000:81:00.0"
#define SW_VF "0000:81:00.2"

static void switchdev_tree(th_sysfs *fx, const char *pf_port_name, bool vf_on_vfio) {
        th_sysfs_add_device(fx, SW_PF, "mlx5_core");
        th_sysfs_add_netdev(fx, SW_PF, "eth0", NULL, pf_port_name);
        th_sysfs_add_netdev(fx, SW_PF, "aaa_pf0vf1", NULL, "pf0vf1");
        th_sysfs_add_netdev(fx, SW_PF, "aab_pf0", NULL, "pf0");
        th_sysfs_add_netdev(fx, SW_PF, "aac_c1pf0vf2", NULL, "c1pf0vf2");
        /* Starts like a physical port's name: only the whole name counts. */
        th_sysfs_add_netdev(fx, SW_PF, "aad_p0s1vf2", NULL, "p0s1vf2");
        th_sysfs_add_vf(fx, SW_PF, 0, "0000:81:00.1", "mlx5_core");
        th_sysfs_add_vf(fx, SW_PF, 1, SW_VF, vf_on_vfio ? "vfio-pci" : "mlx5_core");
        if (!vf_on_vfio)
                th_sysfs_add_netdev(fx, SW_VF, "eth5", NULL, NULL);
}

static void test_switchdev_skips_representors(void **state) {
        th_sysfs *fx = *state;
        _cleanup_(hd_resolution_done) hd_resolution res = {};

        switchdev_tree(fx, "p0", false);
        assert_resolves(fx, SW_VF, NULL, &res);
        assert_string_equal(res.pf_netdev, "eth0");
        assert_int_equal(res.vf_index, 1);
        assert_string_equal(res.vf_netdev, "eth5");
        assert_int_equal(res.method, HD_METHOD_PHYS_PORT_NAME);
        assert_string_equal(hd_method_to_string(res.method), "phys_port_name");
}

static void test_switchdev_split_port_on_vfio(void **state) {
        th_sysfs *fx = *state;
        _cleanup_(hd_resolution_done) hd_resolution res = {};

        /* A split port's name is still a PF's; with representors skipped one netdev is left: no ambiguity. */
        switchdev_tree(fx, "p0s1", true);
        assert_resolves(fx, SW_VF, NULL, &res);
        assert_string_equal(res.pf_netdev, "eth0");
        assert_null(res.vf_netdev);
        assert_int_equal(res.method, HD_METHOD_PHYS_PORT_NAME);
}

static void test_only_representors_is_no_link(void **state) {
        th_sysfs *fx = *state;

        switchdev_tree(fx, "pf1", false);
        assert_resolve_fails(fx, SW_VF, NULL, -ENOLINK, "switchdev representors");
}

static void test_i40e_vf_without_phys_port_id(void **state) {
        th_sysfs *fx = *state;
        _cleanup_(hd_resolution_done) hd_resolution res = {};

        th_sysfs_add_device(fx, "0000:5e:00.0", "i40e");
        th_sysfs_add_netdev(fx, "0000:5e:00.0", "ens1f0", "3cfdfe0a0b0c", NULL);
        th_sysfs_add_vf(fx, "0000:5e:00.0", 0, "0000:5e:02.0", "iavf");
        th_sysfs_add_netdev(fx, "0000:5e:02.0", "ens1f0v0", NULL, NULL);
        /* An empty file is no id either. */
        _cleanup_free_ char *vf_net = vf_printf("%s/class/net/ens1f0v0", fx->root);
        th_write(vf_net, "phys_port_id", "%s", "");

        assert_resolves(fx, "0000:5e:02.0", NULL, &res);
        assert_string_equal(res.pf_netdev, "ens1f0");
        assert_null(res.phys_port_id);
        assert_int_equal(res.method, HD_METHOD_FIRST);
        assert_string_equal(hd_method_to_string(res.method), "first");
}

static void test_pf_without_netdev(void **state) {
        th_sysfs *fx = *state;

        th_sysfs_add_device(fx, "0000:af:00.0", NULL);
        th_sysfs_add_vf(fx, "0000:af:00.0", 0, "0000:af:00.1", "vfio-pci");
        assert_resolve_fails(fx, "0000:af:00.1", NULL, -ENOLINK, "bind the PF to its network driver");

        /* An empty net/ is the same as none. */
        _cleanup_free_ char *pf_net = vf_printf("%s/devices/pci0000:00/0000:af:00.0/net", fx->root);
        assert_int_equal(mkdir(pf_net, 0755), 0);
        assert_resolve_fails(fx, "0000:af:00.1", NULL, -ENOLINK, "PF 0000:af:00.0 of VF 0000:af:00.1");
}

static void test_plain_device_is_not_a_vf(void **state) {
        th_sysfs *fx = *state;
        _cleanup_(hd_resolution_done) hd_resolution res = {};

        th_sysfs_add_device(fx, "0000:00:1f.6", "e1000e");
        th_sysfs_add_netdev(fx, "0000:00:1f.6", "eno1", NULL, NULL);
        assert_resolves(fx, "0000:00:1f.6", NULL, &res);
        assert_false(res.is_vf);
        assert_string_equal(res.pf, "");
        assert_null(res.pf_netdev);
        assert_null(res.vf_netdev);
        assert_int_equal(res.vf_index, -1);
        assert_string_equal(res.driver, "e1000e");
        assert_int_equal(res.method, HD_METHOD_NONE);
}

static void test_missing_device(void **state) {
        th_sysfs *fx = *state;

        assert_resolve_fails(fx, "0000:3b:02.1", NULL, -ENODEV, "lspci -D");
        /* Resolution also works without a message wanted. */
        hd_resolution res = {};
        assert_int_equal(hd_resolve(fx->root, "0000:3b:02.1", NULL, &res, NULL), -ENODEV);
}

static void test_bad_bdf(void **state) {
        static const char *const bad[] = {
                "", "3b:02.1", "0000:3B:02.1", "0000:3b:02.8", "0000:3b:02.10", "0000:3b:02/1", "0000:3b:02.1/",
                "0000:3b:02.1\n", "../../../etc", "0000:3b:0g.1", "00000:3b:02.1", "0000-3b:02.1",
        };
        th_sysfs *fx = *state;

        single_port_tree(fx);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_false(hd_bdf_is_valid(bad[i]));
                assert_resolve_fails(fx, bad[i], NULL, -EINVAL, "is not a PCI address");
        }
        assert_false(hd_bdf_is_valid(NULL));
        assert_true(hd_bdf_is_valid("0000:3b:02.1"));
        assert_true(hd_bdf_is_valid("ffff:ff:1f.7"));
}

/* ---- binding --------------------------------------------------------------- */

static void test_bind_to_vfio_and_back(void **state) {
        th_sysfs *fx = *state;
        _cleanup_free_ char *driver = NULL, *override = NULL, *unbind = NULL, *probe = NULL, *cleared = NULL;

        single_port_tree(fx);
        assert_int_equal(hd_device_driver(fx->root, "0000:3b:02.1", &driver), 0);
        assert_string_equal(driver, "iavf");

        assert_int_equal(hd_write_driver_override(NULL, fx->root, "0000:3b:02.1", "vfio-pci"), 0);
        override = th_sysfs_read(fx, "devices/pci0000:00/0000:3b:02.1/driver_override");
        assert_string_equal(override, "vfio-pci");
        assert_int_equal(hd_unbind(NULL, fx->root, "0000:3b:02.1"), 0);
        unbind = th_sysfs_read(fx, "bus/pci/drivers/iavf/unbind");
        assert_string_equal(unbind, "0000:3b:02.1");
        assert_int_equal(hd_drivers_probe(NULL, fx->root, "0000:3b:02.1"), 0);
        probe = th_sysfs_read(fx, "bus/pci/drivers_probe");
        assert_string_equal(probe, "0000:3b:02.1");

        /* The kernel clears an override on a lone newline; it never sees an empty write. */
        assert_int_equal(hd_write_driver_override(NULL, fx->root, "0000:3b:02.1", ""), 0);
        cleared = th_sysfs_read(fx, "devices/pci0000:00/0000:3b:02.1/driver_override");
        assert_string_equal(cleared, "\n");
}

/* The whole round trip on the fixture's kernel: the VF's netdev goes with its net driver and comes back with it. */
static void test_bind_round_trip_on_fixture_kernel(void **state) {
        th_sysfs *fx = *state;
        hd_sysfs_writer kernel = { th_sysfs_kernel_write, fx };
        _cleanup_(hd_resolution_done) hd_resolution on_vfio = {}, back = {};
        _cleanup_free_ char *driver = NULL, *log = NULL;

        single_port_tree(fx);
        assert_int_equal(hd_write_driver_override(&kernel, fx->root, "0000:3b:02.1", "vfio-pci"), 0);
        assert_int_equal(hd_unbind(&kernel, fx->root, "0000:3b:02.1"), 0);
        assert_int_equal(hd_drivers_probe(&kernel, fx->root, "0000:3b:02.1"), 0);
        assert_int_equal(hd_device_driver(fx->root, "0000:3b:02.1", &driver), 0);
        assert_string_equal(driver, "vfio-pci");
        assert_resolves(fx, "0000:3b:02.1", NULL, &on_vfio);
        assert_null(on_vfio.vf_netdev);

        assert_int_equal(hd_write_driver_override(&kernel, fx->root, "0000:3b:02.1", ""), 0);
        assert_int_equal(hd_unbind(&kernel, fx->root, "0000:3b:02.1"), 0);
        assert_int_equal(hd_drivers_probe(&kernel, fx->root, "0000:3b:02.1"), 0);
        assert_resolves(fx, "0000:3b:02.1", NULL, &back);
        assert_string_equal(back.driver, "iavf");
        assert_string_equal(back.vf_netdev, "enp59s0f0v2");

        log = th_sysfs_write_log(fx);
        assert_string_equal(log, "devices/pci0000:00/0000:3b:02.1/driver_override vfio-pci\n"
                                 "devices/pci0000:00/0000:3b:02.1/driver/unbind 0000:3b:02.1\n"
                                 "bus/pci/drivers_probe 0000:3b:02.1\n"
                                 "devices/pci0000:00/0000:3b:02.1/driver_override \n"
                                 "devices/pci0000:00/0000:3b:02.1/driver/unbind 0000:3b:02.1\n"
                                 "bus/pci/drivers_probe 0000:3b:02.1\n");
}

/* Without the vfio-pci module, probing leaves an overridden device on no driver, as the kernel does. */
static void test_probe_without_vfio_module_leaves_device_unbound(void **state) {
        th_sysfs *fx = *state;
        hd_sysfs_writer kernel = { th_sysfs_kernel_write, fx };
        _cleanup_free_ char *driver = NULL;

        single_port_tree(fx);
        th_sysfs_remove_driver(fx, "vfio-pci");
        assert_int_equal(hd_write_driver_override(&kernel, fx->root, "0000:3b:02.1", "vfio-pci"), 0);
        assert_int_equal(hd_unbind(&kernel, fx->root, "0000:3b:02.1"), 0);
        assert_int_equal(hd_drivers_probe(&kernel, fx->root, "0000:3b:02.1"), 0);
        assert_int_equal(hd_device_driver(fx->root, "0000:3b:02.1", &driver), 0);
        assert_null(driver);
}

static void test_unbind_without_driver(void **state) {
        th_sysfs *fx = *state;
        _cleanup_free_ char *driver = NULL;

        th_sysfs_add_device(fx, "0000:af:00.1", NULL);
        assert_int_equal(hd_device_driver(fx->root, "0000:af:00.1", &driver), 0);
        assert_null(driver);
        assert_int_equal(hd_unbind(NULL, fx->root, "0000:af:00.1"), 0);
}

static void test_bind_errors(void **state) {
        th_sysfs *fx = *state;
        char *driver = NULL;

        assert_int_equal(hd_device_driver(fx->root, "0000:af:00.1", &driver), -ENODEV);
        assert_int_equal(hd_write_driver_override(NULL, fx->root, "0000:af:00.1", "vfio-pci"), -ENODEV);
        assert_int_equal(hd_unbind(NULL, fx->root, "0000:af:00.1"), -ENODEV);
        assert_int_equal(hd_drivers_probe(NULL, fx->root, "0000:af:00.1"), -ENODEV);
        assert_int_equal(hd_device_driver(fx->root, "../../x", &driver), -EINVAL);
        assert_int_equal(hd_write_driver_override(NULL, fx->root, "0000:af:00.1/../..", "vfio-pci"), -EINVAL);
        assert_int_equal(hd_unbind(NULL, fx->root, ""), -EINVAL);
        assert_int_equal(hd_drivers_probe(NULL, fx->root, "0000:AF:00.1"), -EINVAL);
        assert_null(driver);
}

/* ---- link state on real links ---------------------------------------------- */

/* A fresh network namespace for the rest of the process; the kernel drops the last one with it. */
static void enter_throwaway_netns(void) {
        if (unshare(CLONE_NEWNET) < 0)
                th_skip("unshare(CLONE_NEWNET): %s; a network namespace needs root", strerror(errno));
}

static void run(const char *command) {
        if (system(command) != 0)
                fail_msg("'%s' failed", command);
}

static void assert_link_state(hd_netlink *nl, const char *ifname, bool admin_up, bool carrier) {
        bool got_admin_up = !admin_up, got_carrier = !carrier;

        assert_int_equal(hd_link_state(nl, ifname, &got_admin_up, &got_carrier), 0);
        assert_int_equal(got_admin_up, admin_up);
        assert_int_equal(got_carrier, carrier);
}

static void test_link_state_on_veth(void **state) {
        enter_throwaway_netns();
        _cleanup_(hd_netlink_closep) hd_netlink *nl = NULL;
        bool admin_up, carrier;

        run("ip link add enp59s0f0 type veth peer name enp59s0f0p");
        assert_int_equal(hd_netlink_open(&nl), 0);

        assert_link_state(nl, "enp59s0f0", false, false);
        run("ip link set enp59s0f0 up");
        /* Up without carrier: the peer is down. Only admin state gates. */
        assert_link_state(nl, "enp59s0f0", true, false);
        run("ip link set enp59s0f0p up");
        assert_link_state(nl, "enp59s0f0", true, true);
        run("ip link set enp59s0f0 down");
        assert_link_state(nl, "enp59s0f0", false, false);

        assert_int_equal(hd_link_state(nl, "enp59s0f1", &admin_up, &carrier), -ENODEV);
        assert_int_equal(hd_link_state(nl, "a-name-longer-than-ifnamsiz", &admin_up, &carrier), -EINVAL);
}

static void test_vf_requests_on_veth(void **state) {
        enter_throwaway_netns();
        _cleanup_(hd_netlink_closep) hd_netlink *nl = NULL;
        static const uint8_t mac[HD_MAC_LEN] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
        hd_vf_config cfg;

        run("ip link add enp59s0f0 type veth peer name enp59s0f0p");
        assert_int_equal(hd_netlink_open(&nl), 0);

        /* This machine has no SR-IOV: the kernel refuses VF config on every link (sriov.md). */
        assert_int_equal(hd_vf_set(nl, "enp59s0f0", 0, mac, -1), -EOPNOTSUPP);
        assert_int_equal(hd_vf_set(nl, "enp59s0f0", 0, NULL, 100), -EOPNOTSUPP);
        assert_int_equal(hd_vf_set(nl, "enp59s0f1", 0, mac, -1), -ENODEV);
        /* A link without VFs answers with no VF list. */
        assert_int_equal(hd_vf_get(nl, "enp59s0f0", 0, &cfg), -ENOENT);
        assert_int_equal(hd_vf_get(nl, "enp59s0f1", 0, &cfg), -ENODEV);
}

/* ---- VF config through the messages built and a fake kernel ------------------- */

#define FAKE_MAX_REQUESTS 4

/* Answers request N with errors[N]; answers RTM_GETLINK with the link given. */
typedef struct fake_kernel {
        int errors[FAKE_MAX_REQUESTS];
        unsigned ifi_flags;
        uint8_t carrier;
        int n_vfs;
        size_t n_requests;
        struct nlmsghdr *requests[FAKE_MAX_REQUESTS];
} fake_kernel;

/* VF n of the fake PF has MAC 02:00:00:00:00:1n and VLAN 100 + n. */
static struct nl_msg *fake_link(const fake_kernel *k) {
        struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = 7, .ifi_flags = k->ifi_flags };
        struct nl_msg *m = nlmsg_alloc_simple(RTM_NEWLINK, 0);

        assert_non_null(m);
        assert_int_equal(nlmsg_append(m, &ifi, sizeof ifi, NLMSG_ALIGNTO), 0);
        assert_int_equal(nla_put_string(m, IFLA_IFNAME, "enp59s0f0"), 0);
        assert_int_equal(nla_put_u8(m, IFLA_CARRIER, k->carrier), 0);
        if (k->n_vfs == 0)
                return m;
        struct nlattr *list = nla_nest_start(m, IFLA_VFINFO_LIST);
        for (int n = 0; n < k->n_vfs; n++) {
                struct ifla_vf_mac mac = { .vf = n, .mac = { 0x02, 0, 0, 0, 0, 0x10 + n } };
                struct ifla_vf_vlan vlan = { .vf = n, .vlan = 100 + n };
                struct nlattr *info = nla_nest_start(m, IFLA_VF_INFO);
                assert_int_equal(nla_put(m, IFLA_VF_MAC, sizeof mac, &mac), 0);
                assert_int_equal(nla_put(m, IFLA_VF_VLAN, sizeof vlan, &vlan), 0);
                nla_nest_end(m, info);
        }
        nla_nest_end(m, list);
        return m;
}

static int fake_request(void *userdata, struct nl_msg *req, struct nl_msg **reply) {
        fake_kernel *k = userdata;
        struct nlmsghdr *h = nlmsg_hdr(req);

        assert_true(k->n_requests < FAKE_MAX_REQUESTS);
        size_t n = k->n_requests++;
        k->requests[n] = malloc(h->nlmsg_len);
        assert_non_null(k->requests[n]);
        memcpy(k->requests[n], h, h->nlmsg_len);
        if (k->errors[n] < 0)
                return k->errors[n];
        assert_int_equal(h->nlmsg_type == RTM_GETLINK, reply != NULL);
        if (reply)
                *reply = fake_link(k);
        return 0;
}

static void fake_done(fake_kernel *k) {
        for (size_t i = 0; i < k->n_requests; i++)
                free(k->requests[i]);
}

static hd_netlink *fake_netlink(fake_kernel *k) {
        hd_netlink_transport t = { .request = fake_request, .userdata = k };
        hd_netlink *nl;

        assert_int_equal(hd_netlink_open_with_transport(&t, &nl), 0);
        return nl;
}

static void assert_link_request(struct nlmsghdr *h, int type, struct nlattr **tb) {
        assert_int_equal(h->nlmsg_type, type);
        assert_int_equal(h->nlmsg_flags & (NLM_F_REQUEST | NLM_F_ACK), NLM_F_REQUEST | NLM_F_ACK);
        assert_int_equal(nlmsg_parse(h, sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL), 0);
        /* The PF goes by name: no ifindex to look up and race with a rename. */
        assert_int_equal(((struct ifinfomsg *) nlmsg_data(h))->ifi_index, 0);
        assert_non_null(tb[IFLA_IFNAME]);
        assert_string_equal(nla_get_string(tb[IFLA_IFNAME]), "enp59s0f0");
}

/* Decodes an RTM_SETLINK: one IFLA_VF_INFO for vf holding exactly the MAC and/or VLAN asked for. */
static void assert_vf_setlink(struct nlmsghdr *h, int vf, const uint8_t *mac, int vlan) {
        struct nlattr *tb[IFLA_MAX + 1], *info, *attr;
        int remaining, n_infos = 0, n_attrs = 0;

        assert_link_request(h, RTM_SETLINK, tb);
        assert_non_null(tb[IFLA_VFINFO_LIST]);
        nla_for_each_nested(info, tb[IFLA_VFINFO_LIST], remaining) {
                int inner;

                assert_int_equal(nla_type(info), IFLA_VF_INFO);
                n_infos++;
                nla_for_each_nested(attr, info, inner) {
                        n_attrs++;
                        if (nla_type(attr) == IFLA_VF_MAC) {
                                const struct ifla_vf_mac *m = nla_data(attr);
                                static const uint8_t zero[sizeof m->mac - HD_MAC_LEN];
                                assert_non_null(mac);
                                assert_int_equal(nla_len(attr), sizeof(struct ifla_vf_mac));
                                assert_int_equal(m->vf, vf);
                                assert_memory_equal(m->mac, mac, HD_MAC_LEN);
                                assert_memory_equal(m->mac + HD_MAC_LEN, zero, sizeof zero);
                        } else {
                                const struct ifla_vf_vlan *v = nla_data(attr);
                                assert_int_equal(nla_type(attr), IFLA_VF_VLAN);
                                assert_true(vlan >= 0);
                                assert_int_equal(nla_len(attr), sizeof(struct ifla_vf_vlan));
                                assert_int_equal(v->vf, vf);
                                assert_int_equal(v->vlan, vlan);
                                assert_int_equal(v->qos, 0);
                        }
                }
        }
        assert_int_equal(n_infos, 1);
        assert_int_equal(n_attrs, (mac ? 1 : 0) + (vlan >= 0 ? 1 : 0));
}

static const uint8_t guest_mac[HD_MAC_LEN] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
static const uint8_t zero_mac[HD_MAC_LEN];
static const uint8_t stand_in_mac[HD_MAC_LEN] = { 0x02 };

static void test_build_setlink(void **state) {
        _cleanup_(nlmsg_freep) struct nl_msg *mac_only = NULL, *vlan_only = NULL, *both = NULL;
        struct nl_msg *unused = NULL;

        assert_int_equal(hd_vf_build_setlink("enp59s0f0", 3, guest_mac, -1, &mac_only), 0);
        assert_vf_setlink(nlmsg_hdr(mac_only), 3, guest_mac, -1);
        assert_int_equal(hd_vf_build_setlink("enp59s0f0", 5, NULL, 4095, &vlan_only), 0);
        assert_vf_setlink(nlmsg_hdr(vlan_only), 5, NULL, 4095);
        assert_int_equal(hd_vf_build_setlink("enp59s0f0", 0, guest_mac, 0, &both), 0);
        assert_vf_setlink(nlmsg_hdr(both), 0, guest_mac, 0);

        assert_int_equal(hd_vf_build_setlink("enp59s0f0", 0, NULL, -1, &unused), -EINVAL);
        assert_int_equal(hd_vf_build_setlink("enp59s0f0", 0, NULL, 4096, &unused), -EINVAL);
        assert_int_equal(hd_vf_build_setlink("enp59s0f0", -1, guest_mac, -1, &unused), -EINVAL);
        assert_int_equal(hd_vf_build_setlink("", 0, guest_mac, -1, &unused), -EINVAL);
        assert_null(unused);
}

/* Runs hd_vf_set against a fake kernel answering errors in turn; returns its result. */
static int fake_vf_set(fake_kernel *k, const uint8_t *mac, int vlan) {
        _cleanup_(hd_netlink_closep) hd_netlink *nl = fake_netlink(k);
        return hd_vf_set(nl, "enp59s0f0", 2, mac, vlan);
}

static void test_vf_set_returns_kernel_errors(void **state) {
        static const int errors[] = { -EOPNOTSUPP, -ENODEV, -EBUSY, -EAGAIN };

        for (size_t i = 0; i < ELEMENTSOF(errors); i++) {
                fake_kernel k = { .errors = { errors[i] } };
                assert_int_equal(fake_vf_set(&k, guest_mac, -1), errors[i]);
                assert_int_equal(k.n_requests, 1);
                assert_vf_setlink(k.requests[0], 2, guest_mac, -1);
                fake_done(&k);
        }
}

static void test_vf_set_zero_mac_stand_in(void **state) {
        fake_kernel retried = { .errors = { -EINVAL, 0 } };
        fake_kernel refused_twice = { .errors = { -EINVAL, -EINVAL } };
        fake_kernel not_zero = { .errors = { -EINVAL } };

        assert_int_equal(fake_vf_set(&retried, zero_mac, -1), 0);
        assert_int_equal(retried.n_requests, 2);
        assert_vf_setlink(retried.requests[0], 2, zero_mac, -1);
        assert_vf_setlink(retried.requests[1], 2, stand_in_mac, -1);

        /* Retried once only. */
        assert_int_equal(fake_vf_set(&refused_twice, zero_mac, -1), -EINVAL);
        assert_int_equal(refused_twice.n_requests, 2);

        /* Only an all-zero MAC has a stand-in. */
        assert_int_equal(fake_vf_set(&not_zero, guest_mac, -1), -EINVAL);
        assert_int_equal(not_zero.n_requests, 1);

        /* A VF that took the stand-in holds the all-zero MAC asked for, and only that (no second set after a crash). */
        assert_true(hd_vf_mac_holds(stand_in_mac, zero_mac));
        assert_true(hd_vf_mac_holds(guest_mac, guest_mac));
        assert_false(hd_vf_mac_holds(stand_in_mac, guest_mac));
        assert_false(hd_vf_mac_holds(zero_mac, stand_in_mac));

        fake_done(&retried);
        fake_done(&refused_twice);
        fake_done(&not_zero);
}

static void test_vf_set_vlan_clear_eperm(void **state) {
        fake_kernel clear = { .errors = { -EPERM } };
        fake_kernel set = { .errors = { -EPERM } };

        assert_int_equal(fake_vf_set(&clear, NULL, 0), 0);
        assert_int_equal(clear.n_requests, 1);
        assert_vf_setlink(clear.requests[0], 2, NULL, 0);

        assert_int_equal(fake_vf_set(&set, NULL, 100), -EPERM);
        assert_vf_setlink(set.requests[0], 2, NULL, 100);

        fake_done(&clear);
        fake_done(&set);
}

static void test_vf_set_mac_then_vlan(void **state) {
        fake_kernel both = {};
        fake_kernel mac_fails = { .errors = { -EOPNOTSUPP } };
        fake_kernel eperm_on_mac = { .errors = { -EPERM } };
        fake_kernel bad_vlan = {};

        /* Separate requests, so that each quirk is told apart. */
        assert_int_equal(fake_vf_set(&both, guest_mac, 42), 0);
        assert_int_equal(both.n_requests, 2);
        assert_vf_setlink(both.requests[0], 2, guest_mac, -1);
        assert_vf_setlink(both.requests[1], 2, NULL, 42);

        assert_int_equal(fake_vf_set(&mac_fails, guest_mac, 42), -EOPNOTSUPP);
        assert_int_equal(mac_fails.n_requests, 1);

        /* EPERM is forgiven on a VLAN clear, never on the MAC before it. */
        assert_int_equal(fake_vf_set(&eperm_on_mac, guest_mac, 0), -EPERM);
        assert_int_equal(eperm_on_mac.n_requests, 1);

        /* Bad arguments are refused before any request, so nothing is half done. */
        assert_int_equal(fake_vf_set(&bad_vlan, guest_mac, 4096), -EINVAL);
        assert_int_equal(fake_vf_set(&bad_vlan, NULL, -1), 0);
        assert_int_equal(bad_vlan.n_requests, 0);

        fake_done(&both);
        fake_done(&mac_fails);
        fake_done(&eperm_on_mac);
}

static void test_vf_get_picks_index(void **state) {
        fake_kernel k = { .n_vfs = 4 };
        _cleanup_(hd_netlink_closep) hd_netlink *nl = fake_netlink(&k);
        static const uint8_t vf2_mac[HD_MAC_LEN] = { 0x02, 0, 0, 0, 0, 0x12 };
        struct nlattr *tb[IFLA_MAX + 1];
        hd_vf_config cfg = {};

        assert_int_equal(hd_vf_get(nl, "enp59s0f0", 2, &cfg), 0);
        assert_memory_equal(cfg.mac, vf2_mac, HD_MAC_LEN);
        assert_int_equal(cfg.vlan, 102);

        assert_int_equal(k.n_requests, 1);
        assert_link_request(k.requests[0], RTM_GETLINK, tb);
        assert_non_null(tb[IFLA_EXT_MASK]);
        assert_true(nla_get_u32(tb[IFLA_EXT_MASK]) & RTEXT_FILTER_VF);

        assert_int_equal(hd_vf_get(nl, "enp59s0f0", 4, &cfg), -ENOENT);
        k.n_vfs = 0;
        assert_int_equal(hd_vf_get(nl, "enp59s0f0", 0, &cfg), -ENOENT);
        k.errors[3] = -ENODEV;
        assert_int_equal(hd_vf_get(nl, "enp59s0f0", 0, &cfg), -ENODEV);
        fake_done(&k);
}

static void test_vf_parse_rejects_short_attributes(void **state) {
        _cleanup_(nlmsg_freep) struct nl_msg *m = nlmsg_alloc_simple(RTM_NEWLINK, 0);
        struct ifinfomsg ifi = {};
        uint32_t truncated_mac = 0;
        hd_vf_config cfg;

        assert_non_null(m);
        assert_int_equal(nlmsg_append(m, &ifi, sizeof ifi, NLMSG_ALIGNTO), 0);
        struct nlattr *list = nla_nest_start(m, IFLA_VFINFO_LIST);
        struct nlattr *info = nla_nest_start(m, IFLA_VF_INFO);
        assert_int_equal(nla_put(m, IFLA_VF_MAC, sizeof truncated_mac, &truncated_mac), 0);
        nla_nest_end(m, info);
        nla_nest_end(m, list);
        assert_int_equal(hd_vf_parse_link(nlmsg_hdr(m), 0, &cfg), -EBADMSG);

        nlmsg_hdr(m)->nlmsg_type = RTM_DELLINK;
        assert_int_equal(hd_vf_parse_link(nlmsg_hdr(m), 0, &cfg), -EBADMSG);
}

/* Found by fuzz-sysfs (tests/fuzz-corpus/fuzz-sysfs/crash-netlink-vlan-out-of-range.bin). */
static void test_vf_parse_rejects_vlan_out_of_range(void **state) {
        static const uint32_t vlans[] = { 4095, 4096, UINT32_MAX };

        for (size_t i = 0; i < ELEMENTSOF(vlans); i++) {
                _cleanup_(nlmsg_freep) struct nl_msg *m = nlmsg_alloc_simple(RTM_NEWLINK, 0);
                struct ifla_vf_mac mac = { .vf = 0, .mac = { 0x02 } };
                struct ifla_vf_vlan vlan = { .vf = 0, .vlan = vlans[i] };
                struct ifinfomsg ifi = {};
                hd_vf_config cfg;

                assert_non_null(m);
                assert_int_equal(nlmsg_append(m, &ifi, sizeof ifi, NLMSG_ALIGNTO), 0);
                struct nlattr *list = nla_nest_start(m, IFLA_VFINFO_LIST);
                struct nlattr *info = nla_nest_start(m, IFLA_VF_INFO);
                assert_int_equal(nla_put(m, IFLA_VF_MAC, sizeof mac, &mac), 0);
                assert_int_equal(nla_put(m, IFLA_VF_VLAN, sizeof vlan, &vlan), 0);
                nla_nest_end(m, info);
                nla_nest_end(m, list);
                assert_int_equal(hd_vf_parse_link(nlmsg_hdr(m), 0, &cfg), vlans[i] <= 4095 ? 0 : -EBADMSG);
                if (vlans[i] <= 4095)
                        assert_int_equal(cfg.vlan, 4095);
        }
}

static void test_link_state_through_transport(void **state) {
        fake_kernel k = { .ifi_flags = IFF_UP };
        _cleanup_(hd_netlink_closep) hd_netlink *nl = fake_netlink(&k);
        bool admin_up = false, carrier = true;
        struct nlattr *tb[IFLA_MAX + 1];

        assert_int_equal(hd_link_state(nl, "enp59s0f0", &admin_up, &carrier), 0);
        assert_true(admin_up);
        assert_false(carrier);
        assert_link_request(k.requests[0], RTM_GETLINK, tb);
        fake_done(&k);
}

int main(void) {
#define FIXTURE_TEST(t) cmocka_unit_test_setup_teardown(t, fixture_setup, fixture_teardown)
        const struct CMUnitTest tests[] = {
                FIXTURE_TEST(test_single_port_index_by_device),
                FIXTURE_TEST(test_virtfn_gap_ends_the_list),
                FIXTURE_TEST(test_dual_port_by_phys_port_id),
                FIXTURE_TEST(test_vfio_trap_ambiguous_without_record),
                FIXTURE_TEST(test_vfio_trap_uses_record),
                FIXTURE_TEST(test_vfio_trap_ignores_stale_record),
                FIXTURE_TEST(test_live_netdev_wins_over_record),
                FIXTURE_TEST(test_switchdev_skips_representors),
                FIXTURE_TEST(test_switchdev_split_port_on_vfio),
                FIXTURE_TEST(test_only_representors_is_no_link),
                FIXTURE_TEST(test_i40e_vf_without_phys_port_id),
                FIXTURE_TEST(test_pf_without_netdev),
                FIXTURE_TEST(test_plain_device_is_not_a_vf),
                FIXTURE_TEST(test_missing_device),
                FIXTURE_TEST(test_bad_bdf),
                FIXTURE_TEST(test_bind_to_vfio_and_back),
                FIXTURE_TEST(test_bind_round_trip_on_fixture_kernel),
                FIXTURE_TEST(test_probe_without_vfio_module_leaves_device_unbound),
                FIXTURE_TEST(test_unbind_without_driver),
                FIXTURE_TEST(test_bind_errors),
                cmocka_unit_test(test_link_state_on_veth),
                cmocka_unit_test(test_vf_requests_on_veth),
                cmocka_unit_test(test_build_setlink),
                cmocka_unit_test(test_vf_set_returns_kernel_errors),
                cmocka_unit_test(test_vf_set_zero_mac_stand_in),
                cmocka_unit_test(test_vf_set_vlan_clear_eperm),
                cmocka_unit_test(test_vf_set_mac_then_vlan),
                cmocka_unit_test(test_vf_get_picks_index),
                cmocka_unit_test(test_vf_parse_rejects_short_attributes),
                cmocka_unit_test(test_vf_parse_rejects_vlan_out_of_range),
                cmocka_unit_test(test_link_state_through_transport),
        };
#undef FIXTURE_TEST
        return th_run_group(tests, NULL, NULL, NULL);
}
