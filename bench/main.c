/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtform-bench: options, and the steps for each N in order. */
#include "bench/bench.h"

#include <getopt.h>
#include <sys/stat.h>

#define DEFAULT_EDITS 200
#define DEFAULT_DEBOUNCE_MSEC 20
#define DEFAULT_IDLE_SEC 5
#define DEFAULT_EMBED_MAX 1000
#define DEFAULT_REPEAT 3

static void progress(const bench_run *run, const char *what) {
        fprintf(stderr, "virtform-bench: N=%zu: %s\n", run->n, what);
}

/* ---- the floor and `virtform apply`, as subprocesses ------------------------------------- */

int bench_floor_parse(const char *path, floor_figures *ret) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");

        *ret = (floor_figures) {};
        if (!f || fscanf(f, "defined %zu connect_ms %lf define_ms %lf read_ms %lf marked_read_ms %lf peak_rss_kib %ld",
                         &ret->defined, &ret->connect_ms, &ret->define_ms, &ret->read_ms, &ret->marked_read_ms,
                         &ret->peak_rss_kib) != 6)
                return -EBADMSG;
        return 0;
}

static int floor_once(const bench *b, const bench_input *in, bench_run *run, measure *m, floor_figures *figures) {
        _cleanup_free_ char *out = vf_printf("%s/floor.out", in->dir), *err = vf_printf("%s/floor.err", in->dir);
        char *argv[] = { (char *) b->floor, (char *) "test:///default", in->xml, NULL };
        int status;

        if (!out || !err)
                return -ENOMEM;
        int r = bench_spawn(argv, NULL, out, err, &status, m);
        if (r < 0)
                return r;
        if (status != 0 || bench_floor_parse(out, figures) < 0 || figures->defined != run->n) {
                fprintf(stderr, "virtform-bench: the floor failed (exit %d, %zu defined); see %s\n", status,
                        figures->defined, err);
                return -EIO;
        }
        m->writes = (long) figures->defined;
        m->rss_kib = figures->peak_rss_kib;
        return 0;
}

/* The best of --repeat runs: the one least disturbed by whatever else the machine does. */
static int run_floor(const bench *b, const bench_input *in, bench_run *run) {
        for (unsigned i = 0; i < b->repeat; i++) {
                measure m;
                floor_figures figures;
                int r = floor_once(b, in, run, &m, &figures);
                if (r < 0)
                        return r;
                if (bench_keep_best(&run->floor, &m))
                        run->floor_define_ms = figures.define_ms;
                if (i == 0 || figures.read_ms < run->floor_read_ms)
                        run->floor_read_ms = figures.read_ms;
                if (i == 0 || figures.marked_read_ms < run->floor_marked_read_ms)
                        run->floor_marked_read_ms = figures.marked_read_ms;
        }
        return 0;
}

/* "apply: ... libvirt calls: W writes (...), R reads", the last line apply prints. */
static long parse_apply_writes(const char *path) {
        _cleanup_free_ char *data = NULL;
        size_t len;

        if (vf_read_file(path, 256u * 1024 * 1024, &data, &len) < 0)
                return -1;
        const char *calls = strstr(data, "libvirt calls: ");
        while (calls && strstr(calls + 1, "libvirt calls: "))
                calls = strstr(calls + 1, "libvirt calls: ");
        return calls ? strtol(calls + strlen("libvirt calls: "), NULL, 10) : -1;
}

static int apply_once(const bench *b, const bench_input *in, const char *dir, const char *tag, unsigned i,
                      measure *m) {
        _cleanup_free_ char *state = vf_printf("%s/apply-%s-%u.db", in->dir, tag, i);
        _cleanup_free_ char *out = vf_printf("%s/apply-%s.out", in->dir, tag);
        _cleanup_free_ char *err = vf_printf("%s/apply-%s.err", in->dir, tag);
        char *argv[] = { (char *) b->virtform, (char *) "apply", (char *) "-c", (char *) "test:///default",
                         (char *) "--state", state, (char *) dir, NULL };
        int status;

        if (!state || !out || !err)
                return -ENOMEM;
        int r = bench_spawn(argv, NULL, out, err, &status, m);
        if (r < 0)
                return r;
        m->writes = parse_apply_writes(out);
        if (status != 0) {
                m->ok = false;
                bench_note(m, "virtform apply exited %d; see %s", status, err);
        }
        return 0;
}

