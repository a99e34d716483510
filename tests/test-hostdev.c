/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hostdev reconciler end to end: fixture sysfs trees stand in for SR-IOV
 * hardware, real veth links in a network namespace of this process's own
 * stand in for PF netdevs, and a fake netlink transport stands in for VF
 * replies, which no link on this machine gives.
 */
#include "tests/env.h"

#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "reconcilers/hostdev/hostdev.h"
#include "tests/sysfs-fixture.h"

#define PF "0000:3b:00.0"
#define VF "0000:3b:02.1"
#define PF_NETDEV "enp59s0f0"
#define ORIGINAL_MAC "02:11:22:33:44:55"

#define HOSTDEV(extra)                                                                                   \
        "apiVersion: virtform/v1\nkind: Hostdev\nmetadata: {name: db-vf}\nspec:\n  pci: \"" VF "\"\n" extra

#define DOMAIN_DB                                                                                         \
        "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: db}\nspec:\n  memory: 256MiB\n"          \
        "  hostdevs: [db-vf]\n"

/* ---- a fake kernel for VF requests ------------------------------------------ */

/*
 * What the "kernel" holds for VF 1 and what it was asked, in memory shared
 * with every child forked after setup: a killed child's writes stay seen.
 * Link state is the real link's: the fake adds only what no link here has.
 */
typedef struct fake_kernel {
        hd_vf_config vf;
        int fail_setlink; /* negative errno for every VF RTM_SETLINK, or 0 */
        unsigned setlinks; /* VF RTM_SETLINKs through the PF */
        th_sysfs *sysfs; /* where a VF netdev's own MAC shows */
        /* Each request that changed something, with the VF's driver at that moment: "vf-mac@vfio-pci\n"... */
        char log[1024];
} fake_kernel;

static void fake_log(fake_kernel *k, const char *what) {
        _cleanup_free_ char *driver = th_sysfs_driver(k->sysfs, VF);
        size_t len = strlen(k->log);

        snprintf(k->log + len, sizeof k->log - len, "%s@%s\n", what, driver ? driver : "none");
}

static void put_vf_info(struct nl_msg *msg, const hd_vf_config *vf) {
        struct nlattr *list = nla_nest_start(msg, IFLA_VFINFO_LIST);
        struct nlattr *info = nla_nest_start(msg, IFLA_VF_INFO);
        struct ifla_vf_mac mac = { .vf = 1 };
        struct ifla_vf_vlan vlan = { .vf = 1, .vlan = (uint32_t) vf->vlan };

        memcpy(mac.mac, vf->mac, sizeof vf->mac);
        nla_put(msg, IFLA_VF_MAC, sizeof mac, &mac);
        nla_put(msg, IFLA_VF_VLAN, sizeof vlan, &vlan);
        nla_nest_end(msg, info);
        nla_nest_end(msg, list);
}

/* The link named in a request, as this network namespace's kernel sees it. */
static int real_link_flags(struct nl_msg *req, unsigned *flags) {
        _cleanup_(hd_netlink_closep) hd_netlink *nl = NULL;
        struct nlattr *tb[IFLA_MAX + 1];
        bool up, carrier;

        assert_int_equal(nlmsg_parse(nlmsg_hdr(req), sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL), 0);
        assert_non_null(tb[IFLA_IFNAME]);
        assert_int_equal(hd_netlink_open(&nl), 0);
        int r = hd_link_state(nl, nla_get_string(tb[IFLA_IFNAME]), &up, &carrier);
        if (r < 0)
                return r;
        *flags = (up ? IFF_UP : 0) | (carrier ? IFF_RUNNING : 0);
        return 0;
}

static int answer_getlink(fake_kernel *k, struct nl_msg *req, struct nl_msg **reply) {
        struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = 7 };
        int r = real_link_flags(req, &ifi.ifi_flags);
        if (r < 0)
                return r;

        struct nl_msg *msg = nlmsg_alloc_simple(RTM_NEWLINK, 0);
        assert_non_null(msg);
        assert_int_equal(nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO), 0);
        nla_put_string(msg, IFLA_IFNAME, PF_NETDEV);
        put_vf_info(msg, &k->vf);
        *reply = msg;
        return 0;
}

/* Applies what a VF SETLINK carries, as the kernel would. */
static void take_vf_setlink(fake_kernel *k, struct nlattr *list) {
        struct nlattr *info, *attr;
        int rem, rem2;

        nla_for_each_nested(info, list, rem) nla_for_each_nested(attr, info, rem2) {
                if (nla_type(attr) == IFLA_VF_MAC) {
                        const struct ifla_vf_mac *m = nla_data(attr);
                        assert_int_equal(m->vf, 1);
                        memcpy(k->vf.mac, m->mac, 6);
                        fake_log(k, "vf-mac");
                } else if (nla_type(attr) == IFLA_VF_VLAN) {
                        const struct ifla_vf_vlan *v = nla_data(attr);
                        assert_int_equal(v->vf, 1);
                        k->vf.vlan = (int) v->vlan;
                        fake_log(k, "vf-vlan");
                }
        }
}

