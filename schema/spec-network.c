/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kind: Network — the typed spec, its checks, and its rendering to libvirt <network> XML. */
#include <libxml/tree.h>
#include <string.h>

#include "schema/yaml-node.h"

typedef enum forward_mode {
        FORWARD_UNSET = -1,
        FORWARD_NAT,
        FORWARD_ROUTE,
        FORWARD_BRIDGE,
        FORWARD_ISOLATED,
        FORWARD_HOSTDEV,
} forward_mode;

static const char *const forward_names[] = { "nat", "route", "bridge", "isolated", "hostdev", NULL };
static const char *const network_keys[] = { "forward", "bridge", "pf", "mtu", "ipv4", "autostart", "drift", "xml", NULL };
static const char *const ipv4_keys[] = { "address", "dhcp", NULL };
static const char *const dhcp_keys[] = { "start", "end", NULL };

typedef struct ipv4_decl {
        uint32_t address, netmask;
        unsigned prefix;
        bool dhcp;
        uint32_t dhcp_start, dhcp_end;
} ipv4_decl;

typedef struct network_decl {
        int forward; /* a forward_mode */
        const char *bridge, *pf;
        unsigned mtu; /* 0: not given */
        const ynode *ipv4; /* NULL: not given */
        ipv4_decl ip;
        const ynode *xml;
} network_decl;

static uint32_t subnet_of(const ipv4_decl *ip, uint32_t addr) {
        return addr & ip->netmask;
}

static bool is_host_address(const ipv4_decl *ip, uint32_t addr) {
        uint32_t network = subnet_of(ip, ip->address);
        return subnet_of(ip, addr) == network && addr != network && addr != (network | ~ip->netmask);
}

static int read_address(schema_file *f, const ynode *ipv4, ipv4_decl *ip) {
        const char *cidr;

        int k = yget_string(f, ipv4, "address", &cidr);
        if (k == 0)
                ynode_error(f, ipv4, "ipv4.address is missing; add address: A.B.C.D/PREFIX, the host's address");
        if (k <= 0)
                return -EINVAL;
        const ynode *n = ymap_get(ipv4, "address");
        if (schema_parse_cidr(cidr, &ip->address, &ip->prefix) < 0) {
                ynode_error(f, n, "invalid address \"%s\"; write A.B.C.D/PREFIX, e.g. 192.168.110.1/24", cidr);
                return -EINVAL;
        }
        if (ip->prefix < 1 || ip->prefix > 30) {
                ynode_error(f, n, "prefix /%u leaves no room for hosts and DHCP; use a prefix from 1 to 30", ip->prefix);
                return -EINVAL;
        }
        ip->netmask = UINT32_MAX << (32 - ip->prefix);
        if (!is_host_address(ip, ip->address)) {
                ynode_error(f, n, "%s is the network or broadcast address of its subnet; give the host's own address",
                            cidr);
                return -EINVAL;
        }
        return 0;
}

static int read_dhcp_address(schema_file *f, const ynode *dhcp, const char *key, const ipv4_decl *ip,
                             uint32_t *ret) {
        const char *s;

        int k = yget_string(f, dhcp, key, &s);
        if (k == 0)
                ynode_error(f, dhcp, "dhcp.%s is missing; give both start and end", key);
        if (k <= 0)
                return -EINVAL;
        const ynode *n = ymap_get(dhcp, key);
        if (schema_parse_ipv4(s, ret) < 0) {
                ynode_error(f, n, "invalid dhcp.%s \"%s\"; write A.B.C.D", key, s);
                return -EINVAL;
        }
        if (!is_host_address(ip, *ret) || *ret == ip->address) {
                ynode_error(f, n,
                            "dhcp.%s %s is outside the subnet, its network or broadcast address, or the host's "
                            "own address; pick a free host address in the subnet",
                            key, s);
                return -EINVAL;
        }
        return 0;
}

static int read_dhcp(schema_file *f, const ynode *dhcp, ipv4_decl *ip) {
        if (ymap_check(f, dhcp, "ipv4.dhcp", dhcp_keys) < 0)
                return -EINVAL;
        int a = read_dhcp_address(f, dhcp, "start", ip, &ip->dhcp_start);
        int b = read_dhcp_address(f, dhcp, "end", ip, &ip->dhcp_end);
        if (a < 0 || b < 0)
                return -EINVAL;
        if (ip->dhcp_start > ip->dhcp_end) {
                ynode_error(f, dhcp, "dhcp.start is after dhcp.end; swap them");
                return -EINVAL;
        }
        ip->dhcp = true;
        return 0;
}

static int read_ipv4(schema_file *f, const ynode *spec, network_decl *d) {
        const ynode *dhcp;

        int k = yget_mapping(f, spec, "ipv4", &d->ipv4);
        if (k <= 0)
                return k;
        if (ymap_check(f, d->ipv4, "ipv4", ipv4_keys) < 0 || read_address(f, d->ipv4, &d->ip) < 0)
                return -EINVAL;
        k = yget_mapping(f, d->ipv4, "dhcp", &dhcp);
        return k <= 0 ? k : read_dhcp(f, dhcp, &d->ip);
}

