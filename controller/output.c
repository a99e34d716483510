/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What people read: apply's lines, plan's diffs, status as a table or JSON.
 */
#include "controller/output.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <strings.h>
#include <yaml.h>

#include "controller/diff.h"

/* What plan calls each outcome: a sign to scan by, and the word (-o json's "action"). */
static const struct {
        const char *sign;
        const char *action;
} plan_actions[_RC_OUTCOME_MAX] = {
        [RC_UNCHANGED] = { "=", "unchanged" }, [RC_CREATED] = { "+", "create" }, [RC_UPDATED] = { "~", "update" },
        [RC_DELETED] = { "-", "delete" },      [RC_KEPT] = { " ", "keep" },      [RC_WAITING] = { "!", "waiting" },
        [RC_FAILED] = { "!", "failed" },
};

/* Why, for what did not converge; what was done, for what did (plan lists its steps on their own line). */
static void print_reason(FILE *f, const rc_result *res, bool with_message) {
        if (res->outcome == RC_WAITING || res->outcome == RC_FAILED || res->outcome == RC_KEPT)
                fprintf(f, ": %s: %s", res->reason ? res->reason : "Unknown", res->message ? res->message : "");
        else if (with_message && res->outcome != RC_UNCHANGED && res->message)
                fprintf(f, ": %s", res->message);
        if (res->restart_pending)
                fprintf(f, " [RestartPending: %s]", res->restart_pending);
        if (res->drifted)
                fprintf(f, " [Drifted: %s]", res->drifted);
}

static void print_diags(FILE *f, const schema_diag *diags, size_t n) {
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *line = schema_diag_format(&diags[i]);
                fprintf(f, "%s\n", line ? line : "out of memory");
        }
}

void output_diags(FILE *f, const schema_set *set) {
        if (!set)
                return;
        print_diags(f, set->path_errors, set->n_path_errors);
        print_diags(f, set->diags, set->n_diags);
}

static void print_summary(FILE *f, const char *verb, const vf_report *r) {
        _cleanup_free_ char *writes = rc_counters_format_writes(&r->counters);

        fprintf(f, "%s: %zu resources:", verb, r->n_entries);
        for (rc_outcome o = 0; o < _RC_OUTCOME_MAX; o++)
                if (r->by_outcome[o])
                        fprintf(f, " %u %s,", r->by_outcome[o], rc_outcome_to_string(o));
        if (r->n_file_errors)
                fprintf(f, " %u file errors,", r->n_file_errors);
        fprintf(f, " libvirt calls: %u writes (%s), %u reads\n", rc_counters_writes(&r->counters),
                writes ? writes : "?", rc_counters_reads(&r->counters));
}

void output_apply(FILE *f, const vf_report *r) {
        print_summary(f, "apply", r);
}

/* ---- apply's stream ---------------------------------------------------------- */

/* What was last printed of a resource. */
typedef struct shown_result {
        rc_outcome outcome;
        char *reason;
} shown_result;

struct output_stream {
        FILE *f;
        bool progress; /* f is a terminal: one line is rewritten in place */
        bool progress_shown; /* that line is on the screen now, to be cleared before the next line */
        int64_t started_usec; /* monotonic */
        size_t index, total; /* the resource begun last, in its pass */
        vf_map *shown; /* "kind/name" -> shown_result */
        vf_observer observer;
};

static void clear_progress(output_stream *s) {
        if (s->progress_shown)
                fputs("\r\033[K", s->f);
        s->progress_shown = false;
}

/* The progress line, replaced: what is being done, and since when the run started, as "(12s elapsed)". */
static void _printf_(2, 3) show_progress(output_stream *s, const char *fmt, ...) {
        va_list ap;

        if (!s->progress)
                return;
        fputs("\r\033[K", s->f);
        va_start(ap, fmt);
        vfprintf(s->f, fmt, ap);
        va_end(ap);
        fflush(s->f);
        s->progress_shown = true;
}

