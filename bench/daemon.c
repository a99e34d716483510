/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon in-process, as tests/test-daemon.c runs it: vf_daemon_run on a
 * thread against test:///default with N resources, while this thread sends
 * SIGHUP, edits one file again and again, and watches the store through a
 * read-only connection of its own. Then it measures how often the converged
 * daemon wakes up.
 */
#include "bench/bench.h"

#include <dirent.h>
#include <libvirt/virterror.h>
#include <stddef.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

/* For anything but one edit: a first pass over every resource included, 100k of them too. */
#define DEADLINE_MS(n) fmax(300 * 1000.0, (double) (n) * 10.0)
#define EDIT_DEADLINE_MS (10 * 1000.0)
#define POLL_USEC 100 /* the store is polled this often while an edit is in flight */
#define QUIET_MS 5 /* the daemon is settled after 3 windows this long without CPU time or wakeups */

typedef struct daemon_ctx {
        const daemon_args *a;
        char *paths[2];
        vf_options opts;
        vf_controller c;
        bool open;
        vf_daemon *d;
        vf_daemon_stats stats;
        vf_observer observer;
        _Atomic unsigned long first_begun, later_begun; /* resources taken up, in the first pass and after it */
        virConnectPtr watcher; /* a connection of the bench's own, told of every domain event */
        int watch_callback;
        _Atomic uint64_t events_seen;
        pthread_t thread;
        bool running;
        _Atomic pid_t tid;
        _Atomic bool done;
        int result;
        clockid_t cpu_clock;
        state_store *reader;
        edit_sample *samples;
} daemon_ctx;

