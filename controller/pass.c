/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Processing a batch of nodes: check dependencies, hand each node to its
 * reconciler in dependency order, record what happened and report it.
 */
#include "controller/pass.h"

/*
 * Records are committed in batches: a crash loses at most one batch of
 * bookkeeping, never an action, because each libvirt object carries its
 * ownership marker with the desired hash, and the next pass finds it there.
 * Actions themselves are not in the batch: each step commits its intent on
 * its own (state_intent_begin()), so the event log survives any crash; the
 * outcome follows with the next commit, and so do the records that remember
 * a write (put_record()).
 */
#define COMMIT_BATCH 512

/* What one node's request needs beyond the node itself, derived from the graph. */
typedef struct node_context {
        char hash[VF_HASH_HEX_LEN + 1];
        char definition_hash[VF_HASH_HEX_LEN + 1];
        const schema_resource **hostdevs;
        size_t n_hostdevs;
        const schema_resource **cloudinits;
        size_t n_cloudinits;
        const char *claim_conflict; /* a hostdev another domain claims */
        const char *conflict_claimant;
        const graph_node *claimant; /* for a hostdev: the domain that claims it */
} node_context;

static void node_context_done(node_context *nc) {
        free(nc->hostdevs);
        free(nc->cloudinits);
}

static bool file_failed(const schema_set *desired, const char *file) {
        return file && vf_strv_contains(desired->files_failed, file);
}

/*
 * A domain is defined anew when what it takes from its dependencies changes: a hostdev's address, the pool
 * and volume of a seed. Not a seed's content: a rebuilt seed is read at the guest's next boot and must not
 * restart it. A domain that takes nothing keeps its own hash.
 */
static void fold_dependencies(const node_context *nc, const char *hash, char out[VF_HASH_HEX_LEN + 1]) {
        vf_buf b = {};

        if (nc->n_hostdevs == 0 && nc->n_cloudinits == 0)
                return;
        vf_buf_puts(&b, hash);
        for (size_t i = 0; i < nc->n_hostdevs; i++)
                vf_buf_printf(&b, "\n%s", nc->hostdevs[i]->hostdev.pci);
        for (size_t i = 0; i < nc->n_cloudinits; i++)
                vf_buf_printf(&b, "\ncloudinit %s/%s" SCHEMA_CLOUDINIT_SUFFIX, nc->cloudinits[i]->cloudinit.pool,
                              nc->cloudinits[i]->name);
        if (!b.oom)
                vf_sha256_hex(b.data, b.len, out);
        vf_buf_done(&b);
}

/* A hostdev serves the one domain that claims it: another that names it is in conflict. */
static bool claims_hostdev(const graph *g, const graph_node *n, const char *name, node_context *nc) {
        const graph_node *claimant = graph_hostdev_claimant(g, name);

        if (claimant == n)
                return true;
        nc->claim_conflict = name;
        nc->conflict_claimant = claimant ? claimant->name : "?";
        return false;
}

/*
 * The declared resources of a kind that a domain names, in its order, for its request; admit (may be NULL)
 * turns one away. A name no file declares is left to the dependency check, which reports it.
 */
static int link_declared(const graph *g, const graph_node *n, vf_kind kind, char **names, node_context *nc,
                         bool (*admit)(const graph *g, const graph_node *n, const char *name, node_context *nc),
                         const schema_resource ***ret, size_t *n_ret) {
        size_t count = vf_strv_length(names);

        *n_ret = 0;
        *ret = calloc(count ? count : 1, sizeof(schema_resource *));
        if (!*ret)
                return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
                _cleanup_free_ char *key = schema_key(kind, names[i]);
                const graph_node *dep = key ? graph_lookup(g, key) : NULL;
                if (!key)
                        return -ENOMEM;
                if (!dep || !dep->desired || (admit && !admit(g, n, names[i], nc)))
                        continue;
                (*ret)[(*n_ret)++] = dep->desired;
        }
        return 0;
}

