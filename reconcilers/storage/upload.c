/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A volume's content streamed in: the one way a volume's bytes are written, by imports and seeds alike;
 * and the first bytes of one streamed out, to see what an interrupted upload left.
 */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

#include <libvirt/virterror.h>

/*
 * On failure the stream stays until rc_upload_done(): every libvirt call,
 * virStreamFree() too, resets libvirt's last error, which tells the caller why.
 */
int rc_upload_begin(virConnectPtr conn, virStorageVolPtr vol, uint64_t length, rc_upload *u) {
        *u = (rc_upload) { .stream = virStreamNew(conn, 0) };
        if (!u->stream)
                return -EIO;
        return virStorageVolUpload(vol, u->stream, 0, length, 0) < 0 ? -EIO : 0;
}

int rc_upload_send(rc_upload *u, const void *data, size_t len) {
        const char *p = data;

        /* A blocking stream may take less than it is given. */
        while (len > 0) {
                int n = virStreamSend(u->stream, p, len);
                if (n < 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                u->sent += (uint64_t) n;
        }
        return 0;
}

int rc_upload_finish(rc_upload *u) {
        int r = virStreamFinish(u->stream);

        u->finished = r == 0;
        return r < 0 ? -EIO : 0;
}

void rc_upload_done(rc_upload *u) {
        if (!u->stream)
                return;
        if (!u->finished)
                (void) virStreamAbort(u->stream);
        virStreamFree(u->stream);
        *u = (rc_upload) {};
}

/* libvirt's word on the failure, taken before the stream's abort and free reset it. */
static int stream_failed(virStreamPtr stream, bool active, char **why) {
        *why = strdup(rc_libvirt_error());
        if (active)
                (void) virStreamAbort(stream);
        virStreamFree(stream);
        return *why ? -EIO : -ENOMEM;
}

int rc_volume_begins_with(virConnectPtr conn, virStorageVolPtr vol, const void *data, size_t len, bool *ret,
                          char **why) {
        _cleanup_free_ char *buf = malloc(len ? len : 1);
        virStreamPtr stream = buf ? virStreamNew(conn, 0) : NULL;
        size_t got = 0;
        int n = 0;

        if (!buf)
                return -ENOMEM;
        if (!stream)
                return (*why = strdup(rc_libvirt_error())) ? -EIO : -ENOMEM;
        if (virStorageVolDownload(vol, stream, 0, len, 0) < 0)
                return stream_failed(stream, false, why);
        /* 0 is the end of the volume: one shorter than data does not begin with it. */
        while (got < len && (n = virStreamRecv(stream, buf + got, len - got)) > 0)
                got += (size_t) n;
        if (n < 0 || virStreamFinish(stream) < 0)
                return stream_failed(stream, true, why);
        virStreamFree(stream);
        *ret = got == len && memcmp(buf, data, len) == 0;
        return 0;
}

bool rc_libvirt_no_space(void) {
        virErrorPtr e = virGetLastError();
        /* A system error carries its errno, over the wire too; a stream's may come as words alone. */
        return e && ((e->code == VIR_ERR_SYSTEM_ERROR && e->int1 == ENOSPC) ||
                     (e->message && strstr(e->message, strerror(ENOSPC))));
}

bool rc_libvirt_unsupported(void) {
        return virGetLastErrorCode() == VIR_ERR_NO_SUPPORT;
}