static void format_elapsed(const output_stream *s, char out[16]) {
        vf_format_duration(vf_now_monotonic_usec() - s->started_usec, out);
}

static void stream_begin(void *userdata, const char *key, size_t index, size_t total) {
        output_stream *s = userdata;
        char elapsed[16];

        s->index = index;
        s->total = total;
        format_elapsed(s, elapsed);
        show_progress(s, "[%zu/%zu] %s (%s elapsed)", index + 1, total, key, elapsed);
}

static void stream_step(void *userdata, vf_kind kind, const char *name, const char *what) {
        output_stream *s = userdata;
        char elapsed[16];

        format_elapsed(s, elapsed);
        show_progress(s, "[%zu/%zu] %s/%s: %s (%s elapsed)", s->index + 1, s->total, vf_kind_to_string(kind), name,
                      what, elapsed);
}

/* "ShuttingDown" -> "shutting down": a condition's reason said as words. */
static void reason_words(const char *reason, char *out, size_t size) {
        size_t n = 0;

        for (const char *p = reason; *p && n + 2 < size; p++) {
                if (isupper((unsigned char) *p) && p != reason)
                        out[n++] = ' ';
                out[n++] = (char) tolower((unsigned char) *p);
        }
        out[n] = '\0';
}

static void stream_in_flight(void *userdata, const char *key, const char *reason, int64_t deadline_usec) {
        output_stream *s = userdata;
        int64_t left = deadline_usec - vf_now_realtime_usec();
        char words[64], elapsed[16];

        reason_words(reason ? reason : "Waiting", words, sizeof words);
        format_elapsed(s, elapsed);
        show_progress(s, "still %s %s (%" PRId64 " s left, %s elapsed)", words, key, left > 0 ? left / 1000000 : 0,
                      elapsed);
}

/* Whether e says something not yet printed: its outcome, folded as the run's, or its reason changed. */
static bool worth_a_line(const shown_result *before, const vf_report_entry *e) {
        if (!before)
                return true;
        if (vf_report_run_outcome(before->outcome, e->result.outcome) != e->result.outcome)
                return false;
        return before->outcome != e->result.outcome || !vf_streq_ptr(before->reason, e->result.reason);
}

static int remember_shown(output_stream *s, const char *key, const vf_report_entry *e) {
        shown_result *shown = vf_map_get(s->shown, key);

        if (!shown) {
                shown = calloc(1, sizeof *shown);
                if (!shown || vf_map_put(s->shown, key, shown) < 0) {
                        free(shown);
                        return -ENOMEM;
                }
        }
        shown->outcome = e->result.outcome;
        return vf_free_and_strdup(&shown->reason, e->result.reason);
}

static void stream_decided(void *userdata, const vf_report_entry *e) {
        output_stream *s = userdata;

        if (!worth_a_line(vf_map_get(s->shown, e->key), e))
                return;
        clear_progress(s);
        fprintf(s->f, "%-9s %s", rc_outcome_to_string(e->result.outcome), e->key);
        print_reason(s->f, &e->result, true);
        fputc('\n', s->f);
        fflush(s->f);
        /* Out of memory, a line may be printed twice: better than one missing. */
        (void) remember_shown(s, e->key, e);
}

int output_stream_new(FILE *f, bool progress, output_stream **ret) {
        output_stream *s = calloc(1, sizeof *s);

        if (!s || !(s->shown = vf_map_new())) {
                free(s);
                return -ENOMEM;
        }
        s->f = f;
        s->progress = progress;
        s->started_usec = vf_now_monotonic_usec();
        s->observer = (vf_observer) {
                .begin = stream_begin,
                .step = progress ? stream_step : NULL,
                .decided = stream_decided,
                .in_flight = progress ? stream_in_flight : NULL,
                .userdata = s,
        };
        *ret = s;
        return 0;
}

