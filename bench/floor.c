/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * virtform-bench-floor URI DIR: what any tool must spend to put N domains
 * into libvirt. It reads every *.xml file of DIR and calls virDomainDefineXML
 * with it: no parsing, hashing or state of its own. Then, outside that
 * floor, what verifying them all costs: one listing and every inactive
 * definition read back; then the same read once each domain carries, in
 * place of the policy element, an ownership marker of virtform's shape
 * (reconcilers/object.c, rc_owner_write()), since libvirt formats metadata
 * at every read. Prints one line:
 * "defined N connect_ms C define_ms D read_ms R marked_read_ms M peak_rss_kib K",
 * K its peak RSS before the marking, which holds the floor's own memory
 * against which virtform's is measured.
 */
#include <dirent.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sys/resource.h>

#include "bench/floor.h"
#include "common/common.h"
#include "reconcilers/reconciler.h"

typedef struct floor_run {
        virConnectPtr conn;
        int dir_fd;
        size_t defined;
} floor_run;

static void quiet(void *userdata, virErrorPtr error) {
}

static int define_file(floor_run *f, const char *name) {
        _cleanup_close_ int fd = openat(f->dir_fd, name, O_RDONLY | O_CLOEXEC);
        char buf[64 * 1024];
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        virDomainPtr dom = virDomainDefineXML(f->conn, buf);
        if (!dom) {
                fprintf(stderr, "floor: %s: %s\n", name, virGetLastErrorMessage());
                return -EIO;
        }
        virDomainFree(dom);
        f->defined++;
        return 0;
}

static int define_all(floor_run *f) {
        DIR *d = fdopendir(dup(f->dir_fd));
        int r = 0;

        if (!d)
                return -errno;
        for (struct dirent *de; r >= 0 && (de = readdir(d));)
                if (vf_str_has_suffix(de->d_name, ".xml"))
                        r = define_file(f, de->d_name);
        closedir(d);
        return r;
}

/* What a pass that checks every object must spend at least: list them, read each definition. */
static int read_all(floor_run *f) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(f->conn, &doms, 0);

        if (n < 0)
                return -EIO;
        for (int i = 0; i < n; i++) {
                free(virDomainGetXMLDesc(doms[i], VIR_DOMAIN_XML_INACTIVE));
                virDomainFree(doms[i]);
        }
        free(doms);
        return 0;
}

/* Each domain's policy element replaced by a marker with facts as long as virtform's own. */
static int mark_all(floor_run *f) {
        static const char hash[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(f->conn, &doms, VIR_CONNECT_LIST_DOMAINS_PERSISTENT);
        int r = n < 0 ? -EIO : 0;

        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *marker = vf_printf("<owner>instance=01234567-89ab-cdef-0123-456789abcdef\n"
                                                        "resource=domain/%s\ngeneration=1\nhash=%s\n"
                                                        "definition=%s</owner>",
                                                        virDomainGetName(doms[i]), hash, hash);
                if (r >= 0 && (!marker ||
                               virDomainSetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT, NULL, NULL, BENCH_POLICY_NS,
                                                    VIR_DOMAIN_AFFECT_CONFIG) < 0 ||
                               virDomainSetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT, marker, "virtform",
                                                    RC_OWNER_NS, VIR_DOMAIN_AFFECT_CONFIG) < 0)) {
                        fprintf(stderr, "floor: cannot mark %s: %s\n", virDomainGetName(doms[i]),
                                marker ? virGetLastErrorMessage() : strerror(ENOMEM));
                        r = -EIO;
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        return r;
}

int main(int argc, char **argv) {
        floor_run f = { .dir_fd = -1 };
        int r;

        if (argc != 3) {
                fprintf(stderr, "Usage: %s URI DIR\n", argv[0]);
                return 1;
        }
        virSetErrorFunc(NULL, quiet);
        /* The embedded drivers need an event loop registered; the test driver does not care. */
        if (strstr(argv[1], "embed") && virEventRegisterDefaultImpl() < 0)
                return 1;
        int64_t t0 = vf_now_monotonic_usec();
        f.conn = virConnectOpen(argv[1]);
        /* QEMU's capabilities are probed on first need, a second or more: before the clock, not in a define. */
        if (f.conn && strstr(argv[1], "embed"))
                free(virConnectGetCapabilities(f.conn));
        f.dir_fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (!f.conn || f.dir_fd < 0) {
                fprintf(stderr, "floor: cannot open %s: %s\n", f.conn ? argv[2] : argv[1],
                        f.conn ? strerror(errno) : virGetLastErrorMessage());
                return 1;
        }
        int64_t t1 = vf_now_monotonic_usec();
        r = define_all(&f);
        int64_t t2 = vf_now_monotonic_usec();
        if (r >= 0)
                r = read_all(&f);
        int64_t t3 = vf_now_monotonic_usec();
        struct rusage before_marking;
        getrusage(RUSAGE_SELF, &before_marking);
        if (r >= 0)
                r = mark_all(&f);
        int64_t t4 = vf_now_monotonic_usec();
        if (r >= 0)
                r = read_all(&f);
        int64_t t5 = vf_now_monotonic_usec();
        printf("defined %zu connect_ms %.3f define_ms %.3f read_ms %.3f marked_read_ms %.3f peak_rss_kib %ld\n",
               f.defined, (double) (t1 - t0) / 1000.0, (double) (t2 - t1) / 1000.0, (double) (t3 - t2) / 1000.0,
               (double) (t5 - t4) / 1000.0, before_marking.ru_maxrss);
        close(f.dir_fd);
        virConnectClose(f.conn);
        return r < 0 ? 1 : 0;
}
