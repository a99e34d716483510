/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hostdev reconciler: PCI passthrough and SR-IOV VF assignment.
 *
 * A device claimed by a domain that is to run is assigned: for a VF, only
 * while its PF netdev is administratively up (never brought up by us: an
 * unconfigured interface would start IPv6 autoconf); then its MAC and VLAN
 * are set through the PF, the originals saved first; then it is bound to
 * vfio-pci. A device nobody claims is released in reverse, while still on
 * vfio-pci. Every step that touches the host is preceded by a durable record
 * of it (state_flush), so that a crash between any two steps is finished or
 * undone by the next run. docs/sriov.md is the specification.
 */
#include "reconcilers/hostdev/hostdev.h"
#include "reconcilers/object.h"

#include <libxml/xpath.h>
#include <net/ethernet.h>
#include <netinet/ether.h>
#include <string.h>

#define VFIO_DRIVER "vfio-pci"

typedef struct hostdev_run {
        rc_context *ctx;
        const rc_request *req;
        rc_result *res;
        const char *bdf;
        state_device *dev; /* what the store knows of the device; created on first need */
        hd_resolution resolution;
} hostdev_run;

static void hostdev_run_done(hostdev_run *run) {
        state_device_free(run->dev);
        hd_resolution_done(&run->resolution);
}

/* ---- bookkeeping --------------------------------------------------------- */

static int load_device(hostdev_run *run) {
        int r = state_device_get(run->ctx->store, run->bdf, &run->dev);
        if (r == -ENOENT) {
                run->dev = state_device_new(run->bdf);
                return run->dev ? 0 : -ENOMEM;
        }
        return r;
}

/* Writes the device record and makes it durable before the host is touched. */
static int save_device(hostdev_run *run) {
        if (run->ctx->dry_run)
                return 0;
        int r = state_device_put(run->ctx->store, run->dev);
        return r < 0 ? r : state_flush(run->ctx->store);
}

static const char *vf_description(const hostdev_run *run, char *buf, size_t size) {
        const hd_resolution *res = &run->resolution;
        if (res->is_vf)
                snprintf(buf, size, "VF %s (VF %d of PF %s)", run->bdf, res->vf_index, res->pf_netdev);
        else
                snprintf(buf, size, "PCI device %s", run->bdf);
        return buf;
}

/* ---- resolution ---------------------------------------------------------- */

static const char *resolve_reason(int r) {
        switch (r) {
        case -ENODEV:
                return "NoSuchDevice";
        case -ENOLINK:
                return "PFWithoutNetdev";
        case -ENOTUNIQ:
                return "Ambiguous";
        case -EINVAL:
        case -ENXIO:
                return "NotResolvable";
        default:
                return "ResolveFailed";
        }
}

/* The recorded resolution is the only way through the vfio-pci trap: keep it while the VF shows its netdev. */
static int remember_resolution(hostdev_run *run) {
        const hd_resolution *res = &run->resolution;
        state_device *dev = run->dev;

        if (!res->is_vf || res->method == HD_METHOD_RECORDED || !res->vf_netdev)
                return 0;
        if (vf_streq_ptr(dev->pf, res->pf) && vf_streq_ptr(dev->pf_netdev, res->pf_netdev) &&
            dev->vf_index == res->vf_index && vf_streq_ptr(dev->phys_port_id, res->phys_port_id))
                return 0;
        int r = vf_free_and_strdup(&dev->pf, res->pf);
        if (r >= 0)
                r = vf_free_and_strdup(&dev->pf_netdev, res->pf_netdev);
        if (r >= 0)
                r = vf_free_and_strdup(&dev->phys_port_id, res->phys_port_id);
        if (r < 0)
                return r;
        dev->vf_index = res->vf_index;
        return save_device(run);
}

static int resolve(hostdev_run *run) {
        _cleanup_free_ char *errmsg = NULL;
        const state_device *dev = run->dev;
        hd_recorded recorded = {
                .pf_netdev = dev->pf_netdev,
                .vf_index = (int) dev->vf_index,
                .phys_port_id = dev->phys_port_id,
        };

        if (dev->pf)
                snprintf(recorded.pf, sizeof recorded.pf, "%s", dev->pf);
        int r = hd_resolve(run->ctx->sysfs_root, run->bdf, dev->pf ? &recorded : NULL, &run->resolution, &errmsg);
        if (r < 0) {
                rc_result_set(run->res, RC_FAILED, false, resolve_reason(r), "%s",
                              errmsg ? errmsg : strerror(-r));
                /* A device that is not there yet comes back with its udev event; the rest with the timer. */
                if (r == -ENODEV && rc_result_wait(run->res, RC_WAIT_DEVICE, run->bdf, 0) < 0)
                        return -ENOMEM;
                return r;
        }
        return remember_resolution(run);
}