static int link_domain_dependencies(const graph *g, const graph_node *n, node_context *nc) {
        const schema_domain_spec *spec = &n->desired->domain;
        int r = link_declared(g, n, VF_KIND_HOSTDEV, spec->hostdevs, nc, claims_hostdev, &nc->hostdevs,
                              &nc->n_hostdevs);

        if (r >= 0)
                r = link_declared(g, n, VF_KIND_CLOUDINIT, spec->cloudinits, nc, NULL, &nc->cloudinits,
                                  &nc->n_cloudinits);
        if (r < 0)
                return r;
        fold_dependencies(nc, n->desired->hash, nc->hash);
        fold_dependencies(nc, n->desired->definition_hash, nc->definition_hash);
        return 0;
}

static int make_node_context(const graph *g, const graph_node *n, node_context *nc) {
        *nc = (node_context) {};
        if (!n->desired)
                return 0;
        memcpy(nc->hash, n->desired->hash, sizeof nc->hash);
        memcpy(nc->definition_hash, n->desired->definition_hash, sizeof nc->definition_hash);
        if (n->kind == VF_KIND_HOSTDEV)
                nc->claimant = graph_hostdev_claimant(g, n->name);
        if (n->kind == VF_KIND_DOMAIN)
                return link_domain_dependencies(g, n, nc);
        return 0;
}

static int64_t next_generation(const graph_node *n, const node_context *nc) {
        if (!n->record)
                return 1;
        if (vf_streq_ptr(n->record->desired_hash, nc->hash))
                return n->record->generation;
        return n->record->generation + 1;
}

/* Is a dependency usable? Declared ones were processed first; the rest are probed in libvirt. */
static int dependency_ready(pass *p, const char *key, bool *ready, char **why) {
        graph_node *dep = graph_lookup(p->c->graph, key);
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
                        return rc_result_wait(res, RC_WAIT_DEPENDENCY, n->desired->depends[i], 0);
                }
        }
        return 0;
}

/* A resource held at its last applied state keeps what its record says beside Ready. */
static int hold_conditions(const state_record *rec, rc_result *res) {
        struct {
                const char *type;
                char **message;
        } held[] = {
                { "RestartPending", &res->restart_pending },
                { "Drifted", &res->drifted },
                { "ShuttingDown", &res->shutting_down },
        };

        for (size_t i = 0; i < ELEMENTSOF(held); i++) {
                const state_condition *c = state_record_condition(rec, held[i].type);
                int r = c && c->status ? vf_free_and_strdup(held[i].message, c->message ? c->message : "") : 0;
                if (r < 0)
                        return r;
        }
        return rc_result_wait(res, RC_WAIT_CHANGE, NULL, 0);
}

static int reconcile_node(pass *p, graph_node *n, const node_context *nc, int64_t generation, rc_result *res) {
        const rc_ops *ops = rc_ops_for_kind(n->kind);
        rc_request req = {
                .kind = n->kind,
                .name = n->name,
                .desired = n->desired,
                .record = n->record,
                .generation = generation,
                .hash = nc->hash,
                .definition_hash = nc->definition_hash,
                .hostdevs = nc->hostdevs,
                .n_hostdevs = nc->n_hostdevs,
                .cloudinits = nc->cloudinits,
                .n_cloudinits = nc->n_cloudinits,
                .claimant = nc->claimant ? nc->claimant->name : NULL,
                .claimant_running = nc->claimant &&
                                    nc->claimant->desired->domain.state == SCHEMA_DOMAIN_RUNNING,
        };
        bool deps_ok;
        int r;

        if (!n->desired && n->record && file_failed(p->c->desired, n->record->source_file)) {
                rc_result_set(res, RC_FAILED, false, "InvalidFile",
                              "%s has errors; its last applied state is kept until the file is fixed",
                              n->record->source_file);
                return hold_conditions(n->record, res);
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
                if (p->c->prune_held) {
                        rc_result_set(res, RC_KEPT, false, "PruneHeld", "no longer declared, but kept: %s",
                                      p->c->prune_held);
                        return 0;
                }
                return ops->remove(&p->c->rc, &req, res);
        }
        if (nc->claim_conflict) {
                rc_result_set(res, RC_FAILED, false, "Conflict",
                              "hostdev %s is already used by domain %s; a hostdev serves one domain: remove it "
                              "from one of them",
                              nc->claim_conflict, nc->conflict_claimant);
                return 0;
        }
        r = check_dependencies(p, n, res, &deps_ok);
        if (r < 0 || !deps_ok)
                return r;
        return ops->apply(&p->c->rc, &req, res);
}

