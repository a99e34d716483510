/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "controller/loop.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#define MAX_EVENTS 16

typedef struct source {
        int fd;
        loop_handler handler;
        void *userdata;
} source;

struct loop {
        int epoll_fd;
        source *sources;
        size_t n_sources;
        uint64_t wakeups;
};

int loop_new(loop **ret) {
        loop *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epoll_fd < 0) {
                int r = -errno;
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

void loop_free(loop *l) {
        if (!l)
                return;
        close(l->epoll_fd);
        free(l->sources);
        free(l);
}

int loop_add(loop *l, int fd, loop_handler handler, void *userdata) {
        source *sources = realloc(l->sources, (l->n_sources + 1) * sizeof *sources);
        if (!sources)
                return -ENOMEM;
        l->sources = sources;
        /* The index, not a pointer: the array moves as sources are added. */
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = l->n_sources };
        if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        l->sources[l->n_sources++] = (source) { fd, handler, userdata };
        return 0;
}

int loop_dispatch(loop *l) {
        struct epoll_event events[MAX_EVENTS];
        int n = epoll_wait(l->epoll_fd, events, MAX_EVENTS, -1);

        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        l->wakeups++;
        for (int i = 0; i < n; i++) {
                source *s = &l->sources[events[i].data.u64];
                int r = s->handler(s->fd, s->userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

uint64_t loop_wakeups(const loop *l) {
        return l->wakeups;
}

int timer_new(void) {
        int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int timer_arm(int fd, int64_t deadline_usec) {
        struct itimerspec spec = {};

        /* A zero it_value disarms: a deadline already past must still fire, so it gets 1 ns. */
        if (deadline_usec != INT64_MAX) {
                spec.it_value.tv_sec = deadline_usec / 1000000;
                spec.it_value.tv_nsec = (deadline_usec % 1000000) * 1000;
                if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0)
                        spec.it_value.tv_nsec = 1;
        }
        return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL) < 0 ? -errno : 0;
}

void timer_ack(int fd) {
        uint64_t expirations;
        (void) !read(fd, &expirations, sizeof expirations);
}
