/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal to controller/: rendering reports and status for people and machines. */
#pragma once

#include "controller/controller.h"

void output_diags(FILE *f, const schema_set *set);
void output_apply(FILE *f, const vf_report *r);
void output_plan(FILE *f, const vf_report *r);
void output_status_table(FILE *f, state_record *const *recs, size_t n);
int output_status_json(FILE *f, state_record *const *recs, size_t n);
void output_log_table(FILE *f, const state_event *events, size_t n);
int output_log_json(FILE *f, const state_event *events, size_t n);
