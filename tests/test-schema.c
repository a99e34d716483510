/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/xpath.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "schema/schema.h"
#include "tests/helpers.h"

/* ---- helpers -------------------------------------------------------------- */

static char *put_file(const char *dir, const char *name, const char *text) {
        char *path = vf_printf("%s/%s", dir, name);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        return path;
}

static schema_set *load_path(const char *path) {
        char *paths[] = { (char *) path };
        schema_set *set = NULL;
        assert_int_equal(schema_load(paths, 1, &set), 0);
        assert_non_null(set);
        return set;
}

/* Loads text as the one file `name`; *ret_path (optional) gets its path for diagnostics. */
static schema_set *load_text(const char *name, const char *text, char **ret_path) {
        _cleanup_free_ char *dir = th_mkdtemp();
        char *path = put_file(dir, name, text);
        schema_set *set = load_path(dir);
        th_rmtree(dir);
        if (ret_path)
                *ret_path = path;
        else
                free(path);
        return set;
}

/* The i-th diagnostic, the paths' own errors first. */
static const schema_diag *diag_at(const schema_set *set, size_t i) {
        return i < set->n_path_errors ? &set->path_errors[i] : &set->diags[i - set->n_path_errors];
}

static void print_diags(const schema_set *set) {
        for (size_t i = 0; i < set->n_path_errors + set->n_diags; i++) {
                _cleanup_free_ char *s = schema_diag_format(diag_at(set, i));
                print_message("diag: %s\n", s);
        }
}

static bool has_diag(const schema_set *set, const char *needle) {
        for (size_t i = 0; i < set->n_path_errors + set->n_diags; i++) {
                _cleanup_free_ char *s = schema_diag_format(diag_at(set, i));
                if (strstr(s, needle))
                        return true;
        }
        return false;
}

static void assert_diag(const schema_set *set, const char *needle) {
        if (has_diag(set, needle))
                return;
        print_diags(set);
        fail_msg("no diagnostic contains \"%s\"", needle);
}

static void assert_diag_at(const schema_set *set, const char *path, unsigned line, unsigned column,
                           const char *needle) {
        _cleanup_free_ char *prefix = vf_printf("%s:%u:%u: error: %s", path, line, column, needle);
        assert_diag(set, prefix);
}

/* Each diagnostic is an error at path:at ("LINE:COLUMN"). */
static void assert_every_diag_at(const schema_set *set, const char *path, const char *at) {
        _cleanup_free_ char *prefix = vf_printf("%s:%s: error: ", path, at);

        assert_int_not_equal(set->n_diags, 0);
        for (size_t i = 0; i < set->n_diags; i++) {
                _cleanup_free_ char *d = schema_diag_format(&set->diags[i]);
                if (strncmp(d, prefix, strlen(prefix)) != 0)
                        fail_msg("%s: not at %s", d, at);
        }
}

static void assert_clean(const schema_set *set) {
        if (set->n_diags + set->n_path_errors > 0)
                print_diags(set);
        assert_int_equal(set->n_diags + set->n_path_errors, 0);
        assert_null(set->files_failed);
}

/* The file failed and declared nothing. */
static void assert_failed(const schema_set *set) {
        assert_int_equal(set->n_resources, 0);
        assert_int_equal(vf_strv_length(set->files_failed), 1);
        assert_null(set->files_ok);
}

static char *xpath_string(const char *xml, const char *expr) {
        xmlDoc *doc = xmlReadMemory(xml, (int) strlen(xml), NULL, NULL, XML_PARSE_NONET);
        assert_non_null(doc);
        xmlXPathContext *ctx = xmlXPathNewContext(doc);
        xmlXPathObject *obj = xmlXPathEvalExpression(BAD_CAST expr, ctx);
        assert_non_null(obj);
        xmlChar *s = xmlXPathCastToString(obj);
        char *ret = strdup((const char *) s);
        xmlFree(s);
        xmlXPathFreeObject(obj);
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
        return ret;
}

static void assert_xpath(const char *xml, const char *expr, const char *expected) {
        _cleanup_free_ char *s = xpath_string(xml, expr);
        if (strcmp(s, expected) != 0)
                fail_msg("%s is \"%s\", expected \"%s\" in:\n%s", expr, s, expected, xml);
}

static const schema_resource *find(const schema_set *set, vf_kind kind, const char *name) {
        const schema_resource *r = schema_set_find(set, kind, name);
        if (!r) {
                print_diags(set);
                fail_msg("%s/%s not loaded", vf_kind_to_string(kind), name);
        }
        return r;
}

#define HEADER(kind, name) "apiVersion: virtform/v1\nkind: " kind "\nmetadata: {name: " name "}\n"

/* A domain with just the given spec lines (each indented by two spaces). */
static schema_set *load_domain_spec(const char *spec_lines, char **ret_path) {
        _cleanup_free_ char *text = vf_printf(HEADER("Domain", "web1") "spec:\n%s", spec_lines);
        return load_text("d.yaml", text, ret_path);
}

/* ---- names and files ------------------------------------------------------ */

static void test_candidates(void **state) {
        static const char *const yes[] = { "a.yaml", "a.yml", "a.xml", "dir/web.yaml", "x.y.yaml" };
        static const char *const no[] = { ".hidden.yaml", "a.yaml~", ".#a.yaml", "a.yaml.swp", "a.swp",
                                          "a.tmp",        "a.yaml.tmp", "a.txt",  "a.json",     "yaml",
                                          "",             "dir/.a.yaml" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                assert_true(schema_file_is_candidate(yes[i]));
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (schema_file_is_candidate(no[i]))
                        fail_msg("%s should not be a candidate", no[i]);
}

/* libvirt's rule (no '/', no newline) and no other control character either. */
static void test_names(void **state) {
        char long_name[SCHEMA_MAX_NAME_LEN + 2];

        assert_true(schema_name_is_valid("web1"));
        assert_true(schema_name_is_valid("a.b_c+d-e"));
        assert_true(schema_name_is_valid("foo=1,bar=2"));
        assert_true(schema_name_is_valid("8675309"));
        assert_true(schema_name_is_valid("-a"));
        assert_true(schema_name_is_valid("web 1"));
        assert_true(schema_name_is_valid("h\xc3\xb4te"));
        assert_false(schema_name_is_valid("a/b"));
        assert_false(schema_name_is_valid("a\nb"));
        assert_false(schema_name_is_valid("a\tb"));
        assert_false(schema_name_is_valid("a\x7f"));
        assert_false(schema_name_is_valid(""));
        memset(long_name, 'a', sizeof long_name - 1);
        long_name[SCHEMA_MAX_NAME_LEN] = 0;
        assert_true(schema_name_is_valid(long_name));
        long_name[SCHEMA_MAX_NAME_LEN] = 'a';
        long_name[SCHEMA_MAX_NAME_LEN + 1] = 0;
        assert_false(schema_name_is_valid(long_name));
}

static void test_bad_names_in_yaml(void **state) {
        static const char *const bad[] = { "a/b", "\"a\\tb\"", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_free_ char *text =
                        vf_printf("apiVersion: virtform/v1\nkind: Network\nmetadata:\n  name: %s\nspec: {}\n", bad[i]);
                _cleanup_(schema_set_freep) schema_set *set = load_text("n.yaml", text, &path);
                assert_failed(set);
                assert_diag_at(set, path, 4, 9, "invalid name");
                assert_diag(set, "without '/' or control characters");
        }
}

/* A YAML integer is a name too: libvirt's LXC tests name a container 8675309. */
static void test_numeric_name_in_yaml(void **state) {
        _cleanup_(schema_set_freep) schema_set *set =
                load_text("n.yaml", "apiVersion: virtform/v1\nkind: Network\nmetadata:\n  name: 8675309\nspec: {}\n", NULL);

        assert_clean(set);
        assert_xpath(find(set, VF_KIND_NETWORK, "8675309")->xml, "string(/network/name)", "8675309");
}

static void test_diag_format(void **state) {
        schema_diag with = { .file = (char *) "f.yaml", .line = 3, .column = 5, .message = (char *) "bad" };
        schema_diag without = { .file = (char *) "f.yaml", .message = (char *) "bad" };
        _cleanup_free_ char *a = schema_diag_format(&with);
        _cleanup_free_ char *b = schema_diag_format(&without);

        assert_string_equal(a, "f.yaml:3:5: error: bad");
        assert_string_equal(b, "f.yaml: error: bad");
}

/* Found by fuzz-xml (tests/fuzz-corpus/fuzz-xml/crash-diag-newline-in-name.xml): input bytes are escaped. */
static void test_diag_one_line(void **state) {
        _cleanup_(schema_set_freep) schema_set *yaml = load_text("c.yaml",
                HEADER("Network", "\"a\\nb\"") "spec: {\"k\\r\\e[31m\": 1}\n", NULL);
        _cleanup_(schema_set_freep) schema_set *xml = load_text("c.xml",
                "<network><name>a&#10;b&#9;c</name></network>\n", NULL);

        assert_failed(yaml);
        assert_diag(yaml, "invalid name \"a\\nb\"");
        assert_diag(yaml, "unknown key \"k\\r\\x1b[31m\"");
        assert_failed(xml);
        assert_diag(xml, "invalid name \"a\\nb\\tc\"");
        for (size_t i = 0; i < yaml->n_diags; i++)
                assert_null(strpbrk(yaml->diags[i].message, "\n\r\x1b"));
        for (size_t i = 0; i < xml->n_diags; i++)
                assert_null(strpbrk(xml->diags[i].message, "\n\t"));
}

static void test_directory_filtering(void **state) {
        static const char *const ignored[] = { ".hidden.yaml", "b.yaml~", ".#b.yaml", "b.swp", "b.tmp", "b.txt" };
        _cleanup_free_ char *dir = th_mkdtemp();
#define GOOD HEADER("Network", "n%d") "spec: {}\n"

        for (size_t i = 0; i < ELEMENTSOF(ignored); i++)
                free(put_file(dir, ignored[i], "this: [is not valid"));
        _cleanup_free_ char *sub = vf_printf("%s/d.yaml", dir);
        assert_int_equal(mkdir(sub, 0700), 0);
        _cleanup_free_ char *t1 = vf_printf(GOOD, 1), *t2 = vf_printf(GOOD, 2), *t3 = vf_printf(GOOD, 3);
#undef GOOD
        _cleanup_free_ char *c = put_file(dir, "c.yml", t3);
        _cleanup_free_ char *a = put_file(dir, "a.yaml", t1);
        _cleanup_free_ char *b = put_file(dir, "b.yaml", t2);
        _cleanup_(schema_set_freep) schema_set *set = load_path(dir);
        th_rmtree(dir);

        assert_clean(set);
        assert_int_equal(vf_strv_length(set->files_ok), 3);
        assert_string_equal(set->files_ok[0], a);
        assert_string_equal(set->files_ok[1], b);
        assert_string_equal(set->files_ok[2], c);
        assert_int_equal(set->n_resources, 3);
        assert_string_equal(set->resources[0]->name, "n1");
        assert_string_equal(set->resources[2]->name, "n3");
        assert_string_equal(set->resources[0]->file, a);
}

static void test_unreadable_and_oversized(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();
        _cleanup_free_ char *missing = vf_printf("%s/missing.yaml", dir);
        _cleanup_free_ char *big = vf_printf("%s/big.yaml", dir), *big_xml = vf_printf("%s/big.xml", dir);
        for (size_t i = 0; i < 2; i++) {
                int fd = open(i ? big_xml : big, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                assert_true(fd >= 0);
                assert_int_equal(ftruncate(fd, SCHEMA_MAX_FILE_SIZE + 1), 0);
                close(fd);
        }
        char *paths[] = { missing, big, big_xml };
        schema_set *set = NULL;
        assert_int_equal(schema_load(paths, 3, &set), 0);
        th_rmtree(dir);

        _cleanup_free_ char *e1 = vf_printf("%s: error: does not exist; while a path given cannot be read nothing "
                                            "is pruned", missing);
        _cleanup_free_ char *e2 =
                vf_printf("%s: error: file is larger than the 4 MiB limit (SCHEMA_MAX_FILE_SIZE); split it into "
                          "several files", big);
        _cleanup_free_ char *e3 = vf_printf("%s: error: file is larger than the 4 MiB limit", big_xml);
        assert_diag(set, e1);
        assert_diag(set, e2);
        assert_diag(set, e3);
        /* The missing path is no file that failed: its own error, the set's. */
        assert_int_equal(set->n_path_errors, 1);
        assert_int_equal(vf_strv_length(set->files_failed), 2);
        assert_int_equal(set->n_resources, 0);
        schema_set_free(set);
}

/* ---- Network ------------------------------------------------------------------ */

static void test_network_nat(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_path("data/schema/lab.yaml");
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_NETWORK, "lan");

        assert_true(r->network.autostart);
        assert_false(r->adopt);
        assert_null(r->depends);
        assert_int_equal(r->line, 4);
        assert_int_equal(r->column, 18);
        assert_xpath(r->xml, "string(/network/name)", "lan");
        assert_xpath(r->xml, "string(/network/forward/@mode)", "nat");
        assert_xpath(r->xml, "string(/network/bridge/@name)", "virbr10");
        assert_xpath(r->xml, "string(/network/mtu/@size)", "1500");
        assert_xpath(r->xml, "string(/network/ip/@address)", "192.168.110.1");
        assert_xpath(r->xml, "string(/network/ip/@netmask)", "255.255.255.0");
        assert_xpath(r->xml, "string(/network/ip/dhcp/range/@start)", "192.168.110.100");
        assert_xpath(r->xml, "string(/network/ip/dhcp/range/@end)", "192.168.110.199");
        assert_int_equal(strlen(r->hash), VF_HASH_HEX_LEN);
}

static void test_network_forward_modes(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("n.yaml",
                HEADER("Network", "br") "spec: {forward: bridge, bridge: br0}\n---\n"
                HEADER("Network", "sriov") "spec: {forward: hostdev, pf: enp59s0f0}\n---\n"
                HEADER("Network", "iso") "spec: {}\n", NULL);
        assert_clean(set);

        const char *br = find(set, VF_KIND_NETWORK, "br")->xml;
        assert_xpath(br, "string(/network/forward/@mode)", "bridge");
        assert_xpath(br, "string(/network/bridge/@name)", "br0");
        const char *sriov = find(set, VF_KIND_NETWORK, "sriov")->xml;
        assert_xpath(sriov, "string(/network/forward/@mode)", "hostdev");
        assert_xpath(sriov, "string(/network/forward/@managed)", "yes");
        assert_xpath(sriov, "string(/network/forward/pf/@dev)", "enp59s0f0");
        const char *iso = find(set, VF_KIND_NETWORK, "iso")->xml;
        assert_xpath(iso, "count(/network/forward)", "0");
        assert_false(find(set, VF_KIND_NETWORK, "iso")->network.autostart);
}

static void test_network_rules(void **state) {
        static const struct {
                const char *spec, *message;
        } cases[] = {
                { "{forward: bridge}", "forward: bridge needs bridge" },
                { "{pf: eth0}", "pf is only allowed with forward: hostdev" },
                { "{forward: hostdev}", "forward: hostdev needs pf" },
                { "{forward: bridge, bridge: br0, ipv4: {address: 10.0.0.1/24}}", "ipv4 is not allowed with forward: bridge" },
                { "{ipv4: {address: 10.0.0.1/31}}", "prefix /31 leaves no room" },
                { "{ipv4: {address: 10.0.0.0/24}}", "network or broadcast address" },
                { "{ipv4: {address: 10.0.0.1}}", "invalid address \"10.0.0.1\"" },
                { "{ipv4: {address: 10.0.0.1/24, dhcp: {start: 10.0.1.5, end: 10.0.0.9}}}", "dhcp.start 10.0.1.5 is outside" },
                { "{ipv4: {address: 10.0.0.1/24, dhcp: {start: 10.0.0.1, end: 10.0.0.9}}}", "dhcp.start 10.0.0.1 is outside" },
                { "{ipv4: {address: 10.0.0.1/24, dhcp: {start: 10.0.0.5, end: 10.0.0.255}}}", "dhcp.end 10.0.0.255" },
                { "{ipv4: {address: 10.0.0.1/24, dhcp: {start: 10.0.0.9, end: 10.0.0.5}}}", "dhcp.start is after dhcp.end" },
                { "{ipv4: {address: 10.0.0.1/24, dhcp: {start: 10.0.0.9}}}", "dhcp.end is missing" },
                { "{mtu: 67}", "\"mtu\" must be an integer from 68 to 65535, not \"67\"" },
                { "{bridge: a/b}", "invalid interface name \"a/b\"" },
                { "{bridge: abcdefghijklmnop}", "invalid interface name" },
                { "{forward: open}", "\"forward\" must be one of nat, route, bridge, isolated, hostdev, not \"open\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = vf_printf(HEADER("Network", "n") "spec: %s\n", cases[i].spec);
                _cleanup_(schema_set_freep) schema_set *set = load_text("n.yaml", text, NULL);
                assert_failed(set);
                assert_diag(set, cases[i].message);
        }
}

/* ---- Domain -------------------------------------------------------------------- */

static void test_domain_full(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(
                "  memory: 512MiB\n"
                "  vcpus: 4\n"
                "  state: shutoff\n"
                "  autostart: true\n"
                "  restart: on-change\n"
                "  arch: aarch64\n"
                "  disks:\n"
                "    - {file: /img/a.qcow2}\n"
                "    - {file: /img/b.raw, format: raw, bus: sata, readonly: true}\n"
                "    - {file: /img/c.iso, device: cdrom, bus: ide}\n"
                "    - {file: /img/d.qcow2}\n"
                "    - {file: /img/e.qcow2, bus: scsi}\n"
                "  interfaces:\n"
                "    - {network: lan, mac: '52:54:00:AB:CD:EF'}\n"
                "    - {bridge: br0, model: e1000e}\n"
                "    - {hostdev: vf1}\n"
                "    - {network: lan}\n"
                "  hostdevs: [gpu]\n",
                NULL);
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_DOMAIN, "web1");
        const char *x = r->xml;

        assert_int_equal(r->domain.state, SCHEMA_DOMAIN_SHUTOFF);
        assert_true(r->domain.autostart);
        assert_int_equal(r->domain.restart, SCHEMA_RESTART_ON_CHANGE);
        assert_int_equal(vf_strv_length(r->domain.hostdevs), 2);
        assert_string_equal(r->domain.hostdevs[0], "vf1");
        assert_string_equal(r->domain.hostdevs[1], "gpu");
        assert_int_equal(vf_strv_length(r->depends), 3);
        assert_string_equal(r->depends[0], "network/lan");
        assert_string_equal(r->depends[1], "hostdev/vf1");
        assert_string_equal(r->depends[2], "hostdev/gpu");

        assert_xpath(x, "count(/domain/@type)", "0");
        assert_xpath(x, "string(/domain/name)", "web1");
        assert_xpath(x, "string(/domain/memory)", "524288");
        assert_xpath(x, "string(/domain/memory/@unit)", "KiB");
        assert_xpath(x, "string(/domain/vcpu)", "4");
        assert_xpath(x, "string(/domain/os/type)", "hvm");
        assert_xpath(x, "string(/domain/os/type/@arch)", "aarch64");
        assert_xpath(x, "count(/domain/devices/disk)", "5");
        assert_xpath(x, "string(/domain/devices/disk[1]/target/@dev)", "vda");
        assert_xpath(x, "string(/domain/devices/disk[1]/target/@bus)", "virtio");
        assert_xpath(x, "string(/domain/devices/disk[1]/driver/@type)", "qcow2");
        assert_xpath(x, "string(/domain/devices/disk[1]/source/@file)", "/img/a.qcow2");
        assert_xpath(x, "string(/domain/devices/disk[2]/target/@dev)", "sda");
        assert_xpath(x, "string(/domain/devices/disk[2]/driver/@type)", "raw");
        assert_xpath(x, "count(/domain/devices/disk[2]/readonly)", "1");
        assert_xpath(x, "string(/domain/devices/disk[3]/target/@dev)", "hda");
        assert_xpath(x, "string(/domain/devices/disk[3]/@device)", "cdrom");
        assert_xpath(x, "string(/domain/devices/disk[4]/target/@dev)", "vdb");
        assert_xpath(x, "string(/domain/devices/disk[5]/target/@dev)", "sdb");
        assert_xpath(x, "count(/domain/devices/interface)", "3");
        assert_xpath(x, "string(/domain/devices/interface[1]/@type)", "network");
        assert_xpath(x, "string(/domain/devices/interface[1]/mac/@address)", "52:54:00:ab:cd:ef");
        assert_xpath(x, "string(/domain/devices/interface[1]/source/@network)", "lan");
        assert_xpath(x, "string(/domain/devices/interface[1]/model/@type)", "virtio");
        assert_xpath(x, "string(/domain/devices/interface[2]/source/@bridge)", "br0");
        assert_xpath(x, "string(/domain/devices/interface[2]/model/@type)", "e1000e");
        assert_xpath(x, "count(/domain/devices/interface[2]/mac)", "0");
        assert_xpath(x, "count(/domain/devices/hostdev)", "0");
}

static void test_domain_defaults_and_type(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_domain_spec("  memory: 1GiB\n  type: kvm\n", NULL);
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_DOMAIN, "web1");

        assert_int_equal(r->domain.state, SCHEMA_DOMAIN_RUNNING);
        assert_false(r->domain.autostart);
        assert_int_equal(r->domain.restart, SCHEMA_RESTART_NEVER);
        assert_null(r->domain.hostdevs);
        assert_null(r->depends);
        assert_xpath(r->xml, "string(/domain/@type)", "kvm");
        assert_xpath(r->xml, "string(/domain/vcpu)", "1");
        assert_xpath(r->xml, "string(/domain/memory)", "1048576");
        assert_xpath(r->xml, "count(/domain/os/type/@arch)", "0");
}

/* spec.drift is correct by default, report on request, and not part of the hash: changing it redefines nothing. */
static void test_drift_policy(void **state) {
        _cleanup_(schema_set_freep) schema_set *plain = load_domain_spec("  memory: 1GiB\n", NULL);
        _cleanup_(schema_set_freep) schema_set *report = load_domain_spec("  memory: 1GiB\n  drift: report\n", NULL);
        _cleanup_(schema_set_freep) schema_set *bad = load_domain_spec("  memory: 1GiB\n  drift: ignore\n", NULL);
        _cleanup_(schema_set_freep) schema_set *native = load_text(
                "n.xml",
                "<network><name>lan</name><metadata><vf:policy xmlns:vf='https://virtform.org/xmlns/policy/1' "
                "drift='report'/></metadata></network>\n",
                NULL);

        assert_int_equal(find(plain, VF_KIND_DOMAIN, "web1")->drift, SCHEMA_DRIFT_CORRECT);
        assert_int_equal(find(report, VF_KIND_DOMAIN, "web1")->drift, SCHEMA_DRIFT_REPORT);
        assert_string_equal(find(plain, VF_KIND_DOMAIN, "web1")->hash, find(report, VF_KIND_DOMAIN, "web1")->hash);
        assert_failed(bad);
        assert_diag(bad, "ignore");
        assert_clean(native);
        assert_int_equal(find(native, VF_KIND_NETWORK, "lan")->drift, SCHEMA_DRIFT_REPORT);
}

static void test_memory_units(void **state) {
        static const struct {
                const char *value, *kib;
        } good[] = {
                { "1024KiB", "1024" }, { "512MiB", "524288" }, { "1GiB", "1048576" },
                { "2TiB", "2147483648" }, { "16TiB", "17179869184" },
        };
        static const char *const bad[] = { "1024", "1GB", "1 GiB", "1gib", "GiB", "-1GiB", "1.5GiB" };
        static const char *const out_of_range[] = { "1023KiB", "0MiB", "17TiB", "99999999999999999999999GiB" };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_free_ char *spec = vf_printf("  memory: %s\n", good[i].value);
                _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(spec, NULL);
                assert_clean(set);
                assert_xpath(find(set, VF_KIND_DOMAIN, "web1")->xml, "string(/domain/memory)", good[i].kib);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *spec = vf_printf("  memory: \"%s\"\n", bad[i]);
                _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(spec, NULL);
                assert_failed(set);
                assert_diag(set, "unit (KiB, MiB, GiB or TiB)");
        }
        for (size_t i = 0; i < ELEMENTSOF(out_of_range); i++) {
                _cleanup_free_ char *spec = vf_printf("  memory: %s\n", out_of_range[i]);
                _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(spec, NULL);
                assert_failed(set);
                assert_diag(set, "give 1MiB to 16TiB");
        }
}

