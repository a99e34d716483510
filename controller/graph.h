/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to controller/: the dependency graph of one pass.
 *
 * Nodes are every resource that is declared, recorded, or owned in libvirt.
 * Dependencies only point from later kinds to earlier ones (a domain on a
 * network or hostdev), so kind order is a topological order: declared
 * resources are applied in it and removed ones in its reverse.
 */
#pragma once

#include "schema/schema.h"
#include "state/state.h"

typedef struct graph_node {
        vf_kind kind;
        char *name;
        char *key; /* "kind/name" */
        const schema_resource *desired; /* NULL: to be removed (or held) */
        const state_record *record; /* NULL: never recorded */
        bool held; /* its file now fails to load: keep what was applied */
        char hash[VF_HASH_HEX_LEN + 1]; /* desired->hash folded with what it takes from dependencies */
        /* Domains: the declared Hostdevs they name; and the first one another domain already claims. */
        const schema_resource **hostdevs;
        size_t n_hostdevs;
        const char *claim_conflict; /* name of the hostdev claimed by another domain, or NULL */
        /* Hostdevs: the domain that claims it (the first in name order) and whether it is to run. */
        const char *claimant;
        bool claimant_running;
        bool ready; /* set by the pass once processed */
        size_t entry; /* 1 + its index in the pass's report; 0 before it is processed */
        char *not_ready_reason; /* why not, for dependents' messages */
} graph_node;

typedef struct graph {
        graph_node *nodes; /* in processing order */
        size_t n_nodes;
        vf_map *by_key; /* key -> graph_node* */
} graph;

/*
 * Builds the graph from the declared set, the store's records and the names
 * of owned objects nobody declared or recorded (owned_extra: "kind/name" keys).
 */
int graph_build(graph *g, const schema_set *desired, state_record *const *records, size_t n_records,
                char *const *owned_extra);
void graph_done(graph *g);
graph_node *graph_lookup(const graph *g, const char *key);
/* The domain that claims a declared hostdev, or "?" when none does. */
const char *graph_hostdev_claimant(const graph *g, const char *hostdev);
