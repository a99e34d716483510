/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The results: one row per figure, each with its ratio to the floor measured
 * in the same run and, where the issue sets one, its target and whether it
 * was met. The table and the JSON print the same rows.
 */
#include "bench/bench.h"

#include <stdarg.h>
#include <sys/utsname.h>

#define MAX_ROWS 32
/* The targets: each a ratio to a floor measured in the same run, or an absolute. */
#define COLD_MAX_RATIO 1.25 /* to the define floor */
#define NOOP_MAX_RATIO 1.5 /* to the read floor, with no write */
#define EDIT_P99_MAX_MS 5.0
#define OWN_RSS_MAX_KIB (16 * 1024) /* at 10k; beyond, per resource: */
#define OWN_RSS_MAX_KIB_PER_RESOURCE 1.6

typedef enum verdict {
        MET_NONE = -1, /* no target */
        MET_NO,
        MET_YES,
} verdict;

typedef struct row {
        const char *key; /* for machines */
        const char *label;
        bool ok; /* measured */
        double value;
        const char *unit; /* "ms", "/s", "MiB", "resources" */
        bool per_n; /* grows with N: shown per resource, for the curve */
        double ratio; /* NAN: none */
        const char *floor; /* what ratio divides by: "define", "read", ... */
        double cpu_ms, cpu_ratio; /* user + system CPU time, and its ratio to the floor's; NAN: not measured */
        long writes; /* -1: none */
        long rss_kib; /* -1: none */
        double rss_ratio;
        char target[48]; /* "": none */
        verdict met;
        const char *note;
        char own_note[256]; /* a note composed for this row; note points here then */
} row;

typedef struct rows {
        row r[MAX_ROWS];
        size_t n;
} rows;

static double ratio(double value, double floor) {
        return floor > 0 ? value / floor : NAN;
}

static row *add(rows *rs, const char *key, const char *label) {
        row *r = &rs->r[rs->n++];

        *r = (row) { .key = key, .label = label, .ratio = NAN, .floor = "", .cpu_ms = NAN, .cpu_ratio = NAN,
                     .writes = -1, .rss_kib = -1, .rss_ratio = NAN, .met = MET_NONE, .unit = "ms", .note = "" };
        return r;
}

/* A step timed against the define floor: time, CPU, writes and RSS with their ratios. */
static row *add_step(rows *rs, const char *key, const char *label, const bench_run *run, const measure *m) {
        row *r = add(rs, key, label);

        r->ok = m->ok;
        r->note = m->note;
        r->per_n = true;
        if (!m->ok)
                return r;
        r->value = m->wall_ms;
        r->ratio = ratio(m->wall_ms, run->floor.wall_ms);
        r->floor = "define";
        r->cpu_ms = m->cpu_ms;
        if (!isnan(m->cpu_ms))
                r->cpu_ratio = ratio(m->cpu_ms, run->floor.cpu_ms);
        r->writes = m->writes;
        r->rss_kib = m->rss_kib;
        if (m->rss_kib >= 0)
                r->rss_ratio = ratio((double) m->rss_kib, (double) run->floor.rss_kib);
        return r;
}

/* A no-op: what any pass that checks every object must spend is the read floor, not the define floor. */
static row *add_noop(rows *rs, const char *key, const char *label, const bench_run *run, const measure *m,
                     double read_floor_ms, const char *floor) {
        row *r = add_step(rs, key, label, run, m);

        r->ratio = ratio(m->wall_ms, read_floor_ms);
        r->floor = floor;
        r->cpu_ratio = NAN; /* the read floor is timed inside its process: no CPU time of its own */
        return r;
}

static void judge(row *r, bool ok, const char *target_fmt, ...) _printf_(3, 4);

static void judge(row *r, bool ok, const char *target_fmt, ...) {
        va_list ap;

        va_start(ap, target_fmt);
        vsnprintf(r->target, sizeof r->target, target_fmt, ap);
        va_end(ap);
        r->met = r->ok && ok ? MET_YES : MET_NO;
}