/* The spec keys that only make sense with some forward modes. */
static void check_forward(schema_file *f, const ynode *spec, const network_decl *d) {
        if (d->forward == FORWARD_BRIDGE && !d->bridge)
                ynode_error(f, spec, "forward: bridge needs bridge: the name of an existing host bridge");
        if (d->forward == FORWARD_HOSTDEV && !d->pf)
                ynode_error(f, spec, "forward: hostdev needs pf: the host's SR-IOV physical function");
        if (d->forward != FORWARD_HOSTDEV && d->pf)
                ynode_error(f, ymap_get(spec, "pf"), "pf is only allowed with forward: hostdev; remove it");
        if (d->forward == FORWARD_HOSTDEV && d->bridge)
                ynode_error(f, ymap_get(spec, "bridge"), "bridge is not allowed with forward: hostdev; remove it");
        if ((d->forward == FORWARD_BRIDGE || d->forward == FORWARD_HOSTDEV) && d->ipv4)
                ynode_error(f, d->ipv4, "ipv4 is not allowed with forward: %s, libvirt does not address such networks",
                            forward_names[d->forward]);
}

static int render_forward(xmlNode *root, const network_decl *d) {
        if (d->forward == FORWARD_UNSET)
                return 0;
        if (d->forward == FORWARD_ISOLATED) {
                xml_remove_children(root, "forward", NULL);
                return 0;
        }
        xmlNode *fw = xml_replace(root, "forward", "mode", forward_names[d->forward], NULL);
        if (!fw)
                return -ENOMEM;
        if (d->forward == FORWARD_HOSTDEV &&
            (!xmlSetProp(fw, BAD_CAST "managed", BAD_CAST "yes") || !xml_element(fw, "pf", "dev", d->pf, NULL)))
                return -ENOMEM;
        return 0;
}

static bool is_ipv4_element(xmlNode *n) {
        if (!xml_is_element(n, "ip"))
                return false;
        _cleanup_(xml_freep) xmlChar *family = xmlGetNoNsProp(n, BAD_CAST "family");
        return !family || xmlStrEqual(family, BAD_CAST "ipv4");
}

static int render_ipv4(xmlNode *root, const ipv4_decl *ip) {
        char address[16], netmask[16], start[16], end[16];

        for (xmlNode *n = root->children, *next; n; n = next) {
                next = n->next;
                if (is_ipv4_element(n))
                        xml_unlink_free(n);
        }
        schema_format_ipv4(ip->address, address);
        schema_format_ipv4(ip->netmask, netmask);
        xmlNode *node = xml_element(root, "ip", "address", address, "netmask", netmask, NULL);
        if (!node)
                return -ENOMEM;
        if (!ip->dhcp)
                return 0;
        schema_format_ipv4(ip->dhcp_start, start);
        schema_format_ipv4(ip->dhcp_end, end);
        xmlNode *dhcp = xml_element(node, "dhcp", NULL);
        return dhcp && xml_element(dhcp, "range", "start", start, "end", end, NULL) ? 0 : -ENOMEM;
}

static int render(xmlNode *root, const char *name, const network_decl *d) {
        char mtu[16];

        xmlNode *n = xml_replace(root, "name", NULL);
        if (!n || xml_set_text(n, name) < 0 || render_forward(root, d) < 0)
                return -ENOMEM;
        if (d->bridge && !xml_replace(root, "bridge", "name", d->bridge, NULL))
                return -ENOMEM;
        snprintf(mtu, sizeof mtu, "%u", d->mtu);
        if (d->mtu && !xml_replace(root, "mtu", "size", mtu, NULL))
                return -ENOMEM;
        return d->ipv4 ? render_ipv4(root, &d->ip) : 0;
}

static int read_spec(schema_file *f, const ynode *spec, network_decl *d, schema_resource *r) {
        int k = ymap_check(f, spec, "Network spec", network_keys);
        if (k == -ENOMEM)
                return k;
        (void) yget_enum(f, spec, "forward", forward_names, &d->forward);
        (void) yget_ifname(f, spec, "bridge", &d->bridge);
        (void) yget_ifname(f, spec, "pf", &d->pf);
        (void) yget_uint(f, spec, "mtu", 68, 65535, &d->mtu);
        int drift = SCHEMA_DRIFT_CORRECT;

        (void) yget_bool(f, spec, "autostart", &r->network.autostart);
        (void) yget_enum(f, spec, "drift", schema_drift_names, &drift);
        r->drift = drift;
        d->xml = spec_xml_node(f, spec);
        return read_ipv4(f, spec, d);
}

int spec_network_parse(schema_file *f, const ynode *spec, schema_resource *r) {
        network_decl d = { .forward = FORWARD_UNSET };
        unsigned errors = f->n_errors;
        xml_origin origin;
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;

        int k = read_spec(f, spec, &d, r);
        if (k == -ENOMEM)
                return k;
        check_forward(f, spec, &d);
        if (f->n_errors != errors)
                return -EINVAL;
        k = spec_xml_base(f, spec, d.xml, "network", &origin, &doc);
        if (k < 0)
                return k;
        k = render(xmlDocGetRootElement(doc), r->name, &d);
        return k < 0 ? k : spec_xml_finish(&origin, r, doc);
}
