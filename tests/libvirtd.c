/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests/libvirtd.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#define SOCKET_DEADLINE_USEC (120 * 1000000LL)

/* Where a privileged libvirtd keeps things, each replaced by a directory of the test's own. */
static const char *const libvirt_dirs[] = {
        "/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt",
};

static bool have_libvirtd(void) {
        return access("/usr/sbin/libvirtd", X_OK) == 0 && access("/usr/sbin/virtlogd", X_OK) == 0 &&
               access("/usr/bin/qemu-system-x86_64", X_OK) == 0;
}

const char *th_libvirtd_isolate(unsigned watchdog_sec) {
        alarm(watchdog_sec);
        if (!have_libvirtd())
                return "needs libvirtd, virtlogd and qemu-system-x86_64";
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return "needs a mount namespace of its own (CAP_SYS_ADMIN) for libvirt's directories";
        if (!th_enter_netns())
                return "needs a network namespace of its own (CAP_SYS_ADMIN, CAP_NET_ADMIN) for libvirt's bridges";
        return NULL;
}

static void mount_private_dirs(th_libvirtd *d, const char *dir) {
        for (size_t i = 0; i < ELEMENTSOF(libvirt_dirs); i++) {
                _cleanup_free_ char *own = vf_printf("%s/root%s", dir, libvirt_dirs[i]);
                _cleanup_free_ char *mkdir_p = vf_printf("mkdir -p -m 0755 '%s'", own);
                assert_int_equal(system(mkdir_p), 0);
                /* Without systemd, nothing ran libvirt's tmpfiles.d: the mount point itself may be missing. */
                if (mkdir(libvirt_dirs[i], 0755) < 0 && errno != EEXIST)
                        fail_msg("cannot create %s: %s", libvirt_dirs[i], strerror(errno));
                if (mount(own, libvirt_dirs[i], NULL, MS_BIND, NULL) < 0)
                        fail_msg("cannot bind %s over %s: %s (does %s exist?)", own, libvirt_dirs[i], strerror(errno),
                                 libvirt_dirs[i]);
                d->n_mounted++;
        }
}

static void unmount_private_dirs(th_libvirtd *d) {
        while (d->n_mounted > 0)
                if (umount2(libvirt_dirs[--d->n_mounted], MNT_DETACH) < 0)
                        fail_msg("cannot unmount %s: %s", libvirt_dirs[d->n_mounted], strerror(errno));
}

th_libvirtd *th_libvirtd_new(const char *dir) {
        th_libvirtd *d = calloc(1, sizeof *d);

        assert_non_null(d);
        mount_private_dirs(d, dir);
        d->log = vf_printf("%s/daemons.log", dir);
        d->uri = strdup("qemu:///system?socket=/run/libvirt/libvirt-sock");
        th_write("/etc/libvirt", "libvirtd.conf",
                 "unix_sock_dir = \"/run/libvirt\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n"
                 "listen_tls = 0\nlisten_tcp = 0\nlog_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n");
        th_write("/etc/libvirt", "virtlogd.conf", "log_outputs = \"3:file:/var/log/libvirt/virtlogd.log\"\n");
        return d;
}

/* Daemons the test starts die with it (PDEATHSIG), and write to its log, not to its stdout. */
static pid_t start_process(const char *const *argv, const char *log) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                        _exit(127);
                execv(argv[0], (char **) argv);
                _exit(127);
        }
        return pid;
}

/* SIGTERM, then SIGKILL if it is still there after ten seconds. */
static void stop_process(pid_t *pid) {
        if (*pid <= 0)
                return;
        kill(*pid, SIGTERM);
        for (int i = 0; i < 1000 && waitpid(*pid, NULL, WNOHANG) == 0; i++)
                usleep(10 * 1000);
        if (waitpid(*pid, NULL, WNOHANG) == 0) {
                kill(*pid, SIGKILL);
                waitpid(*pid, NULL, 0);
        }
        *pid = 0;
}

static void start_libvirtd(th_libvirtd *d) {
        const char *sock = "/run/libvirt/libvirt-sock";
        const char *argv[] = { "/usr/sbin/libvirtd", "-f", "/etc/libvirt/libvirtd.conf", "-p",
                               "/run/libvirt/libvirtd.pid", NULL };
        int64_t deadline = vf_now_monotonic_usec() + SOCKET_DEADLINE_USEC;

        (void) unlink(sock);
        d->libvirtd = start_process(argv, d->log);
        while (access(sock, F_OK) < 0) {
                if (waitpid(d->libvirtd, NULL, WNOHANG) != 0)
                        fail_msg("libvirtd exited before it listened; see %s", d->log);
                if (vf_now_monotonic_usec() > deadline)
                        fail_msg("timed out waiting for libvirtd's socket; see %s", d->log);
                usleep(20 * 1000); /* polling the condition, not waiting for a time */
        }
}