static void judge_cold(row *r) {
        judge(r, r->ratio <= COLD_MAX_RATIO, "<= %.2fx define floor", COLD_MAX_RATIO);
}

static void judge_noop(row *r) {
        judge(r, r->ratio <= NOOP_MAX_RATIO && r->writes == 0, "<= %.1fx read floor, 0 writes", NOOP_MAX_RATIO);
}

static long max_rss(const bench_run *run) {
        const measure *ms[] = { &run->apply_yaml, &run->apply_xml, &run->noop_new_yaml, &run->noop_new_xml,
                                &run->noop_yaml, &run->noop_xml, &run->daemon.first_pass, &run->daemon.echo,
                                &run->daemon.sighup, &run->daemon.edits };
        long max = -1;

        for (size_t i = 0; i < ELEMENTSOF(ms); i++)
                if (ms[i]->ok && ms[i]->rss_kib > max)
                        max = ms[i]->rss_kib;
        return max;
}

/* The daemon's own cold start: once its first pass is done, its own define events should change nothing. */
static void second_pass_row(rows *rs, const bench_run *run) {
        const daemon_result *d = &run->daemon;
        row *r = add(rs, "daemon_second_pass", "daemon cold start: reconciled again");

        r->ok = d->echo.ok;
        r->note = d->echo.note;
        r->value = (double) d->echo_reconciled;
        r->unit = "resources";
        r->writes = d->echo.writes;
        judge(r, d->echo_reconciled == 0, "0 beyond the first pass");
        if (r->ok) {
                snprintf(r->own_note, sizeof r->own_note,
                         "the first pass took up %lu; settling after it took %.1f ms", d->first_pass_reconciled,
                         d->echo.wall_ms);
                r->note = r->own_note;
        }
}

static void edit_rows(rows *rs, const bench_run *run) {
        const daemon_result *d = &run->daemon;
        double per_define = run->floor.wall_ms / (double) run->n;
        row *r;

        r = add(rs, "edit_p50", "edit latency p50 beyond debounce");
        r->ok = d->edits.ok;
        r->note = d->edits.note;
        r->value = d->p50_ms;
        r->ratio = ratio(d->p50_ms, per_define);
        r->floor = "1 define";
        if (r->ok && !r->note[0]) {
                snprintf(r->own_note, sizeof r->own_note,
                         "medians: rename to define logged %.2f ms, define to record %.2f ms, record to seen "
                         "committed %.2f ms; daemon thread waiting for a CPU %.2f ms",
                         d->p50_define_ms, d->p50_record_ms, d->p50_visible_ms, d->p50_queued_ms);
                r->note = r->own_note;
        }
        r = add(rs, "edit_p99", "edit latency p99 beyond debounce");
        r->ok = d->edits.ok;
        r->value = d->p99_ms;
        r->ratio = ratio(d->p99_ms, per_define);
        r->floor = "1 define";
        r->writes = d->edits.writes;
        r->rss_kib = d->edits.rss_kib;
        if (r->ok) {
                snprintf(r->own_note, sizeof r->own_note,
                         "p99 less its wait for a CPU %.2f ms; slowest (%.2f ms): rename to define logged %.2f ms, "
                         "define to record %.2f ms, record to seen committed %.2f ms; waiting for a CPU %.2f ms",
                         d->p99_unqueued_ms, d->slowest.total, d->slowest.defined, d->slowest.recorded,
                         d->slowest.visible, d->slowest.queued);
                r->note = r->own_note;
        }
        r->rss_ratio = ratio((double) d->edits.rss_kib, (double) run->floor.rss_kib);
        judge(r, d->p99_ms <= EDIT_P99_MAX_MS, "<= %.0f ms", EDIT_P99_MAX_MS);
}

