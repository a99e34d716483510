/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The domain reconciler: what only domains need on top of converge.c —
 * the hypervisor's domain type, MACs that must not change between defines,
 * the disks the file leaves to the host (disks.c), graceful shutdown, and
 * the restart policy for a changed running domain.
 */
#include "reconcilers/domain/domain-internal.h"

#include <libxml/xpath.h>
#include <string.h>

static bool domain_want_active(const rc_request *req) {
        return req->desired->domain.state == SCHEMA_DOMAIN_RUNNING;
}

static bool domain_want_autostart(const rc_request *req) {
        return req->desired->domain.autostart;
}

/* The test driver runs "test" domains; QEMU runs "kvm" where the host offers it, else "qemu" (TCG). */
static int detect_domain_type(rc_context *ctx, char **ret) {
        rc_count_read(ctx, RC_CALL_GET_INFO);
        const char *driver = virConnectGetType(ctx->conn);
        if (!driver)
                return -EIO;
        if (strcasecmp(driver, "test") == 0) {
                *ret = strdup("test");
                return *ret ? 0 : -ENOMEM;
        }
        rc_count_read(ctx, RC_CALL_GET_INFO);
        _cleanup_free_ char *caps = virConnectGetCapabilities(ctx->conn);
        if (!caps)
                return -EIO;
        if (strcasecmp(driver, "qemu") == 0)
                *ret = strdup(strstr(caps, "<domain type='kvm'") ? "kvm" : "qemu");
        else {
                _cleanup_(xmlFreeDocp) xmlDoc *doc = rc_xml_parse(caps);
                *ret = doc ? rc_xml_xpath_string(doc, "string((//guest/arch/domain/@type)[1])") : NULL;
                if (*ret && !**ret) {
                        free(*ret);
                        *ret = NULL;
                }
        }
        return *ret ? 0 : -ENOTSUP;
}

static int set_domain_type(rc_context *ctx, const rc_request *req, xmlDoc *desired, rc_result *res) {
        xmlNode *root = xmlDocGetRootElement(desired);
        int r;

        if (xmlHasProp(root, BAD_CAST "type"))
                return 0;
        if (!ctx->domain_type) {
                r = detect_domain_type(ctx, &ctx->domain_type);
                if (r < 0) {
                        rc_result_set(res, RC_FAILED, false, "UnknownHypervisor",
                                      "cannot choose a domain type for this hypervisor (%s); set spec.type",
                                      rc_libvirt_error());
                        return r;
                }
        }
        return xmlSetProp(root, BAD_CAST "type", BAD_CAST ctx->domain_type) ? 0 : -ENOMEM;
}

/*
 * An interface the file gives no MAC keeps the one libvirt assigned at the
 * first define: a MAC that changes on every apply breaks guests' networking.
 * Interfaces are matched by position.
 */
static int inherit_macs(xmlDoc *current, xmlDoc *desired) {
        xmlNode *cur_devices = rc_xml_child(xmlDocGetRootElement(current), "devices");
        xmlNode *want_devices = rc_xml_child(xmlDocGetRootElement(desired), "devices");
        xmlNode *cur = rc_xml_child(cur_devices, "interface");
        xmlNode *want = rc_xml_child(want_devices, "interface");

        for (; cur && want; cur = rc_xml_next(cur->next, "interface"), want = rc_xml_next(want->next, "interface")) {
                xmlNode *mac = rc_xml_child(cur, "mac");
                if (!mac || rc_xml_child(want, "mac"))
                        continue;
                xmlNode *copy = xmlCopyNode(mac, 1);
                if (!copy)
                        return -ENOMEM;
                if (want->children)
                        xmlAddPrevSibling(want->children, copy);
                else
                        xmlAddChild(want, copy);
        }
        return 0;
}

/* One PCI address attribute, e.g. bus='0x3b', from a span of a canonical DDDD:BB:SS.F address. */
static bool set_address_part(xmlNode *address, const char *attr, const char *pci, size_t offset, size_t len) {
        char value[8];
        snprintf(value, sizeof value, "0x%.*s", (int) len, pci + offset);
        return xmlSetProp(address, BAD_CAST attr, BAD_CAST value) != NULL;
}

/*
 * virtform owns the device's binding and a VF's network config, so libvirt
 * gets a plain PCI hostdev with managed='no': it must not redo either.
 */
static int append_hostdev(xmlNode *devices, const schema_resource *hostdev) {
        const char *pci = hostdev->hostdev.pci;
        xmlNode *node = xmlNewChild(devices, NULL, BAD_CAST "hostdev", NULL);
        xmlNode *source = node ? xmlNewChild(node, NULL, BAD_CAST "source", NULL) : NULL;
        xmlNode *address = source ? xmlNewChild(source, NULL, BAD_CAST "address", NULL) : NULL;

        if (!address || !xmlSetProp(node, BAD_CAST "mode", BAD_CAST "subsystem") ||
            !xmlSetProp(node, BAD_CAST "type", BAD_CAST "pci") || !xmlSetProp(node, BAD_CAST "managed", BAD_CAST "no") ||
            !set_address_part(address, "domain", pci, 0, 4) || !set_address_part(address, "bus", pci, 5, 2) ||
            !set_address_part(address, "slot", pci, 8, 2) || !set_address_part(address, "function", pci, 11, 1))
                return -ENOMEM;
        return 0;
}

