/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Drift is what virtform asked for, as libvirt shows it: first the projection
 * (reconcilers/drift.c) on documents shaped like libvirt's, then the whole
 * thing across processes on the embedded QEMU driver, whose definitions are
 * files that libvirt loads again, and writes in its own order, when a new
 * process opens them, as a restarted or upgraded libvirtd would.
 */
#include "reconcilers/object.h"
#include "tests/helpers.h"

/* The desired document as a define completes it: type, UUID, MACs. */
#define WANT                                                                                                   \
        "<domain type='qemu'><name>web</name><uuid>0e3bd4a4-2d3b-4e8c-9c0e-3f5f0d1b8a11</uuid>"                \
        "<memory unit='KiB'>131072</memory><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"     \
        "<disk type='file' device='disk'><source file='/img/a.qcow2'/><target dev='vda' bus='virtio'/></disk>" \
        "<disk type='file' device='disk'><source file='/img/b.qcow2'/><target dev='vdb' bus='virtio'/></disk>" \
        "<interface type='network'><mac address='52:54:00:00:00:01'/><source network='lan'/></interface>"      \
        "<interface type='network'><mac address='52:54:00:00:00:02'/><source network='san'/></interface>"      \
        "<controller type='usb' model='qemu-xhci'/><input type='tablet' bus='usb'/></devices></domain>"

/* Pieces of libvirt's version of it, which writes devices in an order of its own and adds to them. */
#define HEAD(memory)                                                                                              \
        "<domain type='qemu'><name>web</name><uuid>0e3bd4a4-2d3b-4e8c-9c0e-3f5f0d1b8a11</uuid>"                   \
        "<metadata><virtform:owner xmlns:virtform='https://virtform.org/xmlns/owner/1' generation='3'/></metadata>" \
        "<memory unit='KiB'>" memory "</memory><currentMemory unit='KiB'>131072</currentMemory>"                  \
        "<vcpu placement='static'>1</vcpu><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os><devices>"  \
        "<emulator>/usr/bin/qemu-system-x86_64</emulator>"
#define DISK_A                                                                                       \
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/img/a.qcow2'/>" \
        "<target dev='vda' bus='virtio'/><address type='pci' bus='0x04'/></disk>"
#define DISK_B                                                                                       \
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/img/b.qcow2'/>" \
        "<target dev='vdb' bus='virtio'/><address type='pci' bus='0x05'/></disk>"
#define NIC(mac, network)                                                                              \
        "<interface type='network'><mac address='" mac "'/><source network='" network "'/>"            \
        "<model type='virtio'/><address type='pci' bus='0x01'/></interface>"
#define NIC_LAN NIC("52:54:00:00:00:01", "lan")
#define NIC_SAN NIC("52:54:00:00:00:02", "san")
#define CONTROLLERS                                                                                    \
        "<controller type='usb' index='0' model='qemu-xhci'><address type='pci' bus='0x02'/></controller>" \
        "<controller type='sata' index='0'/><controller type='pci' index='0' model='pcie-root'/>"          \
        "<controller type='pci' index='1' model='pcie-root-port'/>"
#define OTHERS "<input type='tablet' bus='usb'/><input type='mouse' bus='ps2'/><memballoon model='virtio'/>"
#define TAIL "</devices></domain>"

static char *projection(const char *want_xml, const char *have_xml) {
        _cleanup_(xmlFreeDocp) xmlDoc *want = rc_xml_parse(want_xml);
        _cleanup_(xmlFreeDocp) xmlDoc *have = rc_xml_parse(have_xml);

        assert_non_null(want);
        assert_non_null(have);
        char *p = rc_drift_projection(want, have);
        assert_non_null(p);
        return p;
}

static void assert_drift(const char *have_xml, bool drift) {
        static const char *const baseline = HEAD("131072") DISK_A DISK_B NIC_LAN NIC_SAN CONTROLLERS OTHERS TAIL;
        _cleanup_free_ char *before = projection(WANT, baseline), *now = projection(WANT, have_xml);

        if ((strcmp(before, now) != 0) != drift)
                fail_msg("expected %s:\n%s\n%s", drift ? "drift" : "no drift", before, now);
}

static void test_reordered_devices_are_no_drift(void **state) {
        /* What a reload may do: controllers first, disks and interfaces swapped, the others in between. */
        assert_drift(HEAD("131072") CONTROLLERS NIC_SAN OTHERS DISK_B NIC_LAN DISK_A TAIL, false);
        /* What libvirt adds, and what it fills in, is none of virtform's business. */
        assert_drift(HEAD("131072") DISK_A DISK_B NIC_LAN NIC_SAN CONTROLLERS OTHERS
                     "<controller type='pci' index='2' model='pcie-root-port'/><rng model='virtio'/>" TAIL, false);
}

