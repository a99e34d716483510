/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal to controller/: rendering reports and status for people and machines. */
#pragma once

#include "controller/controller.h"

void output_diags(FILE *f, const schema_set *set);
/* apply's closing summary: the resources' lines were streamed (output_stream) as they were decided. */
void output_apply(FILE *f, const vf_report *r);

/*
 * apply's lines on f, one per resource as soon as it is decided, and again only when its outcome or reason
 * changes. With progress (f is a terminal), a line rewritten in place says what is being done.
 */
typedef struct output_stream output_stream;
int output_stream_new(FILE *f, bool progress, output_stream **ret);
void output_stream_free(output_stream *s);
DEFINE_POINTER_CLEANUP(output_stream, output_stream_free);
const vf_observer *output_stream_observer(output_stream *s);
/* plan for people: a line per resource, its steps, and a unified diff of each definition it changes. */
void output_plan(FILE *f, const vf_report *r);
/*
 * plan for machines: {"changes":[...],"summary":{...},"errors":[...]}, keys in a fixed order, every
 * resource apply would act on with its action, reason, diff and steps; the files' errors, and errmsg
 * (a run that could not be made: r may then be empty).
 */
int output_plan_json(FILE *f, const vf_report *r, const char *errmsg);
/* What status shows: the records, the files the last pass could not use, and a running daemon's connection. */
typedef struct output_status {
        state_record *const *recs;
        size_t n_recs;
        const state_file_error *file_errors;
        size_t n_file_errors;
        const char *daemon; /* "PID 1234, connected", while a daemon runs; else NULL */
} output_status;

/* KIND/NAME, READY, REASON, AGE and the message cut to width columns; width 0: every column, whole (-o wide). */
void output_status_table(FILE *f, const output_status *st, int width);
void output_status_one(FILE *f, const state_record *rec, const state_event *events, size_t n_events);
int output_status_json(FILE *f, const output_status *st);
int output_status_yaml(FILE *f, const output_status *st);
void output_log_table(FILE *f, const state_event *events, size_t n);
int output_log_json(FILE *f, const state_event *events, size_t n);