static int append_hostdevs(const rc_request *req, xmlDoc *desired) {
        xmlNode *root = xmlDocGetRootElement(desired);
        xmlNode *devices = rc_xml_child(root, "devices");

        if (req->n_hostdevs == 0)
                return 0;
        if (!devices && !(devices = xmlNewChild(root, NULL, BAD_CAST "devices", NULL)))
                return -ENOMEM;
        for (size_t i = 0; i < req->n_hostdevs; i++) {
                int r = append_hostdev(devices, req->hostdevs[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int domain_complete(rc_context *ctx, const rc_request *req, xmlDoc *current, xmlDoc *desired,
                           rc_result *res) {
        int r = set_domain_type(ctx, req, desired, res);
        if (r < 0)
                return r;
        r = append_hostdevs(req, desired);
        if (r < 0)
                return r;
        r = rc_domain_complete_disks(ctx, req, desired, res);
        if (r != 0)
                return r;
        return current ? inherit_macs(current, desired) : 0;
}

/*
 * A graceful shutdown never blocks: it is requested, and the domain waits
 * (RC_WAIT_OPERATION) for its own stop event or the deadline, whichever comes
 * first. The record's ShuttingDown condition holds when it was requested, so
 * the deadline survives a restart of virtform.
 */
static int wait_for_shutdown(rc_context *ctx, const rc_request *req, int64_t requested_usec, rc_result *res) {
        int64_t deadline = requested_usec + (int64_t) ctx->shutdown_timeout_sec * 1000000;
        char when[32];

        vf_format_time(deadline, when);
        res->shutting_down = vf_printf("graceful shutdown requested; destroyed at %s if still running", when);
        if (!res->shutting_down)
                return -ENOMEM;
        /* The time, not the seconds left: the message is kept, and read later (status shows it as the next retry). */
        rc_result_set(res, RC_WAITING, false, "ShuttingDown",
                      "waiting for the guest to shut down; destroyed at %s if still running", when);
        return rc_result_wait(res, RC_WAIT_OPERATION, NULL, deadline);
}

/* plan: what apply does to a guest that ignores the request, with the time it is given. */
static int plan_shutdown(rc_context *ctx, const rc_request *req, rc_result *res) {
        _cleanup_free_ char *shutdown = vf_printf("shutdown (timeout %u s)", ctx->shutdown_timeout_sec);

        if (!shutdown)
                return -ENOMEM;
        (void) rc_step_begin(ctx, req, res, RC_CALL_SHUTDOWN, shutdown);
        (void) rc_step_begin(ctx, req, res, RC_CALL_DESTROY, "destroy if still running");
        return 0;
}

static int request_shutdown(void *obj) {
        return virDomainShutdown(obj);
}

static int shutdown_gracefully(rc_context *ctx, const rc_request *req, void *obj, rc_result *res) {
        const state_condition *requested = req->record ? state_record_condition(req->record, "ShuttingDown") : NULL;
        int64_t now = vf_now_realtime_usec();

        if ((!requested || !requested->status) && ctx->dry_run)
                return plan_shutdown(ctx, req, res);
        if (!requested || !requested->status) {
                int r = rc_object_set_active(ctx, &rc_domain_class, req, obj, res, RC_CALL_SHUTDOWN, request_shutdown);
                if (r < 0)
                        return r;
                /* Some guests (and the test driver) are down by the time the request returns. */
                rc_count_read(ctx, RC_CALL_GET_INFO);
                return virDomainIsActive(obj) == 0 ? 0 : wait_for_shutdown(ctx, req, now, res);
        }
        if (now < requested->last_transition_usec + (int64_t) ctx->shutdown_timeout_sec * 1000000)
                return wait_for_shutdown(ctx, req, requested->last_transition_usec, res);
        /* The guest ignored the request for the whole timeout: stop it hard, as virsh destroy would. */
        return rc_object_destroy(ctx, &rc_domain_class, req, obj, res);
}

static int domain_changed_while_active(rc_context *ctx, const rc_request *req, void *obj, rc_result *res) {
        if (req->desired->domain.restart != SCHEMA_RESTART_ON_CHANGE) {
                res->restart_pending = strdup("the new definition takes effect at the next restart of the "
                                              "domain; set spec.restart: on-change to restart automatically");
                return res->restart_pending ? 0 : -ENOMEM;
        }
        int r = shutdown_gracefully(ctx, req, obj, res);
        if (r < 0 || res->outcome == RC_WAITING)
                return r;
        return rc_object_start(ctx, &rc_domain_class, req, obj, res);
}

static const rc_kind_hooks domain_hooks = {
        .cls = &rc_domain_class,
        .want_active = domain_want_active,
        .want_autostart = domain_want_autostart,
        .complete = domain_complete,
        .changed_while_active = domain_changed_while_active,
        .deactivate = shutdown_gracefully,
};

RC_DEFINE_OBJECT_OPS(rc_domain_ops, VF_KIND_DOMAIN, domain_hooks);

/*
 * A driver starting up in this process reconnects to the guests an earlier
 * process left running, each in a thread of its own that holds the domain's
 * job until it is done. Until then libvirt reports the guest as it was saved
 * (running), and may find it dead and mark it shut off a moment later; a
 * process that exits meanwhile crashes in that thread. libvirt has no call
 * to wait for it, but a query that takes a job of its own waits behind it.
 */
int rc_domain_wait_reconnected(virConnectPtr conn) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);

        if (n < 0)
                return -EIO;
        for (int i = 0; i < n; i++) {
                virDomainMemoryStatStruct stat;
                /* What it says does not matter, nor whether the guest turned out dead. */
                (void) virDomainMemoryStats(doms[i], &stat, 1, 0);
                virDomainFree(doms[i]);
        }
        free(doms);
        return 0;
}
