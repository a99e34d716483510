/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rtnetlink requests through one transport (the kernel, or a test's fake), and link state. */
#include "reconcilers/hostdev/host-internal.h"

#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

struct hd_netlink {
        hd_netlink_transport transport;
        struct nl_sock *sock; /* owned; NULL with a test's transport */
};

DEFINE_POINTER_CLEANUP(struct nl_sock, nl_socket_free);

static const struct nla_policy link_state_policy[IFLA_MAX + 1] = {
        [IFLA_CARRIER] = { .type = NLA_U8 },
};

/* libnl folds errno values into its own codes: keep those a caller can act on. */
static int errno_from_nl(int nl_error) {
        switch (-nl_error) {
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_PERM:
                return -EPERM;
        case NLE_NOACCESS:
                return -EACCES;
        default:
                return -EIO;
        }
}

static int errno_from_ack(const struct nlmsghdr *h) {
        if (!nlmsg_valid_hdr(h, sizeof(struct nlmsgerr)))
                return -EBADMSG;
        return ((const struct nlmsgerr *) nlmsg_data(h))->error;
}

/*
 * Sends req and reads until the kernel's ACK or error for it, keeping the first
 * other answer as the reply. Its errno comes straight from the nlmsgerr, which
 * libnl's own receive path would turn into a lossy NLE_* code.
 */
static int kernel_request(void *userdata, struct nl_msg *req, struct nl_msg **reply) {
        struct nl_sock *sock = userdata;
        _cleanup_(nlmsg_freep) struct nl_msg *answer = NULL;

        int r = nl_send_auto(sock, req);
        if (r < 0)
                return errno_from_nl(r);
        uint32_t seq = nlmsg_hdr(req)->nlmsg_seq;
        for (;;) {
                _cleanup_free_ unsigned char *buf = NULL;
                struct sockaddr_nl peer;

                int len = nl_recv(sock, &peer, &buf, NULL);
                if (len < 0)
                        return errno_from_nl(len);
                if (len == 0)
                        return -EIO;
                for (struct nlmsghdr *h = (struct nlmsghdr *) buf; nlmsg_ok(h, len); h = nlmsg_next(h, &len)) {
                        if (h->nlmsg_seq != seq)
                                continue;
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                r = errno_from_ack(h);
                                if (r == 0 && reply)
                                        *reply = TAKE_PTR(answer);
                                return r;
                        }
                        if (!answer && !(answer = nlmsg_convert(h)))
                                return -ENOMEM;
                }
        }
}

int hd_netlink_open_with_transport(const hd_netlink_transport *t, hd_netlink **ret) {
        hd_netlink *nl = calloc(1, sizeof(hd_netlink));

        if (!nl)
                return -ENOMEM;
        nl->transport = *t;
        *ret = nl;
        return 0;
}

int hd_netlink_open(hd_netlink **ret) {
        _cleanup_(nl_socket_freep) struct nl_sock *sock = nl_socket_alloc();

        if (!sock)
                return -ENOMEM;
        int r = nl_connect(sock, NETLINK_ROUTE);
        if (r < 0)
                return errno_from_nl(r);
        /* The VF list of a big PF exceeds a page: size each read to its message. */
        nl_socket_enable_msg_peek(sock);

        hd_netlink_transport kernel = { .request = kernel_request, .userdata = sock };
        r = hd_netlink_open_with_transport(&kernel, ret);
        if (r < 0)
                return r;
        (*ret)->sock = TAKE_PTR(sock);
        return 0;
}

void hd_netlink_close(hd_netlink *nl) {
        if (!nl)
                return;
        nl_socket_free(nl->sock);
        free(nl);
}

int hd_netlink_request(hd_netlink *nl, struct nl_msg *req, struct nl_msg **reply) {
        if (reply)
                *reply = NULL;
        int r = nl->transport.request(nl->transport.userdata, req, reply);
        if (r < 0)
                return r;
        return reply && !*reply ? -EBADMSG : 0;
}

int hd_link_msg_new(int type, const char *ifname, struct nl_msg **ret) {
        struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };

        if (!ifname || !ifname[0] || strlen(ifname) >= IFNAMSIZ)
                return -EINVAL;
        _cleanup_(nlmsg_freep) struct nl_msg *m = nlmsg_alloc_simple(type, NLM_F_REQUEST | NLM_F_ACK);
        if (!m)
                return -ENOMEM;
        if (nlmsg_append(m, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 || nla_put_string(m, IFLA_IFNAME, ifname) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(m);
        return 0;
}

static int parse_link_state(struct nlmsghdr *nlh, bool *admin_up, bool *carrier) {
        struct nlattr *tb[IFLA_MAX + 1];

        if (nlh->nlmsg_type != RTM_NEWLINK ||
            nlmsg_parse(nlh, sizeof(struct ifinfomsg), tb, IFLA_MAX, link_state_policy) < 0)
                return -EBADMSG;
        const struct ifinfomsg *ifi = nlmsg_data(nlh);
        *admin_up = ifi->ifi_flags & IFF_UP;
        *carrier = tb[IFLA_CARRIER] && nla_get_u8(tb[IFLA_CARRIER]);
        return 0;
}

int hd_link_state(hd_netlink *nl, const char *ifname, bool *admin_up, bool *carrier) {
        _cleanup_(nlmsg_freep) struct nl_msg *req = NULL, *reply = NULL;

        int r = hd_link_msg_new(RTM_GETLINK, ifname, &req);
        if (r < 0)
                return r;
        r = hd_netlink_request(nl, req, &reply);
        if (r < 0)
                return r;
        return parse_link_state(nlmsg_hdr(reply), admin_up, carrier);
}

int hd_link_set_address(hd_netlink *nl, const char *ifname, const uint8_t *mac) {
        _cleanup_(nlmsg_freep) struct nl_msg *req = NULL;

        int r = hd_link_msg_new(RTM_SETLINK, ifname, &req);
        if (r < 0)
                return r;
        if (nla_put(req, IFLA_ADDRESS, HD_MAC_LEN, mac) < 0)
                return -ENOMEM;
        return hd_netlink_request(nl, req, NULL);
}
