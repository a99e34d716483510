/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kind: Hostdev — a host PCI function handed to one domain (SR-IOV VF or plain passthrough). */
#include <string.h>

#include "schema/yaml-node.h"

static const char *const hostdev_keys[] = { "pci", "mac", "vlan", "managed", NULL };

static int read_pci(schema_file *f, const ynode *spec, schema_resource *r) {
        const char *pci;
        char canonical[13];

        int k = yget_string(f, spec, "pci", &pci);
        if (k == 0)
                ynode_error(f, spec, "pci is missing; add pci: DDDD:BB:SS.F, the host PCI address");
        if (k <= 0)
                return -EINVAL;
        if (schema_parse_pci(pci, canonical) < 0) {
                ynode_error(f, ymap_get(spec, "pci"),
                            "invalid PCI address \"%s\"; write DDDD:BB:SS.F or BB:SS.F in hex, slot 00-1f, function 0-7",
                            pci);
                return -EINVAL;
        }
        r->hostdev.pci = strdup(canonical);
        return r->hostdev.pci ? 0 : -ENOMEM;
}

static int read_mac(schema_file *f, const ynode *spec, schema_resource *r) {
        char mac[18];

        int k = yget_mac(f, spec, "mac", mac);
        if (k <= 0)
                return k;
        r->hostdev.mac = strdup(mac);
        return r->hostdev.mac ? 0 : -ENOMEM;
}

int spec_hostdev_parse(schema_file *f, const ynode *spec, schema_resource *r) {
        unsigned errors = f->n_errors;
        unsigned vlan;

        int k = ymap_check(f, spec, "Hostdev spec", hostdev_keys);
        if (k == -ENOMEM)
                return k;
        k = read_pci(f, spec, r);
        if (k == -ENOMEM)
                return k;
        k = read_mac(f, spec, r);
        if (k == -ENOMEM)
                return k;
        if (yget_uint(f, spec, "vlan", 0, 4095, &vlan) > 0)
                r->hostdev.vlan = (int) vlan;
        (void) yget_bool(f, spec, "managed", &r->hostdev.managed);
        return f->n_errors == errors ? 0 : -EINVAL;
}
