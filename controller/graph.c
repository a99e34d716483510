/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "controller/graph.h"

int graph_init(graph *g) {
        /* Each node's key is its own, and lives as long as the node is in the map. */
        *g = (graph) { .by_key = vf_map_new_borrowing_keys(), .dependents = vf_map_new() };
        return g->by_key && g->dependents ? 0 : -ENOMEM;
}

static void node_free(graph_node *n) {
        free(n->key);
        state_record_free(n->record);
        vf_strv_free(n->depends);
        free(n->reason);
        free(n->not_ready_reason);
        free(n->wait.target);
        free(n);
}

void graph_done(graph *g) {
        size_t it = 0;
        void *dependents;

        for (size_t i = 0; i < g->n_nodes; i++)
                node_free(g->nodes[i]);
        free(g->nodes);
        vf_map_free(g->by_key);
        while (g->dependents && vf_map_next(g->dependents, &it, NULL, &dependents))
                vf_strv_free(dependents);
        vf_map_free(g->dependents);
        *g = (graph) {};
}

graph_node *graph_lookup(const graph *g, const char *key) {
        return vf_map_get(g->by_key, key);
}

/* The kind's name is short: one longer is no kind's, and needs no copy to be told so. */
static int split_key(const char *key, vf_kind *kind, size_t *name_at) {
        const char *slash = strchr(key, '/');
        char kind_name[32];

        if (!slash || (size_t) (slash - key) >= sizeof kind_name)
                return -EINVAL;
        memcpy(kind_name, key, slash - key);
        kind_name[slash - key] = '\0';
        *kind = vf_kind_from_string(kind_name);
        *name_at = slash + 1 - key;
        return *kind < 0 ? -EINVAL : 0;
}

int graph_ensure(graph *g, const char *key, graph_node **ret) {
        graph_node *n = graph_lookup(g, key);
        vf_kind kind;
        size_t name_at;

        if (n) {
                *ret = n;
                return 0;
        }
        int r = split_key(key, &kind, &name_at);
        if (r < 0)
                return r;
        graph_node **nodes = vf_grow(g->nodes, &g->cap, g->n_nodes + 1, sizeof *nodes);
        if (!nodes)
                return -ENOMEM;
        g->nodes = nodes;
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        *n = (graph_node) { .kind = kind, .key = strdup(key) };
        if (n->key)
                n->name = n->key + name_at;
        if (!n->key || vf_map_put(g->by_key, n->key, n) < 0) {
                node_free(n);
                return -ENOMEM;
        }
        g->nodes[g->n_nodes++] = n;
        *ret = n;
        return 0;
}

static void remove_dependent(graph *g, const char *dep, const char *key) {
        char **list = vf_map_get(g->dependents, dep);
        size_t n = vf_strv_length(list), j = 0;

        for (size_t i = 0; i < n; i++) {
                if (strcmp(list[i], key) == 0)
                        free(list[i]);
                else
                        list[j++] = list[i];
        }
        if (list)
                list[j] = NULL;
}

static int add_dependent(graph *g, const char *dep, const char *key) {
        char **list = vf_map_get(g->dependents, dep);

        if (vf_strv_contains(list, key))
                return 0;
        int r = vf_strv_push(&list, key);
        if (r < 0)
                return r;
        return vf_map_put(g->dependents, dep, list);
}

void graph_forget(graph *g, graph_node *n) {
        for (size_t i = 0; n->depends && n->depends[i]; i++)
                remove_dependent(g, n->depends[i], n->key);
        g->n_waiting_on_users -= n->wait.kind == RC_WAIT_USER;
        vf_map_remove(g->by_key, n->key);
        for (size_t i = 0; i < g->n_nodes; i++)
                if (g->nodes[i] == n) {
                        g->nodes[i] = g->nodes[--g->n_nodes];
                        break;
                }
        node_free(n);
}

int graph_set_desired(graph *g, graph_node *n, const schema_resource *desired) {
        char **depends = NULL;
        int r;

        for (size_t i = 0; n->depends && n->depends[i]; i++)
                remove_dependent(g, n->depends[i], n->key);
        vf_strv_free(n->depends);
        n->depends = NULL;
        n->desired = desired;
        for (size_t i = 0; desired && desired->depends && desired->depends[i]; i++) {
                r = vf_strv_push(&depends, desired->depends[i]);
                if (r >= 0)
                        r = add_dependent(g, desired->depends[i], n->key);
                if (r < 0) {
                        vf_strv_free(depends);
                        return r;
                }
        }
        n->depends = depends;
        return 0;
}

void graph_set_record(graph_node *n, state_record *rec) {
        if (n->record == rec)
                return;
        state_record_free(n->record);
        n->record = rec;
}

char *const *graph_dependents(const graph *g, const char *key) {
        return vf_map_get(g->dependents, key);
}

graph_node *graph_next_waiting_on(const graph *g, rc_wait_kind kind, size_t *i) {
        while (*i < g->n_nodes) {
                graph_node *n = g->nodes[(*i)++];
                if (n->wait.kind == kind)
                        return n;
        }
        return NULL;
}

graph_node *graph_next_waiter(const graph *g, const char *key, size_t *i) {
        while (g->n_waiting_on_users > 0 && *i < g->n_nodes) {
                graph_node *n = g->nodes[(*i)++];
                if (n->wait.kind == RC_WAIT_USER && vf_streq_ptr(n->wait.target, key))
                        return n;
        }
        return NULL;
}