static void idle_rows(rows *rs, const bench_run *run) {
        const daemon_result *d = &run->daemon;
        row *r;

        r = add(rs, "idle_wakeups", "idle: daemon loop wakeups");
        r->ok = d->idle.ok;
        r->note = d->idle.note;
        r->value = d->wakeups_per_sec;
        r->unit = "/s";
        r->rss_kib = d->idle.rss_kib;
        r->rss_ratio = ratio((double) d->idle.rss_kib, (double) run->floor.rss_kib);
        judge(r, d->wakeups_per_sec == 0, "0/s");
        if (d->wakeups_per_sec > 0 && d->uevents_per_sec > 0) {
                snprintf(r->own_note, sizeof r->own_note,
                         "the host had %.2f kernel uevents/s meanwhile (e.g. %s); a daemon without udevd receives "
                         "every one",
                         d->uevents_per_sec, d->uevent_sample);
                r->note = r->own_note;
        }
        r = add(rs, "idle_ctxsw_daemon", "idle: daemon thread voluntary ctx switches");
        r->ok = d->idle.ok;
        r->value = d->ctxsw_daemon_per_sec;
        r->unit = "/s";
        r = add(rs, "idle_ctxsw_all", "idle: all its threads' voluntary ctx switches");
        r->ok = d->idle.ok;
        r->value = d->ctxsw_all_per_sec;
        r->unit = "/s";
}

static void daemon_rows(rows *rs, const bench_run *run) {
        row *r;

        if (!run->daemon_step.ok) {
                r = add(rs, "daemon", "daemon");
                r->note = run->daemon_step.note;
        }
        add_step(rs, "daemon_first_pass", "daemon: start and first full pass", run, &run->daemon.first_pass);
        second_pass_row(rs, run);
        r = add_noop(rs, "noop_sighup", "no-op: daemon SIGHUP rescan", run, &run->daemon.sighup, run->floor_read_ms,
                     "read");
        judge_noop(r);
        edit_rows(rs, run);
        idle_rows(rs, run);
}

/* virtform's own share: its largest step's peak less the floor's, whose process holds the same N domains. */
static void own_rss_row(rows *rs, const bench_run *run) {
        row *r = add(rs, "own_peak_rss", "own peak RSS: largest step less the floor's");
        long peak = max_rss(run);
        double max_kib = fmax(OWN_RSS_MAX_KIB, OWN_RSS_MAX_KIB_PER_RESOURCE * (double) run->n);

        r->ok = peak >= 0 && run->floor.rss_kib > 0;
        r->per_n = true;
        r->rss_kib = peak;
        r->rss_ratio = ratio((double) peak, (double) run->floor.rss_kib);
        r->value = (double) (peak - run->floor.rss_kib) / 1024.0;
        r->unit = "MiB";
        judge(r, r->value * 1024.0 <= max_kib, "<= %.0f MiB (%.1f KiB/resource)", max_kib / 1024.0,
              OWN_RSS_MAX_KIB_PER_RESOURCE);
        if (r->ok) {
                snprintf(r->own_note, sizeof r->own_note, "%.2f KiB per resource; the floor's peak %.1f MiB",
                         r->value * 1024.0 / (double) run->n, (double) run->floor.rss_kib / 1024.0);
                r->note = r->own_note;
        }
}

