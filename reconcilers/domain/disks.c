/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A domain's disks where the file leaves something to the host: the pool of
 * a cloud-init seed's cdrom, the bus and name of a disk without a target, and
 * the format of a volume whose disk gives none.
 *
 * Drift projects libvirt's XML onto the desired document completed as it is
 * defined, so each pass must complete the same document the same way: what
 * is picked here depends on the document and on what the host says of its
 * machines and volumes, never on what libvirt made of an earlier define.
 */
#include "reconcilers/domain/domain-internal.h"

#include <libvirt/virterror.h>
#include <string.h>

DEFINE_POINTER_CLEANUP(virStoragePool, virStoragePoolFree);
DEFINE_POINTER_CLEANUP(virStorageVol, virStorageVolFree);

static void xml_freep(xmlChar **p) {
        if (*p)
                xmlFree(*p);
}

static bool prop_is(xmlNode *n, const char *name, const char *value) {
        _cleanup_(xml_freep) xmlChar *v = xmlGetNoNsProp(n, BAD_CAST name);
        return v && xmlStrcmp(v, BAD_CAST value) == 0;
}

/* Sets what a domain waits for before it can be defined: 1, as rc_domain_complete_disks() returns it. */
static int wait_for(rc_result *res, vf_kind kind, const char *name, const char *why) {
        _cleanup_free_ char *key = schema_key(kind, name);

        rc_result_set(res, RC_WAITING, false, "DependencyNotReady", "waiting: %s %s %s", vf_kind_to_string(kind),
                      name, why);
        int r = key ? rc_result_wait(res, RC_WAIT_DEPENDENCY, key, 0) : -ENOMEM;
        return r < 0 ? r : 1;
}

/* ---- cloud-init seeds ----------------------------------------------------------- */

static const schema_resource *find_cloudinit(const rc_request *req, const char *name) {
        for (size_t i = 0; i < req->n_cloudinits; i++)
                if (strcmp(req->cloudinits[i]->name, name) == 0)
                        return req->cloudinits[i];
        return NULL;
}

/* The declaration went with the attribute that used it. */
static void drop_namespace(xmlNode *n, const char *href) {
        for (xmlNs **p = &n->nsDef; *p;) {
                xmlNs *ns = *p;
                if (xmlStrcmp(ns->href, BAD_CAST href) != 0) {
                        p = &ns->next;
                        continue;
                }
                *p = ns->next;
                ns->next = NULL;
                xmlFreeNs(ns);
        }
}

/*
 * The file names a seed, not where it is: its volume lies in the pool its
 * CloudInit says, and moves with it. libvirt never sees vf:cloudinit.
 */
static int resolve_cloudinit(const rc_request *req, xmlNode *source, rc_result *res) {
        xmlAttr *attr = source ? xmlHasNsProp(source, BAD_CAST "cloudinit", BAD_CAST RC_POLICY_NS) : NULL;

        if (!attr)
                return 0;
        _cleanup_(xml_freep) xmlChar *name = xmlNodeGetContent((xmlNode *) attr);
        if (!name)
                return -ENOMEM;
        const schema_resource *seed = find_cloudinit(req, (const char *) name);
        if (!seed)
                return wait_for(res, VF_KIND_CLOUDINIT, (const char *) name,
                                "is not declared by any file; declare it, or remove the disk that names it");
        if (!xmlSetProp(source, BAD_CAST "pool", BAD_CAST seed->cloudinit.pool))
                return -ENOMEM;
        xmlRemoveProp(attr);
        drop_namespace(source, RC_POLICY_NS);
        return 0;
}

/* ---- targets ------------------------------------------------------------------- */

typedef struct disk_targets {
        char **used; /* every target name the document gives */
        const char *cdrom_bus; /* picked on the first cdrom that needs it */
} disk_targets;

static void disk_targets_done(disk_targets *t) {
        vf_strv_free(t->used);
}

/* Names come per bus family, as libvirt's: vd* for virtio, sd* shared by sata, scsi and usb, hd* for ide. */
static const char *target_prefix(const char *bus) {
        static const char *const prefixes[][2] = {
                { "virtio", "vd" }, { "sata", "sd" }, { "scsi", "sd" }, { "usb", "sd" }, { "ide", "hd" },
        };

        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strcmp(bus, prefixes[i][0]) == 0)
                        return prefixes[i][1];
        return NULL;
}

