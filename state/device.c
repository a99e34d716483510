/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Host devices: the resolution of a VF recorded while it had a netdev, the
 * VF config saved before virtform changed it, and the binding journal.
 */
#include <string.h>

#include "state/state-internal.h"

state_device *state_device_new(const char *bdf) {
        state_device *dev = calloc(1, sizeof *dev);
        if (!dev)
                return NULL;
        dev->bdf = strdup(bdf);
        dev->vf_index = dev->saved_vf_index = -1;
        if (!dev->bdf) {
                free(dev);
                return NULL;
        }
        return dev;
}

void state_device_free(state_device *dev) {
        if (!dev)
                return;
        free(dev->bdf);
        free(dev->pf);
        free(dev->pf_netdev);
        free(dev->phys_port_id);
        free(dev->saved_pf_netdev);
        free(dev->saved_admin_mac);
        free(dev->saved_own_mac);
        free(dev->original_driver);
        free(dev->bind_phase);
        free(dev);
}

static int device_from_row(sqlite3_stmt *st, state_device **ret) {
        _cleanup_(state_device_freep) state_device *dev = calloc(1, sizeof *dev);
        if (!dev)
                return -ENOMEM;
        int r = state_column_strdup(st, DEV_BDF, &dev->bdf) ?: state_column_strdup(st, DEV_PF, &dev->pf) ?:
                state_column_strdup(st, DEV_PF_NETDEV, &dev->pf_netdev) ?:
                state_column_strdup(st, DEV_PHYS_PORT_ID, &dev->phys_port_id) ?:
                state_column_strdup(st, DEV_SAVED_PF_NETDEV, &dev->saved_pf_netdev) ?:
                state_column_strdup(st, DEV_SAVED_ADMIN_MAC, &dev->saved_admin_mac) ?:
                state_column_strdup(st, DEV_SAVED_OWN_MAC, &dev->saved_own_mac) ?:
                state_column_strdup(st, DEV_ORIGINAL_DRIVER, &dev->original_driver) ?:
                state_column_strdup(st, DEV_BIND_PHASE, &dev->bind_phase);
        if (r < 0)
                return r;
        dev->vf_index = sqlite3_column_int64(st, DEV_VF_INDEX);
        dev->saved = sqlite3_column_int(st, DEV_SAVED);
        dev->saved_vf_index = sqlite3_column_int64(st, DEV_SAVED_VF_INDEX);
        dev->saved_vlan = sqlite3_column_int64(st, DEV_SAVED_VLAN);
        dev->updated_usec = sqlite3_column_int64(st, DEV_UPDATED_USEC);
        *ret = TAKE_PTR(dev);
        return 0;
}

int state_device_get(state_store *s, const char *bdf, state_device **ret) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_GET_DEVICE];
        int r = state_step_row(s, st, sqlite3_bind_text(st, DEV_BDF + 1, bdf, -1, SQLITE_STATIC));

        return r < 0 ? r : device_from_row(st, ret);
}

static int bind_text_column(sqlite3_stmt *st, int column, const char *s) {
        return sqlite3_bind_text(st, column + 1, s, -1, SQLITE_STATIC);
}

static int bind_int_column(sqlite3_stmt *st, int column, int64_t v) {
        return sqlite3_bind_int64(st, column + 1, v);
}

int state_device_put(state_store *s, const state_device *dev) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_UPSERT_DEVICE];
        int rc = bind_text_column(st, DEV_BDF, dev->bdf) ?: bind_text_column(st, DEV_PF, dev->pf) ?:
                 bind_text_column(st, DEV_PF_NETDEV, dev->pf_netdev) ?:
                 bind_int_column(st, DEV_VF_INDEX, dev->vf_index) ?:
                 bind_text_column(st, DEV_PHYS_PORT_ID, dev->phys_port_id) ?:
                 bind_int_column(st, DEV_SAVED, dev->saved) ?:
                 bind_text_column(st, DEV_SAVED_PF_NETDEV, dev->saved_pf_netdev) ?:
                 bind_int_column(st, DEV_SAVED_VF_INDEX, dev->saved_vf_index) ?:
                 bind_text_column(st, DEV_SAVED_ADMIN_MAC, dev->saved_admin_mac) ?:
                 bind_int_column(st, DEV_SAVED_VLAN, dev->saved_vlan) ?:
                 bind_text_column(st, DEV_SAVED_OWN_MAC, dev->saved_own_mac) ?:
                 bind_text_column(st, DEV_ORIGINAL_DRIVER, dev->original_driver) ?:
                 bind_text_column(st, DEV_BIND_PHASE, dev->bind_phase) ?:
                 bind_int_column(st, DEV_UPDATED_USEC, vf_now_realtime_usec());
        return state_exec_bound(s, st, rc);
}

int state_device_delete(state_store *s, const char *bdf) {
        _cleanup_stmt_release_ sqlite3_stmt *st = s->stmts[STMT_DELETE_DEVICE];
        return state_exec_bound(s, st, sqlite3_bind_text(st, DEV_BDF + 1, bdf, -1, SQLITE_STATIC));
}