/* A netdev's own MAC, which sysfs then shows. */
static void take_address(fake_kernel *k, const char *ifname, const uint8_t *mac) {
        _cleanup_free_ char *path = vf_printf("%s/class/net/%s/address", k->sysfs->root, ifname);
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        fprintf(f, "%02x:%02x:%02x:%02x:%02x:%02x\n", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        assert_int_equal(fclose(f), 0);
        fake_log(k, "own-mac");
}

static int take_setlink(fake_kernel *k, struct nl_msg *req) {
        struct nlattr *tb[IFLA_MAX + 1];

        assert_int_equal(nlmsg_parse(nlmsg_hdr(req), sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL), 0);
        assert_non_null(tb[IFLA_IFNAME]);
        if (tb[IFLA_ADDRESS]) {
                assert_int_equal(nla_len(tb[IFLA_ADDRESS]), 6);
                take_address(k, nla_get_string(tb[IFLA_IFNAME]), nla_data(tb[IFLA_ADDRESS]));
                return 0;
        }
        assert_non_null(tb[IFLA_VFINFO_LIST]);
        k->setlinks++;
        if (k->fail_setlink)
                return k->fail_setlink;
        take_vf_setlink(k, tb[IFLA_VFINFO_LIST]);
        return 0;
}

static int fake_request(void *userdata, struct nl_msg *req, struct nl_msg **reply) {
        fake_kernel *k = userdata;

        switch (nlmsg_hdr(req)->nlmsg_type) {
        case RTM_GETLINK:
                return answer_getlink(k, req, reply);
        case RTM_SETLINK:
                return take_setlink(k, req);
        default:
                fail_msg("unexpected netlink request %u", nlmsg_hdr(req)->nlmsg_type);
                return -EINVAL;
        }
}

static void mac_of(const char *text, uint8_t mac[6]) {
        assert_int_equal(sscanf(text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
                                &mac[5]),
                         6);
}

/* ---- fixture ------------------------------------------------------------------ */

typedef struct fixture {
        th_env *env;
        th_sysfs *sysfs;
        fake_kernel *kernel; /* shared with forked children */
        bool use_fake;
} fixture;

static void ip(const char *fmt, ...) _printf_(1, 2);

static void ip(const char *fmt, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;

        va_start(ap, fmt);
        assert_true(vasprintf(&cmd, fmt, ap) >= 0);
        va_end(ap);
        assert_int_equal(system(cmd), 0);
}

/* VF requests go to the fake kernel, whose PF is up: the gate is open. */
static void use_fake_kernel(fixture *f) {
        f->use_fake = true;
        ip("ip link set %s up", PF_NETDEV);
}

/* Binding writes go to the fixture's kernel; with use_fake, VF requests (and link state) go to the fake kernel. */
static void put_in_fakes(th_env *env) {
        fixture *f = env->userdata;
        hd_netlink_transport t = { fake_request, f->kernel };
        hd_sysfs_writer w = { th_sysfs_kernel_write, f->sysfs };

        assert_int_equal(rc_hostdev_use_host(&env->c.rc, f->use_fake ? &t : NULL, &w), 0);
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);

        f->env = th_env_new();
        f->env->on_open = put_in_fakes;
        f->env->userdata = f;
        f->sysfs = th_sysfs_new();
        f->env->opts.sysfs_root = f->sysfs->root;
        f->kernel = mmap(NULL, sizeof *f->kernel, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(f->kernel != MAP_FAILED);
        *f->kernel = (fake_kernel) { .sysfs = f->sysfs };
        mac_of(ORIGINAL_MAC, f->kernel->vf.mac);

        /* A single-port PF whose VF 1 is function 2.1, already on vfio-pci (so it has no netdev). */
        th_sysfs_add_device(f->sysfs, PF, "ice");
        th_sysfs_add_netdev(f->sysfs, PF, PF_NETDEV, NULL, NULL);
        th_sysfs_add_vf(f->sysfs, PF, 0, "0000:3b:02.0", "iavf");
        th_sysfs_add_vf(f->sysfs, PF, 1, VF, "vfio-pci");
        ip("ip link add %s type veth peer name vf-test-peer", PF_NETDEV);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        th_env_free(f->env);
        (void) system("ip link del " PF_NETDEV " 2>/dev/null");
        (void) system("ip link del enp94s0 2>/dev/null; ip link del enp94s0d1 2>/dev/null");
        th_sysfs_free(f->sysfs);
        assert_int_equal(munmap(f->kernel, sizeof *f->kernel), 0);
        free(f);
        return 0;
}

static void run_pass(fixture *f) {
        th_env_pass(f->env);
}

static const rc_result *result(fixture *f, vf_kind kind, const char *name) {
        return &th_env_entry(f->env, kind, name)->result;
}

static void assert_result(fixture *f, vf_kind kind, const char *name, rc_outcome outcome, const char *reason) {
        th_env_assert(f->env, kind, name, outcome, reason);
}

static state_device *device(fixture *f, const char *bdf) {
        state_device *dev = NULL;
        int r = state_device_get(f->env->c.store, bdf, &dev);
        return r < 0 ? NULL : dev;
}

static bool domain_exists(fixture *f, const char *name) {
        _cleanup_free_ char *xml = th_domain_xml(f->env->other, name, true);
        return xml != NULL;
}

/* ---- the PF gate on real links ---------------------------------------------- */

static void test_pf_down_refuses_then_up_proceeds(void **state) {
        fixture *f = *state;

        th_write(f->env->conf, "10-vf.yaml", HOSTDEV(""));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        const rc_result *hostdev = result(f, VF_KIND_HOSTDEV, "db-vf");
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_WAITING, "PFDown");
        assert_non_null(strstr(hostdev->message, PF_NETDEV));
        assert_non_null(strstr(hostdev->message, VF));
        assert_non_null(strstr(hostdev->message, "ip link set " PF_NETDEV " up"));
        assert_result(f, VF_KIND_DOMAIN, "db", RC_WAITING, "DependencyNotReady");
        assert_non_null(strstr(result(f, VF_KIND_DOMAIN, "db")->message, "hostdev db-vf"));
        assert_false(domain_exists(f, "db"));
        assert_false(vf_report_converged(&f->env->report));
        /* Nothing on the host changed, and the PF is still down: never brought up by us. */
        _cleanup_free_ char *writes = th_sysfs_write_log(f->sysfs);
        assert_string_equal(writes, "");
        ip("ip -o link show %s | grep -qv '[<,]UP[,>]'", PF_NETDEV);

        ip("ip link set %s up", PF_NETDEV);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_UNCHANGED, "Assigned");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "db-vf")->message, "resolved by first"));
        assert_result(f, VF_KIND_DOMAIN, "db", RC_CREATED, "Applied");
        assert_true(th_domain_active(f->env->other, "db"));
        _cleanup_free_ char *xml = th_domain_xml(f->env->other, "db", true);
        assert_non_null(strstr(xml, "<hostdev mode='subsystem' type='pci' managed='no'>"));
        assert_non_null(strstr(xml, "<address domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/>"));

        /* The PF goes down under a running guest: reported, and the guest is not touched. */
        ip("ip link set %s down", PF_NETDEV);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_WAITING, "PFDown");
        assert_true(th_domain_active(f->env->other, "db"));
        assert_int_equal(rc_counters_writes(&f->env->report.counters), 0);
}

