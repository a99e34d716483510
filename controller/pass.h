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
        int inventory_r, records_r;
        char *errmsg; /* what the failed read could not read */
        state_record **records; /* owned until taken */
        size_t n_records;
} pass_reads;

/* Starts the reads; from here until pass_reads_finish() the caller leaves c->rc and c->store alone. */
void pass_reads_start(pass_reads *reads, vf_controller *c);
/*
 * Waits for the reads. Returns the inventory's result, and pass_reads_records() the records': a pass
 * that cannot list libvirt's objects keeps the last graph, one that cannot read the records lets it go
 * first, as it did when it read them itself (select.c, let_graph_go()). On failure *errmsg, unless
 * errmsg is NULL or *errmsg says something already, says what could not be read.
 */
int pass_reads_finish(pass_reads *reads, char **errmsg);
int pass_reads_records(pass_reads *reads, char **errmsg);
/* Waits for reads still running and frees the records not taken. */
void pass_reads_done(pass_reads *reads);
