/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _XOPEN_SOURCE 700
#include "tests/helpers.h"

#include <ftw.h>
#include <libvirt/virterror.h>

char *th_mkdtemp(void) {
        const char *tmp = getenv("TMPDIR");
        char *path = vf_printf("%s/virtform-test-XXXXXX", tmp ? tmp : "/tmp");
        assert_non_null(path);
        assert_non_null(mkdtemp(path));
        return path;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

void th_rmtree(const char *path) {
        if (path)
                nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void th_write(const char *dir, const char *name, const char *fmt, ...) {
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, name);
        FILE *f = fopen(path, "we");
        va_list ap;

        assert_non_null(f);
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        assert_int_equal(fclose(f), 0);
}

void th_remove(const char *dir, const char *name) {
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, name);
        assert_int_equal(unlink(path), 0);
}

static void ignore_error(void *userdata, virErrorPtr error) {
}

virConnectPtr th_connect(void) {
        virSetErrorFunc(NULL, ignore_error);
        virConnectPtr conn = virConnectOpen("test:///default");
        assert_non_null(conn);
        return conn;
}

void th_reset_test_driver(void) {
        virConnectPtr conn = th_connect();
        virDomainPtr *doms = NULL;
        virNetworkPtr *nets = NULL;
        int n = virConnectListAllDomains(conn, &doms, 0);

        for (int i = 0; i < n; i++) {
                if (strcmp(virDomainGetName(doms[i]), "test") != 0) {
                        if (virDomainIsActive(doms[i]) == 1)
                                virDomainDestroy(doms[i]);
                        virDomainUndefine(doms[i]);
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        n = virConnectListAllNetworks(conn, &nets, 0);
        for (int i = 0; i < n; i++) {
                if (strcmp(virNetworkGetName(nets[i]), "default") != 0) {
                        if (virNetworkIsActive(nets[i]) == 1)
                                virNetworkDestroy(nets[i]);
                        virNetworkUndefine(nets[i]);
                }
                virNetworkFree(nets[i]);
        }
        free(nets);
        virConnectClose(conn);
}

char *th_domain_xml(virConnectPtr conn, const char *name, bool inactive) {
        virDomainPtr d = virDomainLookupByName(conn, name);
        if (!d)
                return NULL;
        char *xml = virDomainGetXMLDesc(d, inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
        virDomainFree(d);
        return xml;
}

char *th_network_xml(virConnectPtr conn, const char *name) {
        virNetworkPtr n = virNetworkLookupByName(conn, name);
        if (!n)
                return NULL;
        char *xml = virNetworkGetXMLDesc(n, 0); /* the test driver refuses XML_INACTIVE */
        virNetworkFree(n);
        return xml;
}

bool th_domain_active(virConnectPtr conn, const char *name) {
        virDomainPtr d = virDomainLookupByName(conn, name);
        assert_non_null(d);
        bool active = virDomainIsActive(d) == 1;
        virDomainFree(d);
        return active;
}