const vf_observer *output_stream_observer(output_stream *s) {
        return &s->observer;
}

void output_stream_free(output_stream *s) {
        const char *key;
        void *value;

        if (!s)
                return;
        clear_progress(s);
        fflush(s->f);
        for (size_t it = 0; vf_map_next(s->shown, &it, &key, &value);) {
                shown_result *shown = value;
                free(shown->reason);
                free(shown);
        }
        vf_map_free(s->shown);
        free(s);
}

/* ---- plan ------------------------------------------------------------- */

#define DIFF_CONTEXT 3

/* The define's diff, or for a removal what goes: libvirt's side, as drift projects it, against the files'. */
static void print_plan_diff(FILE *f, const vf_report_entry *e) {
        vf_buf b = {};

        diff_unified(&e->result.plan_current, &e->result.plan_desired, DIFF_CONTEXT, "    ", &b);
        _cleanup_free_ char *text = vf_buf_steal(&b);
        fputs(text ? text : "    (no diff: out of memory)\n", f);
}

/* Which file declared it, and which files of the same name in lower-precedence directories it overrides. */
static void print_provenance(FILE *f, const schema_set *set, const char *file) {
        const schema_source *source = file && set ? schema_set_source(set, file) : NULL;

        if (!file)
                return;
        fprintf(f, " (%s", file);
        for (size_t i = 0; source && source->overridden && source->overridden[i]; i++)
                fprintf(f, "%s%s", i ? ", " : ", overriding ", source->overridden[i]);
        fputc(')', f);
}

void output_plan(FILE *f, const vf_report *r) {
        for (size_t i = 0; i < r->n_entries; i++) {
                const vf_report_entry *e = &r->entries[i];
                fprintf(f, "%s %s %s/%s", plan_actions[e->result.outcome].sign, plan_actions[e->result.outcome].action,
                        vf_kind_to_string(e->kind), e->name);
                print_provenance(f, r->desired, e->source_file);
                print_reason(f, &e->result, false);
                fputc('\n', f);
                if (e->result.steps && e->result.outcome != RC_UNCHANGED) {
                        fprintf(f, "    steps:");
                        for (size_t s = 0; e->result.steps[s]; s++)
                                fprintf(f, "%s %s", s ? "," : "", e->result.steps[s]);
                        fputc('\n', f);
                }
                print_plan_diff(f, e);
        }
        print_summary(f, "plan", r);
}

static void json_field(vf_buf *b, const char *key, const char *value);

static void json_plan_change(vf_buf *b, const vf_report_entry *e) {
        const rc_result *res = &e->result;

        vf_buf_puts(b, "{\"kind\":");
        vf_buf_put_json_string(b, vf_kind_to_string(e->kind));
        json_field(b, "name", e->name);
        json_field(b, "file", e->source_file);
        json_field(b, "action", plan_actions[res->outcome].action);
        json_field(b, "reason", res->reason);
        json_field(b, "message", res->message);
        vf_buf_puts(b, ",\"diff\":");
        if (res->plan_current.lines || res->plan_desired.lines) {
                vf_buf diff = {};
                diff_unified(&res->plan_current, &res->plan_desired, DIFF_CONTEXT, "", &diff);
                _cleanup_free_ char *text = vf_buf_steal(&diff);
                if (!text)
                        b->oom = true;
                vf_buf_put_json_string(b, text ? text : "");
        } else
                vf_buf_puts(b, "null");
        vf_buf_puts(b, ",\"steps\":[");
        for (size_t i = 0; res->steps && res->steps[i]; i++) {
                vf_buf_puts(b, i ? "," : "");
                vf_buf_put_json_string(b, res->steps[i]);
        }
        vf_buf_puts(b, "]}");
}

