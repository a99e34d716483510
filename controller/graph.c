/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "controller/graph.h"

static int add_node(graph *g, vf_kind kind, const char *name, graph_node **ret) {
        _cleanup_free_ char *key = schema_key(kind, name);
        graph_node *n;

        if (!key)
                return -ENOMEM;
        n = vf_map_get(g->by_key, key);
        if (n) {
                *ret = n;
                return 0;
        }
        /* by_key holds pointers into nodes: the array is sized up front and never moves. */
        n = &g->nodes[g->n_nodes];
        *n = (graph_node) { .kind = kind, .name = strdup(name), .key = TAKE_PTR(key) };
        if (!n->name || !n->key) {
                free(n->name);
                free(n->key);
                return -ENOMEM;
        }
        g->n_nodes++;
        *ret = n;
        return vf_map_put(g->by_key, n->key, n);
}

static bool file_failed(const schema_set *desired, const char *file) {
        return file && vf_strv_contains(desired->files_failed, file);
}

static int add_records(graph *g, const schema_set *desired, state_record *const *records, size_t n_records) {
        for (size_t i = 0; i < n_records; i++) {
                vf_kind kind = vf_kind_from_string(records[i]->kind);
                graph_node *n;
                if (kind < 0)
                        continue; /* written by a newer virtform: not ours to judge */
                int r = add_node(g, kind, records[i]->name, &n);
                if (r < 0)
                        return r;
                n->record = records[i];
                n->held = !n->desired && file_failed(desired, records[i]->source_file);
        }
        return 0;
}

static int add_owned_extra(graph *g, char *const *owned_extra) {
        for (size_t i = 0; owned_extra && owned_extra[i]; i++) {
                const char *slash = strchr(owned_extra[i], '/');
                _cleanup_free_ char *kind_name = slash ? strndup(owned_extra[i], slash - owned_extra[i]) : NULL;
                vf_kind kind = vf_kind_from_string(kind_name);
                graph_node *n;
                if (kind < 0)
                        return -EINVAL;
                int r = add_node(g, kind, slash + 1, &n);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Declared first in kind order, then removals in reverse kind order; names break ties. */
static int compare_nodes(const void *a, const void *b) {
        const graph_node *x = a, *y = b;
        bool x_removal = !x->desired, y_removal = !y->desired;

        if (x_removal != y_removal)
                return x_removal - y_removal;
        if (x->kind != y->kind)
                return x_removal ? (int) y->kind - (int) x->kind : (int) x->kind - (int) y->kind;
        return strcmp(x->name, y->name);
}

static int index_nodes(graph *g) {
        vf_map_free(g->by_key);
        g->by_key = vf_map_new();
        if (!g->by_key)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_nodes; i++) {
                int r = vf_map_put(g->by_key, g->nodes[i].key, &g->nodes[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A domain that names hostdevs must change when one of their addresses does. */
static void fold_hostdev_hash(graph_node *n) {
        vf_buf b = {};

        vf_buf_puts(&b, n->desired->hash);
        for (size_t i = 0; i < n->n_hostdevs; i++)
                vf_buf_printf(&b, "\n%s", n->hostdevs[i]->hostdev.pci);
        if (b.oom)
                return; /* keeps the plain hash: a missed fold costs a redefine, never a wrong one */
        vf_sha256_hex(b.data, b.len, n->hash);
        vf_buf_done(&b);
}

static int claim_hostdevs(graph *g, graph_node *domain) {
        char **names = domain->desired->domain.hostdevs;
        size_t n = vf_strv_length(names);

        domain->hostdevs = calloc(n ? n : 1, sizeof(schema_resource *));
        if (!domain->hostdevs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *key = schema_key(VF_KIND_HOSTDEV, names[i]);
                graph_node *hostdev = key ? graph_lookup(g, key) : NULL;
                if (!key)
                        return -ENOMEM;
                if (!hostdev || !hostdev->desired)
                        continue; /* the dependency check reports it */
                if (hostdev->claimant && strcmp(hostdev->claimant, domain->name) != 0) {
                        if (!domain->claim_conflict)
                                domain->claim_conflict = hostdev->name;
                        continue;
                }
                hostdev->claimant = domain->name;
                hostdev->claimant_running = domain->desired->domain.state == SCHEMA_DOMAIN_RUNNING;
                domain->hostdevs[domain->n_hostdevs++] = hostdev->desired;
        }
        return 0;
}

/* Nodes are in name order within a kind, so the first domain to name a hostdev claims it. */
static int link_dependencies(graph *g) {
        for (size_t i = 0; i < g->n_nodes; i++) {
                graph_node *n = &g->nodes[i];
                if (!n->desired)
                        continue;
                memcpy(n->hash, n->desired->hash, sizeof n->hash);
                if (n->kind != VF_KIND_DOMAIN)
                        continue;
                int r = claim_hostdevs(g, n);
                if (r < 0)
                        return r;
                if (n->n_hostdevs > 0)
                        fold_hostdev_hash(n);
        }
        return 0;
}

int graph_build(graph *g, const schema_set *desired, state_record *const *records, size_t n_records,
                char *const *owned_extra) {
        size_t cap = desired->n_resources + n_records + vf_strv_length(owned_extra);
        int r;

        *g = (graph) {};
        g->nodes = calloc(cap ? cap : 1, sizeof(graph_node));
        g->by_key = vf_map_new();
        if (!g->nodes || !g->by_key)
                return -ENOMEM;
        for (size_t i = 0; i < desired->n_resources; i++) {
                const schema_resource *res = desired->resources[i];
                graph_node *n;
                r = add_node(g, res->kind, res->name, &n);
                if (r < 0)
                        return r;
                n->desired = res;
        }
        r = add_records(g, desired, records, n_records);
        if (r < 0)
                return r;
        r = add_owned_extra(g, owned_extra);
        if (r < 0)
                return r;
        qsort(g->nodes, g->n_nodes, sizeof(graph_node), compare_nodes);
        r = index_nodes(g);
        if (r < 0)
                return r;
        return link_dependencies(g);
}

void graph_done(graph *g) {
        for (size_t i = 0; i < g->n_nodes; i++) {
                free(g->nodes[i].hostdevs);
                free(g->nodes[i].name);
                free(g->nodes[i].key);
                free(g->nodes[i].not_ready_reason);
        }
        free(g->nodes);
        vf_map_free(g->by_key);
        *g = (graph) {};
}

graph_node *graph_lookup(const graph *g, const char *key) {
        return vf_map_get(g->by_key, key);
}

const char *graph_hostdev_claimant(const graph *g, const char *hostdev) {
        _cleanup_free_ char *key = schema_key(VF_KIND_HOSTDEV, hostdev);
        graph_node *n = key ? graph_lookup(g, key) : NULL;
        return n && n->claimant ? n->claimant : "?";
}
