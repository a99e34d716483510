/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The work queue: resource keys with the monotonic time they are due. A key
 * is in it at most once; pushing it again keeps the earlier time, so an event
 * never postpones a retry and a retry never postpones an event. Only keys
 * waiting for time are here, so a scan for the next one is cheap.
 */
#include "controller/loop.h"

struct work_queue {
        vf_map *due; /* key -> int64_t* */
};

int queue_new(work_queue **ret) {
        work_queue *q = calloc(1, sizeof *q);
        if (!q || !(q->due = vf_map_new())) {
                free(q);
                return -ENOMEM;
        }
        *ret = q;
        return 0;
}

void queue_free(work_queue *q) {
        if (!q)
                return;
        vf_map_free_with(q->due, free);
        free(q);
}

int queue_push(work_queue *q, const char *key, int64_t due_usec) {
        int64_t *due = vf_map_get(q->due, key);

        if (due) {
                if (due_usec < *due)
                        *due = due_usec;
                return 0;
        }
        due = malloc(sizeof *due);
        if (!due)
                return -ENOMEM;
        *due = due_usec;
        int r = vf_map_put(q->due, key, due);
        if (r < 0)
                free(due);
        return r;
}

void queue_drop(work_queue *q, const char *key) {
        free(vf_map_remove(q->due, key));
}

int64_t queue_next_due(const work_queue *q) {
        int64_t next = INT64_MAX;
        size_t it = 0;
        void *due;

        while (vf_map_next(q->due, &it, NULL, &due))
                if (*(int64_t *) due < next)
                        next = *(int64_t *) due;
        return next;
}

int queue_pop_due(work_queue *q, int64_t now_usec, char ***keys) {
        _cleanup_strv_free_ char **due_keys = NULL;
        const char *key;
        size_t it = 0;
        void *due;

        while (vf_map_next(q->due, &it, &key, &due))
                if (*(int64_t *) due <= now_usec) {
                        int r = vf_strv_push(&due_keys, key);
                        if (r < 0)
                                return r;
                }
        for (size_t i = 0; due_keys && due_keys[i]; i++)
                queue_drop(q, due_keys[i]);
        *keys = TAKE_PTR(due_keys);
        return 0;
}
