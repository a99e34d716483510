/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * virtform run: one epoll loop over files (inotify), signals (signalfd), one
 * timer (timerfd: the debounce and the retries), libvirt's events, link
 * events and device events. Each event names the resources it concerns; only
 * those, and what depends on them, are reconciled. With nothing to do, no
 * timer is armed and the loop sleeps.
 */
#include "config.h"
#include "controller/graph.h"
#include "controller/loop.h"

#include <signal.h>

struct vf_daemon {
        vf_daemon_options opts;
        int signal_fd;
        vf_controller *c;
        loop *loop;
        watch *watch;
        work_queue *queue;
        libvirt_events *libvirt;
        own_events *own; /* what its own writes make libvirt report: not news */
        link_monitor *links;
        device_monitor *devices;
        int timer_fd;
        char **pending_names; /* files changed since the debounce started */
        const char *rescan_why; /* every file is to be read again (a directory came or went, SIGHUP); NULL: not */
        bool reloading; /* systemd was told RELOADING=1: READY=1 once the rescan is done */
        bool host_monitors_tried; /* link and device monitors were opened, or failed to be, once */
        bool set_stale; /* a reload ran out of memory: the set is not to be trusted until all is loaded again */
        int64_t debounce_deadline; /* INT64_MAX: nothing pending */
        int64_t give_up_at; /* apply --wait's timeout; INT64_MAX: none */
        int64_t follow_hypervisor_until; /* apply: libvirt's operations on objects are waited for until then */
        int64_t stop_polled_at; /* when should_stop() last asked the kernel for a pending SIGTERM */
        bool stop;
        bool converged;
        bool settled; /* nothing it started is in flight */
        bool disconnected; /* libvirtd went away: nothing is reconciled until it is back */
        int64_t reconnect_at; /* INT64_MAX while connected */
        unsigned reconnect_attempts;
};

