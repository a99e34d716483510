/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The input: N domains as typed YAML and the same N as native XML. Every
 * domain is state: shutoff, so that applying one is a define and nothing
 * else, like the floor's.
 */
#include "bench/bench.h"

#include <fcntl.h>
#include <sys/stat.h>

void bench_input_done(bench_input *in) {
        free(in->dir);
        free(in->yaml);
        free(in->xml);
        *in = (bench_input) {};
}

char *bench_domain_name(size_t i) {
        return vf_printf("bench%06zu", i);
}

char *bench_yaml_domain(size_t i, unsigned memory_mib) {
        return vf_printf("apiVersion: virtform/v1\n"
                         "kind: Domain\n"
                         "metadata: {name: bench%06zu}\n"
                         "spec:\n"
                         "  memory: %uMiB\n"
                         "  vcpus: 1\n"
                         "  state: shutoff\n",
                         i, memory_mib);
}

/* What virtform would define for the YAML above, with its policy where a native file keeps it. */
static char *xml_domain(size_t i, const char *type) {
        return vf_printf("<domain type='%s'>\n"
                         "  <name>bench%06zu</name>\n"
                         "  <metadata>\n"
                         "    <vf:policy xmlns:vf=\"" BENCH_POLICY_NS "\" state=\"shutoff\"/>\n"
                         "  </metadata>\n"
                         "  <memory unit='KiB'>65536</memory>\n"
                         "  <vcpu>1</vcpu>\n"
                         "  <os><type arch='x86_64'>hvm</type></os>\n"
                         "</domain>\n",
                         type, i);
}

static int write_file(const char *dir, const char *name, const char *content) {
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, name);
        _cleanup_close_ int fd = -1;
        size_t len = strlen(content);

        if (!path)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, content, len);
        if (n < 0)
                return -errno;
        return (size_t) n == len ? 0 : -EIO;
}

static int write_domains(const char *dir, size_t n, const char *suffix, const char *type,
                         char *(*render)(size_t i, const char *type)) {
        if (mkdir(dir, 0755) < 0)
                return -errno;
        for (size_t i = 1; i <= n; i++) {
                _cleanup_free_ char *name = vf_printf("bench%06zu.%s", i, suffix);
                _cleanup_free_ char *content = render(i, type);
                if (!name || !content)
                        return -ENOMEM;
                int r = write_file(dir, name, content);
                if (r < 0)
                        return r;
        }
        return 0;
}

static char *yaml_domain_default(size_t i, const char *type) {
        return bench_yaml_domain(i, 64);
}

int bench_generate(const char *workdir, size_t n, bench_input *ret, measure *m) {
        _cleanup_(bench_input_done) bench_input in = {
                .dir = vf_printf("%s/%zu", workdir, n),
        };
        double t0 = bench_now_ms();
        int r;

        if (!in.dir)
                return -ENOMEM;
        in.yaml = vf_printf("%s/yaml", in.dir);
        in.xml = vf_printf("%s/xml", in.dir);
        if (!in.yaml || !in.xml)
                return -ENOMEM;
        if (mkdir(in.dir, 0755) < 0)
                return -errno;
        r = write_domains(in.yaml, n, "yaml", NULL, yaml_domain_default);
        if (r >= 0)
                r = write_domains(in.xml, n, "xml", "test", xml_domain);
        if (r < 0)
                return r;
        *m = (measure) { .ok = true, .wall_ms = bench_now_ms() - t0, .cpu_ms = NAN, .rss_kib = -1, .writes = -1 };
        *ret = in;
        in = (bench_input) {};
        return 0;
}

int bench_generate_xml(const char *dir, size_t n, const char *type) {
        return write_domains(dir, n, "xml", type, xml_domain);
}