static void test_unknown_key_position(void **state) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_domain_spec("  memory: 1GiB\n  memroy: 2GiB\n", &path);

        assert_failed(set);
        assert_diag_at(set, path, 6, 3,
                       "unknown key \"memroy\" in Domain spec; allowed keys: memory, vcpus, state, autostart, "
                       "restart, drift, type, arch, disks, interfaces, hostdevs, xml");
}

static void test_several_errors_reported(void **state) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("d.yaml",
                "apiVersion: virtform/v1\n"
                "kind: Domain\n"
                "metadata: {name: web1, colour: red}\n"
                "spec:\n"
                "  memory: 1GiB\n"
                "  cpus: 2\n"
                "  disks: [{file: /a, speed: fast}]\n",
                &path);

        assert_failed(set);
        assert_diag_at(set, path, 3, 24, "unknown key \"colour\" in metadata");
        assert_diag_at(set, path, 6, 3, "unknown key \"cpus\"");
        assert_diag_at(set, path, 7, 22, "unknown key \"speed\" in disk");
}

static void test_wrong_types(void **state) {
        static const struct {
                const char *spec, *message;
        } cases[] = {
                { "  memory: 1GiB\n  vcpus: two\n", "\"vcpus\" must be an integer from 1 to 4096, not \"two\"" },
                { "  memory: 1GiB\n  vcpus: \"2\"\n", "\"vcpus\" must be an integer" },
                { "  memory: 1GiB\n  vcpus: 0\n", "\"vcpus\" must be an integer from 1 to 4096, not \"0\"" },
                { "  memory: 1GiB\n  vcpus: 4097\n", "not \"4097\"" },
                { "  memory: 1GiB\n  autostart: yes\n", "\"autostart\" must be true or false, not \"yes\"" },
                { "  memory: 1GiB\n  autostart: \"true\"\n", "must be true or false" },
                { "  memory: {size: 1GiB}\n", "\"memory\" must be a single value, not a mapping" },
                { "  memory: 1GiB\n  disks: {file: /a}\n", "\"disks\" must be a list, not a mapping" },
                { "  memory: 1GiB\n  disks: [/a]\n", "disk must be a mapping, not a scalar" },
                { "  memory:\n", "\"memory\" has no value" },
                { "  vcpus: 2\n", "memory is missing" },
                { "  memory: 1GiB\n  state: paused\n", "\"state\" must be one of running, shutoff, not \"paused\"" },
                { "  memory: 1GiB\n  type: xen\n", "\"type\" must be one of kvm, qemu, test" },
                { "  memory: 1GiB\n  disks: [{file: relative.qcow2}]\n", "is not an absolute path" },
                { "  memory: 1GiB\n  disks: [{bus: virtio}]\n",
                  "a disk needs exactly one of file: /absolute/path, volume: POOL/NAME or cloudInit: NAME; it has 0" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(cases[i].spec, NULL);
                assert_failed(set);
                assert_diag(set, cases[i].message);
        }
}

static void test_document_header(void **state) {
        static const struct {
                const char *text, *message;
        } cases[] = {
                { "kind: Network\nmetadata: {name: n}\nspec: {}\n", "apiVersion is missing" },
                { "apiVersion: virtform/v2\nkind: Network\nmetadata: {name: n}\nspec: {}\n",
                  "apiVersion \"virtform/v2\" is not supported; use virtform/v1" },
                { "apiVersion: virtform/v1\nkind: Snapshot\nmetadata: {name: n}\nspec: {}\n",
                  "unknown kind \"Snapshot\"; use Network, Domain, Hostdev, StoragePool, Volume or CloudInit" },
                { "apiVersion: virtform/v1\nkind: Network\nspec: {}\n", "metadata is missing" },
                { "apiVersion: virtform/v1\nkind: Network\nmetadata: {adopt: true}\nspec: {}\n", "metadata.name is missing" },
                { "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: n}\n", "spec is missing" },
                { "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: n}\nspec: [a]\n", "spec must be a mapping" },
                { "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: n, adopt: 1}\nspec: {}\n", "must be true or false" },
                { "- just\n- a list\n", "a document must be a mapping" },
                { "apiVersion: virtform/v1\napiVersion: virtform/v1\nkind: Network\nmetadata: {name: n}\nspec: {}\n",
                  "key \"apiVersion\" appears twice" },
                { HEADER("Hostdev", "h") "spec: {}\n", "pci is missing" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(schema_set_freep) schema_set *set = load_text("x.yaml", cases[i].text, NULL);
                assert_failed(set);
                assert_diag(set, cases[i].message);
        }
}

static void test_adopt_and_null_spec(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("n.yaml",
                "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: n, adopt: true}\nspec:\n", NULL);
        assert_clean(set);
        assert_true(find(set, VF_KIND_NETWORK, "n")->adopt);
}

static void test_interfaces(void **state) {
        static const struct {
                const char *spec, *message;
        } cases[] = {
                { "[{network: a, bridge: br0}]", "exactly one of network, bridge or hostdev; it has 2" },
                { "[{model: virtio}]", "exactly one of network, bridge or hostdev; it has 0" },
                { "[{network: a, mac: '52:54:00:00:00:01'}, {network: b, mac: '52:54:00:00:00:01'}]",
                  "MAC address 52:54:00:00:00:01 is used twice" },
                { "[{network: a, mac: '01:00:5e:00:00:01'}]", "multicast MAC address" },
                { "[{network: a, mac: '52:54:00:00:01'}]", "invalid MAC address" },
                { "[{hostdev: vf, mac: '52:54:00:00:00:01'}]", "not allowed on a hostdev interface" },
                { "[{hostdev: vf}, {hostdev: vf}]", "hostdev \"vf\" is given twice" },
                { "[{network: \"a/b\"}]", "invalid name \"a/b\" in \"network\"" },
                { "[{network: a, model: 'x y'}]", "invalid model" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *spec = vf_printf("  memory: 1GiB\n  interfaces: %s\n", cases[i].spec);
                _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(spec, NULL);
                assert_failed(set);
                assert_diag(set, cases[i].message);
        }
}

static void test_too_many_disks(void **state) {
        vf_buf spec = {};
        vf_buf_puts(&spec, "  memory: 1GiB\n  disks:\n");
        for (int i = 0; i < 27; i++)
                vf_buf_printf(&spec, "    - {file: /img/%d.qcow2}\n", i);
        _cleanup_free_ char *text = vf_buf_steal(&spec);
        _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(text, NULL);

        assert_failed(set);
        assert_diag(set, "more than 26 disks named vd*");
}

static void test_escape_hatch(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(
                "  memory: 2GiB\n"
                "  disks: [{file: /img/extra.qcow2}]\n"
                "  interfaces: [{network: wan}]\n"
                "  xml: |\n"
                "    <domain type='kvm'>\n"
                "      <name>ignored</name>\n"
                "      <memory unit='MiB'>512</memory>\n"
                "      <currentMemory unit='MiB'>512</currentMemory>\n"
                "      <vcpu placement='static'>3</vcpu>\n"
                "      <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
                "      <devices>\n"
                "        <disk type='file' device='disk'><source file='/img/base.qcow2'/><target dev='vda' bus='virtio'/></disk>\n"
                "        <interface type='network'><source network='lan'/></interface>\n"
                "      </devices>\n"
                "    </domain>\n",
                NULL);
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_DOMAIN, "web1");
        const char *x = r->xml;

        assert_xpath(x, "string(/domain/@type)", "kvm");
        assert_xpath(x, "string(/domain/name)", "web1");
        assert_xpath(x, "count(/domain/name)", "1");
        assert_xpath(x, "string(/domain/memory)", "2097152");
        assert_xpath(x, "string(/domain/memory/@unit)", "KiB");
        assert_xpath(x, "count(/domain/currentMemory)", "0");
        assert_xpath(x, "string(/domain/vcpu)", "3");
        assert_xpath(x, "string(/domain/os/type/@machine)", "q35");
        assert_xpath(x, "count(/domain/devices/disk)", "2");
        assert_xpath(x, "string(/domain/devices/disk[2]/target/@dev)", "vdb");
        assert_xpath(x, "string(/domain/devices/interface[1]/source/@network)", "lan");
        assert_xpath(x, "string(/domain/devices/interface[2]/source/@network)", "wan");
        assert_int_equal(vf_strv_length(r->depends), 2);
        assert_true(vf_strv_contains(r->depends, "network/lan"));
        assert_true(vf_strv_contains(r->depends, "network/wan"));
}

static void test_escape_hatch_errors(void **state) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(
                "  memory: 1GiB\n"
                "  xml: \"<domain><name>x</name>\"\n",
                &path);
        assert_failed(set);
        assert_diag_at(set, path, 6, 8, "in spec.xml, line 1: XML:");

        _cleanup_(schema_set_freep) schema_set *wrong = load_domain_spec("  xml: \"<network><name>x</name></network>\"\n",
                                                                          NULL);
        assert_failed(wrong);
        assert_diag(wrong, "root element <network> is not supported; this xml must hold a <domain> document");

        _cleanup_(schema_set_freep) schema_set *net = load_text("n.yaml",
                HEADER("Network", "n") "spec:\n  mtu: 9000\n  xml: <network><name>x</name><mtu size='1500'/>"
                "<domain name='example.org'/></network>\n", NULL);
        assert_clean(net);
        const char *x = find(net, VF_KIND_NETWORK, "n")->xml;
        assert_xpath(x, "string(/network/mtu/@size)", "9000");
        assert_xpath(x, "count(/network/mtu)", "1");
        assert_xpath(x, "string(/network/domain/@name)", "example.org");
}

/* ---- Hostdev ------------------------------------------------------------------- */

static void test_hostdev(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("h.yaml",
                HEADER("Hostdev", "vf1") "spec: {pci: '3B:02.1', mac: '52:54:00:AA:BB:CC', vlan: 100}\n---\n"
                HEADER("Hostdev", "gpu") "spec: {pci: 0001:af:1f.7, managed: false}\n", NULL);
        assert_clean(set);
        const schema_resource *vf = find(set, VF_KIND_HOSTDEV, "vf1");
        const schema_resource *gpu = find(set, VF_KIND_HOSTDEV, "gpu");

        assert_string_equal(vf->hostdev.pci, "0000:3b:02.1");
        assert_string_equal(vf->hostdev.mac, "52:54:00:aa:bb:cc");
        assert_int_equal(vf->hostdev.vlan, 100);
        assert_true(vf->hostdev.managed);
        assert_null(vf->xml);
        assert_null(vf->depends);
        assert_string_equal(gpu->hostdev.pci, "0001:af:1f.7");
        assert_null(gpu->hostdev.mac);
        assert_int_equal(gpu->hostdev.vlan, -1);
        assert_false(gpu->hostdev.managed);
        assert_string_not_equal(vf->hash, gpu->hash);
}

static void test_hostdev_errors(void **state) {
        static const struct {
                const char *spec, *message;
        } cases[] = {
                { "{pci: '00:20.0'}", "invalid PCI address \"00:20.0\"" },
                { "{pci: '00:02.8'}", "invalid PCI address" },
                { "{pci: '0:02.1'}", "invalid PCI address" },
                { "{pci: '00:02.1', vlan: 4096}", "\"vlan\" must be an integer from 0 to 4095, not \"4096\"" },
                { "{pci: '00:02.1', vlan: -1}", "\"vlan\" must be an integer" },
                { "{pci: '00:02.1', mac: '03:00:00:00:00:01'}", "multicast MAC address" },
                { "{pci: '00:02.1', managed: no}", "\"managed\" must be true or false" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = vf_printf(HEADER("Hostdev", "h") "spec: %s\n", cases[i].spec);
                _cleanup_(schema_set_freep) schema_set *set = load_text("h.yaml", text, NULL);
                assert_failed(set);
                assert_diag(set, cases[i].message);
        }
}

static void test_duplicate_pci(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();
        _cleanup_free_ char *a = put_file(dir, "a.yaml", HEADER("Hostdev", "x") "spec: {pci: 0000:3b:02.1}\n");
        _cleanup_free_ char *b = put_file(dir, "b.yaml", HEADER("Hostdev", "y") "spec: {pci: '3b:02.1'}\n");
        _cleanup_(schema_set_freep) schema_set *set = load_path(dir);
        th_rmtree(dir);

        _cleanup_free_ char *msg = vf_printf("%s:3:18: error: PCI device 0000:3b:02.1 is already declared by hostdev "
                                             "\"x\" at %s:3:18", b, a);
        assert_diag(set, msg);
        assert_int_equal(set->n_resources, 1);
        assert_string_equal(set->files_failed[0], b);
}

/* ---- storage: pools, volumes, cloud-init seeds ---------------------------------- */

static void test_pool_dir_and_logical(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("p.yaml",
                HEADER("StoragePool", "images") "spec: {path: /var/lib/virtform/images}\n---\n"
                HEADER("StoragePool", "lvm") "spec: {type: logical, volumeGroup: vg0, autostart: false}\n", NULL);
        assert_clean(set);
        const schema_resource *images = find(set, VF_KIND_POOL, "images");
        const schema_resource *lvm = find(set, VF_KIND_POOL, "lvm");

        assert_true(images->pool.autostart);
        assert_string_equal(images->pool.path, "/var/lib/virtform/images");
        assert_null(images->depends);
        assert_xpath(images->xml, "string(/pool/@type)", "dir");
        assert_xpath(images->xml, "string(/pool/name)", "images");
        assert_xpath(images->xml, "string(/pool/target/path)", "/var/lib/virtform/images");
        assert_xpath(images->xml, "count(/pool/source)", "0");

        assert_false(lvm->pool.autostart);
        assert_null(lvm->pool.path);
        assert_xpath(lvm->xml, "string(/pool/@type)", "logical");
        assert_xpath(lvm->xml, "string(/pool/source/name)", "vg0");
        assert_xpath(lvm->xml, "string(/pool/source/format/@type)", "lvm2");
        assert_xpath(lvm->xml, "string(/pool/target/path)", "/dev/vg0");
}

static void test_pool_escape_hatch(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("p.yaml",
                HEADER("StoragePool", "nfs") "spec:\n  autostart: false\n  xml: |\n"
                "    <pool type='netfs'>\n      <name>ignored</name>\n"
                "      <source><host name='nas'/><dir path='/export'/><format type='nfs'/></source>\n"
                "      <target><path>/mnt/nas</path></target>\n    </pool>\n---\n"
                HEADER("StoragePool", "dir2") "spec:\n  path: /srv/b\n  xml: \"<pool type='dir'><target><path>/srv/a</path>"
                "<permissions><mode>0711</mode></permissions></target></pool>\"\n", NULL);
        assert_clean(set);
        const schema_resource *nfs = find(set, VF_KIND_POOL, "nfs");
        const schema_resource *dir2 = find(set, VF_KIND_POOL, "dir2");

        assert_xpath(nfs->xml, "string(/pool/@type)", "netfs");
        assert_xpath(nfs->xml, "string(/pool/name)", "nfs");
        assert_xpath(nfs->xml, "string(/pool/source/host/@name)", "nas");
        assert_null(nfs->pool.path);
        assert_false(nfs->pool.autostart);
        /* Typed fields win over the base document, which keeps what they do not say. */
        assert_xpath(dir2->xml, "string(/pool/target/path)", "/srv/b");
        assert_xpath(dir2->xml, "count(/pool/target/path)", "1");
        assert_xpath(dir2->xml, "string(/pool/target/permissions/mode)", "0711");
        assert_string_equal(dir2->pool.path, "/srv/b");
}

static void test_volume(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("v.yaml",
                HEADER("Volume", "base.qcow2") "spec:\n  pool: images\n  from: {url: 'https://example.org/base.img', "
                "sha256: ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789}\n---\n"
                HEADER("Volume", "web1.qcow2") "spec:\n  pool: images\n  capacity: 20GiB\n"
                "  from: {volume: images/base.qcow2}\n  deletionPolicy: delete\n---\n"
                HEADER("Volume", "copy.raw") "spec: {pool: fast, format: raw, from: {volume: images/base.qcow2, clone: copy}}\n---\n"
                HEADER("Volume", "import") "spec: {pool: fast, capacity: 1TiB, from: {file: /srv/img/a.img}}\n---\n"
                HEADER("Volume", "empty") "spec: {pool: fast, capacity: 512MiB}\n", NULL);
        assert_clean(set);
        const schema_resource *base = find(set, VF_KIND_VOLUME, "images/base.qcow2");
        const schema_resource *web1 = find(set, VF_KIND_VOLUME, "images/web1.qcow2");
        const schema_resource *copy = find(set, VF_KIND_VOLUME, "fast/copy.raw");
        const schema_resource *import = find(set, VF_KIND_VOLUME, "fast/import");
        const schema_resource *empty = find(set, VF_KIND_VOLUME, "fast/empty");

        assert_string_equal(base->volume.pool, "images");
        assert_string_equal(base->volume.volume, "base.qcow2");
        assert_int_equal(base->volume.capacity, 0);
        assert_int_equal(base->volume.format, SCHEMA_VOLUME_QCOW2);
        assert_int_equal(base->volume.source, SCHEMA_SOURCE_URL);
        assert_string_equal(base->volume.from, "https://example.org/base.img");
        assert_string_equal(base->volume.sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
        assert_int_equal(base->volume.deletion, SCHEMA_DELETION_RETAIN);
        assert_xpath(base->xml, "string(/volume/name)", "base.qcow2");
        assert_xpath(base->xml, "count(/volume/capacity)", "0");
        assert_xpath(base->xml, "string(/volume/target/format/@type)", "qcow2");
        assert_int_equal(vf_strv_length(base->depends), 1);
        assert_string_equal(base->depends[0], "pool/images");

        assert_int_equal(web1->volume.capacity, UINT64_C(20) << 30);
        assert_int_equal(web1->volume.source, SCHEMA_SOURCE_VOLUME);
        assert_string_equal(web1->volume.from, "images/base.qcow2");
        assert_false(web1->volume.full_copy);
        assert_null(web1->volume.sha256);
        assert_int_equal(web1->volume.deletion, SCHEMA_DELETION_DELETE);
        assert_xpath(web1->xml, "string(/volume/capacity)", "21474836480");
        assert_xpath(web1->xml, "string(/volume/capacity/@unit)", "bytes");
        assert_int_equal(vf_strv_length(web1->depends), 2);
        assert_string_equal(web1->depends[0], "pool/images");
        assert_string_equal(web1->depends[1], "volume/images/base.qcow2");

        assert_int_equal(copy->volume.format, SCHEMA_VOLUME_RAW);
        assert_true(copy->volume.full_copy);
        assert_xpath(copy->xml, "string(/volume/target/format/@type)", "raw");
        assert_int_equal(import->volume.source, SCHEMA_SOURCE_FILE);
        assert_string_equal(import->volume.from, "/srv/img/a.img");
        assert_int_equal(import->volume.capacity, UINT64_C(1) << 40);
        assert_int_equal(empty->volume.source, SCHEMA_SOURCE_NONE);
        assert_null(empty->volume.from);
        assert_int_equal(empty->volume.capacity, UINT64_C(512) << 20);
}

static void test_cloudinit(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("c.yaml",
                HEADER("CloudInit", "web1-seed") "spec:\n  pool: images\n  userData: |\n    #cloud-config\n    packages: [nginx]\n"
                "  metaData: {instance-id: i-1, local-hostname: web1.example.org}\n  networkConfig: |\n    version: 2\n---\n"
                HEADER("CloudInit", "bare") "spec: {pool: images}\n---\n"
                HEADER("CloudInit", "empty-user") "spec: {pool: images, userData: ''}\n", NULL);
        assert_clean(set);
        const schema_resource *seed = find(set, VF_KIND_CLOUDINIT, "web1-seed");
        const schema_resource *bare = find(set, VF_KIND_CLOUDINIT, "bare");
        const schema_resource *empty = find(set, VF_KIND_CLOUDINIT, "empty-user");

        assert_string_equal(seed->cloudinit.pool, "images");
        assert_string_equal(seed->cloudinit.user_data, "#cloud-config\npackages: [nginx]\n");
        assert_string_equal(seed->cloudinit.instance_id, "i-1");
        assert_string_equal(seed->cloudinit.hostname, "web1.example.org");
        assert_string_equal(seed->cloudinit.network_config, "version: 2\n");
        assert_null(seed->xml);
        assert_int_equal(vf_strv_length(seed->depends), 1);
        assert_string_equal(seed->depends[0], "pool/images");
        assert_null(bare->cloudinit.user_data);
        assert_null(bare->cloudinit.instance_id);
        assert_null(bare->cloudinit.hostname);
        assert_null(bare->cloudinit.network_config);
        assert_string_equal(empty->cloudinit.user_data, "");
        /* A seed has no XML: its content is its definition. */
        assert_string_not_equal(bare->definition_hash, empty->definition_hash);
}

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Each bad spec fails its file with the message at the node `at` names (its first occurrence), or at spec: {...}. */
static void test_storage_errors(void **state) {
        static const struct {
                const char *kind, *spec, *at, *message;
        } cases[] = {
                { "StoragePool", "{path: var/lib/images}", "var/lib",
                  "pool path \"var/lib/images\" is not an absolute path; start it with /" },
                { "StoragePool", "{}", NULL,
                  "a dir pool needs path (<target><path> in XML): the absolute directory that holds its volumes" },
                { "StoragePool", "{type: dir, autostart: true}", NULL, "a dir pool needs path" },
                { "StoragePool", "{type: logical}", NULL,
                  "type: logical needs volumeGroup (<source><name> in XML): the name of an existing LVM volume group" },
                { "StoragePool", "{type: logical, volumeGroup: vg0, path: /x}", "/x",
                  "path is not allowed with type: logical, whose volumes are in /dev/VOLUMEGROUP; remove it" },
                { "StoragePool", "{path: /x, volumeGroup: vg0}", "vg0",
                  "volumeGroup is only allowed with type: logical; remove it" },
                { "StoragePool", "{type: logical, volumeGroup: -vg}", "-vg", "invalid volumeGroup \"-vg\"" },
                { "StoragePool", "{type: netfs, path: /x}", "netfs", "\"type\" must be one of dir, logical, not \"netfs\"" },
                { "StoragePool", "{path: /x, size: 1}", "size",
                  "unknown key \"size\" in StoragePool spec; allowed keys: type, path, volumeGroup, autostart, xml" },
                { "StoragePool", "{xml: '<pool type=\"dir\"><target><path>rel</path></target></pool>'}",
                  "'<pool", "in spec.xml, line 1: <path>rel</path>: not an absolute path; give the pool's directory" },
                { "StoragePool", "{path: /x, xml: '<network/>'}", "'<network",
                  "in spec.xml, line 1: root element <network> is not supported; this xml must hold a <pool> document" },

                { "Volume", "{capacity: 1GiB}", NULL, "pool is missing; add pool: NAME, the StoragePool that holds the volume" },
                { "Volume", "{pool: a/b, capacity: 1GiB}", "a/b", "invalid name \"a/b\" in \"pool\"" },
                { "Volume", "{pool: p}", NULL, "capacity is missing; add capacity: SIZE, e.g. 20GiB, or from:" },
                { "Volume", "{pool: p, capacity: 20G}", "20G",
                  "invalid capacity \"20G\"; write an integer and a unit (KiB, MiB, GiB or TiB), e.g. 20GiB" },
                { "Volume", "{pool: p, capacity: 0GiB}", "0GiB", "capacity 0GiB is out of range; give 1MiB to 1024TiB" },
                { "Volume", "{pool: p, capacity: 2048TiB}", "2048TiB", "capacity 2048TiB is out of range" },
                { "Volume", "{pool: p, capacity: 1GiB, format: vmdk}", "vmdk",
                  "\"format\" must be one of qcow2, raw, not \"vmdk\"" },
                { "Volume", "{pool: p, capacity: 1GiB, deletionPolicy: keep}", "keep",
                  "\"deletionPolicy\" must be one of retain, delete, not \"keep\"" },
                { "Volume", "{pool: p, capacity: 1GiB, size: 1}", "size", "unknown key \"size\" in Volume spec" },
                { "Volume", "{pool: p, from: {volume: p/a, size: 1}}", "size",
                  "unknown key \"size\" in from; allowed keys: volume, clone, file, url, sha256" },
                { "Volume", "{pool: p, from: {file: /a.img, clone: copy}}", "copy",
                  "clone is only for from.volume, a copy of another volume; remove it" },
                { "Volume", "{pool: p, from: {volume: p/a, clone: deep}}", "deep",
                  "\"clone\" must be one of cow, copy, not \"deep\"" },
                { "Volume", "{pool: p, from: {file: /a.img, url: 'https://h/a'}}", "{file",
                  "from needs exactly one of volume, file or url; it has 2" },
                { "Volume", "{pool: p, from: {}}", "{}", "from needs exactly one of volume, file or url; it has 0" },
                { "Volume", "{pool: p, from: /a.img}", "/a.img", "\"from\" must be a mapping, not a scalar" },
                { "Volume", "{pool: p, from: {file: images/a.img}}", "images/",
                  "from.file \"images/a.img\" is not an absolute path; start it with /" },
                { "Volume", "{pool: p, from: {url: 'ftp://h/a.img', sha256: " SHA "}}", "'ftp",
                  "from.url \"ftp://h/a.img\" is not an http:// or https:// URL" },
                { "Volume", "{pool: p, from: {url: 'https://h/a.img'}}", "'https",
                  "from.url needs sha256: the image's SHA-256 digest in 64 hex digits" },
                { "Volume", "{pool: p, from: {url: 'https://h/a.img', sha256: abc}}", "abc",
                  "invalid sha256 \"abc\"; give the image's SHA-256 digest in 64 hex digits" },
                { "Volume", "{pool: p, from: {url: 'https://h/a.img', sha256: " SHA "0}}", SHA "0", "invalid sha256" },
                { "Volume", "{pool: p, from: {url: 'https://h/a.img', sha256: g" SHA "}}", "g" SHA, "invalid sha256" },
                { "Volume", "{pool: p, from: {file: /a.img, sha256: " SHA "}}", SHA, "sha256 is only for from.url; remove it" },
                { "Volume", "{pool: p, from: {volume: p/v}}", "p/v}",
                  "volume p/v is made from itself; name another volume in from.volume" },
                { "Volume", "{pool: p, from: {volume: base}}", "base", "invalid from.volume \"base\"; write POOL/NAME" },
                { "Volume", "{pool: p, format: raw, from: {volume: p/a}}", "raw",
                  "a copy-on-write clone (clone: cow, the default) is a qcow2 overlay; use format: qcow2, or clone: copy" },

                { "CloudInit", "{userData: x}", NULL, "pool is missing; add pool: NAME, the StoragePool that receives the seed" },
                { "CloudInit", "{pool: p, userData: [a]}", "[a]", "\"userData\" must be a single value, not a list" },
                { "CloudInit", "{pool: p, networkConfig: {version: 2}}", "{version",
                  "\"networkConfig\" must be a single value, not a mapping" },
                { "CloudInit", "{pool: p, metaData: {instance-id: i, hostname: h}}", "hostname",
                  "unknown key \"hostname\" in metaData; allowed keys: instance-id, local-hostname" },
                { "CloudInit", "{pool: p, metaData: {local-hostname: 'web 1'}}", "'web",
                  "invalid local-hostname \"web 1\"; use labels of letters, digits and '-' separated by dots" },
                { "CloudInit", "{pool: p, metaData: {instance-id: 'a/b'}}", "'a/b",
                  "invalid instance-id \"a/b\"; use 1 to 255 printable characters without spaces or '/'" },
                { "CloudInit", "{pool: p, vendorData: x}", "vendorData",
                  "unknown key \"vendorData\" in CloudInit spec; allowed keys: pool, userData, metaData, networkConfig" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = vf_printf("apiVersion: virtform/v1\nkind: %s\nmetadata: {name: v}\nspec: %s\n",
                                                      cases[i].kind, cases[i].spec);
                _cleanup_free_ char *path = NULL;
                _cleanup_(schema_set_freep) schema_set *set = load_text("s.yaml", text, &path);
                const char *at = cases[i].at ? strstr(cases[i].spec, cases[i].at) : cases[i].spec;
                assert_non_null(at);
                print_message("%s\n", cases[i].spec);
                assert_failed(set);
                assert_diag_at(set, path, 4, 7 + (unsigned) (at - cases[i].spec), cases[i].message);
        }
}

/* userData and networkConfig are kept verbatim, however large, up to the file's own limit. */
static void test_cloudinit_large_user_data(void **state) {
        vf_buf b = {};
        vf_buf_puts(&b, HEADER("CloudInit", "big") "spec:\n  pool: p\n  userData: |\n");
        for (size_t i = 0; b.len < SCHEMA_MAX_FILE_SIZE - 4096; i++)
                vf_buf_printf(&b, "    # line %zu of a long comment that cloud-init will skip\n", i);
        _cleanup_free_ char *text = vf_buf_steal(&b);
        _cleanup_(schema_set_freep) schema_set *set = load_text("big.yaml", text, NULL);

        assert_clean(set);
        assert_true(strlen(find(set, VF_KIND_CLOUDINIT, "big")->cloudinit.user_data) > 3 * 1024 * 1024);
}

/* Disks on volumes and seeds, in the form the domain reconciler resolves (spec-domain.c). */
static const char storage_disks[] =
        "  memory: 1GiB\n"
        "  disks:\n"
        "    - {volume: images/web1.qcow2}\n"
        "    - {volume: fast/data, format: raw, bus: scsi}\n"
        "    - {cloudInit: web1-seed}\n"
        "    - {file: /img/a.qcow2}\n"
        "    - {cloudInit: other-seed, bus: sata}\n"
        "    - {volume: images/iso, device: cdrom, bus: ide, readonly: true}\n"
        "  interfaces: [{network: lan}]\n";

#define SEED_MARKER "/source/@*[local-name()='cloudinit' and namespace-uri()='https://virtform.org/xmlns/policy/1']"

static void test_domain_storage_disks(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(storage_disks, NULL);
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_DOMAIN, "web1");
        const char *x = r->xml;

        assert_xpath(x, "count(/domain/devices/disk)", "6");
        assert_xpath(x, "string(/domain/devices/disk[1]/@type)", "volume");
        assert_xpath(x, "string(/domain/devices/disk[1]/@device)", "disk");
        assert_xpath(x, "string(/domain/devices/disk[1]/source/@pool)", "images");
        assert_xpath(x, "string(/domain/devices/disk[1]/source/@volume)", "web1.qcow2");
        assert_xpath(x, "count(/domain/devices/disk[1]/driver)", "0");
        assert_xpath(x, "string(/domain/devices/disk[1]/target/@dev)", "vda");
        assert_xpath(x, "string(/domain/devices/disk[1]/target/@bus)", "virtio");
        assert_xpath(x, "string(/domain/devices/disk[2]/driver/@type)", "raw");
        assert_xpath(x, "string(/domain/devices/disk[2]/driver/@name)", "qemu");
        assert_xpath(x, "string(/domain/devices/disk[2]/target/@dev)", "sda");

        assert_xpath(x, "string(/domain/devices/disk[3]/@type)", "volume");
        assert_xpath(x, "string(/domain/devices/disk[3]/@device)", "cdrom");
        assert_xpath(x, "string(/domain/devices/disk[3]/driver/@type)", "raw");
        assert_xpath(x, "count(/domain/devices/disk[3]/source/@pool)", "1");
        assert_xpath(x, "string(/domain/devices/disk[3]/source/@pool)", "");
        assert_xpath(x, "string(/domain/devices/disk[3]/source/@volume)", "web1-seed.cidata.iso");
        assert_xpath(x, "string(/domain/devices/disk[3]" SEED_MARKER ")", "web1-seed");
        assert_xpath(x, "count(/domain/devices/disk[3]/target)", "0");
        assert_xpath(x, "count(/domain/devices/disk[3]/readonly)", "1");

        assert_xpath(x, "string(/domain/devices/disk[4]/target/@dev)", "vdb");
        assert_xpath(x, "string(/domain/devices/disk[4]/driver/@type)", "qcow2");
        assert_xpath(x, "string(/domain/devices/disk[5]/target/@dev)", "sdb");
        assert_xpath(x, "string(/domain/devices/disk[5]/target/@bus)", "sata");
        assert_xpath(x, "string(/domain/devices/disk[5]" SEED_MARKER ")", "other-seed");
        assert_xpath(x, "string(/domain/devices/disk[6]/@device)", "cdrom");
        assert_xpath(x, "string(/domain/devices/disk[6]/target/@dev)", "hda");
        assert_xpath(x, "count(/domain/devices/disk[6]/driver)", "0");
        assert_xpath(x, "count(/domain/devices/disk[6]/readonly)", "1");

        assert_int_equal(vf_strv_length(r->domain.cloudinits), 2);
        assert_string_equal(r->domain.cloudinits[0], "web1-seed");
        assert_string_equal(r->domain.cloudinits[1], "other-seed");
        static const char *const depends[] = {
                "volume/images/web1.qcow2", "volume/fast/data", "cloudinit/web1-seed", "cloudinit/other-seed",
                "volume/images/iso", "network/lan",
        };
        assert_int_equal(vf_strv_length(r->depends), ELEMENTSOF(depends));
        for (size_t i = 0; i < ELEMENTSOF(depends); i++)
                assert_string_equal(r->depends[i], depends[i]);
}

/* libvirt's schema judges a seed's disk as the reconciler defines it; the stored XML keeps the marker. */
static void test_domain_seed_libvirt_schema(void **state) {
        if (access(SCHEMA_LIBVIRT_SCHEMAS "/domain.rng", R_OK) < 0)
                th_skip("libvirt's schemas are not installed in " SCHEMA_LIBVIRT_SCHEMAS);
        _cleanup_free_ char *dir = th_mkdtemp();
        _cleanup_free_ char *text = vf_printf(HEADER("Domain", "web1") "spec:\n%s", storage_disks);
        free(put_file(dir, "d.yaml", text));
        char *paths[] = { dir };
        schema_load_options options = { .libvirt_schemas = SCHEMA_LIBVIRT_SCHEMAS };
        _cleanup_(schema_set_freep) schema_set *set = NULL;
        assert_int_equal(schema_load_with_options(paths, 1, &options, &set), 0);
        th_rmtree(dir);

        assert_clean(set);
        const char *x = find(set, VF_KIND_DOMAIN, "web1")->xml;
        assert_xpath(x, "string(/domain/devices/disk[3]" SEED_MARKER ")", "web1-seed");
        assert_xpath(x, "string(/domain/devices/disk[3]/source/@pool)", "");
        assert_xpath(x, "count(/domain/devices/disk[3]/target)", "0");
}

/* What the storage kinds render, libvirt's storagepool.rng and storagevol.rng accept; what they refuse is said. */
static void test_storage_libvirt_schemas(void **state) {
        if (access(SCHEMA_LIBVIRT_SCHEMAS "/storagepool.rng", R_OK) < 0)
                th_skip("libvirt's schemas are not installed in " SCHEMA_LIBVIRT_SCHEMAS);
        _cleanup_free_ char *dir = th_mkdtemp();
        free(put_file(dir, "s.yaml",
                HEADER("StoragePool", "images") "spec: {path: /var/lib/virtform/images}\n---\n"
                HEADER("StoragePool", "lvm") "spec: {type: logical, volumeGroup: vg0}\n---\n"
                HEADER("Volume", "base.qcow2") "spec: {pool: images, from: {url: 'https://h/b.img', sha256: " SHA "}}\n---\n"
                HEADER("Volume", "web1.qcow2") "spec: {pool: images, capacity: 20GiB, from: {volume: images/base.qcow2}}\n---\n"
                HEADER("Volume", "data") "spec: {pool: lvm, capacity: 1TiB, format: raw}\n"));
        /* Valid by virtform's compact schema, refused by libvirt's: a mode is octal. */
        _cleanup_free_ char *bad = put_file(dir, "t.xml",
                "<pool type='dir'>\n  <name>t</name>\n  <target>\n    <path>/t</path>\n"
                "    <permissions><mode>rwx</mode></permissions>\n  </target>\n</pool>\n");
        char *paths[] = { dir };
        schema_load_options options = { .libvirt_schemas = SCHEMA_LIBVIRT_SCHEMAS };
        _cleanup_(schema_set_freep) schema_set *set = NULL;
        assert_int_equal(schema_load_with_options(paths, 1, &options, &set), 0);
        th_rmtree(dir);

        assert_int_equal(set->n_resources, 5);
        assert_int_equal(vf_strv_length(set->files_failed), 1);
        assert_string_equal(set->files_failed[0], bad);
        assert_diag(set, "invalid <pool> (checked against libvirt's " SCHEMA_LIBVIRT_SCHEMAS "/storagepool.rng)");
}

static void test_domain_storage_disk_errors(void **state) {
        static const struct {
                const char *disk, *at, *message;
        } cases[] = {
                { "{file: /a.img, volume: p/v}", "7:7",
                  "a disk needs exactly one of file: /absolute/path, volume: POOL/NAME or cloudInit: NAME; it has 2" },
                { "{volume: p/v, cloudInit: s}", "7:7", "a disk needs exactly one of file" },
                { "{volume: v}", "7:16", "invalid disk volume \"v\"; write POOL/NAME, where a name is" },
                { "{volume: p/a/b}", "7:16", "invalid disk volume \"p/a/b\"" },
                { "{volume: /v}", "7:16", "invalid disk volume \"/v\"" },
                { "{cloudInit: a/b}", "7:19", "invalid name \"a/b\" in \"cloudInit\"" },
                { "{cloudInit: s, format: qcow2}", "7:30",
                  "format is not allowed on a cloudInit disk, which is always a read-only raw CD-ROM; remove it" },
                { "{cloudInit: s, device: disk}", "7:30", "device is not allowed on a cloudInit disk" },
                { "{cloudInit: s, readonly: true}", "7:32", "readonly is not allowed on a cloudInit disk" },
                { "{volume: p/v, format: vmdk}", "7:29", "\"format\" must be one of qcow2, raw, not \"vmdk\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *spec = vf_printf("  memory: 1GiB\n  disks:\n    - %s\n", cases[i].disk);
                _cleanup_free_ char *path = NULL;
                _cleanup_(schema_set_freep) schema_set *set = load_domain_spec(spec, &path);
                assert_failed(set);
                _cleanup_free_ char *at = vf_printf("%s:%s: error: %s", path, cases[i].at, cases[i].message);
                assert_diag(set, at);
        }

        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *twice = load_domain_spec(
                "  memory: 1GiB\n  disks:\n    - {cloudInit: s}\n    - {cloudInit: s, bus: sata}\n", &path);
        assert_failed(twice);
        assert_diag_at(twice, path, 8, 19, "cloudInit \"s\" is given twice for this domain; attach a seed once");
}

/* ---- duplicates, multi-document files, failing files --------------------------- */

static void test_duplicate_across_files(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();
        _cleanup_free_ char *a = put_file(dir, "a.yaml", HEADER("Domain", "web1") "spec: {memory: 1GiB}\n");
        _cleanup_free_ char *b = put_file(dir, "b.yaml",
                HEADER("Network", "other") "spec: {}\n---\n" HEADER("Domain", "web1") "spec: {memory: 2GiB}\n");
        _cleanup_(schema_set_freep) schema_set *set = load_path(dir);
        th_rmtree(dir);

        _cleanup_free_ char *msg = vf_printf("%s:8:18: error: domain \"web1\" is already declared at %s:3:18; "
                                             "rename one of them or remove the duplicate", b, a);
        assert_diag(set, msg);
        assert_int_equal(set->n_resources, 1);
        assert_string_equal(set->resources[0]->file, a);
        assert_null(schema_set_find(set, VF_KIND_NETWORK, "other"));
        assert_int_equal(vf_strv_length(set->files_ok), 1);
        assert_string_equal(set->files_failed[0], b);
}

static void test_duplicate_in_file(void **state) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("n.yaml",
                HEADER("Network", "lan") "spec: {}\n---\n" HEADER("Network", "lan") "spec: {mtu: 9000}\n", &path);

        assert_failed(set);
        _cleanup_free_ char *msg = vf_printf("%s:8:18: error: network \"lan\" is already declared at %s:3:18", path, path);
        assert_diag(set, msg);
        assert_int_equal(vf_map_size(set->by_key), 0);
}

static void test_same_name_different_kinds(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("x.yaml",
                HEADER("Network", "web1") "spec: {}\n---\n" HEADER("Domain", "web1") "spec: {memory: 1GiB}\n", NULL);
        assert_clean(set);
        assert_int_equal(set->n_resources, 2);
}

static void test_multi_document_and_empty(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("m.yaml",
                "---\n"
                "# only a comment\n"
                "---\n"
                HEADER("Network", "a") "spec: {}\n"
                "---\n"
                "---\n"
                "~\n"
                "---\n"
                HEADER("Network", "b") "spec: {}\n"
                "...\n",
                NULL);
        assert_clean(set);
        assert_int_equal(set->n_resources, 2);
        assert_string_equal(set->resources[0]->name, "a");
        assert_string_equal(set->resources[1]->name, "b");

        _cleanup_(schema_set_freep) schema_set *comments = load_text("c.yaml", "# nothing yet\n", NULL);
        assert_clean(comments);
        assert_int_equal(vf_strv_length(comments->files_ok), 1);
        assert_int_equal(comments->n_resources, 0);

        /* An empty file is not a file without documents: it masks its name. */
        _cleanup_(schema_set_freep) schema_set *empty = load_text("e.yaml", "", NULL);
        assert_clean(empty);
        assert_null(empty->files_ok);
        assert_int_equal(empty->n_sources, 1);
        assert_non_null(empty->sources[0].masked_by);
}

static void test_bad_file_among_good(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();
        free(put_file(dir, "a.yaml", HEADER("Network", "a") "spec: {}\n"));
        _cleanup_free_ char *b = put_file(dir, "b.yaml",
                HEADER("Network", "b1") "spec: {}\n---\n" HEADER("Network", "b2") "spec: {mtu: 1}\n");
        free(put_file(dir, "c.yaml", HEADER("Network", "c") "spec: {}\n"));
        _cleanup_(schema_set_freep) schema_set *set = load_path(dir);
        th_rmtree(dir);

        assert_int_equal(set->n_resources, 2);
        assert_non_null(schema_set_find(set, VF_KIND_NETWORK, "a"));
        assert_non_null(schema_set_find(set, VF_KIND_NETWORK, "c"));
        assert_null(schema_set_find(set, VF_KIND_NETWORK, "b1"));
        assert_int_equal(vf_strv_length(set->files_ok), 2);
        assert_int_equal(vf_strv_length(set->files_failed), 1);
        assert_string_equal(set->files_failed[0], b);
        for (size_t i = 0; i < set->n_resources; i++)
                assert_string_not_equal(set->resources[i]->file, b);
}

/* Files named on the command line are layers of their own, with the same duplicate rule. */
static void test_load_file_into_set(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();
        _cleanup_free_ char *a = put_file(dir, "a.yaml", HEADER("Network", "a") "spec: {}\n");
        _cleanup_free_ char *b = put_file(dir, "b.yaml", HEADER("Network", "a") "spec: {}\n");
        char *paths[] = { a, b };
        _cleanup_(schema_set_freep) schema_set *set = NULL;
        assert_int_equal(schema_load(paths, 2, &set), 0);
        th_rmtree(dir);

        assert_int_equal(set->n_resources, 1);
        assert_string_equal(set->files_failed[0], b);
        assert_diag(set, "network \"a\" is already declared");
}

/* ---- hostile YAML -------------------------------------------------------------- */

static void test_truncated_yaml(void **state) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("t.yaml",
                "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web1\n", &path);
        assert_failed(set);
        _cleanup_free_ char *prefix = vf_printf("%s:4:1: error: YAML syntax:", path);
        assert_diag(set, prefix);

        _cleanup_free_ char *path2 = NULL;
        _cleanup_(schema_set_freep) schema_set *set2 = load_text("t.yaml", "a: b\n  c: d: e\n", &path2);
        _cleanup_free_ char *msg = vf_printf("%s:2:4: error: YAML syntax: mapping values are not allowed in this context",
                                             path2);
        assert_diag(set2, msg);
}

static double now_seconds(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void test_billion_laughs(void **state) {
        vf_buf b = {};
        vf_buf_puts(&b, HEADER("Network", "lol") "spec: {}\nx0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (int i = 1; i < 10; i++) {
                vf_buf_printf(&b, "x%d: &a%d [", i, i);
                for (int j = 0; j < 9; j++)
                        vf_buf_printf(&b, "%s*a%d", j ? "," : "", i - 1);
                vf_buf_puts(&b, "]\n");
        }
        _cleanup_free_ char *text = vf_buf_steal(&b);
        _cleanup_free_ char *path = NULL;
        double start = now_seconds();
        _cleanup_(schema_set_freep) schema_set *set = load_text("lol.yaml", text, &path);

        /* The expansion budget trips first, at the level that would pass 100000 nodes. */
        assert_true(now_seconds() - start < 1.0);
        assert_failed(set);
        assert_diag_at(set, path, 10, 10, "alias *a4 expands the document beyond 100000 nodes (SCHEMA_MAX_NODES)");
}

static void test_alias_limit(void **state) {
        vf_buf b = {};
        vf_buf_puts(&b, HEADER("Network", "n") "spec: {}\nx: &a lol\ny: [");
        for (int i = 0; i <= SCHEMA_MAX_ALIASES; i++)
                vf_buf_printf(&b, "%s*a", i ? "," : "");
        vf_buf_puts(&b, "]\n");
        _cleanup_free_ char *text = vf_buf_steal(&b);
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("a.yaml", text, &path);

        assert_failed(set);
        _cleanup_free_ char *msg = vf_printf("%s:6:%d: error: more than 64 YAML aliases in one file (SCHEMA_MAX_ALIASES)",
                                             path, 5 + 3 * SCHEMA_MAX_ALIASES);
        assert_diag(set, msg);
}

/* Few aliases, each doubling: the node budget has to stop it, not the alias count. */
static void test_alias_doubling(void **state) {
        vf_buf b = {};
        vf_buf_puts(&b, HEADER("Network", "lol") "spec: {}\nx0: &a0 [lol, lol]\n");
        for (int i = 1; i < 30; i++)
                vf_buf_printf(&b, "x%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
        _cleanup_free_ char *text = vf_buf_steal(&b);
        _cleanup_free_ char *path = NULL;
        double start = now_seconds();
        _cleanup_(schema_set_freep) schema_set *set = load_text("lol.yaml", text, &path);

        assert_true(now_seconds() - start < 1.0);
        assert_failed(set);
        assert_diag_at(set, path, 19, 18, "alias *a13 expands the document beyond 100000 nodes (SCHEMA_MAX_NODES)");
}

static void test_alias_use(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("a.yaml",
                HEADER("Domain", "a") "spec: {memory: 1GiB, interfaces: [&nic {network: lan, model: e1000e}, *nic]}\n---\n"
                HEADER("Domain", "b") "spec: {memory: &m 2GiB, vcpus: 2}\n---\n"
                "apiVersion: virtform/v1\nkind: Network\nmetadata: &md {name: c}\nspec: {mtu: 1500}\n", NULL);
        assert_clean(set);
        assert_xpath(find(set, VF_KIND_DOMAIN, "a")->xml, "count(/domain/devices/interface[model/@type='e1000e'])", "2");

        _cleanup_(schema_set_freep) schema_set *self = load_text("a.yaml", HEADER("Network", "a") "spec: &s {x: *s}\n", NULL);
        assert_failed(self);
        assert_diag(self, "alias *s refers to a node that contains it");

        _cleanup_(schema_set_freep) schema_set *unknown = load_text("a.yaml", HEADER("Network", "a") "spec: *nope\n", NULL);
        assert_failed(unknown);
        assert_diag(unknown, "alias *nope refers to no anchor");
}

static void test_deep_nesting(void **state) {
        vf_buf b = {};
        vf_buf_puts(&b, HEADER("Network", "deep") "spec: {}\nx: ");
        for (int i = 0; i < 200; i++)
                vf_buf_puts(&b, "[");
        for (int i = 0; i < 200; i++)
                vf_buf_puts(&b, "]");
        vf_buf_puts(&b, "\n");
        _cleanup_free_ char *text = vf_buf_steal(&b);
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("deep.yaml", text, &path);

        /* The top mapping is level 1, so the 64th "[" (after "x: ") is the one too deep. */
        assert_failed(set);
        assert_diag_at(set, path, 5, 3 + SCHEMA_MAX_DEPTH, "YAML nesting is deeper than 64 levels (SCHEMA_MAX_DEPTH)");
}

static void test_document_limit(void **state) {
        vf_buf b = {};
        for (int i = 0; i <= SCHEMA_MAX_DOCUMENTS; i++)
                vf_buf_puts(&b, "--- ~\n");
        _cleanup_free_ char *text = vf_buf_steal(&b);
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("many.yaml", text, &path);

        assert_failed(set);
        _cleanup_free_ char *msg = vf_printf("%s:%d:1: error: more than 1024 YAML documents in one file "
                                             "(SCHEMA_MAX_DOCUMENTS)", path, SCHEMA_MAX_DOCUMENTS + 1);
        assert_diag(set, msg);
}

static void test_error_cap(void **state) {
        vf_buf b = {};
        vf_buf_puts(&b, HEADER("Network", "n") "spec:\n");
        for (int i = 0; i < 500; i++)
                vf_buf_printf(&b, "  k%d: 1\n", i);
        _cleanup_free_ char *text = vf_buf_steal(&b);
        _cleanup_(schema_set_freep) schema_set *set = load_text("n.yaml", text, NULL);

        assert_failed(set);
        assert_int_equal(set->n_diags, 101);
        assert_diag(set, "more than 100 errors");
}

/* validate's check of the set as a whole: each reference no file declares is named, once, at its resource. */
static void test_undeclared_warnings(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();
        free(put_file(dir, "10-web.yaml",
                      HEADER("Domain", "web") "spec:\n  memory: 1GiB\n  interfaces: [{network: lan}, {network: wan}]\n"
                                              "  hostdevs: [vf0, vf1]\n"));
        free(put_file(dir, "20-lan.xml", "<network><name>lan</name></network>\n"));
        /* vf1's file declares it, and fails for another reason: its errors speak for it. */
        free(put_file(dir, "30-vf1.yaml", HEADER("Hostdev", "vf1") "spec: {pci: '0000:3b:02.1'}\n---\n"
                                          HEADER("Network", "x") "spec: {colour: red}\n"));
        _cleanup_free_ char *web = vf_printf("%s/10-web.yaml", dir);
        _cleanup_(schema_set_freep) schema_set *set = load_path(dir);
        _cleanup_strv_free_ char **warnings = NULL;
        th_rmtree(dir);

        assert_int_equal(schema_set_undeclared_warnings(set, &warnings), 0);
        assert_int_equal(vf_strv_length(warnings), 2);
        _cleanup_free_ char *wan = vf_printf("%s:3:18: warning: domain/web refers to network/wan, which no file "
                                             "declares: libvirt must have that network already", web);
        _cleanup_free_ char *vf0 = vf_printf("%s:3:18: warning: domain/web refers to hostdev/vf0, which no file "
                                             "declares: declare it", web);
        assert_ptr_equal(strstr(warnings[0], wan), warnings[0]);
        assert_ptr_equal(strstr(warnings[1], vf0), warnings[1]);
}

/* A pool or volume may be one libvirt has without virtform; a seed is virtform's to declare. */
static void test_undeclared_storage_warnings(void **state) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("s.yaml",
                HEADER("Volume", "v") "spec: {pool: p, capacity: 1GiB}\n---\n"
                HEADER("Domain", "web") "spec:\n  memory: 1GiB\n  disks: [{volume: p/v}, {volume: q/w}, {cloudInit: s}]\n",
                &path);
        _cleanup_strv_free_ char **warnings = NULL;

        assert_int_equal(schema_set_undeclared_warnings(set, &warnings), 0);
        static const char *const expected[] = {
                "3:18: warning: volume/p/v refers to pool/p, which no file declares: libvirt must have that pool already",
                "8:18: warning: domain/web refers to volume/q/w, which no file declares: libvirt must have that volume "
                "already",
                "8:18: warning: domain/web refers to cloudinit/s, which no file declares: declare it",
        };
        assert_int_equal(vf_strv_length(warnings), ELEMENTSOF(expected));
        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                _cleanup_free_ char *w = vf_printf("%s:%s", path, expected[i]);
                assert_ptr_equal(strstr(warnings[i], w), warnings[i]);
        }
}

/* ---- native XML ---------------------------------------------------------------- */

static void test_native_domain(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_path("data/schema/domain-dumpxml.xml");
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_DOMAIN, "web2");

        assert_int_equal(r->line, 2);
        assert_int_equal(r->domain.state, SCHEMA_DOMAIN_SHUTOFF);
        assert_true(r->domain.autostart);
        assert_int_equal(r->domain.restart, SCHEMA_RESTART_ON_CHANGE);
        assert_true(r->adopt);
        assert_null(r->domain.hostdevs);
        assert_int_equal(vf_strv_length(r->depends), 1);
        assert_string_equal(r->depends[0], "network/lan");
        assert_null(strstr(r->xml, "virtform.org"));
        assert_non_null(strstr(r->xml, "libosinfo"));
        assert_xpath(r->xml, "string(/domain/devices/hostdev/source/address/@bus)", "0x3b");
        assert_xpath(r->xml, "string(/domain/@type)", "kvm");
        assert_xpath(r->xml, "count(/domain/devices/*)", "12");
}

static void test_native_network(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_path("data/schema/network-dumpxml.xml");
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_NETWORK, "default");

        assert_true(r->network.autostart);
        assert_false(r->adopt);
        assert_null(r->depends);
        assert_xpath(r->xml, "count(/network/metadata)", "0");
        assert_xpath(r->xml, "string(/network/ip[1]/dhcp/range/@start)", "192.168.122.2");
}