/* ---- the PF gate ----------------------------------------------------------- */

/* The reconciler's slot in rc_context: how it reaches the host, kept across passes. */
typedef struct hostdev_host {
        hd_netlink *netlink; /* opened on first need */
        hd_sysfs_writer sysfs; /* .write NULL: the kernel's files */
} hostdev_host;

static void hostdev_host_free(void *p) {
        hostdev_host *h = p;

        if (!h)
                return;
        hd_netlink_close(h->netlink);
        free(h);
}

static hostdev_host *host_of(rc_context *ctx) {
        if (!ctx->kind_state[VF_KIND_HOSTDEV])
                ctx->kind_state[VF_KIND_HOSTDEV] = calloc(1, sizeof(hostdev_host));
        return ctx->kind_state[VF_KIND_HOSTDEV];
}

int rc_hostdev_use_host(rc_context *ctx, const hd_netlink_transport *netlink, const hd_sysfs_writer *sysfs) {
        hostdev_host *h = host_of(ctx);

        if (!h)
                return -ENOMEM;
        if (netlink) {
                hd_netlink_close(TAKE_PTR(h->netlink));
                int r = hd_netlink_open_with_transport(netlink, &h->netlink);
                if (r < 0)
                        return r;
        }
        if (sysfs)
                h->sysfs = *sysfs;
        return 0;
}

static int netlink(rc_context *ctx, hd_netlink **ret) {
        hostdev_host *h = host_of(ctx);

        if (!h)
                return -ENOMEM;
        if (!h->netlink) {
                int r = hd_netlink_open(&h->netlink);
                if (r < 0)
                        return r;
        }
        *ret = h->netlink;
        return 0;
}

/* NULL (the files) also when the slot cannot be allocated: nothing but a test ever puts a writer there. */
static const hd_sysfs_writer *sysfs_writer(rc_context *ctx) {
        const hostdev_host *h = host_of(ctx);
        return h && h->sysfs.write ? &h->sysfs : NULL;
}

/* "Up" is IFF_UP, the admin state: carrier does not gate (sriov.md). */
static int pf_gate(hostdev_run *run, bool *open) {
        const hd_resolution *res = &run->resolution;
        bool admin_up = false, carrier = false;
        hd_netlink *nl;
        char what[96];
        int r;

        *open = false;
        r = netlink(run->ctx, &nl);
        if (r >= 0)
                r = hd_link_state(nl, res->pf_netdev, &admin_up, &carrier);
        if (r == -ENODEV) {
                rc_result_set(run->res, RC_WAITING, false, "PFNotFound",
                              "%s: PF netdev %s is not present in this network namespace; virtform retries when "
                              "it appears",
                              vf_description(run, what, sizeof what), res->pf_netdev);
                return rc_result_wait(run->res, RC_WAIT_LINK, res->pf_netdev, 0);
        }
        if (r < 0) {
                rc_result_set(run->res, RC_FAILED, false, "LinkStateUnreadable",
                              "cannot read the state of PF netdev %s over netlink: %s", res->pf_netdev, strerror(-r));
                return r;
        }
        if (!admin_up) {
                rc_result_set(run->res, RC_WAITING, false, "PFDown",
                              "%s cannot be assigned while PF netdev %s is administratively down; bring %s up in "
                              "the host's network configuration (e.g. 'ip link set %s up'); virtform never brings "
                              "a PF up itself and proceeds once it is up",
                              vf_description(run, what, sizeof what), res->pf_netdev, res->pf_netdev,
                              res->pf_netdev);
                return rc_result_wait(run->res, RC_WAIT_LINK, res->pf_netdev, 0);
        }
        *open = true;
        return 0;
}

/* ---- VF MAC and VLAN --------------------------------------------------------- */

static bool config_matches(const schema_hostdev_spec *spec, const uint8_t *want_mac, const hd_vf_config *cur) {
        return (!spec->mac || hd_vf_mac_holds(cur->mac, want_mac)) && (spec->vlan < 0 || spec->vlan == cur->vlan);
}

