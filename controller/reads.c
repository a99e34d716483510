/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a full pass reads of libvirt and of the store, read on a thread of its
 * own while the files load: the three are independent, and a pass that
 * changes nothing spends most of its time reading them. The reconcile stays on
 * one thread; nothing here writes.
 *
 * While the thread runs, it alone touches the controller's libvirt context
 * (rc_context_begin_pass()) and the store (state_list()); the loading thread
 * touches neither until pass_reads_finish() has joined it.
 */
#include "controller/pass.h"

#include <pthread.h>

static void read_all(pass_reads *reads) {
        state_store *store = reads->c->store;

        reads->inventory_r = rc_context_begin_pass(&reads->c->rc, true, &reads->errmsg);
        if (reads->inventory_r < 0)
                return;
        reads->records_r = state_list(store, &reads->records, &reads->n_records);
        if (reads->records_r < 0)
                reads->errmsg = vf_printf("cannot read the state file: %s", state_last_error(store));
}

static void *reads_thread(void *userdata) {
        read_all(userdata);
        return NULL;
}

void pass_reads_start(pass_reads *reads, vf_controller *c) {
        *reads = (pass_reads) { .c = c };
        /* Without a thread, pass_reads_finish() reads on the caller's: later, never less. */
        reads->started = pthread_create(&reads->thread, NULL, reads_thread, reads) == 0;
}

static int failed(pass_reads *reads, int r, char **errmsg) {
        if (r < 0 && errmsg && !*errmsg)
                *errmsg = TAKE_PTR(reads->errmsg);
        return r;
}

int pass_reads_finish(pass_reads *reads, char **errmsg) {
        if (reads->started) {
                (void) pthread_join(reads->thread, NULL);
                reads->started = false;
        } else
                read_all(reads);
        return failed(reads, reads->inventory_r, errmsg);
}

int pass_reads_records(pass_reads *reads, char **errmsg) {
        return failed(reads, reads->records_r, errmsg);
}

void pass_reads_done(pass_reads *reads) {
        if (reads->started)
                (void) pthread_join(reads->thread, NULL);
        state_record_list_free(reads->records, reads->n_records);
        free(reads->errmsg);
        *reads = (pass_reads) {};
}
