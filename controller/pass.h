/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to controller/: processing a batch of graph nodes, in dependency
 * order, and recording what happened. select.c decides which nodes: all of
 * them (a full pass) or those an event touched (an incremental one).
 */
#pragma once

#include "controller/controller.h"
#include "controller/graph.h"

#include <pthread.h>

typedef struct pass {
        vf_controller *c;
        vf_report *report;
        graph_node **batch;
        size_t n_batch;
        bool intents_open; /* as the pass began: without any, no converged resource has one to resolve */
} pass;

/* Processes p->batch (sorted here) and commits; fills p->report. */
int pass_run(pass *p, char **errmsg);

/*
 * A full pass's reads of libvirt (the inventory) and of the store (every record), made on a thread
 * of their own while the files load (reads.c).
 */
typedef struct pass_reads {
        vf_controller *c;
        pthread_t thread;
        bool started;
        int r;
        char *errmsg; /* what could not be read */
        state_record **records; /* owned until taken */
        size_t n_records;
} pass_reads;

/*
 * Starts the reads on a thread of their own if beside, else leaves them to pass_reads_finish(). From
 * here until pass_reads_finish() the caller leaves c->rc and c->store alone.
 */
void pass_reads_start(pass_reads *reads, vf_controller *c, bool beside);
/*
 * Waits for the reads: 0, or their failure, with *errmsg saying what could not be read unless errmsg
 * is NULL or *errmsg says something already.
 */
int pass_reads_finish(pass_reads *reads, char **errmsg);
/* Waits for reads still running and frees the records not taken. */
void pass_reads_done(pass_reads *reads);