/* Files libvirt's schema accepts (tests/data/schema/libvirt/README.md): each is valid, its extension kept. */
static void test_libvirt_test_xml(void **state) {
        static const struct {
                const char *file, *name, *expr, *expected;
                vf_kind kind;
        } cases[] = {
                { "qemu-ns.xml", "QEMUGuest1", "count(/domain/*[local-name()='commandline']/*)", "4", VF_KIND_DOMAIN },
                { "lxc-sharenet.xml", "jessie", "count(/domain/*[local-name()='namespace']/*)", "3", VF_KIND_DOMAIN },
                { "dnsmasq-options.xml", "default", "count(/network/*[local-name()='options']/*)", "2",
                  VF_KIND_NETWORK },
                { "iothreads-ids-pool-sizes.xml", "QEMUGuest1", "string(/domain/defaultiothread/@thread_pool_max)",
                  "16", VF_KIND_DOMAIN },
                { "sparc-minimal.xml", "redhat62sparc", "string(/domain/memory/@unit)", "mib", VF_KIND_DOMAIN },
                { "cpu-numa-no-memory-element.xml", "QEMUGuest1", "count(/domain/memory)", "0", VF_KIND_DOMAIN },
                { "name-escape.xml", "foo=1,bar=2", "string(/domain/name)", "foo=1,bar=2", VF_KIND_DOMAIN },
                { "lxc-ethernet.xml", "8675309", "string(/domain/name)", "8675309", VF_KIND_DOMAIN },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = vf_printf("data/schema/libvirt/%s", cases[i].file);
                _cleanup_(schema_set_freep) schema_set *set = load_path(path);
                print_message("%s\n", cases[i].file);
                assert_clean(set);
                assert_xpath(find(set, cases[i].kind, cases[i].name)->xml, cases[i].expr, cases[i].expected);
        }
}