/* ---- recording ------------------------------------------------------------- */

/* What comes back by time: a failure retried with backoff. The other waits come back by an event. */
static bool retried_by_timer(const rc_result *res) {
        if (res->ready || res->outcome == RC_KEPT)
                return false;
        return rc_wait_ends_by_timer(res->wait.kind);
}

/* A loop follows this run (run, apply --wait): retries are scheduled; a plain apply schedules none. */
static bool follows_events(const vf_controller *c) {
        return c->opts.daemon || c->opts.wait;
}

/* Exponential backoff with jitter: base * 2^(attempts-1), capped, then drawn from its upper half. */
static int64_t retry_delay_usec(const vf_controller *c, int64_t attempts) {
        int64_t base = (int64_t) c->opts.retry_base_sec * 1000000, cap = (int64_t) c->opts.retry_max_sec * 1000000;
        int64_t delay = base;

        for (int64_t i = 1; i < attempts && delay < cap; i++)
                delay *= 2;
        if (delay > cap)
                delay = cap;
        uint64_t draw = 0;
        /* Without the kernel's randomness the jitter is lost, not the retry. */
        (void) vf_random_bytes(&draw, sizeof draw);
        return delay / 2 + (int64_t) (draw % (uint64_t) (delay / 2 + 1));
}

/* A condition that is there while its message is, and gone otherwise. */
static int set_or_clear(state_record *rec, const char *type, const char *reason, const char *message, int64_t now) {
        if (message)
                return state_record_set_condition(rec, type, true, reason, message, now);
        state_record_clear_condition(rec, type);
        return 0;
}

static int set_conditions(state_record *rec, const rc_result *res, int64_t now) {
        int r = state_record_set_condition(rec, "Ready", res->ready, res->reason, res->message, now);
        if (r >= 0)
                r = set_or_clear(rec, "RestartPending", "ConfigChanged", res->restart_pending, now);
        if (r >= 0)
                r = set_or_clear(rec, "Drifted", "ChangedOutOfBand", res->drifted, now);
        if (r >= 0)
                r = set_or_clear(rec, "ShuttingDown", "ShutdownRequested", res->shutting_down, now);
        return r;
}

/* What the declaration depends on, kept for when nothing declares it: its removal goes before theirs. */
static int record_depends(state_record *rec, char *const *depends) {
        char **copy;
        int r = vf_strv_copy(depends, &copy);

        if (r < 0)
                return r;
        vf_strv_free(rec->depends);
        rec->depends = copy;
        return 0;
}

/* Moves what only the store keeps out of the result: the report would hold every declaration twice. */
static void move_string(char **to, char **from) {
        if (!*from)
                return;
        free(*to);
        *to = TAKE_PTR(*from);
}

