/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sd_notify(3)'s datagram protocol, spoken directly: one sendto() on the
 * socket systemd names in $NOTIFY_SOCKET (a path, or '@' for the abstract
 * namespace). Linking libsystemd for these few lines would buy nothing.
 */
#include "controller/loop.h"

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

int notify_systemd(const char *state) {
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        size_t len;

        if (!path || !*path)
                return 0;
        len = strlen(path);
        if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path)
                return -EINVAL;
        memcpy(addr.sun_path, path, len);
        if (addr.sun_path[0] == '@')
                addr.sun_path[0] = 0;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *) &addr,
                   (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len)) < 0)
                return -errno;
        return 0;
}