static schema_set *load_with_libvirt_schemas(const char *path, const char *schemas) {
        char *paths[] = { (char *) path };
        schema_load_options options = { .libvirt_schemas = schemas };
        schema_set *set = NULL;

        assert_int_equal(schema_load_with_options(paths, 1, &options, &set), 0);
        return set;
}

/* r's XML as the one native file of a directory of its own: does it load clean? */
static void assert_loads_as_native(const schema_resource *r) {
        _cleanup_free_ char *dir = th_mkdtemp();
        _cleanup_free_ char *path = put_file(dir, "native.xml", r->xml);
        _cleanup_(schema_set_freep) schema_set *set = load_path(path);

        print_message("%s %s from %s\n", vf_kind_to_string(r->kind), r->name, r->file);
        assert_clean(set);
        assert_int_equal(set->n_resources, 1);
        th_rmtree(dir);
}

/*
 * What virtform renders from typed YAML fields alone is not checked against its own compact schema
 * as it loads (validate.c): every document it renders from the examples must pass that schema.
 */
static void test_rendered_documents_pass_the_compact_schema(void **state) {
        static const char *const sources[] = { "data/schema/lab.yaml", "../examples", "../examples/cloud",
                                                "../examples/sriov" };
        size_t checked = 0;

        for (size_t i = 0; i < ELEMENTSOF(sources); i++) {
                _cleanup_(schema_set_freep) schema_set *set = load_path(sources[i]);
                assert_clean(set);
                for (size_t j = 0; j < set->n_resources; j++) {
                        const schema_resource *r = set->resources[j];
                        if ((r->kind == VF_KIND_DOMAIN || r->kind == VF_KIND_NETWORK) &&
                            vf_str_has_suffix(r->file, ".yaml")) {
                                assert_loads_as_native(r);
                                checked++;
                        }
                }
        }
        assert_true(checked >= 6);
}

/* Beside the compact schemas, libvirt's installed ones: then validate agrees with the host's libvirt. */
static void test_libvirt_schemas(void **state) {
        static const char *const valid[] = {
                "data/schema/domain-dumpxml.xml", "data/schema/network-dumpxml.xml", "data/schema/lab.yaml",
                "data/schema/libvirt/qemu-ns.xml", "data/schema/libvirt/dnsmasq-options.xml",
                "data/schema/libvirt/cpu-numa-no-memory-element.xml", "data/schema/libvirt/lxc-sharenet.xml",
        };
        static const char frobnicator[] = "<domain>\n  <name>x</name>\n  <memory>1024</memory>\n"
                                          "  <os><type>hvm</type></os>\n  <devices><frobnicator/></devices>\n</domain>\n";

        if (access(SCHEMA_LIBVIRT_SCHEMAS "/domain.rng", R_OK) < 0)
                th_skip("libvirt's schemas are not installed in " SCHEMA_LIBVIRT_SCHEMAS);
        for (size_t i = 0; i < ELEMENTSOF(valid); i++) {
                _cleanup_(schema_set_freep) schema_set *set = load_with_libvirt_schemas(valid[i], SCHEMA_LIBVIRT_SCHEMAS);
                print_message("%s\n", valid[i]);
                assert_clean(set);
        }

        _cleanup_free_ char *dir = th_mkdtemp();
        _cleanup_free_ char *path = put_file(dir, "x.xml", frobnicator);
        _cleanup_(schema_set_freep) schema_set *compact = load_path(path);
        _cleanup_(schema_set_freep) schema_set *libvirt = load_with_libvirt_schemas(path, SCHEMA_LIBVIRT_SCHEMAS);
        /* The type libvirt's schema asks for is lent for the check, not kept: the hypervisor's comes at define. */
        _cleanup_(schema_set_freep) schema_set *typeless = load_with_libvirt_schemas("data/schema/lab.yaml",
                                                                                     SCHEMA_LIBVIRT_SCHEMAS);
        /* A directory without them is the compact schemas alone; one whose schema does not compile, a warning. */
        _cleanup_(schema_set_freep) schema_set *absent = load_with_libvirt_schemas(path, dir);
        _cleanup_free_ char *broken_rng = put_file(dir, "domain.rng", "<grammar/>\n");
        _cleanup_(schema_set_freep) schema_set *broken = load_with_libvirt_schemas(path, dir);
        th_rmtree(dir);

        assert_clean(compact);
        assert_failed(libvirt);
        assert_every_diag_at(libvirt, path, "5:3");
        assert_diag(libvirt, "invalid <domain> (checked against libvirt's " SCHEMA_LIBVIRT_SCHEMAS "/domain.rng)");
        assert_xpath(find(typeless, VF_KIND_DOMAIN, "web1")->xml, "count(/domain/@type)", "0");
        assert_clean(absent);
        assert_int_equal(schema_set_n_errors(broken), 0);
        assert_int_equal(broken->n_resources, 1);
        assert_diag(broken, "libvirt's schema is not used: ");
        assert_diag(broken, "/domain.rng does not compile");
}

/* While set, the schemas virtform compiles from memory are one that names a datatype libxml2 does not have. */
static bool embedded_schemas_unknown_type;

xmlRelaxNGParserCtxtPtr xmlRelaxNGNewMemParserCtxt(const char *buffer, int size) {
        static const char unknown_type[] = "<element name='domain' xmlns='http://relaxng.org/ns/structure/1.0' "
                                           "datatypeLibrary='http://www.w3.org/2001/XMLSchema-datatypes'>"
                                           "<data type='unsignedFrobnicator'/></element>";
        xmlRelaxNGParserCtxtPtr (*real)(const char *, int) = dlsym(RTLD_NEXT, "xmlRelaxNGNewMemParserCtxt");

        if (embedded_schemas_unknown_type)
                return real(unknown_type, (int) strlen(unknown_type));
        return real(buffer, size);
}

/*
 * A built-in schema that does not compile, as libxml2 2.9.14's did when two
 * threads first looked up its datatypes at once: the file is refused with
 * libxml2's own reason at its root, not "out of memory", and the next load,
 * libxml2 well again, compiles and passes.
 */
static void test_builtin_schema_failing_to_compile(void **state) {
        static const char domain[] = "<domain type='kvm'>\n  <name>d</name>\n  <memory>1024</memory>\n"
                                     "  <os><type>hvm</type></os>\n</domain>\n";
        _cleanup_free_ char *path = NULL;

        embedded_schemas_unknown_type = true;
        _cleanup_(schema_set_freep) schema_set *failing = load_text("d.xml", domain, &path);
        embedded_schemas_unknown_type = false;
        _cleanup_(schema_set_freep) schema_set *well = load_text("d.xml", domain, NULL);

        assert_failed(failing);
        assert_diag_at(failing, path, 1, 1, "cannot check the file: virtform's built-in domain.rng does not "
                                            "compile: ");
        assert_diag(failing, "unsignedFrobnicator");
        assert_false(has_diag(failing, "memory"));
        assert_clean(well);
        assert_int_equal(well->n_resources, 1);
}

/* A failed assertion leaves the test at once: the schemas are well again for the tests after it. */
static int builtin_schemas_well(void **state) {
        embedded_schemas_unknown_type = false;
        return 0;
}

static void test_native_defaults_and_owner(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("d.xml",
                "<domain>\n"
                "  <name>plain</name>\n"
                "  <metadata><o:owner xmlns:o='https://virtform.org/xmlns/owner/2'>generation=1</o:owner>"
                "<o:owner xmlns:o='https://virtform.org/xmlns/owner/1' generation='1'/></metadata>\n"
                "  <memory>1048576</memory>\n"
                "</domain>\n", NULL);
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_DOMAIN, "plain");

        assert_int_equal(r->domain.state, SCHEMA_DOMAIN_RUNNING);
        assert_false(r->domain.autostart);
        assert_int_equal(r->domain.restart, SCHEMA_RESTART_NEVER);
        assert_false(r->adopt);
        assert_xpath(r->xml, "count(/domain/metadata)", "0");

        /* The same object without the owner markers, of either form, is the same desired state. */
        _cleanup_(schema_set_freep) schema_set *bare = load_text("d.xml",
                "<domain>\n  <name>plain</name>\n  <memory>1048576</memory>\n</domain>\n", NULL);
        assert_clean(bare);
        assert_string_equal(find(bare, VF_KIND_DOMAIN, "plain")->hash, r->hash);
}

/* A native document's value at line 3, column 3: each taken loads clean, each refused fails there, the diagnostic naming it. */
typedef struct native_value_case {
        const char *doc_before, *doc_after; /* the document around the value */
        const char *diag_before, *diag_after; /* the diagnostic around it */
        const char *const *taken, *const *refused; /* NULL-terminated */
} native_value_case;

static void assert_native_values(const native_value_case *c) {
        for (int refused = 0; refused <= 1; refused++)
                for (const char *const *v = refused ? c->refused : c->taken; *v; v++) {
                        _cleanup_free_ char *xml = vf_printf("%s%s%s", c->doc_before, *v, c->doc_after);
                        _cleanup_free_ char *path = NULL;
                        _cleanup_(schema_set_freep) schema_set *set = load_text("x.xml", xml, &path);
                        if (!refused) {
                                assert_clean(set);
                                continue;
                        }
                        _cleanup_free_ char *message = vf_printf("%s%s%s", c->diag_before, *v, c->diag_after);
                        assert_failed(set);
                        assert_diag_at(set, path, 3, 3, message);
                }
}

/* The units libvirt's schemas take (basictypes.rng's pattern, anchored), and only those. */
static void test_native_units(void **state) {
        static const char *const taken[] = { "b", "B", "byte", "Bytes", "BYTES", "k", "K", "KiB", "kib", "KB", "kb",
                                             "M", "MiB", "mB", "g", "GIB", "GB", "t", "TiB", "Tb", "p", "PiB",
                                             "PB", "e", "EiB", "eb", NULL };
        static const char *const refused[] = { "", " KiB", "KiB ", "Ki", "KiBB", "kibs", "x", "iB", "bb",
                                               "bytess", "byt", "K iB", "Z", "ZiB", NULL };

        assert_native_values(&(native_value_case) {
                "<domain>\n  <name>x</name>\n  <memory unit='", "'>1</memory>\n</domain>\n",
                "<memory unit='", "'>: not a unit libvirt knows", taken, refused });
}

/* The dotted quads the compact schema's pattern took, and no other: now checked in C. */
static void test_native_ipv4_addresses(void **state) {
        static const char *const taken[] = { "0.0.0.0", "255.255.255.255", "192.168.110.1", "10.0.0.1", "1.2.3.4",
                                             NULL };
        static const char *const refused[] = { "", "10.0.0.300", "256.1.1.1", "010.0.0.1", "1.2.3", "1.2.3.4.5",
                                               " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/24", "0x7f.0.0.1", "fe80::1",
                                               "a.b.c.d", "1..2.3", "127.1", NULL };

        assert_native_values(&(native_value_case) {
                "<network>\n  <name>x</name>\n  <ip address='", "' prefix='24'/>\n</network>\n",
                "<ip address='", "'>: not an IPv4 address", taken, refused });
}

