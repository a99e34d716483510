/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Passes in-process: a cold pass, then passes with nothing changed (the
 * no-ops): the same controller's next, and a new controller's first on the
 * store the first one left, timed with their libvirt write calls and peak RSS.
 * On qemu:///embed the no-op runs in a second process, against the store and
 * the hypervisor state the first one left on disk.
 */
#include "bench/bench.h"

#include <libvirt/virterror.h>
#include <sys/resource.h>
#include <sys/stat.h>

static double cpu_ms(const struct rusage *ru) {
        return (double) (ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000.0 +
               (double) (ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1000.0;
}

typedef struct clock_mark {
        double wall_ms, cpu_ms;
} clock_mark;

static clock_mark clock_now(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (clock_mark) { .wall_ms = bench_now_ms(), .cpu_ms = cpu_ms(&ru) };
}

/* One pass, timed from start (which may include an open before it) to its end. */
static int timed_pass(vf_controller *c, clock_mark start, measure *m) {
        _cleanup_free_ char *errmsg = NULL;
        vf_report report = {};
        int r = vf_controller_pass(c, &report, &errmsg);
        clock_mark end = clock_now();

        if (r < 0) {
                bench_note(m, "the pass failed: %s", errmsg ? errmsg : strerror(-r));
                vf_report_done(&report);
                return r;
        }
        *m = (measure) {
                .ok = true,
                .wall_ms = end.wall_ms - start.wall_ms,
                .cpu_ms = end.cpu_ms - start.cpu_ms,
                .rss_kib = bench_proc_status("self", "VmHWM"),
                .writes = rc_counters_writes(&report.counters),
        };
        if (!vf_report_converged(&report))
                bench_note(m, "not converged: %u failed, %u waiting, %u file errors", report.by_outcome[RC_FAILED],
                           report.by_outcome[RC_WAITING], report.n_file_errors);
        vf_report_done(&report);
        return 0;
}

static int open_controller(vf_controller *c, const vf_options *opts, measure *m) {
        _cleanup_free_ char *errmsg = NULL;
        int r = vf_controller_open(c, opts, &errmsg);

        if (r < 0) {
                bench_note(m, "%s", errmsg ? errmsg : strerror(-r));
                return r;
        }
        c->log = NULL;
        return 0;
}

/*
 * What a new process finds: the store and the hypervisor as the last one left them, and nothing of its
 * memory. Timed from the open to the close, as a process would pay them; exec and the connection's own
 * start are not in it (the test driver is held open meanwhile, so the domains outlive the controller).
 */
static int new_controller_pass(const vf_options *opts, measure *m) {
        vf_controller c = {};

        bench_reset_peak();
        clock_mark start = clock_now();
        int r = open_controller(&c, opts, m);
        if (r < 0)
                return r;
        r = timed_pass(&c, start, m);
        vf_controller_close(&c);
        clock_mark end = clock_now();
        if (r >= 0) {
                m->wall_ms = end.wall_ms - start.wall_ms;
                m->cpu_ms = end.cpu_ms - start.cpu_ms;
        }
        return r;
}

/* Repeats a step, keeping the fastest; a failure is kept instead, and ends it. */
static int best_of(unsigned repeat, measure *best, int (*step)(void *userdata, measure *m), void *userdata) {
        for (unsigned i = 0; i < (repeat ? repeat : 1); i++) {
                measure m = {};
                int r = step(userdata, &m);
                if (r < 0) {
                        *best = m;
                        return r;
                }
                bench_keep_best(best, &m);
        }
        return 0;
}

static int same_controller_step(void *userdata, measure *m) {
        bench_reset_peak();
        return timed_pass(userdata, clock_now(), m);
}

static int new_controller_step(void *userdata, measure *m) {
        return new_controller_pass(userdata, m);
}

int bench_inproc(const inproc_args *a, inproc_result *res) {
        char *paths[] = { (char *) a->dir, NULL };
        vf_controller c = {};
        virConnectPtr keep = NULL;
        vf_options opts;
        int r;

        *res = (inproc_result) {};
        /* The embedded drivers refuse to open without an event loop; `virtform apply` registers none. */
        if (strstr(a->uri, "embed") && virEventRegisterDefaultImpl() < 0) {
                bench_note(&res->cold, "cannot register libvirt's event loop");
                return -EIO;
        }
        /* test:///default lives while a connection to it does: this one outlives every controller's. */
        if (!a->cold_only) {
                keep = virConnectOpen(a->uri);
                if (!keep) {
                        bench_note(&res->cold, "cannot connect to %s: %s", a->uri, virGetLastErrorMessage());
                        return -EIO;
                }
        }
        vf_options_init(&opts);
        opts.uri = a->uri;
        opts.state_path = a->state;
        opts.paths = paths;
        opts.log_level = VF_LOG_ERR;
        double t0 = bench_now_ms();
        r = open_controller(&c, &opts, &res->cold);
        res->open_ms = bench_now_ms() - t0;
        if (r >= 0) {
                bench_reset_peak();
                r = timed_pass(&c, clock_now(), &res->cold);
                if (r >= 0 && !a->cold_only)
                        r = best_of(a->repeat, &res->noop, same_controller_step, &c);
                vf_controller_close(&c);
        }
        if (r >= 0 && !a->cold_only)
                r = best_of(a->repeat, &res->noop_new, new_controller_step, &opts);
        if (keep)
                virConnectClose(keep);
        return r;
}

/* ---- qemu:///embed, across processes ---------------------------------------------- */

static int inproc_child(const void *arg, void *result) {
        return bench_inproc(arg, result);
}

/*
 * An embedded root whose QEMU runs as root. As the default user, libvirt finds /dev/kvm (0600 here)
 * unusable for it while its probe used KVM, calls its capabilities cache outdated at every lookup, and
 * probes QEMU again for each define: seconds each.
 */
static int make_root(const bench *b, const char *root) {
        _cleanup_free_ char *etc = vf_printf("%s/etc", root), *conf = vf_printf("%s/etc/qemu.conf", root);
        _cleanup_free_ char *cache = vf_printf("%s/cache", root), *shared = vf_printf("%s/embed-cache", b->workdir);
        _cleanup_fclose_ FILE *f = NULL;

        if (!etc || !conf || !cache || !shared)
                return -ENOMEM;
        if ((mkdir(root, 0755) < 0 && errno != EEXIST) || (mkdir(etc, 0755) < 0 && errno != EEXIST))
                return -errno;
        /* One capabilities cache for every root: QEMU is probed once per run, not once per root. */
        if ((mkdir(shared, 0755) < 0 && errno != EEXIST) || (symlink(shared, cache) < 0 && errno != EEXIST))
                return -errno;
        f = fopen(conf, "we");
        if (!f)
                return -errno;
        fputs("user = \"root\"\ngroup = \"root\"\n", f);
        return fflush(f) == 0 ? 0 : -EIO;
}

static int embed_floor(const bench *b, const bench_input *in, bench_run *run) {
        _cleanup_free_ char *xml = vf_printf("%s/embed-xml", in->dir), *root = vf_printf("%s/embed-floor", in->dir);
        _cleanup_free_ char *uri = vf_printf("qemu:///embed?root=%s", root);
        _cleanup_free_ char *out = vf_printf("%s/embed-floor.out", in->dir);
        _cleanup_free_ char *err = vf_printf("%s/embed-floor.err", in->dir);
        int status, r;

        if (!xml || !root || !uri || !out || !err)
                return -ENOMEM;
        /* What virtform defines there when no type is given and KVM is missing; a define costs the same either way. */
        r = bench_generate_xml(xml, run->n, "qemu");
        if (r >= 0)
                r = make_root(b, root);
        if (r < 0)
                return r;
        char *argv[] = { (char *) b->floor, uri, xml, NULL };
        r = bench_spawn(argv, NULL, out, err, &status, &run->embed_floor);
        if (r < 0)
                return r;
        floor_figures figures;
        if (status != 0 || bench_floor_parse(out, &figures) < 0) {
                run->embed_floor.ok = false;
                bench_note(&run->embed_floor, "the floor failed on qemu:///embed (exit %d), see %s", status, err);
                return -EIO;
        }
        run->embed_floor_define_ms = figures.define_ms;
        run->embed_floor_read_ms = figures.read_ms;
        run->embed_floor.rss_kib = figures.peak_rss_kib;
        return 0;
}

static bool have_qemu(measure *m) {
        if (access("/usr/bin/qemu-system-x86_64", X_OK) == 0)
                return true;
        bench_note(m, "skipped: qemu-system-x86 is not installed (bench/run installs it)");
        return false;
}

int bench_embed(const bench *b, const bench_input *in, bench_run *run) {
        _cleanup_free_ char *root = vf_printf("%s/embed", in->dir), *state = vf_printf("%s/embed.db", in->dir);
        _cleanup_free_ char *uri = vf_printf("qemu:///embed?root=%s", root);
        inproc_result first = {}, second = {};
        int r;

        if (!root || !state || !uri)
                return -ENOMEM;
        if (run->n > b->embed_max_n) {
                bench_note(&run->embed_noop, "skipped: N > --embed-max %zu", b->embed_max_n);
                return 0;
        }
        if (!have_qemu(&run->embed_noop))
                return 0;
        r = embed_floor(b, in, run);
        if (r >= 0)
                r = make_root(b, root);
        if (r < 0) {
                bench_note(&run->embed_noop, "skipped: %s", run->embed_floor.note);
                return 0;
        }
        inproc_args a = { .uri = uri, .state = state, .dir = in->yaml, .cold_only = true };
        r = bench_fork(inproc_child, &a, &first, sizeof first);
        if (r >= 0 && first.cold.ok)
                r = bench_fork(inproc_child, &a, &second, sizeof second);
        if (r < 0 || !first.cold.ok || !second.cold.ok) {
                bench_note(&run->embed_noop, "skipped: the embed driver does not work here: %s",
                           !first.cold.ok ? first.cold.note : second.cold.note);
                return 0;
        }
        run->embed_noop = second.cold;
        run->embed_open_ms = second.open_ms;
        return 0;
}
