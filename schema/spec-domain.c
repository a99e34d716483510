/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kind: Domain — the typed spec, its checks, and its rendering to libvirt <domain> XML.
 *
 * A disk is a file, a volume or a cloud-init seed. {volume: POOL/NAME} renders
 *
 *   <disk type='volume' device='disk'>
 *     <driver name='qemu' type='FORMAT'/>        only when the item gives format
 *     <source pool='POOL' volume='NAME'/>
 *     <target dev='vda' bus='virtio'/>
 *   </disk>
 *
 * and the domain reconciler fills in the driver type from libvirt's volume.
 * {cloudInit: NAME} renders a read-only CD-ROM whose pool the domain does not
 * know (the seed's spec.pool does):
 *
 *   <disk type='volume' device='cdrom'>
 *     <driver name='qemu' type='raw'/>
 *     <source pool='' volume='NAME.cidata.iso'
 *             xmlns:vf='https://virtform.org/xmlns/policy/1' vf:cloudinit='NAME'/>
 *     <target dev='sda' bus='sata'/>             only when the item gives bus
 *     <readonly/>
 *   </disk>
 *
 * The reconciler sets pool to the seed's, removes vf:cloudinit, and without a
 * <target> adds one: bus sata on q35 machines, ide otherwise, and a free dev.
 */
#include <libxml/tree.h>
#include <inttypes.h>
#include <string.h>

#include "schema/yaml-node.h"

static const char *const domain_keys[] = {
        "memory", "vcpus", "state", "autostart", "restart", "drift", "type", "arch", "disks", "interfaces", "hostdevs", "xml", NULL,
};
static const char *const disk_keys[] = { "file", "volume", "cloudInit", "bus", "format", "readonly", "device", NULL };
static const char *const interface_keys[] = { "network", "bridge", "hostdev", "mac", "model", NULL };
static const char *const type_names[] = { "kvm", "qemu", "test", NULL };
static const char *const bus_names[] = { "virtio", "sata", "scsi", "ide", NULL };
static const char *const device_names[] = { "disk", "cdrom", NULL };

typedef enum disk_device { DEVICE_DISK, DEVICE_CDROM } disk_device;

/* Where a disk's data is; also the item keys that select it. */
typedef enum disk_type { DISK_FILE, DISK_VOLUME, DISK_CLOUDINIT, _DISK_TYPE_MAX } disk_type;
static const char *const disk_types[] = { "file", "volume", "cloudInit", NULL };

/* Target names come per family: vda… for virtio, sda… shared by sata and scsi, hda… for ide. */
static const unsigned bus_family[] = { 0, 1, 1, 2 };
static const char *const family_prefix[] = { "vd", "sd", "hd" };

/* The three ways an interface connects; also the spec keys that select them. */
typedef enum interface_type { INTERFACE_NETWORK, INTERFACE_BRIDGE, INTERFACE_HOSTDEV, _INTERFACE_MAX } interface_type;
static const char *const interface_types[] = { "network", "bridge", "hostdev", NULL };

typedef struct disk_decl {
        const ynode *node;
        disk_type type;
        const char *source; /* the path, POOL/NAME or the CloudInit's name */
        int bus, format, device; /* bus -1: not given; format -1: not given (volume and cloud-init disks) */
        bool readonly;
} disk_decl;

typedef struct interface_decl {
        interface_type type;
        const char *source;
        char mac[18]; /* empty: libvirt generates one */
        const char *model;
} interface_decl;

typedef struct domain_decl {
        uint64_t memory_kib; /* 0: not given */
        unsigned vcpus; /* 0: not given */
        int type; /* -1: not given, the reconciler picks it */
        const char *arch;
        disk_decl *disks;
        size_t n_disks;
        interface_decl *interfaces;
        size_t n_interfaces;
        const ynode *xml;
} domain_decl;

static void domain_decl_done(domain_decl *d) {
        free(d->disks);
        free(d->interfaces);
}

static int read_memory(schema_file *f, const ynode *spec, domain_decl *d) {
        const char *s;

        int k = yget_string(f, spec, "memory", &s);
        if (k == 0 && !d->xml)
                ynode_error(f, spec, "memory is missing; add memory: SIZE, e.g. 2GiB");
        if (k <= 0)
                return d->xml ? k : -EINVAL;
        k = schema_parse_memory(s, &d->memory_kib);
        if (k == -EINVAL)
                ynode_error(f, ymap_get(spec, "memory"),
                            "invalid memory \"%s\"; write an integer and a unit (KiB, MiB, GiB or TiB), e.g. 2GiB", s);
        else if (k == -ERANGE)
                ynode_error(f, ymap_get(spec, "memory"), "memory %s is out of range; give 1MiB to 16TiB", s);
        return k;
}

/* Which one of file, volume or cloudInit the disk names; exactly one is allowed. */
static int disk_type_of(schema_file *f, const ynode *item, disk_type *ret) {
        unsigned n = 0;

        for (disk_type t = 0; t < _DISK_TYPE_MAX; t++)
                if (ymap_get(item, disk_types[t])) {
                        *ret = t;
                        n++;
                }
        if (n == 1)
                return 0;
        ynode_error(f, item, "a disk needs exactly one of file: /absolute/path, volume: POOL/NAME or cloudInit: NAME; "
                    "it has %u", n);
        return -EINVAL;
}

static void check_disk_source(schema_file *f, const ynode *item, const disk_decl *disk) {
        const ynode *at = ymap_get(item, disk_types[disk->type]);

        if (disk->type == DISK_FILE && disk->source[0] != '/')
                ynode_error(f, at, "disk file \"%s\" is not an absolute path; start it with /", disk->source);
        if (disk->type == DISK_VOLUME && !schema_volume_ref_is_valid(disk->source))
                ynode_error(f, at, "invalid disk volume \"%s\"; write POOL/NAME, where " SCHEMA_NAME_RULE,
                            disk->source);
        if (disk->type != DISK_CLOUDINIT)
                return;
        /* A seed is a read-only raw CD-ROM, whatever the item would make of it. */
        for (const char *const *key = (const char *const[]) { "format", "device", "readonly", NULL }; *key; key++)
                if (ymap_get(item, *key))
                        ynode_error(f, ymap_get(item, *key),
                                    "%s is not allowed on a cloudInit disk, which is always a read-only raw CD-ROM; "
                                    "remove it", *key);
}

/* The seeds' names are taken from the rendered XML (schema_resource_take_xml()); here they only have to be unique. */
static void check_seed_unique(schema_file *f, const ynode *item, const domain_decl *d, const disk_decl *disk) {
        for (const disk_decl *other = d->disks; other < disk; other++)
                if (other->type == DISK_CLOUDINIT && other->source && strcmp(other->source, disk->source) == 0) {
                        ynode_error(f, ymap_get(item, "cloudInit"),
                                    "cloudInit \"%s\" is given twice for this domain; attach a seed once",
                                    disk->source);
                        return;
                }
}

static int read_disk(schema_file *f, const ynode *item, domain_decl *d) {
        disk_decl *disk = &d->disks[d->n_disks++];
        unsigned errors = f->n_errors;

        *disk = (disk_decl) { .node = item, .bus = -1, .format = -1 };
        if (ymap_check(f, item, "disk", disk_keys) < 0 || disk_type_of(f, item, &disk->type) < 0)
                return -EINVAL;
        const char *key = disk_types[disk->type];
        int k = disk->type == DISK_CLOUDINIT ? yget_name(f, item, key, &disk->source)
                                             : yget_string(f, item, key, &disk->source);
        if (k > 0)
                check_disk_source(f, item, disk);
        if (k > 0 && disk->type == DISK_CLOUDINIT)
                check_seed_unique(f, item, d, disk);
        (void) yget_enum(f, item, "bus", bus_names, &disk->bus);
        (void) yget_enum(f, item, "format", schema_volume_format_names, &disk->format);
        (void) yget_enum(f, item, "device", device_names, &disk->device);
        (void) yget_bool(f, item, "readonly", &disk->readonly);
        /*
         * A volume's format is libvirt's to tell, and a seed's bus the machine type's: the reconciler fills
         * them in. CD-ROM images are ISO files.
         */
        if (disk->format < 0 && disk->type != DISK_VOLUME)
                disk->format = disk->device == DEVICE_CDROM || disk->type == DISK_CLOUDINIT ? SCHEMA_VOLUME_RAW
                                                                                           : SCHEMA_VOLUME_QCOW2;
        if (disk->bus < 0 && disk->type != DISK_CLOUDINIT)
                disk->bus = 0;
        return f->n_errors == errors ? 0 : -EINVAL;
}

/* Which one of network, bridge or hostdev the interface names; exactly one is allowed. */
static int interface_type_of(schema_file *f, const ynode *item, interface_type *ret) {
        unsigned n = 0;

        for (interface_type t = 0; t < _INTERFACE_MAX; t++)
                if (ymap_get(item, interface_types[t])) {
                        *ret = t;
                        n++;
                }
        if (n == 1)
                return 0;
        ynode_error(f, item, "an interface needs exactly one of network, bridge or hostdev; it has %u", n);
        return -EINVAL;
}

static bool mac_is_taken(const domain_decl *d, const char *mac) {
        for (size_t i = 0; i + 1 < d->n_interfaces; i++)
                if (strcmp(d->interfaces[i].mac, mac) == 0)
                        return true;
        return false;
}

static int read_interface_extras(schema_file *f, const ynode *item, domain_decl *d, interface_decl *iface) {
        if (iface->type == INTERFACE_HOSTDEV && (ymap_get(item, "mac") || ymap_get(item, "model"))) {
                ynode_error(f, item, "mac and model are not allowed on a hostdev interface; set mac on the Hostdev");
                return -EINVAL;
        }
        if (yget_mac(f, item, "mac", iface->mac) > 0 && mac_is_taken(d, iface->mac)) {
                ynode_error(f, ymap_get(item, "mac"), "MAC address %s is used twice in this domain; change one",
                            iface->mac);
                return -EINVAL;
        }
        iface->model = "virtio";
        if (yget_string(f, item, "model", &iface->model) > 0 && !schema_token_is_valid(iface->model)) {
                ynode_error(f, ymap_get(item, "model"),
                            "invalid model \"%s\"; use a libvirt model name such as virtio or e1000e", iface->model);
                return -EINVAL;
        }
        return 0;
}

static int add_hostdev(schema_file *f, schema_resource *r, const ynode *at, const char *name) {
        if (vf_strv_contains(r->domain.hostdevs, name)) {
                ynode_error(f, at, "hostdev \"%s\" is given twice for this domain; a device attaches once", name);
                return -EINVAL;
        }
        return vf_strv_push(&r->domain.hostdevs, name);
}

static int read_interface(schema_file *f, const ynode *item, domain_decl *d, schema_resource *r) {
        interface_decl *iface = &d->interfaces[d->n_interfaces++];
        unsigned errors = f->n_errors;

        *iface = (interface_decl) {};
        if (ymap_check(f, item, "interface", interface_keys) < 0 || interface_type_of(f, item, &iface->type) < 0)
                return -EINVAL;
        const char *key = interface_types[iface->type];
        int k = iface->type == INTERFACE_BRIDGE ? yget_ifname(f, item, key, &iface->source)
                                                : yget_name(f, item, key, &iface->source);
        if (k > 0 && iface->type == INTERFACE_HOSTDEV)
                k = add_hostdev(f, r, ymap_get(item, key), iface->source);
        if (k == -ENOMEM)
                return k;
        k = read_interface_extras(f, item, d, iface);
        return k == -ENOMEM ? k : f->n_errors == errors ? 0 : -EINVAL;
}

static int read_hostdevs(schema_file *f, const ynode *spec, schema_resource *r) {
        const ynode *list;

        int k = yget_sequence(f, spec, "hostdevs", &list);
        for (size_t i = 0; k > 0 && i < list->n_children; i++) {
                const ynode *item = list->children[i];
                if (item->kind != YNODE_SCALAR || !schema_name_is_valid(item->scalar)) {
                        ynode_error(f, item, "hostdevs lists Hostdev names: " SCHEMA_NAME_RULE);
                        continue;
                }
                if (add_hostdev(f, r, item, item->scalar) == -ENOMEM)
                        return -ENOMEM;
        }
        return k;
}

static int read_disks(schema_file *f, const ynode *spec, domain_decl *d) {
        const ynode *list;

        int k = yget_sequence(f, spec, "disks", &list);
        if (k <= 0)
                return k;
        d->disks = calloc(list->n_children, sizeof(disk_decl));
        if (!d->disks && list->n_children > 0)
                return -ENOMEM;
        for (size_t i = 0; i < list->n_children; i++)
                (void) read_disk(f, list->children[i], d);
        return 0;
}

static int read_interfaces(schema_file *f, const ynode *spec, domain_decl *d, schema_resource *r) {
        const ynode *list;

        int k = yget_sequence(f, spec, "interfaces", &list);
        if (k <= 0)
                return k;
        d->interfaces = calloc(list->n_children, sizeof(interface_decl));
        if (!d->interfaces && list->n_children > 0)
                return -ENOMEM;
        for (size_t i = 0; i < list->n_children; i++)
                if (read_interface(f, list->children[i], d, r) == -ENOMEM)
                        return -ENOMEM;
        return 0;
}

static void read_policy(schema_file *f, const ynode *spec, schema_resource *r) {
        int state = SCHEMA_DOMAIN_RUNNING, restart = SCHEMA_RESTART_NEVER, drift = SCHEMA_DRIFT_CORRECT;

        (void) yget_enum(f, spec, "state", schema_state_names, &state);
        (void) yget_enum(f, spec, "restart", schema_restart_names, &restart);
        (void) yget_enum(f, spec, "drift", schema_drift_names, &drift);
        r->drift = drift;
        (void) yget_bool(f, spec, "autostart", &r->domain.autostart);
        r->domain.state = state;
        r->domain.restart = restart;
}

/* Interfaces come before spec.hostdevs, whatever the key order, so the hash does not depend on it. */
static int read_spec(schema_file *f, const ynode *spec, domain_decl *d, schema_resource *r) {
        if (ymap_check(f, spec, "Domain spec", domain_keys) == -ENOMEM)
                return -ENOMEM;
        d->xml = spec_xml_node(f, spec);
        (void) read_memory(f, spec, d);
        (void) yget_uint(f, spec, "vcpus", 1, 4096, &d->vcpus);
        (void) yget_enum(f, spec, "type", type_names, &d->type);
        if (yget_string(f, spec, "arch", &d->arch) > 0 && !schema_token_is_valid(d->arch))
                ynode_error(f, ymap_get(spec, "arch"), "invalid arch \"%s\"; use a libvirt architecture such as x86_64",
                            d->arch);
        read_policy(f, spec, r);
        if (read_disks(f, spec, d) == -ENOMEM || read_interfaces(f, spec, d, r) == -ENOMEM)
                return -ENOMEM;
        return read_hostdevs(f, spec, r);
}

/* ---- rendering ------------------------------------------------------------ */

typedef struct target_names {
        uint32_t used[ELEMENTSOF(family_prefix)]; /* bit n: letter 'a' + n is taken */
} target_names;

/* Targets the base document already uses stay theirs. */
static void targets_mark_used(target_names *t, xmlNode *devices) {
        for (xmlNode *n = devices->children; n; n = n->next) {
                xmlNode *target = xml_is_element(n, "disk") ? xml_child(n, "target") : NULL;
                _cleanup_(xml_freep) xmlChar *dev = target ? xmlGetNoNsProp(target, BAD_CAST "dev") : NULL;
                if (!dev || xmlStrlen(dev) != 3 || dev[2] < 'a' || dev[2] > 'z')
                        continue;
                for (size_t i = 0; i < ELEMENTSOF(family_prefix); i++)
                        if (strncmp((const char *) dev, family_prefix[i], 2) == 0)
                                t->used[i] |= UINT32_C(1) << (dev[2] - 'a');
        }
}

static int targets_take(target_names *t, unsigned family, char ret[4]) {
        for (unsigned letter = 0; letter < 26; letter++)
                if (!(t->used[family] & (UINT32_C(1) << letter))) {
                        t->used[family] |= UINT32_C(1) << letter;
                        snprintf(ret, 4, "%s%c", family_prefix[family], 'a' + letter);
                        return 0;
                }
        return -ENOSPC;
}

/* <source> of a volume or seed disk; a seed's carries the marker the domain reconciler resolves. */
static xmlNode *render_volume_source(xmlNode *disk, const disk_decl *d) {
        if (d->type == DISK_VOLUME) {
                const char *slash = strchr(d->source, '/');
                _cleanup_free_ char *pool = strndup(d->source, (size_t) (slash - d->source));
                return pool ? xml_element(disk, "source", "pool", pool, "volume", slash + 1, NULL) : NULL;
        }
        _cleanup_free_ char *volume = vf_printf("%s" SCHEMA_CLOUDINIT_SUFFIX, d->source);
        xmlNode *source = volume ? xml_element(disk, "source", "pool", "", "volume", volume, NULL) : NULL;
        xmlNs *ns = source ? xmlNewNs(source, BAD_CAST SCHEMA_POLICY_NS, BAD_CAST "vf") : NULL;
        return ns && xmlNewNsProp(source, ns, BAD_CAST "cloudinit", BAD_CAST d->source) ? source : NULL;
}

static int render_source(xmlNode *n, const disk_decl *disk) {
        if (disk->format >= 0 &&
            !xml_element(n, "driver", "name", "qemu", "type", schema_volume_format_names[disk->format], NULL))
                return -ENOMEM;
        if (disk->type == DISK_FILE)
                return xml_element(n, "source", "file", disk->source, NULL) ? 0 : -ENOMEM;
        return render_volume_source(n, disk) ? 0 : -ENOMEM;
}

static int render_disk(schema_file *f, xmlNode *devices, const disk_decl *disk, target_names *t) {
        bool seed = disk->type == DISK_CLOUDINIT;
        const char *device = seed ? "cdrom" : device_names[disk->device];
        char dev[4];

        if (disk->bus >= 0 && targets_take(t, bus_family[disk->bus], dev) < 0) {
                ynode_error(f, disk->node, "more than 26 disks named %s*; move some to another bus",
                            family_prefix[bus_family[disk->bus]]);
                return -EINVAL;
        }
        xmlNode *n = xml_element(devices, "disk", "type", disk->type == DISK_FILE ? "file" : "volume", "device",
                                 device, NULL);
        if (!n || render_source(n, disk) < 0)
                return -ENOMEM;
        if (disk->bus >= 0 && !xml_element(n, "target", "dev", dev, "bus", bus_names[disk->bus], NULL))
                return -ENOMEM;
        return (disk->readonly || seed) && !xml_element(n, "readonly", NULL) ? -ENOMEM : 0;
}

/* Hostdev interfaces are not rendered: the reconciler does that once it has resolved the device. */
static int render_interface(xmlNode *devices, const interface_decl *iface) {
        if (iface->type == INTERFACE_HOSTDEV)
                return 0;
        const char *type = interface_types[iface->type];
        xmlNode *n = xml_element(devices, "interface", "type", type, NULL);
        if (!n || (iface->mac[0] && !xml_element(n, "mac", "address", iface->mac, NULL)) ||
            !xml_element(n, "source", type, iface->source, NULL) ||
            !xml_element(n, "model", "type", iface->model, NULL))
                return -ENOMEM;
        return 0;
}

static int render_devices(schema_file *f, xmlNode *root, const domain_decl *d) {
        target_names targets = {};

        xmlNode *devices = xml_child_or_new(root, "devices");
        if (!devices)
                return -ENOMEM;
        targets_mark_used(&targets, devices);
        for (size_t i = 0; i < d->n_disks; i++) {
                int k = render_disk(f, devices, &d->disks[i], &targets);
                if (k < 0)
                        return k;
        }
        for (size_t i = 0; i < d->n_interfaces; i++)
                if (render_interface(devices, &d->interfaces[i]) < 0)
                        return -ENOMEM;
        return 0;
}

static int render_text(xmlNode *root, const char *name, const char *text, const char *unit) {
        xmlNode *n = unit ? xml_replace(root, name, "unit", unit, NULL) : xml_replace(root, name, NULL);
        return n ? xml_set_text(n, text) : -ENOMEM;
}

/* A base document keeps its <os> unless arch is given; a new one gets the plain hvm type. */
static int render_os(xmlNode *root, const domain_decl *d) {
        bool had_os = xml_child(root, "os");
        if (had_os && !d->arch)
                return 0;
        xmlNode *os = xml_child_or_new(root, "os");
        xmlNode *type = os ? xml_child(os, "type") : NULL;
        if (os && !type && (!(type = xmlNewChild(os, NULL, BAD_CAST "type", NULL)) || xml_set_text(type, "hvm") < 0))
                return -ENOMEM;
        if (!type || (d->arch && !xmlSetProp(type, BAD_CAST "arch", BAD_CAST d->arch)))
                return -ENOMEM;
        return 0;
}

static int render(schema_file *f, xmlNode *root, const char *name, const domain_decl *d) {
        char number[32];

        if (render_text(root, "name", name, NULL) < 0)
                return -ENOMEM;
        if (d->memory_kib) {
                snprintf(number, sizeof number, "%" PRIu64, d->memory_kib);
                if (render_text(root, "memory", number, "KiB") < 0)
                        return -ENOMEM;
                xml_remove_children(root, "currentMemory", NULL);
        }
        /* A base document keeps its own <vcpu> unless vcpus is given. */
        snprintf(number, sizeof number, "%u", d->vcpus ? d->vcpus : 1);
        if ((d->vcpus || !d->xml) && render_text(root, "vcpu", number, NULL) < 0)
                return -ENOMEM;
        if (d->type >= 0 && !xmlSetProp(root, BAD_CAST "type", BAD_CAST type_names[d->type]))
                return -ENOMEM;
        if (render_os(root, d) < 0)
                return -ENOMEM;
        return render_devices(f, root, d);
}

static int add_hostdev_depends(schema_resource *r) {
        for (size_t i = 0; r->domain.hostdevs && r->domain.hostdevs[i]; i++) {
                _cleanup_free_ char *key = schema_key(VF_KIND_HOSTDEV, r->domain.hostdevs[i]);
                if (!key || vf_strv_push(&r->depends, key) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int spec_domain_parse(schema_file *f, const ynode *spec, schema_resource *r) {
        _cleanup_(domain_decl_done) domain_decl d = { .type = -1 };
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        unsigned errors = f->n_errors;
        xml_origin origin;

        int k = read_spec(f, spec, &d, r);
        if (k == -ENOMEM)
                return k;
        if (f->n_errors != errors)
                return -EINVAL;
        k = spec_xml_base(f, spec, d.xml, "domain", &origin, &doc);
        if (k < 0)
                return k;
        k = render(f, xmlDocGetRootElement(doc), r->name, &d);
        if (k < 0)
                return k;
        k = spec_xml_finish(&origin, r, doc);
        return k < 0 ? k : add_hostdev_depends(r);
}