/* Declared first in kind order, then removals in reverse kind order; names break ties. */
static int compare_nodes(const void *a, const void *b) {
        const graph_node *x = *(graph_node *const *) a, *y = *(graph_node *const *) b;
        bool x_removal = !x->desired, y_removal = !y->desired;

        if (x_removal != y_removal)
                return x_removal - y_removal;
        if (x->kind != y->kind)
                return x_removal ? (int) y->kind - (int) x->kind : (int) x->kind - (int) y->kind;
        return strcmp(x->name, y->name);
}

/* A run: the nodes of one kind that are all declared, or all to be removed. */
static bool same_run(const graph_node *x, const graph_node *y) {
        return !x->desired == !y->desired && x->kind == y->kind;
}

/* What a node depended on: its declaration's dependencies, or for a removal what its record kept of them. */
static char *const *node_depends(const graph_node *n) {
        return n->desired ? n->depends : n->record ? n->record->depends : NULL;
}

/* Whether any node of a run depends on another node of its kind: most runs (domains) have none. */
static bool run_has_inner_edges(graph_node **run, size_t n) {
        const char *kind = vf_kind_to_string(run[0]->kind);
        size_t len = strlen(kind);

        for (size_t i = 0; i < n; i++) {
                char *const *depends = node_depends(run[i]);
                for (size_t d = 0; depends && depends[d]; d++)
                        if (strncmp(depends[d], kind, len) == 0 && depends[d][len] == '/')
                                return true;
        }
        return false;
}

typedef struct run_edge {
        size_t waiter, awaited; /* indexes into the run */
} run_edge;

/*
 * The edges of a run: a declared node waits for the nodes of the run it depends on, and a removal is
 * waited for by them (what is made from another goes first).
 */
static int run_edges(graph_node **run, size_t n, run_edge **ret, size_t *n_ret) {
        _cleanup_(vf_map_freep) vf_map *index = vf_map_new();
        run_edge *edges = NULL;
        size_t n_edges = 0;
        int r = index ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < n; i++)
                r = vf_map_put(index, run[i]->key, (void *) (uintptr_t) (i + 1));
        for (size_t i = 0; r >= 0 && i < n; i++)
                for (char *const *d = node_depends(run[i]); r >= 0 && d && *d; d++) {
                        uintptr_t j = (uintptr_t) vf_map_get(index, *d);
                        if (!j || j - 1 == i)
                                continue;
                        run_edge *more = reallocarray(edges, n_edges + 1, sizeof *more);
                        if (!more) {
                                r = -ENOMEM;
                                break;
                        }
                        edges = more;
                        edges[n_edges++] = run[i]->desired ? (run_edge) { i, j - 1 } : (run_edge) { j - 1, i };
                }
        if (r < 0) {
                free(edges);
                return r;
        }
        *ret = edges;
        *n_ret = n_edges;
        return 0;
}

/*
 * Orders one run (nodes of one kind, all declared or all removals, in name order) so that no node
 * comes before one it waits for: each step takes the first node, by name, whose waits are over. A
 * cycle (which the schema refuses) cannot stall it: then the first node left goes next.
 */
static int order_run(graph_node **run, size_t n) {
        _cleanup_free_ run_edge *edges = NULL;
        _cleanup_free_ size_t *waits = calloc(n, sizeof *waits);
        _cleanup_free_ bool *placed = calloc(n, sizeof *placed);
        _cleanup_free_ graph_node **sorted = malloc(n * sizeof *sorted);
        size_t n_edges = 0;
        int r = waits && placed && sorted ? run_edges(run, n, &edges, &n_edges) : -ENOMEM;

        if (r < 0)
                return r;
        for (size_t e = 0; e < n_edges; e++)
                waits[edges[e].waiter]++;
        for (size_t k = 0; k < n; k++) {
                size_t pick = n;
                for (size_t i = 0; i < n && pick == n; i++)
                        if (!placed[i] && waits[i] == 0)
                                pick = i;
                for (size_t i = 0; i < n && pick == n; i++)
                        if (!placed[i])
                                pick = i; /* a cycle */
                placed[pick] = true;
                sorted[k] = run[pick];
                for (size_t e = 0; e < n_edges; e++)
                        if (edges[e].awaited == pick && waits[edges[e].waiter] > 0)
                                waits[edges[e].waiter]--;
        }
        memcpy(run, sorted, n * sizeof *run);
        return 0;
}

int graph_sort(graph_node **nodes, size_t n) {
        qsort(nodes, n, sizeof *nodes, compare_nodes);
        for (size_t start = 0, end; start < n; start = end) {
                for (end = start + 1; end < n && same_run(nodes[start], nodes[end]); end++)
                        ;
                if (!run_has_inner_edges(nodes + start, end - start))
                        continue;
                int r = order_run(nodes + start, end - start);
                if (r < 0)
                        return r;
        }
        return 0;
}

const graph_node *graph_hostdev_claimant(const graph *g, const char *hostdev_name) {
        _cleanup_free_ char *key = schema_key(VF_KIND_HOSTDEV, hostdev_name);
        char *const *dependents = key ? graph_dependents(g, key) : NULL;
        const graph_node *claimant = NULL;

        for (size_t i = 0; dependents && dependents[i]; i++) {
                const graph_node *d = graph_lookup(g, dependents[i]);
                if (d && d->desired && d->kind == VF_KIND_DOMAIN && (!claimant || strcmp(d->name, claimant->name) < 0))
                        claimant = d;
        }
        return claimant;
}
