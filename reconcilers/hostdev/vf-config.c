/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A VF's MAC and VLAN, read and set through its PF (sriov.md, "Setting and restoring"). */
#include "reconcilers/hostdev/host-internal.h"

#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>

#define VLAN_ID_MAX 4095

/* Drivers that refuse an all-zero MAC accept this locally administered stand-in. */
static const uint8_t zero_mac_stand_in[HD_MAC_LEN] = { 0x02 };

static const struct nla_policy link_policy[IFLA_MAX + 1] = {
        [IFLA_VFINFO_LIST] = { .type = NLA_NESTED },
};

static const struct nla_policy vf_policy[IFLA_VF_MAX + 1] = {
        [IFLA_VF_MAC] = { .minlen = sizeof(struct ifla_vf_mac) },
        [IFLA_VF_VLAN] = { .minlen = sizeof(struct ifla_vf_vlan) },
};

static bool vf_args_valid(int vf_index, int vlan) {
        return vf_index >= 0 && vlan >= -1 && vlan <= VLAN_ID_MAX;
}

static int put_vf_info(struct nl_msg *m, int vf_index, const uint8_t *mac, int vlan) {
        struct nlattr *list = nla_nest_start(m, IFLA_VFINFO_LIST);
        struct nlattr *info = list ? nla_nest_start(m, IFLA_VF_INFO) : NULL;

        if (!info)
                return -ENOMEM;
        if (mac) {
                struct ifla_vf_mac vf_mac = { .vf = vf_index };
                memcpy(vf_mac.mac, mac, HD_MAC_LEN);
                if (nla_put(m, IFLA_VF_MAC, sizeof vf_mac, &vf_mac) < 0)
                        return -ENOMEM;
        }
        if (vlan >= 0) {
                struct ifla_vf_vlan vf_vlan = { .vf = vf_index, .vlan = vlan, .qos = 0 };
                if (nla_put(m, IFLA_VF_VLAN, sizeof vf_vlan, &vf_vlan) < 0)
                        return -ENOMEM;
        }
        nla_nest_end(m, info);
        nla_nest_end(m, list);
        return 0;
}

int hd_vf_build_setlink(const char *pf_netdev, int vf_index, const uint8_t *mac, int vlan, struct nl_msg **ret) {
        _cleanup_(nlmsg_freep) struct nl_msg *m = NULL;

        if (!vf_args_valid(vf_index, vlan) || (!mac && vlan < 0))
                return -EINVAL;
        int r = hd_link_msg_new(RTM_SETLINK, pf_netdev, &m);
        if (r < 0)
                return r;
        r = put_vf_info(m, vf_index, mac, vlan);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* 0 and the config when info describes VF vf_index, -ENOENT when another VF. */
static int parse_vf_info(struct nlattr *info, int vf_index, hd_vf_config *ret) {
        struct nlattr *tb[IFLA_VF_MAX + 1];

        if (nla_parse_nested(tb, IFLA_VF_MAX, info, vf_policy) < 0 || !tb[IFLA_VF_MAC] || !tb[IFLA_VF_VLAN])
                return -EBADMSG;
        const struct ifla_vf_mac *mac = nla_data(tb[IFLA_VF_MAC]);
        const struct ifla_vf_vlan *vlan = nla_data(tb[IFLA_VF_VLAN]);
        if (mac->vf != (uint32_t) vf_index)
                return -ENOENT;
        /* A VLAN ID is 12 bits: anything else would be saved, then fail every restore. */
        if (vlan->vlan > VLAN_ID_MAX)
                return -EBADMSG;
        memcpy(ret->mac, mac->mac, HD_MAC_LEN);
        ret->vlan = (int) vlan->vlan;
        return 0;
}

int hd_vf_parse_link(struct nlmsghdr *nlh, int vf_index, hd_vf_config *ret) {
        struct nlattr *tb[IFLA_MAX + 1], *info;
        int remaining;

        if (nlh->nlmsg_type != RTM_NEWLINK ||
            nlmsg_parse(nlh, sizeof(struct ifinfomsg), tb, IFLA_MAX, link_policy) < 0)
                return -EBADMSG;
        if (!tb[IFLA_VFINFO_LIST])
                return -ENOENT;
        nla_for_each_nested(info, tb[IFLA_VFINFO_LIST], remaining) {
                if (nla_type(info) != IFLA_VF_INFO)
                        continue;
                int r = parse_vf_info(info, vf_index, ret);
                if (r != -ENOENT)
                        return r;
        }
        return -ENOENT;
}

int hd_vf_get(hd_netlink *nl, const char *pf_netdev, int vf_index, hd_vf_config *ret) {
        _cleanup_(nlmsg_freep) struct nl_msg *req = NULL, *reply = NULL;

        int r = hd_link_msg_new(RTM_GETLINK, pf_netdev, &req);
        if (r < 0)
                return r;
        /* Without this filter the kernel leaves the VF list out of its answer. */
        if (nla_put_u32(req, IFLA_EXT_MASK, RTEXT_FILTER_VF) < 0)
                return -ENOMEM;
        r = hd_netlink_request(nl, req, &reply);
        if (r < 0)
                return r;
        return hd_vf_parse_link(nlmsg_hdr(reply), vf_index, ret);
}

static int send_vf_setlink(hd_netlink *nl, const char *pf_netdev, int vf_index, const uint8_t *mac, int vlan) {
        _cleanup_(nlmsg_freep) struct nl_msg *req = NULL;

        int r = hd_vf_build_setlink(pf_netdev, vf_index, mac, vlan, &req);
        if (r < 0)
                return r;
        return hd_netlink_request(nl, req, NULL);
}

static bool is_zero_mac(const uint8_t *mac) {
        static const uint8_t zero[HD_MAC_LEN];

        return memcmp(mac, zero, HD_MAC_LEN) == 0;
}

static int set_vf_mac(hd_netlink *nl, const char *pf_netdev, int vf_index, const uint8_t *mac) {
        int r = send_vf_setlink(nl, pf_netdev, vf_index, mac, -1);

        if (r == -EINVAL && is_zero_mac(mac))
                r = send_vf_setlink(nl, pf_netdev, vf_index, zero_mac_stand_in, -1);
        return r;
}

static int set_vf_vlan(hd_netlink *nl, const char *pf_netdev, int vf_index, int vlan) {
        int r = send_vf_setlink(nl, pf_netdev, vf_index, NULL, vlan);

        /* Drivers that never had a VLAN on the VF may refuse to clear it: it is clear already. */
        return r == -EPERM && vlan == 0 ? 0 : r;
}

bool hd_vf_mac_holds(const uint8_t *held, const uint8_t *mac) {
        return memcmp(held, mac, HD_MAC_LEN) == 0 || (is_zero_mac(mac) && memcmp(held, zero_mac_stand_in, HD_MAC_LEN) == 0);
}

int hd_vf_set(hd_netlink *nl, const char *pf_netdev, int vf_index, const uint8_t *mac, int vlan) {
        /* Checked before the first request, so that bad arguments never leave a half-made change. */
        if (!vf_args_valid(vf_index, vlan))
                return -EINVAL;
        if (mac) {
                int r = set_vf_mac(nl, pf_netdev, vf_index, mac);
                if (r < 0)
                        return r;
        }
        return vlan >= 0 ? set_vf_vlan(nl, pf_netdev, vf_index, vlan) : 0;
}