static void build_rows(const bench_run *run, rows *rs) {
        row *r;

        *rs = (rows) {};
        add_step(rs, "floor", "define floor: N x DefineXML, subprocess", run, &run->floor);
        r = add(rs, "read_floor", "read floor: list + N x GetXMLDesc");
        r->ok = true;
        r->per_n = true;
        r->value = run->floor_read_ms;
        r->ratio = ratio(run->floor_read_ms, run->floor.wall_ms);
        r->floor = "define";
        /* Not a floor of any tool: what libvirt spends formatting virtform's marker at every read, shown apart. */
        r = add(rs, "read_floor_marked", "read floor, each domain marked as virtform marks");
        r->ok = true;
        r->per_n = true;
        r->value = run->floor_marked_read_ms;
        r->ratio = ratio(run->floor_marked_read_ms, run->floor_read_ms);
        r->floor = "read";
        add_step(rs, "peer_python", "peer: python-libvirt define loop", run, &run->peer_python);
        add_step(rs, "peer_virsh", "peer: virsh batch of define commands", run, &run->peer_virsh);
        judge_cold(add_step(rs, "cold_apply_yaml", "cold apply, YAML (virtform apply)", run, &run->apply_yaml));
        judge_cold(add_step(rs, "cold_apply_xml", "cold apply, XML (virtform apply)", run, &run->apply_xml));
        add_step(rs, "cold_pass_inproc", "cold pass in-process, YAML", run, &run->cold_pass);
        r = add_noop(rs, "noop_new_yaml", "no-op: new controller, YAML", run, &run->noop_new_yaml,
                     run->floor_read_ms, "read");
        judge_noop(r);
        r = add_noop(rs, "noop_new_xml", "no-op: new controller, XML", run, &run->noop_new_xml, run->floor_read_ms,
                     "read");
        judge_noop(r);
        add_noop(rs, "noop_yaml", "no-op: same controller's 2nd pass, YAML", run, &run->noop_yaml,
                 run->floor_read_ms, "read");
        add_noop(rs, "noop_xml", "no-op: same controller's 2nd pass, XML", run, &run->noop_xml, run->floor_read_ms,
                 "read");
        daemon_rows(rs, run);
        r = add_noop(rs, "noop_embed", "no-op: new process, qemu:///embed (*)", run, &run->embed_noop,
                     run->embed_floor_read_ms, "embed read");
        r->per_n = false; /* run at one N only */
        if (r->ok)
                r->rss_ratio = ratio((double) r->rss_kib, (double) run->embed_floor.rss_kib);
        own_rss_row(rs, run);
}

/* A row's figure per resource: µs for times, KiB for memory; NAN when it does not grow with N. */
static double per_resource(const row *r, size_t n, const char **unit) {
        bool ms = strcmp(r->unit, "ms") == 0;

        *unit = ms ? "us" : "KiB";
        if (!r->per_n || !r->ok || n == 0)
                return NAN;
        return r->value * (ms ? 1000.0 : 1024.0) / (double) n;
}

static const row *find_row(const rows *rs, const char *key) {
        for (size_t i = 0; i < rs->n; i++)
                if (strcmp(rs->r[i].key, key) == 0)
                        return &rs->r[i];
        return NULL;
}

/* ---- the machine ---------------------------------------------------------------------------- */

typedef struct machine {
        long cpus;
        char model[128];
        long mem_kib;
        char kernel[160];
        char libvirt[32];
} machine;

static void cpu_model(char *out, size_t size) {
        _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
        char line[256];

        snprintf(out, size, "unknown");
        while (f && fgets(line, sizeof line, f)) {
                char *colon = strchr(line, ':');
                if (strncmp(line, "model name", 10) != 0 || !colon)
                        continue;
                snprintf(out, size, "%s", colon + 2);
                out[strcspn(out, "\n")] = 0;
                return;
        }
}

static long mem_total_kib(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
        long kib = -1;

        if (!f || fscanf(f, "MemTotal: %ld kB", &kib) != 1)
                return -1;
        return kib;
}

static void get_machine(machine *m) {
        struct utsname u;
        unsigned long v = 0;

        *m = (machine) { .cpus = sysconf(_SC_NPROCESSORS_ONLN), .mem_kib = mem_total_kib() };
        cpu_model(m->model, sizeof m->model);
        if (uname(&u) == 0)
                snprintf(m->kernel, sizeof m->kernel, "%s %s", u.sysname, u.release);
        if (virGetVersion(&v, NULL, NULL) == 0)
                snprintf(m->libvirt, sizeof m->libvirt, "%lu.%lu.%lu", v / 1000000, v / 1000 % 1000, v % 1000);
}

/* ---- table ----------------------------------------------------------------------------------- */

static const char *met_string(verdict m) {
        return m == MET_YES ? "met" : m == MET_NO ? "MISSED" : "";
}