/* Each on an empty state file of its own; the best of --repeat. */
static int run_apply(const bench *b, const bench_input *in, const char *dir, const char *tag, measure *best) {
        for (unsigned i = 0; i < b->repeat; i++) {
                measure m;
                int r = apply_once(b, in, dir, tag, i, &m);
                if (r < 0)
                        return r;
                if (!m.ok) {
                        *best = m;
                        return 0;
                }
                bench_keep_best(best, &m);
        }
        return 0;
}

/* ---- in-process steps, each in a child of its own ------------------------------------------- */

static int inproc_child(const void *arg, void *result) {
        return bench_inproc(arg, result);
}

/* fresh: a new controller on the store a first one left; same: that first one's next pass. */
static int run_noop(const bench *b, const bench_input *in, const char *dir, const char *tag, bench_run *run,
                    measure *fresh, measure *same) {
        _cleanup_free_ char *state = vf_printf("%s/noop-%s.db", in->dir, tag);
        inproc_args a = { .uri = "test:///default", .state = state, .dir = dir, .repeat = b->repeat };
        inproc_result res = {};

        if (!state)
                return -ENOMEM;
        int r = bench_fork(inproc_child, &a, &res, sizeof res);
        *same = res.noop;
        *fresh = res.noop_new;
        if (!run->cold_pass.ok)
                run->cold_pass = res.cold;
        if (r < 0 && !fresh->note[0])
                bench_note(fresh, "failed: %s%s", strerror(-r), res.cold.note);
        if (r < 0 && !same->note[0])
                bench_note(same, "failed: %s%s", strerror(-r), res.cold.note);
        return 0;
}

typedef struct daemon_out {
        daemon_result res;
        measure step;
} daemon_out;

static int daemon_child(const void *arg, void *result) {
        daemon_out *out = result;
        return bench_daemon(arg, &out->res, &out->step);
}

static int run_daemon(const bench *b, const bench_input *in, bench_run *run) {
        _cleanup_free_ char *state = vf_printf("%s/daemon.db", in->dir);
        daemon_args a = { .dir = in->yaml, .state = state, .n = run->n, .edits = b->edits,
                          .debounce_msec = b->debounce_msec, .idle_sec = b->idle_sec, .repeat = b->repeat };
        daemon_out out = {};

        if (!state)
                return -ENOMEM;
        int r = bench_fork(daemon_child, &a, &out, sizeof out);
        run->daemon = out.res;
        run->daemon_step = out.step;
        if (r < 0 && run->daemon_step.ok) {
                run->daemon_step.ok = false;
                bench_note(&run->daemon_step, "the daemon child died: %s", strerror(-r));
        }
        return 0;
}

/* ---- one N -------------------------------------------------------------------------------- */

static int run_one(bench *b, bench_run *run) {
        _cleanup_(bench_input_done) bench_input in = {};
        int r;

        progress(run, "generating YAML and XML");
        r = bench_generate(b->workdir, run->n, &in, &run->generate);
        if (r < 0)
                return r;
        progress(run, "floor");
        r = run_floor(b, &in, run);
        if (r >= 0) {
                progress(run, "peers: python-libvirt, virsh");
                r = bench_peers(b, &in, run);
        }
        if (r < 0)
                return r;
        progress(run, "cold apply, YAML");
        r = run_apply(b, &in, in.yaml, "yaml", &run->apply_yaml);
        if (r >= 0) {
                progress(run, "cold apply, XML");
                r = run_apply(b, &in, in.xml, "xml", &run->apply_xml);
        }
        if (r >= 0) {
                progress(run, "no-op passes in-process");
                r = run_noop(b, &in, in.yaml, "yaml", run, &run->noop_new_yaml, &run->noop_yaml);
        }
        if (r >= 0)
                r = run_noop(b, &in, in.xml, "xml", run, &run->noop_new_xml, &run->noop_xml);
        if (r >= 0) {
                progress(run, "daemon: first pass, SIGHUP, edits, idle");
                r = run_daemon(b, &in, run);
        }
        if (r >= 0) {
                progress(run, "no-op across processes on qemu:///embed");
                r = bench_embed(b, &in, run);
        }
        if (!b->keep)
                (void) bench_rmtree(in.dir);
        return r;
}

