/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A private libvirtd and virtlogd for a test: nothing of the host's libvirt
 * is seen or touched. A privileged libvirtd has its directories compiled in,
 * so the test process moves into a mount namespace of its own, where
 * /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
 * /var/log/libvirt are empty directories of its temp tree, and into a
 * network namespace of its own, where the bridges and firewall rules the
 * network driver makes are private and vanish with the test. The daemons get
 * their configuration by --config and their PID files there, die with the
 * test (PDEATHSIG), and are stopped by PID.
 */
#pragma once

#include <sys/types.h>

#include "tests/helpers.h"

typedef struct th_libvirtd {
        char *uri; /* qemu:///system through the private socket */
        char *log; /* the daemons' stdout and stderr */
        size_t n_mounted;
        pid_t libvirtd, virtlogd;
} th_libvirtd;

/*
 * In main, before any thread exists (unshare(CLONE_NEWNS) refuses a process
 * with more than one): the namespaces, and a watchdog of watchdog_sec for
 * the whole run, since a hung hypervisor must fail the suite, not hang it.
 * Returns NULL, or why the suite cannot run here.
 */
const char *th_libvirtd_isolate(unsigned watchdog_sec);
/* Binds empty directories of dir over libvirt's and writes the daemons' configuration; starts nothing. */
th_libvirtd *th_libvirtd_new(const char *dir);
/* Starts virtlogd unless it runs, then libvirtd, and waits for libvirtd's socket. */
void th_libvirtd_start(th_libvirtd *d);
/* Starts libvirtd again if it died by itself (a crash, not th_libvirtd_kill): says how it died; NULL when it runs. */
char *th_libvirtd_revive(th_libvirtd *d);
/* Kills libvirtd alone with SIGKILL, behind everyone's back. */
void th_libvirtd_kill(th_libvirtd *d);
/* A guest's QEMU, by the PID file the private libvirtd keeps; 0 when it does not run. */
pid_t th_libvirtd_guest_pid(const char *name);
/* Kills the guests, stops the daemons, and gives libvirt's directories back; safe on NULL. */
void th_libvirtd_free(th_libvirtd *d);

/* Kills (SIGKILL) every process named by a DIR/NAME.pid file but driver.pid, and waits until each is gone. */
void th_kill_pidfiles(const char *dir);

/*
 * Kills (SIGKILL) every process whose command line holds each of the needles (a NULL-terminated list),
 * and waits until each is gone: what no PID file names, such as a QEMU whose start was cut short.
 */
void th_kill_processes_naming(const char *const *needles);