static int update_record(const vf_controller *c, state_record *rec, const graph_node *n, const node_context *nc,
                         int64_t generation, rc_result *res) {
        int r = 0;

        if (n->desired) {
                r = vf_free_and_strdup(&rec->source_file, n->desired->file);
                if (r >= 0)
                        r = vf_free_and_strdup(&rec->desired_hash, nc->hash);
                if (r >= 0)
                        r = record_depends(rec, n->desired->depends);
                rec->generation = generation;
        }
        if (r >= 0 && res->uuid)
                r = vf_free_and_strdup(&rec->uuid, res->uuid);
        if (r < 0)
                return r;
        move_string(&rec->applied_xml_hash, &res->applied_xml_hash);
        move_string(&rec->baseline_xml, &res->baseline_xml);
        move_string(&rec->applied_desired_xml, &res->applied_desired_xml);
        move_string(&rec->applied_desired_hash, &res->applied_desired_hash);
        rec->updated_usec = vf_now_realtime_usec();
        rec->next_retry_usec = 0;
        if (res->ready && n->desired) {
                rec->observed_generation = generation;
                rec->attempts = 0;
                r = vf_free_and_strdup(&rec->last_error, NULL);
        } else if (!res->ready) {
                if (retried_by_timer(res)) {
                        rec->attempts++;
                        if (follows_events(c))
                                rec->next_retry_usec = rec->updated_usec + retry_delay_usec(c, rec->attempts);
                } else if (res->wait.kind == RC_WAIT_OPERATION || res->wait.kind == RC_WAIT_HYPERVISOR)
                        /* Even a plain apply sees its own operation through, and follows libvirt's a while. */
                        rec->next_retry_usec = res->wait.deadline_usec;
                r = vf_free_and_strdup(&rec->last_error, res->message);
        }
        if (r < 0)
                return r;
        return set_conditions(rec, res, rec->updated_usec);
}

static bool record_goes_away(const rc_result *res) {
        return res->outcome == RC_DELETED || res->forget;
}

/*
 * A record goes into the state file with its batch, at the batch's end, except where it must be in
 * the commit of the next write's intent: when its resource made a write other than a define. A
 * define whose record a kill lost is found by its marker (docs/journal.md); a graceful shutdown's
 * request time, a volume's key or a seed's hash are in the record alone, and a rerun that lost them
 * would write again.
 */
static int put_record(state_store *store, const state_record *rec, bool holds_writes) {
        int r = state_put(store, rec);
        return r < 0 || !holds_writes ? r : state_write_puts(store);
}

static int record_node(pass *p, graph_node *n, const node_context *nc, int64_t generation, rc_result *res,
                       bool holds_writes) {
        state_store *store = p->c->store;
        _cleanup_(state_record_freep) state_record *fresh = NULL;
        int r;

        /* A converged resource is what a killed run's open intents are checked against. */
        if (res->ready && p->intents_open) {
                r = state_intent_resolve(store, vf_kind_to_string(n->kind), n->name);
                if (r < 0)
                        return r;
        }
        if (record_goes_away(res)) {
                r = n->record ? state_delete(store, vf_kind_to_string(n->kind), n->name) : 0;
                if (r >= 0)
                        graph_set_record(n, NULL);
                return r;
        }
        if (!n->desired && !n->record)
                return 0; /* an owned extra we kept: nothing of ours to record */
        if (n->record)
                r = state_record_copy(n->record, &fresh);
        else
                r = (fresh = state_record_new(vf_kind_to_string(n->kind), n->name)) ? 0 : -ENOMEM;
        if (r >= 0)
                r = update_record(p->c, fresh, n, nc, generation, res);
        if (r < 0)
                return r;
        /*
         * The node's record was read from the store in this pass (build_graph(), read_records() in
         * select.c) or put by it since: one that says the same again would write nothing, and is not worth the statements
         * that find so. The copy keeps a failed put's changes out of the node.
         */
        if (n->record && state_record_same(n->record, fresh))
                return 0;
        r = put_record(store, fresh, holds_writes);
        if (r < 0)
                return r;
        /* The store keeps both documents; a pass reads one back only when it needs it. */
        free(fresh->baseline_xml);
        fresh->baseline_xml = NULL;
        free(fresh->applied_desired_xml);
        fresh->applied_desired_xml = NULL;
        graph_set_record(n, TAKE_PTR(fresh));
        return 0;
}

/* ---- reporting --------------------------------------------------------------- */

static void entry_done(vf_report_entry *e) {
        free(e->name);
        free(e->source_file);
        free(e->key);
        rc_result_done(&e->result);
}

