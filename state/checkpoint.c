/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * When the -wal is written back into the state file.
 *
 * SQLite's own rule checkpoints inside the commit that takes the -wal past
 * 1000 pages. The -wal then starts over at the next write, unless a reader
 * (status, a monitoring loop) is just then reading a snapshot that needs it;
 * after such a miss, every later commit is again past 1000 pages and
 * checkpoints, with two fsyncs, until a restart succeeds. Those commits are
 * the daemon's, in the way of the edit an operator is waiting for.
 *
 * Here a commit checkpoints only once STATE_WAL_CAP_PAGES pages were added
 * since the last checkpoint: a bound on the -wal for a long pass that never
 * pauses. Below that, the writer checkpoints when it has nothing else to do
 * (state_checkpoint()), once SQLite's own 1000 pages have gathered.
 *
 * Not at every idle moment: the first commit after the -wal starts over
 * syncs its header, one more fsync in the way of a write. So the -wal starts
 * over about as often as under SQLite's rule, but never twice in a row for
 * want of a reader's pause.
 */
#include "state/state-internal.h"

#define STATE_WAL_IDLE_PAGES 1000
/* 16 MiB of 4 KiB pages: a checkpoint every few hundred resources of a cold apply. */
#define STATE_WAL_CAP_PAGES 4096

static int checkpoint(state_store *s, const char *schema) {
        int pages = 0, backfilled = 0;
        int rc = sqlite3_wal_checkpoint_v2(s->db, schema, SQLITE_CHECKPOINT_PASSIVE, &pages, &backfilled);

        if (rc != SQLITE_OK)
                return state_store_error(s, rc);
        /* A reader's snapshot may hold the last pages back: they go at the next checkpoint. */
        s->wal_pages = pages;
        s->wal_backfilled = backfilled;
        return 0;
}

static int on_wal_commit(void *userdata, sqlite3 *db, const char *schema, int pages) {
        state_store *s = userdata;

        /* Fewer pages than were written back: the -wal started over. */
        if (pages < s->wal_backfilled)
                s->wal_backfilled = 0;
        s->wal_pages = pages;
        /* The commit stands whatever the checkpoint does: a failed one is tried again later. */
        if (pages - s->wal_backfilled >= STATE_WAL_CAP_PAGES)
                (void) checkpoint(s, schema);
        return SQLITE_OK;
}

void state_wal_watch(state_store *s) {
        sqlite3_wal_hook(s->db, on_wal_commit, s);
}

int state_checkpoint(state_store *s) {
        if (s->wal_pages - s->wal_backfilled < STATE_WAL_IDLE_PAGES)
                return 0;
        /* Not inside a transaction: the pages it would write back are not committed. */
        if (!sqlite3_get_autocommit(s->db))
                return -EBUSY;
        return checkpoint(s, "main");
}
