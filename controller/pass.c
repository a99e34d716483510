/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One convergence pass: load, build the graph, hand each node to its
 * reconciler in dependency order, and record what happened.
 */
#include "controller/controller.h"
#include "controller/graph.h"

/*
 * Records are committed in batches: a crash loses at most one batch of
 * bookkeeping, never an action, because each libvirt object carries its
 * ownership marker with the desired hash, and the next pass finds it there.
 */
#define COMMIT_BATCH 512

typedef struct pass {
        vf_controller *c;
        graph graph;
        vf_report *report;
        state_record **records;
        size_t n_records;
} pass;

static void pass_done(pass *p) {
        graph_done(&p->graph);
        state_record_list_free(p->records, p->n_records);
}

static int64_t next_generation(const graph_node *n) {
        if (!n->record)
                return 1;
        if (vf_streq_ptr(n->record->desired_hash, n->hash))
                return n->record->generation;
        return n->record->generation + 1;
}

static int collect_owned_extra(pass *p, char ***ret) {
        _cleanup_(vf_map_freep) vf_map *known = vf_map_new();
        char **extra = NULL;
        int r = 0;

        if (!known)
                return -ENOMEM;
        for (size_t i = 0; i < p->c->desired->n_resources && r >= 0; i++) {
                _cleanup_free_ char *key = schema_key(p->c->desired->resources[i]->kind, p->c->desired->resources[i]->name);
                r = key ? vf_map_put(known, key, (void *) 1) : -ENOMEM;
        }
        for (size_t i = 0; i < p->n_records && r >= 0; i++) {
                _cleanup_free_ char *key = vf_printf("%s/%s", p->records[i]->kind, p->records[i]->name);
                r = key ? vf_map_put(known, key, (void *) 1) : -ENOMEM;
        }
        for (vf_kind k = 0; k < _VF_KIND_MAX && r >= 0; k++) {
                const rc_ops *ops = rc_ops_for_kind(k);
                _cleanup_strv_free_ char **names = NULL;
                if (!ops || !ops->owned_names)
                        continue;
                r = ops->owned_names(&p->c->rc, known, &names);
                for (size_t i = 0; r >= 0 && names && names[i]; i++)
                        r = vf_strv_consume(&extra, schema_key(k, names[i]));
        }
        if (r < 0) {
                vf_strv_free(extra);
                return r;
        }
        *ret = extra;
        return 0;
}

/* Is a dependency usable? Declared ones were processed first; the rest are probed in libvirt. */
static int dependency_ready(pass *p, const char *key, bool *ready, char **why) {
        graph_node *dep = graph_lookup(&p->graph, key);
        const char *slash = strchr(key, '/');
        _cleanup_free_ char *kind_name = strndup(key, slash - key);
        vf_kind kind = vf_kind_from_string(kind_name);
        const rc_ops *ops = kind >= 0 ? rc_ops_for_kind(kind) : NULL;

        if (dep && dep->desired) {
                *ready = dep->ready;
                *why = dep->ready ? NULL
                                  : vf_printf("%s %s is not Ready: %s", kind_name, slash + 1,
                                              dep->not_ready_reason ? dep->not_ready_reason : "not yet applied");
                return *ready || *why ? 0 : -ENOMEM;
        }
        if (!ops || !ops->probe) {
                *ready = false;
                *why = vf_printf("%s %s is not declared by any file", kind_name, slash + 1);
                return *why ? 0 : -ENOMEM;
        }
        return ops->probe(&p->c->rc, slash + 1, ready, why);
}

static int check_dependencies(pass *p, const graph_node *n, rc_result *res, bool *ok) {
        *ok = true;
        for (size_t i = 0; n->desired->depends && n->desired->depends[i]; i++) {
                _cleanup_free_ char *why = NULL;
                bool ready;
                int r = dependency_ready(p, n->desired->depends[i], &ready, &why);
                if (r < 0)
                        return r;
                if (!ready) {
                        rc_result_set(res, RC_WAITING, false, "DependencyNotReady", "waiting: %s", why);
                        *ok = false;
                        return 0;
                }
        }
        return 0;
}

