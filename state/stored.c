/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the store holds for each record, remembered as a digest, so that a
 * put that would change nothing costs no SQL.
 *
 * Without it such a put still runs an upsert that SQLite finds equal and
 * reads the record's conditions back to compare them: a fifth of a pass that
 * finds everything in sync. The digest is taken when a record is read, and
 * after each put that succeeds, and covers every column a put writes but
 * updated_usec (which a put that changes nothing keeps as it is).
 *
 * The memory is only as good as the transaction that wrote it. A rollback,
 * any failed statement, and the deletion of a record forget it (all of it
 * but for a deletion), so the next put of a record goes to SQLite again: an
 * in-memory record may then be ahead of the file, and must be written.
 */
#include "state/state-internal.h"

static void add_int(vf_buf *b, int64_t v) {
        vf_buf_append(b, (const char *) &v, sizeof v);
}

/* Length-prefixed, and NULL apart from "": no two records serialize alike. */
static void add_text(vf_buf *b, const char *s) {
        add_int(b, s ? (int64_t) strlen(s) : -1);
        if (s)
                vf_buf_append(b, s, strlen(s));
}

static void serialize(vf_buf *b, const state_record *rec) {
        const char *texts[] = { rec->kind,     rec->name,        rec->source_file,         rec->desired_hash,
                                rec->uuid,     rec->applied_xml_hash, rec->applied_desired_xml, rec->last_error };
        const int64_t ints[] = { rec->generation, rec->observed_generation, rec->attempts, rec->next_retry_usec };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++)
                add_text(b, texts[i]);
        for (size_t i = 0; i < ELEMENTSOF(ints); i++)
                add_int(b, ints[i]);
        /* NULL apart from none: the one is stored as NULL, the other as "". */
        add_int(b, rec->depends ? (int64_t) vf_strv_length(rec->depends) : -1);
        for (char **d = rec->depends; d && *d; d++)
                add_text(b, *d);
        /* In the record's order: a put after a read that orders them otherwise is one SQLite compares. */
        add_int(b, (int64_t) rec->n_conditions);
        for (size_t i = 0; i < rec->n_conditions; i++) {
                const state_condition *c = &rec->conditions[i];
                add_text(b, c->type);
                add_int(b, c->status);
                add_text(b, c->reason);
                add_text(b, c->message);
                add_int(b, c->last_transition_usec);
        }
}

int state_stored_digest(state_store *s, const state_record *rec, uint8_t out[VF_HASH_SIZE]) {
        s->scratch.len = 0;
        serialize(&s->scratch, rec);
        if (s->scratch.oom) {
                vf_buf_done(&s->scratch);
                s->scratch = (vf_buf) {};
                return -ENOMEM;
        }
        vf_sha256(s->scratch.data, s->scratch.len, out);
        return 0;
}

/* The map's key for a record: a kind holds no '/', so no two records share one. */
static char *key_of(const char *kind, const char *name) {
        return vf_printf("%s/%s", kind, name);
}

bool state_stored_matches(const state_store *s, const state_record *rec, const uint8_t digest[VF_HASH_SIZE]) {
        _cleanup_free_ char *key = s->stored ? key_of(rec->kind, rec->name) : NULL;
        const uint8_t *stored = key ? vf_map_get(s->stored, key) : NULL;

        return stored && memcmp(stored, digest, VF_HASH_SIZE) == 0;
}

/*
 * Without memory for it, the record is only forgotten: its next put goes to
 * SQLite. A reader remembers nothing: its puts must reach SQLite to be refused.
 */
void state_stored_set(state_store *s, const state_record *rec, const uint8_t digest[VF_HASH_SIZE]) {
        if (s->lock_fd < 0)
                return;

        _cleanup_free_ char *key = key_of(rec->kind, rec->name);
        _cleanup_free_ uint8_t *copy = malloc(VF_HASH_SIZE);

        if (!s->stored)
                s->stored = vf_map_new();
        if (!key || !copy || !s->stored) {
                state_stored_forget(s, rec->kind, rec->name);
                return;
        }
        memcpy(copy, digest, VF_HASH_SIZE);
        uint8_t *was = vf_map_get(s->stored, key);
        if (vf_map_put(s->stored, key, copy) < 0) {
                state_stored_forget(s, rec->kind, rec->name);
                return;
        }
        free(was);
        copy = NULL;
}

int state_stored_remember(state_store *s, const state_record *rec) {
        uint8_t digest[VF_HASH_SIZE];

        if (s->lock_fd < 0)
                return 0;
        int r = state_stored_digest(s, rec, digest);
        if (r >= 0)
                state_stored_set(s, rec, digest);
        return r;
}

void state_stored_forget(state_store *s, const char *kind, const char *name) {
        _cleanup_free_ char *key = s->stored ? key_of(kind, name) : NULL;

        if (!key) {
                state_stored_forget_all(s);
                return;
        }
        free(vf_map_remove(s->stored, key));
}

void state_stored_forget_all(state_store *s) {
        vf_map_free_with(s->stored, free);
        s->stored = NULL;
}