/* Errors only: a warning fails nothing, and a CI gate reads this array as "the files are not right". */
static void json_plan_errors(vf_buf *b, const schema_diag *diags, size_t n, bool *first) {
        for (size_t i = 0; i < n; i++) {
                const schema_diag *d = &diags[i];
                if (d->warning)
                        continue;
                vf_buf_puts(b, *first ? "\n  {\"file\":" : ",\n  {\"file\":");
                vf_buf_put_json_string(b, d->file);
                /* 0 is "no position" (an unreadable file): null says so to a parser. */
                vf_buf_printf(b, d->line ? ",\"line\":%u" : ",\"line\":null", d->line);
                vf_buf_printf(b, d->column ? ",\"column\":%u" : ",\"column\":null", d->column);
                json_field(b, "message", d->message);
                vf_buf_puts(b, "}");
                *first = false;
        }
}

int output_plan_json(FILE *f, const vf_report *r, const char *errmsg) {
        const schema_set *set = r->desired;
        bool first = true;
        vf_buf b = {};

        vf_buf_puts(&b, "{\"changes\":[");
        for (size_t i = 0; i < r->n_entries; i++) {
                if (r->entries[i].result.outcome == RC_UNCHANGED)
                        continue;
                vf_buf_puts(&b, first ? "\n  " : ",\n  ");
                json_plan_change(&b, &r->entries[i]);
                first = false;
        }
        vf_buf_printf(&b, "],\n \"summary\":{\"resources\":%zu", r->n_entries);
        for (rc_outcome o = 0; o < _RC_OUTCOME_MAX; o++)
                vf_buf_printf(&b, ",\"%s\":%u", plan_actions[o].action, r->by_outcome[o]);
        vf_buf_printf(&b, ",\"fileErrors\":%u},\n \"errors\":[", r->n_file_errors);
        first = true;
        if (set) {
                json_plan_errors(&b, set->path_errors, set->n_path_errors, &first);
                json_plan_errors(&b, set->diags, set->n_diags, &first);
        }
        if (errmsg) {
                const schema_diag run = { .message = (char *) errmsg };
                json_plan_errors(&b, &run, 1, &first);
        }
        vf_buf_puts(&b, "]}\n");
        _cleanup_free_ char *text = vf_buf_steal(&b);
        if (!text)
                return -ENOMEM;
        fputs(text, f);
        return 0;
}

/* ---- status ------------------------------------------------------------ */

static const state_condition *ready_condition(const state_record *rec) {
        return state_record_condition(rec, "Ready");
}

/* "3m" ago, or "in 12s": "-" for a time never set. */
static void format_relative(int64_t when_usec, int64_t now_usec, char out[24]) {
        char d[16];

        if (when_usec <= 0) {
                strcpy(out, "-");
                return;
        }
        vf_format_duration(when_usec - now_usec, d);
        snprintf(out, 24, when_usec > now_usec ? "in %s" : "%s", d);
}

/* Everything recorded, one line each: -o wide. */
static void print_status_wide(FILE *f, state_record *const *recs, size_t n, int64_t now_usec) {
        fprintf(f, "%-8s %-24s %-6s %-20s %-5s %-9s %-8s %-8s %-32s %s\n", "KIND", "NAME", "READY", "REASON", "AGE",
                "GEN/OBS", "ATTEMPTS", "RETRY", "FILE", "MESSAGE");
        for (size_t i = 0; i < n; i++) {
                const state_record *rec = recs[i];
                const state_condition *ready = ready_condition(rec);
                const state_condition *restart = state_record_condition(rec, "RestartPending");
                char gen[48], next[24], age[24];

                snprintf(gen, sizeof gen, "%" PRId64 "/%" PRId64, rec->generation, rec->observed_generation);
                format_relative(rec->next_retry_usec, now_usec, next);
                format_relative(ready ? ready->last_transition_usec : 0, now_usec, age);
                fprintf(f, "%-8s %-24s %-6s %-20s %-5s %-9s %-8" PRId64 " %-8s %-32s %s%s%s\n", rec->kind, rec->name,
                        ready ? (ready->status ? "True" : "False") : "-", ready && ready->reason ? ready->reason : "-",
                        age, gen, rec->attempts, next, rec->source_file ? rec->source_file : "-",
                        ready && ready->message ? ready->message : "",
                        restart && restart->status ? " [RestartPending] " : "",
                        restart && restart->status && restart->message ? restart->message : "");
        }
}