static int collect_targets(xmlNode *devices, char ***ret) {
        for (xmlNode *disk = rc_xml_child(devices, "disk"); disk; disk = rc_xml_next(disk->next, "disk")) {
                xmlNode *target = rc_xml_child(disk, "target");
                _cleanup_(xml_freep) xmlChar *dev = target ? xmlGetNoNsProp(target, BAD_CAST "dev") : NULL;
                int r = dev ? vf_strv_push(ret, (const char *) dev) : 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The first name of the family that no disk of the document takes: the same one at every pass. */
static int take_target(disk_targets *t, const char *prefix, char ret[8]) {
        for (char letter = 'a'; letter <= 'z'; letter++) {
                snprintf(ret, 8, "%s%c", prefix, letter);
                if (!vf_strv_contains(t->used, ret))
                        return vf_strv_push(&t->used, ret);
        }
        return -ENOSPC;
}

/* "" for a machine the hypervisor does not name: its cdroms take the bus of an unknown machine. */
static int machine_or_unknown(char **machine) {
        if (!*machine)
                *machine = strdup("");
        return *machine ? 0 : -ENOMEM;
}

/* The machine the hypervisor gives a domain that names none: domain capabilities say it for an arch. */
static int read_default_machine(rc_context *ctx, const char *arch, const char *type, char **ret) {
        rc_count_read(ctx, RC_CALL_GET_INFO);
        _cleanup_free_ char *domcaps = virConnectGetDomainCapabilities(ctx->conn, NULL, *arch ? arch : NULL, NULL,
                                                                       type, 0);
        if (domcaps) {
                _cleanup_(xmlFreeDocp) xmlDoc *doc = rc_xml_parse(domcaps);
                *ret = doc ? rc_xml_xpath_string(doc, "/domainCapabilities/machine") : NULL;
                return machine_or_unknown(ret);
        }
        if (virGetLastErrorCode() != VIR_ERR_NO_SUPPORT && virGetLastErrorCode() != VIR_ERR_OPERATION_DENIED)
                return -EIO;
        /*
         * A driver without them (the test driver), or a read-only connection (plan), has the machines in
         * the capabilities, the default first.
         */
        rc_count_read(ctx, RC_CALL_GET_INFO);
        _cleanup_free_ char *caps = virConnectGetCapabilities(ctx->conn);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = caps ? rc_xml_parse(caps) : NULL;
        if (!doc)
                return -EIO;
        _cleanup_free_ char *host_arch = *arch ? strdup(arch) : rc_xml_xpath_string(doc, "/capabilities/host/cpu/arch");
        _cleanup_free_ char *expr = host_arch && !strchr(host_arch, '\'')
                                            ? vf_printf("/capabilities/guest[os_type='hvm']/arch[@name='%s']/machine",
                                                        host_arch)
                                            : NULL;
        *ret = expr ? rc_xml_xpath_string(doc, expr) : NULL;
        return machine_or_unknown(ret);
}

/* The default machine for the document's arch, asked once per arch and hypervisor connection. */
static int default_machine(rc_context *ctx, xmlDoc *desired, rc_result *res, const char **ret) {
        _cleanup_free_ char *arch = rc_xml_xpath_string(desired, "/domain/os/type/@arch");
        _cleanup_free_ char *type = rc_xml_xpath_string(desired, "/domain/@type");
        const char *want_arch = arch ? arch : "";
        char *machine = NULL;

        if (ctx->machine_arch && strcmp(ctx->machine_arch, want_arch) == 0) {
                *ret = ctx->default_machine;
                return 0;
        }
        int r = read_default_machine(ctx, want_arch, type, &machine);
        if (r == -EIO) {
                rc_result_set(res, RC_FAILED, false, "UnknownHypervisor",
                              "cannot read the hypervisor's default machine for a cdrom's bus (%s); give the cdrom "
                              "a bus", rc_libvirt_error());
                return r;
        }
        if (r < 0)
                return r;
        free(ctx->machine_arch);
        free(ctx->default_machine);
        ctx->default_machine = machine;
        ctx->machine_arch = strdup(want_arch);
        *ret = machine;
        return ctx->machine_arch ? 0 : -ENOMEM;
}

/* q35 has no IDE controller: cdroms go on SATA there, and on IDE on i440fx or a machine not known. */
static int cdrom_bus(rc_context *ctx, xmlDoc *desired, rc_result *res, const char **ret) {
        _cleanup_free_ char *given = rc_xml_xpath_string(desired, "/domain/os/type/@machine");
        const char *machine = given;

        if (!machine) {
                int r = default_machine(ctx, desired, res, &machine);
                if (r < 0)
                        return r;
        }
        *ret = strstr(machine, "q35") ? "sata" : "ide";
        return 0;
}

static int complete_target(rc_context *ctx, xmlDoc *desired, xmlNode *disk, disk_targets *t, rc_result *res) {
        xmlNode *target = rc_xml_child(disk, "target");
        _cleanup_(xml_freep) xmlChar *given_bus = target ? xmlGetNoNsProp(target, BAD_CAST "bus") : NULL;
        _cleanup_(xml_freep) xmlChar *device = xmlGetNoNsProp(disk, BAD_CAST "device");
        const char *bus = (const char *) given_bus;
        char dev[8];
        int r;

        if (target && xmlHasProp(target, BAD_CAST "dev"))
                return 0;
        if (!bus && device && xmlStrcmp(device, BAD_CAST "cdrom") == 0) {
                r = t->cdrom_bus ? 0 : cdrom_bus(ctx, desired, res, &t->cdrom_bus);
                if (r < 0)
                        return r;
                bus = t->cdrom_bus;
        } else if (!bus && (!device || xmlStrcmp(device, BAD_CAST "disk") == 0))
                bus = "virtio";
        const char *prefix = bus ? target_prefix(bus) : NULL;
        if (!prefix)
                return 0; /* a floppy, a LUN, a bus named otherwise: libvirt says what it lacks */
        r = take_target(t, prefix, dev);
        if (r == -ENOSPC) {
                rc_result_set(res, RC_FAILED, false, "TooManyDisks",
                              "more than 26 disks named %s*; give some of them a target on another bus", prefix);
                r = rc_result_wait(res, RC_WAIT_CHANGE, NULL, 0);
                return r < 0 ? r : 1;
        }
        if (r < 0)
                return r;
        if (!target && !(target = xmlNewChild(disk, NULL, BAD_CAST "target", NULL)))
                return -ENOMEM;
        if (!xmlSetProp(target, BAD_CAST "dev", BAD_CAST dev) || !xmlSetProp(target, BAD_CAST "bus", BAD_CAST bus))
                return -ENOMEM;
        return 0;
}

/* ---- volume formats ------------------------------------------------------------- */

/* A volume's format as libvirt reports it; *ret NULL when it reports none. -ENOENT when it cannot be read. */
static int read_volume_format(rc_context *ctx, const char *pool, const char *volume, char **ret) {
        rc_count_read(ctx, RC_CALL_GET_INFO);
        _cleanup_(virStoragePoolFreep) virStoragePool *p = virStoragePoolLookupByName(ctx->conn, pool);
        if (!p)
                return -ENOENT;
        rc_count_read(ctx, RC_CALL_GET_INFO);
        _cleanup_(virStorageVolFreep) virStorageVol *v = virStorageVolLookupByName(p, volume);
        if (!v)
                return -ENOENT;
        rc_count_read(ctx, RC_CALL_GET_XML);
        _cleanup_free_ char *xml = virStorageVolGetXMLDesc(v, 0);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xml ? rc_xml_parse(xml) : NULL;
        if (!doc)
                return -ENOENT;
        *ret = rc_xml_xpath_string(doc, "/volume/target/format/@type");
        return 0;
}

/*
 * A volume the file gives no format is presented to the guest in the format
 * it has: a qcow2 image taken for raw shows the guest qcow2's headers.
 */
static int fill_volume_format(rc_context *ctx, xmlNode *disk, rc_result *res) {
        xmlNode *driver = rc_xml_child(disk, "driver"), *source = rc_xml_child(disk, "source");
        _cleanup_(xml_freep) xmlChar *pool = source ? xmlGetNoNsProp(source, BAD_CAST "pool") : NULL;
        _cleanup_(xml_freep) xmlChar *volume = source ? xmlGetNoNsProp(source, BAD_CAST "volume") : NULL;
        _cleanup_free_ char *format = NULL, *name = NULL;

        if (!prop_is(disk, "type", "volume") || (driver && xmlHasProp(driver, BAD_CAST "type")) || !pool || !volume)
                return 0;
        int r = read_volume_format(ctx, (const char *) pool, (const char *) volume, &format);
        /* plan runs before the volume is made: what a define will say of its format is not known yet. */
        if (r == -ENOENT && ctx->dry_run)
                return 0;
        if (r == -ENOENT) {
                name = vf_printf("%s/%s", (const char *) pool, (const char *) volume);
                return name ? wait_for(res, VF_KIND_VOLUME, name, "cannot be read; create it, or declare it in a file")
                            : -ENOMEM;
        }
        if (r < 0 || !format)
                return r;
        if (!driver && !(driver = xmlNewChild(disk, NULL, BAD_CAST "driver", NULL)))
                return -ENOMEM;
        return xmlSetProp(driver, BAD_CAST "type", BAD_CAST format) ? 0 : -ENOMEM;
}

int rc_domain_complete_disks(rc_context *ctx, const rc_request *req, xmlDoc *desired, rc_result *res) {
        xmlNode *devices = rc_xml_child(xmlDocGetRootElement(desired), "devices");
        _cleanup_(disk_targets_done) disk_targets t = {};
        int r = collect_targets(devices, &t.used);

        for (xmlNode *disk = rc_xml_child(devices, "disk"); r == 0 && disk; disk = rc_xml_next(disk->next, "disk")) {
                r = resolve_cloudinit(req, rc_xml_child(disk, "source"), res);
                if (r == 0)
                        r = complete_target(ctx, desired, disk, &t, res);
                if (r == 0)
                        r = fill_volume_format(ctx, disk, res);
        }
        return r;
}