/* The fake kernel answers with the real PF link's state: while it is down, not one write reaches the host. */
static void test_pf_down_changes_nothing_on_host(void **state) {
        fixture *f = *state;

        f->use_fake = true;
        th_sysfs_set_driver(f->sysfs, VF, "iavf");
        th_sysfs_set_native_driver(f->sysfs, VF, "iavf");
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n  vlan: 42\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_WAITING, "PFDown");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "db-vf")->message, "ip link set " PF_NETDEV " up"));
        assert_int_equal(f->kernel->setlinks, 0);
        _cleanup_free_ char *writes = th_sysfs_write_log(f->sysfs);
        assert_string_equal(writes, "");
        _cleanup_free_ char *driver = th_sysfs_driver(f->sysfs, VF);
        assert_string_equal(driver, "iavf");
        assert_false(domain_exists(f, "db"));

        ip("ip link set %s up", PF_NETDEV);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_UPDATED, "Assigned");
        assert_int_equal(f->kernel->vf.vlan, 42);
        _cleanup_free_ char *bound = th_sysfs_driver(f->sysfs, VF);
        assert_string_equal(bound, "vfio-pci");
        assert_true(th_domain_active(f->env->other, "db"));
}

/* A dual-port NIC: the VF on port 2 waits for port 2, even with port 1 up; the vfio-pci trap is passed by the record. */
static void test_dual_port_gate_follows_recorded_port(void **state) {
        fixture *f = *state;
        const char *pf = "0000:5e:00.0", *vf = "0000:5e:00.2";

        th_sysfs_add_device(f->sysfs, pf, "mlx4_core");
        th_sysfs_add_netdev(f->sysfs, pf, "enp94s0", "aa01", NULL);
        th_sysfs_add_netdev(f->sysfs, pf, "enp94s0d1", "aa02", NULL);
        th_sysfs_add_vf(f->sysfs, pf, 0, vf, "mlx4_en");
        th_sysfs_add_netdev(f->sysfs, vf, "enp94s0v0", "aa02", NULL);
        ip("ip link add %s type veth peer name p1-peer", "enp94s0");
        ip("ip link add %s type veth peer name p2-peer", "enp94s0d1");
        ip("ip link set %s up", "enp94s0");

        /* managed: false on a VF still on its net driver fails, but its resolution is recorded on the way. */
        th_write(f->env->conf, "10-vf.yaml",
                 "apiVersion: virtform/v1\nkind: Hostdev\nmetadata: {name: port2}\nspec:\n  pci: \"0000:5e:00.2\"\n"
                 "  managed: false\n");
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "port2", RC_CREATED, "Released");
        _cleanup_(state_device_freep) state_device *dev = device(f, vf);
        assert_non_null(dev);
        assert_string_equal(dev->pf_netdev, "enp94s0d1");
        assert_string_equal(dev->phys_port_id, "aa02");

        /* Now on vfio-pci, without a netdev: only the record knows it is port 2. */
        th_sysfs_set_driver(f->sysfs, vf, "vfio-pci");
        th_sysfs_remove_netdevs(f->sysfs, vf);
        th_write(f->env->conf, "20-db.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: db}\nspec:\n  memory: 256MiB\n"
                 "  interfaces: [{hostdev: port2}]\n");
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "port2", RC_WAITING, "PFDown");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "port2")->message, "enp94s0d1"));
        assert_false(domain_exists(f, "db"));

        ip("ip link set %s up", "enp94s0d1");
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "port2", RC_UNCHANGED, "Assigned");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "port2")->message, "resolved by recorded"));
        assert_true(th_domain_active(f->env->other, "db"));
}

