/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's event sources beside files and timers: signals, libvirt's
 * lifecycle events, link events and device events.
 */
#include "controller/loop.h"

#include <libudev.h>
#include <libvirt/virterror.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

/* ---- signals ---------------------------------------------------------------- */

int signals_new(void) {
        sigset_t mask;

        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        /* Blocked in every thread (threads inherit it): only the signalfd sees them. */
        if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
                return -EINVAL;
        int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int signals_read(int fd) {
        struct signalfd_siginfo info;
        return read(fd, &info, sizeof info) == (ssize_t) sizeof info ? (int) info.ssi_signo : 0;
}

/* ---- libvirt ------------------------------------------------------------------ */

/*
 * libvirt may still be running a callback on its thread when the callback is
 * deregistered, and calls its free function only once it has returned. So
 * each registered callback holds a reference, as the owner does, and the
 * last one to let go frees: never while a callback can still run.
 */
struct libvirt_events {
        atomic_uint refs;
        virConnectPtr conn; /* attached to; NULL while detached */
        int domain_callback, network_callback, pool_callback;
        int wake_fd;
        pthread_mutex_t lock; /* guards seen and closed: the callbacks run on libvirt's thread */
        vf_map *seen; /* "kind/name" -> libvirt_seen*; NULL: nothing since the last take */
        bool closed; /* the connection went away (libvirtd stopped or restarted) */
};

static pthread_once_t event_thread_once = PTHREAD_ONCE_INIT;
static int event_thread_error;

static void *run_libvirt_events(void *unused) {
        for (;;)
                if (virEventRunDefaultImpl() < 0)
                        return NULL;
}

static void start_event_thread(void) {
        pthread_t thread;

        if (virEventRegisterDefaultImpl() < 0) {
                event_thread_error = -EIO;
                return;
        }
        event_thread_error = -pthread_create(&thread, NULL, run_libvirt_events, NULL);
        if (event_thread_error == 0)
                pthread_detach(thread);
}

int libvirt_events_start_thread(void) {
        pthread_once(&event_thread_once, start_event_thread);
        return event_thread_error;
}

static void wake(libvirt_events *e) {
        uint64_t one = 1;
        (void) !write(e->wake_fd, &one, sizeof one);
}

void libvirt_seen_free(vf_map *seen) {
        vf_map_free_with(seen, free);
}

/* Counted, not listed: a cold start's thousands of events cost a lookup each. */
static libvirt_seen *seen_of(libvirt_events *e, const char *key) {
        libvirt_seen *counts;

        if (!e->seen && !(e->seen = vf_map_new()))
                return NULL;
        counts = vf_map_get(e->seen, key);
        if (counts)
                return counts;
        counts = calloc(1, sizeof *counts);
        if (counts && vf_map_put(e->seen, key, counts) < 0) {
                free(counts);
                return NULL;
        }
        return counts;
}

static void record_event(libvirt_events *e, vf_kind kind, const char *name, int event) {
        _cleanup_free_ char *key = schema_key(kind, name);

        pthread_mutex_lock(&e->lock);
        libvirt_seen *counts = key ? seen_of(e, key) : NULL;
        if (counts && event >= 0 && event < RC_LIFECYCLE_EVENTS) {
                if (counts->counts[event] < UINT8_MAX)
                        counts->counts[event]++;
        } else if (counts)
                counts->other = true;
        pthread_mutex_unlock(&e->lock);
        wake(e);
}

static int on_domain_event(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        record_event(opaque, VF_KIND_DOMAIN, virDomainGetName(dom), event);
        return 0;
}

static void on_network_event(virConnectPtr conn, virNetworkPtr net, int event, int detail, void *opaque) {
        record_event(opaque, VF_KIND_NETWORK, virNetworkGetName(net), event);
}

static void on_pool_event(virConnectPtr conn, virStoragePoolPtr pool, int event, int detail, void *opaque) {
        record_event(opaque, VF_KIND_POOL, virStoragePoolGetName(pool), event);
}

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        libvirt_events *e = opaque;

        pthread_mutex_lock(&e->lock);
        e->closed = true;
        pthread_mutex_unlock(&e->lock);
        wake(e);
}

