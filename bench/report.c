/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The results: one row per figure, each with its ratio to the floor measured
 * in the same run and, where the issue sets one, its target and whether it
 * was met. The table and the JSON print the same rows.
 */
#include "bench/bench.h"

#include <sys/utsname.h>

#define MAX_ROWS 24
#define COLD_MAX_RATIO 1.25
#define NOOP_MAX_RATIO 0.10
#define EDIT_P99_MAX_MS 5.0
#define RSS_MAX_KIB (64 * 1024)
/* "About the same at 1k and 10k": the largest N's p99 within this factor (plus a millisecond) of the smallest's. */
#define EDIT_SCALING_MAX 1.5

typedef enum verdict {
        MET_NONE = -1, /* no target */
        MET_NO,
        MET_YES,
} verdict;

typedef struct row {
        const char *key; /* for machines */
        char label[96];
        bool ok; /* measured */
        double value;
        const char *unit; /* "ms", "/s", "MiB" */
        double ratio; /* NAN: none */
        double cpu_ms, cpu_ratio; /* user + system CPU time, and its ratio to the floor's; NAN: not measured */
        long writes; /* -1: none */
        long rss_kib; /* -1: none */
        double rss_ratio;
        const char *target; /* NULL: none */
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

static row *add(rows *rs, const char *key, const char *label_fmt, size_t n) {
        row *r = &rs->r[rs->n++];

        *r = (row) { .key = key, .ratio = NAN, .cpu_ms = NAN, .cpu_ratio = NAN, .writes = -1, .rss_kib = -1,
                     .rss_ratio = NAN, .met = MET_NONE, .unit = "ms", .note = "" };
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(r->label, sizeof r->label, label_fmt, n);
#pragma GCC diagnostic pop
        return r;
}

/* A step timed against a floor: time, writes and RSS with their ratios. */
static row *add_step(rows *rs, const char *key, const char *label, const bench_run *run, const measure *m,
                     double floor_ms) {
        row *r = add(rs, key, label, run->n);

        r->ok = m->ok;
        r->note = m->note;
        if (!m->ok)
                return r;
        r->value = m->wall_ms;
        r->ratio = ratio(m->wall_ms, floor_ms);
        r->cpu_ms = m->cpu_ms;
        if (!isnan(m->cpu_ms) && floor_ms == run->floor.wall_ms)
                r->cpu_ratio = ratio(m->cpu_ms, run->floor.cpu_ms);
        r->writes = m->writes;
        r->rss_kib = m->rss_kib;
        if (m->rss_kib >= 0)
                r->rss_ratio = ratio((double) m->rss_kib, (double) run->floor.rss_kib);
        return r;
}

static void judge(row *r, const char *target, bool ok) {
        r->target = target;
        r->met = r->ok && ok ? MET_YES : MET_NO;
}

static void judge_cold(row *r) {
        judge(r, "<= 1.25x floor", r->ratio <= COLD_MAX_RATIO);
}

static void judge_noop(row *r) {
        judge(r, "<= 0.10x floor, 0 writes", r->ratio <= NOOP_MAX_RATIO && r->writes == 0);
}

static long max_rss(const bench_run *run) {
        const measure *ms[] = { &run->apply_yaml, &run->apply_xml, &run->noop_yaml, &run->noop_xml,
                                &run->daemon.first_pass, &run->daemon.echo, &run->daemon.sighup,
                                &run->daemon.edits };
        long max = -1;

        for (size_t i = 0; i < ELEMENTSOF(ms); i++)
                if (ms[i]->ok && ms[i]->rss_kib > max)
                        max = ms[i]->rss_kib;
        return max;
}

static void daemon_rows(rows *rs, const bench_run *run) {
        const daemon_result *d = &run->daemon;
        double floor_ms = run->floor.wall_ms, per_define = floor_ms / (double) run->n;
        row *r;

        add_step(rs, "daemon_first_pass", "daemon: start and first full pass", run, &d->first_pass, floor_ms);
        add_step(rs, "daemon_echo", "daemon: echo of its own define events", run, &d->echo, floor_ms);
        r = add_step(rs, "noop_sighup", "no-op: daemon SIGHUP rescan", run, &d->sighup, floor_ms);
        judge_noop(r);

        r = add(rs, "edit_p50", "edit latency p50 beyond debounce", 0);
        r->ok = d->edits.ok;
        r->note = d->edits.note;
        r->value = d->p50_ms;
        r->ratio = ratio(d->p50_ms, per_define);
        if (r->ok && !r->note[0]) {
                snprintf(r->own_note, sizeof r->own_note,
                         "medians: rename to define logged %.2f ms, define to record %.2f ms, record to seen "
                         "committed %.2f ms; daemon thread waiting for a CPU %.2f ms",
                         d->p50_define_ms, d->p50_record_ms, d->p50_visible_ms, d->p50_queued_ms);
                r->note = r->own_note;
        }
        r = add(rs, "edit_p99", "edit latency p99 beyond debounce", 0);
        r->ok = d->edits.ok;
        r->value = d->p99_ms;
        r->ratio = ratio(d->p99_ms, per_define);
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
        judge(r, "<= 5 ms", d->p99_ms <= EDIT_P99_MAX_MS);

        r = add(rs, "idle_wakeups", "idle: daemon loop wakeups", 0);
        r->ok = d->idle.ok;
        r->note = d->idle.note;
        r->value = d->wakeups_per_sec;
        r->unit = "/s";
        r->rss_kib = d->idle.rss_kib;
        r->rss_ratio = ratio((double) d->idle.rss_kib, (double) run->floor.rss_kib);
        judge(r, "0/s", d->wakeups_per_sec == 0);
        if (d->wakeups_per_sec > 0 && d->uevents_per_sec > 0) {
                snprintf(r->own_note, sizeof r->own_note,
                         "the host had %.2f kernel uevents/s meanwhile (e.g. %s); a daemon without udevd receives "
                         "every one",
                         d->uevents_per_sec, d->uevent_sample);
                r->note = r->own_note;
        }
        r = add(rs, "idle_ctxsw_daemon", "idle: daemon thread voluntary ctx switches", 0);
        r->ok = d->idle.ok;
        r->value = d->ctxsw_daemon_per_sec;
        r->unit = "/s";
        r = add(rs, "idle_ctxsw_all", "idle: all its threads' voluntary ctx switches", 0);
        r->ok = d->idle.ok;
        r->value = d->ctxsw_all_per_sec;
        r->unit = "/s";
}

static void build_rows(const bench_run *run, rows *rs) {
        double floor_ms = run->floor.wall_ms;
        row *r;

        *rs = (rows) {};
        add_step(rs, "floor", "floor: %zu x virDomainDefineXML, subprocess", run, &run->floor, floor_ms);
        r = add_step(rs, "cold_apply_yaml", "cold apply, YAML (virtform apply)", run, &run->apply_yaml, floor_ms);
        judge_cold(r);
        r = add_step(rs, "cold_apply_xml", "cold apply, XML (virtform apply)", run, &run->apply_xml, floor_ms);
        judge_cold(r);
        r = add(rs, "read_floor", "read floor: list + %zu x GetXMLDesc, in-process", run->n);
        r->ok = true;
        r->value = run->floor_read_ms;
        r->ratio = ratio(run->floor_read_ms, floor_ms);
        add_step(rs, "cold_pass_inproc", "cold pass in-process, YAML", run, &run->cold_pass, floor_ms);
        r = add_step(rs, "noop_yaml", "no-op: 2nd vf_controller_pass, YAML", run, &run->noop_yaml, floor_ms);
        judge_noop(r);
        r = add_step(rs, "noop_xml", "no-op: 2nd vf_controller_pass, XML", run, &run->noop_xml, floor_ms);
        judge_noop(r);
        if (run->daemon_step.ok)
                daemon_rows(rs, run);
        else {
                r = add(rs, "daemon", "daemon", 0);
                r->note = run->daemon_step.note;
        }
        r = add_step(rs, "noop_embed", "no-op: new process, qemu:///embed (*)", run, &run->embed_noop,
                     run->embed_floor_define_ms);
        if (r->ok) {
                r->rss_ratio = ratio((double) r->rss_kib, (double) run->embed_floor.rss_kib);
                judge_noop(r);
        }
        r = add(rs, "peak_rss", "peak RSS, largest virtform step", 0);
        r->rss_kib = max_rss(run);
        r->ok = r->rss_kib >= 0;
        r->value = (double) r->rss_kib / 1024.0;
        r->unit = "MiB";
        r->rss_ratio = ratio((double) r->rss_kib, (double) run->floor.rss_kib);
        judge(r, "<= 64 MiB", r->rss_kib <= RSS_MAX_KIB);
        if (r->ok && run->floor.rss_kib > 0) {
                /* test:///default runs inside the process: the floor's peak is mostly libvirt holding N domains. */
                snprintf(r->own_note, sizeof r->own_note,
                         "beyond the floor's, whose process holds the same N domains in the test driver: %.1f MiB "
                         "(%.1f KiB per resource)",
                         (double) (r->rss_kib - run->floor.rss_kib) / 1024.0,
                         (double) (r->rss_kib - run->floor.rss_kib) / (double) run->n);
                r->note = r->own_note;
        }
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
        char value[32] = "-", rat[32] = "", cpu_rat[32] = "", writes[32] = "", rss[32] = "", rss_rat[32] = "";

        if (!r->ok) {
                fprintf(f, "  %-46s %s\n", r->label, r->note[0] ? r->note : "not measured");
                return;
        }
        snprintf(value, sizeof value, "%.2f %s", r->value, r->unit);
        if (!isnan(r->ratio))
                snprintf(rat, sizeof rat, "%.3f", r->ratio);
        if (!isnan(r->cpu_ratio))
                snprintf(cpu_rat, sizeof cpu_rat, "%.3f", r->cpu_ratio);
        if (r->writes >= 0)
                snprintf(writes, sizeof writes, "%ld", r->writes);
        if (r->rss_kib >= 0)
                snprintf(rss, sizeof rss, "%.1f MiB", (double) r->rss_kib / 1024.0);
        if (!isnan(r->rss_ratio))
                snprintf(rss_rat, sizeof rss_rat, "%.2f", r->rss_ratio);
        fprintf(f, "  %-46s %12s %8s %8s %7s %10s %6s  %-25s %s\n", r->label, value, rat, cpu_rat, writes, rss,
                rss_rat, r->target ? r->target : "", met_string(r->met));
        if (r->note[0])
                fprintf(f, "  %-46s note: %s\n", "", r->note);
}

static const bench_run *smallest_and_largest(const bench *b, const bench_run **largest) {
        const bench_run *small = NULL;

        *largest = NULL;
        for (size_t i = 0; i < b->n_runs; i++) {
                const bench_run *run = &b->runs[i];
                if (!run->daemon_step.ok)
                        continue;
                if (!small || run->n < small->n)
                        small = run;
                if (!*largest || run->n > (*largest)->n)
                        *largest = run;
        }
        return small;
}

static bool edit_scaling_met(const bench_run *small, const bench_run *large) {
        return large->daemon.p99_ms <= small->daemon.p99_ms * EDIT_SCALING_MAX + 1.0;
}

void bench_print_table(const bench *b, FILE *f) {
        const bench_run *large, *small = smallest_and_largest(b, &large);
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
                build_rows(run, &rs);
                fprintf(f, "\nN = %zu  (floor: %.1f ms wall, of which %.1f ms defining; %.1f MiB)\n", run->n,
                        run->floor.wall_ms, run->floor_define_ms, (double) run->floor.rss_kib / 1024.0);
                fprintf(f, "  %-46s %12s %8s %8s %7s %10s %6s  %-25s %s\n", "step", "value", "x floor", "cpu x fl",
                        "writes", "peak RSS", "x flr", "target", "");
                for (size_t j = 0; j < rs.n; j++) {
                        print_row(f, &rs.r[j]);
                        n_met += rs.r[j].met == MET_YES;
                        n_missed += rs.r[j].met == MET_NO;
                }
        }
        fprintf(f, "\nx floor: wall time / the floor's (a subprocess: exec, connect, read, define); cpu x fl: user+sys "
                   "CPU time / the floor's,\nsteadier on a busy machine; edit latency: / the floor per domain. "
                   "Timings: the fastest of --repeat %u.\n(*) qemu:///embed no-op: / the embed floor's define loop, "
                   "RSS / the embed floor's.\n",
                b->repeat);
        if (small && large && small != large) {
                bool ok = edit_scaling_met(small, large);
                n_met += ok;
                n_missed += !ok;
                fprintf(f, "edit latency p99 at N=%zu vs N=%zu: %.2f ms vs %.2f ms (target: about the same, "
                           "<= %.1fx + 1 ms): %s\n",
                        large->n, small->n, large->daemon.p99_ms, small->daemon.p99_ms, EDIT_SCALING_MAX,
                        ok ? "met" : "MISSED");
        }
        fprintf(f, "targets: %u met, %u missed\n", n_met, n_missed);
}

