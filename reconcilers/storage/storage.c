/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the pool, volume and cloud-init reconcilers share. */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

#include <libvirt/virterror.h>

/* Bytes per virStreamSend(): libvirt's own message limit is 256 KiB. */
#define UPLOAD_CHUNK (256u * 1024)

/* Keeps what libvirt said of a failure before the next call (an abort, a free) clears it. */
static int upload_failed(virStreamPtr st, char **errmsg) {
        int r = virGetLastErrorCode() == VIR_ERR_NO_SUPPORT ? -EOPNOTSUPP : -EIO;

        *errmsg = strdup(rc_libvirt_error());
        if (st) {
                (void) virStreamAbort(st);
                virStreamFree(st);
        }
        return *errmsg ? r : -ENOMEM;
}

int rc_storage_upload_buffer(virConnectPtr conn, virStorageVolPtr vol, const uint8_t *data, size_t size,
                             char **errmsg) {
        virStreamPtr st = virStreamNew(conn, 0);
        size_t at = 0;

        if (!st)
                return upload_failed(NULL, errmsg);
        if (virStorageVolUpload(vol, st, 0, size, 0) < 0) {
                int r = upload_failed(NULL, errmsg);
                virStreamFree(st);
                return r;
        }
        while (at < size) {
                size_t n = size - at < UPLOAD_CHUNK ? size - at : UPLOAD_CHUNK;
                int sent = virStreamSend(st, (const char *) data + at, n);
                if (sent <= 0)
                        return upload_failed(st, errmsg);
                at += (size_t) sent;
        }
        if (virStreamFinish(st) < 0)
                return upload_failed(st, errmsg);
        virStreamFree(st);
        return 0;
}

typedef struct user_scan {
        rc_context *ctx;
        const char *pool, *volume, *path;
        char *user;
} user_scan;

static bool disk_is_volume(xmlDoc *doc, const user_scan *scan) {
        _cleanup_strv_free_ char **pools = NULL, **volumes = NULL, **files = NULL;

        /* libvirt requires both attributes of a volume disk's source: the two lists pair up. */
        if (rc_xml_xpath_strings(doc, "//devices/disk[@type='volume']/source[@pool and @volume]/@pool", &pools) < 0 ||
            rc_xml_xpath_strings(doc, "//devices/disk[@type='volume']/source[@pool and @volume]/@volume", &volumes) < 0 ||
            rc_xml_xpath_strings(doc, "//devices/disk/source/@file | //devices/disk/source/@dev", &files) < 0)
                return false;
        for (size_t i = 0; pools && volumes && pools[i] && volumes[i]; i++)
                if (strcmp(pools[i], scan->pool) == 0 && strcmp(volumes[i], scan->volume) == 0)
                        return true;
        return scan->path && vf_strv_contains(files, scan->path);
}

static int check_user(void *obj, void *userdata) {
        user_scan *scan = userdata;

        if (scan->user)
                return 0;
        rc_count_read(scan->ctx, RC_CALL_GET_XML);
        _cleanup_free_ char *xml = virDomainGetXMLDesc(obj, 0);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xml ? rc_xml_parse(xml) : NULL;
        if (!doc || !disk_is_volume(doc, scan))
                return 0;
        scan->user = strdup(virDomainGetName(obj));
        return scan->user ? 0 : -ENOMEM;
}

int rc_storage_volume_user(rc_context *ctx, const char *pool, const char *volume, const char *path, char **ret) {
        user_scan scan = { ctx, pool, volume, path, NULL };
        int r = rc_inventory_foreach(ctx, VF_KIND_DOMAIN, check_user, &scan);

        if (r < 0) {
                free(scan.user);
                return r;
        }
        *ret = scan.user;
        return 0;
}