static const char *vf_config_reason(int r, rc_outcome *outcome) {
        *outcome = RC_FAILED;
        switch (r) {
        case -EOPNOTSUPP:
        case -ENOENT:
                return "VFConfigUnsupported";
        case -ENODEV:
                return "PFGone";
        case -EBUSY:
        case -EAGAIN:
                /* Some drivers (i40e) refuse VF config while the VF is still resetting: retry, not fail. */
                *outcome = RC_WAITING;
                return "VFResetting";
        default:
                return "VFConfigFailed";
        }
}

/* request names the netlink request that failed, as the kernel saw it. */
static int vf_config_failed(hostdev_run *run, const char *what, const char *request, int r) {
        rc_outcome outcome;
        const char *reason = vf_config_reason(r, &outcome);
        char desc[96];

        rc_result_set(run->res, outcome, false, reason, "%s %s through PF %s: %s on %s: %s%s", what,
                      vf_description(run, desc, sizeof desc), run->resolution.pf_netdev, request,
                      run->resolution.pf_netdev, strerror(-r), outcome == RC_WAITING ? "; retrying" : "");
        return r;
}

/* Saved in the same durable write that records the intent, before anything changes. */
static int save_originals(hostdev_run *run, const hd_vf_config *cur) {
        state_device *dev = run->dev;
        char mac[18];

        if (dev->saved)
                return 0;
        if (!rc_state_step(run->ctx, run->res, "save VF config"))
                return 0;
        snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", cur->mac[0], cur->mac[1], cur->mac[2], cur->mac[3],
                 cur->mac[4], cur->mac[5]);
        int r = vf_free_and_strdup(&dev->saved_admin_mac, mac);
        if (r >= 0)
                r = vf_free_and_strdup(&dev->saved_pf_netdev, run->resolution.pf_netdev);
        if (r < 0)
                return r;
        dev->saved_vlan = cur->vlan;
        dev->saved_vf_index = run->resolution.vf_index;
        dev->saved = true;
        return save_device(run);
}

static int set_vf_config(hostdev_run *run, hd_netlink *nl) {
        const schema_hostdev_spec *spec = &run->req->desired->hostdev;
        struct ether_addr want = {};
        hd_vf_config cur;
        int r;

        if (spec->mac && !ether_aton_r(spec->mac, &want))
                return -EINVAL; /* the schema only lets canonical MACs through */
        r = hd_vf_get(nl, run->resolution.pf_netdev, run->resolution.vf_index, &cur);
        if (r < 0)
                return vf_config_failed(run, "cannot read the config of", "RTM_GETLINK (IFLA_VFINFO_LIST)", r);
        if (config_matches(spec, want.ether_addr_octet, &cur))
                return 0;
        r = save_originals(run, &cur);
        if (r < 0)
                return r;
        rc_fault_point(run->ctx, "hostdev-after-save");
        r = rc_host_step_begin(run->ctx, run->req, run->res, "set VF mac/vlan");
        if (r <= 0)
                return r;
        r = hd_vf_set(nl, run->resolution.pf_netdev, run->resolution.vf_index,
                      spec->mac ? want.ether_addr_octet : NULL, spec->vlan);
        int recorded = rc_host_step_end(run->ctx, run->req, run->res, "set VF mac/vlan", r >= 0,
                                        r < 0 ? strerror(-r) : NULL);
        if (r < 0)
                return vf_config_failed(run, "cannot set the MAC/VLAN of", "RTM_SETLINK (IFLA_VF_MAC/IFLA_VF_VLAN)", r);
        if (recorded < 0)
                return recorded;
        rc_fault_point(run->ctx, "hostdev-after-set");
        return 0;
}

/* Whether the VF already holds what was saved: a crash after the restore leaves nothing to redo. */
static bool holds_saved(const state_device *dev, const uint8_t *saved_mac, const hd_vf_config *cur) {
        return (!saved_mac || hd_vf_mac_holds(cur->mac, saved_mac)) && cur->vlan == dev->saved_vlan;
}

