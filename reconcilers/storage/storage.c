/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the volume and cloud-init reconcilers share about the domains that use a volume. */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

static bool attr_is(xmlNode *n, const char *name, const char *value) {
        xmlChar *v = n && value ? xmlGetProp(n, BAD_CAST name) : NULL;
        bool same = v && strcmp((const char *) v, value) == 0;

        xmlFree(v);
        return same;
}

int rc_disk_uses_volume(xmlDoc *doc, const void *what, bool *ret) {
        const rc_volume_use *u = what;
        xmlNode *devices = rc_xml_child(xmlDocGetRootElement(doc), "devices");

        *ret = false;
        for (xmlNode *disk = devices ? devices->children : NULL; disk && !*ret; disk = disk->next) {
                if (disk->type != XML_ELEMENT_NODE || xmlStrcmp(disk->name, BAD_CAST "disk") != 0)
                        continue;
                xmlNode *source = rc_xml_child(disk, "source");
                *ret = (attr_is(source, "pool", u->pool) && attr_is(source, "volume", u->name)) ||
                       attr_is(source, "file", u->path) || attr_is(source, "dev", u->path);
        }
        return 0;
}