static void test_native_rejects(void **state) {
        static const struct {
                const char *xml, *message;
                unsigned line;
        } cases[] = {
                { "<?xml version='1.0'?>\n<!DOCTYPE domain [\n<!ENTITY x SYSTEM \"file:///etc/passwd\">\n]>\n"
                  "<domain><name>&x;</name><memory>1024</memory></domain>\n",
                  "DOCTYPE and entities are not allowed", 2 },
                { "<!DOCTYPE domain SYSTEM \"http://example.org/evil.dtd\">\n<domain/>\n",
                  "DOCTYPE and entities are not allowed", 1 },
                /* Billion laughs: refused with the DOCTYPE, before a single entity is expanded. */
                { "<?xml version='1.0'?>\n<!DOCTYPE d [\n<!ENTITY a \"lol\">\n"
                  "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n]>\n"
                  "<domain><name>&c;</name><memory>1</memory></domain>\n",
                  "DOCTYPE and entities are not allowed", 2 },
                /* Neither read from disk nor fetched: refused where it stands. */
                { "<domain xmlns:xi='http://www.w3.org/2001/XInclude'>\n<name>x</name>\n<memory>1</memory>\n"
                  "<metadata>\n<xi:include href='/etc/passwd' parse='text'/>\n</metadata>\n</domain>\n",
                  "5:1: error: XInclude is not allowed; put the included content here", 5 },
                { "<domain>\n<name>x</name>\n<memory>1</memory>\n<devices>\n"
                  "<xi:include xmlns:xi='http://www.w3.org/2003/XInclude' href='http://example.org/d.xml'/>\n"
                  "</devices>\n</domain>\n",
                  "XInclude is not allowed", 5 },
                { "<foo>\n</foo>\n", "root element <foo> is not supported", 1 },
                { "<domain>\n  <name>x</name>\n  <memory>1024</memory>\n  <bogus/>\n</domain>\n",
                  "invalid <domain>", 4 },
                { "<network>\n  <name>x</name>\n  <frobnicate/>\n</network>\n", "invalid <network>", 3 },
                { "<domain>\n  <name>x</name>\n  <memory unit='parsecs'>1024</memory>\n</domain>\n",
                  "<memory unit='parsecs'>: not a unit libvirt knows; use b, KiB, MiB, GiB or TiB", 3 },
                { "<domain>\n  <name>x</name>\n  <memory unit='MiB'>1024</memory>\n  <currentMemory unit=''>1"
                  "</currentMemory>\n</domain>\n",
                  "<currentMemory unit=''>: not a unit libvirt knows", 4 },
                { "<domain>\n  <name>x</name>\n  <memory unit=' KiB'>1024</memory>\n</domain>\n",
                  "<memory unit=' KiB'>: not a unit libvirt knows", 3 },
                { "<volume>\n  <name>v</name>\n  <capacity unit='GiB'>1</capacity>\n  <allocation unit='GiBs'>0"
                  "</allocation>\n</volume>\n",
                  "<allocation unit='GiBs'>: not a unit libvirt knows", 4 },
                { "<domain>\n  <name>a/b</name>\n  <memory>1024</memory>\n</domain>\n", "invalid name \"a/b\"", 2 },
                /* Only the extensions libvirt defines, in its namespaces. */
                { "<domain xmlns:q='http://example.org/qemu'>\n  <name>x</name>\n  <memory>1024</memory>\n"
                  "  <q:commandline/>\n</domain>\n",
                  "invalid <domain>", 4 },
                { "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n  <name>x</name>\n"
                  "  <memory>1024</memory>\n  <qemu:frobnicate/>\n</domain>\n",
                  "invalid <domain>", 4 },
                /* libvirt refuses it too: "Memory size must be specified via <memory> or in the <numa> configuration". */
                { "<domain>\n  <name>x</name>\n  <cpu><numa><cell id='0' cpus='0'/></numa></cpu>\n</domain>\n",
                  "<domain> has no memory", 1 },
                { "<domain>\n  <name>x</name>\n  <memory>1024</memory>\n", "XML:", 4 },
                { "<network>\n  <name>x</name>\n  <ip address='10.0.0.300'/>\n</network>\n",
                  "<ip address='10.0.0.300'>: not an IPv4 address; write A.B.C.D", 3 },
                { "<network>\n  <name>x</name>\n  <ip address='10.0.0.1' netmask='255.255.0'/>\n</network>\n",
                  "<ip netmask='255.255.0'>: not an IPv4 address", 3 },
                { "<network>\n  <name>x</name>\n  <ip address='fd00::1'/>\n</network>\n",
                  "<ip address='fd00::1'>: not an IPv4 address; write A.B.C.D, e.g. 192.168.110.1 (an IPv6 address "
                  "needs family='ipv6')", 3 },
                { "<domain>\n<name>x</name><memory>1</memory>\n<metadata>\n"
                  "<p:policy xmlns:p='https://virtform.org/xmlns/policy/1' colour='red'/></metadata></domain>",
                  "unknown vf:policy attribute \"colour\" for a domain; allowed: state, autostart, restart, adopt", 4 },
                { "<network>\n<name>x</name>\n<metadata>\n"
                  "<p:policy xmlns:p='https://virtform.org/xmlns/policy/1' state='running'/></metadata></network>",
                  "unknown vf:policy attribute \"state\" for a network; allowed: autostart, adopt", 4 },
                { "<domain>\n<name>x</name><memory>1</memory>\n<metadata>\n"
                  "<p:policy xmlns:p='https://virtform.org/xmlns/policy/1' autostart='true'/></metadata></domain>",
                  "vf:policy autostart=\"true\" is not valid; use one of no, yes", 4 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_(schema_set_freep) schema_set *set = load_text("x.xml", cases[i].xml, &path);
                _cleanup_free_ char *msg = vf_printf("%s:%u:", path, cases[i].line);
                assert_failed(set);
                assert_diag(set, cases[i].message);
                assert_diag(set, msg);
        }
}

#define VF_NS "xmlns:vf='https://virtform.org/xmlns/policy/1'"

/* Inserts policy as the first child of the root of xml, as a native file carries it. */
static char *with_policy(const char *xml, const char *policy) {
        const char *close = strchr(xml, '>');
        assert_non_null(close);
        return vf_printf("%.*s\n  %s%s", (int) (close - xml + 1), xml, policy, close + 1);
}

/* Every field of a volume's spec. */
static void assert_same_volume_spec(const schema_resource *a, const schema_resource *b) {
        assert_string_equal(a->volume.pool, b->volume.pool);
        assert_string_equal(a->volume.volume, b->volume.volume);
        assert_int_equal(a->volume.capacity, b->volume.capacity);
        assert_int_equal(a->volume.format, b->volume.format);
        assert_int_equal(a->volume.source, b->volume.source);
        assert_true(vf_streq_ptr(a->volume.from, b->volume.from));
        assert_true(vf_streq_ptr(a->volume.sha256, b->volume.sha256));
        assert_int_equal(a->volume.full_copy, b->volume.full_copy);
        assert_int_equal(a->volume.deletion, b->volume.deletion);
}

static void assert_same_volume(const schema_resource *a, const schema_resource *b) {
        assert_string_equal(a->name, b->name);
        assert_same_volume_spec(a, b);
        assert_int_equal(vf_strv_length(a->depends), vf_strv_length(b->depends));
        for (size_t i = 0; a->depends && a->depends[i]; i++)
                assert_string_equal(a->depends[i], b->depends[i]);
        assert_string_equal(a->xml, b->xml);
        assert_string_equal(a->hash, b->hash);
        assert_string_equal(a->definition_hash, b->definition_hash);
}

/* A pool or volume written as native XML, its policy in vf:policy, is the same desired state as from YAML. */
static void test_native_storage_round_trip(void **state) {
        static const struct {
                const char *yaml, *name, *policy;
        } volumes[] = {
                { HEADER("Volume", "web1.qcow2") "spec: {pool: images, capacity: 20GiB, deletionPolicy: delete, "
                  "from: {volume: images/base.qcow2}}\n", "images/web1.qcow2",
                  "<vf:policy " VF_NS " pool='images' deletionPolicy='delete'><vf:from volume='images/base.qcow2'/>"
                  "</vf:policy>" },
                { HEADER("Volume", "base.qcow2") "spec: {pool: images, from: {url: 'https://h/base.img', sha256: "
                  "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789}}\n", "images/base.qcow2",
                  "<vf:policy " VF_NS " pool='images'><vf:from url='https://h/base.img' "
                  "sha256='ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789'/></vf:policy>" },
                { HEADER("Volume", "copy") "spec: {pool: fast, format: raw, from: {volume: images/base.qcow2, "
                  "clone: copy}}\n", "fast/copy",
                  "<vf:policy " VF_NS " pool='fast'><vf:from volume='images/base.qcow2' clone='copy'/></vf:policy>"
                  "<o:owner xmlns:o='https://virtform.org/xmlns/owner/1' generation='3'/>" },
                { HEADER("Volume", "import") "spec: {pool: fast, capacity: 1GiB, from: {file: /srv/a.img}}\n",
                  "fast/import", "<vf:policy " VF_NS " pool='fast' adopt='no'><vf:from file='/srv/a.img'/></vf:policy>" },
        };

        for (size_t i = 0; i < ELEMENTSOF(volumes); i++) {
                _cleanup_(schema_set_freep) schema_set *yaml = load_text("v.yaml", volumes[i].yaml, NULL);
                const schema_resource *y = find(yaml, VF_KIND_VOLUME, volumes[i].name);
                _cleanup_free_ char *native = with_policy(y->xml, volumes[i].policy);
                _cleanup_(schema_set_freep) schema_set *xml = load_text("v.xml", native, NULL);
                print_message("%s\n", native);
                assert_clean(xml);
                assert_same_volume(find(xml, VF_KIND_VOLUME, volumes[i].name), y);
        }

        _cleanup_(schema_set_freep) schema_set *yaml = load_text("p.yaml",
                HEADER("StoragePool", "images") "spec: {path: /srv/images, autostart: false}\n", NULL);
        const schema_resource *y = find(yaml, VF_KIND_POOL, "images");
        _cleanup_free_ char *native = with_policy(y->xml, "<vf:policy " VF_NS " autostart='no' adopt='yes'/>");
        _cleanup_(schema_set_freep) schema_set *xml = load_text("p.xml", native, NULL);
        assert_clean(xml);
        const schema_resource *x = find(xml, VF_KIND_POOL, "images");
        assert_string_equal(x->xml, y->xml);
        assert_string_equal(x->hash, y->hash);
        assert_string_equal(x->pool.path, "/srv/images");
        assert_false(x->pool.autostart);
        assert_true(x->adopt);
}

/* What virsh pool-dumpxml and vol-dumpxml write reads as such; a pool starts itself by default, as in YAML. */
static void test_native_storage_dumps(void **state) {
        _cleanup_(schema_set_freep) schema_set *pools = load_text("p.xml",
                "<pool type='logical'>\n  <name>vg</name>\n  <uuid>9a5e6a5e-4b6b-4d7e-9a5e-6a5e4b6b4d7e</uuid>\n"
                "  <capacity unit='bytes'>0</capacity>\n  <source>\n    <name>vg0</name>\n"
                "    <format type='lvm2'/>\n  </source>\n  <target>\n    <path>/dev/vg0</path>\n  </target>\n</pool>\n",
                NULL);
        assert_clean(pools);
        const schema_resource *pool = find(pools, VF_KIND_POOL, "vg");
        assert_true(pool->pool.autostart);
        assert_null(pool->pool.path);
        assert_null(pool->depends);

        _cleanup_(schema_set_freep) schema_set *volumes = load_text("v.xml",
                "<volume type='file'>\n  <vf:policy " VF_NS " pool='images'/>\n  <name>d.img</name>\n"
                "  <key>/srv/images/d.img</key>\n  <capacity unit='G'>2</capacity>\n  <allocation unit='bytes'>0</allocation>\n"
                "  <target>\n    <path>/srv/images/d.img</path>\n    <format type='raw'/>\n  </target>\n</volume>\n",
                NULL);
        assert_clean(volumes);
        const schema_resource *v = find(volumes, VF_KIND_VOLUME, "images/d.img");
        assert_int_equal(v->volume.capacity, UINT64_C(2) << 30);
        assert_int_equal(v->volume.format, SCHEMA_VOLUME_RAW);
        assert_int_equal(v->volume.source, SCHEMA_SOURCE_NONE);
        assert_int_equal(v->volume.deletion, SCHEMA_DELETION_RETAIN);
        assert_int_equal(vf_strv_length(v->depends), 1);
        assert_string_equal(v->depends[0], "pool/images");
        assert_xpath(v->xml, "count(//*[namespace-uri()='https://virtform.org/xmlns/policy/1'])", "0");

        /* Without a format, the volume is qcow2, and its XML says so. */
        _cleanup_(schema_set_freep) schema_set *bare = load_text("v.xml",
                "<volume>\n  <vf:policy " VF_NS " pool='images'/>\n  <name>e</name>\n  <capacity>1048576</capacity>\n"
                "</volume>\n", NULL);
        assert_clean(bare);
        assert_xpath(find(bare, VF_KIND_VOLUME, "images/e")->xml, "string(/volume/target/format/@type)", "qcow2");
}

static void test_native_storage_rejects(void **state) {
        static const struct {
                const char *xml, *at, *message;
        } cases[] = {
                { "<volume>\n  <name>v</name>\n  <capacity>1</capacity>\n</volume>\n", "1:1",
                  "a <volume> names its pool: add <vf:policy xmlns:vf='https://virtform.org/xmlns/policy/1' "
                  "pool='POOL'/> as its first child" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'/>\n  <name>v</name>\n</volume>\n", "1:1",
                  "a <volume> needs <capacity unit='GiB'>N</capacity>, or a <vf:from/> in its <vf:policy>" },
                { "<volume>\n  <vf:policy " VF_NS " pool='a/b'/>\n  <name>v</name>\n  <capacity>1</capacity>\n</volume>\n",
                  "2:3", "vf:policy pool=\"a/b\" is not valid: a name is" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p' state='running'/>\n  <name>v</name>\n"
                  "  <capacity>1</capacity>\n</volume>\n",
                  "2:3", "unknown vf:policy attribute \"state\" for a volume; allowed: pool, deletionPolicy, adopt" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p' deletionPolicy='keep'/>\n  <name>v</name>\n"
                  "  <capacity>1</capacity>\n</volume>\n",
                  "2:3", "vf:policy deletionPolicy=\"keep\" is not valid; use one of retain, delete" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from file='/a' url='https://h/a'/>\n  </vf:policy>\n"
                  "  <name>v</name>\n</volume>\n",
                  "3:5", "<vf:from> needs exactly one of volume, file or url; it has 2" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from file='/a' size='1'/>\n  </vf:policy>\n"
                  "  <name>v</name>\n</volume>\n",
                  "3:5", "unknown vf:from attribute \"size\"; allowed: volume, file, url, clone, sha256" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from url='https://h/a'/>\n  </vf:policy>\n"
                  "  <name>v</name>\n</volume>\n",
                  "3:5", "from.url needs sha256" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from file='a.img'/>\n  </vf:policy>\n"
                  "  <name>v</name>\n</volume>\n",
                  "3:5", "from.file \"a.img\" is not an absolute path; start it with /" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from file='/a' clone='copy'/>\n  </vf:policy>\n"
                  "  <name>v</name>\n</volume>\n",
                  "3:5", "clone is only for from.volume" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from volume='p/v'/>\n  </vf:policy>\n"
                  "  <name>v</name>\n</volume>\n",
                  "3:5", "volume p/v is made from itself" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from volume='p/a' clone='deep'/>\n  </vf:policy>\n"
                  "  <name>v</name>\n</volume>\n",
                  "3:5", "vf:from clone=\"deep\" is not valid; use cow or copy" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from url='https://h/a' sha256='abc'/>\n"
                  "  </vf:policy>\n  <name>v</name>\n</volume>\n",
                  "3:5", "invalid sha256 \"abc\"" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:copy/>\n  </vf:policy>\n"
                  "  <name>v</name>\n  <capacity>1</capacity>\n</volume>\n",
                  "3:5", "a volume's <vf:policy> holds one <vf:from volume='POOL/NAME'/>" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'/>\n  <name>v</name>\n  <capacity>0</capacity>\n</volume>\n",
                  "4:3", "<capacity> 0 bytes is no size a volume can have" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'/>\n  <name>v</name>\n  <capacity>1</capacity>\n"
                  "  <target><format type='vmdk'/></target>\n</volume>\n",
                  "5:11", "virtform makes qcow2 and raw volumes" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'>\n    <vf:from volume='p/a'/>\n  </vf:policy>\n"
                  "  <name>v</name>\n  <target><format type='raw'/></target>\n</volume>\n",
                  "1:1", "a copy-on-write clone (clone: cow, the default) is a qcow2 overlay" },
                { "<volume>\n  <vf:policy " VF_NS " pool='p'/>\n  <name>v</name>\n  <capacity>1</capacity>\n  <bogus/>\n"
                  "</volume>\n",
                  "5:3", "invalid <volume> (checked against virtform's volume.rng)" },
                { "<pool type='dir'>\n  <name>p</name>\n</pool>\n", "1:1", "a dir pool needs path" },
                { "<pool type='dir'>\n  <name>p</name>\n  <target><path>rel</path></target>\n</pool>\n", "3:11",
                  "<path>rel</path>: not an absolute path; give the pool's directory from the root, e.g. "
                  "/var/lib/libvirt/images" },
                { "<pool type='dir'>\n  <name>p</name>\n  <target><path></path></target>\n</pool>\n", "3:11",
                  "<path></path>: not an absolute path" },
                /* libxml2 places an attribute's error at the element after it. */
                { "<pool type='floppy'>\n  <name>p</name>\n</pool>\n", "2:3",
                  "invalid <pool> (checked against virtform's pool.rng): Element pool failed to validate attributes" },
                { "<pool type='dir'>\n  <vf:policy " VF_NS " autostart='no' pool='x'/>\n  <name>p</name>\n"
                  "  <target><path>/p</path></target>\n</pool>\n",
                  "2:3", "unknown vf:policy attribute \"pool\" for a pool; allowed: autostart, adopt" },
                { "<pool type='dir'>\n  <vf:colour " VF_NS "/>\n  <name>p</name>\n  <target><path>/p</path></target>\n</pool>\n",
                  "2:3", "only one <vf:policy/> element is allowed in the virtform policy namespace; remove <colour>" },
                { "<cloudinit>\n  <name>s</name>\n</cloudinit>\n", "1:1",
                  "root element <cloudinit> is not supported; a native XML file holds one <domain>, <network>, "
                  "<pool> or <volume>" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_(schema_set_freep) schema_set *set = load_text("x.xml", cases[i].xml, &path);
                _cleanup_free_ char *msg = vf_printf("%s:%s: error: %s", path, cases[i].at, cases[i].message);
                print_message("%s\n", cases[i].xml);
                assert_failed(set);
                assert_diag(set, msg);
        }
}

/* A native domain's volume disks and seeds are dependencies, as the YAML ones are. */
static void test_native_domain_storage(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("d.xml",
                "<domain " VF_NS ">\n  <name>d</name>\n  <memory>1048576</memory>\n  <devices>\n"
                "    <disk type='volume' device='disk'><source pool='images' volume='d.qcow2'/>"
                "<target dev='vda' bus='virtio'/></disk>\n"
                "    <disk type='volume' device='cdrom'><source pool='' volume='s.cidata.iso' vf:cloudinit='s'/>"
                "<readonly/></disk>\n  </devices>\n</domain>\n", NULL);
        assert_clean(set);
        const schema_resource *r = find(set, VF_KIND_DOMAIN, "d");
        assert_int_equal(vf_strv_length(r->depends), 2);
        assert_string_equal(r->depends[0], "volume/images/d.qcow2");
        assert_string_equal(r->depends[1], "cloudinit/s");
        assert_int_equal(vf_strv_length(r->domain.cloudinits), 1);

        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *bad = load_text("d.xml",
                "<domain " VF_NS ">\n  <name>d</name>\n  <memory>1048576</memory>\n  <devices>\n"
                "    <disk type='volume' device='cdrom'>\n      <source pool='' volume='x' vf:cloudinit='a/b'/>\n"
                "    </disk>\n  </devices>\n</domain>\n", &path);
        assert_failed(bad);
        assert_diag_at(bad, path, 6, 7, "invalid vf:cloudinit \"a/b\": a name is");
}

/* Found by fuzz-xml (tests/fuzz-corpus/fuzz-xml/crash-encoding-error-to-stderr.xml). */
static void test_native_encoding_error(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("x.xml",
                "<?xml version='1.0' encoding='EUC-JP'?><network><name>\xff\xff\xff\xff</name></network>", NULL);

        /* A diagnostic, rather than a line libxml2 writes to stderr itself. */
        assert_failed(set);
        assert_diag(set, "XML: input conversion failed due to input error");
}

static void test_native_interface_needs_source(void **state) {
        _cleanup_(schema_set_freep) schema_set *set = load_text("x.xml",
                "<domain><name>x</name><memory>1</memory><devices>"
                "<interface type='network'><mac address='52:54:00:00:00:01'/></interface>"
                "</devices></domain>", NULL);
        assert_failed(set);
        assert_diag(set, "invalid <domain>");
}

/* A <domain> nested depth elements deep; with sep "\n" the element on line N is at depth N. */
static char *deep_xml(unsigned depth, const char *sep) {
        vf_buf b = {};
        vf_buf_printf(&b, "<domain>%s", sep);
        for (unsigned i = 1; i < depth; i++)
                vf_buf_printf(&b, "<a>%s", sep);
        for (unsigned i = 1; i < depth; i++)
                vf_buf_puts(&b, "</a>");
        vf_buf_puts(&b, "</domain>\n");
        return vf_buf_steal(&b);
}

static void test_native_deep(void **state) {
        _cleanup_free_ char *text = deep_xml(100, "\n"), *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("x.xml", text, &path);

        assert_failed(set);
        assert_diag_at(set, path, SCHEMA_MAX_DEPTH + 1, 1, "XML nesting is deeper than 64 levels (SCHEMA_MAX_DEPTH)");
}

/*
 * spec.xml is parsed as carefully as an XML file. Errors in a literal block
 * (xml: |) are reported where they stand in the YAML file; in a quoted
 * scalar, at the scalar with the XML's own line.
 */
static void test_escape_hatch_hostile(void **state) {
        _cleanup_free_ char *xml = deep_xml(100, ""), *deep_path = NULL, *xi_path = NULL, *dtd_path = NULL;
        _cleanup_free_ char *deep = vf_printf(HEADER("Domain", "web1") "spec:\n  xml: \"%.*s\"\n",
                                              (int) strlen(xml) - 1, xml);
        _cleanup_(schema_set_freep) schema_set *nested = load_text("d.yaml", deep, &deep_path);
        assert_failed(nested);
        assert_diag_at(nested, deep_path, 5, 8,
                       "in spec.xml, line 1: XML nesting is deeper than 64 levels (SCHEMA_MAX_DEPTH)");

        _cleanup_(schema_set_freep) schema_set *xi = load_domain_spec(
                "  xml: |\n    <domain xmlns:xi='http://www.w3.org/2001/XInclude'>\n"
                "      <xi:include href='http://example.org/evil.xml'/>\n    </domain>\n", &xi_path);
        assert_failed(xi);
        assert_diag_at(xi, xi_path, 7, 7, "in spec.xml: XInclude is not allowed");

        _cleanup_(schema_set_freep) schema_set *dtd = load_domain_spec(
                "  xml: \"<!DOCTYPE domain SYSTEM 'file:///etc/shadow'><domain/>\"\n", &dtd_path);
        assert_failed(dtd);
        assert_diag_at(dtd, dtd_path, 5, 8, "in spec.xml, line 1: DOCTYPE and entities are not allowed");
}

/* RelaxNG errors carry the line and column of the element's '<', counted in characters. */
static void test_native_rng_positions(void **state) {
        static const struct {
                const char *xml, *at, *message;
        } cases[] = {
                { "<domain>\n  <name>x</name>\n  <memory>1</memory>\n  <devices/>  <bogus/>\n</domain>\n", "4:15",
                  "has extra content: bogus" },
                /* A start tag over two lines: where it begins, not where libxml2 has read it. */
                { "<domain>\n<name>x</name>\n<memory>1</memory> <!-- <x> --> <bogus\n  a='>'/>\n</domain>\n", "3:33",
                  "has extra content: bogus" },
                { "<domain><name>h\xc3\xb4te</name><memory>1</memory><b\xc3\xb4gus/></domain>", "1:44",
                  "has extra content: b\xc3\xb4gus" },
                { "\xef\xbb\xbf<domain><name>x</name><memory>1</memory>  <bogus/></domain>", "1:43",
                  "has extra content: bogus" },
                /* libxml2 gives its interleave errors no node: they take the next error's place. */
                { "<domain>\n  <name>x</name>\n  <memory>lots</memory>\n  <devices/>\n</domain>\n", "3:3",
                  "invalid <domain> (checked against virtform's domain.rng): Extra element memory in interleave" },
                { "<domain>\n  <name>a/b</name>\n  <memory>1</memory>\n</domain>\n", "2:3", "invalid name \"a/b\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_(schema_set_freep) schema_set *set = load_text("x.xml", cases[i].xml, &path);
                assert_diag(set, cases[i].message);
                assert_every_diag_at(set, path, cases[i].at);
        }
}

/* RelaxNG errors in spec.xml (xml: |) point into the YAML file, at the element's '<'. */
static void test_escape_hatch_rng_positions(void **state) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_domain_spec("  memory: 1GiB\n"
                                                                       "  xml: |\n"
                                                                       "    <domain>\n"
                                                                       "\n"
                                                                       "      <devices/>\n"
                                                                       "      <h\xc3\xb4te/> <bogus/>\n"
                                                                       "    </domain>\n"
                                                                       "  vcpus: 2\n",
                                                                       &path);

        assert_failed(set);
        assert_diag_at(set, path, 10, 7, "in spec.xml: invalid <domain> (checked against virtform's domain.rng)");
        for (size_t i = 0; i < set->n_diags; i++)
                assert_null(strstr(set->diags[i].message, "spec.xml, line"));
}

/* ---- hashing ------------------------------------------------------------------- */

static const char *hash_of(const char *name, const char *text, char out[VF_HASH_HEX_LEN + 1]) {
        _cleanup_(schema_set_freep) schema_set *set = load_text(name, text, NULL);
        assert_clean(set);
        assert_int_equal(set->n_resources, 1);
        strcpy(out, set->resources[0]->hash);
        return out;
}

static void test_hash(void **state) {
        char a[VF_HASH_HEX_LEN + 1], b[VF_HASH_HEX_LEN + 1], c[VF_HASH_HEX_LEN + 1], d[VF_HASH_HEX_LEN + 1],
                e[VF_HASH_HEX_LEN + 1], f[VF_HASH_HEX_LEN + 1];

        hash_of("a.yaml", HEADER("Domain", "web1") "spec: {memory: 1GiB, vcpus: 2, interfaces: [{network: lan}], hostdevs: [g]}\n", a);
        hash_of("b.yaml",
                "spec:\n  hostdevs: [g]\n  vcpus: 2\n  interfaces:\n    - network: lan\n  memory: 1024MiB\n"
                "metadata:\n  adopt: true\n  name: web1\nkind: Domain\napiVersion: virtform/v1\n",
                b);
        assert_string_equal(a, b);
        hash_of("c.yaml", HEADER("Domain", "web1") "spec: {memory: 2GiB, vcpus: 2, interfaces: [{network: lan}], hostdevs: [g]}\n", c);
        assert_string_not_equal(a, c);
        hash_of("d.yaml", HEADER("Domain", "web1") "spec: {memory: 1GiB, vcpus: 2, interfaces: [{network: lan}], hostdevs: [g], state: shutoff}\n", d);
        assert_string_not_equal(a, d);
        hash_of("e.yaml", HEADER("Hostdev", "h") "spec: {pci: '3b:02.1'}\n", e);
        hash_of("f.yaml", HEADER("Hostdev", "h") "spec: {pci: '3b:02.1', vlan: 5}\n", f);
        assert_string_not_equal(e, f);
        hash_of("moved.yaml", "\n\n" HEADER("Hostdev", "h") "spec:\n  pci: 0000:3B:02.1\n", f);
        assert_string_equal(e, f);
}

/* Every field desired counts in hash; what goes into libvirt's definition (or a seed's content) in definition_hash. */
static void test_storage_hash(void **state) {
        static const struct {
                const char *kind, *spec;
                bool definition; /* the change is also one of definition_hash */
        } variants[] = {
                { "StoragePool", "{path: /a}", true },
                { "StoragePool", "{path: /b}", true },
                { "StoragePool", "{path: /a, autostart: false}", false },
                { "StoragePool", "{type: logical, volumeGroup: vg}", true },
                { "Volume", "{pool: p, capacity: 1GiB}", true },
                { "Volume", "{pool: q, capacity: 1GiB}", true },
                { "Volume", "{pool: p, capacity: 2GiB}", true },
                { "Volume", "{pool: p, capacity: 1GiB, format: raw}", true },
                { "Volume", "{pool: p, capacity: 1GiB, deletionPolicy: delete}", false },
                { "Volume", "{pool: p, capacity: 1GiB, from: {volume: p/a}}", false },
                { "Volume", "{pool: p, capacity: 1GiB, from: {volume: p/b}}", false },
                { "Volume", "{pool: p, capacity: 1GiB, from: {volume: p/a, clone: copy}}", false },
                { "Volume", "{pool: p, capacity: 1GiB, from: {file: /p/a}}", false },
                { "Volume", "{pool: p, capacity: 1GiB, from: {url: 'http://h/p/a', sha256: " SHA "}}", false },
                { "Volume", "{pool: p, capacity: 1GiB, from: {url: 'http://h/p/a', sha256: "
                  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210}}", false },
                { "CloudInit", "{pool: p}", true },
                { "CloudInit", "{pool: q}", true },
                { "CloudInit", "{pool: p, userData: ''}", true },
                { "CloudInit", "{pool: p, userData: x}", true },
                { "CloudInit", "{pool: p, networkConfig: x}", true },
                { "CloudInit", "{pool: p, metaData: {instance-id: x}}", true },
                { "CloudInit", "{pool: p, metaData: {local-hostname: x}}", true },
        };
        char hashes[ELEMENTSOF(variants)][2][VF_HASH_HEX_LEN + 1];

        for (size_t i = 0; i < ELEMENTSOF(variants); i++) {
                _cleanup_free_ char *text = vf_printf("apiVersion: virtform/v1\nkind: %s\nmetadata: {name: v}\nspec: %s\n",
                                                      variants[i].kind, variants[i].spec);
                _cleanup_(schema_set_freep) schema_set *set = load_text("s.yaml", text, NULL);
                assert_clean(set);
                strcpy(hashes[i][0], set->resources[0]->hash);
                strcpy(hashes[i][1], set->resources[0]->definition_hash);
                for (size_t j = 0; j < i; j++)
                        assert_string_not_equal(hashes[i][0], hashes[j][0]);
        }
        /* Each variant against the first of its kind. */
        for (size_t i = 1, first = 0; i < ELEMENTSOF(variants); i++) {
                if (strcmp(variants[i].kind, variants[i - 1].kind) != 0) {
                        first = i;
                        continue;
                }
                print_message("%s\n", variants[i].spec);
                assert_int_equal(strcmp(hashes[i][1], hashes[first][1]) != 0, variants[i].definition);
        }

        /* Where a resource is declared and metadata.adopt are not desired state. */
        char a[VF_HASH_HEX_LEN + 1], b[VF_HASH_HEX_LEN + 1];
        hash_of("a.yaml", HEADER("Volume", "v") "spec: {pool: p, capacity: 1GiB}\n", a);
        hash_of("b.yaml", "\n" "apiVersion: virtform/v1\nkind: Volume\nmetadata: {name: v, adopt: true}\n"
                          "spec: {capacity: 1024MiB, pool: p}\n", b);
        assert_string_equal(a, b);
}

/* ---- drop-in layers ------------------------------------------------------------ */

/* Three layers in one temporary tree, highest precedence first, like /etc, /run and /usr/lib. */
enum { ETC, RUN, USR, N_LAYERS };

typedef struct tree {
        char *root;
        char *dirs[N_LAYERS];
} tree;

static void tree_init(tree *t) {
        static const char *const names[N_LAYERS] = { "etc", "run", "usr" };

        t->root = th_mkdtemp();
        for (size_t i = 0; i < N_LAYERS; i++) {
                t->dirs[i] = vf_printf("%s/%s", t->root, names[i]);
                assert_int_equal(mkdir(t->dirs[i], 0700), 0);
        }
}

static void tree_done(tree *t) {
        for (size_t i = 0; i < N_LAYERS; i++)
                free(t->dirs[i]);
        th_rmtree(t->root);
        free(t->root);
}

static char *tree_path(const tree *t, int layer, const char *name) {
        return vf_printf("%s/%s", t->dirs[layer], name);
}

static void put(const tree *t, int layer, const char *name, const char *text) {
        free(put_file(t->dirs[layer], name, text));
}

static void del(const tree *t, int layer, const char *name) {
        _cleanup_free_ char *path = tree_path(t, layer, name);
        assert_int_equal(unlink(path), 0);
}

static void mask_link(const tree *t, int layer, const char *name) {
        _cleanup_free_ char *path = tree_path(t, layer, name);
        assert_int_equal(symlink("/dev/null", path), 0);
}

static schema_set *load_tree(const tree *t) {
        schema_set *set = NULL;
        assert_int_equal(schema_load(t->dirs, N_LAYERS, &set), 0);
        return set;
}

static void assert_strv_equal(char *const *a, char *const *b) {
        size_t n = vf_strv_length(a);

        for (size_t i = 0; i < n && i < vf_strv_length(b); i++)
                if (strcmp(a[i], b[i]) != 0)
                        fail_msg("entry %zu: \"%s\" != \"%s\"", i, a[i], b[i]);
        if (n != vf_strv_length(b))
                fail_msg("%zu entries (first \"%s\") != %zu entries (first \"%s\")", n, n ? a[0] : "",
                         vf_strv_length(b), vf_strv_length(b) ? b[0] : "");
}

/* The source of name: which file wins, what masks it, what it overrides (NULL-terminated). */
static void assert_source(const schema_set *set, const char *name, const char *path, const char *masked_by, ...) {
        _cleanup_strv_free_ char **overridden = NULL;
        const schema_source *s = schema_set_source(set, name);
        va_list ap;

        assert_non_null(s);
        assert_string_equal(s->name, name);
        assert_true(vf_streq_ptr(s->path, path));
        assert_true(vf_streq_ptr(s->masked_by, masked_by));
        va_start(ap, masked_by);
        for (const char *p; (p = va_arg(ap, const char *));)
                assert_int_equal(vf_strv_push(&overridden, p), 0);
        va_end(ap);
        assert_strv_equal(s->overridden, overridden);
}

static void assert_same_resource(const schema_resource *a, const schema_resource *b) {
        assert_int_equal(a->kind, b->kind);
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->file, b->file);
        assert_string_equal(a->hash, b->hash);
        assert_int_equal(a->line, b->line);
        assert_int_equal(a->column, b->column);
}