/* Gives the VF back the admin MAC and VLAN it had, through the PF it had them on. */
static int restore_vf_config(hostdev_run *run) {
        state_device *dev = run->dev;
        struct ether_addr mac;
        const uint8_t *saved_mac = NULL;
        hd_vf_config cur;
        hd_netlink *nl;

        if (!dev->saved)
                return 0;
        if (dev->saved_admin_mac && ether_aton_r(dev->saved_admin_mac, &mac))
                saved_mac = mac.ether_addr_octet;
        int r = netlink(run->ctx, &nl);
        if (r >= 0)
                r = hd_vf_get(nl, dev->saved_pf_netdev, (int) dev->saved_vf_index, &cur);
        if (r >= 0 && !holds_saved(dev, saved_mac, &cur)) {
                r = rc_host_step_begin(run->ctx, run->req, run->res, "restore VF mac/vlan");
                if (r <= 0)
                        return r;
                r = hd_vf_set(nl, dev->saved_pf_netdev, (int) dev->saved_vf_index, saved_mac, (int) dev->saved_vlan);
                int recorded = rc_host_step_end(run->ctx, run->req, run->res, "restore VF mac/vlan", r >= 0,
                                                r < 0 ? strerror(-r) : NULL);
                if (r >= 0 && recorded < 0)
                        return recorded;
        }
        if (r < 0) {
                /* The saved values stay: the next run tries again, nothing is lost. */
                rc_result_set(run->res, RC_FAILED, false, "RestoreFailed",
                              "cannot restore the MAC/VLAN of VF %s through PF %s: RTM_GETLINK/RTM_SETLINK on %s: %s; "
                              "the originals are kept and restored on the next run",
                              run->bdf, dev->saved_pf_netdev, dev->saved_pf_netdev, strerror(-r));
                return r;
        }
        rc_fault_point(run->ctx, "hostdev-after-restore");
        dev->saved = false;
        return save_device(run);
}

/* ---- binding --------------------------------------------------------------- */

/* The binding journal: each phase is durable before the step it names touches the host. */
static int journal_bind_phase(hostdev_run *run, const char *phase) {
        int r = vf_free_and_strdup(&run->dev->bind_phase, phase);
        return r < 0 ? r : save_device(run);
}

/* The own MAC of a VF's netdev, from sysfs; NULL when it has none. */
static char *read_own_mac(const hostdev_run *run, const char *vf_netdev) {
        _cleanup_free_ char *path = NULL;
        char *mac = NULL;

        if (!vf_netdev)
                return NULL;
        path = vf_printf("%s/class/net/%s/address", run->ctx->sysfs_root, vf_netdev);
        if (!path || vf_read_file(path, 64, &mac, NULL) < 0)
                return NULL;
        mac[strcspn(mac, "\n")] = 0;
        return mac;
}

/* Where a move between drivers stands, for the error that names the failed step. */
typedef struct move {
        const char *override; /* written to driver_override ("" clears it) */
        const char *driver;   /* the driver the device must end on (NULL: none) */
        const char *fault_point;
        const char *failed;   /* the attribute of the last step tried: the one that failed */
        char *now;            /* the device's driver afterwards */
} move;

/*
 * driver_override, unbind, drivers_probe (sriov.md "Binding"), each skipped
 * when sysfs already shows its effect, so that a run after a crash makes each
 * write once.
 */
static int move_device(hostdev_run *run, move *m) {
        const char *root = run->ctx->sysfs_root;
        const hd_sysfs_writer *w = sysfs_writer(run->ctx);
        _cleanup_free_ char *override = NULL;

        m->failed = "driver_override";
        int r = hd_read_driver_override(root, run->bdf, &override);
        if (r >= 0 && !vf_streq_ptr(override, m->override[0] ? m->override : NULL))
                r = hd_write_driver_override(w, root, run->bdf, m->override);
        if (r < 0)
                return r;
        m->failed = "driver";
        r = hd_device_driver(root, run->bdf, &m->now);
        if (r >= 0 && m->now && !vf_streq_ptr(m->now, m->driver)) {
                m->failed = "driver/unbind";
                r = hd_unbind(w, root, run->bdf);
                free(TAKE_PTR(m->now));
        }
        rc_fault_point(run->ctx, m->fault_point);
        if (r >= 0 && !m->now && m->driver) {
                m->failed = "drivers_probe";
                r = hd_drivers_probe(w, root, run->bdf);
                if (r >= 0)
                        r = hd_device_driver(root, run->bdf, &m->now);
        }
        return r;
}