static void sleep_ms(double ms) {
        struct timespec ts = { .tv_sec = (time_t) (ms / 1000), .tv_nsec = (long) (fmod(ms, 1000.0) * 1e6) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void *run_daemon(void *userdata) {
        daemon_ctx *x = userdata;
        _cleanup_free_ char *errmsg = NULL;
        bool converged;

        atomic_store(&x->tid, gettid());
        x->result = vf_daemon_run(x->d, &x->c, &converged, &errmsg);
        if (x->result < 0)
                fprintf(stderr, "virtform-bench: daemon: %s\n", errmsg ? errmsg : strerror(-x->result));
        atomic_store(&x->done, true);
        return NULL;
}

/* The daemon's thread, as each resource's turn comes: counted by the pass it comes in. */
static void count_begin(void *userdata, const char *key, size_t index, size_t total) {
        daemon_ctx *x = userdata;

        if (atomic_load(&x->stats.passes) == 0)
                atomic_fetch_add(&x->first_begun, 1);
        else
                atomic_fetch_add(&x->later_begun, 1);
}

/* libvirt's event thread: the same dispatch that tells the daemon's connection of an event tells this one. */
static int count_event(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        daemon_ctx *x = opaque;

        atomic_fetch_add(&x->events_seen, 1);
        return 0;
}

static int watch_events(daemon_ctx *x, measure *m) {
        x->watcher = virConnectOpen("test:///default");
        if (x->watcher)
                x->watch_callback = virConnectDomainEventRegisterAny(x->watcher, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                                     VIR_DOMAIN_EVENT_CALLBACK(count_event), x,
                                                                     NULL);
        if (!x->watcher || x->watch_callback < 0) {
                bench_note(m, "cannot follow libvirt's domain events: %s", virGetLastErrorMessage());
                return -EIO;
        }
        return 0;
}

static void unwatch_events(daemon_ctx *x) {
        if (!x->watcher)
                return;
        if (x->watch_callback >= 0)
                virConnectDomainEventDeregisterAny(x->watcher, x->watch_callback);
        virConnectClose(x->watcher);
}

static unsigned writes_so_far(const daemon_ctx *x) {
        /* Read while the daemon is settled: nothing writes the counters then. */
        return rc_counters_writes(&x->c.rc.counters);
}

static int64_t thread_cpu_nsec(const daemon_ctx *x) {
        struct timespec ts;
        if (clock_gettime(x->cpu_clock, &ts) < 0)
                return -1;
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until the daemon's thread has used no CPU and woken up for nothing, three windows in a row. */
static int settle(daemon_ctx *x) {
        double deadline = bench_now_ms() + DEADLINE_MS(x->a->n);
        unsigned quiet = 0;

        while (quiet < 3) {
                int64_t cpu = thread_cpu_nsec(x);
                uint64_t wakeups = atomic_load(&x->stats.wakeups);
                sleep_ms(QUIET_MS);
                if (atomic_load(&x->done))
                        return -ESRCH;
                if (bench_now_ms() > deadline)
                        return -ETIMEDOUT;
                bool still = cpu == thread_cpu_nsec(x) && wakeups == atomic_load(&x->stats.wakeups) &&
                             !atomic_load(&x->stats.armed);
                quiet = still ? quiet + 1 : 0;
        }
        return 0;
}

/* Until a counter the daemon's side raises reaches n: passes run, events delivered. */
static int wait_count(daemon_ctx *x, _Atomic uint64_t *counter, uint64_t n) {
        double deadline = bench_now_ms() + DEADLINE_MS(x->a->n);

        while (atomic_load(counter) < n) {
                if (atomic_load(&x->done))
                        return -ESRCH;
                if (bench_now_ms() > deadline)
                        return -ETIMEDOUT;
                usleep(POLL_USEC);
        }
        return 0;
}

static int start(daemon_ctx *x, daemon_result *res) {
        _cleanup_free_ char *errmsg = NULL;
        vf_daemon_options o = { .stats = &x->stats };
        int r;

        vf_options_init(&x->opts);
        x->paths[0] = (char *) x->a->dir;
        x->opts.uri = "test:///default";
        x->opts.state_path = x->a->state;
        x->opts.paths = x->paths;
        x->opts.daemon = true;
        x->opts.debounce_msec = x->a->debounce_msec;
        x->opts.log_level = VF_LOG_ERR;
        bench_reset_peak();
        double t0 = bench_now_ms();
        r = vf_daemon_new(&o, &x->d); /* first: the signals are blocked in every thread that follows */
        if (r >= 0)
                r = vf_controller_open(&x->c, &x->opts, &errmsg);
        if (r < 0) {
                bench_note(&res->first_pass, "cannot start the daemon: %s", errmsg ? errmsg : strerror(-r));
                return r;
        }
        x->open = true;
        x->c.log = NULL;
        r = watch_events(x, &res->first_pass);
        if (r < 0)
                return r;
        x->observer = (vf_observer) { .begin = count_begin, .userdata = x };
        x->c.observer = &x->observer;
        r = -pthread_create(&x->thread, NULL, run_daemon, x);
        if (r < 0)
                return r;
        x->running = true;
        r = -pthread_getcpuclockid(x->thread, &x->cpu_clock);
        if (r >= 0)
                r = wait_count(x, &x->stats.passes, 1);
        if (r < 0) {
                bench_note(&res->first_pass, "the first pass did not finish: %s", strerror(-r));
                return r;
        }
        res->first_pass = (measure) { .ok = true, .wall_ms = bench_now_ms() - t0, .cpu_ms = NAN,
                                      .rss_kib = bench_proc_status("self", "VmHWM"), .writes = writes_so_far(x) };
        r = state_open(x->a->state, STATE_OPEN_READONLY, &x->reader, &errmsg);
        if (r < 0)
                bench_note(&res->first_pass, "cannot read the store: %s", errmsg ? errmsg : strerror(-r));
        return r;
}

static void stop(daemon_ctx *x) {
        unwatch_events(x);
        if (x->running) {
                (void) kill(getpid(), SIGTERM);
                pthread_join(x->thread, NULL);
        }
        vf_daemon_free(x->d);
        if (x->open)
                vf_controller_close(&x->c);
        state_close(x->reader);
        free(x->samples);
}

/*
 * The lifecycle events of the first pass's own defines come back: how many resources the daemon takes
 * up again for them, when it should recognise its own writes and take up none. libvirt delivers them on
 * its own thread, which may lag behind the pass: the daemon's may be quiet before the last one came.
 */
static int echo(daemon_ctx *x, daemon_result *res) {
        unsigned writes = writes_so_far(x);
        double t0 = bench_now_ms();
        /*
         * Every write of this input is a define, and each define one lifecycle event, which the bench's
         * own connection is told of in the same dispatch as the daemon's.
         */
        int r = wait_count(x, &x->events_seen, (uint64_t) res->first_pass.writes);

        if (r >= 0)
                r = settle(x);
        if (r < 0)
                return r;
        /* Minus the quiet windows that tell settled from busy. */
        res->echo = (measure) { .ok = true, .wall_ms = bench_now_ms() - t0 - 3 * QUIET_MS, .cpu_ms = NAN,
                                .rss_kib = bench_proc_status("self", "VmHWM"), .writes = writes_so_far(x) - writes };
        res->first_pass_reconciled = atomic_load(&x->first_begun);
        res->echo_reconciled = atomic_load(&x->later_begun);
        return 0;
}

/* A full rescan with nothing changed: the daemon's no-op. */
static int sighup(daemon_ctx *x, measure *m) {
        int r = settle(x);
        if (r < 0)
                return r;
        uint64_t passes = atomic_load(&x->stats.passes);
        unsigned writes = writes_so_far(x);
        bench_reset_peak();
        double t0 = bench_now_ms();
        if (kill(getpid(), SIGHUP) < 0)
                return -errno;
        r = wait_count(x, &x->stats.passes, passes + 1);
        double t1 = bench_now_ms();
        if (r < 0)
                return r;
        *m = (measure) { .ok = true, .wall_ms = t1 - t0, .cpu_ms = NAN,
                         .rss_kib = bench_proc_status("self", "VmHWM") };
        r = settle(x);
        m->writes = writes_so_far(x) - writes;
        return r;
}

static int sighups(daemon_ctx *x, measure *best) {
        for (unsigned i = 0; i < (x->a->repeat ? x->a->repeat : 1); i++) {
                measure m = {};
                int r = sighup(x, &m);
                if (r < 0)
                        return r;
                bench_keep_best(best, &m);
        }
        return 0;
}

/* ---- edits ---------------------------------------------------------------------- */

typedef struct edit_target {
        size_t index;
        char *name, *path, *tmp;
} edit_target;

static void edit_target_done(edit_target *t) {
        free(t->name);
        free(t->path);
        free(t->tmp);
}

/* As configuration management writes: a hidden temp file, renamed into place. The clock starts at the rename. */
static int write_edit(const edit_target *t, unsigned memory_mib, double *t0, int64_t *t0_real) {
        _cleanup_free_ char *content = bench_yaml_domain(t->index, memory_mib);
        FILE *f = t->tmp ? fopen(t->tmp, "we") : NULL;

        if (!content || !f) {
                if (f)
                        fclose(f);
                return f ? -ENOMEM : -errno;
        }
        bool ok = fputs(content, f) >= 0;
        if (fclose(f) != 0 || !ok)
                return -EIO;
        *t0 = bench_now_ms();
        *t0_real = vf_now_realtime_usec();
        return rename(t->tmp, t->path) < 0 ? -errno : 0;
}

static int record_generation(daemon_ctx *x, const char *name, int64_t *generation, int64_t *observed,
                             int64_t *updated_usec) {
        _cleanup_(state_record_freep) state_record *rec = NULL;
        int r = state_get(x->reader, "domain", name, &rec);

        if (r < 0)
                return r;
        *generation = rec->generation;
        *observed = rec->observed_generation;
        if (updated_usec)
                *updated_usec = rec->updated_usec;
        return 0;
}

/* Until the record says the next generation was applied: the define is done and committed. */
static int wait_applied(daemon_ctx *x, const char *name, int64_t generation, int64_t *updated_usec) {
        double deadline = bench_now_ms() + EDIT_DEADLINE_MS;
        int64_t gen, observed;

        for (;;) {
                int r = record_generation(x, name, &gen, &observed, updated_usec);
                if (r < 0 && r != -EBUSY)
                        return r;
                if (r >= 0 && gen >= generation && observed >= generation)
                        return 0;
                if (bench_now_ms() > deadline)
                        return -ETIMEDOUT;
                usleep(POLL_USEC);
        }
}

/* When the event log recorded the define of that generation (realtime), or -ENOENT. */
static int define_time(daemon_ctx *x, const char *name, int64_t generation, int64_t *ret) {
        state_event *events = NULL;
        size_t n = 0;
        int r = state_event_list(x->reader, "domain", name, 0, &events, &n);

        if (r < 0)
                return r;
        r = -ENOENT;
        for (size_t i = n; i > 0 && r < 0; i--)
                if (events[i - 1].generation == generation && strcmp(events[i - 1].action, "define") == 0) {
                        *ret = events[i - 1].time_usec;
                        r = 0;
                }
        state_event_list_free(events, n);
        return r;
}

/* How long the daemon's thread has waited on a run queue, in ns: /proc/.../schedstat's second field. */
static int64_t run_delay_nsec(const daemon_ctx *x) {
        _cleanup_free_ char *path = vf_printf("/proc/self/task/%d/schedstat", (int) atomic_load(&x->tid));
        _cleanup_fclose_ FILE *f = path ? fopen(path, "re") : NULL;
        long long on_cpu, waited;

        if (!f || fscanf(f, "%lld %lld", &on_cpu, &waited) != 2)
                return 0;
        return waited;
}

static int edit_once(daemon_ctx *x, const edit_target *t, unsigned i, edit_sample *sample) {
        int64_t gen, observed, t0_real, updated, defined, waited;
        double t0;
        int r = settle(x);

        if (r >= 0)
                r = record_generation(x, t->name, &gen, &observed, NULL);
        waited = run_delay_nsec(x);
        if (r >= 0)
                r = write_edit(t, 65 + i, &t0, &t0_real); /* a new memory size each time: every edit is a change */
        if (r >= 0)
                r = wait_applied(x, t->name, gen + 1, &updated);
        if (r < 0)
                return r;
        double seen = bench_now_ms();
        waited = run_delay_nsec(x) - waited;
        r = define_time(x, t->name, gen + 1, &defined);
        if (r < 0)
                return r;
        /* Realtime stamps of the daemon, against this thread's realtime stamp of the rename. */
        *sample = (edit_sample) {
                .total = seen - t0 - x->a->debounce_msec,
                .defined = (double) (defined - t0_real) / 1000.0 - x->a->debounce_msec,
                .recorded = (double) (updated - defined) / 1000.0,
                .visible = (seen - t0) - (double) (updated - t0_real) / 1000.0,
                .queued = (double) waited / 1e6,
        };
        return 0;
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

/* Nearest rank, sorting the values in place. */
static double percentile(double *v, size_t n, double p) {
        size_t rank = (size_t) ceil(p * (double) n);
        qsort(v, n, sizeof(double), compare_double);
        return v[rank > 0 ? rank - 1 : 0];
}

static void summarize(const edit_sample *samples, size_t n, double *scratch, daemon_result *res) {
        static const size_t offsets[] = { offsetof(edit_sample, defined), offsetof(edit_sample, recorded),
                                          offsetof(edit_sample, visible), offsetof(edit_sample, queued) };
        double *p50s[] = { &res->p50_define_ms, &res->p50_record_ms, &res->p50_visible_ms, &res->p50_queued_ms };

        for (size_t i = 0; i < n; i++) {
                scratch[i] = samples[i].total;
                if (samples[i].total >= res->slowest.total)
                        res->slowest = samples[i];
        }
        res->n_edits = n;
        res->p50_ms = percentile(scratch, n, 0.50);
        res->p99_ms = percentile(scratch, n, 0.99);
        res->max_ms = scratch[n - 1];
        for (size_t i = 0; i < n; i++)
                scratch[i] = samples[i].total - samples[i].queued;
        res->p99_unqueued_ms = percentile(scratch, n, 0.99);
        for (size_t k = 0; k < ELEMENTSOF(offsets); k++) {
                for (size_t i = 0; i < n; i++)
                        scratch[i] = *(const double *) ((const char *) &samples[i] + offsets[k]);
                *p50s[k] = percentile(scratch, n, 0.50);
        }
}

static int edits(daemon_ctx *x, daemon_result *res) {
        _cleanup_(edit_target_done) edit_target t = { .index = x->a->n / 2 + 1 };
        _cleanup_free_ double *scratch = NULL;
        unsigned n = x->a->edits;
        int64_t t0_real;
        double t0;
        int r = 0;

        t.name = bench_domain_name(t.index);
        t.path = vf_printf("%s/bench%06zu.yaml", x->a->dir, t.index);
        t.tmp = vf_printf("%s/.bench%06zu.yaml.tmp", x->a->dir, t.index);
        x->samples = calloc(n ? n : 1, sizeof(edit_sample));
        scratch = calloc(n ? n : 1, sizeof(double));
        if (!t.name || !t.path || !t.tmp || !x->samples || !scratch)
                return -ENOMEM;
        unsigned writes = writes_so_far(x);
        bench_reset_peak();
        t0 = bench_now_ms();
        for (unsigned i = 0; i < n && r >= 0; i++)
                r = edit_once(x, &t, i, &x->samples[i]);
        if (r < 0) {
                bench_note(&res->edits, "edit of %s failed: %s", t.path, strerror(-r));
                return r;
        }
        res->edits = (measure) { .ok = true, .wall_ms = bench_now_ms() - t0, .cpu_ms = NAN,
                                 .rss_kib = bench_proc_status("self", "VmHWM") };
        /* Back to the generated content, for the steps after this one. */
        r = write_edit(&t, 64, &t0, &t0_real);
        if (r >= 0)
                r = settle(x);
        res->edits.writes = writes_so_far(x) - writes;
        if (n > 0)
                summarize(x->samples, n, scratch, res);
        return r;
}

/* ---- idle ------------------------------------------------------------------------- */

/* Voluntary context switches of every thread but this one: the daemon's and libvirt's event thread. */
static long switches_of_others(void) {
        _cleanup_(closedirp) DIR *d = opendir("/proc/self/task");
        pid_t self = gettid();
        long sum = 0;

        for (struct dirent *de; d && (de = readdir(d));) {
                if (de->d_name[0] == '.' || atol(de->d_name) == self)
                        continue;
                _cleanup_free_ char *path = vf_printf("self/task/%s", de->d_name);
                long v = path ? bench_proc_status(path, "voluntary_ctxt_switches") : -1;
                sum += v > 0 ? v : 0;
        }
        return sum;
}

static long switches_of_daemon(const daemon_ctx *x) {
        _cleanup_free_ char *path = vf_printf("self/task/%d", (int) atomic_load(&x->tid));
        return path ? bench_proc_status(path, "voluntary_ctxt_switches") : -1;
}

/*
 * The kernel's uevents, as a daemon without udevd receives them all: what
 * woke it while idle, if anything did. -1 when the socket cannot be had.
 */
static int uevents_open(void) {
        struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = 1 };
        int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);

        if (fd >= 0 && bind(fd, (struct sockaddr *) &addr, sizeof addr) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Counts what arrived; the first one's "action@devpath" goes to sample. */
static unsigned uevents_drain(int fd, char *sample, size_t size) {
        char buf[8192];
        unsigned n = 0;
        ssize_t len;

        while (fd >= 0 && (len = recv(fd, buf, sizeof buf - 1, 0)) > 0) {
                buf[len] = 0;
                if (n++ == 0) {
                        size_t l = strnlen(buf, size - 1);
                        memcpy(sample, buf, l);
                        sample[l] = 0;
                }
        }
        return n;
}

static int idle(daemon_ctx *x, daemon_result *res) {
        _cleanup_close_ int uevents = -1;
        int r = settle(x);
        if (r < 0)
                return r;
        uevents = uevents_open();
        bench_reset_peak();
        uint64_t w0 = atomic_load(&x->stats.wakeups);
        long own0 = switches_of_daemon(x), all0 = switches_of_others();
        double t0 = bench_now_ms();
        sleep_ms(x->a->idle_sec * 1000.0); /* measuring idleness, not waiting for anything */
        double secs = (bench_now_ms() - t0) / 1000.0;
        res->wakeups_per_sec = (double) (atomic_load(&x->stats.wakeups) - w0) / secs;
        res->ctxsw_daemon_per_sec = (double) (switches_of_daemon(x) - own0) / secs;
        res->ctxsw_all_per_sec = (double) (switches_of_others() - all0) / secs;
        unsigned n_uevents = uevents_drain(uevents, res->uevent_sample, sizeof res->uevent_sample);
        res->uevents_per_sec = uevents < 0 ? NAN : n_uevents / secs;
        res->idle = (measure) { .ok = true, .wall_ms = secs * 1000.0, .cpu_ms = NAN,
                                .rss_kib = bench_proc_status("self", "VmRSS"), .writes = -1 };
        return 0;
}

int bench_daemon(const daemon_args *a, daemon_result *res, measure *step) {
        daemon_ctx x = { .a = a, .watch_callback = -1 };
        int r;

        *res = (daemon_result) {};
        *step = (measure) { .ok = true };
        r = start(&x, res);
        if (r >= 0)
                r = echo(&x, res);
        if (r >= 0)
                r = sighups(&x, &res->sighup);
        if (r >= 0)
                r = edits(&x, res);
        if (r >= 0)
                r = idle(&x, res);
        stop(&x);
        if (r >= 0 && x.result < 0)
                r = x.result;
        if (r < 0) {
                step->ok = false;
                bench_note(step, "the daemon step failed: %s%s%s%s", strerror(-r),
                           res->first_pass.note[0] ? "; " : "", res->first_pass.note, res->edits.note);
        }
        return r;
}