/* ---- JSON ----------------------------------------------------------------------------------------- */

static void json_number(vf_buf *b, const char *key, double v) {
        if (isnan(v) || isinf(v))
                vf_buf_printf(b, ",\"%s\":null", key);
        else
                vf_buf_printf(b, ",\"%s\":%.4f", key, v);
}

static void json_row(vf_buf *b, const row *r) {
        vf_buf_printf(b, "{\"key\":\"%s\",\"label\":", r->key);
        vf_buf_put_json_string(b, r->label);
        vf_buf_printf(b, ",\"measured\":%s", r->ok ? "true" : "false");
        json_number(b, "value", r->ok ? r->value : NAN);
        vf_buf_puts(b, ",\"unit\":");
        vf_buf_put_json_string(b, r->unit);
        json_number(b, "ratio_to_floor", r->ratio);
        json_number(b, "cpu_ms", r->cpu_ms);
        json_number(b, "cpu_ratio_to_floor", r->cpu_ratio);
        if (r->writes >= 0)
                vf_buf_printf(b, ",\"writes\":%ld", r->writes);
        if (r->rss_kib >= 0)
                vf_buf_printf(b, ",\"peak_rss_kib\":%ld", r->rss_kib);
        json_number(b, "rss_ratio_to_floor", r->rss_ratio);
        if (r->target) {
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

static void json_run(vf_buf *b, const bench_run *run) {
        rows rs;

        build_rows(run, &rs);
        vf_buf_printf(b, "{\"n\":%zu", run->n);
        json_number(b, "floor_ms", run->floor.wall_ms);
        json_number(b, "floor_define_ms", run->floor_define_ms);
        vf_buf_printf(b, ",\"floor_rss_kib\":%ld", run->floor.rss_kib);
        json_number(b, "generate_ms", run->generate.wall_ms);
        json_number(b, "embed_floor_define_ms", run->embed_floor.ok ? run->embed_floor_define_ms : NAN);
        json_number(b, "embed_open_ms", run->embed_noop.ok ? run->embed_open_ms : NAN);
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
                json_row(b, &rs.r[i]);
        }
        vf_buf_puts(b, "]}");
}

void bench_print_json(const bench *bn, FILE *f) {
        const bench_run *large, *small = smallest_and_largest(bn, &large);
        vf_buf b = {};
        machine m;

        get_machine(&m);
        vf_buf_printf(&b, "{\"machine\":{\"cpus\":%ld,\"model\":", m.cpus);
        vf_buf_put_json_string(&b, m.model);
        vf_buf_printf(&b, ",\"mem_kib\":%ld,\"kernel\":", m.mem_kib);
        vf_buf_put_json_string(&b, m.kernel);
        vf_buf_printf(&b, ",\"libvirt\":\"%s\"},", m.libvirt);
        vf_buf_printf(&b, "\"options\":{\"uri\":\"test:///default\",\"debounce_ms\":%u,\"edits\":%u,\"idle_s\":%u},",
                      bn->debounce_msec, bn->edits, bn->idle_sec);
        vf_buf_puts(&b, "\"runs\":[");
        for (size_t i = 0; i < bn->n_runs; i++) {
                if (i > 0)
                        vf_buf_puts(&b, ",");
                json_run(&b, &bn->runs[i]);
        }
        vf_buf_puts(&b, "]");
        if (small && large && small != large)
                vf_buf_printf(&b, ",\"edit_p99_scaling\":{\"small_n\":%zu,\"large_n\":%zu,\"met\":%s}", small->n,
                              large->n, edit_scaling_met(small, large) ? "true" : "false");
        vf_buf_puts(&b, "}\n");
        if (!b.oom)
                fputs(b.data, f);
        vf_buf_done(&b);
}