static void test_second_claimant_conflicts(void **state) {
        fixture *f = *state;

        ip("ip link set %s up", PF_NETDEV);
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV(""));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        th_write(f->env->conf, "30-other.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: zz-other}\nspec:\n  memory: 256MiB\n"
                 "  hostdevs: [db-vf]\n");
        run_pass(f);
        assert_result(f, VF_KIND_DOMAIN, "db", RC_CREATED, "Applied");
        assert_result(f, VF_KIND_DOMAIN, "zz-other", RC_FAILED, "Conflict");
        assert_non_null(strstr(result(f, VF_KIND_DOMAIN, "zz-other")->message, "domain db"));
        assert_false(domain_exists(f, "zz-other"));
}

/* ---- VF config ------------------------------------------------------------------ */

/* No link here configures VFs: a real set fails cleanly, and no original is touched or lost. */
static void test_vf_config_unsupported_on_real_link(void **state) {
        fixture *f = *state;

        ip("ip link set %s up", PF_NETDEV);
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n  vlan: 42\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_FAILED, "VFConfigUnsupported");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "db-vf")->message, PF_NETDEV));
        assert_result(f, VF_KIND_DOMAIN, "db", RC_WAITING, "DependencyNotReady");
        _cleanup_(state_device_freep) state_device *dev = device(f, VF);
        assert_true(!dev || !dev->saved);
}

static void test_vf_config_saved_set_and_restored(void **state) {
        fixture *f = *state;
        uint8_t want[6], original[6];

        use_fake_kernel(f);
        mac_of("52:54:00:12:34:56", want);
        mac_of(ORIGINAL_MAC, original);
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n  vlan: 42\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_CREATED, "Assigned");
        assert_memory_equal(f->kernel->vf.mac, want, 6);
        assert_int_equal(f->kernel->vf.vlan, 42);
        _cleanup_(state_device_freep) state_device *dev = device(f, VF);
        assert_true(dev->saved);
        assert_string_equal(dev->saved_admin_mac, ORIGINAL_MAC);
        assert_int_equal(dev->saved_vlan, 0);
        assert_string_equal(dev->saved_pf_netdev, PF_NETDEV);

        /* Settled: the next pass sets nothing. */
        unsigned setlinks = f->kernel->setlinks;
        run_pass(f);
        assert_int_equal(f->kernel->setlinks, setlinks);

        /* The domain goes: the VF gets its originals back, and only then are they forgotten. */
        th_remove(f->env->conf, "20-db.yaml");
        run_pass(f);
        assert_result(f, VF_KIND_DOMAIN, "db", RC_DELETED, "Removed");
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_UPDATED, "Released");
        assert_memory_equal(f->kernel->vf.mac, original, 6);
        assert_int_equal(f->kernel->vf.vlan, 0);
        _cleanup_(state_device_freep) state_device *after = device(f, VF);
        assert_false(after->saved);
}

static void test_failed_restore_keeps_originals(void **state) {
        fixture *f = *state;

        use_fake_kernel(f);
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        th_remove(f->env->conf, "20-db.yaml");
        f->kernel->fail_setlink = -ENODEV;
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_FAILED, "RestoreFailed");
        _cleanup_(state_device_freep) state_device *dev = device(f, VF);
        assert_true(dev->saved);
        assert_string_equal(dev->saved_admin_mac, ORIGINAL_MAC);

        f->kernel->fail_setlink = 0;
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_UPDATED, "Released");
}

static void test_vf_in_reset_is_retried_not_failed(void **state) {
        fixture *f = *state;

        use_fake_kernel(f);
        f->kernel->fail_setlink = -EBUSY;
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  vlan: 7\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_WAITING, "VFResetting");
        f->kernel->fail_setlink = 0;
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_UPDATED, "Assigned");
        assert_int_equal(f->kernel->vf.vlan, 7);
}

/* A child process runs the next pass and is killed at point, as a crash there would. */
static void crash_at(fixture *f, const char *point) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                f->env->opts.fault_point = point;
                /* No assertion in the child: a failed one would run the remaining tests here. */
                _exit(th_env_try_pass(f->env) < 0 ? 1 : 0); /* the fault point was not reached */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
}

/* ---- libvirt's order, and a crash at each host step ------------------------------- */

#define VF_NETDEV "enp59s0f0v1"
#define OWN_MAC "02:11:22:33:44:55" /* what the fixture gives a new netdev */

#define SYSFS_BIND                                                                                           \
        "devices/pci0000:00/" VF "/driver_override vfio-pci\n"                                               \
        "devices/pci0000:00/" VF "/driver/unbind " VF "\n"                                                   \
        "bus/pci/drivers_probe " VF "\n"
#define SYSFS_GIVE_BACK                                                                                      \
        "devices/pci0000:00/" VF "/driver_override \n"                                                       \
        "devices/pci0000:00/" VF "/driver/unbind " VF "\n"                                                   \
        "bus/pci/drivers_probe " VF "\n"