static void events_unref(void *opaque) {
        libvirt_events *e = opaque;

        if (atomic_fetch_sub(&e->refs, 1) != 1)
                return;
        if (e->wake_fd >= 0)
                close(e->wake_fd);
        libvirt_seen_free(e->seen);
        pthread_mutex_destroy(&e->lock);
        free(e);
}

int libvirt_events_new(libvirt_events **ret) {
        libvirt_events *e = calloc(1, sizeof *e);

        if (!e)
                return -ENOMEM;
        *e = (libvirt_events) { .refs = 1, .domain_callback = -1, .network_callback = -1, .pool_callback = -1 };
        pthread_mutex_init(&e->lock, NULL);
        e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (e->wake_fd < 0) {
                int r = -errno;
                libvirt_events_free(e);
                return r;
        }
        *ret = e;
        return 0;
}


int libvirt_events_attach(libvirt_events *e, virConnectPtr conn) {
        libvirt_events_detach(e);
        e->conn = conn;
        e->closed = false;
        /* The reference is taken before libvirt can call the free function, which it does only on success. */
        atomic_fetch_add(&e->refs, 3);
        e->domain_callback = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                              VIR_DOMAIN_EVENT_CALLBACK(on_domain_event), e,
                                                              events_unref);
        e->network_callback = virConnectNetworkEventRegisterAny(conn, NULL, VIR_NETWORK_EVENT_ID_LIFECYCLE,
                                                                VIR_NETWORK_EVENT_CALLBACK(on_network_event), e,
                                                                events_unref);
        /* A driver without networks or pools (qemu:///embed) has no events of theirs to give. */
        bool no_networks = e->network_callback < 0 && virGetLastErrorCode() == VIR_ERR_NO_SUPPORT;
        e->pool_callback = virConnectStoragePoolEventRegisterAny(conn, NULL, VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE,
                                                                 VIR_STORAGE_POOL_EVENT_CALLBACK(on_pool_event), e,
                                                                 events_unref);
        bool no_pools = e->pool_callback < 0 && virGetLastErrorCode() == VIR_ERR_NO_SUPPORT;
        atomic_fetch_sub(&e->refs, (e->domain_callback < 0) + (e->network_callback < 0) + (e->pool_callback < 0));
        if (e->domain_callback < 0 || (e->network_callback < 0 && !no_networks) || (e->pool_callback < 0 && !no_pools)) {
                libvirt_events_detach(e);
                return -EIO;
        }
        /*
         * The test driver and the embedded one never close: no callback to register there. This one
         * runs under libvirt's lock that unregistering takes, so it needs no reference.
         */
        (void) virConnectRegisterCloseCallback(conn, on_close, e, NULL);
        return 0;
}

void libvirt_events_detach(libvirt_events *e) {
        if (!e->conn)
                return;
        /* On a connection that already went away these fail harmlessly. */
        if (e->domain_callback >= 0)
                virConnectDomainEventDeregisterAny(e->conn, e->domain_callback);
        if (e->network_callback >= 0)
                virConnectNetworkEventDeregisterAny(e->conn, e->network_callback);
        if (e->pool_callback >= 0)
                virConnectStoragePoolEventDeregisterAny(e->conn, e->pool_callback);
        (void) virConnectUnregisterCloseCallback(e->conn, on_close);
        e->domain_callback = e->network_callback = e->pool_callback = -1;
        e->conn = NULL;
}

void libvirt_events_free(libvirt_events *e) {
        if (!e)
                return;
        libvirt_events_detach(e);
        events_unref(e);
}

bool libvirt_events_attached(const libvirt_events *e) {
        return e->conn;
}

int libvirt_events_fd(const libvirt_events *e) {
        return e->wake_fd;
}

int libvirt_events_take(libvirt_events *e, vf_map **seen, bool *closed) {
        uint64_t count;

        (void) !read(e->wake_fd, &count, sizeof count);
        pthread_mutex_lock(&e->lock);
        *seen = TAKE_PTR(e->seen);
        *closed = e->closed;
        e->closed = false;
        pthread_mutex_unlock(&e->lock);
        return 0;
}

/* ---- links ------------------------------------------------------------------------ */

struct link_monitor {
        struct nl_sock *sock;
        char ***collect; /* where the callback puts names during link_monitor_read() */
        bool lost; /* a name could not be kept, or the kernel dropped messages */
};