/* Names the step and the sysfs file, as libvirt's virpci.c does. */
static int move_failed(hostdev_run *run, const char *step, const move *m, int r, const char *hint) {
        const char *root = run->ctx->sysfs_root;

        (void) rc_host_step_end(run->ctx, run->req, run->res, step, false,
                                r < 0 ? strerror(-r) : "wrong driver after probe");
        if (r < 0) {
                _cleanup_free_ char *file = strcmp(m->failed, "drivers_probe") == 0
                                                    ? vf_printf("%s/bus/pci/drivers_probe", root)
                                                    : vf_printf("%s/bus/pci/devices/%s/%s", root, run->bdf, m->failed);
                rc_result_set(run->res, RC_FAILED, false, "BindFailed", "cannot %s %s: %s: %s%s", step, run->bdf,
                              file ? file : m->failed, strerror(-r), hint);
        } else
                rc_result_set(run->res, RC_FAILED, false, "BindFailed",
                              "cannot %s %s: after writing to %s/bus/pci/drivers_probe it is bound to %s, not %s%s",
                              step, run->bdf, root, m->now ? m->now : "no driver", m->driver ? m->driver : "no driver",
                              hint);
        return -EIO;
}

/* Back to the driver recorded before the bind; verified to have left vfio-pci. */
static int give_back(hostdev_run *run) {
        state_device *dev = run->dev;
        move m = { .override = "", .fault_point = "hostdev-mid-release" };

        if (!dev->bind_phase)
                return 0;
        m.driver = dev->original_driver && dev->original_driver[0] ? dev->original_driver : NULL;
        /* The step names the driver: plan says where the device goes. */
        _cleanup_free_ char *step = vf_printf("give back to %s", m.driver ? m.driver : "the driver the kernel picks");
        if (!step)
                return -ENOMEM;
        int r = journal_bind_phase(run, "releasing");
        if (r < 0)
                return r;
        r = rc_host_step_begin(run->ctx, run->req, run->res, step);
        if (r <= 0)
                return r;
        r = move_device(run, &m);
        _cleanup_free_ char *now = m.now;
        if (r < 0 || vf_streq_ptr(now, VFIO_DRIVER) || !vf_streq_ptr(now, m.driver))
                return move_failed(run, step, &m, r,
                                   "; the binding journal is kept and the next run tries again; is its driver "
                                   "module loaded?");
        r = rc_host_step_end(run->ctx, run->req, run->res, step, true, now);
        return r < 0 ? r : journal_bind_phase(run, NULL);
}

/*
 * The VF's own MAC, once it has a netdev again: the net driver may have
 * picked another on its return. *pending when the netdev has not come back yet.
 */
static int restore_own_mac(hostdev_run *run, bool *pending) {
        state_device *dev = run->dev;
        _cleanup_(hd_resolution_done) hd_resolution now = {};
        struct ether_addr mac;
        hd_netlink *nl;

        *pending = false;
        if (!dev->saved_own_mac || dev->bind_phase)
                return 0;
        if (hd_resolve(run->ctx->sysfs_root, run->bdf, NULL, &now, NULL) < 0 || !now.vf_netdev) {
                *pending = true;
                return 0;
        }
        _cleanup_free_ char *current = read_own_mac(run, now.vf_netdev);
        if (!vf_streq_ptr(current, dev->saved_own_mac) && ether_aton_r(dev->saved_own_mac, &mac)) {
                int r = rc_host_step_begin(run->ctx, run->req, run->res, "restore VF own MAC");
                if (r <= 0)
                        return r;
                r = netlink(run->ctx, &nl);
                if (r >= 0)
                        r = hd_link_set_address(nl, now.vf_netdev, mac.ether_addr_octet);
                int recorded = rc_host_step_end(run->ctx, run->req, run->res, "restore VF own MAC", r >= 0,
                                                r < 0 ? strerror(-r) : NULL);
                if (r < 0) {
                        rc_result_set(run->res, RC_FAILED, false, "RestoreFailed",
                                      "cannot restore the own MAC %s of VF %s: RTM_SETLINK (IFLA_ADDRESS) on %s: %s; "
                                      "it is kept and restored on the next run",
                                      dev->saved_own_mac, run->bdf, now.vf_netdev, strerror(-r));
                        return r;
                }
                if (recorded < 0)
                        return recorded;
                rc_fault_point(run->ctx, "hostdev-after-own-mac");
        }
        free(TAKE_PTR(dev->saved_own_mac));
        return save_device(run);
}

/* Undoes an assignment in reverse: the VF config first, while still on vfio-pci, then the driver, then the own MAC. */
static int unassign(hostdev_run *run, bool *own_mac_pending) {
        int r = restore_vf_config(run);
        if (r >= 0)
                r = give_back(run);
        if (r >= 0)
                r = restore_own_mac(run, own_mac_pending);
        return r;
}