/* Fills the node's report entry, replacing what an earlier round of this pass put there. */
static int set_entry(vf_report *report, graph_node *n, rc_result *res) {
        vf_report_entry *e;

        if (n->entry) {
                e = &report->entries[n->entry - 1];
                report->by_outcome[e->result.outcome]--;
                /* What an earlier round's writes make libvirt report is this pass's own too. */
                rc_caused_add(&res->caused, &e->result.caused);
                entry_done(e);
        } else {
                e = vf_grow(report->entries, &report->cap_entries, report->n_entries + 1, sizeof *e);
                if (!e)
                        return -ENOMEM;
                report->entries = e;
                e = &report->entries[report->n_entries++];
                n->entry = report->n_entries;
        }
        *e = (vf_report_entry) {
                .kind = n->kind,
                .name = strdup(n->name),
                .key = strdup(n->key),
                .source_file = n->desired ? strdup(n->desired->file)
                               : n->record && n->record->source_file ? strdup(n->record->source_file)
                                                                      : NULL,
                .result = *res,
        };
        *res = (rc_result) {};
        report->by_outcome[e->result.outcome]++;
        return e->name && e->key ? 0 : -ENOMEM;
}

static void log_result(const vf_controller *c, const graph_node *n, const rc_result *res) {
        /*
         * An action or a failure is worth a line by default; a settled resource is not. A failure an observer
         * already shows the operator (apply's stdout) is not said a second time on stderr.
         */
        bool shown = c->observer && c->observer->decided;
        vf_log_level level = res->outcome == RC_FAILED && !shown ? VF_LOG_WARNING
                             : res->outcome == RC_UNCHANGED       ? VF_LOG_DEBUG
                                                                  : VF_LOG_NOTICE;
        vf_log_resource(c, level, n->key, "%s: %s%s%s", rc_outcome_to_string(res->outcome),
                        res->reason ? res->reason : "", res->message ? ": " : "", res->message ? res->message : "");
}

/* What dependents and the work queue need to know of a node's last result. */
static int remember_result(graph *g, graph_node *n, const rc_result *res) {
        n->processed = true;
        n->ready = res->ready;
        n->outcome = res->outcome;
        int r = vf_free_and_strdup(&n->reason, res->reason);
        if (r < 0)
                return r;
        g->n_waiting_on_users -= n->wait.kind == RC_WAIT_USER;
        free(n->wait.target);
        n->wait = res->wait;
        n->wait.target = res->wait.target ? strdup(res->wait.target) : NULL;
        g->n_waiting_on_users += n->wait.kind == RC_WAIT_USER;
        if (res->wait.target && !n->wait.target)
                return -ENOMEM;
        free(n->not_ready_reason);
        n->not_ready_reason = res->ready ? NULL : vf_printf("%s: %s", res->reason, res->message ? res->message : "");
        return res->ready || n->not_ready_reason ? 0 : -ENOMEM;
}

static void observe_begin(const pass *p, const graph_node *n, size_t index) {
        const vf_observer *o = p->c->observer;

        if (o && o->begin)
                o->begin(o->userdata, n->key, index, p->n_batch);
}

static void observe_decided(const pass *p, const graph_node *n) {
        const vf_observer *o = p->c->observer;

        if (o && o->decided)
                o->decided(o->userdata, &p->report->entries[n->entry - 1]);
}

static int process_node(pass *p, graph_node *n, size_t index, char **errmsg) {
        _cleanup_(rc_result_done) rc_result res = {};
        _cleanup_(node_context_done) node_context nc = {};
        int r = make_node_context(p->c->graph, n, &nc);
        if (r < 0)
                return r;
        int64_t generation = n->desired ? next_generation(n, &nc) : n->record ? n->record->generation : 0;

        const rc_context *rc = &p->c->rc;
        unsigned steps = rc->steps_begun, defines = rc->counters.calls[RC_CALL_DEFINE];

        observe_begin(p, n, index);
        r = reconcile_node(p, n, &nc, generation, &res);
        bool only_defines = rc->steps_begun - steps == rc->counters.calls[RC_CALL_DEFINE] - defines;
        if (res.generation > generation)
                generation = res.generation;
        /* A reconciler that failed says why; anything else it did not expect is reported as such. */
        if (r < 0 && !res.reason)
                rc_result_set(&res, RC_FAILED, false, "InternalError", "%s", strerror(-r));
        r = remember_result(p->c->graph, n, &res);
        if (r < 0)
                return r;
        log_result(p->c, n, &res);
        if (!p->c->opts.dry_run) {
                r = record_node(p, n, &nc, generation, &res, !only_defines);
                if (r < 0) {
                        *errmsg = vf_printf("cannot record %s in the state file: %s", n->key,
                                            state_last_error(p->c->store));
                        return r;
                }
        }
        r = set_entry(p->report, n, &res);
        if (r >= 0)
                observe_decided(p, n);
        return r;
}

