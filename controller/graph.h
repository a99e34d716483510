/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to controller/: the dependency graph.
 *
 * Nodes are every resource that is declared, recorded, or owned in libvirt.
 * It lives as long as the controller: a full pass rebuilds it, an incremental
 * one updates the nodes it touches. Dependencies point from later kinds to
 * earlier ones (a domain on a network, a hostdev or a volume) and, within a
 * kind, from one node to another (a volume made from another volume), so the
 * processing order is kind order, each kind ordered by its own dependencies,
 * then by name: declared resources are applied in it and removed ones in its
 * reverse.
 */
#pragma once

#include "reconcilers/reconciler.h"
#include "schema/schema.h"
#include "state/state.h"

typedef struct graph_node {
        vf_kind kind;
        const char *name; /* within key */
        char *key; /* "kind/name" */
        const schema_resource *desired; /* borrowed from the controller's set; NULL: to be removed or held */
        state_record *record; /* what the store holds; NULL: never recorded */
        char **depends; /* the keys this node's declaration depends on, as last linked */

        /* What its last processing found, for its dependents and the work queue. */
        bool processed;
        bool ready;
        rc_outcome outcome;
        char *reason;
        char *not_ready_reason; /* "Reason: message", for dependents' messages */
        rc_wait wait; /* what brings it back when it is not Ready */

        size_t entry; /* 1 + its index in the current pass's report; 0 before it is processed */
} graph_node;

typedef struct graph {
        graph_node **nodes;
        size_t n_nodes;
        size_t cap;
        vf_map *by_key; /* key -> graph_node* */
        vf_map *dependents; /* key -> char** of the keys that depend on it, declared or not */
        size_t n_waiting_on_users; /* nodes whose last result waits on RC_WAIT_USER: events look them up */
} graph;

int graph_init(graph *g);
void graph_done(graph *g);
graph_node *graph_lookup(const graph *g, const char *key);
/* The node for a key, added when missing. */
int graph_ensure(graph *g, const char *key, graph_node **ret);
/*
 * Removes a node that stands for nothing any more (not declared, not
 * recorded, nothing of ours in libvirt), so that the events its removal
 * causes find no node to process again. The keys that depend on it keep
 * waiting for it by key.
 */
void graph_forget(graph *g, graph_node *n);
/* Points a node at its current declaration (NULL: none) and updates the dependency edges. */
int graph_set_desired(graph *g, graph_node *n, const schema_resource *desired);
/* Hands a record to its node, which owns it from then on. */
void graph_set_record(graph_node *n, state_record *rec);
/* The keys that depend on key. */
char *const *graph_dependents(const graph *g, const char *key);
/*
 * The next node, from index *i on, whose last result waits on kind; NULL after the last. Start *i at 0:
 * for (size_t i = 0; (n = graph_next_waiting_on(g, kind, &i));).
 */
graph_node *graph_next_waiting_on(const graph *g, rc_wait_kind kind, size_t *i);
/*
 * The next node, from index *i on, that waits for key to let go of it (RC_WAIT_USER); NULL after the
 * last. Start *i at 0: for (size_t i = 0; (n = graph_next_waiter(g, key, &i));).
 */
graph_node *graph_next_waiter(const graph *g, const char *key, size_t *i);
/*
 * Sorts nodes into processing order: declared ones in kind order, after the nodes of their kind they
 * depend on; then removals in reverse kind order, before the nodes of their kind they depended on.
 * Names order the rest. Returns 0 or -ENOMEM.
 */
int graph_sort(graph_node **nodes, size_t n);

/*
 * The domain that claims a hostdev: the first, by name, of the declared
 * domains that name it. NULL when none does.
 */
const graph_node *graph_hostdev_claimant(const graph *g, const char *hostdev_name);