/* The VF config is set and restored while the VF is on vfio-pci; its own MAC once its net driver has it back. */
#define NETLINK_SET "vf-mac@vfio-pci\nvf-vlan@vfio-pci\n"
#define NETLINK_RESTORE "vf-mac@vfio-pci\nvf-vlan@vfio-pci\nown-mac@iavf\n"

/* The VF on its net driver, with its netdev, as a host has it before any assignment. */
static void vf_on_net_driver(fixture *f) {
        th_sysfs_set_driver(f->sysfs, VF, "iavf");
        th_sysfs_set_native_driver(f->sysfs, VF, "iavf");
        th_sysfs_add_netdev(f->sysfs, VF, VF_NETDEV, NULL, NULL);
}

/* plan of a Hostdev no longer declared, its domain stopped: the release's steps, the driver named, nothing done. */
static void test_plan_shows_release_steps(void **state) {
        fixture *f = *state;

        use_fake_kernel(f);
        vf_on_net_driver(f);
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n  vlan: 42\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_CREATED, "Assigned");
        virDomainPtr db = virDomainLookupByName(f->env->other, "db");
        assert_non_null(db);
        assert_int_equal(virDomainDestroy(db), 0);
        virDomainFree(db);

        th_remove(f->env->conf, "10-vf.yaml");
        th_remove(f->env->conf, "20-db.yaml");
        unsigned setlinks = f->kernel->setlinks;
        th_env_close(f->env);
        f->env->opts.dry_run = true;
        run_pass(f);
        const rc_result *res = result(f, VF_KIND_HOSTDEV, "db-vf");
        assert_int_equal(res->outcome, RC_DELETED);
        assert_int_equal(vf_strv_length(res->steps), 2);
        assert_string_equal(res->steps[0], "restore VF mac/vlan");
        assert_string_equal(res->steps[1], "give back to iavf");
        /* Only planned: the VF keeps its config and its driver. */
        assert_int_equal(f->kernel->setlinks, setlinks);
        assert_int_equal(f->kernel->vf.vlan, 42);
        _cleanup_free_ char *driver = th_sysfs_driver(f->sysfs, VF);
        assert_string_equal(driver, "vfio-pci");
        th_env_close(f->env);
        f->env->opts.dry_run = false;
}

static void assert_host(fixture *f, const char *driver, const char *sysfs_writes, const char *netlink_log) {
        _cleanup_free_ char *now = th_sysfs_driver(f->sysfs, VF);
        _cleanup_free_ char *writes = th_sysfs_write_log(f->sysfs);

        assert_string_equal(now, driver);
        assert_string_equal(writes, sysfs_writes);
        assert_string_equal(f->kernel->log, netlink_log);
}

static void assert_reason(fixture *f, const char *reason) {
        const rc_result *r = result(f, VF_KIND_HOSTDEV, "db-vf");
        if (!vf_streq_ptr(r->reason, reason))
                fail_msg("hostdev/db-vf: expected %s, got %s: %s", reason, r->reason, r->message);
}

/*
 * Assigns a VF on its net driver to a domain, then releases it, with a crash
 * at point (NULL: none) in the assignment or in the release. Whatever the
 * crash, the host must end as after a clean run, each write made once.
 */
static void assign_and_release(fixture *f, const char *point, bool in_release) {
        uint8_t original[6];

        use_fake_kernel(f);
        vf_on_net_driver(f);
        mac_of(ORIGINAL_MAC, original);
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n  vlan: 42\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        if (point && !in_release)
                crash_at(f, point);
        run_pass(f);
        assert_reason(f, "Assigned");
        assert_host(f, "vfio-pci", SYSFS_BIND, NETLINK_SET);
        assert_int_equal(f->kernel->vf.vlan, 42);
        assert_true(th_domain_active(f->env->other, "db"));

        th_remove(f->env->conf, "20-db.yaml");
        th_env_close(f->env);
        if (point && in_release)
                crash_at(f, point);
        run_pass(f);
        assert_reason(f, "Released");
        assert_host(f, "iavf", SYSFS_BIND SYSFS_GIVE_BACK, NETLINK_SET NETLINK_RESTORE);
        assert_memory_equal(f->kernel->vf.mac, original, 6);
        assert_int_equal(f->kernel->vf.vlan, 0);
        _cleanup_free_ char *override = th_sysfs_read(f->sysfs, "devices/pci0000:00/" VF "/driver_override");
        assert_string_equal(override, "(null)\n");
        _cleanup_free_ char *own = th_sysfs_read(f->sysfs, "class/net/" VF_NETDEV "/address");
        assert_string_equal(own, OWN_MAC "\n");
        _cleanup_(state_device_freep) state_device *dev = device(f, VF);
        assert_null(dev->bind_phase);
        assert_false(dev->saved);
        assert_null(dev->saved_own_mac);
}

/* One case per fault point, in the order the host steps run. */
#define MATRIX_CASE(name, point, in_release)                    \
        static void name(void **state) {                        \
                assign_and_release(*state, point, in_release);  \
        }