static int reconcile_node(pass *p, graph_node *n, int64_t generation, rc_result *res) {
        const rc_ops *ops = rc_ops_for_kind(n->kind);
        rc_request req = {
                .kind = n->kind,
                .name = n->name,
                .desired = n->desired,
                .record = n->record,
                .generation = generation,
                .hash = n->hash,
                .hostdevs = n->hostdevs,
                .n_hostdevs = n->n_hostdevs,
                .claimant = n->claimant,
                .claimant_running = n->claimant_running,
        };
        bool deps_ok;
        int r;

        if (n->held) {
                rc_result_set(res, RC_FAILED, false, "InvalidFile",
                              "%s has errors; its last applied state is kept until the file is fixed",
                              n->record->source_file);
                return 0;
        }
        if (!ops) {
                rc_result_set(res, RC_FAILED, false, "Unsupported", "virtform cannot manage %s resources yet",
                              vf_kind_to_string(n->kind));
                return 0;
        }
        if (!n->desired) {
                if (!p->c->opts.prune) {
                        rc_result_set(res, RC_KEPT, true, "PruneDisabled",
                                      "no longer declared; kept because pruning is off (--no-prune)");
                        return 0;
                }
                return ops->remove(&p->c->rc, &req, res);
        }
        if (n->claim_conflict) {
                rc_result_set(res, RC_FAILED, false, "Conflict",
                              "hostdev %s is already used by domain %s; a hostdev serves one domain: remove it "
                              "from one of them",
                              n->claim_conflict, graph_hostdev_claimant(&p->graph, n->claim_conflict));
                return 0;
        }
        r = check_dependencies(p, n, res, &deps_ok);
        if (r < 0 || !deps_ok)
                return r;
        return ops->apply(&p->c->rc, &req, res);
}

static int set_conditions(state_record *rec, const rc_result *res, int64_t now) {
        int r = state_record_set_condition(rec, "Ready", res->ready, res->reason, res->message, now);
        if (r < 0)
                return r;
        if (res->restart_pending)
                return state_record_set_condition(rec, "RestartPending", true, "ConfigChanged", res->restart_pending,
                                                  now);
        state_record_clear_condition(rec, "RestartPending");
        return 0;
}

static int update_record(state_record *rec, const graph_node *n, int64_t generation, const rc_result *res) {
        int r = 0;

        if (n->desired) {
                r = vf_free_and_strdup(&rec->source_file, n->desired->file);
                if (r >= 0)
                        r = vf_free_and_strdup(&rec->desired_hash, n->hash);
                rec->generation = generation;
        }
        if (r >= 0 && res->uuid)
                r = vf_free_and_strdup(&rec->uuid, res->uuid);
        if (r >= 0 && res->applied_xml_hash)
                r = vf_free_and_strdup(&rec->applied_xml_hash, res->applied_xml_hash);
        if (r >= 0 && res->applied_desired_xml)
                r = vf_free_and_strdup(&rec->applied_desired_xml, res->applied_desired_xml);
        if (r < 0)
                return r;
        if (res->ready && n->desired) {
                rec->observed_generation = generation;
                rec->attempts = 0;
                rec->next_retry_usec = 0;
                r = vf_free_and_strdup(&rec->last_error, NULL);
        } else if (!res->ready) {
                rec->attempts++;
                r = vf_free_and_strdup(&rec->last_error, res->message);
        }
        if (r < 0)
                return r;
        rec->updated_usec = vf_now_realtime_usec();
        return set_conditions(rec, res, rec->updated_usec);
}

static bool record_goes_away(const rc_result *res) {
        return res->outcome == RC_DELETED || (res->outcome == RC_KEPT && vf_streq_ptr(res->reason, "NotOwned"));
}

