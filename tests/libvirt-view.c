/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvirt as seen from outside virtform: the lifecycle events a connection of
 * the test's own receives, and the objects it lists. See tests/helpers.h.
 */
#include "tests/helpers.h"

#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdatomic.h>

#define BARRIER_PREFIX "th-barrier-"

struct th_libvirt_view {
        virConnectPtr conn;
        char *domain_type; /* of the barrier's throwaway domain */
        unsigned barriers;
        int domain_callback, network_callback;
        char *objects; /* one line per object, then its XML, as when the view was taken */
        /* Written on whichever thread runs libvirt's event loop; freed by libvirt once no callback can run. */
        pthread_mutex_t lock;
        char **lines; /* "domain NAME Event", "network NAME Event", in delivery order */
        atomic_int refs; /* one per registered callback */
};

static const char *const domain_events[] = { "Defined", "Undefined", "Started", "Suspended", "Resumed",
                                             "Stopped", "Shutdown", "PMSuspended", "Crashed" };
static const char *const network_events[] = { "Defined", "Undefined", "Started", "Stopped" };

static void log_event(th_libvirt_view *v, const char *kind, const char *name, const char *event) {
        pthread_mutex_lock(&v->lock);
        if (vf_strv_consume(&v->lines, vf_printf("%s %s %s", kind, name, event)) < 0)
                abort(); /* not an assertion: this may be libvirt's thread */
        pthread_mutex_unlock(&v->lock);
}

static int on_domain_event(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        bool known = event >= 0 && (size_t) event < ELEMENTSOF(domain_events);
        log_event(opaque, "domain", virDomainGetName(dom), known ? domain_events[event] : "?");
        return 0;
}

static void on_network_event(virConnectPtr conn, virNetworkPtr net, int event, int detail, void *opaque) {
        bool known = event >= 0 && (size_t) event < ELEMENTSOF(network_events);
        log_event(opaque, "network", virNetworkGetName(net), known ? network_events[event] : "?");
}

/* libvirt calls it for each callback once it can no longer run: the last one frees the view. */
static void view_unref(void *opaque) {
        th_libvirt_view *v = opaque;

        if (atomic_fetch_sub(&v->refs, 1) > 1)
                return;
        vf_strv_free(v->lines);
        free(v->objects);
        free(v->domain_type);
        pthread_mutex_destroy(&v->lock);
        free(v);
}

static bool logged(th_libvirt_view *v, const char *line) {
        pthread_mutex_lock(&v->lock);
        bool found = vf_strv_contains(v->lines, line);
        pthread_mutex_unlock(&v->lock);
        return found;
}

static void on_due(int timer, void *opaque) {
}

/*
 * One turn of libvirt's event loop, with a timer due at once so that it never
 * blocks: delivers what is queued when no thread runs the loop. When one
 * does (the controller starts it), the turns take their place in line.
 */
static void turn_event_loop(void) {
        int timer = virEventAddTimeout(0, on_due, NULL, NULL);
        assert_true(timer >= 0);
        assert_int_equal(virEventRunDefaultImpl(), 0);
        virEventRemoveTimeout(timer);
}

static int by_name(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Storage pools, on a driver that has them (an embedded QEMU driver has none). */
static void describe_pools(virConnectPtr conn, char ***lines) {
        virStoragePoolPtr *pools = NULL;
        int n = virConnectListAllStoragePools(conn, &pools, 0);
        char uuid[VIR_UUID_STRING_BUFLEN];
        int autostart;

        assert_true(n >= 0 || virGetLastErrorCode() == VIR_ERR_NO_SUPPORT);
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *xml = virStoragePoolGetXMLDesc(pools[i], 0);
                assert_int_equal(virStoragePoolGetUUIDString(pools[i], uuid), 0);
                assert_int_equal(virStoragePoolGetAutostart(pools[i], &autostart), 0);
                assert_int_equal(vf_strv_consume(lines, vf_printf("pool %s uuid=%s autostart=%d active=%d\n%s",
                                                                virStoragePoolGetName(pools[i]), uuid, autostart,
                                                                virStoragePoolIsActive(pools[i]), xml)),
                                 0);
                virStoragePoolFree(pools[i]);
        }
        free(pools);
}