/*
 * The journal first, with the VF's own MAC while its netdev still shows it;
 * a crash mid-bind must still know where to give the device back. A failed
 * bind is undone at once: never an override left set on an unbound device.
 */
static int bind_to_vfio(hostdev_run *run) {
        state_device *dev = run->dev;
        const char *step = "bind to vfio-pci";
        move m = { .override = VFIO_DRIVER, .driver = VFIO_DRIVER, .fault_point = "hostdev-mid-bind" };
        bool pending;
        int r;

        if (!dev->bind_phase) {
                r = vf_free_and_strdup(&dev->original_driver, run->resolution.driver ? run->resolution.driver : "");
                if (r < 0)
                        return r;
                if (!dev->saved_own_mac)
                        dev->saved_own_mac = read_own_mac(run, run->resolution.vf_netdev);
                r = journal_bind_phase(run, "binding");
                if (r < 0)
                        return r;
                rc_fault_point(run->ctx, "hostdev-after-journal");
        }
        r = rc_host_step_begin(run->ctx, run->req, run->res, step);
        if (r <= 0)
                return r;
        r = move_device(run, &m);
        _cleanup_free_ char *now = m.now;
        if (r >= 0 && vf_streq_ptr(now, VFIO_DRIVER)) {
                r = rc_host_step_end(run->ctx, run->req, run->res, step, true, NULL);
                return r < 0 ? r : journal_bind_phase(run, "bound");
        }
        r = move_failed(run, step, &m, r,
                        "; check that the vfio-pci module is loaded ('modprobe vfio-pci') and the IOMMU is on; the "
                        "device was given back");
        (void) unassign(run, &pending); /* each step reports its own failure over the bind's */
        return r;
}

static int ensure_on_vfio(hostdev_run *run) {
        const char *driver = run->resolution.driver;

        if (vf_streq_ptr(driver, VFIO_DRIVER)) {
                if (!run->dev->bind_phase || strcmp(run->dev->bind_phase, "bound") == 0)
                        return 0;
                return journal_bind_phase(run, "bound"); /* a crash after the probe */
        }
        if (run->req->desired->hostdev.managed)
                return bind_to_vfio(run);
        if (!driver)
                return 0;
        rc_result_set(run->res, RC_FAILED, false, "NotOnVfio",
                      "%s is bound to %s; with managed: false it must already be on vfio-pci or on no driver: bind "
                      "it to vfio-pci, or set managed: true to let virtform do it",
                      run->bdf, driver);
        return -EIO;
}

/* ---- in use by a running domain -------------------------------------------------- */

typedef struct user_scan {
        rc_context *ctx;
        const char *bdf;
        char *user;
} user_scan;

static char *address_to_bdf(xmlNode *address) {
        xmlChar *d = xmlGetProp(address, BAD_CAST "domain"), *b = xmlGetProp(address, BAD_CAST "bus"),
                *s = xmlGetProp(address, BAD_CAST "slot"), *f = xmlGetProp(address, BAD_CAST "function");
        char *bdf = NULL;

        if (d && b && s && f)
                bdf = vf_printf("%04lx:%02lx:%02lx.%lx", strtoul((char *) d, NULL, 16), strtoul((char *) b, NULL, 16),
                                strtoul((char *) s, NULL, 16), strtoul((char *) f, NULL, 16));
        xmlFree(d);
        xmlFree(b);
        xmlFree(s);
        xmlFree(f);
        return bdf;
}

static bool doc_uses_bdf(xmlDoc *doc, const char *bdf) {
        xmlXPathContext *xp = xmlXPathNewContext(doc);
        xmlXPathObject *found = xp ? xmlXPathEvalExpression(
                                             BAD_CAST "//devices/hostdev[@type='pci']/source/address", xp)
                                   : NULL;
        bool used = false;

        for (int i = 0; found && found->nodesetval && i < found->nodesetval->nodeNr && !used; i++) {
                _cleanup_free_ char *addr = address_to_bdf(found->nodesetval->nodeTab[i]);
                used = vf_streq_ptr(addr, bdf);
        }
        xmlXPathFreeObject(found);
        xmlXPathFreeContext(xp);
        return used;
}

static int find_user(void *obj, void *userdata) {
        user_scan *scan = userdata;

        rc_count_read(scan->ctx, RC_CALL_GET_INFO);
        if (scan->user || virDomainIsActive(obj) != 1)
                return 0;
        rc_count_read(scan->ctx, RC_CALL_GET_XML);
        _cleanup_free_ char *xml = virDomainGetXMLDesc(obj, 0);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xml ? rc_xml_parse(xml) : NULL;
        if (doc && doc_uses_bdf(doc, scan->bdf)) {
                scan->user = strdup(virDomainGetName(obj));
                return scan->user ? 0 : -ENOMEM;
        }
        return 0;
}

