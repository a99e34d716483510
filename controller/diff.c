/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * plan's diff: a longest-common-subsequence line diff, printed as a unified
 * diff whose hunks name the element they change.
 *
 * Definitions are small and a change is usually a few lines, so the common
 * head and tail are set aside first and the LCS table covers the middle only.
 * A middle too large for the table is shown removed and added whole: a
 * longer diff, never a wrong one.
 */
#include "controller/diff.h"

#define DIFF_MAX_CELLS (4u * 1024 * 1024)

typedef enum edit_op {
        EDIT_SAME,
        EDIT_DEL,
        EDIT_ADD,
} edit_op;

typedef struct edits {
        edit_op *ops;
        size_t n;
        size_t *at_a, *at_b; /* before each op (and after the last), how many lines of a and of b came before */
} edits;

static void edits_done(edits *e) {
        free(e->ops);
        free(e->at_a);
        free(e->at_b);
        *e = (edits) {};
}

static void push_ops(edits *e, edit_op op, size_t count) {
        while (count-- > 0)
                e->ops[e->n++] = op;
}

/*
 * The LCS walk of the middle; false when it is too large for the table. A tie removes first, so each run
 * of changes lists its removals before its additions: an addition is taken only when a's line is kept
 * for a later match, which then comes before any removal.
 */
static bool lcs_middle(char *const *a, size_t na, char *const *b, size_t nb, edits *e) {
        if (na == 0 || nb == 0 || na + 1 > DIFF_MAX_CELLS / (nb + 1))
                return false;
        _cleanup_free_ unsigned *lcs = calloc((na + 1) * (nb + 1), sizeof(unsigned));
        if (!lcs)
                return false;
#define LCS(x, y) lcs[(x) * (nb + 1) + (y)]
        for (size_t x = na; x-- > 0;)
                for (size_t y = nb; y-- > 0;)
                        LCS(x, y) = strcmp(a[x], b[y]) == 0           ? LCS(x + 1, y + 1) + 1
                                    : LCS(x + 1, y) >= LCS(x, y + 1) ? LCS(x + 1, y)
                                                                     : LCS(x, y + 1);
        for (size_t x = 0, y = 0; x < na || y < nb;) {
                if (x < na && y < nb && strcmp(a[x], b[y]) == 0) {
                        push_ops(e, EDIT_SAME, 1);
                        x++, y++;
                } else if (y == nb || (x < na && LCS(x + 1, y) >= LCS(x, y + 1))) {
                        push_ops(e, EDIT_DEL, 1);
                        x++;
                } else {
                        push_ops(e, EDIT_ADD, 1);
                        y++;
                }
        }
#undef LCS
        return true;
}

static int compute_edits(char *const *a, size_t na, char *const *b, size_t nb, edits *e) {
        size_t head = 0, tail = 0;

        while (head < na && head < nb && strcmp(a[head], b[head]) == 0)
                head++;
        while (tail < na - head && tail < nb - head && strcmp(a[na - 1 - tail], b[nb - 1 - tail]) == 0)
                tail++;
        e->ops = calloc(na + nb + 1, sizeof *e->ops);
        e->at_a = calloc(na + nb + 2, sizeof *e->at_a);
        e->at_b = calloc(na + nb + 2, sizeof *e->at_b);
        if (!e->ops || !e->at_a || !e->at_b)
                return -ENOMEM;
        push_ops(e, EDIT_SAME, head);
        size_t ma = na - head - tail, mb = nb - head - tail;
        if (!lcs_middle(a + head, ma, b + head, mb, e)) {
                push_ops(e, EDIT_DEL, ma);
                push_ops(e, EDIT_ADD, mb);
        }
        push_ops(e, EDIT_SAME, tail);
        for (size_t k = 0; k < e->n; k++) {
                e->at_a[k + 1] = e->at_a[k] + (e->ops[k] != EDIT_ADD);
                e->at_b[k + 1] = e->at_b[k] + (e->ops[k] != EDIT_DEL);
        }
        return 0;
}

/* Shortens *len to the part of path that q shares with it, whole segments only. */
static void common_path(const char *path, size_t *len, const char *q) {
        size_t i = 0;

        while (i < *len && q[i] && path[i] == q[i])
                i++;
        if ((i == *len || path[i] == '/') && (q[i] == 0 || q[i] == '/')) {
                *len = i;
                return;
        }
        while (i > 0 && path[i] != '/')
                i--;
        *len = i;
}

/* "l,n" as diff writes it: "l" alone for one line, and the line before for none. */
static void put_range(vf_buf *out, size_t first, size_t count) {
        if (count == 1)
                vf_buf_printf(out, "%zu", first + 1);
        else
                vf_buf_printf(out, "%zu,%zu", count ? first + 1 : first, count);
}

static const char *changed_path(const edits *e, size_t k, const rc_xml_lines *a, const rc_xml_lines *b) {
        return e->ops[k] == EDIT_DEL ? a->paths[e->at_a[k]] : b->paths[e->at_b[k]];
}

static void put_hunk(const edits *e, size_t start, size_t end, const rc_xml_lines *a, const rc_xml_lines *b,
                     const char *prefix, vf_buf *out) {
        const char *path = NULL;
        size_t path_len = 0;

        for (size_t k = start; k < end; k++) {
                if (e->ops[k] == EDIT_SAME)
                        continue;
                const char *p = changed_path(e, k, a, b);
                if (!path) {
                        path = p;
                        path_len = strlen(p);
                } else
                        common_path(path, &path_len, p);
        }
        vf_buf_printf(out, "%s@@ -", prefix);
        put_range(out, e->at_a[start], e->at_a[end] - e->at_a[start]);
        vf_buf_puts(out, " +");
        put_range(out, e->at_b[start], e->at_b[end] - e->at_b[start]);
        vf_buf_printf(out, " @@ %.*s\n", (int) path_len, path_len ? path : "/");
        for (size_t k = start; k < end; k++) {
                if (e->ops[k] == EDIT_ADD)
                        vf_buf_printf(out, "%s+%s\n", prefix, b->lines[e->at_b[k]]);
                else
                        vf_buf_printf(out, "%s%c%s\n", prefix, e->ops[k] == EDIT_DEL ? '-' : ' ',
                                      a->lines[e->at_a[k]]);
        }
}

void diff_unified(const rc_xml_lines *a, const rc_xml_lines *b, unsigned context, const char *prefix, vf_buf *out) {
        _cleanup_(edits_done) edits e = {};

        if (compute_edits(a->lines, vf_strv_length(a->lines), b->lines, vf_strv_length(b->lines), &e) < 0) {
                out->oom = true;
                return;
        }
        for (size_t k = 0, done = 0; k < e.n; k++) {
                if (e.ops[k] == EDIT_SAME)
                        continue;
                /* A hunk runs on while changes are at most 2 * context equal lines apart. */
                size_t last = k, m = k + 1;
                for (; m < e.n && m - last <= 2 * (size_t) context + 1; m++)
                        if (e.ops[m] != EDIT_SAME)
                                last = m;
                size_t start = k - done > context ? k - context : done;
                size_t end = last + 1 + context < e.n ? last + 1 + context : e.n;
                put_hunk(&e, start, end, a, b, prefix, out);
                done = end;
                k = last;
        }
}
