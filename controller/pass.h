/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to controller/: processing a batch of graph nodes, in dependency
 * order, and recording what happened. select.c decides which nodes: all of
 * them (a full pass) or those an event touched (an incremental one).
 */
#pragma once

#include "controller/controller.h"
#include "controller/graph.h"

typedef struct pass {
        vf_controller *c;
        vf_report *report;
        graph_node **batch;
        size_t n_batch;
        bool intents_open; /* as the pass began: without any, no converged resource has one to resolve */
} pass;

/* Processes p->batch (sorted here) and commits; fills p->report. */
int pass_run(pass *p, char **errmsg);