static int record_node(pass *p, const graph_node *n, int64_t generation, const rc_result *res) {
        state_store *store = p->c->store;
        _cleanup_(state_record_freep) state_record *fresh = NULL;
        state_record *rec;
        int r;

        if (record_goes_away(res))
                return n->record ? state_delete(store, vf_kind_to_string(n->kind), n->name) : 0;
        if (!n->desired && !n->record)
                return 0; /* an owned extra we kept: nothing of ours to record */
        if (n->record)
                rec = (state_record *) n->record; /* the pass owns the list: updating it in place is safe */
        else {
                rec = fresh = state_record_new(vf_kind_to_string(n->kind), n->name);
                if (!rec)
                        return -ENOMEM;
        }
        r = update_record(rec, n, generation, res);
        if (r < 0)
                return r;
        return state_put(store, rec);
}

static void entry_done(vf_report_entry *e) {
        free(e->name);
        free(e->source_file);
        free(e->old_xml);
        rc_result_done(&e->result);
}

/* Fills the node's report entry, replacing what an earlier round of this pass put there. */
static int set_entry(vf_report *report, graph_node *n, rc_result *res) {
        vf_report_entry *e;

        if (n->entry) {
                e = &report->entries[n->entry - 1];
                report->by_outcome[e->result.outcome]--;
                entry_done(e);
        } else {
                e = realloc(report->entries, (report->n_entries + 1) * sizeof *e);
                if (!e)
                        return -ENOMEM;
                report->entries = e;
                e = &report->entries[report->n_entries++];
                n->entry = report->n_entries;
        }
        *e = (vf_report_entry) {
                .kind = n->kind,
                .name = strdup(n->name),
                .source_file = n->desired ? strdup(n->desired->file)
                               : n->record && n->record->source_file ? strdup(n->record->source_file)
                                                                      : NULL,
                .result = *res,
                .old_xml = n->record && n->record->applied_desired_xml ? strdup(n->record->applied_desired_xml) : NULL,
        };
        *res = (rc_result) {};
        report->by_outcome[e->result.outcome]++;
        return e->name ? 0 : -ENOMEM;
}

static void log_result(const vf_controller *c, const graph_node *n, const rc_result *res) {
        vf_log_level level = res->outcome == RC_FAILED    ? VF_LOG_WARNING
                             : res->outcome == RC_UNCHANGED ? VF_LOG_DEBUG
                                                            : VF_LOG_INFO;
        vf_log(c, level, "%s: %s: %s%s%s", n->key, rc_outcome_to_string(res->outcome), res->reason ? res->reason : "",
               res->message ? ": " : "", res->message ? res->message : "");
}

static int process_node(pass *p, graph_node *n, char **errmsg) {
        _cleanup_(rc_result_done) rc_result res = {};
        int64_t generation = n->desired ? next_generation(n) : n->record ? n->record->generation : 0;
        int r = reconcile_node(p, n, generation, &res);

        /* A reconciler that failed says why; anything else it did not expect is reported as such. */
        if (r < 0 && !res.reason)
                rc_result_set(&res, RC_FAILED, false, "InternalError", "%s", strerror(-r));
        n->ready = res.ready;
        free(n->not_ready_reason);
        n->not_ready_reason = NULL;
        if (!res.ready)
                n->not_ready_reason = vf_printf("%s: %s", res.reason, res.message ? res.message : "");
        log_result(p->c, n, &res);
        if (!p->c->opts.dry_run) {
                r = record_node(p, n, generation, &res);
                if (r < 0) {
                        *errmsg = vf_printf("cannot record %s in the state file: %s", n->key,
                                            state_last_error(p->c->store));
                        return r;
                }
        }
        return set_entry(p->report, n, &res);
}

static int begin_batch(pass *p) {
        return p->c->opts.dry_run ? 0 : state_begin(p->c->store);
}