static void assert_same_sources(const schema_set *a, const schema_set *b) {
        assert_int_equal(a->n_sources, b->n_sources);
        for (size_t i = 0; i < a->n_sources; i++) {
                assert_string_equal(a->sources[i].name, b->sources[i].name);
                assert_true(vf_streq_ptr(a->sources[i].path, b->sources[i].path));
                assert_true(vf_streq_ptr(a->sources[i].masked_by, b->sources[i].masked_by));
                assert_strv_equal(a->sources[i].overridden, b->sources[i].overridden);
        }
}

static void assert_same_sets(const schema_set *set, const schema_set *full) {
        assert_int_equal(set->n_resources, full->n_resources);
        for (size_t i = 0; i < set->n_resources; i++) {
                assert_same_resource(set->resources[i], full->resources[i]);
                assert_ptr_equal(schema_set_find(set, set->resources[i]->kind, set->resources[i]->name),
                                 set->resources[i]);
        }
        assert_int_equal(vf_map_size(set->by_key), vf_map_size(full->by_key));
        assert_strv_equal(set->files_ok, full->files_ok);
        assert_strv_equal(set->files_failed, full->files_failed);
        /* The counts kept beside them, after a reload as after a load. */
        assert_int_equal(set->n_files_ok, vf_strv_length(set->files_ok));
        assert_int_equal(set->n_files_failed, vf_strv_length(set->files_failed));
        assert_int_equal(full->n_files_ok, vf_strv_length(full->files_ok));
        assert_int_equal(full->n_files_failed, vf_strv_length(full->files_failed));
        assert_int_equal(set->n_diags, full->n_diags);
        for (size_t i = 0; i < set->n_diags; i++) {
                _cleanup_free_ char *a = schema_diag_format(&set->diags[i]);
                _cleanup_free_ char *b = schema_diag_format(&full->diags[i]);
                assert_string_equal(a, b);
        }
        assert_same_sources(set, full);
}

/* What reloads made of set has to be what a full load of the same paths gives now. */
static void assert_same_as_full_load(const schema_set *set) {
        _cleanup_(schema_set_freep) schema_set *full = NULL;

        assert_int_equal(schema_load_with_options(set->dirs, vf_strv_length(set->dirs), &set->options, &full), 0);
        assert_same_sets(set, full);
}

/* Reloads name, expects exactly the changed keys given (sorted, NULL-terminated), and compares with a full load. */
static void reload_expect(schema_set *set, const char *name, ...) {
        _cleanup_strv_free_ char **changed = NULL, **expected = NULL;
        va_list ap;

        va_start(ap, name);
        for (const char *key; (key = va_arg(ap, const char *));)
                assert_int_equal(vf_strv_push(&expected, key), 0);
        va_end(ap);
        assert_int_equal(schema_set_reload(set, name, &changed), 0);
        assert_strv_equal(changed, expected);
        assert_same_as_full_load(set);
}

#define NET(name, spec) HEADER("Network", name) "spec: {" spec "}\n"

static void test_dropin_precedence(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "10-a.yaml", NET("a", "mtu: 1500"));
        put(&t, RUN, "10-a.yaml", NET("a", "mtu: 9000"));
        put(&t, ETC, "10-a.yaml", NET("a", "autostart: false"));
        put(&t, USR, "20-b.yaml", NET("b", ""));
        put(&t, ETC, "30-c.xml", "<network><name>c</name></network>");
        _cleanup_free_ char *etc_a = tree_path(&t, ETC, "10-a.yaml"), *run_a = tree_path(&t, RUN, "10-a.yaml"),
                            *usr_a = tree_path(&t, USR, "10-a.yaml"), *usr_b = tree_path(&t, USR, "20-b.yaml"),
                            *etc_c = tree_path(&t, ETC, "30-c.xml");
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);

        assert_clean(set);
        assert_int_equal(set->n_resources, 3);
        const schema_resource *a = find(set, VF_KIND_NETWORK, "a");
        assert_string_equal(a->file, etc_a);
        assert_false(a->network.autostart);
        assert_string_equal(find(set, VF_KIND_NETWORK, "b")->file, usr_b);
        assert_string_equal(find(set, VF_KIND_NETWORK, "c")->file, etc_c);
        char *ok[] = { etc_a, usr_b, etc_c, NULL };
        assert_strv_equal(set->files_ok, ok);
        char *dirs[] = { t.dirs[ETC], t.dirs[RUN], t.dirs[USR], NULL };
        assert_strv_equal(set->dirs, dirs);
        assert_int_equal(set->n_sources, 3);
        assert_source(set, "10-a.yaml", etc_a, NULL, run_a, usr_a, NULL);
        assert_source(set, "20-b.yaml", usr_b, NULL, NULL);
        /* The controller looks a resource's file up to say what it overrides. */
        assert_ptr_equal(schema_set_source(set, a->file), schema_set_source(set, "10-a.yaml"));
        assert_null(schema_set_source(set, "99-none.yaml"));
        tree_done(&t);
}

static void test_dropin_masking(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "a.yaml", NET("a", ""));
        put(&t, ETC, "a.yaml", "");
        put(&t, USR, "b.yaml", NET("b", ""));
        mask_link(&t, RUN, "b.yaml");
        put(&t, USR, "c.yaml", NET("c", ""));
        put(&t, RUN, "c.yaml", "");
        put(&t, ETC, "c.yaml", NET("c", "mtu: 9000"));
        put(&t, USR, "d.yaml", "");
        _cleanup_free_ char *etc_a = tree_path(&t, ETC, "a.yaml"), *usr_a = tree_path(&t, USR, "a.yaml"),
                            *run_b = tree_path(&t, RUN, "b.yaml"), *usr_b = tree_path(&t, USR, "b.yaml"),
                            *etc_c = tree_path(&t, ETC, "c.yaml"), *run_c = tree_path(&t, RUN, "c.yaml"),
                            *usr_c = tree_path(&t, USR, "c.yaml"), *usr_d = tree_path(&t, USR, "d.yaml");
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);

        assert_clean(set);
        assert_int_equal(set->n_resources, 1);
        assert_string_equal(find(set, VF_KIND_NETWORK, "c")->file, etc_c);
        char *ok[] = { etc_c, NULL };
        assert_strv_equal(set->files_ok, ok);
        assert_source(set, "a.yaml", NULL, etc_a, usr_a, NULL);
        assert_source(set, "b.yaml", NULL, run_b, usr_b, NULL);
        /* A real file in a higher layer beats a mask in a lower one. */
        assert_source(set, "c.yaml", etc_c, NULL, run_c, usr_c, NULL);
        assert_source(set, "d.yaml", NULL, usr_d, NULL);
        tree_done(&t);
}

/* /dev/null's own device node under a drop-in name masks it as a symlink to /dev/null does. */
static void test_dropin_mask_device_node(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "e.yaml", NET("e", ""));
        _cleanup_free_ char *run_e = tree_path(&t, RUN, "e.yaml"), *usr_e = tree_path(&t, USR, "e.yaml");
        if (mknod(run_e, S_IFCHR | 0666, makedev(1, 3)) < 0) {
                tree_done(&t);
                th_skip("cannot make a device node (%s): CAP_MKNOD is needed", strerror(errno));
        }
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);

        assert_clean(set);
        assert_int_equal(set->n_resources, 0);
        assert_source(set, "e.yaml", NULL, run_e, usr_e, NULL);
        tree_done(&t);
}

static void test_dropin_non_candidates(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "n.yaml", NET("n", ""));
        put(&t, ETC, "n.yaml.swp", "");
        put(&t, ETC, ".n.yaml", "");
        put(&t, ETC, "n.conf", "not: [valid");
        _cleanup_free_ char *sub = tree_path(&t, ETC, "s.yaml");
        assert_int_equal(mkdir(sub, 0700), 0);
        put(&t, USR, "s.yaml", NET("s", ""));
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);

        /* Editor leftovers, hidden files and other names neither load nor mask; a directory is no file. */
        assert_clean(set);
        assert_int_equal(set->n_resources, 2);
        assert_int_equal(set->n_sources, 2);
        assert_source(set, "n.yaml", find(set, VF_KIND_NETWORK, "n")->file, NULL, NULL);
        assert_source(set, "s.yaml", find(set, VF_KIND_NETWORK, "s")->file, NULL, NULL);
        tree_done(&t);
}

static void test_dropin_file_layer(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "web.yaml", NET("web", ""));
        put(&t, USR, "lab.conf", NET("ignored", ""));
        _cleanup_free_ char *file = put_file(t.dirs[ETC], "web.yaml", NET("web", "mtu: 9000"));
        _cleanup_free_ char *conf = put_file(t.dirs[RUN], "lab.conf", NET("lab", ""));
        _cleanup_free_ char *usr_web = tree_path(&t, USR, "web.yaml");
        char *paths[] = { file, conf, t.dirs[USR] };
        schema_set *set = NULL;
        assert_int_equal(schema_load(paths, ELEMENTSOF(paths), &set), 0);

        /* A path to a file is a layer of its own; a file named on purpose is read whatever its name. */
        assert_clean(set);
        assert_int_equal(set->n_resources, 2);
        assert_string_equal(find(set, VF_KIND_NETWORK, "web")->file, file);
        assert_string_equal(find(set, VF_KIND_NETWORK, "lab")->file, conf);
        assert_source(set, "web.yaml", file, NULL, usr_web, NULL);
        assert_source(set, "lab.conf", conf, NULL, NULL);
        schema_set_free(set);

        /* An empty file named on purpose masks its name like one in a directory. */
        put(&t, ETC, "web.yaml", "");
        assert_int_equal(schema_load(paths, ELEMENTSOF(paths), &set), 0);
        assert_clean(set);
        assert_null(schema_set_find(set, VF_KIND_NETWORK, "web"));
        assert_source(set, "web.yaml", NULL, file, usr_web, NULL);
        schema_set_free(set);
        tree_done(&t);
}

static void test_dropin_missing(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "a.yaml", NET("a", ""));
        _cleanup_free_ char *missing = tree_path(&t, RUN, "gone.d");
        _cleanup_free_ char *a_file = tree_path(&t, USR, "a.yaml");
        _cleanup_free_ char *through_file = vf_printf("%s/sub.d", a_file);
        char *paths[] = { missing, through_file, t.dirs[USR] };
        schema_load_options defaults = { .default_dirs = true };
        schema_set *set = NULL;

        /* The default directories may be absent, not unreadable. */
        assert_int_equal(schema_load_with_options(paths, ELEMENTSOF(paths), &defaults, &set), 0);
        char *absent[] = { missing, NULL };
        assert_strv_equal(set->dirs_missing, absent);
        assert_int_equal(set->n_path_errors, 1);
        assert_non_null(find(set, VF_KIND_NETWORK, "a"));
        schema_set_free(set);

        /* A path the user named has to be there, and not through a file. */
        assert_int_equal(schema_load(paths, ELEMENTSOF(paths), &set), 0);
        _cleanup_free_ char *msg = vf_printf("%s: error: does not exist;", missing);
        _cleanup_free_ char *msg2 = vf_printf("%s: error: cannot be read: Not a directory;", through_file);
        assert_int_equal(set->n_diags, 0);
        assert_int_equal(set->n_path_errors, 2);
        assert_diag(set, msg);
        assert_diag(set, msg2);
        assert_int_equal(schema_set_n_errors(set), 2);
        assert_null(set->dirs_missing);
        assert_null(set->files_failed);
        assert_non_null(find(set, VF_KIND_NETWORK, "a"));

        /* The same paths failing as at load: a name reloads as a full load would judge it now. */
        put(&t, USR, "a.yaml", NET("a", "mtu: 9000"));
        char **changed = NULL;
        assert_int_equal(schema_set_reload(set, "a.yaml", &changed), 0);
        char *a_changed[] = { "network/a", NULL };
        assert_strv_equal(changed, a_changed);
        vf_strv_free(changed);

        /* A path that reads again is a change to the paths: a full load, not a reload, takes it. */
        assert_int_equal(mkdir(missing, 0700), 0);
        assert_int_equal(schema_set_reload(set, "a.yaml", NULL), -EAGAIN);
        assert_int_equal(rmdir(missing), 0);
        schema_set_free(set);

        /* Nor a directory that vanished since the set was loaded. */
        char *present[] = { t.dirs[ETC], t.dirs[USR] };
        put(&t, ETC, "b.yaml", NET("b", ""));
        assert_int_equal(schema_load(present, ELEMENTSOF(present), &set), 0);
        assert_clean(set);
        del(&t, ETC, "b.yaml");
        assert_int_equal(rmdir(t.dirs[ETC]), 0);
        assert_int_equal(schema_set_reload(set, "b.yaml", NULL), -ENOENT);
        assert_non_null(find(set, VF_KIND_NETWORK, "b"));
        schema_set_free(set);
        assert_int_equal(mkdir(t.dirs[ETC], 0700), 0);
        tree_done(&t);
}

/* ---- reloading one name ---------------------------------------------------------- */

static void test_reload_edit_add_delete(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "a.yaml", NET("a", ""));
        put(&t, USR, "b.yaml", NET("b", "") "---\n" NET("b2", ""));
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);
        assert_clean(set);

        reload_expect(set, "a.yaml", NULL);
        put(&t, USR, "a.yaml", NET("a", "mtu: 9000"));
        reload_expect(set, "a.yaml", "network/a", NULL);
        /* The position moves but nothing desired changes. */
        put(&t, USR, "a.yaml", "# the lab network\n" NET("a", "mtu: 9000"));
        reload_expect(set, "a.yaml", NULL);
        assert_int_equal(find(set, VF_KIND_NETWORK, "a")->line, 4);

        put(&t, USR, "0.yaml", NET("zero", ""));
        reload_expect(set, "0.yaml", "network/zero", NULL);
        assert_string_equal(set->resources[0]->name, "zero");
        del(&t, USR, "b.yaml");
        _cleanup_free_ char *b = tree_path(&t, USR, "b.yaml");
        reload_expect(set, b, "network/b", "network/b2", NULL);
        assert_null(schema_set_source(set, "b.yaml"));
        assert_int_equal(set->n_resources, 2);
        /* Names that are no candidates change nothing. */
        put(&t, ETC, "a.yaml.swp", "");
        reload_expect(set, "a.yaml.swp", NULL);
        tree_done(&t);
}

static void test_reload_mask_and_override(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "a.yaml", NET("a", ""));
        _cleanup_free_ char *etc_a = tree_path(&t, ETC, "a.yaml"), *run_a = tree_path(&t, RUN, "a.yaml"),
                            *usr_a = tree_path(&t, USR, "a.yaml");
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);

        mask_link(&t, RUN, "a.yaml");
        reload_expect(set, "a.yaml", "network/a", NULL);
        assert_source(set, "a.yaml", NULL, run_a, usr_a, NULL);
        assert_int_equal(set->n_resources, 0);
        del(&t, RUN, "a.yaml");
        reload_expect(set, "a.yaml", "network/a", NULL);
        assert_source(set, "a.yaml", usr_a, NULL, NULL);

        put(&t, ETC, "a.yaml", "");
        reload_expect(set, "a.yaml", "network/a", NULL);
        assert_source(set, "a.yaml", NULL, etc_a, usr_a, NULL);

        /* An override with other content changes the hash; with the same content, the resource moved. */
        put(&t, ETC, "a.yaml", NET("a", "mtu: 9000"));
        reload_expect(set, "a.yaml", "network/a", NULL);
        assert_source(set, "a.yaml", etc_a, NULL, usr_a, NULL);
        put(&t, RUN, "a.yaml", NET("a", "mtu: 9000"));
        del(&t, ETC, "a.yaml");
        reload_expect(set, "a.yaml", "network/a", NULL);
        assert_string_equal(find(set, VF_KIND_NETWORK, "a")->file, run_a);
        tree_done(&t);
}

static void test_reload_valid_invalid(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "a.yaml", NET("a", "") "---\n" NET("a2", ""));
        put(&t, USR, "b.yaml", NET("b", ""));
        _cleanup_free_ char *a = tree_path(&t, USR, "a.yaml");
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);

        put(&t, USR, "a.yaml", NET("a", "") "---\n" NET("a2", "mtu: 1"));
        reload_expect(set, "a.yaml", "network/a", "network/a2", NULL);
        char *failed[] = { a, NULL };
        assert_strv_equal(set->files_failed, failed);
        assert_int_equal(set->n_resources, 1);
        assert_diag_at(set, a, 9, 13, "\"mtu\" must be an integer");

        put(&t, USR, "a.yaml", NET("a", "") "---\n" NET("a2", "mtu: 1500"));
        reload_expect(set, "a.yaml", "network/a", "network/a2", NULL);
        assert_clean(set);
        assert_int_equal(set->n_resources, 3);
        tree_done(&t);
}

