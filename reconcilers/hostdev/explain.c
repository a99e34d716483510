/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `virtform hostdev resolve`: the reconciler's view of one device, for an
 * operator asking why a VF is (or is not) assigned.
 */
#include "reconcilers/hostdev/host.h"
#include "reconcilers/reconciler.h"

void rc_hostdev_explanation_done(rc_hostdev_explanation *e) {
        free(e->device);
        free(e->pf);
        free(e->pf_netdev);
        free(e->driver);
        free(e->error);
        *e = (rc_hostdev_explanation) {};
}

static int recorded_from_store(state_store *store, const char *bdf, state_device **dev, hd_recorded *rec) {
        int r = store ? state_device_get(store, bdf, dev) : -ENOENT;
        if (r == -ENOENT || (r >= 0 && !(*dev)->pf))
                return 0;
        if (r < 0)
                return r;
        *rec = (hd_recorded) { .pf_netdev = (*dev)->pf_netdev, .vf_index = (int) (*dev)->vf_index,
                               .phys_port_id = (*dev)->phys_port_id };
        snprintf(rec->pf, sizeof rec->pf, "%s", (*dev)->pf);
        return 1;
}

static void read_link_state(const char *netdev, rc_hostdev_explanation *e) {
        _cleanup_(hd_netlink_closep) hd_netlink *nl = NULL;
        bool up, carrier;

        if (hd_netlink_open(&nl) < 0 || hd_link_state(nl, netdev, &up, &carrier) < 0)
                return;
        e->pf_admin_up = up;
        e->carrier = carrier;
}

static int take_resolution(hd_resolution *res, rc_hostdev_explanation *e) {
        e->is_vf = res->is_vf;
        e->vf_index = res->vf_index;
        e->method = hd_method_to_string(res->method);
        e->pf = res->is_vf ? strdup(res->pf) : NULL;
        e->pf_netdev = TAKE_PTR(res->pf_netdev);
        e->driver = TAKE_PTR(res->driver);
        return res->is_vf && !e->pf ? -ENOMEM : 0;
}

int rc_hostdev_explain(const char *sysfs_root, state_store *store, const char *bdf, rc_hostdev_explanation *ret) {
        _cleanup_(state_device_freep) state_device *dev = NULL;
        _cleanup_(hd_resolution_done) hd_resolution res = {};
        hd_recorded recorded;
        char *errmsg = NULL;

        *ret = (rc_hostdev_explanation) { .vf_index = -1, .pf_admin_up = -1, .carrier = -1, .method = "none" };
        ret->device = strdup(bdf);
        if (!ret->device)
                return -ENOMEM;
        int r = recorded_from_store(store, bdf, &dev, &recorded);
        if (r < 0)
                return r;
        int resolved = hd_resolve(sysfs_root, bdf, r > 0 ? &recorded : NULL, &res, &errmsg);
        if (resolved < 0) {
                ret->error = errmsg ? errmsg : strdup(strerror(-resolved));
                return ret->error ? 0 : -ENOMEM;
        }
        r = take_resolution(&res, ret);
        if (r < 0)
                return r;
        if (!ret->is_vf) {
                ret->error = vf_printf("%s is not an SR-IOV VF (it has no physfn); it can still be passed through "
                                       "as a plain PCI device",
                                       bdf);
                return ret->error ? 0 : -ENOMEM;
        }
        if (ret->pf_netdev)
                read_link_state(ret->pf_netdev, ret);
        return 0;
}