static int on_link_message(struct nl_msg *msg, void *userdata) {
        link_monitor *m = userdata;
        struct nlmsghdr *nlh = nlmsg_hdr(msg);
        struct nlattr *tb[IFLA_MAX + 1];

        if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK)
                return NL_OK;
        if (nlmsg_parse(nlh, sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL) < 0 || !tb[IFLA_IFNAME])
                return NL_OK;
        const char *name = nla_get_string(tb[IFLA_IFNAME]);
        if (!vf_strv_contains(*m->collect, name) && vf_strv_push(m->collect, name) < 0)
                m->lost = true;
        return NL_OK;
}

int link_monitor_new(link_monitor **ret) {
        link_monitor *m = calloc(1, sizeof *m);

        if (!m || !(m->sock = nl_socket_alloc())) {
                free(m);
                return -ENOMEM;
        }
        /* Notifications carry no sequence numbers to check. */
        nl_socket_disable_seq_check(m->sock);
        nl_socket_modify_cb(m->sock, NL_CB_VALID, NL_CB_CUSTOM, on_link_message, m);
        if (nl_connect(m->sock, NETLINK_ROUTE) < 0 || nl_socket_add_membership(m->sock, RTNLGRP_LINK) < 0 ||
            nl_socket_set_nonblocking(m->sock) < 0) {
                link_monitor_free(m);
                return -EIO;
        }
        *ret = m;
        return 0;
}

void link_monitor_free(link_monitor *m) {
        if (!m)
                return;
        nl_socket_free(m->sock);
        free(m);
}

int link_monitor_fd(const link_monitor *m) {
        return nl_socket_get_fd(m->sock);
}

int link_monitor_read(link_monitor *m, char ***ifnames) {
        int r;

        m->collect = ifnames;
        m->lost = false;
        /*
         * Drains the socket: -NLE_AGAIN means it is empty now. libnl reports the kernel's ENOBUFS (its
         * queue overflowed and dropped messages) as -NLE_NOMEM, once; what was queued still follows.
         */
        while ((r = nl_recvmsgs_default(m->sock)) != -NLE_AGAIN)
                if (r < 0) {
                        /* Anything else, or a second one (out of memory for real): the loop comes back. */
                        bool go_on = r == -NLE_NOMEM && !m->lost;
                        m->lost = true;
                        if (!go_on)
                                break;
                }
        m->collect = NULL;
        return m->lost ? -ENOBUFS : 0;
}

/* ---- devices ---------------------------------------------------------------------- */

struct device_monitor {
        struct udev *udev;
        struct udev_monitor *monitor;
};

int device_monitor_new(device_monitor **ret) {
        device_monitor *m = calloc(1, sizeof *m);

        if (!m || !(m->udev = udev_new())) {
                free(m);
                return -ENOMEM;
        }
        /* Without udevd (containers, this test machine) only the kernel's own uevents exist. */
        const char *source = access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
        m->monitor = udev_monitor_new_from_netlink(m->udev, source);
        if (!m->monitor || udev_monitor_filter_add_match_subsystem_devtype(m->monitor, "pci", NULL) < 0 ||
            udev_monitor_filter_add_match_subsystem_devtype(m->monitor, "net", NULL) < 0 ||
            udev_monitor_enable_receiving(m->monitor) < 0) {
                device_monitor_free(m);
                return -EIO;
        }
        *ret = m;
        return 0;
}

void device_monitor_free(device_monitor *m) {
        if (!m)
                return;
        udev_monitor_unref(m->monitor);
        udev_unref(m->udev);
        free(m);
}

int device_monitor_fd(const device_monitor *m) {
        return udev_monitor_get_fd(m->monitor);
}

int device_monitor_read(device_monitor *m, char **action, char **subsystem, char **sysname) {
        errno = 0;
        struct udev_device *d = udev_monitor_receive_device(m->monitor);

        *action = *subsystem = *sysname = NULL;
        if (!d)
                return errno == ENOBUFS ? -ENOBUFS : 0;
        const char *a = udev_device_get_action(d), *s = udev_device_get_subsystem(d), *n = udev_device_get_sysname(d);
        *action = a ? strdup(a) : NULL;
        *subsystem = s ? strdup(s) : NULL;
        *sysname = n ? strdup(n) : NULL;
        udev_device_unref(d);
        return 1;
}