static void print_row(FILE *f, const row *r) {
        char value[32] = "-", rat[48] = "", cpu_rat[32] = "", writes[32] = "", rss[32] = "", rss_rat[32] = "";

        if (!r->ok) {
                fprintf(f, "  %-46s %s%s%s\n", r->label, r->note[0] ? r->note : "not measured",
                        r->target[0] ? "; target " : "", r->target[0] ? r->target : "");
                if (r->target[0])
                        fprintf(f, "  %-46s %s\n", "", met_string(r->met));
                return;
        }
        snprintf(value, sizeof value, "%.*f %s", strcmp(r->unit, "resources") == 0 ? 0 : 2, r->value, r->unit);
        if (!isnan(r->ratio))
                snprintf(rat, sizeof rat, "%.3f %s", r->ratio, r->floor);
        if (!isnan(r->cpu_ratio))
                snprintf(cpu_rat, sizeof cpu_rat, "%.3f", r->cpu_ratio);
        if (r->writes >= 0)
                snprintf(writes, sizeof writes, "%ld", r->writes);
        if (r->rss_kib >= 0)
                snprintf(rss, sizeof rss, "%.1f MiB", (double) r->rss_kib / 1024.0);
        if (!isnan(r->rss_ratio))
                snprintf(rss_rat, sizeof rss_rat, "%.2f", r->rss_ratio);
        fprintf(f, "  %-46s %15s %-16s %8s %7s %10s %6s  %-32s %s\n", r->label, value, rat, cpu_rat, writes, rss,
                rss_rat, r->target, met_string(r->met));
        if (r->note[0])
                fprintf(f, "  %-46s note: %s\n", "", r->note);
}

/* Each figure that grows with N, per resource at every N: linear is a flat line. */
static void print_curve(const bench *b, FILE *f) {
        rows *all = calloc(b->n_runs, sizeof *all);
        const char *unit;

        if (!all)
                return;
        for (size_t i = 0; i < b->n_runs; i++)
                build_rows(&b->runs[i], &all[i]);
        fprintf(f, "\nper resource (time in us, memory in KiB): linear where a row stays level\n  %-46s", "N =");
        for (size_t i = 0; i < b->n_runs; i++)
                fprintf(f, " %12zu", b->runs[i].n);
        fputc('\n', f);
        for (size_t j = 0; j < all[0].n; j++) {
                const row *first = &all[0].r[j];
                if (!first->per_n)
                        continue;
                fprintf(f, "  %-46s", first->label);
                for (size_t i = 0; i < b->n_runs; i++) {
                        const row *r = find_row(&all[i], first->key);
                        double v = r ? per_resource(r, b->runs[i].n, &unit) : NAN;
                        char cell[32] = "-";
                        if (!isnan(v))
                                snprintf(cell, sizeof cell, "%.2f %s", v, unit);
                        fprintf(f, " %12s", cell);
                }
                fputc('\n', f);
        }
        free(all);
}