static void test_reload_duplicates(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "a.yaml", NET("x", ""));
        put(&t, USR, "b.yaml", NET("x", "") "---\n" NET("y", ""));
        put(&t, USR, "c.yaml", NET("y", ""));
        _cleanup_free_ char *b = tree_path(&t, USR, "b.yaml"), *c = tree_path(&t, USR, "c.yaml");
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);
        char *b_failed[] = { b, NULL }, *c_failed[] = { c, NULL };
        assert_strv_equal(set->files_failed, b_failed);

        /* b's error names where x is declared: moving it there rewrites b's diagnostic. */
        put(&t, USR, "a.yaml", "# moved down\n" NET("x", ""));
        reload_expect(set, "a.yaml", NULL);

        /* Without a, b declares x and y, so c is now the duplicate. */
        del(&t, USR, "a.yaml");
        reload_expect(set, "a.yaml", "network/x", "network/y", NULL);
        assert_strv_equal(set->files_failed, c_failed);
        assert_string_equal(find(set, VF_KIND_NETWORK, "y")->file, b);

        put(&t, USR, "a.yaml", NET("x", ""));
        reload_expect(set, "a.yaml", "network/x", "network/y", NULL);
        assert_strv_equal(set->files_failed, b_failed);
        assert_string_equal(find(set, VF_KIND_NETWORK, "y")->file, c);

        /* A name sorting before the holder takes the key over. */
        put(&t, USR, "0.yaml", NET("y", "mtu: 9000"));
        reload_expect(set, "0.yaml", "network/y", NULL);
        assert_int_equal(vf_strv_length(set->files_failed), 2);
        del(&t, USR, "0.yaml");
        reload_expect(set, "0.yaml", "network/y", NULL);

        /* The duplicate itself becoming valid or invalid frees nothing and takes nothing. */
        put(&t, USR, "b.yaml", NET("x", "") "---\n" NET("y", "mtu: 1"));
        reload_expect(set, "b.yaml", NULL);
        tree_done(&t);
}

static void test_reload_duplicate_pci(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "h1.yaml", HEADER("Hostdev", "vf1") "spec: {pci: '3b:02.1'}\n");
        put(&t, USR, "h2.yaml", HEADER("Hostdev", "vf2") "spec: {pci: '3b:02.1'}\n");
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);
        assert_int_equal(set->n_resources, 1);

        del(&t, USR, "h1.yaml");
        reload_expect(set, "h1.yaml", "hostdev/vf1", "hostdev/vf2", NULL);
        put(&t, USR, "h0.yaml", HEADER("Hostdev", "vf0") "spec: {pci: '0000:3b:02.1'}\n");
        reload_expect(set, "h0.yaml", "hostdev/vf0", "hostdev/vf2", NULL);
        assert_string_equal(set->resources[0]->name, "vf0");
        tree_done(&t);
}

#define VOL(name, from) HEADER("Volume", name) "spec: {pool: p, from: {volume: " from "}}\n"
#define VOL_EMPTY(name) HEADER("Volume", name) "spec: {pool: p, capacity: 1GiB}\n"

/* In one file, each volume of a cycle is an error; one leading into it is not on it. */
static void test_volume_cycle_in_file(void **state) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(schema_set_freep) schema_set *set = load_text("v.yaml",
                VOL("a", "p/b") "---\n" VOL("b", "p/c") "---\n" VOL("c", "p/a") "---\n" VOL("d", "p/a") "---\n"
                VOL_EMPTY("e"), &path);

        assert_failed(set);
        assert_int_equal(set->n_diags, 3);
        assert_diag_at(set, path, 3, 18, "volume p/a is made from itself: p/a, made from p/b, made from p/c, made "
                       "from p/a; make one of them from another volume, a file or a URL");
        assert_diag_at(set, path, 8, 18, "volume p/b is made from itself: p/b, made from p/c, made from p/a, made from p/b");
        assert_diag_at(set, path, 13, 18, "volume p/c is made from itself: p/c, made from p/a, made from p/b, made from p/c");
}

/* Across files the one that closes the cycle fails, naming where the others are; reloads agree with a full load. */
static void test_volume_cycle_across_files(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "10-a.yaml", VOL("a", "p/b"));
        put(&t, USR, "20-b.yaml", VOL("b", "p/c"));
        put(&t, USR, "30-c.yaml", VOL_EMPTY("c"));
        _cleanup_free_ char *a = tree_path(&t, USR, "10-a.yaml"), *b = tree_path(&t, USR, "20-b.yaml"),
                            *c = tree_path(&t, USR, "30-c.yaml");
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);
        assert_clean(set);
        char *b_failed[] = { b, NULL }, *c_failed[] = { c, NULL };

        /* The last file to be judged closes it: c, made from a, which is made from b, made from c. */
        put(&t, USR, "30-c.yaml", VOL("c", "p/a"));
        reload_expect(set, "30-c.yaml", "volume/p/c", NULL);
        assert_strv_equal(set->files_failed, c_failed);
        _cleanup_free_ char *msg = vf_printf("volume p/c is made from itself: p/c, made from p/a (%s:3:18), made from "
                                             "p/b (%s:3:18), made from p/c;", a, b);
        assert_diag_at(set, c, 3, 18, msg);
        assert_int_equal(set->n_diags, 1);

        /* An earlier file breaking the cycle lets c in; closing it again there fails c again. */
        put(&t, USR, "20-b.yaml", VOL_EMPTY("b"));
        reload_expect(set, "20-b.yaml", "volume/p/b", "volume/p/c", NULL);
        assert_clean(set);
        put(&t, USR, "20-b.yaml", VOL("b", "p/c"));
        reload_expect(set, "20-b.yaml", "volume/p/b", "volume/p/c", NULL);
        assert_strv_equal(set->files_failed, c_failed);

        /* Moving c before b: b now closes the cycle and fails instead. */
        del(&t, USR, "30-c.yaml");
        reload_expect(set, "30-c.yaml", NULL);
        put(&t, USR, "15-c.yaml", VOL("c", "p/a"));
        reload_expect(set, "15-c.yaml", "volume/p/b", "volume/p/c", NULL);
        assert_strv_equal(set->files_failed, b_failed);

        /* The closing file made clean by a change of its own. */
        put(&t, USR, "20-b.yaml", HEADER("Volume", "b") "spec: {pool: p, from: {file: /srv/b.img}}\n");
        reload_expect(set, "20-b.yaml", "volume/p/b", NULL);
        assert_clean(set);
        assert_int_equal(set->n_resources, 3);
        tree_done(&t);
}

/* Pools, volumes, seeds and the domains using them reload as a full load gives them. */
static void test_reload_storage(void **state) {
        tree t;
        tree_init(&t);
        put(&t, USR, "10-pool.yaml", HEADER("StoragePool", "p") "spec: {path: /srv/p}\n");
        put(&t, USR, "20-vol.yaml", VOL_EMPTY("base") "---\n" VOL("web1", "p/base"));
        put(&t, USR, "30-seed.yaml", HEADER("CloudInit", "s") "spec: {pool: p, userData: '#cloud-config'}\n");
        put(&t, USR, "40-web1.yaml", HEADER("Domain", "web1") "spec:\n  memory: 1GiB\n"
                                     "  disks: [{volume: p/web1}, {cloudInit: s}]\n");
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);
        assert_clean(set);
        assert_int_equal(set->n_resources, 5);

        put(&t, USR, "30-seed.yaml", HEADER("CloudInit", "s") "spec: {pool: p, userData: '#cloud-config\n'}\n");
        reload_expect(set, "30-seed.yaml", "cloudinit/s", NULL);
        put(&t, USR, "20-vol.yaml", VOL_EMPTY("base") "---\n" VOL("web1", "p/base") "---\n" VOL("web2", "p/base"));
        reload_expect(set, "20-vol.yaml", "volume/p/web2", NULL);
        put(&t, USR, "10-pool.yaml", HEADER("StoragePool", "p") "spec: {path: /srv/p, autostart: false}\n");
        reload_expect(set, "10-pool.yaml", "pool/p", NULL);
        put(&t, USR, "40-web1.yaml", HEADER("Domain", "web1") "spec:\n  memory: 1GiB\n"
                                     "  disks: [{volume: p/web2}, {cloudInit: s, bus: sata}]\n");
        reload_expect(set, "40-web1.yaml", "domain/web1", NULL);
        put(&t, USR, "20-vol.yaml", VOL_EMPTY("base") "---\n" VOL("web1", "p/nope") "---\n" "kind: Volume\n");
        reload_expect(set, "20-vol.yaml", "volume/p/base", "volume/p/web1", "volume/p/web2", NULL);
        assert_int_equal(vf_strv_length(set->files_failed), 1);
        del(&t, USR, "20-vol.yaml");
        reload_expect(set, "20-vol.yaml", NULL);
        assert_clean(set);
        tree_done(&t);
}

/* ---- loading again: what did not change is not read -------------------------------- */

/* Bytes this process has read with read(2) and its kin (/proc/self/io): what a load read, seen from outside. */
static uint64_t bytes_read(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/io", "re");
        unsigned long long rchar = 0;

        assert_non_null(f);
        assert_int_equal(fscanf(f, "rchar: %llu", &rchar), 1);
        return rchar;
}

/* Long enough that reading one file shows: the loads compared below read nothing else of this size. */
#define PADDING "# " "....................................................................................." "\n"
#define PAD4K PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING \
        PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING        \
        PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING        \
        PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING PADDING
#define FILE_BYTES 4096 /* about, at least */

/* A file whose last change is older than a load's read by more than the settle time of load.c. */
static void settle(void) {
        struct timespec t = { .tv_sec = 2, .tv_nsec = 200 * 1000 * 1000 };
        assert_int_equal(nanosleep(&t, NULL), 0);
}

/*
 * Takes back from the allocator what was just freed, and overwrites it, until
 * scribble_done(): a resource still reachable but freed then reads as
 * garbage, without a sanitizer too (glibc hands a size's freed chunks out
 * again first).
 */
typedef struct scribble {
        unsigned char **chunks;
        size_t n;
} scribble;

static scribble scribble_freed_memory(size_t n_resources) {
        scribble s = { .n = 8 * n_resources + 64 };

        s.chunks = calloc(s.n, sizeof *s.chunks);
        assert_non_null(s.chunks);
        for (size_t i = 0; i < s.n; i++) {
                volatile unsigned char *c = s.chunks[i] = malloc(sizeof(schema_resource));
                assert_non_null(s.chunks[i]);
                for (size_t j = 0; j < sizeof(schema_resource); j++)
                        c[j] = 0x5a;
        }
        return s;
}

static void scribble_done(scribble *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->chunks[i]);
        free(s->chunks);
}

static schema_set *load_tree_reusing(const tree *t, const schema_set *previous, const schema_load_options *options,
                                     size_t *ret_files_read) {
        schema_set *set = NULL;
        uint64_t before = bytes_read();

        assert_int_equal(schema_load_reusing(t->dirs, N_LAYERS, options, previous, &set), 0);
        *ret_files_read = (bytes_read() - before) / FILE_BYTES;
        return set;
}

static void assert_same_strv_field(char *const *a, char *const *b) {
        assert_int_equal(!a, !b);
        assert_strv_equal(a, b);
}

/* Field by field, not by hash: a field the hash leaves out would go unseen. */
static void assert_same_fields(const schema_resource *a, const schema_resource *b) {
        assert_same_resource(a, b);
        assert_string_equal(a->definition_hash, b->definition_hash);
        assert_int_equal(a->adopt, b->adopt);
        assert_int_equal(a->drift, b->drift);
        assert_true(vf_streq_ptr(a->xml, b->xml));
        assert_same_strv_field(a->depends, b->depends);
        switch (a->kind) {
        case VF_KIND_NETWORK:
                assert_int_equal(a->network.autostart, b->network.autostart);
                break;
        case VF_KIND_DOMAIN:
                assert_int_equal(a->domain.state, b->domain.state);
                assert_int_equal(a->domain.autostart, b->domain.autostart);
                assert_int_equal(a->domain.restart, b->domain.restart);
                assert_same_strv_field(a->domain.hostdevs, b->domain.hostdevs);
                assert_same_strv_field(a->domain.cloudinits, b->domain.cloudinits);
                break;
        case VF_KIND_HOSTDEV:
                assert_string_equal(a->hostdev.pci, b->hostdev.pci);
                assert_true(vf_streq_ptr(a->hostdev.mac, b->hostdev.mac));
                assert_int_equal(a->hostdev.vlan, b->hostdev.vlan);
                assert_int_equal(a->hostdev.managed, b->hostdev.managed);
                break;
        case VF_KIND_POOL:
                assert_int_equal(a->pool.autostart, b->pool.autostart);
                assert_true(vf_streq_ptr(a->pool.path, b->pool.path));
                break;
        case VF_KIND_VOLUME:
                assert_same_volume_spec(a, b);
                break;
        case VF_KIND_CLOUDINIT:
                assert_string_equal(a->cloudinit.pool, b->cloudinit.pool);
                assert_true(vf_streq_ptr(a->cloudinit.user_data, b->cloudinit.user_data));
                assert_true(vf_streq_ptr(a->cloudinit.instance_id, b->cloudinit.instance_id));
                assert_true(vf_streq_ptr(a->cloudinit.hostname, b->cloudinit.hostname));
                assert_true(vf_streq_ptr(a->cloudinit.network_config, b->cloudinit.network_config));
                break;
        default:
                fail_msg("unexpected kind %d", a->kind);
        }
}

/* A load reusing previous is a full load, to the last field of every resource. */
static void assert_full_load_to_the_field(const schema_set *set) {
        _cleanup_(schema_set_freep) schema_set *full = NULL;

        assert_same_as_full_load(set);
        assert_int_equal(schema_load_with_options(set->dirs, vf_strv_length(set->dirs), &set->options, &full), 0);
        for (size_t i = 0; i < set->n_resources; i++)
                assert_same_fields(set->resources[i], full->resources[i]);
}

#define EVERY_KIND_NET HEADER("Network", "lan") "spec: {autostart: false}\n" PAD4K
#define EVERY_KIND_SEED(c) HEADER("CloudInit", "s") "spec: {pool: p, userData: '#cloud-config " c "', " \
        "metaData: {instance-id: i-1, local-hostname: web1}, networkConfig: 'version: 2'}\n" PAD4K

/* Every kind, every field the tests can set, across layers: what a set taken unread has to hold. */
static void put_every_kind(const tree *t) {
        put(t, USR, "10-net.yaml", NET("lan", "") PAD4K);
        put(t, ETC, "10-net.yaml", EVERY_KIND_NET);
        put(t, USR, "20-pool.yaml", HEADER("StoragePool", "p") "spec: {path: /srv/p, autostart: false}\n" PAD4K);
        put(t, USR, "30-vol.yaml", VOL_EMPTY("base") "---\n" HEADER("Volume", "web1")
                                   "spec: {pool: p, from: {volume: p/base}, deletionPolicy: delete}\n" "---\n"
                                   HEADER("Volume", "img") "spec: {pool: p, format: raw, from: {url: "
                                   "'https://example.org/i.img', sha256: '" "0123456789abcdef0123456789abcdef"
                                   "0123456789abcdef0123456789abcdef" "'}}\n" PAD4K);
        put(t, USR, "40-seed.yaml", EVERY_KIND_SEED("a"));
        put(t, USR, "50-vf.yaml", HEADER("Hostdev", "vf1") "spec: {pci: '3B:02.1', mac: '52:54:00:AA:BB:CC', "
                                  "vlan: 100}\n" "---\n" HEADER("Hostdev", "gpu")
                                  "spec: {pci: 0001:af:1f.7, managed: false}\n" PAD4K);
        put(t, USR, "60-web1.yaml", "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web1, adopt: true}\n"
                                    "spec:\n  memory: 1GiB\n  state: shutoff\n  restart: on-change\n  drift: report\n"
                                    "  interfaces: [{network: lan}, {hostdev: vf1}]\n"
                                    "  disks: [{volume: p/web1}, {cloudInit: s}]\n" PAD4K);
        put(t, USR, "70-db.xml", "<domain type='kvm'><name>db</name><memory>1048576</memory>"
                                 "<os><type>hvm</type></os></domain>\n<!--\n" PAD4K "-->\n");
}

/*
 * A file unchanged since the previous load is taken from it unread, and
 * the result is a full load's; a file changed, replaced or changed too
 * recently to be told by its stamp is read again.
 */
static void test_load_again_reads_only_what_changed(void **state) {
        tree t;
        size_t read;
        tree_init(&t);
        put_every_kind(&t);
        settle();
        _cleanup_(schema_set_freep) schema_set *first = load_tree_reusing(&t, NULL, NULL, &read);
        assert_clean(first);
        assert_int_equal(first->n_resources, 10);
        assert_int_equal(read, 7);

        _cleanup_(schema_set_freep) schema_set *second = load_tree_reusing(&t, first, NULL, &read);
        assert_int_equal(read, 0);
        assert_full_load_to_the_field(second);
        for (size_t i = 0; i < second->n_resources; i++)
                assert_same_fields(second->resources[i], first->resources[i]);
        /* What it took unread outlives the set it took it from, as the daemon frees that set. */
        schema_set_free(TAKE_PTR(first));
        {
                _cleanup_(scribble_done) scribble garbage = scribble_freed_memory(second->n_resources);
                assert_full_load_to_the_field(second);
        }

        /*
         * Rewritten in place, the same size, its mtime put back as rsync -t or cp -p would: the ctime
         * tells, and it is read; and read again while its change is recent.
         */
        _cleanup_free_ char *seed = tree_path(&t, USR, "40-seed.yaml");
        struct stat was;
        assert_int_equal(stat(seed, &was), 0);
        put(&t, USR, "40-seed.yaml", EVERY_KIND_SEED("b"));
        assert_int_equal(utimensat(AT_FDCWD, seed, (struct timespec[]) { was.st_atim, was.st_mtim }, 0), 0);
        _cleanup_(schema_set_freep) schema_set *third = load_tree_reusing(&t, second, NULL, &read);
        assert_int_equal(read, 1);
        assert_full_load_to_the_field(third);
        assert_string_not_equal(find(third, VF_KIND_CLOUDINIT, "s")->hash, find(second, VF_KIND_CLOUDINIT, "s")->hash);
        _cleanup_(schema_set_freep) schema_set *fourth = load_tree_reusing(&t, third, NULL, &read);
        assert_int_equal(read, 1);
        assert_full_load_to_the_field(fourth);

        /* Replaced by a copy with the same content and times (cp -p, then mv): another inode. */
        _cleanup_free_ char *db = tree_path(&t, USR, "70-db.xml");
        _cleanup_free_ char *cmd = vf_printf("cp -p %s %s.cp && mv %s.cp %s", db, db, db, db);
        assert_int_equal(system(cmd), 0);
        settle();
        _cleanup_(schema_set_freep) schema_set *fifth = load_tree_reusing(&t, fourth, NULL, &read);
        assert_int_equal(read, 2); /* db, and the seed, which was recent when fourth read it */
        assert_full_load_to_the_field(fifth);
        _cleanup_(schema_set_freep) schema_set *sixth = load_tree_reusing(&t, fifth, NULL, &read);
        assert_int_equal(read, 0);

        /* Another layer's file now wins the name: a path the previous set never read. */
        put(&t, RUN, "20-pool.yaml", HEADER("StoragePool", "p") "spec: {path: /srv/p, autostart: false}\n" PAD4K);
        _cleanup_(schema_set_freep) schema_set *seventh = load_tree_reusing(&t, sixth, NULL, &read);
        assert_int_equal(read, 1);
        assert_full_load_to_the_field(seventh);
        tree_done(&t);
}

/*
 * The hashes virtform's markers in libvirt carry. A change to what goes into
 * them, or in what order, would make every object defined before an upgrade
 * look changed after it, and define it again: pinned for every kind, with
 * every field the tests set.
 */
static void test_hash_layout_is_pinned(void **state) {
        static const char *const pinned[] = {
                "network/lan "
                "59e82ddaf8368fb58594db9bdb2ad9c8d831050bc5f99795a5065b51ff7e08b8 "
                "0ecbe36f6763820bd9502eef86f850825b9ae294021c55e65a252a89dfa1f385",
                "pool/p "
                "2d58377bf3185058011c4ce317f8373eb6a9412265f5ccc1ac66076da76c1916 "
                "d9d847de975f5b604e0d41ad8bf8b4aa6e14c98fe7232d7b3d0f52bb39179e72",
                "volume/p/base "
                "ab004ba5a1c8aa9c1a7c7bf34b8c880e3e1be46f7e4bf895e32f68d3291c560f "
                "06ddf904f3784fe5da17f99a3bd700b5f753d3c0e14aaa635dcec306cf9b1d79",
                "volume/p/web1 "
                "afbcd419731736eb15cdf85156595aba30318c320662eb33900a32e9d125edd7 "
                "34a0872a0041695617bb8494e4891898e8be72c74b9f729aab96c5f2bb7ad743",
                "volume/p/img "
                "48ddc9298f8480cbc956baedc8d0c57f773f5e5ae0a182db7360dc18d3595673 "
                "993014c62bf43fac508d6dbc3608e904c9e63f28397b685e4dc1e3aefa658907",
                "cloudinit/s "
                "c32a8a7e17289a2cd77b525773da788a53eeb6c55351bca992c45eb1a55b73d7 "
                "c32a8a7e17289a2cd77b525773da788a53eeb6c55351bca992c45eb1a55b73d7",
                "hostdev/vf1 "
                "87e676e791681e70e9be1b56e6b45ed363ec822835003357e80bfa6a95c6c0ba "
                "fd20adf70f3c8f7dd2892c8c511d9b75991e60c5d4bf34d96f816d14b3968b65",
                "hostdev/gpu "
                "2202a63be639c4fcaa8d2de7b32a74ff3de966e11db6987d5545d6e6affa2bad "
                "30dd98896a36c380ee6838f8d113cac7059c9ff7b4b6fadbf08108ee5b9d6f43",
                "domain/web1 "
                "d7c14eff73fa6e4d06153f27647dd07672940ad6adbb611539d431309f664055 "
                "75d9cb4cb142038c04817fa0a5e6c69e2f385f85a11b9d0cb80c940f0d341889",
                "domain/db "
                "b019ddfbeda65047e389a23f6524118e85d89f8a5e0dceaf71ce343b838f1f91 "
                "3eb48a58dc8466e4c8b63e3aec79855669ed5e4ad7318d259dad82eeec4410b7",
        };
        tree t;
        tree_init(&t);
        put_every_kind(&t);
        _cleanup_(schema_set_freep) schema_set *set = load_tree(&t);

        assert_clean(set);
        assert_int_equal(set->n_resources, ELEMENTSOF(pinned));
        for (size_t i = 0; i < set->n_resources; i++) {
                const schema_resource *r = set->resources[i];
                _cleanup_free_ char *got = vf_printf("%s/%s %s %s", vf_kind_to_string(r->kind), r->name, r->hash,
                                                     r->definition_hash);
                assert_string_equal(got, pinned[i]);
        }
        tree_done(&t);
}

/*
 * Files read ahead on several threads make the set that reading them one at
 * a time makes, to the last field and the order of the diagnostics: with a
 * key and a PCI address declared again across files and within one, a file
 * that fails, drop-ins overriding and masking. A file that declares what an
 * earlier file holds is read again on the loading thread, and only such a file.
 */
static void test_read_ahead_loads_what_one_at_a_time_does(void **state) {
        const schema_load_options one_at_a_time = { .jobs = 1 }, four_at_once = { .jobs = 4 };
        tree t;
        tree_init(&t);
        put_every_kind(&t);
        for (int i = 0; i < 40; i++) {
                _cleanup_free_ char *name = vf_printf("8%02d-net.yaml", i), *net = vf_printf("n%02d", i);
                _cleanup_free_ char *text = vf_printf(HEADER("Network", "%s") "spec: {}\n" PAD4K, net);
                put(&t, USR, name, text);
        }
        put(&t, RUN, "808-net.yaml", NET("n08", "mtu: 1300") PAD4K);
        mask_link(&t, ETC, "807-net.yaml");
        put(&t, USR, "90-lan-again.yaml", NET("lan", "mtu: 9000") PAD4K);
        put(&t, USR, "91-pci-again.yaml", HEADER("Hostdev", "vf9") "spec: {pci: '3B:02.1'}\n" PAD4K);
        put(&t, USR, "92-twice.yaml", NET("n05", "") "---\n" NET("n05", "mtu: 1400") "---\n" NET("fresh", "") PAD4K);
        put(&t, USR, "93-broken.yaml", "kind: [\n" PAD4K);
        put(&t, USR, "94-twice-inside.yaml", NET("i1", "") "---\n" NET("i1", "mtu: 1400") PAD4K);

        /*
         * Whether a file is read ahead is the scheduler's to say: the loading thread reads a file no reader
         * has reached yet itself, once, and under valgrind, whose threads take turns, it often gets there
         * first. So every load must make the same set and read no file twice but those three, and some
         * load must show the three read ahead and read again.
         */
        bool read_again = false;
        for (int attempt = 0; attempt < 20 && !read_again; attempt++) {
                size_t read_one_at_a_time, read_ahead;
                _cleanup_(schema_set_freep) schema_set *a = load_tree_reusing(&t, NULL, &one_at_a_time,
                                                                              &read_one_at_a_time);
                _cleanup_(schema_set_freep) schema_set *b = load_tree_reusing(&t, NULL, &four_at_once, &read_ahead);
                assert_same_sets(a, b);
                for (size_t i = 0; i < a->n_resources; i++)
                        assert_same_fields(a->resources[i], b->resources[i]);
                assert_int_equal(a->n_files_failed, 5);
                assert_in_range(read_ahead, read_one_at_a_time, read_one_at_a_time + 3);
                read_again = read_ahead == read_one_at_a_time + 3;
        }
        assert_true(read_again);
        tree_done(&t);
}