/* ---- options -------------------------------------------------------------------------------- */

static void help(void) {
        printf("Usage: virtform-bench [OPTIONS]\n\n"
               "Measures virtform against the floors (N plain virDomainDefineXML calls; a listing and N\n"
               "virDomainGetXMLDesc calls) and its peers (python-libvirt, virsh) for each N, and says\n"
               "whether each target is met.\n\n"
               "  --n N             number of domains; repeat for several (default: 1000 and 10000)\n"
               "  --json            print JSON instead of the table\n"
               "  --edits K         edits timed through the daemon (default %d)\n"
               "  --debounce MSEC   the daemon's --debounce (default %d)\n"
               "  --idle SEC        how long the converged daemon is watched (default %d)\n"
               "  --embed-max N     the qemu:///embed no-op only up to this N; 0: never (default %d)\n"
               "  --repeat K        time the floor, the cold applies and the no-ops K times, keep the\n"
               "                    fastest (default %d)\n"
               "  --workdir DIR     where the input and state files go (default: a new directory in /var/tmp)\n"
               "  --keep            keep the work directory\n"
               "  --virtform PATH   the virtform binary to time (default: the one built with this)\n"
               "  --floor PATH      the floor program (default: the one built with this)\n",
               DEFAULT_EDITS, DEFAULT_DEBOUNCE_MSEC, DEFAULT_IDLE_SEC, DEFAULT_EMBED_MAX, DEFAULT_REPEAT);
}

static int parse_size(const char *s, size_t max, size_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || *s == '-' || v > max)
                return -EINVAL;
        *ret = (size_t) v;
        return 0;
}

static int parse_unsigned(const char *s, unsigned max, unsigned *ret) {
        size_t v;
        int r = parse_size(s, max, &v);
        if (r >= 0)
                *ret = (unsigned) v;
        return r;
}

static int add_n(bench *b, const char *s) {
        size_t n, *ns;

        if (parse_size(s, 1000000, &n) < 0 || n == 0)
                return -EINVAL;
        ns = realloc(b->ns, (b->n_ns + 1) * sizeof *ns);
        if (!ns)
                return -ENOMEM;
        b->ns = ns;
        b->ns[b->n_ns++] = n;
        return 0;
}

enum {
        OPT_N = 0x100,
        OPT_JSON,
        OPT_EDITS,
        OPT_DEBOUNCE,
        OPT_IDLE,
        OPT_EMBED_MAX,
        OPT_REPEAT,
        OPT_WORKDIR,
        OPT_KEEP,
        OPT_VIRTFORM,
        OPT_FLOOR,
};

static const struct option options[] = {
        { "n", required_argument, NULL, OPT_N },
        { "json", no_argument, NULL, OPT_JSON },
        { "edits", required_argument, NULL, OPT_EDITS },
        { "debounce", required_argument, NULL, OPT_DEBOUNCE },
        { "idle", required_argument, NULL, OPT_IDLE },
        { "embed-max", required_argument, NULL, OPT_EMBED_MAX },
        { "repeat", required_argument, NULL, OPT_REPEAT },
        { "workdir", required_argument, NULL, OPT_WORKDIR },
        { "keep", no_argument, NULL, OPT_KEEP },
        { "virtform", required_argument, NULL, OPT_VIRTFORM },
        { "floor", required_argument, NULL, OPT_FLOOR },
        { "help", no_argument, NULL, 'h' },
        {},
};