/* ---- the batch ------------------------------------------------------------------- */

/* Once a pass, by index: what is older than the retention, or beyond its row count, goes. */
static int trim_log(pass *p, char **errmsg) {
        const vf_options *o = &p->c->opts;
        int64_t oldest = vf_now_realtime_usec() - (int64_t) o->log_retention_days * 86400 * 1000000;

        if (o->dry_run)
                return 0;
        int r = state_event_trim(p->c->store, oldest, o->log_retention_rows);
        if (r < 0)
                *errmsg = vf_printf("cannot trim the event log in the state file: %s", state_last_error(p->c->store));
        return r;
}

static int find_open_intents(pass *p, char **errmsg) {
        int r = state_intent_any_open(p->c->store, &p->intents_open);
        if (r < 0)
                *errmsg = vf_printf("cannot read the event log in the state file: %s", state_last_error(p->c->store));
        return r;
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
 * A device or network still in use when its turn came (to be released, or
 * restarted with a new definition) may be free once the domains after it in
 * the order have stopped or gone: one more look, in the same pass, so that
 * apply does not need a second run for it.
 */
static bool worth_second_round(const graph_node *n) {
        return n->entry && n->wait.kind == RC_WAIT_USER;
}

/* Between two resources, never inside one: what is in flight finishes and is recorded. */
static bool stop_requested(pass *p) {
        vf_controller *c = p->c;

        if (!p->report->interrupted && c->should_stop && c->should_stop(c->should_stop_userdata))
                p->report->interrupted = true;
        return p->report->interrupted;
}

int pass_run(pass *p, char **errmsg) {
        const vf_observer *o = p->c->observer;
        int r;

        p->c->rc.on_step = o ? o->step : NULL;
        p->c->rc.on_step_userdata = o ? o->userdata : NULL;
        /* What stops a pass between two resources also stops a long write (an import) inside one. */
        p->c->rc.interrupted = p->c->should_stop;
        p->c->rc.interrupted_userdata = p->c->should_stop_userdata;

        r = graph_sort(p->batch, p->n_batch);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_batch; i++)
                p->batch[i]->entry = 0;
        /* An entry per node at most: taken at once, the report is not copied as it grows. */
        if (p->n_batch > 0) {
                vf_report_entry *entries = vf_grow(p->report->entries, &p->report->cap_entries,
                                                   p->report->n_entries + p->n_batch, sizeof *entries);
                if (!entries)
                        return -ENOMEM;
                p->report->entries = entries;
        }
        r = trim_log(p, errmsg);
        if (r >= 0)
                r = find_open_intents(p, errmsg);
        if (r >= 0)
                r = begin_batch(p);
        for (size_t i = 0; r >= 0 && i < p->n_batch && !stop_requested(p); i++) {
                r = process_node(p, p->batch[i], i, errmsg);
                if (r >= 0 && (i + 1) % COMMIT_BATCH == 0) {
                        r = end_batch(p, errmsg);
                        if (r >= 0)
                                r = begin_batch(p);
                }
        }
        for (size_t i = 0; r >= 0 && i < p->n_batch && !stop_requested(p); i++)
                if (worth_second_round(p->batch[i]))
                        r = process_node(p, p->batch[i], i, errmsg);
        if (r < 0) {
                if (!p->c->opts.dry_run)
                        (void) state_rollback(p->c->store);
                return r;
        }
        return end_batch(p, errmsg);
}