/* The columns that always show whole, however narrow the terminal: the message takes what is left. */
#define STATUS_NAME_MAX 40
#define STATUS_REASON_MAX 24
#define STATUS_AGE_WIDTH 5

static int max_int(int a, int b) {
        return a > b ? a : b;
}

/* At most width bytes of text, never half a UTF-8 character; "..." marks a cut. */
static void print_cut(FILE *f, const char *text, int width) {
        size_t len = strlen(text);

        if (width <= 0)
                return;
        if (len <= (size_t) width) {
                fputs(text, f);
                return;
        }
        size_t keep = width > 3 ? (size_t) width - 3 : 0;
        while (keep > 0 && ((unsigned char) text[keep] & 0xC0) == 0x80)
                keep--;
        fprintf(f, "%.*s%s", (int) keep, text, width > 3 ? "..." : "");
}

/* What a row says after its reason: why it is not Ready, when it is retried, what waits for a restart. */
static char *status_message(const state_record *rec, int64_t now_usec) {
        const state_condition *ready = ready_condition(rec);
        const state_condition *restart = state_record_condition(rec, "RestartPending");
        char next[24] = "";

        /* Past its time, a retry waits for the next apply or a daemon: "due", not an age. */
        if (rec->next_retry_usec > now_usec)
                format_relative(rec->next_retry_usec, now_usec, next);
        else if (rec->next_retry_usec > 0)
                strcpy(next, "due");
        return vf_printf("%s%s%s%s%s", next[0] ? "retry " : "", next, next[0] ? ": " : "",
                         ready && ready->message ? ready->message : "",
                         restart && restart->status ? " [RestartPending]" : "");
}

static void print_status_row(FILE *f, const char *name, int name_width, const char *ready, const char *reason,
                             int reason_width, const char *age, const char *message, int width) {
        int used = fprintf(f, "%-*.*s %-5s %-*.*s %-*s ", name_width, name_width, name, ready, reason_width,
                           reason_width, reason, STATUS_AGE_WIDTH, age);
        print_cut(f, message, width - used);
        fputc('\n', f);
}

/* A file the last pass could not use: a row of its own, "file/NAME", with its first error where it is. */
static void print_file_error_row(FILE *f, const state_file_error *e, int name_width, int reason_width, int width) {
        const char *slash = strrchr(e->file, '/');
        _cleanup_free_ char *name = vf_printf("file/%s", slash ? slash + 1 : e->file);
        _cleanup_free_ char *message = e->n_errors > 1
                ? vf_printf("%s:%" PRId64 ":%" PRId64 ": %s (and %" PRId64 " more)", e->file, e->line, e->column,
                            e->message, e->n_errors - 1)
                : vf_printf("%s:%" PRId64 ":%" PRId64 ": %s", e->file, e->line, e->column, e->message);

        print_status_row(f, name ? name : e->file, name_width, "False", "InvalidFile", reason_width, "-",
                         message ? message : e->message, width);
}