static void test_changes_are_drift(void **state) {
        /* A changed memory size. */
        assert_drift(HEAD("262144") DISK_A DISK_B NIC_LAN NIC_SAN CONTROLLERS OTHERS TAIL, true);
        /* A removed interface. */
        assert_drift(HEAD("131072") DISK_A DISK_B NIC_LAN CONTROLLERS OTHERS TAIL, true);
        /* A changed MAC. */
        assert_drift(HEAD("131072") DISK_A DISK_B NIC_LAN NIC("52:54:00:00:00:99", "san") CONTROLLERS OTHERS TAIL,
                     true);
        /* An interface moved to another network, and a disk to another file. */
        assert_drift(HEAD("131072") DISK_A DISK_B NIC("52:54:00:00:00:01", "san") NIC_SAN CONTROLLERS OTHERS TAIL,
                     true);
        assert_drift(HEAD("131072") DISK_A
                     "<disk type='file' device='disk'><source file='/img/c.qcow2'/><target dev='vdb' bus='virtio'/>"
                     "</disk>" NIC_LAN NIC_SAN CONTROLLERS OTHERS TAIL,
                     true);
        /* A controller of another model, and the tablet gone. */
        assert_drift(HEAD("131072") DISK_A DISK_B NIC_LAN NIC_SAN
                     "<controller type='usb' index='0' model='ich9-ehci1'/>" OTHERS TAIL,
                     true);
        assert_drift(HEAD("131072") DISK_A DISK_B NIC_LAN NIC_SAN CONTROLLERS
                     "<input type='mouse' bus='ps2'/><memballoon model='virtio'/>" TAIL,
                     true);
}

/* The <metadata> of a marker at that generation, in the form of namespace ns. */
static char *marker_metadata(const char *ns, const char *generation) {
        return strcmp(ns, RC_OWNER_NS_1) == 0
                       ? vf_printf("<metadata><virtform:owner xmlns:virtform='%s' generation='%s'/></metadata>", ns,
                                   generation)
                       : vf_printf("<metadata><virtform:owner xmlns:virtform='%s'>generation=%s</virtform:owner>"
                                   "</metadata>",
                                   ns, generation);
}

/* WANT as defined, its marker at generation 3 in the form of namespace ns, with what libvirt made of it. */
static char *projection_of_marked(const char *ns, const char *have_generation) {
        _cleanup_free_ char *want = strdup(WANT), *have = strdup(HEAD("131072") DISK_A DISK_B NIC_LAN NIC_SAN TAIL);
        _cleanup_free_ char *want_marker = marker_metadata(ns, "3"), *have_marker = marker_metadata(ns, have_generation);
        assert_non_null(want);
        assert_non_null(have);
        char *at = strstr(want, "<memory");
        *at = '\0';
        _cleanup_free_ char *want_marked = vf_printf("%s%s<memory%s", want, want_marker, at + strlen("<memory"));
        at = strstr(have, "<metadata>");
        *at = '\0';
        _cleanup_free_ char *have_marked = vf_printf("%s%s%s", have, have_marker, strstr(at + 1, "</metadata>") +
                                                                                   strlen("</metadata>"));
        return projection(want_marked, have_marked);
}

/* The marker, of either form, changes with every define: a marker libvirt holds of another generation is no drift. */
static void test_marker_is_no_drift(void **state) {
        static const char *const forms[] = { RC_OWNER_NS, RC_OWNER_NS_1 };

        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                _cleanup_free_ char *same = projection_of_marked(forms[i], "3"),
                                    *later = projection_of_marked(forms[i], "4");
                assert_string_equal(same, later);
                assert_null(strstr(later, "owner"));
        }
}

/* ---- across processes, on qemu:///embed ---------------------------------------------------- */

/* A q35 machine to which libvirt adds controllers, USB companions and addresses, written back reordered. */
static const char q35_domain[] =
        "<domain type='qemu'>\n"
        "  <name>q35</name>\n"
        "  <metadata>\n"
        "    <vf:policy xmlns:vf='https://virtform.org/xmlns/policy/1' state='shutoff' autostart='no'/>\n"
        "  </metadata>\n"
        "  <memory unit='KiB'>131072</memory>\n"
        "  <vcpu>1</vcpu>\n"
        "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
        "  <devices>\n"
        "    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/q35.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk>\n"
        "    <disk type='file' device='cdrom'><source file='/var/lib/libvirt/images/q35.iso'/>"
        "<target dev='sda' bus='sata'/><readonly/></disk>\n"
        "    <disk type='file' device='cdrom'><source file='/var/lib/libvirt/images/seed.iso'/><readonly/></disk>\n"
        "    <interface type='user'><model type='virtio'/></interface>\n"
        "    <interface type='user'><model type='e1000e'/></interface>\n"
        "    <serial type='pty'/>\n"
        "    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n"
        "    <input type='tablet' bus='usb'/>\n"
        "    <controller type='usb' model='ich9-ehci1'/>\n"
        "    <graphics type='spice' autoport='yes'/>\n"
        "    <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>\n"
        "    <redirdev bus='usb' type='spicevmc'/>\n"
        "    <sound model='ich9'/>\n"
        "  </devices>\n"
        "</domain>\n";