void vf_report_done(vf_report *r) {
        for (size_t i = 0; i < r->n_entries; i++)
                entry_done(&r->entries[i]);
        free(r->entries);
        vf_map_free(r->by_key);
        *r = (vf_report) {};
}

rc_outcome vf_report_run_outcome(rc_outcome earlier, rc_outcome later) {
        if (earlier == RC_CREATED && (later == RC_UNCHANGED || later == RC_UPDATED))
                return RC_CREATED;
        if (earlier == RC_UPDATED && later == RC_UNCHANGED)
                return RC_UPDATED;
        return later;
}

static int append_steps(char ***steps, char **more) {
        for (size_t i = 0; more && more[i]; i++) {
                int r = vf_strv_push(steps, more[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Replaces e with later, keeping what the run as a whole did. later is emptied. */
static int fold_entry(vf_report_entry *e, vf_report_entry *later) {
        char **steps = TAKE_PTR(e->result.steps);
        int r = append_steps(&steps, later->result.steps);

        if (r < 0) {
                vf_strv_free(steps);
                return r;
        }
        later->result.outcome = vf_report_run_outcome(e->result.outcome, later->result.outcome);
        vf_strv_free(later->result.steps);
        later->result.steps = steps;
        entry_done(e);
        *e = *later;
        *later = (vf_report_entry) {};
        return 0;
}

static int index_entries(vf_report *r) {
        if (r->by_key)
                return 0;
        r->by_key = vf_map_new();
        for (size_t i = 0; r->by_key && i < r->n_entries; i++) {
                int k = vf_map_put(r->by_key, r->entries[i].key, (void *) (uintptr_t) (i + 1));
                if (k < 0)
                        return k;
        }
        return r->by_key ? 0 : -ENOMEM;
}

static int absorb_entry(vf_report *r, vf_report_entry *later) {
        uintptr_t at = (uintptr_t) vf_map_get(r->by_key, later->key);

        if (at)
                return fold_entry(&r->entries[at - 1], later);
        vf_report_entry *e = vf_grow(r->entries, &r->cap_entries, r->n_entries + 1, sizeof *e);
        if (!e)
                return -ENOMEM;
        r->entries = e;
        r->entries[r->n_entries++] = *later;
        *later = (vf_report_entry) {};
        return vf_map_put(r->by_key, r->entries[r->n_entries - 1].key, (void *) (uintptr_t) r->n_entries);
}

/* The first pass's report is taken whole: the entries are not copied, nor indexed until a later pass's come. */
static void take_entries(vf_report *r, vf_report *from) {
        free(r->entries);
        r->entries = TAKE_PTR(from->entries);
        r->n_entries = from->n_entries;
        r->cap_entries = from->cap_entries;
        from->n_entries = from->cap_entries = 0;
        vf_map_free(r->by_key);
        r->by_key = NULL;
}

int vf_report_absorb(vf_report *r, vf_report *from) {
        int k = 0;

        if (r->n_entries == 0)
                take_entries(r, from);
        else
                k = index_entries(r);
        for (size_t i = 0; k >= 0 && i < from->n_entries; i++)
                k = absorb_entry(r, &from->entries[i]);
        for (rc_call c = 0; c < _RC_CALL_MAX; c++)
                r->counters.calls[c] += from->counters.calls[c];
        r->desired = from->desired;
        r->n_file_errors = from->n_file_errors;
        r->interrupted = r->interrupted || from->interrupted;
        memset(r->by_outcome, 0, sizeof r->by_outcome);
        for (size_t i = 0; i < r->n_entries; i++)
                r->by_outcome[r->entries[i].result.outcome]++;
        vf_report_done(from);
        return k;
}

bool vf_report_converged(const vf_report *r) {
        if (r->n_file_errors > 0 || r->interrupted)
                return false;
        for (size_t i = 0; i < r->n_entries; i++)
                if (!r->entries[i].result.ready)
                        return false;
        return true;
}