static void print_status_fitted(FILE *f, const output_status *st, int64_t now_usec, int width) {
        int name_width = (int) strlen("KIND/NAME"), reason_width = (int) strlen("REASON");

        for (size_t i = 0; i < st->n_recs; i++) {
                const state_condition *ready = ready_condition(st->recs[i]);
                name_width = max_int(name_width, (int) (strlen(st->recs[i]->kind) + 1 + strlen(st->recs[i]->name)));
                if (ready && ready->reason)
                        reason_width = max_int(reason_width, (int) strlen(ready->reason));
        }
        for (size_t i = 0; i < st->n_file_errors; i++) {
                const char *slash = strrchr(st->file_errors[i].file, '/');
                name_width = max_int(name_width, (int) strlen("file/") + (int) strlen(slash ? slash + 1 : ""));
                reason_width = max_int(reason_width, (int) strlen("InvalidFile"));
        }
        name_width = name_width > STATUS_NAME_MAX ? STATUS_NAME_MAX : name_width;
        reason_width = reason_width > STATUS_REASON_MAX ? STATUS_REASON_MAX : reason_width;
        print_status_row(f, "KIND/NAME", name_width, "READY", "REASON", reason_width, "AGE", "MESSAGE", width);
        for (size_t i = 0; i < st->n_recs; i++) {
                const state_record *rec = st->recs[i];
                const state_condition *ready = ready_condition(rec);
                _cleanup_free_ char *name = vf_printf("%s/%s", rec->kind, rec->name);
                _cleanup_free_ char *message = status_message(rec, now_usec);
                char age[24];

                format_relative(ready ? ready->last_transition_usec : 0, now_usec, age);
                print_status_row(f, name ? name : rec->name, name_width,
                                 ready ? (ready->status ? "True" : "False") : "-",
                                 ready && ready->reason ? ready->reason : "-", reason_width, age,
                                 message ? message : "", width);
        }
        for (size_t i = 0; i < st->n_file_errors; i++)
                print_file_error_row(f, &st->file_errors[i], name_width, reason_width, width);
}

void output_status_table(FILE *f, const output_status *st, int width) {
        int64_t now = vf_now_realtime_usec();

        if (width > 0)
                print_status_fitted(f, st, now, width);
        else {
                print_status_wide(f, st->recs, st->n_recs, now);
                for (size_t i = 0; i < st->n_file_errors; i++)
                        print_file_error_row(f, &st->file_errors[i], STATUS_NAME_MAX, STATUS_REASON_MAX, INT_MAX);
        }
        if (st->daemon)
                fprintf(f, "\ndaemon: %s\n", st->daemon);
}

/* One resource, as systemctl status shows a unit: what is recorded, every condition, and its latest writes. */
void output_status_one(FILE *f, const state_record *rec, const state_event *events, size_t n_events) {
        int64_t now = vf_now_realtime_usec();
        char next[24];

        format_relative(rec->next_retry_usec, now, next);
        fprintf(f, "%s/%s\n", rec->kind, rec->name);
        fprintf(f, "  File:        %s\n", rec->source_file ? rec->source_file : "-");
        fprintf(f, "  Generation:  %" PRId64 " (observed %" PRId64 ")\n", rec->generation, rec->observed_generation);
        fprintf(f, "  UUID:        %s\n", rec->uuid ? rec->uuid : "-");
        fprintf(f, "  Attempts:    %" PRId64 " (next retry %s)\n", rec->attempts, next);
        if (rec->last_error)
                fprintf(f, "  Last error:  %s\n", rec->last_error);
        fprintf(f, "\n%-16s %-6s %-20s %-5s %s\n", "CONDITION", "STATUS", "REASON", "AGE", "MESSAGE");
        for (size_t i = 0; i < rec->n_conditions; i++) {
                const state_condition *c = &rec->conditions[i];
                char age[24];

                format_relative(c->last_transition_usec, now, age);
                fprintf(f, "%-16s %-6s %-20s %-5s %s\n", c->type, c->status ? "True" : "False",
                        c->reason ? c->reason : "-", age, c->message ? c->message : "");
        }
        fputc('\n', f);
        output_log_table(f, events, n_events);
}

