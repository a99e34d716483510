/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state_record and its conditions as plain memory: nothing here touches SQLite.
 */
#include <string.h>

#include "state/state-internal.h"

static int strdup_or_null(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static void condition_done(state_condition *c) {
        free(c->type);
        free(c->reason);
        free(c->message);
}

state_record *state_record_new(const char *kind, const char *name) {
        _cleanup_(state_record_freep) state_record *rec = calloc(1, sizeof *rec);

        if (!rec || strdup_or_null(kind, &rec->kind) < 0 || strdup_or_null(name, &rec->name) < 0)
                return NULL;
        return TAKE_PTR(rec);
}

void state_record_free(state_record *rec) {
        if (!rec)
                return;
        free(rec->kind);
        free(rec->name);
        free(rec->source_file);
        free(rec->desired_hash);
        free(rec->uuid);
        free(rec->applied_xml_hash);
        free(rec->applied_desired_xml);
        free(rec->last_error);
        vf_strv_free(rec->depends);
        for (size_t i = 0; i < rec->n_conditions; i++)
                condition_done(&rec->conditions[i]);
        free(rec->conditions);
        free(rec);
}

void state_record_list_free(state_record **recs, size_t n) {
        for (size_t i = 0; i < n; i++)
                state_record_free(recs[i]);
        free(recs);
}

static state_condition *find_condition(const state_record *rec, const char *type) {
        for (size_t i = 0; i < rec->n_conditions; i++)
                if (vf_streq_ptr(rec->conditions[i].type, type))
                        return &rec->conditions[i];
        return NULL;
}

const state_condition *state_record_condition(const state_record *rec, const char *type) {
        return find_condition(rec, type);
}

int state_record_add_condition(state_record *rec, const char *type, bool status, const char *reason,
                               const char *message, int64_t last_transition_usec) {
        _cleanup_(condition_done) state_condition c = {
                .status = status,
                .last_transition_usec = last_transition_usec,
        };

        int r = strdup_or_null(type, &c.type) ?: strdup_or_null(reason, &c.reason) ?:
                strdup_or_null(message, &c.message);
        if (r < 0)
                return r;

        state_condition *conditions = realloc(rec->conditions, (rec->n_conditions + 1) * sizeof c);
        if (!conditions)
                return -ENOMEM;
        rec->conditions = conditions;
        rec->conditions[rec->n_conditions++] = c;
        c = (state_condition) {};
        return 0;
}

int state_record_set_condition(state_record *rec, const char *type, bool status, const char *reason,
                               const char *message, int64_t now_usec) {
        state_condition *c = find_condition(rec, type);
        if (!c)
                return state_record_add_condition(rec, type, status, reason, message, now_usec);

        /* Copy before freeing: the caller may pass the condition's own strings back in. */
        _cleanup_free_ char *new_reason = NULL, *new_message = NULL;
        int r = strdup_or_null(reason, &new_reason) ?: strdup_or_null(message, &new_message);
        if (r < 0)
                return r;

        free(c->reason);
        c->reason = TAKE_PTR(new_reason);
        free(c->message);
        c->message = TAKE_PTR(new_message);
        if (c->status != status) {
                c->status = status;
                c->last_transition_usec = now_usec;
        }
        return 0;
}

void state_record_clear_condition(state_record *rec, const char *type) {
        state_condition *c = find_condition(rec, type);
        if (!c)
                return;

        size_t i = (size_t) (c - rec->conditions);
        condition_done(c);
        memmove(c, c + 1, (rec->n_conditions - i - 1) * sizeof *c);
        rec->n_conditions--;
}