/*
 * A file taken unread is judged against the files before it as a read one
 * is: an earlier file taking its key fails it, and giving the key back lets
 * it in again. Options that judge files otherwise read everything.
 */
static void test_load_again_judges_unchanged_files_anew(void **state) {
        tree t;
        size_t read;
        tree_init(&t);
        put(&t, USR, "10-a.yaml", NET("a", "") PAD4K);
        put(&t, USR, "20-b.yaml", NET("b", "") PAD4K);
        settle();
        _cleanup_(schema_set_freep) schema_set *first = load_tree_reusing(&t, NULL, NULL, &read);
        assert_clean(first);

        put(&t, USR, "05-x.yaml", NET("b", "") PAD4K);
        _cleanup_(schema_set_freep) schema_set *second = load_tree_reusing(&t, first, NULL, &read);
        assert_int_equal(read, 1);
        assert_full_load_to_the_field(second);
        _cleanup_free_ char *b = tree_path(&t, USR, "20-b.yaml");
        char *b_failed[] = { b, NULL };
        assert_strv_equal(second->files_failed, b_failed);

        /* A failed file keeps no stamp: once the key is free it is read, and let in. */
        del(&t, USR, "05-x.yaml");
        _cleanup_(schema_set_freep) schema_set *third = load_tree_reusing(&t, second, NULL, &read);
        assert_int_equal(read, 1);
        assert_full_load_to_the_field(third);
        assert_clean(third);

        schema_load_options other = { .libvirt_schemas = "/nonexistent" };
        _cleanup_(schema_set_freep) schema_set *fourth = load_tree_reusing(&t, third, &other, &read);
        assert_int_equal(read, 2);
        assert_full_load_to_the_field(fourth);
        tree_done(&t);
}

/* ---- trust: what root believes ------------------------------------------------- */

/* Ownership takes root; without it there is nothing these tests can set up. */
#define REQUIRE_ROOT()                                                       \
        do {                                                                 \
                if (geteuid() != 0)                                          \
                        th_skip("needs root to chown");                      \
        } while (0)

static schema_set *load_trusting(char *const *paths, size_t n, bool insecure) {
        schema_load_options options = { .check_trust = true, .insecure_permissions = insecure };
        schema_set *set = NULL;
        assert_int_equal(schema_load_with_options(paths, n, &options, &set), 0);
        assert_non_null(set);
        return set;
}

static void assert_all_warnings(const schema_set *set, size_t n) {
        if (set->n_diags != n || schema_set_n_errors(set) != 0)
                print_diags(set);
        assert_int_equal(set->n_diags, n);
        assert_int_equal(schema_set_n_errors(set), 0);
        assert_null(set->files_failed);
}

static void test_diag_warning_format(void **state) {
        schema_diag with = { .file = (char *) "f.yaml", .line = 3, .column = 5, .message = (char *) "w", .warning = true };
        schema_diag without = { .file = (char *) "f.yaml", .message = (char *) "w", .warning = true };
        _cleanup_free_ char *a = schema_diag_format(&with), *b = schema_diag_format(&without);

        assert_string_equal(a, "f.yaml:3:5: warning: w");
        assert_string_equal(b, "f.yaml: warning: w");
}

static void test_trust_files(void **state) {
        REQUIRE_ROOT();
        tree t;
        tree_init(&t);
        put(&t, ETC, "10-ok.yaml", NET("a", ""));
        put(&t, ETC, "20-group.yaml", NET("b", ""));
        put(&t, ETC, "30-foreign.yaml", NET("c", ""));
        put(&t, ETC, "40-both.yaml", NET("d", ""));
        _cleanup_free_ char *ok = tree_path(&t, ETC, "10-ok.yaml"), *group = tree_path(&t, ETC, "20-group.yaml"),
                            *foreign = tree_path(&t, ETC, "30-foreign.yaml"), *both = tree_path(&t, ETC, "40-both.yaml");
        assert_int_equal(chmod(group, 0664), 0);
        assert_int_equal(chown(foreign, 1000, 1000), 0);
        assert_int_equal(chown(both, 1000, (gid_t) -1), 0);
        assert_int_equal(chmod(both, 0646), 0);

        _cleanup_(schema_set_freep) schema_set *strict = load_trusting(&t.dirs[ETC], 1, false);
        _cleanup_free_ char *e1 = vf_printf("%s: error: not read: the file is writable by group or others (mode 0664); "
                                            "run 'chmod go-w %s', or pass --insecure-permissions to read it anyway",
                                            group, group);
        _cleanup_free_ char *e2 = vf_printf("%s: error: not read: the file is owned by uid 1000, not root; "
                                            "run 'chown root %s', or pass", foreign, foreign);
        _cleanup_free_ char *e3 = vf_printf("%s: error: not read: the file is owned by uid 1000, not root, and writable "
                                            "by group or others (mode 0646); run 'chown root %s && chmod go-w %s'",
                                            both, both, both);
        assert_diag(strict, e1);
        assert_diag(strict, e2);
        assert_diag(strict, e3);
        assert_int_equal(strict->n_diags, 3);
        assert_int_equal(vf_strv_length(strict->files_failed), 3);
        assert_int_equal(vf_strv_length(strict->files_ok), 1);
        assert_string_equal(strict->files_ok[0], ok);
        assert_int_equal(strict->n_resources, 1);
        find(strict, VF_KIND_NETWORK, "a");

        /* Allowed: everything is read, and each problem is a warning that fails nothing. */
        _cleanup_(schema_set_freep) schema_set *insecure = load_trusting(&t.dirs[ETC], 1, true);
        assert_all_warnings(insecure, 3);
        assert_int_equal(insecure->n_resources, 4);
        _cleanup_free_ char *w1 = vf_printf("%s: warning: insecure permissions allowed: the file is writable by group "
                                            "or others (mode 0664); run 'chmod go-w %s'", group, group);
        assert_diag(insecure, w1);

        /* Without the checks (not root), nothing is said. */
        _cleanup_(schema_set_freep) schema_set *unchecked = load_path(t.dirs[ETC]);
        assert_clean(unchecked);
        assert_int_equal(unchecked->n_resources, 4);
        tree_done(&t);
}

/* The files of an untrusted directory fail, so what they declared is held, and no lower layer takes over. */
static void test_trust_directory(void **state) {
        REQUIRE_ROOT();
        tree t;
        tree_init(&t);
        put(&t, ETC, "10-net.yaml", NET("lan", "mtu: 9000"));
        mask_link(&t, ETC, "20-vendor.yaml");
        put(&t, USR, "10-net.yaml", NET("lan", ""));
        put(&t, USR, "20-vendor.yaml", NET("vendor", ""));
        put(&t, USR, "30-usr.yaml", NET("usr", ""));
        _cleanup_free_ char *etc_net = tree_path(&t, ETC, "10-net.yaml"), *etc_vendor = tree_path(&t, ETC, "20-vendor.yaml"),
                            *usr_net = tree_path(&t, USR, "10-net.yaml"), *usr_vendor = tree_path(&t, USR, "20-vendor.yaml");
        assert_int_equal(chmod(t.dirs[ETC], 0775), 0);

        _cleanup_(schema_set_freep) schema_set *strict = load_trusting(t.dirs, N_LAYERS, false);
        _cleanup_free_ char *e = vf_printf("%s: error: not read: its directory %s is writable by group or others "
                                           "(mode 0775); run 'chmod go-w %s', or pass --insecure-permissions",
                                           etc_net, t.dirs[ETC], t.dirs[ETC]);
        assert_diag(strict, e);
        assert_int_equal(strict->n_diags, 2);
        assert_int_equal(vf_strv_length(strict->files_failed), 2);
        assert_string_equal(strict->files_failed[0], etc_net);
        assert_string_equal(strict->files_failed[1], etc_vendor);
        assert_int_equal(strict->n_resources, 1);
        find(strict, VF_KIND_NETWORK, "usr");
        assert_source(strict, "10-net.yaml", etc_net, NULL, usr_net, NULL);
        assert_source(strict, "20-vendor.yaml", etc_vendor, NULL, usr_vendor, NULL);

        _cleanup_(schema_set_freep) schema_set *insecure = load_trusting(t.dirs, N_LAYERS, true);
        assert_all_warnings(insecure, 1);
        assert_int_equal(insecure->n_resources, 2);
        assert_string_equal(find(insecure, VF_KIND_NETWORK, "lan")->file, etc_net);
        assert_source(insecure, "20-vendor.yaml", NULL, etc_vendor, usr_vendor, NULL);

        /* Owned by someone else, it is just as untrusted. */
        assert_int_equal(chmod(t.dirs[ETC], 0755), 0);
        assert_int_equal(chown(t.dirs[ETC], 1000, (gid_t) -1), 0);
        _cleanup_(schema_set_freep) schema_set *foreign = load_trusting(t.dirs, N_LAYERS, false);
        _cleanup_free_ char *e2 = vf_printf("%s: error: not read: its directory %s is owned by uid 1000, not root; "
                                            "run 'chown root %s'", etc_net, t.dirs[ETC], t.dirs[ETC]);
        assert_diag(foreign, e2);
        assert_int_equal(vf_strv_length(foreign->files_failed), 2);

        /* A directory above it that others can write is as bad: they could put another directory in its place. */
        assert_int_equal(chown(t.dirs[ETC], 0, (gid_t) -1), 0);
        assert_int_equal(chmod(t.root, 0777), 0);
        _cleanup_(schema_set_freep) schema_set *parent = load_trusting(t.dirs, N_LAYERS, false);
        _cleanup_free_ char *e3 = vf_printf("%s: error: not read: its parent directory %s is writable by group or "
                                            "others (mode 0777); run 'chmod go-w %s', or pass --insecure-permissions",
                                            etc_net, t.root, t.root);
        assert_diag(parent, e3);
        assert_int_equal(parent->n_resources, 0);
        /* Unless it is sticky, as /tmp is: then no one else can rename what root put there. */
        assert_int_equal(chmod(t.root, 01777), 0);
        _cleanup_(schema_set_freep) schema_set *sticky = load_trusting(t.dirs, N_LAYERS, false);
        assert_int_equal(schema_set_n_errors(sticky), 0);
        assert_int_equal(chmod(t.root, 0700), 0);
        tree_done(&t);
}

/* Only root may switch a name off: an empty file anyone else could have emptied is a file, and refused. */
static void test_trust_empty_file_mask(void **state) {
        REQUIRE_ROOT();
        tree t;
        tree_init(&t);
        put(&t, ETC, "10-a.yaml", "");
        put(&t, ETC, "20-b.yaml", "");
        put(&t, USR, "10-a.yaml", NET("a", ""));
        put(&t, USR, "20-b.yaml", NET("b", ""));
        _cleanup_free_ char *etc_a = tree_path(&t, ETC, "10-a.yaml"), *etc_b = tree_path(&t, ETC, "20-b.yaml"),
                            *usr_a = tree_path(&t, USR, "10-a.yaml"), *usr_b = tree_path(&t, USR, "20-b.yaml");
        assert_int_equal(chmod(etc_a, 0666), 0);

        _cleanup_(schema_set_freep) schema_set *strict = load_trusting(t.dirs, N_LAYERS, false);
        assert_int_equal(strict->n_resources, 0);
        assert_int_equal(vf_strv_length(strict->files_failed), 1);
        assert_string_equal(strict->files_failed[0], etc_a);
        assert_source(strict, "10-a.yaml", etc_a, NULL, usr_a, NULL);
        assert_source(strict, "20-b.yaml", NULL, etc_b, usr_b, NULL);

        _cleanup_(schema_set_freep) schema_set *unchecked = load_tree(&t);
        assert_clean(unchecked);
        assert_source(unchecked, "10-a.yaml", NULL, etc_a, usr_a, NULL);
        tree_done(&t);
}

/* A symlink has to land directly in a trusted directory being loaded; /dev/null is the one exception. */
static void test_trust_symlinks(void **state) {
        REQUIRE_ROOT();
        tree t;
        tree_init(&t);
        _cleanup_free_ char *out = vf_printf("%s/out", t.root), *sub = vf_printf("%s/sub", t.dirs[USR]);
        assert_int_equal(mkdir(out, 0755), 0);
        assert_int_equal(mkdir(sub, 0755), 0);
        free(put_file(t.dirs[USR], "lan.conf", NET("lan", "")));
        free(put_file(t.dirs[USR], "wan.conf", NET("wan", "")));
        free(put_file(out, "x.yaml", NET("outside", "")));
        free(put_file(sub, "x.yaml", NET("below", "")));
        _cleanup_free_ char *lan = tree_path(&t, USR, "lan.conf"), *in = tree_path(&t, ETC, "10-in.yaml"),
                            *rel = tree_path(&t, ETC, "20-relative.yaml"), *away = tree_path(&t, ETC, "30-out.yaml"),
                            *below = tree_path(&t, ETC, "40-below.yaml"), *target = vf_printf("%s/x.yaml", out),
                            *below_target = vf_printf("%s/x.yaml", sub), *named = vf_printf("%s/named.yaml", t.root);
        assert_int_equal(symlink(lan, in), 0);
        assert_int_equal(symlink("../usr/wan.conf", rel), 0);
        assert_int_equal(symlink(target, away), 0);
        assert_int_equal(symlink(below_target, below), 0);
        mask_link(&t, ETC, "50-mask.yaml");
        put(&t, USR, "50-mask.yaml", NET("masked", ""));

        _cleanup_(schema_set_freep) schema_set *strict = load_trusting(t.dirs, N_LAYERS, false);
        _cleanup_free_ char *e1 = vf_printf("%s: error: not read: it is a symlink to %s, which is not in a directory "
                                            "being loaded (only a mask, a symlink to /dev/null, may point elsewhere); "
                                            "put the file itself in its place, or pass --insecure-permissions",
                                            away, target);
        _cleanup_free_ char *e2 = vf_printf("%s: error: not read: it is a symlink to %s, which is not", below,
                                            below_target);
        assert_diag(strict, e1);
        assert_diag(strict, e2);
        assert_int_equal(strict->n_diags, 2);
        assert_int_equal(strict->n_resources, 2);
        assert_string_equal(find(strict, VF_KIND_NETWORK, "lan")->file, in);
        assert_string_equal(find(strict, VF_KIND_NETWORK, "wan")->file, rel);
        assert_null(schema_set_find(strict, VF_KIND_NETWORK, "masked"));

        /* The file a symlink lands on is judged like any other. */
        assert_int_equal(chmod(lan, 0666), 0);
        _cleanup_(schema_set_freep) schema_set *writable = load_trusting(t.dirs, N_LAYERS, false);
        _cleanup_free_ char *e3 = vf_printf("%s: error: not read: the file is writable by group or others (mode 0666)",
                                            in);
        assert_diag(writable, e3);
        assert_null(schema_set_find(writable, VF_KIND_NETWORK, "lan"));
        assert_int_equal(chmod(lan, 0644), 0);

        _cleanup_(schema_set_freep) schema_set *insecure = load_trusting(t.dirs, N_LAYERS, true);
        assert_all_warnings(insecure, 2);
        assert_int_equal(insecure->n_resources, 4);

        /* A path named on its own is in no directory being loaded, unless it points into one. */
        assert_int_equal(symlink(target, named), 0);
        char *alone[] = { named }, *with_dir[] = { t.dirs[USR], named };
        _cleanup_(schema_set_freep) schema_set *lone = load_trusting(alone, 1, false);
        assert_failed(lone);
        assert_diag(lone, "not read: it is a symlink to");
        assert_int_equal(unlink(named), 0);
        assert_int_equal(symlink(lan, named), 0);
        _cleanup_(schema_set_freep) schema_set *into = load_trusting(with_dir, 2, false);
        assert_clean(into);
        assert_string_equal(find(into, VF_KIND_NETWORK, "lan")->file, named);
        tree_done(&t);
}

/* A FIFO is never opened for reading in a way that blocks: it is reported, checked or not. */
static void test_trust_fifo(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();
        _cleanup_free_ char *fifo = vf_printf("%s/fifo.yaml", dir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        char *paths[] = { fifo };

        _cleanup_(schema_set_freep) schema_set *unchecked = load_path(fifo);
        _cleanup_(schema_set_freep) schema_set *checked = load_trusting(paths, 1, false);
        th_rmtree(dir);
        _cleanup_free_ char *e = vf_printf("%s: error: not a regular file", fifo);
        assert_diag(unchecked, e);
        assert_diag(checked, e);
}

/* A reload judges the file again, with the options the set was loaded with. */
static void test_trust_reload(void **state) {
        REQUIRE_ROOT();
        tree t;
        tree_init(&t);
        put(&t, ETC, "10-a.yaml", NET("a", ""));
        _cleanup_free_ char *a = tree_path(&t, ETC, "10-a.yaml");
        _cleanup_(schema_set_freep) schema_set *set = load_trusting(t.dirs, N_LAYERS, false);
        assert_clean(set);

        assert_int_equal(chmod(a, 0620), 0);
        reload_expect(set, "10-a.yaml", "network/a", NULL);
        assert_int_equal(vf_strv_length(set->files_failed), 1);
        assert_diag(set, "not read: the file is writable by group or others (mode 0620)");

        assert_int_equal(chmod(a, 0600), 0);
        reload_expect(set, "10-a.yaml", "network/a", NULL);
        assert_clean(set);

        assert_int_equal(chmod(t.dirs[ETC], 0777), 0);
        reload_expect(set, "10-a.yaml", "network/a", NULL);
        assert_diag(set, "not read: its directory");
        tree_done(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_candidates),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_bad_names_in_yaml),
                cmocka_unit_test(test_numeric_name_in_yaml),
                cmocka_unit_test(test_diag_format),
                cmocka_unit_test(test_diag_one_line),
                cmocka_unit_test(test_directory_filtering),
                cmocka_unit_test(test_unreadable_and_oversized),
                cmocka_unit_test(test_network_nat),
                cmocka_unit_test(test_network_forward_modes),
                cmocka_unit_test(test_network_rules),
                cmocka_unit_test(test_domain_full),
                cmocka_unit_test(test_domain_defaults_and_type),
                cmocka_unit_test(test_memory_units),
                cmocka_unit_test(test_unknown_key_position),
                cmocka_unit_test(test_drift_policy),
                cmocka_unit_test(test_several_errors_reported),
                cmocka_unit_test(test_wrong_types),
                cmocka_unit_test(test_document_header),
                cmocka_unit_test(test_adopt_and_null_spec),
                cmocka_unit_test(test_interfaces),
                cmocka_unit_test(test_too_many_disks),
                cmocka_unit_test(test_escape_hatch),
                cmocka_unit_test(test_escape_hatch_errors),
                cmocka_unit_test(test_hostdev),
                cmocka_unit_test(test_hostdev_errors),
                cmocka_unit_test(test_duplicate_pci),
                cmocka_unit_test(test_pool_dir_and_logical),
                cmocka_unit_test(test_pool_escape_hatch),
                cmocka_unit_test(test_volume),
                cmocka_unit_test(test_cloudinit),
                cmocka_unit_test(test_storage_errors),
                cmocka_unit_test(test_cloudinit_large_user_data),
                cmocka_unit_test(test_domain_storage_disks),
                cmocka_unit_test(test_domain_seed_libvirt_schema),
                cmocka_unit_test(test_domain_storage_disk_errors),
                cmocka_unit_test(test_storage_libvirt_schemas),
                cmocka_unit_test(test_duplicate_across_files),
                cmocka_unit_test(test_duplicate_in_file),
                cmocka_unit_test(test_same_name_different_kinds),
                cmocka_unit_test(test_multi_document_and_empty),
                cmocka_unit_test(test_bad_file_among_good),
                cmocka_unit_test(test_load_file_into_set),
                cmocka_unit_test(test_truncated_yaml),
                cmocka_unit_test(test_billion_laughs),
                cmocka_unit_test(test_alias_limit),
                cmocka_unit_test(test_alias_doubling),
                cmocka_unit_test(test_alias_use),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_document_limit),
                cmocka_unit_test(test_error_cap),
                cmocka_unit_test(test_native_domain),
                cmocka_unit_test(test_native_network),
                cmocka_unit_test(test_undeclared_warnings),
                cmocka_unit_test(test_undeclared_storage_warnings),
                cmocka_unit_test(test_libvirt_test_xml),
                cmocka_unit_test(test_rendered_documents_pass_the_compact_schema),
                cmocka_unit_test(test_libvirt_schemas),
                cmocka_unit_test_teardown(test_builtin_schema_failing_to_compile, builtin_schemas_well),
                cmocka_unit_test(test_native_defaults_and_owner),
                cmocka_unit_test(test_native_rejects),
                cmocka_unit_test(test_native_units),
                cmocka_unit_test(test_native_ipv4_addresses),
                cmocka_unit_test(test_native_storage_round_trip),
                cmocka_unit_test(test_native_storage_dumps),
                cmocka_unit_test(test_native_storage_rejects),
                cmocka_unit_test(test_native_domain_storage),
                cmocka_unit_test(test_native_encoding_error),
                cmocka_unit_test(test_native_interface_needs_source),
                cmocka_unit_test(test_native_deep),
                cmocka_unit_test(test_escape_hatch_hostile),
                cmocka_unit_test(test_native_rng_positions),
                cmocka_unit_test(test_escape_hatch_rng_positions),
                cmocka_unit_test(test_hash),
                cmocka_unit_test(test_storage_hash),
                cmocka_unit_test(test_dropin_precedence),
                cmocka_unit_test(test_dropin_masking),
                cmocka_unit_test(test_dropin_mask_device_node),
                cmocka_unit_test(test_dropin_non_candidates),
                cmocka_unit_test(test_dropin_file_layer),
                cmocka_unit_test(test_dropin_missing),
                cmocka_unit_test(test_reload_edit_add_delete),
                cmocka_unit_test(test_reload_mask_and_override),
                cmocka_unit_test(test_reload_valid_invalid),
                cmocka_unit_test(test_reload_duplicates),
                cmocka_unit_test(test_reload_duplicate_pci),
                cmocka_unit_test(test_volume_cycle_in_file),
                cmocka_unit_test(test_volume_cycle_across_files),
                cmocka_unit_test(test_reload_storage),
                cmocka_unit_test(test_load_again_reads_only_what_changed),
        cmocka_unit_test(test_hash_layout_is_pinned),
        cmocka_unit_test(test_read_ahead_loads_what_one_at_a_time_does),
                cmocka_unit_test(test_load_again_judges_unchanged_files_anew),
                cmocka_unit_test(test_diag_warning_format),
                cmocka_unit_test(test_trust_files),
                cmocka_unit_test(test_trust_directory),
                cmocka_unit_test(test_trust_empty_file_mask),
                cmocka_unit_test(test_trust_symlinks),
                cmocka_unit_test(test_trust_fifo),
                cmocka_unit_test(test_trust_reload),
        };
        return th_run_group(tests, NULL, NULL, NULL);
}