static void json_condition(vf_buf *b, const state_condition *c) {
        char when[32];

        vf_format_time(c->last_transition_usec, when);
        vf_buf_puts(b, "{\"type\":");
        vf_buf_put_json_string(b, c->type);
        vf_buf_printf(b, ",\"status\":\"%s\",\"reason\":", c->status ? "True" : "False");
        vf_buf_put_json_string(b, c->reason);
        vf_buf_puts(b, ",\"message\":");
        vf_buf_put_json_string(b, c->message);
        vf_buf_puts(b, ",\"lastTransitionTime\":");
        vf_buf_put_json_string(b, when);
        vf_buf_puts(b, "}");
}

static void json_field(vf_buf *b, const char *key, const char *value) {
        vf_buf_printf(b, ",\"%s\":", key);
        vf_buf_put_json_string(b, value);
}

/* Closes the JSON array in b and prints it whole: never half a document. */
static int print_json_array_end(FILE *f, vf_buf *b) {
        vf_buf_puts(b, "]\n");
        _cleanup_free_ char *text = vf_buf_steal(b);
        if (!text)
                return -ENOMEM;
        fputs(text, f);
        return 0;
}

static void json_record(vf_buf *b, const state_record *rec) {
        char next[32];

        vf_buf_puts(b, "{\"kind\":");
        vf_buf_put_json_string(b, rec->kind);
        json_field(b, "name", rec->name);
        json_field(b, "sourceFile", rec->source_file);
        vf_buf_printf(b, ",\"generation\":%" PRId64 ",\"observedGeneration\":%" PRId64, rec->generation,
                      rec->observed_generation);
        json_field(b, "desiredHash", rec->desired_hash);
        json_field(b, "uuid", rec->uuid);
        json_field(b, "lastError", rec->last_error);
        vf_buf_printf(b, ",\"attempts\":%" PRId64, rec->attempts);
        vf_format_time(rec->next_retry_usec, next);
        json_field(b, "nextRetry", rec->next_retry_usec ? next : NULL);
        vf_buf_puts(b, ",\"conditions\":[");
        for (size_t i = 0; i < rec->n_conditions; i++) {
                if (i)
                        vf_buf_puts(b, ",");
                json_condition(b, &rec->conditions[i]);
        }
        vf_buf_puts(b, "]}");
}

static void json_file_error(vf_buf *b, const state_file_error *e) {
        vf_buf_puts(b, "{\"kind\":\"file\"");
        json_field(b, "name", e->file);
        vf_buf_printf(b, ",\"line\":%" PRId64 ",\"column\":%" PRId64, e->line, e->column);
        json_field(b, "message", e->message);
        vf_buf_printf(b, ",\"errors\":%" PRId64 "}", e->n_errors);
}

/* The records, then one entry of kind "file" per file the last pass could not use. */
static void status_json(vf_buf *b, const output_status *st) {
        vf_buf_puts(b, "[");
        for (size_t i = 0; i < st->n_recs; i++) {
                vf_buf_puts(b, i ? ",\n " : "");
                json_record(b, st->recs[i]);
        }
        for (size_t i = 0; i < st->n_file_errors; i++) {
                vf_buf_puts(b, i + st->n_recs ? ",\n " : "");
                json_file_error(b, &st->file_errors[i]);
        }
}

int output_status_json(FILE *f, const output_status *st) {
        vf_buf b = {};

        status_json(&b, st);
        return print_json_array_end(f, &b);
}

/* ---- YAML, from the JSON: one document, two spellings ----------------------- */

static int yaml_write(void *data, unsigned char *buffer, size_t size) {
        vf_buf_append(data, (const char *) buffer, size);
        return 1;
}