int vf_daemon_new(const vf_daemon_options *o, vf_daemon **ret) {
        vf_daemon *d = calloc(1, sizeof *d);

        if (!d)
                return -ENOMEM;
        *d = (vf_daemon) { .opts = *o, .timer_fd = -1, .debounce_deadline = INT64_MAX, .give_up_at = INT64_MAX,
                           .reconnect_at = INT64_MAX };
        /* First: libvirt's thread must inherit the blocked mask, or it would take the signals. */
        d->signal_fd = signals_new();
        int r = d->signal_fd < 0 ? d->signal_fd : libvirt_events_start_thread();
        if (r < 0) {
                vf_daemon_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

void vf_daemon_free(vf_daemon *d) {
        if (!d)
                return;
        device_monitor_free(d->devices);
        link_monitor_free(d->links);
        libvirt_events_free(d->libvirt);
        own_events_free(d->own);
        queue_free(d->queue);
        watch_free(d->watch);
        loop_free(d->loop);
        vf_strv_free(d->pending_names);
        if (d->timer_fd >= 0)
                close(d->timer_fd);
        if (d->signal_fd >= 0)
                close(d->signal_fd);
        free(d);
}

/* ---- after a pass -------------------------------------------------------------- */

static bool graph_converged(const vf_controller *c) {
        if (schema_set_n_errors(c->desired) > 0)
                return false;
        for (size_t i = 0; i < c->graph->n_nodes; i++) {
                const graph_node *n = c->graph->nodes[i];
                if (n->processed && !n->ready)
                        return false;
        }
        return true;
}

static bool anything_waits_on(const graph *g, rc_wait_kind kind) {
        size_t i = 0;
        return graph_next_waiting_on(g, kind, &i) != NULL;
}

/*
 * No resource waits on an operation it started, which apply sees through before it exits, nor, for a
 * while, on one of libvirt's own (a start another client asked for): one libvirt lost (its driver died
 * in the middle) never ends, and apply must end, its exit status saying the resource waits.
 */
static bool graph_settled(const vf_daemon *d) {
        if (anything_waits_on(d->c->graph, RC_WAIT_OPERATION))
                return false;
        return vf_now_monotonic_usec() >= d->follow_hypervisor_until ||
               !anything_waits_on(d->c->graph, RC_WAIT_HYPERVISOR);
}

/* Each failed resource comes back when its record says; a settled one leaves the queue. */
static int schedule_retries(vf_daemon *d, const vf_report *report) {
        int64_t now_real = vf_now_realtime_usec(), now_mono = vf_now_monotonic_usec();

        for (size_t i = 0; i < report->n_entries; i++) {
                const char *key = report->entries[i].key;
                const graph_node *n = graph_lookup(d->c->graph, key);
                int64_t next = n && n->record ? n->record->next_retry_usec : 0;
                if (next <= 0) {
                        queue_drop(d->queue, key);
                        continue;
                }
                int r = queue_push(d->queue, key, now_mono + (next > now_real ? next - now_real : 0));
                if (r < 0)
                        return r;
        }
        return 0;
}

static void tell_systemd(vf_daemon *d) {
        unsigned not_ready = 0;
        char status[160];

        for (size_t i = 0; d->c->graph && i < d->c->graph->n_nodes; i++)
                not_ready += d->c->graph->nodes[i]->processed && !d->c->graph->nodes[i]->ready;
        snprintf(status, sizeof status, "STATUS=%zu resources, %u not ready, %zu file errors", d->c->graph->n_nodes,
                 not_ready, schema_set_n_errors(d->c->desired));
        (void) notify_systemd(status);
}

static void add_host_monitors(vf_daemon *d);

/*
 * Link and device events only matter to hostdevs; without udevd the kernel
 * source hands over every uevent on the host, so they are listened to only
 * once a Hostdev has been processed, and an idle daemon without one sleeps.
 * They are opened once: a monitor that cannot be had is said so once, and
 * not tried again on every pass.
 */
static void want_host_monitors(vf_daemon *d, const vf_report *report) {
        bool hostdevs = false;

        for (size_t i = 0; !d->host_monitors_tried && i < report->n_entries; i++)
                hostdevs |= report->entries[i].kind == VF_KIND_HOSTDEV;
        if (!hostdevs)
                return;
        d->host_monitors_tried = true;
        add_host_monitors(d);
        /* A link that changed between the pass and the monitor's first breath is looked at once more. */
        for (size_t i = 0; d->links && i < report->n_entries; i++) {
                const vf_report_entry *e = &report->entries[i];
                if (e->kind == VF_KIND_HOSTDEV)
                        (void) queue_push(d->queue, e->key, vf_now_monotonic_usec());
        }
}

/*
 * What each resource of the pass wrote, libvirt reports back: those events are its own, not news
 * (own-events.c). Without memory for that, they are taken as news: one more pass, nothing missed.
 * Unless nothing is reported back: apply's first pass (follow_libvirt_from_now()).
 */
static void expect_own_events(vf_daemon *d, const vf_report *report) {
        int64_t now = vf_now_monotonic_usec();

        if (!libvirt_events_attached(d->libvirt))
                return;

        for (size_t i = 0; i < report->n_entries; i++) {
                const vf_report_entry *e = &report->entries[i];
                (void) own_events_expect(d->own, e->key, &e->result.caused, now);
        }
}

static int after_pass(vf_daemon *d, vf_report *report) {
        if (d->opts.stats)
                atomic_fetch_add(&d->opts.stats->passes, 1);
        expect_own_events(d, report);
        want_host_monitors(d, report);
        int r = schedule_retries(d, report);
        tell_systemd(d);
        d->converged = graph_converged(d->c);
        d->settled = graph_settled(d);
        if (d->opts.report && r >= 0)
                return vf_report_absorb(d->opts.report, report);
        vf_report_done(report);
        return r;
}

/*
 * What a pass removed, or found was never ours, stands for nothing any more:
 * its node goes, so that the events of its own removal are not taken for
 * news about it (and it is not "removed" a second time).
 */
static void forget_removed(vf_daemon *d, const vf_report *report) {
        for (size_t i = 0; i < report->n_entries; i++) {
                const vf_report_entry *e = &report->entries[i];
                graph_node *n = graph_lookup(d->c->graph, e->key);
                if (n && !n->desired && !n->record && (e->result.outcome == RC_DELETED || e->result.forget))
                        graph_forget(d->c->graph, n);
        }
}

static int64_t retry_base_from_now(const vf_daemon *d) {
        return vf_now_monotonic_usec() + (int64_t) d->c->opts.retry_base_sec * 1000000;
}

/* A reload is done: what the files hold now, and how long reading and reconciling them took. */
static void log_loaded(const vf_daemon *d, const char *why, int64_t started_usec) {
        const schema_set *set = d->c->desired;
        size_t failed = set->n_files_failed;

        vf_log(d->c, VF_LOG_NOTICE, "%s: %zu resources from %zu files (%zu with errors) loaded and reconciled in %" PRId64
               " ms", why, set->n_resources, set->n_files_ok + failed, failed,
               (vf_now_monotonic_usec() - started_usec) / 1000);
}

/*
 * Until a full pass succeeds, no incremental one may run: a set half reloaded could show declared
 * resources undeclared, and the empty graph a failed full pass leaves (controller.h) knows no dependents
 * and no hostdev's claimant.
 */
static bool needs_full_pass(const vf_daemon *d) {
        return d->set_stale || d->c->graph_lost;
}

/* Reads every file again and reconciles everything; why says what asked for it, in the log. */
static int full_pass(vf_daemon *d, const char *why, char **errmsg) {
        int64_t started = vf_now_monotonic_usec();
        vf_report report = {};
        int r = vf_controller_pass(d->c, &report, errmsg);
        if (r < 0) {
                vf_report_done(&report);
                if (needs_full_pass(d)) {
                        /* Only loading every file again repairs the set or the graph: try again soon. */
                        char *said = TAKE_PTR(*errmsg);
                        *errmsg = vf_printf("%s; every file is read again in %u s", said ? said : strerror(-r),
                                            d->c->opts.retry_base_sec);
                        free(said);
                        d->rescan_why = why;
                        d->debounce_deadline = retry_base_from_now(d);
                }
                return r;
        }
        d->set_stale = false;
        log_loaded(d, why, started);
        forget_removed(d, &report);
        return after_pass(d, &report);
}

static void queue_later(vf_daemon *d, char *const *keys) {
        for (size_t i = 0; keys[i]; i++)
                (void) queue_push(d->queue, keys[i], retry_base_from_now(d));
}

static int keys_pass(vf_daemon *d, char *const *keys) {
        _cleanup_free_ char *errmsg = NULL;
        vf_report report = {};

        if (!keys || !keys[0])
                return 0;
        if (needs_full_pass(d)) {
                queue_later(d, keys);
                return 0;
        }
        int r = vf_controller_pass_keys(d->c, keys, &report, &errmsg);
        if (r < 0) {
                /* The store or the hypervisor failed mid-pass: say so, and retry those keys later. */
                vf_log(d->c, VF_LOG_ERR, "%s", errmsg ? errmsg : strerror(-r));
                vf_report_done(&report);
                queue_later(d, keys);
                return 0;
        }
        forget_removed(d, &report);
        return after_pass(d, &report);
}

/* ---- files --------------------------------------------------------------------- */

static const char *basename_of(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash ? slash + 1 : path;
}

/* Where a file name's resources start: the set keeps them in file-name order. */
static size_t first_of_name(const schema_set *set, const char *name) {
        size_t lo = 0, hi = set->n_resources;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(basename_of(set->resources[mid]->file), name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int push_unique(char ***keys, const char *key) {
        return vf_strv_contains(*keys, key) ? 0 : vf_strv_push(keys, key);
}

/*
 * The keys a file name declares now: their nodes point into what the reload is about to replace.
 * Bisected, not scanned: an edit must not cost more with more resources.
 */
static int keys_of_name(const schema_set *set, const char *name, char ***keys) {
        for (size_t i = first_of_name(set, name); i < set->n_resources; i++) {
                const schema_resource *res = set->resources[i];
                if (strcmp(basename_of(res->file), name) != 0)
                        break;
                _cleanup_free_ char *key = schema_key(res->kind, res->name);
                int r = key ? push_unique(keys, key) : -ENOMEM;
                if (r < 0)
                        return r;
        }
        return 0;
}

static void log_diags_of(const vf_daemon *d, const char *name) {
        for (size_t i = 0; i < d->c->desired->n_diags; i++) {
                const schema_diag *diag = &d->c->desired->diags[i];
                if (strcmp(basename_of(diag->file), name) == 0)
                        vf_log_diag(d->c, diag);
        }
}

/* Adds to *keys what the name declared before and what changed by reloading it. */
static int reload_name(vf_daemon *d, const char *name, char ***keys) {
        _cleanup_strv_free_ char **changed = NULL;
        int r = keys_of_name(d->c->desired, name, keys);

        if (r >= 0)
                r = schema_set_reload(d->c->desired, name, &changed);
        if (r < 0)
                return r;
        vf_log(d->c, VF_LOG_INFO, "reloaded %s: %zu resources changed", name, vf_strv_length(changed));
        log_diags_of(d, name);
        for (size_t i = 0; changed && changed[i] && r >= 0; i++)
                r = push_unique(keys, changed[i]);
        return r;
}

/*
 * One snapshot per batch: every name the batch touched is read before
 * anything is reconciled, and the keys they concern go through one pass.
 * Identity is kind/name, so a file renamed, or moved to another directory or
 * layer, is an update of its resources' source, never a removal followed by a
 * creation. A name that cannot be read now keeps its last state and is tried
 * again; the others go ahead.
 */
static int reload_batch(vf_daemon *d, char *const *names, char **errmsg) {
        _cleanup_strv_free_ char **keys = NULL;
        int64_t started = vf_now_monotonic_usec();
        size_t reloaded = 0;

        for (size_t i = 0; names && names[i]; i++) {
                if (!schema_file_is_candidate(names[i]))
                        continue;
                int r = reload_name(d, names[i], &keys);
                if (r == -ENOMEM) {
                        vf_log(d->c, VF_LOG_ERR, "out of memory while reloading %s: reloading every file", names[i]);
                        d->set_stale = true;
                        return full_pass(d, "out of memory while reloading", errmsg);
                }
                reloaded += r >= 0;
                if (r < 0) {
                        vf_log(d->c, VF_LOG_WARNING, "cannot reload %s (%s); it keeps its last state and is read again "
                               "in %u s", names[i], strerror(-r), d->c->opts.retry_base_sec);
                        r = push_unique(&d->pending_names, names[i]);
                        if (r < 0)
                                return r;
                        d->debounce_deadline = retry_base_from_now(d);
                }
        }
        int r = keys_pass(d, keys);
        if (r >= 0 && reloaded > 0) {
                _cleanup_free_ char *why = vf_printf("%zu files changed", reloaded);
                log_loaded(d, why ? why : "files changed", started);
        }
        return r;
}

/* How many debounces a file still open for writing is waited for, at most. */
#define HOLD_DEBOUNCES 100

static int64_t hold_usec(const vf_daemon *d) {
        return (int64_t) d->c->opts.debounce_msec * 1000 * HOLD_DEBOUNCES;
}

/*
 * The earliest end of a hold on a file of the batch (on any file, for a
 * batch that reads them all), or INT64_MAX when none is written to. A hold
 * past its end is let go of first, with a warning: a writer that never
 * closes its file is read as it is.
 */
static int64_t batch_held_until(vf_daemon *d, int64_t now) {
        int64_t until = INT64_MAX;

        for (size_t i = 0; d->watch && i < watch_n_holds(d->watch);) {
                watch_hold *h = watch_hold_at(d->watch, i);
                if (!d->rescan_why && !vf_strv_contains(d->pending_names, h->name)) {
                        i++;
                        continue;
                }
                if (now >= h->until_usec) {
                        vf_log(d->c, VF_LOG_WARNING, "%s is still open for writing after %.1f s: reading it as it is",
                               h->path, (double) hold_usec(d) / 1e6);
                        watch_release(d->watch, i);
                        continue;
                }
                if (!h->told)
                        vf_log(d->c, VF_LOG_NOTICE, "%s is open for writing: it is read, with the rest of its batch, "
                               "once closed (in %.1f s at the latest)", h->path, (double) (h->until_usec - now) / 1e6);
                h->told = true;
                until = h->until_usec < until ? h->until_usec : until;
                i++;
        }
        return until;
}

/*
 * A batch waits while a writer still has one of its files open: emptied by
 * O_TRUNC and not yet written, a file is a mask, and a YAML stream cut
 * between two documents parses and declares less than the file will. The
 * whole batch waits, not just that file, so that a resource moving from a
 * deleted file to one being written is never seen undeclared in between.
 */
static int reload_pending(vf_daemon *d, char **errmsg) {
        int64_t held_until = batch_held_until(d, vf_now_monotonic_usec());
        if (held_until != INT64_MAX) {
                d->debounce_deadline = held_until;
                return 0;
        }

        _cleanup_strv_free_ char **names = TAKE_PTR(d->pending_names);
        const char *rescan = TAKE_PTR(d->rescan_why);

        d->debounce_deadline = INT64_MAX;
        if (!rescan)
                return reload_batch(d, names, errmsg);
        vf_log(d->c, VF_LOG_INFO, "%s: reloading all files", rescan);
        int r = full_pass(d, rescan, errmsg);
        if (d->reloading) {
                (void) notify_systemd("READY=1");
                d->reloading = false;
        }
        return r;
}

/*
 * Every file is read again, as a batch of them all: SIGHUP, a reconnect, a
 * directory that came or went. Through reload_pending(), so that it waits,
 * as any batch does, while a file is open for writing.
 */
static void rescan_now(vf_daemon *d, const char *why) {
        d->rescan_why = why;
        d->debounce_deadline = vf_now_monotonic_usec();
}

static int on_files(int fd, void *userdata) {
        vf_daemon *d = userdata;
        bool dirs_changed = false;
        int r = watch_read(d->watch, &d->pending_names, &dirs_changed);

        if (r < 0)
                return r;
        if (dirs_changed)
                d->rescan_why = "a directory appeared or vanished";
        if (d->pending_names || d->rescan_why)
                /* Sliding: a burst of writes (an editor, a git checkout) settles before it is read. */
                d->debounce_deadline = vf_now_monotonic_usec() + (int64_t) d->c->opts.debounce_msec * 1000;
        return 0;
}

/* ---- the other sources ------------------------------------------------------------- */

/* The resources waiting for the object key to let go of them (RC_WAIT_USER): a domain that stopped frees its devices. */
static int queue_waiters(vf_daemon *d, const char *key, int64_t now) {
        const graph_node *n;
        int r = 0;

        for (size_t i = 0; r >= 0 && (n = graph_next_waiter(d->c->graph, key, &i));)
                r = queue_push(d->queue, n->key, now);
        return r;
}

/*
 * What virtform declares, recorded or owns, what depends on an object it
 * does not declare (a network made with virsh, libvirt's "default"), and what
 * waits for an object to let go of it: events are their cue. Events about
 * anything else are none of its business. A resource is not queued for the
 * events of its own last writes: the pass that made them saw what they did,
 * and took its dependents along. What waits for the object to let go is
 * queued all the same, since the object's stop is what it waits for,
 * whoever stopped it.
 */
static int queue_known_now(vf_daemon *d, const vf_map *seen) {
        int64_t now = vf_now_monotonic_usec();
        const char *key;
        size_t it = 0;
        void *counts;

        while (seen && vf_map_next(seen, &it, &key, &counts)) {
                char *const *dependents = graph_dependents(d->c->graph, key);
                bool news = own_events_news(d->own, key, counts, now);
                int r = 0;
                if (graph_lookup(d->c->graph, key)) {
                        if (news)
                                r = queue_push(d->queue, key, now); /* its pass brings its dependents along */
                } else
                        for (size_t j = 0; dependents && dependents[j] && r >= 0; j++)
                                r = queue_push(d->queue, dependents[j], now);
                if (r >= 0)
                        r = queue_waiters(d, key, now);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Backoff for reconnecting: the retry base doubled per failed attempt, up to the retry maximum. */
static int64_t reconnect_delay_usec(const vf_daemon *d) {
        int64_t delay = (int64_t) d->c->opts.retry_base_sec * 1000000, cap = (int64_t) d->c->opts.retry_max_sec * 1000000;

        for (unsigned i = 0; i < d->reconnect_attempts && delay < cap; i++)
                delay *= 2;
        return delay < cap ? delay : cap;
}

/*
 * The daemon's connection as `status` shows it, kept in the store it holds the lock of, so that status
 * stays a lock-free reader: "PID connected", or "PID reconnecting REALTIME_USEC". Only `run` says so:
 * apply is over before anyone could look. A store that cannot say it is worth a warning, not a stop.
 */
static void record_connection(vf_daemon *d, bool stopping) {
        _cleanup_free_ char *value = NULL;
        int64_t wait_usec = d->reconnect_at - vf_now_monotonic_usec();

        if (d->opts.files_read_once || d->c->opts.dry_run)
                return;
        if (!stopping)
                value = d->disconnected ? vf_printf("%d reconnecting %" PRId64, (int) getpid(),
                                                    vf_now_realtime_usec() + (wait_usec > 0 ? wait_usec : 0))
                                        : vf_printf("%d connected", (int) getpid());
        if ((!stopping && !value) || state_meta_set(d->c->store, STATE_META_DAEMON, value) < 0)
                vf_log(d->c, VF_LOG_WARNING, "cannot record the connection's state for status: %s",
                       value ? state_last_error(d->c->store) : strerror(ENOMEM));
}

static void disconnected(vf_daemon *d) {
        vf_log(d->c, VF_LOG_WARNING, "the connection to the hypervisor closed; reconnecting with backoff");
        (void) notify_systemd("STATUS=reconnecting to the hypervisor");
        libvirt_events_detach(d->libvirt);
        own_events_clear(d->own);
        d->disconnected = true;
        d->reconnect_at = vf_now_monotonic_usec() + reconnect_delay_usec(d);
        record_connection(d, false);
}

/* Back on a (new) connection: events first, then a full pass, since anything may have changed meanwhile. */
static int try_reconnect(vf_daemon *d) {
        _cleanup_free_ char *errmsg = NULL;
        int r = vf_controller_reconnect(d->c, &errmsg);

        if (r >= 0)
                r = libvirt_events_attach(d->libvirt, d->c->conn);
        if (r < 0) {
                d->reconnect_attempts++;
                d->reconnect_at = vf_now_monotonic_usec() + reconnect_delay_usec(d);
                vf_log(d->c, VF_LOG_WARNING, "reconnect attempt %u failed (%s); next in %" PRId64 " s",
                       d->reconnect_attempts, errmsg ? errmsg : strerror(-r), reconnect_delay_usec(d) / 1000000);
                record_connection(d, false);
                return 0;
        }
        vf_log(d->c, VF_LOG_NOTICE, "reconnected to the hypervisor after %u attempts; resyncing",
               d->reconnect_attempts + 1);
        d->disconnected = false;
        d->reconnect_attempts = 0;
        d->reconnect_at = INT64_MAX;
        record_connection(d, false);
        rescan_now(d, "reconnected");
        return 0;
}

static int on_libvirt(int fd, void *userdata) {
        vf_daemon *d = userdata;
        _cleanup_(libvirt_seen_freep) vf_map *seen = NULL;
        bool closed;
        int r = libvirt_events_take(d->libvirt, &seen, &closed);

        if (r >= 0 && closed && !d->disconnected)
                disconnected(d);
        return r < 0 ? r : queue_known_now(d, seen);
}

/*
 * A source whose kernel queue overflowed (ENOBUFS) lost events no one can
 * name: everything it covers is looked at again. Link and device events
 * cover the hostdevs.
 */
static int resync_hostdevs(vf_daemon *d, const char *source) {
        int64_t now = vf_now_monotonic_usec();

        vf_log(d->c, VF_LOG_NOTICE, "%s events were lost (the kernel's queue overflowed): looking at every hostdev "
               "again", source);
        for (size_t i = 0; i < d->c->graph->n_nodes; i++) {
                const graph_node *n = d->c->graph->nodes[i];
                int r = n->kind == VF_KIND_HOSTDEV ? queue_push(d->queue, n->key, now) : 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The hostdevs whose last result watches one of these links (their PF) come back now. */
static int on_links(int fd, void *userdata) {
        vf_daemon *d = userdata;
        _cleanup_strv_free_ char **ifnames = NULL;
        int64_t now = vf_now_monotonic_usec();
        int r = link_monitor_read(d->links, &ifnames);

        if (r == -ENOBUFS)
                return resync_hostdevs(d, "link");
        for (size_t i = 0; r >= 0 && i < d->c->graph->n_nodes; i++) {
                const graph_node *n = d->c->graph->nodes[i];
                if (n->wait.kind == RC_WAIT_LINK && vf_strv_contains(ifnames, n->wait.target))
                        r = queue_push(d->queue, n->key, now);
        }
        return r;
}

static bool hostdev_concerned(const graph_node *n, const char *subsystem, const char *sysname) {
        if (n->kind != VF_KIND_HOSTDEV || !n->desired)
                return false;
        if (strcmp(subsystem, "pci") == 0)
                return strcmp(n->desired->hostdev.pci, sysname) == 0;
        return !n->ready; /* a netdev came or went: it may be the one a waiting VF needs */
}

static int on_devices(int fd, void *userdata) {
        vf_daemon *d = userdata;
        _cleanup_free_ char *action = NULL, *subsystem = NULL, *sysname = NULL;
        int64_t now = vf_now_monotonic_usec();
        int r = device_monitor_read(d->devices, &action, &subsystem, &sysname);

        if (r == -ENOBUFS)
                return resync_hostdevs(d, "device");
        if (r <= 0 || !action || !subsystem || !sysname)
                return r < 0 ? r : 0;
        for (size_t i = 0; r >= 0 && i < d->c->graph->n_nodes; i++) {
                const graph_node *n = d->c->graph->nodes[i];
                if (!hostdev_concerned(n, subsystem, sysname))
                        continue;
                if (strcmp(action, "remove") == 0 && strcmp(subsystem, "pci") == 0)
                        vf_log_resource(d->c, VF_LOG_WARNING, n->key, "PCI device %s vanished from the host", sysname);
                r = queue_push(d->queue, n->key, now);
        }
        return r < 0 ? r : 0;
}

static int on_signal(int fd, void *userdata) {
        vf_daemon *d = userdata;
        int sig = signals_read(fd);

        if (sig == SIGHUP && d->disconnected)
                vf_log(d->c, VF_LOG_NOTICE, "SIGHUP: every file is reloaded once the hypervisor is back");
        else if (sig == SIGHUP) {
                vf_log(d->c, VF_LOG_NOTICE, "SIGHUP: reloading every file");
                (void) notify_systemd("RELOADING=1");
                d->reloading = true;
                rescan_now(d, "SIGHUP");
        } else if ((sig == SIGTERM || sig == SIGINT) && !d->stop) {
                vf_log(d->c, VF_LOG_NOTICE, "%s: stopping", strsignal(sig));
                d->stop = true;
        }
        return 0;
}

/* What waits on an operation it started, for an observer that shows it (apply's progress line). */
static bool wants_in_flight(const vf_daemon *d) {
        return d->c->observer && d->c->observer->in_flight && !d->settled;
}

static void tell_in_flight(const vf_daemon *d) {
        const vf_observer *o = d->c->observer;
        const graph_node *n;

        if (!wants_in_flight(d))
                return;
        for (size_t i = 0; (n = graph_next_waiting_on(d->c->graph, RC_WAIT_OPERATION, &i));)
                o->in_flight(o->userdata, n->key, n->reason, n->wait.deadline_usec);
}

static int on_timer(int fd, void *userdata) {
        vf_daemon *d = userdata;
        _cleanup_strv_free_ char **due = NULL;
        _cleanup_free_ char *errmsg = NULL;
        int64_t now = vf_now_monotonic_usec();
        int r = 0;

        timer_ack(fd);
        tell_in_flight(d);
        if (now >= d->give_up_at)
                d->stop = true;
        if (d->disconnected)
                /* Files and queued keys wait: the full pass after reconnecting reads everything anew. */
                return now >= d->reconnect_at ? try_reconnect(d) : 0;
        if (now >= d->debounce_deadline)
                r = reload_pending(d, &errmsg);
        if (r < 0) {
                vf_log(d->c, VF_LOG_ERR, "%s", errmsg ? errmsg : strerror(-r));
                r = 0;
        }
        r = queue_pop_due(d->queue, now, &due);
        return r < 0 ? r : keys_pass(d, due);
}

/* ---- the loop ------------------------------------------------------------------------ */

/* Nothing due: the state file takes its -wal back now, out of the way of the next edit (state/checkpoint.c). */
static void checkpoint_when_idle(vf_daemon *d) {
        if (!d->c->store || d->debounce_deadline != INT64_MAX || queue_next_due(d->queue) <= vf_now_monotonic_usec())
                return;
        int r = state_checkpoint(d->c->store);
        if (r < 0)
                vf_log(d->c, VF_LOG_WARNING, "cannot write the state file's journal back into it: %s (%s); "
                       "tried again when next idle", strerror(-r), state_last_error(d->c->store));
}

static int64_t min3(int64_t a, int64_t b, int64_t c) {
        int64_t m = a < b ? a : b;
        return m < c ? m : c;
}

/* An observer shown what is in flight is told again within a second. */
#define IN_FLIGHT_TICK_USEC 1000000

static int arm_timer(vf_daemon *d) {
        int64_t next = d->disconnected ? (d->reconnect_at < d->give_up_at ? d->reconnect_at : d->give_up_at)
                                       : min3(d->debounce_deadline, queue_next_due(d->queue), d->give_up_at);

        if (wants_in_flight(d) && next > vf_now_monotonic_usec() + IN_FLIGHT_TICK_USEC)
                next = vf_now_monotonic_usec() + IN_FLIGHT_TICK_USEC;

        if (d->opts.stats)
                atomic_store(&d->opts.stats->armed, next != INT64_MAX);
        return timer_arm(d->timer_fd, next);
}

static void add_host_monitors(vf_daemon *d) {
        int r = link_monitor_new(&d->links);
        if (r >= 0 && (r = loop_add(d->loop, link_monitor_fd(d->links), on_links, d)) < 0) {
                link_monitor_free(d->links);
                d->links = NULL;
        }
        if (r < 0)
                vf_log(d->c, VF_LOG_WARNING, "no link events (%s): a PF coming up is seen at the next SIGHUP",
                       strerror(-r));
        r = device_monitor_new(&d->devices);
        if (r >= 0 && (r = loop_add(d->loop, device_monitor_fd(d->devices), on_devices, d)) < 0) {
                device_monitor_free(d->devices);
                d->devices = NULL;
        }
        if (r < 0)
                vf_log(d->c, VF_LOG_WARNING, "no device events (%s): new devices are seen at the next SIGHUP",
                       strerror(-r));
}

static int add_sources(vf_daemon *d) {
        int r = loop_new(&d->loop);
        if (r >= 0)
                r = queue_new(&d->queue);
        if (r >= 0 && !d->opts.files_read_once)
                r = watch_new(d->c->opts.paths, hold_usec(d), &d->watch);
        if (r >= 0)
                r = d->timer_fd = timer_new();
        if (r >= 0)
                r = libvirt_events_new(&d->libvirt);
        if (r >= 0)
                r = own_events_new(&d->own);
        if (r >= 0 && !d->opts.files_read_once)
                r = libvirt_events_attach(d->libvirt, d->c->conn);
        if (r >= 0)
                r = loop_add(d->loop, d->signal_fd, on_signal, d);
        if (r >= 0 && d->watch)
                r = loop_add(d->loop, watch_fd(d->watch), on_files, d);
        if (r >= 0)
                r = loop_add(d->loop, d->timer_fd, on_timer, d);
        if (r >= 0)
                r = loop_add(d->loop, libvirt_events_fd(d->libvirt), on_libvirt, d);
        return r;
}

/*
 * apply follows libvirt only from the end of its first pass, and only when that pass left something to
 * follow. Its own writes are no news to it, and each one libvirt reported back cost it a thread's wakeup
 * and a dispatch: a sixth of a cold apply on the test driver. What changed between the pass's look and
 * now, no event will tell, so every resource that waits for one is looked at again at once; a failure
 * keeps its retry timer, and is not tried again before it.
 */
static int follow_libvirt_from_now(vf_daemon *d, char **errmsg) {
        int64_t now = vf_now_monotonic_usec();
        int r = libvirt_events_attach(d->libvirt, d->c->conn);

        if (r < 0)
                return vf_error(errmsg, r, "cannot follow libvirt's events: %s", strerror(-r));
        for (size_t i = 0; i < d->c->graph->n_nodes; i++) {
                const graph_node *n = d->c->graph->nodes[i];
                if (!n->processed || n->ready || rc_wait_ends_by_timer(n->wait.kind))
                        continue;
                r = queue_push(d->queue, n->key, now);
                if (r < 0)
                        return vf_error(errmsg, r, "cannot queue %s: %s", n->key, strerror(-r));
        }
        return 0;
}

/*
 * How long a SIGTERM may wait, pending, for a pass to notice it. Asking the
 * kernel (a system call) between every two resources cost 4.5% of a settled
 * pass; a millisecond is nothing to an operator's stop.
 */
#define STOP_POLL_USEC 1000

/* Asked by the pass between two resources: SIGTERM is taken and acknowledged at once, not after the pass. */
static bool should_stop(void *userdata) {
        static const struct timespec no_wait = {};
        vf_daemon *d = userdata;
        int64_t now = vf_now_monotonic_usec();
        sigset_t stopping;
        int sig;

        if (d->stop)
                return true;
        if (now >= d->give_up_at) {
                vf_log(d->c, VF_LOG_NOTICE, "the timeout passed: stopping after the resource in flight");
                d->stop = true;
                return true;
        }
        if (now - d->stop_polled_at < STOP_POLL_USEC)
                return false;
        d->stop_polled_at = now;
        sigemptyset(&stopping);
        sigaddset(&stopping, SIGTERM);
        sigaddset(&stopping, SIGINT);
        if ((sig = sigtimedwait(&stopping, NULL, &no_wait)) > 0) {
                vf_log(d->c, VF_LOG_NOTICE, "%s: stopping after the resource in flight; the rest resumes at the next start",
                       strsignal(sig));
                d->stop = true;
        }
        return d->stop;
}

/* apply ends, leaving what libvirt has not finished: said per resource, with what follows it on. */
static void tell_left_in_transition(const vf_daemon *d) {
        const graph_node *n;

        if (!d->opts.exit_when_settled || d->stop)
                return;
        for (size_t i = 0; (n = graph_next_waiting_on(d->c->graph, RC_WAIT_HYPERVISOR, &i));)
                vf_log_resource(d->c, VF_LOG_WARNING, n->key,
                                "libvirt has not finished with it after %" PRId64 " s (--transition-timeout): left "
                                "waiting; `virtform run` or `apply --wait` follows it to its end",
                                d->opts.follow_hypervisor_usec / 1000000);
}

static bool done(const vf_daemon *d) {
        return d->stop || (d->opts.exit_when_converged && d->converged) ||
               (d->opts.exit_when_settled && d->settled);
}

/* What it runs against, said once, so that a log read later shows which build read which files. */
static void log_start(const vf_daemon *d) {
        const vf_controller *c = d->c;
        _cleanup_free_ char *uri = virConnectGetURI(c->conn), *fallback = NULL;
        _cleanup_free_ char *dirs = vf_strv_join((const char *const *) c->opts.paths, ", ");
        const char *state = c->opts.state_path ? c->opts.state_path : (fallback = state_default_path());

        vf_log(c, VF_LOG_NOTICE, "virtform %s starting: hypervisor %s, state file %s, directories %s",
               VIRTFORM_VERSION, uri ? uri : "unknown", state ? state : "unknown", dirs ? dirs : "unknown");
}

int vf_daemon_run(vf_daemon *d, vf_controller *c, bool *converged, char **errmsg) {
        int r;

        d->c = c;
        c->should_stop = should_stop;
        c->should_stop_userdata = d;
        if ((d->opts.exit_when_converged || d->opts.exit_when_settled) && d->opts.timeout_usec > 0)
                d->give_up_at = vf_now_monotonic_usec() + d->opts.timeout_usec;
        if (d->opts.exit_when_settled)
                d->follow_hypervisor_until = vf_now_monotonic_usec() + d->opts.follow_hypervisor_usec;
        /* Watch before the first pass, so that nothing written during it is missed. */
        r = add_sources(d);
        if (r < 0)
                return vf_error(errmsg, r, "cannot set up the event sources: %s", strerror(-r));
        log_start(d);
        r = full_pass(d, "started", errmsg);
        if (r >= 0 && d->opts.files_read_once && !done(d))
                r = follow_libvirt_from_now(d, errmsg);
        if (r < 0)
                return r;
        (void) notify_systemd("READY=1");
        record_connection(d, false);
        while (!done(d)) {
                checkpoint_when_idle(d);
                r = arm_timer(d);
                if (r >= 0)
                        r = loop_dispatch(d->loop);
                if (r < 0)
                        return vf_error(errmsg, r, "the event loop failed: %s", strerror(-r));
                if (d->opts.stats)
                        atomic_store(&d->opts.stats->wakeups, loop_wakeups(d->loop));
        }
        tell_left_in_transition(d);
        (void) notify_systemd("STOPPING=1");
        record_connection(d, true);
        c->should_stop = NULL;
        *converged = d->converged;
        if (d->opts.exit_when_converged && !d->converged)
                return -ETIMEDOUT;
        return d->opts.exit_when_settled && !d->settled ? -ETIMEDOUT : 0;
}

/*
 * apply: the daemon without the files. It converges, then follows what it
 * started (a graceful shutdown) to its end; with --wait, it also retries and
 * follows events until every resource is Ready or the timeout passes.
 */
int vf_daemon_new_apply(const vf_options *opts, vf_report *report, vf_daemon **ret) {
        vf_daemon_options o = {
                .files_read_once = true,
                .exit_when_converged = opts->wait,
                .exit_when_settled = !opts->wait,
                .timeout_usec = opts->wait ? (int64_t) opts->wait_timeout_sec * 1000000 : 0,
                .follow_hypervisor_usec = (int64_t) opts->transition_timeout_sec * 1000000,
                .report = report,
        };
        return vf_daemon_new(&o, ret);
}

int vf_daemon_apply(vf_daemon *d, vf_controller *c, char **errmsg) {
        bool converged;
        int r = vf_daemon_run(d, c, &converged, errmsg);

        if (r == -ETIMEDOUT) {
                /* Or SIGTERM stopped it, which said so as it came. */
                if (vf_now_monotonic_usec() >= d->give_up_at)
                        vf_log(c, VF_LOG_WARNING, "gave up after %u s: not every resource is Ready",
                               c->opts.wait_timeout_sec);
                return 0;
        }
        return r;
}