/* Each object as "KIND NAME uuid=U autostart=A active=B" and its XML, in name order. */
static char *describe_objects(virConnectPtr conn) {
        virDomainPtr *doms = NULL;
        virNetworkPtr *nets = NULL;
        int n_doms = virConnectListAllDomains(conn, &doms, 0), n_nets = virConnectListAllNetworks(conn, &nets, 0);
        _cleanup_strv_free_ char **lines = NULL;
        char uuid[VIR_UUID_STRING_BUFLEN];
        int autostart;

        assert_true(n_doms >= 0 && n_nets >= 0);
        for (int i = 0; i < n_doms; i++) {
                _cleanup_free_ char *xml = virDomainGetXMLDesc(doms[i], VIR_DOMAIN_XML_INACTIVE);
                assert_int_equal(virDomainGetUUIDString(doms[i], uuid), 0);
                assert_int_equal(virDomainGetAutostart(doms[i], &autostart), 0);
                assert_int_equal(vf_strv_consume(&lines, vf_printf("domain %s uuid=%s autostart=%d active=%d\n%s",
                                                                 virDomainGetName(doms[i]), uuid, autostart,
                                                                 virDomainIsActive(doms[i]), xml)),
                                 0);
                virDomainFree(doms[i]);
        }
        for (int i = 0; i < n_nets; i++) {
                _cleanup_free_ char *xml = virNetworkGetXMLDesc(nets[i], 0);
                assert_int_equal(virNetworkGetUUIDString(nets[i], uuid), 0);
                assert_int_equal(virNetworkGetAutostart(nets[i], &autostart), 0);
                assert_int_equal(vf_strv_consume(&lines, vf_printf("network %s uuid=%s autostart=%d active=%d\n%s",
                                                                 virNetworkGetName(nets[i]), uuid, autostart,
                                                                 virNetworkIsActive(nets[i]), xml)),
                                 0);
                virNetworkFree(nets[i]);
        }
        free(doms);
        free(nets);
        describe_pools(conn, &lines);
        qsort(lines, vf_strv_length(lines), sizeof *lines, by_name);
        vf_buf b = {};
        for (size_t i = 0; lines && lines[i]; i++)
                vf_buf_printf(&b, "%s\n", lines[i]);
        return vf_buf_steal(&b);
}

th_libvirt_view *th_libvirt_view_new(virConnectPtr conn, const char *domain_type) {
        th_libvirt_view *v = calloc(1, sizeof *v);

        assert_non_null(v);
        pthread_mutex_init(&v->lock, NULL);
        v->conn = conn;
        v->domain_type = strdup(domain_type);
        atomic_init(&v->refs, 2);
        v->domain_callback = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                              VIR_DOMAIN_EVENT_CALLBACK(on_domain_event), v,
                                                              view_unref);
        v->network_callback = virConnectNetworkEventRegisterAny(conn, NULL, VIR_NETWORK_EVENT_ID_LIFECYCLE,
                                                                VIR_NETWORK_EVENT_CALLBACK(on_network_event), v,
                                                                view_unref);
        assert_true(v->domain_callback >= 0 && v->network_callback >= 0);
        th_libvirt_view_barrier(v, true);
        v->objects = describe_objects(conn);
        return v;
}

/* Events arrive in order: once one caused now is delivered, every earlier one is. */
void th_libvirt_view_barrier(th_libvirt_view *v, bool forget) {
        _cleanup_free_ char *name = vf_printf(BARRIER_PREFIX "%d-%u", (int) getpid(), ++v->barriers),
                            *line = vf_printf("domain %s Undefined", name);
        _cleanup_free_ char *xml = vf_printf("<domain type='%s'><name>%s</name><memory>65536</memory>"
                                             "<os><type arch='x86_64'>hvm</type></os></domain>",
                                             v->domain_type, name);
        int64_t deadline = vf_now_monotonic_usec() + 60 * 1000000LL;
        virDomainPtr d = virDomainDefineXML(v->conn, xml);

        assert_non_null(d);
        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        while (!logged(v, line)) {
                if (vf_now_monotonic_usec() > deadline)
                        fail_msg("timed out waiting for libvirt to deliver \"%s\"", line);
                turn_event_loop();
                usleep(10 * 1000); /* polling the condition, not waiting for a time */
        }
        if (!forget)
                return;
        pthread_mutex_lock(&v->lock);
        vf_strv_free(TAKE_PTR(v->lines));
        pthread_mutex_unlock(&v->lock);
}

void th_libvirt_view_assert_no_event(th_libvirt_view *v, const char *kind, const char *name,
                                     const char *const *events) {
        th_libvirt_view_barrier(v, false);
        for (size_t i = 0; events[i]; i++) {
                _cleanup_free_ char *line = vf_printf("%s %s %s", kind, name, events[i]);
                if (logged(v, line))
                        fail_msg("libvirt reported \"%s\", which virtform should not have caused", line);
        }
}

void th_libvirt_view_assert_untouched(th_libvirt_view *v) {
        vf_buf events = {};

        th_libvirt_view_barrier(v, false);
        pthread_mutex_lock(&v->lock);
        for (char **l = v->lines; l && *l; l++)
                if (!strstr(*l, " " BARRIER_PREFIX))
                        vf_buf_printf(&events, "%s\n", *l);
        pthread_mutex_unlock(&v->lock);
        _cleanup_free_ char *sent = vf_buf_steal(&events), *now = describe_objects(v->conn);
        if (sent && sent[0])
                fail_msg("libvirt sent events where nothing was to change:\n%s", sent);
        if (strcmp(now, v->objects) != 0)
                fail_msg("libvirt's objects changed where nothing was to change; before:\n%s\nafter:\n%s", v->objects,
                         now);
}

void th_libvirt_view_free(th_libvirt_view *v) {
        if (!v)
                return;
        assert_int_equal(virConnectNetworkEventDeregisterAny(v->conn, v->network_callback), 0);
        assert_int_equal(virConnectDomainEventDeregisterAny(v->conn, v->domain_callback), 0);
}