/* The running domain the device is attached to, by libvirt's own account. */
static int running_user(hostdev_run *run, char **ret) {
        user_scan scan = { run->ctx, run->bdf, NULL };
        int r = rc_inventory_foreach(run->ctx, VF_KIND_DOMAIN, find_user, &scan);
        if (r < 0) {
                free(scan.user);
                return r;
        }
        *ret = scan.user;
        return 0;
}

/* ---- assign and release ------------------------------------------------------- */

/* libvirt's order: the VF goes to vfio-pci first, then gets its MAC/VLAN through the PF; a failure undoes both. */
static int assign(hostdev_run *run) {
        const schema_hostdev_spec *spec = &run->req->desired->hostdev;
        bool open = true, pending;
        hd_netlink *nl;
        char desc[96];
        int r;

        if (run->resolution.is_vf) {
                r = pf_gate(run, &open);
                if (r < 0 || !open)
                        return r;
        }
        r = ensure_on_vfio(run);
        if (r < 0)
                return r;
        if (run->resolution.is_vf && (spec->mac || spec->vlan >= 0)) {
                r = netlink(run->ctx, &nl);
                if (r >= 0)
                        r = set_vf_config(run, nl);
                if (r < 0 && run->res->outcome == RC_FAILED)
                        (void) unassign(run, &pending); /* each step reports its own failure */
                if (r < 0 || run->res->outcome == RC_WAITING)
                        return r;
        }
        rc_result_set(run->res, RC_UNCHANGED, true, "Assigned", "%s is ready for domain %s%s%s",
                      vf_description(run, desc, sizeof desc), run->req->claimant,
                      run->resolution.is_vf ? ", resolved by " : "",
                      run->resolution.is_vf ? hd_method_to_string(run->resolution.method) : "");
        /* Its PF going down under the running guest is reported: the PF's link events bring it back. */
        return run->resolution.is_vf ? rc_result_wait(run->res, RC_WAIT_LINK, run->resolution.pf_netdev, 0) : 0;
}

static bool holds_host_state(const state_device *dev) {
        return dev->saved || dev->bind_phase || dev->saved_own_mac;
}

/* Nothing to give back is "released" too; a device still attached to a running domain waits. */
static int release(hostdev_run *run, const char *why) {
        _cleanup_free_ char *user = NULL;
        bool pending;
        int r;

        if (holds_host_state(run->dev)) {
                r = running_user(run, &user);
                if (r < 0)
                        return r;
                if (user) {
                        _cleanup_free_ char *user_key = schema_key(VF_KIND_DOMAIN, user);
                        rc_result_set(run->res, RC_WAITING, false, "InUse",
                                      "%s; it is still attached to running domain %s and is released once that "
                                      "domain stops",
                                      why, user);
                        return user_key ? rc_result_wait(run->res, RC_WAIT_USER, user_key, 0) : -ENOMEM;
                }
        }
        r = unassign(run, &pending);
        if (r < 0)
                return r;
        if (pending) {
                rc_result_set(run->res, RC_WAITING, false, "VFNetdevPending",
                              "%s; VF %s is back on %s but shows no netdev yet; its own MAC %s is restored once it "
                              "does",
                              why, run->bdf, run->dev->original_driver ? run->dev->original_driver : "its driver",
                              run->dev->saved_own_mac);
                return 0;
        }
        rc_result_set(run->res, RC_UNCHANGED, true, "Released", "%s", why);
        return 0;
}

/* The outcome follows from the steps taken, as for libvirt objects. */
static void settle_outcome(hostdev_run *run, size_t steps_before) {
        if (!run->res->ready)
                return;
        if (!run->req->record)
                run->res->outcome = RC_CREATED;
        else if (vf_strv_length(run->res->steps) > steps_before)
                run->res->outcome = RC_UPDATED;
}

static int begin(rc_context *ctx, const rc_request *req, rc_result *res, hostdev_run *run, const char *pci) {
        *run = (hostdev_run) { .ctx = ctx, .req = req, .res = res, .bdf = pci };
        return load_device(run);
}