MATRIX_CASE(test_clean_assign_and_release, NULL, false)
MATRIX_CASE(test_crash_after_journal, "hostdev-after-journal", false)
MATRIX_CASE(test_crash_mid_bind, "hostdev-mid-bind", false)
MATRIX_CASE(test_crash_after_save, "hostdev-after-save", false)
MATRIX_CASE(test_crash_after_set, "hostdev-after-set", false)
MATRIX_CASE(test_crash_after_restore, "hostdev-after-restore", true)
MATRIX_CASE(test_crash_mid_release, "hostdev-mid-release", true)
MATRIX_CASE(test_crash_after_own_mac, "hostdev-after-own-mac", true)
#undef MATRIX_CASE

/* The net driver makes the VF's netdev only later: its own MAC waits for it, then is restored. */
static void test_own_mac_waits_for_netdev(void **state) {
        fixture *f = *state;

        use_fake_kernel(f);
        vf_on_net_driver(f);
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_reason(f, "Assigned");

        th_sysfs_hold_netdevs(f->sysfs, VF, true);
        th_remove(f->env->conf, "20-db.yaml");
        run_pass(f);
        assert_reason(f, "VFNetdevPending");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "db-vf")->message, OWN_MAC));
        assert_null(strstr(f->kernel->log, "own-mac"));
        _cleanup_(state_device_freep) state_device *pending = device(f, VF);
        assert_string_equal(pending->saved_own_mac, OWN_MAC);

        th_sysfs_hold_netdevs(f->sysfs, VF, false);
        run_pass(f);
        assert_reason(f, "Released");
        assert_non_null(strstr(f->kernel->log, "own-mac@iavf\n"));
        _cleanup_free_ char *own = th_sysfs_read(f->sysfs, "class/net/" VF_NETDEV "/address");
        assert_string_equal(own, OWN_MAC "\n");
        _cleanup_(state_device_freep) state_device *done = device(f, VF);
        assert_null(done->saved_own_mac);
}

/* Without the vfio-pci module the bind fails, and the VF is back on its driver at once, override cleared. */
static void test_failed_bind_gives_device_back(void **state) {
        fixture *f = *state;

        use_fake_kernel(f);
        vf_on_net_driver(f);
        th_sysfs_remove_driver(f->sysfs, "vfio-pci");
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_reason(f, "BindFailed");
        const char *message = result(f, VF_KIND_HOSTDEV, "db-vf")->message;
        assert_non_null(strstr(message, "bind to vfio-pci"));
        assert_non_null(strstr(message, "/bus/pci/drivers_probe"));
        assert_non_null(strstr(message, "modprobe vfio-pci"));
        /* Never bound, so nothing to unbind: the probe alone gives it back. */
        assert_host(f, "iavf",
                    SYSFS_BIND "devices/pci0000:00/" VF "/driver_override \n"
                               "bus/pci/drivers_probe " VF "\n",
                    "own-mac@iavf\n");
        _cleanup_free_ char *own = th_sysfs_read(f->sysfs, "class/net/" VF_NETDEV "/address");
        assert_string_equal(own, OWN_MAC "\n");
        _cleanup_free_ char *override = th_sysfs_read(f->sysfs, "devices/pci0000:00/" VF "/driver_override");
        assert_string_equal(override, "(null)\n");
        _cleanup_(state_device_freep) state_device *dev = device(f, VF);
        assert_null(dev->bind_phase);
        assert_false(domain_exists(f, "db"));
}

/* A MAC the PF refuses: the bind is undone in reverse and the VF goes back to its driver. */
static void test_failed_set_undoes_bind(void **state) {
        fixture *f = *state;

        use_fake_kernel(f);
        vf_on_net_driver(f);
        f->kernel->fail_setlink = -EINVAL;
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_reason(f, "VFConfigFailed");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "db-vf")->message, "RTM_SETLINK"));
        assert_host(f, "iavf", SYSFS_BIND SYSFS_GIVE_BACK, "own-mac@iavf\n");
        _cleanup_free_ char *own = th_sysfs_read(f->sysfs, "class/net/" VF_NETDEV "/address");
        assert_string_equal(own, OWN_MAC "\n");
        _cleanup_(state_device_freep) state_device *dev = device(f, VF);
        assert_null(dev->bind_phase);
        assert_false(dev->saved);
        assert_false(domain_exists(f, "db"));
}

static void test_crash_after_restore_does_not_restore_twice(void **state) {
        fixture *f = *state;
        uint8_t original[6];

        use_fake_kernel(f);
        mac_of(ORIGINAL_MAC, original);
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_int_equal(f->kernel->setlinks, 1);
        th_env_close(f->env);
        th_remove(f->env->conf, "20-db.yaml");
        crash_at(f, "hostdev-after-restore");
        assert_memory_equal(f->kernel->vf.mac, original, 6);
        assert_int_equal(f->kernel->setlinks, 3);

        /* The originals were still saved at the crash, but the VF already holds them: no second restore. */
        run_pass(f);
        assert_int_equal(f->kernel->setlinks, 3);
        assert_memory_equal(f->kernel->vf.mac, original, 6);
        _cleanup_(state_device_freep) state_device *dev = device(f, VF);
        assert_false(dev->saved);
}

/* ---- binding ---------------------------------------------------------------------- */

