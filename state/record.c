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
        free(rec->applied_desired_hash);
        free(rec->applied_desired_xml);
        free(rec->baseline_xml);
        free(rec->last_error);
        vf_strv_free(rec->depends);
        for (size_t i = 0; i < rec->n_conditions; i++)
                condition_done(&rec->conditions[i]);
        free(rec->conditions);
        free(rec);
}

int state_record_copy(const state_record *rec, state_record **ret) {
        _cleanup_(state_record_freep) state_record *copy = state_record_new(rec->kind, rec->name);

        if (!copy)
                return -ENOMEM;
        copy->generation = rec->generation;
        copy->observed_generation = rec->observed_generation;
        copy->attempts = rec->attempts;
        copy->next_retry_usec = rec->next_retry_usec;
        copy->updated_usec = rec->updated_usec;
        int r = strdup_or_null(rec->source_file, &copy->source_file) ?:
                strdup_or_null(rec->desired_hash, &copy->desired_hash) ?: strdup_or_null(rec->uuid, &copy->uuid) ?:
                strdup_or_null(rec->applied_xml_hash, &copy->applied_xml_hash) ?:
                strdup_or_null(rec->applied_desired_hash, &copy->applied_desired_hash) ?:
                strdup_or_null(rec->applied_desired_xml, &copy->applied_desired_xml) ?:
                strdup_or_null(rec->baseline_xml, &copy->baseline_xml) ?:
                strdup_or_null(rec->last_error, &copy->last_error) ?: vf_strv_copy(rec->depends, &copy->depends);
        for (size_t i = 0; r >= 0 && i < rec->n_conditions; i++) {
                const state_condition *c = &rec->conditions[i];
                r = state_record_add_condition(copy, c->type, c->status, c->reason, c->message,
                                               c->last_transition_usec);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(copy);
        return 0;
}

bool state_condition_same(const state_condition *a, const state_condition *b) {
        return vf_streq_ptr(a->type, b->type) && a->status == b->status && vf_streq_ptr(a->reason, b->reason) &&
               vf_streq_ptr(a->message, b->message) && a->last_transition_usec == b->last_transition_usec;
}

static bool same_conditions(const state_record *a, const state_record *b) {
        if (a->n_conditions != b->n_conditions)
                return false;
        for (size_t i = 0; i < a->n_conditions; i++) {
                const state_condition *other = state_record_condition(b, a->conditions[i].type);
                if (!other || !state_condition_same(&a->conditions[i], other))
                        return false;
        }
        return true;
}

/* NULL and an empty list are different to SQL (NULL and ""), so they are here. */
static bool same_strv(char *const *a, char *const *b) {
        if (!a != !b)
                return false;
        for (; a && *a && b && *b; a++, b++)
                if (strcmp(*a, *b) != 0)
                        return false;
        return (!a || !*a) && (!b || !*b);
}

bool state_record_same(const state_record *a, const state_record *b) {
        return vf_streq_ptr(a->kind, b->kind) && vf_streq_ptr(a->name, b->name) &&
               vf_streq_ptr(a->source_file, b->source_file) && vf_streq_ptr(a->desired_hash, b->desired_hash) &&
               a->generation == b->generation && a->observed_generation == b->observed_generation &&
               vf_streq_ptr(a->uuid, b->uuid) && vf_streq_ptr(a->applied_xml_hash, b->applied_xml_hash) &&
               vf_streq_ptr(a->applied_desired_hash, b->applied_desired_hash) &&
               (!b->applied_desired_xml || vf_streq_ptr(a->applied_desired_xml, b->applied_desired_xml)) &&
               (!b->baseline_xml || vf_streq_ptr(a->baseline_xml, b->baseline_xml)) &&
               vf_streq_ptr(a->last_error, b->last_error) && a->attempts == b->attempts &&
               a->next_retry_usec == b->next_retry_usec && same_strv(a->depends, b->depends) &&
               same_conditions(a, b);
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