void th_libvirtd_start(th_libvirtd *d) {
        const char *virtlogd[] = { "/usr/sbin/virtlogd", "-f", "/etc/libvirt/virtlogd.conf", "-p",
                                   "/run/libvirt/virtlogd.pid", NULL };

        if (d->virtlogd <= 0)
                d->virtlogd = start_process(virtlogd, d->log);
        start_libvirtd(d);
}

char *th_libvirtd_revive(th_libvirtd *d) {
        int status;

        if (waitpid(d->libvirtd, &status, WNOHANG) != d->libvirtd)
                return NULL;
        char *how = WIFSIGNALED(status) ? vf_printf("libvirtd (pid %d) was killed by signal %d (%s)", (int) d->libvirtd,
                                                    WTERMSIG(status), strsignal(WTERMSIG(status)))
                                        : vf_printf("libvirtd (pid %d) exited %d", (int) d->libvirtd,
                                                    WEXITSTATUS(status));
        d->libvirtd = 0;
        start_libvirtd(d);
        return how;
}

void th_libvirtd_kill(th_libvirtd *d) {
        kill(d->libvirtd, SIGKILL);
        waitpid(d->libvirtd, NULL, 0);
        d->libvirtd = 0;
}

pid_t th_libvirtd_guest_pid(const char *name) {
        _cleanup_free_ char *text = NULL, *path = vf_printf("/run/libvirt/qemu/%s.pid", name);
        if (vf_read_file(path, 64, &text, NULL) < 0)
                return 0;
        pid_t pid = (pid_t) strtol(text, NULL, 10);
        return pid > 0 && kill(pid, 0) == 0 ? pid : 0;
}

/*
 * Dead, or a zombie: a daemonized QEMU's parent is init, which reaps when it will (here, seconds later);
 * kill(pid, 0) still finds it meanwhile.
 */
static bool process_gone(pid_t pid) {
        _cleanup_free_ char *path = vf_printf("/proc/%d/stat", (int) pid), *stat = NULL;

        if (kill(pid, 0) < 0 || vf_read_file(path, 4096, &stat, NULL) < 0)
                return true;
        const char *after_name = strrchr(stat, ')');
        return after_name && after_name[1] == ' ' && after_name[2] == 'Z';
}

static void kill_and_wait(pid_t pid) {
        if (pid <= 1 || kill(pid, SIGKILL) < 0)
                return;
        int64_t deadline = vf_now_monotonic_usec() + 10 * 1000000;
        while (!process_gone(pid) && vf_now_monotonic_usec() < deadline)
                nanosleep(&(struct timespec) { 0, 10000000L }, NULL);
}

void th_kill_pidfiles(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        while (d && (de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (len < 5 || strcmp(de->d_name + len - 4, ".pid") != 0 || strcmp(de->d_name, "driver.pid") == 0)
                        continue;
                _cleanup_free_ char *path = vf_printf("%s/%s", dir, de->d_name), *text = NULL;
                if (vf_read_file(path, 64, &text, NULL) >= 0)
                        kill_and_wait((pid_t) atoi(text));
        }
        if (d)
                closedir(d);
}

/* Whether every needle is in the process's command line, its arguments joined by spaces. */
static bool command_line_names(const char *pid, const char *const *needles) {
        _cleanup_free_ char *path = vf_printf("/proc/%s/cmdline", pid), *cmd = NULL;
        size_t len;

        if (vf_read_file(path, 1 << 16, &cmd, &len) < 0 || len == 0)
                return false;
        for (size_t i = 0; i + 1 < len; i++)
                cmd[i] = cmd[i] ? cmd[i] : ' ';
        for (; *needles; needles++)
                if (!strstr(cmd, *needles))
                        return false;
        return true;
}

void th_kill_processes_naming(const char *const *needles) {
        _cleanup_(closedirp) DIR *proc = opendir("/proc");

        for (struct dirent *de; proc && (de = readdir(proc));)
                if (de->d_name[0] >= '1' && de->d_name[0] <= '9' && atoi(de->d_name) != getpid() &&
                    command_line_names(de->d_name, needles))
                        kill_and_wait((pid_t) atoi(de->d_name));
}

void th_libvirtd_free(th_libvirtd *d) {
        if (!d)
                return;
        /* What libvirtd did not take down, the test does, by PID. */
        th_kill_pidfiles("/run/libvirt/qemu");
        stop_process(&d->libvirtd);
        stop_process(&d->virtlogd);
        unmount_private_dirs(d);
        free(d->uri);
        free(d->log);
        free(d);
}