void bench_print_table(const bench *b, FILE *f) {
        unsigned n_met = 0, n_missed = 0;
        machine m;
        rows rs;

        get_machine(&m);
        fprintf(f, "virtform-bench: %ld CPUs (%s), %.1f GiB, %s, libvirt %s\n", m.cpus, m.model,
                (double) m.mem_kib / (1024.0 * 1024.0), m.kernel, m.libvirt);
        fprintf(f, "test:///default; daemon --debounce %u ms, %u edits, idle window %u s\n", b->debounce_msec, b->edits,
                b->idle_sec);
        for (size_t i = 0; i < b->n_runs; i++) {
                const bench_run *run = &b->runs[i];
                unsigned met = 0, missed = 0;
                build_rows(run, &rs);
                fprintf(f, "\nN = %zu  (define floor: %.1f ms wall, of which %.1f ms defining, %.1f MiB; read floor: "
                           "%.1f ms)\n",
                        run->n, run->floor.wall_ms, run->floor_define_ms, (double) run->floor.rss_kib / 1024.0,
                        run->floor_read_ms);
                fprintf(f, "  %-46s %15s %-16s %8s %7s %10s %6s  %-32s %s\n", "step", "value", "x floor", "cpu x fl",
                        "writes", "peak RSS", "x flr", "target", "");
                for (size_t j = 0; j < rs.n; j++) {
                        print_row(f, &rs.r[j]);
                        met += rs.r[j].met == MET_YES;
                        missed += rs.r[j].met == MET_NO;
                }
                fprintf(f, "  targets at N = %zu: %u met, %u missed\n", run->n, met, missed);
                n_met += met;
                n_missed += missed;
        }
        if (b->n_runs > 0)
                print_curve(b, f);
        fprintf(f, "\nx floor: wall time / the floor named: define (a subprocess: exec, connect, N defines), read "
                   "(in the floor's process,\nafter its defines: one listing and N GetXMLDesc), 1 define (the define "
                   "floor / N). cpu x fl: user+sys CPU time / the define\nfloor's, steadier on a busy machine. "
                   "new controller: open, full pass, close on the store a first controller left, the\ntest driver "
                   "held meanwhile: what a new process pays but exec and connect. Timings: the fastest of --repeat "
                   "%u.\n(*) qemu:///embed no-op: a real new process, the pass alone / the embed floor's read, RSS / "
                   "the embed floor's.\n",
                b->repeat);
        fprintf(f, "targets: %u met, %u missed\n", n_met, n_missed);
}

/* ---- JSON ----------------------------------------------------------------------------------------- */

static void json_number(vf_buf *b, const char *key, double v) {
        if (isnan(v) || isinf(v))
                vf_buf_printf(b, ",\"%s\":null", key);
        else
                vf_buf_printf(b, ",\"%s\":%.4f", key, v);
}

static void json_row(vf_buf *b, const row *r, size_t n) {
        const char *unit;
        double per = per_resource(r, n, &unit);

        vf_buf_printf(b, "{\"key\":\"%s\",\"label\":", r->key);
        vf_buf_put_json_string(b, r->label);
        vf_buf_printf(b, ",\"measured\":%s", r->ok ? "true" : "false");
        json_number(b, "value", r->ok ? r->value : NAN);
        vf_buf_puts(b, ",\"unit\":");
        vf_buf_put_json_string(b, r->unit);
        if (!isnan(per)) {
                json_number(b, "per_resource", per);
                vf_buf_printf(b, ",\"per_resource_unit\":\"%s\"", unit);
        }
        json_number(b, "ratio_to_floor", r->ratio);
        if (r->floor[0])
                vf_buf_printf(b, ",\"floor\":\"%s\"", r->floor);
        json_number(b, "cpu_ms", r->cpu_ms);
        json_number(b, "cpu_ratio_to_floor", r->cpu_ratio);
        if (r->writes >= 0)
                vf_buf_printf(b, ",\"writes\":%ld", r->writes);
        if (r->rss_kib >= 0)
                vf_buf_printf(b, ",\"peak_rss_kib\":%ld", r->rss_kib);
        json_number(b, "rss_ratio_to_floor", r->rss_ratio);
        if (r->target[0]) {
                vf_buf_puts(b, ",\"target\":");
                vf_buf_put_json_string(b, r->target);
                vf_buf_printf(b, ",\"met\":%s", r->met == MET_YES ? "true" : "false");
        }
        if (r->note[0]) {
                vf_buf_puts(b, ",\"note\":");
                vf_buf_put_json_string(b, r->note);
        }
        vf_buf_puts(b, "}");
}