static int end_batch(pass *p, char **errmsg) {
        if (p->c->opts.dry_run)
                return 0;
        int r = state_commit(p->c->store);
        if (r < 0)
                *errmsg = vf_printf("cannot commit to the state file: %s", state_last_error(p->c->store));
        return r;
}

/*
 * A device or network still in use when its turn came may be free once the
 * domains after it in the order have stopped or gone: one more look, in the
 * same pass, so that apply does not need a second run for it.
 */
static bool worth_second_round(const pass *p, const graph_node *n) {
        const rc_result *res = n->entry ? &p->report->entries[n->entry - 1].result : NULL;
        return res && res->outcome == RC_WAITING && vf_streq_ptr(res->reason, "InUse");
}

static int run_nodes(pass *p, char **errmsg) {
        int r = begin_batch(p);

        for (size_t i = 0; r >= 0 && i < p->graph.n_nodes; i++) {
                r = process_node(p, &p->graph.nodes[i], errmsg);
                if (r >= 0 && (i + 1) % COMMIT_BATCH == 0) {
                        r = end_batch(p, errmsg);
                        if (r >= 0)
                                r = begin_batch(p);
                }
        }
        for (size_t i = 0; r >= 0 && i < p->graph.n_nodes; i++)
                if (worth_second_round(p, &p->graph.nodes[i]))
                        r = process_node(p, &p->graph.nodes[i], errmsg);
        if (r < 0) {
                if (!p->c->opts.dry_run)
                        (void) state_rollback(p->c->store);
                return r;
        }
        return end_batch(p, errmsg);
}

static int load_desired(vf_controller *c, vf_report *report) {
        schema_set_free(c->desired);
        c->desired = NULL;
        int r = schema_load(c->opts.paths, vf_strv_length(c->opts.paths), &c->desired);
        if (r < 0)
                return r;
        report->desired = c->desired;
        report->n_file_errors = c->desired->n_diags;
        for (size_t i = 0; i < c->desired->n_diags; i++) {
                _cleanup_free_ char *line = schema_diag_format(&c->desired->diags[i]);
                vf_log(c, VF_LOG_ERR, "%s", line ? line : "out of memory");
        }
        return 0;
}

int vf_controller_pass(vf_controller *c, vf_report *report, char **errmsg) {
        _cleanup_(pass_done) pass p = { .c = c, .report = report };
        _cleanup_strv_free_ char **owned_extra = NULL;
        rc_counters before = c->rc.counters;
        int r;

        *report = (vf_report) {};
        r = load_desired(c, report);
        if (r < 0)
                return r;
        r = state_list(c->store, &p.records, &p.n_records);
        if (r < 0) {
                *errmsg = vf_printf("cannot read the state file: %s", state_last_error(c->store));
                return r;
        }
        r = rc_context_begin_pass(&c->rc, errmsg);
        if (r >= 0)
                r = collect_owned_extra(&p, &owned_extra);
        if (r >= 0)
                r = graph_build(&p.graph, c->desired, p.records, p.n_records, owned_extra);
        if (r >= 0)
                r = run_nodes(&p, errmsg);
        rc_context_end_pass(&c->rc);
        for (rc_call i = 0; i < _RC_CALL_MAX; i++)
                report->counters.calls[i] = c->rc.counters.calls[i] - before.calls[i];
        if (r < 0 && !*errmsg)
                *errmsg = vf_printf("the pass stopped: %s", strerror(-r));
        return r;
}

void vf_report_done(vf_report *r) {
        for (size_t i = 0; i < r->n_entries; i++)
                entry_done(&r->entries[i]);
        free(r->entries);
        *r = (vf_report) {};
}

bool vf_report_converged(const vf_report *r) {
        if (r->n_file_errors > 0)
                return false;
        for (size_t i = 0; i < r->n_entries; i++)
                if (!r->entries[i].result.ready)
                        return false;
        return true;
}