static void test_managed_false_on_net_driver_fails(void **state) {
        fixture *f = *state;

        ip("ip link set %s up", PF_NETDEV);
        th_write(f->env->conf, "10-vf.yaml",
                 "apiVersion: virtform/v1\nkind: Hostdev\nmetadata: {name: db-vf}\nspec:\n  pci: \"0000:3b:02.0\"\n"
                 "  managed: false\n");
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_FAILED, "NotOnVfio");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "db-vf")->message, "iavf"));
        assert_false(domain_exists(f, "db"));
}

/* A crash in the middle of a bind leaves a journal; the next run finishes it and, later, gives the VF back. */
static void test_crash_mid_bind_is_repaired(void **state) {
        fixture *f = *state;
        const char *vf0 = "0000:3b:02.0";

        ip("ip link set %s up", PF_NETDEV);
        th_write(f->env->conf, "10-vf.yaml",
                 "apiVersion: virtform/v1\nkind: Hostdev\nmetadata: {name: db-vf}\nspec:\n  pci: \"0000:3b:02.0\"\n");
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        crash_at(f, "hostdev-mid-bind");
        /* Killed between unbind and probe: the override is set and the device on no driver. */
        _cleanup_free_ char *override = th_sysfs_read(f->sysfs, "devices/pci0000:00/0000:3b:02.0/driver_override");
        assert_string_equal(override, "vfio-pci\n");
        _cleanup_free_ char *mid = th_sysfs_driver(f->sysfs, vf0);
        assert_null(mid);
        assert_int_equal(th_sysfs_count_writes(f->sysfs, "/unbind"), 1);
        assert_int_equal(th_sysfs_count_writes(f->sysfs, "drivers_probe"), 0);

        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_CREATED, "Assigned");
        _cleanup_free_ char *bound = th_sysfs_driver(f->sysfs, vf0);
        assert_string_equal(bound, "vfio-pci");
        _cleanup_(state_device_freep) state_device *dev = device(f, vf0);
        assert_string_equal(dev->bind_phase, "bound");
        assert_string_equal(dev->original_driver, "iavf");

        th_remove(f->env->conf, "20-db.yaml");
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "db-vf", RC_UPDATED, "Released");
        _cleanup_free_ char *cleared = th_sysfs_read(f->sysfs, "devices/pci0000:00/0000:3b:02.0/driver_override");
        assert_string_equal(cleared, "(null)\n");
        _cleanup_free_ char *back = th_sysfs_driver(f->sysfs, vf0);
        assert_string_equal(back, "iavf");
        _cleanup_(state_device_freep) state_device *released = device(f, vf0);
        assert_null(released->bind_phase);
}

/* ---- a new address ----------------------------------------------------------------- */

#define OTHER "0000:3c:00.0"

/* spec.pci moves from a VF to another device: the VF is restored and given back, its row gone, before the other is bound. */
static void test_address_change_releases_old_device(void **state) {
        fixture *f = *state;
        uint8_t original[6];

        use_fake_kernel(f);
        vf_on_net_driver(f);
        mac_of(ORIGINAL_MAC, original);
        th_sysfs_add_device(f->sysfs, OTHER, "nvme");
        th_write(f->env->conf, "10-vf.yaml", HOSTDEV("  mac: \"52:54:00:12:34:56\"\n  vlan: 42\n"));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        run_pass(f);
        assert_reason(f, "Assigned");

        /* Still attached to the running domain: kept until that domain lets go of it. */
        th_write(f->env->conf, "10-vf.yaml",
                 "apiVersion: virtform/v1\nkind: Hostdev\nmetadata: {name: db-vf}\nspec:\n  pci: \"" OTHER "\"\n");
        run_pass(f);
        assert_reason(f, "InUse");
        assert_non_null(strstr(result(f, VF_KIND_HOSTDEV, "db-vf")->message, "spec.pci changed from " VF));
        assert_host(f, "vfio-pci", SYSFS_BIND, NETLINK_SET);

        virDomainPtr dom = virDomainLookupByName(f->env->other, "db");
        assert_non_null(dom);
        assert_int_equal(virDomainDestroy(dom), 0);
        virDomainFree(dom);
        run_pass(f);
        assert_reason(f, "Assigned");
        assert_host(f, "iavf",
                    SYSFS_BIND SYSFS_GIVE_BACK "devices/pci0000:00/" OTHER "/driver_override vfio-pci\n"
                                               "devices/pci0000:00/" OTHER "/driver/unbind " OTHER "\n"
                                               "bus/pci/drivers_probe " OTHER "\n",
                    NETLINK_SET NETLINK_RESTORE);
        assert_memory_equal(f->kernel->vf.mac, original, 6);
        assert_int_equal(f->kernel->vf.vlan, 0);
        _cleanup_free_ char *other = th_sysfs_driver(f->sysfs, OTHER);
        assert_string_equal(other, "vfio-pci");
        state_device *gone = NULL;
        assert_int_equal(state_device_get(f->env->c.store, VF, &gone), -ENOENT);
        _cleanup_(state_record_freep) state_record *rec = NULL;
        assert_int_equal(state_get(f->env->c.store, "hostdev", "db-vf", &rec), 0);
        assert_string_equal(rec->uuid, OTHER);
}

/* ---- pruning a Hostdev that never resolved ----------------------------------------- */

