/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a full pass reads of libvirt and of the store, read on a thread of its
 * own while the files load: the three are independent, and a pass that
 * changes nothing spends most of its time reading them. The reconcile stays on
 * one thread; nothing here writes. The thread costs memory: what it allocates
 * sits in a malloc arena of its own, beside what the loading thread frees.
 *
 * While the thread runs, it alone touches the controller's libvirt context
 * (rc_context_begin_pass()) and the store (state_list()); the loading thread
 * touches neither until pass_reads_finish() has joined it.
 */
#include "controller/pass.h"

static int read_all(pass_reads *reads) {
        state_store *store = reads->c->store;
        int r = rc_context_begin_pass(&reads->c->rc, true, &reads->errmsg);

        if (r >= 0) {
                r = state_list(store, &reads->records, &reads->n_records);
                if (r < 0)
                        reads->errmsg = vf_printf("cannot read the state file: %s", state_last_error(store));
        }
        return r;
}

static void *reads_thread(void *userdata) {
        pass_reads *reads = userdata;

        reads->r = read_all(reads);
        return NULL;
}

void pass_reads_start(pass_reads *reads, vf_controller *c, bool beside) {
        *reads = (pass_reads) { .c = c };
        /* Without a thread, pass_reads_finish() reads on the caller's: later, never less. */
        reads->started = beside && pthread_create(&reads->thread, NULL, reads_thread, reads) == 0;
}

int pass_reads_finish(pass_reads *reads, char **errmsg) {
        if (reads->started) {
                (void) pthread_join(reads->thread, NULL);
                reads->started = false;
        } else
                reads->r = read_all(reads);
        if (reads->r < 0 && errmsg && !*errmsg)
                *errmsg = TAKE_PTR(reads->errmsg);
        return reads->r;
}

void pass_reads_done(pass_reads *reads) {
        if (reads->started)
                (void) pthread_join(reads->thread, NULL);
        state_record_list_free(reads->records, reads->n_records);
        free(reads->errmsg);
        *reads = (pass_reads) {};
}