static int parse_option(bench *b, int c, const char *arg) {
        switch (c) {
        case OPT_N:
                return add_n(b, arg);
        case OPT_JSON:
                b->json = true;
                return 0;
        case OPT_EDITS:
                return parse_unsigned(arg, 100000, &b->edits);
        case OPT_DEBOUNCE:
                return parse_unsigned(arg, 60000, &b->debounce_msec);
        case OPT_IDLE:
                return parse_unsigned(arg, 3600, &b->idle_sec);
        case OPT_EMBED_MAX:
                return parse_size(arg, 1000000, &b->embed_max_n);
        case OPT_REPEAT:
                return parse_unsigned(arg, 100, &b->repeat) < 0 || b->repeat == 0 ? -EINVAL : 0;
        case OPT_WORKDIR:
                free(b->workdir);
                b->workdir = strdup(arg);
                return b->workdir ? 0 : -ENOMEM;
        case OPT_KEEP:
                b->keep = true;
                return 0;
        case OPT_VIRTFORM:
                b->virtform = arg;
                return 0;
        case OPT_FLOOR:
                b->floor = arg;
                return 0;
        default:
                return -EINVAL;
        }
}

/* 1: --help was given; 0: go on. */
static int parse_args(bench *b, int argc, char **argv) {
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        help();
                        return 1;
                }
                if (parse_option(b, c, optarg) < 0) {
                        fprintf(stderr, "virtform-bench: invalid %s%s%s; try --help\n", argv[optind - 1],
                                optarg ? " " : "", optarg ? optarg : "");
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "virtform-bench: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (b->n_ns == 0 && (add_n(b, "1000") < 0 || add_n(b, "10000") < 0))
                return -ENOMEM;
        return 0;
}

static int make_workdir(bench *b) {
        if (b->workdir)
                return mkdir(b->workdir, 0755) < 0 && errno != EEXIST ? -errno : 0;
        /* Not /tmp: that may be a RAM disk, and SQLite's fsyncs would be free there. */
        b->workdir = strdup("/var/tmp/virtform-bench.XXXXXX");
        if (!b->workdir)
                return -ENOMEM;
        return mkdtemp(b->workdir) ? 0 : -errno;
}

static void bench_done(bench *b) {
        if (b->workdir && !b->keep)
                (void) bench_rmtree(b->workdir);
        free(b->workdir);
        free(b->ns);
        free(b->runs);
}

int main(int argc, char **argv) {
        _cleanup_(bench_done) bench b = {
                .edits = DEFAULT_EDITS,
                .debounce_msec = DEFAULT_DEBOUNCE_MSEC,
                .idle_sec = DEFAULT_IDLE_SEC,
                .embed_max_n = DEFAULT_EMBED_MAX,
                .repeat = DEFAULT_REPEAT,
                .virtform = BENCH_VIRTFORM,
                .floor = BENCH_FLOOR,
                .python_peer = BENCH_PYTHON_PEER,
        };
        int r = parse_args(&b, argc, argv);

        if (r != 0)
                return r < 0 ? 1 : 0;
        r = make_workdir(&b);
        b.runs = calloc(b.n_ns, sizeof *b.runs);
        if (r < 0 || !b.runs) {
                fprintf(stderr, "virtform-bench: cannot make the work directory: %s\n", strerror(r < 0 ? -r : ENOMEM));
                return 1;
        }
        for (size_t i = 0; i < b.n_ns; i++) {
                b.runs[i].n = b.ns[i];
                r = run_one(&b, &b.runs[i]);
                if (r < 0) {
                        fprintf(stderr, "virtform-bench: N=%zu: %s\n", b.ns[i], strerror(-r));
                        return 1;
                }
                b.n_runs++;
        }
        if (b.json)
                bench_print_json(&b, stdout);
        else
                bench_print_table(&b, stdout);
        return 0;
}
