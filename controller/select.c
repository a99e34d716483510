/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which nodes a pass processes. A full pass (apply, plan, SIGHUP) loads every
 * file, rebuilds the graph from the files, the store and libvirt's owned
 * objects, and processes all of it. An incremental pass (the daemon's events)
 * processes only the keys an event named and what depends on them, so that
 * its cost does not grow with the number of resources.
 */
#include "controller/pass.h"

static int load_desired(vf_controller *c, schema_set **ret) {
        schema_load_options options = vf_options_schema(&c->opts);
        /* The set of the last pass: the files unchanged since are not read again. */
        int r = schema_load_reusing(c->opts.paths, vf_strv_length(c->opts.paths), &options, c->desired, ret);
        if (r < 0)
                return r;
        for (size_t i = 0; i < (*ret)->n_path_errors; i++)
                vf_log_diag(c, &(*ret)->path_errors[i]);
        for (size_t i = 0; i < (*ret)->n_diags; i++)
                vf_log_diag(c, &(*ret)->diags[i]);
        return 0;
}

/* A directory read before and missing now: what it declared is unknown, not undeclared. */
static const char *vanished_dir(const vf_controller *c, const schema_set *desired) {
        for (size_t i = 0; desired->dirs_missing && desired->dirs_missing[i]; i++)
                if (vf_strv_contains(c->dirs_seen, desired->dirs_missing[i]))
                        return desired->dirs_missing[i];
        return NULL;
}

static int remember_dirs(vf_controller *c, const schema_set *desired) {
        for (size_t i = 0; desired->dirs && desired->dirs[i]; i++) {
                const char *dir = desired->dirs[i];
                if (vf_strv_contains(desired->dirs_missing, dir) || vf_strv_contains(c->dirs_seen, dir))
                        continue;
                int r = vf_strv_push(&c->dirs_seen, dir);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * Prune takes an undeclared resource for one to remove, so it needs every
 * path read: a typo in a path must not remove what the right path declares.
 * apply, plan and the daemon's start refuse such a set; a running daemon
 * goes on with it, holding every undeclared resource until the paths read.
 */
static int judge_paths(vf_controller *c, const schema_set *desired, char **errmsg) {
        const char *vanished = vanished_dir(c, desired);
        char *held = NULL;

        if (desired->n_path_errors > 0 && !(c->opts.daemon && c->desired))
                return vf_error(errmsg, -ENOENT, "nothing was applied or pruned: %s cannot be read",
                                desired->path_errors[0].file);
        if (desired->n_path_errors > 0)
                held = vf_printf("%s cannot be read, and nothing is pruned until it can",
                                 desired->path_errors[0].file);
        else if (vanished)
                held = vf_printf("directory %s vanished, and nothing is pruned until it is back "
                                 "(or virtform restarts without it)", vanished);
        if ((desired->n_path_errors > 0 || vanished) && !held)
                return -ENOMEM;
        free(c->prune_held);
        c->prune_held = held;
        if (held)
                vf_log(c, VF_LOG_WARNING, "%s", held);
        return remember_dirs(c, desired);
}

/* The records the pass's reads took from the store; each goes to its node. */
static int add_records(graph *g, pass_reads *reads) {
        int r = 0;

        for (size_t i = 0; i < reads->n_records; i++) {
                state_record *rec = reads->records[i];
                _cleanup_free_ char *key = vf_printf("%s/%s", rec->kind, rec->name);
                graph_node *node;
                r = key ? graph_ensure(g, key, &node) : -ENOMEM;
                if (r == -EINVAL)
                        continue; /* a kind from a newer virtform: not ours to judge */
                if (r < 0)
                        break;
                graph_set_record(node, TAKE_PTR(reads->records[i]));
        }
        return r < 0 ? r : 0;
}

static int add_declared(graph *g, const schema_set *desired) {
        for (size_t i = 0; i < desired->n_resources; i++) {
                const schema_resource *res = desired->resources[i];
                _cleanup_free_ char *key = schema_key(res->kind, res->name);
                graph_node *node;
                int r = key ? graph_ensure(g, key, &node) : -ENOMEM;
                if (r >= 0)
                        r = graph_set_desired(g, node, res);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Owned objects that no file declares and the store does not know: left behind by a lost store or a crash. */
static int add_owned_extra(vf_controller *c, graph *g) {
        for (vf_kind k = 0; k < _VF_KIND_MAX; k++) {
                const rc_ops *ops = rc_ops_for_kind(k);
                _cleanup_strv_free_ char **names = NULL;
                if (!ops || !ops->owned_names)
                        continue;
                int r = ops->owned_names(&c->rc, g->by_key, &names);
                for (size_t i = 0; r >= 0 && names && names[i]; i++) {
                        _cleanup_free_ char *key = schema_key(k, names[i]);
                        graph_node *node;
                        r = key ? graph_ensure(g, key, &node) : -ENOMEM;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int build_graph(vf_controller *c, schema_set *desired, pass_reads *reads, graph *g) {
        int r = graph_init(g);
        if (r >= 0)
                r = add_records(g, reads);
        if (r >= 0)
                r = add_declared(g, desired);
        if (r >= 0)
                r = add_owned_extra(c, g);
        return r;
}

/*
 * The last graph goes before the next pass reads anything: holding both would keep every resource's node
 * and record twice at the pass's peak. A pass that fails after leaves an empty graph and graph_lost, and
 * only a full pass that succeeds brings a graph back (the daemon tries one again: daemon.c). The set
 * stays: the next load takes the files unchanged since from it.
 */
static int let_graph_go(vf_controller *c) {
        graph empty;

        if (!c->graph)
                return 0;
        int r = graph_init(&empty);
        if (r < 0) {
                graph_done(&empty);
                return r;
        }
        graph_done(c->graph);
        *c->graph = empty;
        c->graph_lost = true;
        return 0;
}

static void replace_graph(vf_controller *c, graph *g) {
        if (!c->graph) {
                c->graph = malloc(sizeof *c->graph);
                if (!c->graph)
                        abort(); /* a few bytes after a whole graph was built */
        } else
                graph_done(c->graph);
        *c->graph = *g;
        *g = (graph) {};
        c->graph_lost = false;
}

static void report_counters(const vf_controller *c, const rc_counters *before, vf_report *report) {
        for (rc_call i = 0; i < _RC_CALL_MAX; i++)
                report->counters.calls[i] = c->rc.counters.calls[i] - before->calls[i];
}

/* ---- the files' errors, for status ------------------------------------------------ */

/* Adds diag to its file's entry, or starts one with it: each file keeps its first error and a count. */
static int add_file_error(state_file_error **errors, size_t *n, const schema_diag *diag) {
        for (size_t i = 0; i < *n; i++)
                if (strcmp((*errors)[i].file, diag->file) == 0) {
                        (*errors)[i].n_errors++;
                        return 0;
                }
        state_file_error *more = reallocarray(*errors, *n + 1, sizeof *more);
        if (!more)
                return -ENOMEM;
        *errors = more;
        more[*n] = (state_file_error) { .file = strdup(diag->file), .line = diag->line, .column = diag->column,
                                        .message = strdup(diag->message), .n_errors = 1 };
        (*n)++;
        return more[*n - 1].file && more[*n - 1].message ? 0 : -ENOMEM;
}

static int collect_file_errors(const schema_set *set, state_file_error **errors, size_t *n) {
        const schema_diag *lists[] = { set->path_errors, set->diags };
        const size_t counts[] = { set->n_path_errors, set->n_diags };

        for (size_t l = 0; l < ELEMENTSOF(lists); l++)
                for (size_t i = 0; i < counts[l]; i++) {
                        int r = lists[l][i].warning ? 0 : add_file_error(errors, n, &lists[l][i]);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static bool same_file_errors(const state_file_error *a, size_t na, const state_file_error *b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!vf_streq_ptr(a[i].file, b[i].file) || a[i].line != b[i].line || a[i].column != b[i].column ||
                    !vf_streq_ptr(a[i].message, b[i].message) || a[i].n_errors != b[i].n_errors)
                        return false;
        return true;
}

static int compare_file_errors(const void *a, const void *b) {
        return strcmp(((const state_file_error *) a)->file, ((const state_file_error *) b)->file);
}

/* What status shows of the files: written only when it changed, so that a clean set costs no write. */
static int record_file_errors(vf_controller *c, char **errmsg) {
        state_file_error *now = NULL, *recorded = NULL;
        size_t n_now = 0, n_recorded = 0;

        if (c->opts.dry_run)
                return 0;
        int r = collect_file_errors(c->desired, &now, &n_now);
        if (r >= 0)
                r = state_file_errors_list(c->store, &recorded, &n_recorded);
        if (r >= 0 && n_now > 1)
                qsort(now, n_now, sizeof *now, compare_file_errors);
        if (r >= 0 && !same_file_errors(now, n_now, recorded, n_recorded)) {
                r = state_begin(c->store);
                if (r >= 0) {
                        r = state_file_errors_set(c->store, now, n_now);
                        r = r >= 0 ? state_commit(c->store) : r;
                        if (r < 0)
                                (void) state_rollback(c->store);
                }
        }
        if (r < 0)
                *errmsg = vf_printf("cannot record the files' errors in the state file: %s",
                                    r == -ENOMEM ? strerror(-r) : state_last_error(c->store));
        state_file_error_list_free(now, n_now);
        state_file_error_list_free(recorded, n_recorded);
        return r;
}

static int run(vf_controller *c, graph_node **batch, size_t n, vf_report *report, char **errmsg) {
        pass p = { .c = c, .report = report, .batch = batch, .n_batch = n };
        int r = record_file_errors(c, errmsg);

        return r < 0 ? r : pass_run(&p, errmsg);
}

int vf_controller_pass(vf_controller *c, vf_report *report, char **errmsg) {
        _cleanup_(schema_set_freep) schema_set *desired = NULL;
        _cleanup_(pass_reads_done) pass_reads reads = {};
        rc_counters before = c->rc.counters;
        graph g = {};
        int r;

        *report = (vf_report) {};
        r = let_graph_go(c);
        if (r < 0)
                return r;
        /*
         * Beside a load that takes most files from the last set. A first load reads every file on every
         * processor already; reads beside it would only add their own malloc arena to the peak.
         */
        pass_reads_start(&reads, c, c->desired != NULL);
        r = load_desired(c, &desired);
        if (r >= 0)
                r = judge_paths(c, desired, errmsg);
        /* The files' failure comes first: a set that cannot be used makes what was read of no use. */
        int read_result = pass_reads_finish(&reads, r < 0 ? NULL : errmsg);
        if (r >= 0)
                r = read_result;
        if (r >= 0)
                r = build_graph(c, desired, &reads, &g);
        if (r < 0) {
                graph_done(&g);
                rc_context_end_pass(&c->rc);
                return r;
        }
        /* The old set goes once nothing points into it: the old graph went, the new one takes the new set. */
        replace_graph(c, &g);
        schema_set_free(c->desired);
        c->desired = TAKE_PTR(desired);
        report->desired = c->desired;
        report->n_file_errors = schema_set_n_errors(c->desired);
        _cleanup_free_ graph_node **all = malloc((c->graph->n_nodes + 1) * sizeof *all);
        if (!all)
                r = -ENOMEM;
        else {
                if (c->graph->n_nodes > 0)
                        memcpy(all, c->graph->nodes, c->graph->n_nodes * sizeof *all);
                r = run(c, all, c->graph->n_nodes, report, errmsg);
        }
        rc_context_end_pass(&c->rc);
        report_counters(c, &before, report);
        if (r < 0 && !*errmsg)
                *errmsg = vf_printf("the pass stopped: %s", strerror(-r));
        return r;
}

/* ---- incremental ------------------------------------------------------------- */

typedef struct selection {
        graph_node **nodes;
        size_t n, cap;
        vf_map *chosen;
} selection;

static void selection_done(selection *s) {
        free(s->nodes);
        vf_map_free(s->chosen);
}

static int choose(selection *s, graph_node *node) {
        if (vf_map_get(s->chosen, node->key))
                return 0;
        graph_node **nodes = vf_grow(s->nodes, &s->cap, s->n + 1, sizeof *nodes);
        if (!nodes)
                return -ENOMEM;
        s->nodes = nodes;
        s->nodes[s->n++] = node;
        return vf_map_put(s->chosen, node->key, node);
}

/* Brings a node up to date with the set before it is chosen. */
static int refresh_node(vf_controller *c, const char *key, graph_node **ret) {
        graph_node *node;
        int r = graph_ensure(c->graph, key, &node);

        if (r < 0)
                return r;
        r = graph_set_desired(c->graph, node, vf_map_get(c->desired->by_key, key));
        if (r < 0)
                return r;
        *ret = node;
        return 0;
}

/*
 * Every chosen node's record as the store has it, not as an earlier pass
 * left it in memory: a pass whose batch was rolled back kept records it had
 * put, and record_node() trusts a node's record to say what the store says.
 */
static int read_records(vf_controller *c, const selection *s) {
        for (size_t i = 0; i < s->n; i++) {
                graph_node *node = s->nodes[i];
                state_record *rec = NULL;
                int r = state_get(c->store, vf_kind_to_string(node->kind), node->name, &rec);
                if (r < 0 && r != -ENOENT)
                        return r;
                graph_set_record(node, rec);
        }
        return 0;
}

/*
 * What depends on a key, and what depends on those in turn: a chain runs
 * through kinds (a pool, its volume, the domain using it) and within one (a
 * volume made from another). The selection stops at a node chosen already.
 */
static int choose_dependents(vf_controller *c, selection *s, const char *key) {
        char *const *dependents = graph_dependents(c->graph, key);

        for (size_t i = 0; dependents && dependents[i]; i++) {
                graph_node *d = graph_lookup(c->graph, dependents[i]);
                if (!d || vf_map_get(s->chosen, d->key))
                        continue;
                int r = choose(s, d);
                if (r >= 0)
                        r = choose_dependents(c, s, d->key);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * What waits for a node to let go of it (a pool for the volumes this store
 * records in it): the node's own pass may free it, and nothing in libvirt
 * tells of a record that went. It comes after the node in the pass.
 */
static int choose_waiters(vf_controller *c, selection *s, const char *key) {
        graph_node *n;
        int r = 0;

        for (size_t i = 0; r >= 0 && (n = graph_next_waiter(c->graph, key, &i));)
                r = choose(s, n);
        return r;
}

/*
 * What a changed node brings along: its dependents, what waits for it to let go, and for a domain the
 * hostdevs whose claim may move.
 */
static int choose_related(vf_controller *c, selection *s, graph_node *node, char *const *old_depends) {
        char *const *lists[] = { node->depends, old_depends };
        int r = choose_dependents(c, s, node->key);

        if (r >= 0)
                r = choose_waiters(c, s, node->key);

        for (size_t l = 0; r >= 0 && l < ELEMENTSOF(lists); l++)
                for (size_t i = 0; r >= 0 && lists[l] && lists[l][i]; i++) {
                        graph_node *related = graph_lookup(c->graph, lists[l][i]);
                        r = related && related->kind == VF_KIND_HOSTDEV ? choose(s, related) : 0;
                }
        return r;
}

static int select_keys(vf_controller *c, char *const *keys, selection *s) {
        s->chosen = vf_map_new();
        if (!s->chosen)
                return -ENOMEM;
        for (size_t i = 0; keys && keys[i]; i++) {
                graph_node *existing = graph_lookup(c->graph, keys[i]);
                _cleanup_strv_free_ char **old_depends = NULL;
                graph_node *node;
                int r = 0;
                for (size_t d = 0; existing && existing->depends && existing->depends[d] && r >= 0; d++)
                        r = vf_strv_push(&old_depends, existing->depends[d]);
                if (r >= 0)
                        r = refresh_node(c, keys[i], &node);
                if (r >= 0)
                        r = choose(s, node);
                if (r >= 0)
                        r = choose_related(c, s, node, old_depends);
                if (r < 0)
                        return r;
        }
        return 0;
}

int vf_controller_pass_keys(vf_controller *c, char *const *keys, vf_report *report, char **errmsg) {
        _cleanup_(selection_done) selection s = {};
        rc_counters before = c->rc.counters;
        int r;

        *report = (vf_report) { .desired = c->desired, .n_file_errors = schema_set_n_errors(c->desired) };
        r = select_keys(c, keys, &s);
        if (r >= 0)
                r = read_records(c, &s);
        if (r >= 0)
                r = rc_context_begin_pass(&c->rc, false, errmsg);
        if (r >= 0)
                r = run(c, s.nodes, s.n, report, errmsg);
        rc_context_end_pass(&c->rc);
        report_counters(c, &before, report);
        if (r < 0 && !*errmsg)
                *errmsg = vf_printf("the pass stopped: %s", strerror(-r));
        return r;
}
