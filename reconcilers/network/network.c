/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The network reconciler: what only networks need on top of converge.c.
 *
 * A network is never pulled out from under a running domain: a changed
 * network is restarted only while no active domain uses it, and removal waits
 * until none does.
 */
#include "reconcilers/object.h"

#include <string.h>

static bool network_want_active(const rc_request *req) {
        return true;
}

static bool network_want_autostart(const rc_request *req) {
        return req->desired->network.autostart;
}

/* libvirt picks a bridge name and MAC when the file gives none; keep them stable across defines. */
static int inherit_assigned(xmlDoc *current, xmlDoc *desired) {
        xmlNode *cur_root = xmlDocGetRootElement(current), *want_root = xmlDocGetRootElement(desired);
        xmlNode *cur_bridge = rc_xml_child(cur_root, "bridge"), *want_bridge = rc_xml_child(want_root, "bridge");
        xmlNode *cur_mac = rc_xml_child(cur_root, "mac");

        if (cur_bridge && xmlHasProp(cur_bridge, BAD_CAST "name") && !(want_bridge && xmlHasProp(want_bridge, BAD_CAST "name"))) {
                xmlChar *name = xmlGetProp(cur_bridge, BAD_CAST "name");
                if (!want_bridge)
                        want_bridge = xmlNewChild(want_root, NULL, BAD_CAST "bridge", NULL);
                if (!want_bridge || !xmlSetProp(want_bridge, BAD_CAST "name", name)) {
                        xmlFree(name);
                        return -ENOMEM;
                }
                xmlFree(name);
        }
        if (cur_mac && !rc_xml_child(want_root, "mac") && !xmlAddChild(want_root, xmlCopyNode(cur_mac, 1)))
                return -ENOMEM;
        return 0;
}

static int network_complete(rc_context *ctx, const rc_request *req, xmlDoc *current, xmlDoc *desired,
                            rc_result *res) {
        return current ? inherit_assigned(current, desired) : 0;
}

static int interface_uses_network(xmlDoc *doc, const void *network, bool *ret) {
        _cleanup_strv_free_ char **networks = NULL;
        int r = rc_xml_xpath_strings(doc, "//devices/interface[@type='network']/source/@network", &networks);

        if (r >= 0)
                *ret = vf_strv_contains(networks, network);
        return r;
}

/* The active domains whose interfaces use the network, owned by us or not, joined by ", "; NULL for none. */
static int active_users(rc_context *ctx, const char *network, char **joined, char **first_key) {
        return rc_domain_users(ctx, true, interface_uses_network, network, joined, first_key);
}

static int network_destroy(rc_context *ctx, const rc_request *req, void *obj, rc_result *res) {
        return rc_object_destroy(ctx, &rc_network_class, req, obj, res);
}

static int network_changed_while_active(rc_context *ctx, const rc_request *req, void *obj, rc_result *res) {
        _cleanup_free_ char *users = NULL, *first = NULL;
        int r = active_users(ctx, req->name, &users, &first);

        if (r < 0)
                return r;
        if (users) {
                res->restart_pending = vf_printf("the new definition takes effect when the network restarts; "
                                                 "it is restarted once no running domain uses it (%s)",
                                                 users);
                /* The first user's stop brings it back, to restart or to wait for the next. */
                return res->restart_pending ? rc_result_wait(res, RC_WAIT_USER, first, 0) : -ENOMEM;
        }
        r = network_destroy(ctx, req, obj, res);
        if (r < 0)
                return r;
        return rc_object_start(ctx, &rc_network_class, req, obj, res);
}

static int network_removable(rc_context *ctx, const rc_request *req, void *obj, rc_result *res, bool *ok) {
        _cleanup_free_ char *users = NULL, *first = NULL;
        int r = active_users(ctx, req->name, &users, &first);

        if (r < 0)
                return r;
        *ok = !users;
        if (!users)
                return 0;
        rc_result_set(res, RC_WAITING, false, "InUse",
                      "no longer declared, but running domains still use it (%s); it is removed once they stop or "
                      "no longer use it",
                      users);
        return rc_result_wait(res, RC_WAIT_USER, first, 0);
}

static const rc_kind_hooks network_hooks = {
        .cls = &rc_network_class,
        .want_active = network_want_active,
        .want_autostart = network_want_autostart,
        .complete = network_complete,
        .changed_while_active = network_changed_while_active,
        .deactivate = network_destroy,
        .removable = network_removable,
};

RC_DEFINE_OBJECT_OPS(rc_network_ops, VF_KIND_NETWORK, network_hooks);