/* Pruned, then a restarted run: no crash on the way (the record carries no address) and the record is gone. */
static void prune_unresolved(fixture *f, const char *spec, const char *reason) {
        th_write(f->env->conf, "10-vf.yaml", "apiVersion: virtform/v1\nkind: Hostdev\nmetadata: {name: lost}\n%s", spec);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "lost", RC_FAILED, reason);

        th_remove(f->env->conf, "10-vf.yaml");
        th_env_close(f->env);
        run_pass(f);
        assert_result(f, VF_KIND_HOSTDEV, "lost", RC_DELETED, "Removed");
        _cleanup_(state_record_freep) state_record *rec = NULL;
        assert_int_equal(state_get(f->env->c.store, "hostdev", "lost", &rec), -ENOENT);

        th_env_close(f->env);
        run_pass(f);
        assert_int_equal(f->env->report.n_entries, 0);
}

static void test_prune_absent_device(void **state) {
        prune_unresolved(*state, "spec:\n  pci: \"0000:3b:07.0\"\n", "NoSuchDevice");
}

static void test_prune_not_a_vf(void **state) {
        fixture *f = *state;

        th_sysfs_add_device(f->sysfs, "0000:3c:00.0", "nvme");
        prune_unresolved(f, "spec:\n  pci: \"0000:3c:00.0\"\n  mac: \"52:54:00:12:34:56\"\n", "NotAVF");
}

static void test_prune_ambiguous(void **state) {
        fixture *f = *state;
        const char *pf = "0000:5e:00.0";

        th_sysfs_add_device(f->sysfs, pf, "mlx4_core");
        th_sysfs_add_netdev(f->sysfs, pf, "enp94s0", "aa01", NULL);
        th_sysfs_add_netdev(f->sysfs, pf, "enp94s0d1", "aa02", NULL);
        th_sysfs_add_vf(f->sysfs, pf, 0, "0000:5e:00.2", "vfio-pci");
        prune_unresolved(f, "spec:\n  pci: \"0000:5e:00.2\"\n", "Ambiguous");
}

/* ---- the binary ------------------------------------------------------------------------ */

static void test_apply_exits_2_with_pf_down(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *out = vf_printf("%s/out", f->env->dir);

        th_write(f->env->conf, "10-vf.yaml", HOSTDEV(""));
        th_write(f->env->conf, "20-db.yaml", DOMAIN_DB);
        _cleanup_free_ char *cmd = vf_printf("'%s' apply -c test:///default --state '%s' --sysfs-root '%s' '%s' > '%s' 2>&1",
                                             getenv("VIRTFORM"), f->env->state, f->sysfs->root, f->env->conf, out);
        int status = system(cmd);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
        _cleanup_free_ char *text = NULL;
        assert_int_equal(vf_read_file(out, 1 << 20, &text, NULL), 0);
        assert_non_null(strstr(text, "waiting   hostdev/db-vf: PFDown"));
        assert_non_null(strstr(text, PF_NETDEV));
        assert_non_null(strstr(text, "waiting   domain/db"));
        assert_null(strstr(text, "start"));

        _cleanup_free_ char *json = vf_printf("'%s' hostdev resolve --sysfs-root '%s' -o json %s > '%s'",
                                              getenv("VIRTFORM"), f->sysfs->root, VF, out);
        assert_int_equal(system(json), 0);
        free(text);
        text = NULL;
        assert_int_equal(vf_read_file(out, 1 << 20, &text, NULL), 0);
        assert_non_null(strstr(text, "\"pf\":\"" PF "\""));
        assert_non_null(strstr(text, "\"pf_netdev\":\"" PF_NETDEV "\""));
        assert_non_null(strstr(text, "\"vf_index\":1"));
        assert_non_null(strstr(text, "\"pf_admin_up\":false"));
        assert_non_null(strstr(text, "\"error\":null"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
                T(test_pf_down_refuses_then_up_proceeds),
                T(test_pf_down_changes_nothing_on_host),
                T(test_dual_port_gate_follows_recorded_port),
                T(test_second_claimant_conflicts),
                T(test_vf_config_unsupported_on_real_link),
                T(test_vf_config_saved_set_and_restored),
                T(test_plan_shows_release_steps),
                T(test_failed_restore_keeps_originals),
                T(test_vf_in_reset_is_retried_not_failed),
                T(test_clean_assign_and_release),
                T(test_crash_after_journal),
                T(test_crash_mid_bind),
                T(test_crash_after_save),
                T(test_crash_after_set),
                T(test_crash_after_restore),
                T(test_crash_mid_release),
                T(test_crash_after_own_mac),
                T(test_own_mac_waits_for_netdev),
                T(test_failed_bind_gives_device_back),
                T(test_failed_set_undoes_bind),
                T(test_crash_after_restore_does_not_restore_twice),
                T(test_managed_false_on_net_driver_fails),
                T(test_crash_mid_bind_is_repaired),
                T(test_address_change_releases_old_device),
                T(test_prune_absent_device),
                T(test_prune_not_a_vf),
                T(test_prune_ambiguous),
                T(test_apply_exits_2_with_pf_down),
#undef T
        };

        /* Links live in a network namespace of this process alone, gone when it exits. */
        return th_run_group(tests, NULL, NULL, th_enter_netns() ? NULL : "needs a network namespace of its own (CAP_SYS_ADMIN, CAP_NET_ADMIN)");
}