/* The device row goes once nothing of ours is left on the host: its journal, saved config and resolution. */
static int forget_if_released(hostdev_run *run) {
        if (run->ctx->dry_run || !run->res->ready || holds_host_state(run->dev))
                return 0;
        return state_device_delete(run->ctx->store, run->bdf);
}

/*
 * Devices are owned by address: when spec.pci changes, the device the record
 * names is restored and given back before the new one is claimed. Until it
 * is, the record keeps the old address (*released false) so that the next
 * run tries again.
 */
static int release_previous(rc_context *ctx, const rc_request *req, rc_result *res, bool *released) {
        _cleanup_(hostdev_run_done) hostdev_run run = {};
        const char *previous = req->record ? req->record->uuid : NULL, *pci = req->desired->hostdev.pci;

        *released = true;
        if (!previous || strcmp(previous, pci) == 0)
                return 0;
        _cleanup_free_ char *why = vf_printf("spec.pci changed from %s to %s", previous, pci);
        if (!why)
                return -ENOMEM;
        int r = begin(ctx, req, res, &run, previous);
        if (r >= 0)
                r = release(&run, why);
        if (r >= 0)
                r = forget_if_released(&run);
        *released = r >= 0 && res->ready;
        return r;
}

static int hostdev_apply(rc_context *ctx, const rc_request *req, rc_result *res) {
        _cleanup_(hostdev_run_done) hostdev_run run = {};
        const schema_hostdev_spec *spec = &req->desired->hostdev;
        size_t steps_before = vf_strv_length(res->steps);
        bool released;
        int r = release_previous(ctx, req, res, &released);

        if (r < 0 || !released)
                return r;
        r = begin(ctx, req, res, &run, spec->pci);
        if (r >= 0)
                r = resolve(&run);
        if (r < 0)
                return r;
        if (!run.resolution.is_vf && (spec->mac || spec->vlan >= 0)) {
                rc_result_set(res, RC_FAILED, false, "NotAVF",
                              "%s is not an SR-IOV VF, so it has no MAC or VLAN to set; remove mac and vlan, or "
                              "name a VF",
                              spec->pci);
                return 0;
        }
        res->uuid = strdup(spec->pci);
        if (!res->uuid)
                return -ENOMEM;
        if (req->claimant && req->claimant_running)
                r = assign(&run);
        else
                r = release(&run, req->claimant ? "its domain is not to run" : "no domain uses it");
        settle_outcome(&run, steps_before);
        return r;
}

/*
 * A removed Hostdev is released like an unclaimed one. The PCI address is
 * known only from the store: without a device record there is nothing of
 * ours on the host to undo.
 */
static int hostdev_remove(rc_context *ctx, const rc_request *req, rc_result *res) {
        _cleanup_(hostdev_run_done) hostdev_run run = {};
        const char *pci = req->record ? req->record->uuid : NULL; /* a hostdev's identity is its address */
        int r;

        if (!pci) {
                rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; nothing to release");
                return 0;
        }
        r = begin(ctx, req, res, &run, pci);
        if (r >= 0)
                r = release(&run, "no longer declared");
        if (r >= 0)
                r = forget_if_released(&run);
        if (r < 0 || !res->ready)
                return r;
        rc_result_set(res, RC_DELETED, true, "Removed", "no longer declared; released");
        return 0;
}

const rc_ops rc_hostdev_ops = {
        .kind = VF_KIND_HOSTDEV,
        .apply = hostdev_apply,
        .remove = hostdev_remove,
        .context_free = hostdev_host_free,
};

int rc_hostdev_recovered_device(const char *sysfs_root, const char *bdf, state_device **ret) {
        _cleanup_free_ char *driver = NULL, *override = NULL;

        *ret = NULL;
        int r = hd_device_driver(sysfs_root, bdf, &driver);
        if (r >= 0)
                r = hd_read_driver_override(sysfs_root, bdf, &override);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return r;
        /* Only both say that a bind like ours happened: libvirt's managed mode leaves no override. */
        if (!vf_streq_ptr(driver, VFIO_DRIVER) || !vf_streq_ptr(override, VFIO_DRIVER))
                return 0;
        _cleanup_(state_device_freep) state_device *dev = state_device_new(bdf);
        if (!dev)
                return -ENOMEM;
        /* Unknown: the release then lets the kernel pick the driver (drivers_probe). */
        r = vf_free_and_strdup(&dev->original_driver, "");
        if (r >= 0)
                r = vf_free_and_strdup(&dev->bind_phase, "bound");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(dev);
        return 0;
}