/* A machine the file does not name is the hypervisor's default for the arch: i440fx, whose cdroms are IDE. */
static const char pc_domain[] =
        "<domain type='qemu'>\n"
        "  <name>pc</name>\n"
        "  <metadata>\n"
        "    <vf:policy xmlns:vf='https://virtform.org/xmlns/policy/1' state='shutoff' autostart='no'/>\n"
        "  </metadata>\n"
        "  <memory unit='KiB'>131072</memory>\n"
        "  <os><type arch='x86_64'>hvm</type></os>\n"
        "  <devices>\n"
        "    <disk type='file' device='cdrom'><source file='/var/lib/libvirt/images/pc.iso'/><readonly/></disk>\n"
        "    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/pc.qcow2'/></disk>\n"
        "  </devices>\n"
        "</domain>\n";

typedef struct fixture {
        char *dir;
        char *conf;
        char *uri;
        char *state;
        char *config; /* libvirt's own file for the domain */
        char *pc_config;
} fixture;

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);

        f->dir = th_mkdtemp();
        f->conf = vf_printf("%s/conf", f->dir);
        f->uri = vf_printf("qemu:///embed?root=%s/hv", f->dir);
        f->state = vf_printf("%s/state.db", f->dir);
        f->config = vf_printf("%s/hv/etc/qemu/q35.xml", f->dir);
        f->pc_config = vf_printf("%s/hv/etc/qemu/pc.xml", f->dir);
        assert_int_equal(mkdir(f->conf, 0755), 0);
        th_write(f->conf, "10-q35.xml", "%s", q35_domain);
        th_write(f->conf, "20-pc.xml", "%s", pc_domain);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        th_rmtree(f->dir);
        free(f->dir);
        free(f->conf);
        free(f->uri);
        free(f->state);
        free(f->config);
        free(f->pc_config);
        free(f);
        return 0;
}

/* A new process each time: the embedded driver loads its definitions from the files anew. */
static th_run virtform(const fixture *f, const char *command) {
        const char *argv[] = { getenv("VIRTFORM"), command, "-c", f->uri, "--state", f->state, f->conf, NULL };
        assert_non_null(argv[0]);
        th_run r = th_spawn(argv, NULL);
        assert_false(r.killed);
        return r;
}

/* libvirt rewrites a definition through a new file renamed into place: a define changes inode and mtime. */
static void assert_config_untouched(const char *config, const struct stat *before, const char *xml_before) {
        struct stat now;

        assert_int_equal(stat(config, &now), 0);
        assert_int_equal(now.st_ino, before->st_ino);
        assert_int_equal(now.st_mtim.tv_sec, before->st_mtim.tv_sec);
        assert_int_equal(now.st_mtim.tv_nsec, before->st_mtim.tv_nsec);
        _cleanup_free_ char *xml = th_slurp(config);
        assert_string_equal(xml, xml_before);
}

static void test_reload_redefines_nothing(void **state) {
        fixture *f = *state;
        struct stat before, pc_before;

        th_run created = virtform(f, "apply");
        if (strstr(created.err, "cannot connect to the hypervisor")) {
                print_message("qemu:///embed is not usable here (%s)\n", created.err);
                th_run_done(&created);
                th_skip("the embedded QEMU driver is not usable here");
        }
        if (created.status != 0)
                fail_msg("apply exited %d:\n%s%s", created.status, created.out, created.err);
        assert_non_null(strstr(created.out, "created   domain/q35"));
        assert_non_null(strstr(created.out, "created   domain/pc"));
        th_run_done(&created);
        assert_int_equal(stat(f->config, &before), 0);
        assert_int_equal(stat(f->pc_config, &pc_before), 0);
        _cleanup_free_ char *xml = th_slurp(f->config), *pc_xml = th_slurp(f->pc_config);
        /* Targets the files leave open: the next free name on the machine's cdrom bus, and virtio for a disk. */
        assert_non_null(strstr(xml, "<target dev='sdb' bus='sata'/>"));
        assert_non_null(strstr(pc_xml, "<target dev='hda' bus='ide'/>"));
        assert_non_null(strstr(pc_xml, "<target dev='vda' bus='virtio'/>"));

        /* Loaded again by each new process: plan sees nothing to do, and apply writes nothing, twice over. */
        _cleanup_(th_run_done) th_run plan = virtform(f, "plan");
        if (plan.status != 0)
                fail_msg("plan exited %d:\n%s%s", plan.status, plan.out, plan.err);
        assert_non_null(strstr(plan.out, "= unchanged domain/q35"));
        assert_non_null(strstr(plan.out, "= unchanged domain/pc"));
        for (int round = 0; round < 2; round++) {
                th_run again = virtform(f, "apply");
                if (again.status != 0 || !strstr(again.out, "unchanged domain/q35"))
                        fail_msg("apply exited %d:\n%s%s", again.status, again.out, again.err);
                th_run_done(&again);
                assert_config_untouched(f->config, &before, xml);
                assert_config_untouched(f->pc_config, &pc_before, pc_xml);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reordered_devices_are_no_drift),
                cmocka_unit_test(test_changes_are_drift),
                cmocka_unit_test(test_marker_is_no_drift),
                cmocka_unit_test_setup_teardown(test_reload_redefines_nothing, setup, teardown),
        };
        return th_run_group(tests, NULL, NULL, NULL);
}