/* A string that, unquoted, YAML would read as something else (a bool, a null, a number). */
static bool yaml_needs_quotes(const char *value) {
        static const char *const typed[] = { "", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n" };
        char *end;

        for (size_t i = 0; i < ELEMENTSOF(typed); i++)
                if (strcasecmp(value, typed[i]) == 0)
                        return true;
        (void) strtod(value, &end);
        return *end == '\0';
}

/* Block style throughout; strings unquoted where that reads back as the same string. */
static void yaml_restyle(yaml_event_t *e) {
        if (e->type == YAML_MAPPING_START_EVENT)
                e->data.mapping_start.style = YAML_BLOCK_MAPPING_STYLE;
        else if (e->type == YAML_SEQUENCE_START_EVENT)
                e->data.sequence_start.style = YAML_BLOCK_SEQUENCE_STYLE;
        else if (e->type == YAML_SCALAR_EVENT && e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
                e->data.scalar.plain_implicit = !yaml_needs_quotes((const char *) e->data.scalar.value);
                e->data.scalar.style = YAML_ANY_SCALAR_STYLE;
        }
}

static int json_to_yaml(const char *json, vf_buf *out) {
        yaml_parser_t parser;
        yaml_emitter_t emitter;
        bool ok = yaml_parser_initialize(&parser) && yaml_emitter_initialize(&emitter);

        yaml_parser_set_input_string(&parser, (const unsigned char *) json, strlen(json));
        yaml_emitter_set_output(&emitter, yaml_write, out);
        yaml_emitter_set_unicode(&emitter, 1);
        yaml_emitter_set_width(&emitter, -1);
        for (bool end = false; ok && !end;) {
                yaml_event_t e;
                ok = yaml_parser_parse(&parser, &e);
                if (!ok)
                        break;
                end = e.type == YAML_STREAM_END_EVENT;
                yaml_restyle(&e);
                ok = yaml_emitter_emit(&emitter, &e); /* takes e, even when it fails */
        }
        yaml_parser_delete(&parser);
        yaml_emitter_delete(&emitter);
        return ok && !out->oom ? 0 : -ENOMEM;
}

int output_status_yaml(FILE *f, const output_status *st) {
        _cleanup_(vf_buf_done) vf_buf json = {}, yaml = {};

        status_json(&json, st);
        vf_buf_puts(&json, "]");
        if (json.oom)
                return -ENOMEM;
        int r = json_to_yaml(json.data, &yaml);
        if (r < 0)
                return r;
        fputs(yaml.data, f);
        return 0;
}

/* ---- log ----------------------------------------------------------------- */

void output_log_table(FILE *f, const state_event *events, size_t n) {
        fprintf(f, "%-20s %-32s %-5s %-24s %-8s %s\n", "TIME", "RESOURCE", "GEN", "ACTION", "OUTCOME", "MESSAGE");
        for (size_t i = 0; i < n; i++) {
                const state_event *ev = &events[i];
                _cleanup_free_ char *resource = vf_printf("%s/%s", ev->kind, ev->name);
                char when[32];

                vf_format_time(ev->time_usec, when);
                fprintf(f, "%-20s %-32s %-5" PRId64 " %-24s %-8s %s\n", when, resource ? resource : ev->name,
                        ev->generation, ev->action, ev->outcome, ev->message ? ev->message : "");
        }
}

int output_log_json(FILE *f, const state_event *events, size_t n) {
        vf_buf b = {};

        vf_buf_puts(&b, "[");
        for (size_t i = 0; i < n; i++) {
                const state_event *ev = &events[i];
                char when[32], finished[32];

                vf_format_time(ev->time_usec, when);
                vf_format_time(ev->finished_usec, finished);
                vf_buf_printf(&b, "%s{\"id\":%" PRId64 ",\"time\":", i ? ",\n " : "", ev->id);
                vf_buf_put_json_string(&b, when);
                json_field(&b, "finished", ev->finished_usec ? finished : NULL);
                json_field(&b, "kind", ev->kind);
                json_field(&b, "name", ev->name);
                vf_buf_printf(&b, ",\"generation\":%" PRId64, ev->generation);
                json_field(&b, "action", ev->action);
                json_field(&b, "outcome", ev->outcome);
                json_field(&b, "message", ev->message);
                vf_buf_puts(&b, "}");
        }
        return print_json_array_end(f, &b);
}
