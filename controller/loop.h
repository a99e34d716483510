/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to controller/: the daemon's event sources. One epoll loop; each
 * source is a file descriptor with a handler. Nothing here polls: with
 * nothing to do the loop sleeps in epoll_wait until a source has something.
 */
#pragma once

#include <stdint.h>

#include "controller/controller.h"

typedef struct loop loop;
typedef int (*loop_handler)(int fd, void *userdata);

int loop_new(loop **ret);
void loop_free(loop *l);
DEFINE_POINTER_CLEANUP(loop, loop_free);
/* Watches fd for input; the handler runs from loop_dispatch(). */
int loop_add(loop *l, int fd, loop_handler handler, void *userdata);
/* Waits for input and runs the handlers of the ready sources; a handler's error stops it. */
int loop_dispatch(loop *l);
/* How many times the loop woke up: the idle test counts these. */
uint64_t loop_wakeups(const loop *l);

/* A timerfd armed for one monotonic deadline, or disarmed with INT64_MAX. */
int timer_new(void);
int timer_arm(int fd, int64_t deadline_usec);
/* Reads the expiry so the fd stops being readable. */
void timer_ack(int fd);

/* inotify on the desired-state directories, including ones that appear later. */
typedef struct watch watch;
/* A file that a writer still has open: it is read once closed, or at until_usec (monotonic) at the latest. */
typedef struct watch_hold {
        char *path;
        const char *name; /* the file name, within path */
        int64_t until_usec;
        bool told; /* the daemon said it waits for it */
} watch_hold;
/* hold_usec: how long a file open for writing is waited for (0: it is read as it is). */
int watch_new(char *const *dirs, int64_t hold_usec, watch **ret);
void watch_free(watch *w);
DEFINE_POINTER_CLEANUP(watch, watch_free);
int watch_fd(const watch *w);
/*
 * Reads the pending events: file names that changed are added to *names; a
 * directory that appeared or vanished (or an overflow) sets *rescan.
 */
int watch_read(watch *w, char ***names, bool *rescan);
/* The files open for writing, in no order; releasing one moves another into its place. */
size_t watch_n_holds(const watch *w);
watch_hold *watch_hold_at(watch *w, size_t i);
void watch_release(watch *w, size_t i);

/* The work queue: keys due at a monotonic time, deduplicated (the earlier time wins). */
typedef struct work_queue work_queue;
int queue_new(work_queue **ret);
void queue_free(work_queue *q);
DEFINE_POINTER_CLEANUP(work_queue, queue_free);
int queue_push(work_queue *q, const char *key, int64_t due_usec);
void queue_drop(work_queue *q, const char *key);
/* INT64_MAX when empty. */
int64_t queue_next_due(const work_queue *q);
/* Removes and returns the keys due by now. */
int queue_pop_due(work_queue *q, int64_t now_usec, char ***keys);

/* sd_notify(3)'s protocol over $NOTIFY_SOCKET; does nothing without it. */
int notify_systemd(const char *state);

/* SIGHUP, SIGTERM and SIGINT, blocked and read through a signalfd. */
int signals_new(void);
/* The signal read, or 0 when none was pending. */
int signals_read(int fd);

/*
 * libvirt's events. libvirt's default event loop runs on a thread of its own
 * (its event loop is process-wide, so it is started once per process, before
 * the first connection); its callbacks only count each object's lifecycle
 * events under its "kind/name" key and wake the main loop through an eventfd.
 */
/*
 * Small, as there is one per object a cold start touched: a count stops at UINT8_MAX, which is far more
 * than any pass expects of one object, so it still says there is news.
 */
typedef struct libvirt_seen {
        uint8_t counts[RC_LIFECYCLE_EVENTS]; /* by libvirt's event number for the object's kind */
        bool other; /* a number beyond those, which no write of virtform's is counted as */
} libvirt_seen;

/* "kind/name" -> libvirt_seen*: freed with its values. */
void libvirt_seen_free(vf_map *seen);
DEFINE_POINTER_CLEANUP(vf_map, libvirt_seen_free);

typedef struct libvirt_events libvirt_events;
int libvirt_events_start_thread(void);
int libvirt_events_new(libvirt_events **ret);
void libvirt_events_free(libvirt_events *e);
DEFINE_POINTER_CLEANUP(libvirt_events, libvirt_events_free);
/* Registers the lifecycle and close callbacks on a connection (replacing an earlier one's). */
int libvirt_events_attach(libvirt_events *e, virConnectPtr conn);
void libvirt_events_detach(libvirt_events *e);
bool libvirt_events_attached(const libvirt_events *e);
int libvirt_events_fd(const libvirt_events *e);
/* Takes what was seen since the last call (NULL: nothing), and whether the connection closed meanwhile. */
int libvirt_events_take(libvirt_events *e, vf_map **seen, bool *closed);

/*
 * The lifecycle events the daemon's own writes make libvirt report (rc_result.caused), expected per key
 * until the key is reconciled again or OWN_EVENTS_TTL_USEC has passed; see own-events.c.
 */
typedef struct own_events own_events;
int own_events_new(own_events **ret);
void own_events_free(own_events *o);
DEFINE_POINTER_CLEANUP(own_events, own_events_free);
/*
 * What key's last reconcile wrote replaces what was expected of it before. Fails only for lack of
 * memory, and then expects nothing of the key: its events are news.
 */
int own_events_expect(own_events *o, const char *key, const rc_caused *caused, int64_t now_usec);
/* Takes what was expected of key out of what was seen of it; true when anything is left: news. */
bool own_events_news(own_events *o, const char *key, const libvirt_seen *seen, int64_t now_usec);
/* Expects nothing any more: the connection the writes were made on is gone. */
void own_events_clear(own_events *o);

/* Link events (RTNLGRP_LINK) in the current network namespace, through libnl. */
typedef struct link_monitor link_monitor;
int link_monitor_new(link_monitor **ret);
void link_monitor_free(link_monitor *m);
DEFINE_POINTER_CLEANUP(link_monitor, link_monitor_free);
int link_monitor_fd(const link_monitor *m);
/* The names of the links that changed, added to *ifnames; -ENOBUFS when some were lost. */
int link_monitor_read(link_monitor *m, char ***ifnames);

/* PCI and net devices coming and going, through libudev. */
typedef struct device_monitor device_monitor;
int device_monitor_new(device_monitor **ret);
void device_monitor_free(device_monitor *m);
DEFINE_POINTER_CLEANUP(device_monitor, device_monitor_free);
int device_monitor_fd(const device_monitor *m);
/*
 * One event: "add"/"remove" etc. of a subsystem's device; *sysname is a PCI address for "pci".
 * 1 with an event, 0 without, -ENOBUFS when events were lost.
 */
int device_monitor_read(device_monitor *m, char **action, char **subsystem, char **sysname);