static void json_run(vf_buf *b, const bench_run *run, unsigned *n_met, unsigned *n_missed) {
        unsigned met = 0, missed = 0;
        rows rs;

        build_rows(run, &rs);
        vf_buf_printf(b, "{\"n\":%zu", run->n);
        json_number(b, "floor_ms", run->floor.wall_ms);
        json_number(b, "floor_define_ms", run->floor_define_ms);
        json_number(b, "read_floor_ms", run->floor_read_ms);
        json_number(b, "marked_read_floor_ms", run->floor_marked_read_ms);
        vf_buf_printf(b, ",\"floor_rss_kib\":%ld", run->floor.rss_kib);
        json_number(b, "generate_ms", run->generate.wall_ms);
        json_number(b, "embed_floor_define_ms", run->embed_floor.ok ? run->embed_floor_define_ms : NAN);
        json_number(b, "embed_floor_read_ms", run->embed_floor.ok ? run->embed_floor_read_ms : NAN);
        json_number(b, "embed_open_ms", run->embed_noop.ok ? run->embed_open_ms : NAN);
        vf_buf_printf(b, ",\"daemon\":{\"first_pass_reconciled\":%lu,\"reconciled_after_first_pass\":%lu}",
                      run->daemon.first_pass_reconciled, run->daemon.echo_reconciled);
        vf_buf_printf(b, ",\"edits\":{\"n\":%u", run->daemon.n_edits);
        json_number(b, "p50_ms", run->daemon.p50_ms);
        json_number(b, "p99_ms", run->daemon.p99_ms);
        json_number(b, "max_ms", run->daemon.max_ms);
        json_number(b, "p99_less_cpu_wait_ms", run->daemon.p99_unqueued_ms);
        json_number(b, "p50_to_define_ms", run->daemon.p50_define_ms);
        json_number(b, "p50_define_to_record_ms", run->daemon.p50_record_ms);
        json_number(b, "p50_record_to_seen_ms", run->daemon.p50_visible_ms);
        json_number(b, "p50_cpu_wait_ms", run->daemon.p50_queued_ms);
        vf_buf_puts(b, "},\"idle\":{");
        vf_buf_printf(b, "\"window_s\":%.3f", run->daemon.idle.wall_ms / 1000.0);
        json_number(b, "wakeups_per_s", run->daemon.wakeups_per_sec);
        json_number(b, "host_uevents_per_s", run->daemon.uevents_per_sec);
        vf_buf_puts(b, "},\"rows\":[");
        for (size_t i = 0; i < rs.n; i++) {
                if (i > 0)
                        vf_buf_puts(b, ",");
                json_row(b, &rs.r[i], run->n);
                met += rs.r[i].met == MET_YES;
                missed += rs.r[i].met == MET_NO;
        }
        vf_buf_printf(b, "],\"targets\":{\"met\":%u,\"missed\":%u}}", met, missed);
        *n_met += met;
        *n_missed += missed;
}

void bench_print_json(const bench *bn, FILE *f) {
        unsigned n_met = 0, n_missed = 0;
        vf_buf b = {};
        machine m;

        get_machine(&m);
        vf_buf_printf(&b, "{\"machine\":{\"cpus\":%ld,\"model\":", m.cpus);
        vf_buf_put_json_string(&b, m.model);
        vf_buf_printf(&b, ",\"mem_kib\":%ld,\"kernel\":", m.mem_kib);
        vf_buf_put_json_string(&b, m.kernel);
        vf_buf_printf(&b, ",\"libvirt\":\"%s\"},", m.libvirt);
        vf_buf_printf(&b,
                      "\"options\":{\"uri\":\"test:///default\",\"debounce_ms\":%u,\"edits\":%u,\"idle_s\":%u,"
                      "\"repeat\":%u},",
                      bn->debounce_msec, bn->edits, bn->idle_sec, bn->repeat);
        vf_buf_puts(&b, "\"runs\":[");
        for (size_t i = 0; i < bn->n_runs; i++) {
                if (i > 0)
                        vf_buf_puts(&b, ",");
                json_run(&b, &bn->runs[i], &n_met, &n_missed);
        }
        vf_buf_printf(&b, "],\"targets\":{\"met\":%u,\"missed\":%u}}\n", n_met, n_missed);
        if (!b.oom)
                fputs(b.data, f);
        vf_buf_done(&b);
}
