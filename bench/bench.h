/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * virtform-bench: what virtform costs next to the floor, the cost any tool
 * pays to define N domains in libvirt. Not run by the test suite.
 *
 * Per N: generate N domains as YAML and as native XML; run the floor
 * (virtform-bench-floor) and the peers a user would script instead
 * (python-libvirt's define loop, a virsh batch); time `virtform apply` cold
 * on each; time a no-op pass by a new controller on the store the cold one
 * left, by a second pass of the same one, by SIGHUP and (if it works here)
 * across processes on qemu:///embed; count what the daemon reconciles again
 * after its own cold start; time edits through the daemon; count idle
 * wakeups. Every in-process step runs in a forked child, so that its peak RSS
 * is its own.
 */
#pragma once

#include <math.h>

#include "bench/floor.h"
#include "controller/controller.h"

/* One measured step. ok false: not measured, note says why. */
typedef struct measure {
        bool ok;
        double wall_ms;
        double cpu_ms; /* user + system; NAN when unknown */
        long rss_kib; /* peak RSS of the step; -1 when unknown */
        long writes; /* libvirt write calls; -1 when unknown */
        char note[200];
} measure;

/* One edit's latency and where it went, in ms. */
typedef struct edit_sample {
        double total; /* from the rename until the applied record is seen, beyond the debounce */
        double defined; /* from the rename until the define was logged, beyond the debounce */
        double recorded; /* from the define until the record was updated */
        double visible; /* from the record's update until this thread saw it committed */
        double queued; /* of the total, how long the daemon's thread waited for a CPU (schedstat run_delay) */
} edit_sample;

/* What the daemon child measures. */
typedef struct daemon_result {
        measure first_pass; /* vf_daemon_run's initial full pass */
        measure echo; /* until settled after the libvirt events of that pass's own defines */
        unsigned long first_pass_reconciled; /* resources the first pass took up */
        unsigned long echo_reconciled; /* resources taken up again between the first pass and settling */
        measure sighup; /* a SIGHUP rescan with nothing changed */
        measure edits; /* the whole edit phase: its peak RSS and writes */
        unsigned n_edits;
        double p50_ms, p99_ms, max_ms; /* edit latency beyond the debounce */
        /* Its medians in parts: until the define (beyond the debounce), then the record, then its commit. */
        double p50_define_ms, p50_record_ms, p50_visible_ms, p50_queued_ms;
        double p99_unqueued_ms; /* p99 of the latency less the daemon thread's wait for a CPU */
        edit_sample slowest;
        measure idle; /* wall_ms: the window; rss_kib: RSS while idle */
        double wakeups_per_sec; /* vf_daemon_stats.wakeups */
        double ctxsw_daemon_per_sec; /* voluntary context switches of the daemon's thread */
        double ctxsw_all_per_sec; /* of every thread but the bench's own */
        double uevents_per_sec; /* kernel uevents on the host meanwhile; NAN: unknown */
        char uevent_sample[96]; /* the first one, "action@devpath" */
} daemon_result;

typedef struct bench_run {
        size_t n;
        measure generate;
        measure floor;
        double floor_define_ms; /* the floor's define loop alone, without exec and connect */
        double floor_read_ms; /* after it, untimed there: list them all and read each definition back */
        double floor_marked_read_ms; /* the same, each domain carrying a marker of virtform's shape */
        measure peer_python, peer_virsh; /* the same N defines as a user would script them */
        measure apply_yaml, apply_xml;
        measure cold_pass; /* the first in-process pass, before the no-ops */
        measure noop_new_yaml, noop_new_xml; /* a new controller: open, pass, close */
        measure noop_yaml, noop_xml; /* the same controller's second pass */
        measure embed_floor, embed_noop;
        double embed_floor_define_ms, embed_floor_read_ms;
        double embed_open_ms; /* the no-op process's connect, which loads N definitions */
        daemon_result daemon;
        measure daemon_step; /* ok false when the daemon child failed; note why */
} bench_run;

typedef struct bench {
        /* options */
        size_t *ns;
        size_t n_ns;
        bool json;
        unsigned edits;
        unsigned debounce_msec;
        unsigned idle_sec;
        size_t embed_max_n; /* 0: no embed step */
        unsigned repeat; /* timings taken this many times; the fastest is kept */
        bool keep;
        const char *virtform; /* the binary that `apply` runs */
        const char *floor; /* virtform-bench-floor */
        const char *python_peer; /* bench/python-define */
        /* state */
        char *workdir;
        bench_run *runs;
        size_t n_runs;
} bench;

/* The directories of one N's input. */
typedef struct bench_input {
        char *dir; /* workdir/N */
        char *yaml; /* N domains as YAML */
        char *xml; /* the same N as native XML */
} bench_input;

void bench_input_done(bench_input *in);

/* generate.c */
char *bench_domain_name(size_t i);
char *bench_yaml_domain(size_t i, unsigned memory_mib);
int bench_generate(const char *workdir, size_t n, bench_input *ret, measure *m);
/* N native XML domains of a given type in a new directory. */
int bench_generate_xml(const char *dir, size_t n, const char *type);

/* spawn.c */
double bench_now_ms(void);
/*
 * Runs argv with stdin from in_path (NULL: this one's) and stdout and stderr to files; fills wall, CPU
 * and the child's own peak RSS.
 */
int bench_spawn(char *const *argv, const char *in_path, const char *out_path, const char *err_path, int *status,
                measure *m);
/* Runs fn(arg, result) in a forked child and copies its result back; -EIO when the child died. */
typedef int (*bench_child_fn)(const void *arg, void *result);
int bench_fork(bench_child_fn fn, const void *arg, void *result, size_t size);
/* A line "KEY: value kB" of /proc/PATH/status (e.g. "self", "self/task/123"); -1 when absent. */
long bench_proc_status(const char *path, const char *key);
/* Resets VmHWM, so that the next read gives the peak of what follows. */
void bench_reset_peak(void);
int bench_rmtree(const char *path);
void bench_note(measure *m, const char *fmt, ...) _printf_(2, 3);
/* Keeps the faster of two timings of a step (and the larger peak RSS); true when m was faster. */
bool bench_keep_best(measure *best, const measure *m);

/* inproc.c */
typedef struct inproc_args {
        const char *uri;
        const char *state;
        const char *dir;
        bool cold_only; /* one pass: seeds a store for a later process's no-op */
        unsigned repeat; /* no-op passes of each kind; the fastest is kept */
} inproc_args;
typedef struct inproc_result {
        measure cold;
        measure noop; /* the same controller's next pass */
        measure noop_new; /* a new controller's first: open, pass, close */
        double open_ms; /* vf_controller_open: the connection and the store */
} inproc_result;
int bench_inproc(const inproc_args *a, inproc_result *res);
int bench_embed(const bench *b, const bench_input *in, bench_run *run);

/* daemon.c */
typedef struct daemon_args {
        const char *dir;
        const char *state;
        size_t n;
        unsigned edits;
        unsigned debounce_msec;
        unsigned idle_sec;
        unsigned repeat; /* SIGHUP rescans; the fastest is kept */
} daemon_args;
int bench_daemon(const daemon_args *a, daemon_result *res, measure *step);

/* peers.c */
int bench_peers(const bench *b, const bench_input *in, bench_run *run);

/* report.c */
void bench_print_table(const bench *b, FILE *f);
void bench_print_json(const bench *b, FILE *f);
