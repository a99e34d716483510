/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Processes: a timed subprocess, a forked child that hands a result back, and /proc. */
#include "bench/bench.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

double bench_now_ms(void) {
        return (double) vf_now_monotonic_usec() / 1000.0;
}

void bench_note(measure *m, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(m->note, sizeof m->note, fmt, ap);
        va_end(ap);
}

bool bench_keep_best(measure *best, const measure *m) {
        long rss = best->ok && best->rss_kib > m->rss_kib ? best->rss_kib : m->rss_kib;
        bool faster = !best->ok || m->wall_ms < best->wall_ms;

        if (faster)
                *best = *m;
        best->rss_kib = rss;
        return faster;
}

static double timeval_ms(const struct timeval *tv) {
        return (double) tv->tv_sec * 1000.0 + (double) tv->tv_usec / 1000.0;
}

static void redirect(const char *path, int target) {
        int fd = target == STDIN_FILENO ? open(path, O_RDONLY | O_CLOEXEC)
                                        : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || dup2(fd, target) < 0)
                _exit(127);
        close(fd);
}

int bench_spawn(char *const *argv, const char *in_path, const char *out_path, const char *err_path, int *status,
                measure *m) {
        struct rusage ru;
        int wstatus;

        fflush(NULL);
        double t0 = bench_now_ms();
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (in_path)
                        redirect(in_path, STDIN_FILENO);
                redirect(out_path, STDOUT_FILENO);
                redirect(err_path, STDERR_FILENO);
                execv(argv[0], argv);
                _exit(127);
        }
        if (wait4(pid, &wstatus, 0, &ru) < 0)
                return -errno;
        *m = (measure) {
                .ok = true,
                .wall_ms = bench_now_ms() - t0,
                .cpu_ms = timeval_ms(&ru.ru_utime) + timeval_ms(&ru.ru_stime),
                .rss_kib = ru.ru_maxrss, /* this child's own peak, in KiB */
                .writes = -1,
        };
        *status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
        return 0;
}

static int read_full(int fd, void *buf, size_t size) {
        for (size_t got = 0; got < size;) {
                ssize_t n = read(fd, (char *) buf + got, size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                got += (size_t) n;
        }
        return 0;
}

static void write_full(int fd, const void *buf, size_t size) {
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, (const char *) buf + done, size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        _exit(126);
                done += (size_t) n;
        }
}

int bench_fork(bench_child_fn fn, const void *arg, void *result, size_t size) {
        int fds[2], wstatus;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(fds[0]);
                close(fds[1]);
                return r;
        }
        if (pid == 0) {
                close(fds[0]);
                int r = fn(arg, result);
                write_full(fds[1], result, size);
                /* _exit: no atexit handlers, no libvirt teardown racing its own threads. */
                _exit(r < 0 ? (-r > 125 ? 125 : -r) : 0);
        }
        close(fds[1]);
        int r = read_full(fds[0], result, size);
        close(fds[0]);
        if (waitpid(pid, &wstatus, 0) < 0)
                return -errno;
        if (r < 0)
                return -EIO; /* it died before handing anything back */
        return WIFEXITED(wstatus) ? -WEXITSTATUS(wstatus) : -EIO;
}

long bench_proc_status(const char *path, const char *key) {
        _cleanup_free_ char *file = vf_printf("/proc/%s/status", path);
        _cleanup_fclose_ FILE *f = file ? fopen(file, "re") : NULL;
        size_t klen = strlen(key);
        char line[256];

        while (f && fgets(line, sizeof line, f))
                if (strncmp(line, key, klen) == 0 && line[klen] == ':')
                        return strtol(line + klen + 1, NULL, 10);
        return -1;
}

void bench_reset_peak(void) {
        /* "5" resets the peak RSS (VmHWM) to the current RSS, since Linux 4.0. */
        int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        (void) !write(fd, "5", 1);
        close(fd);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

int bench_rmtree(const char *path) {
        return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}
