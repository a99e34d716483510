/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests/crash.h"

#include <dirent.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>

#include "state/state.h"

#define VIRSH "/usr/bin/virsh"

th_crash *th_crash_new(const th_crash_hypervisor *hv, const char *const *kept) {
        th_crash *c = calloc(1, sizeof *c);

        assert_non_null(c);
        c->hv = hv;
        c->kept = kept;
        c->dir = th_mkdtemp();
        for (int i = 0; i < 2; i++) {
                c->conf[i] = vf_printf("%s/conf%d", c->dir, i);
                assert_int_equal(mkdir(c->conf[i], 0755), 0);
        }
        return c;
}

static void outcome_done(th_crash_outcome *o) {
        free(o->libvirt);
        free(o->uuids);
        free(o->records);
        free(o->journal);
        free(o->writes);
        free(o->detail);
        *o = (th_crash_outcome) {};
}

void th_crash_free(th_crash *c) {
        DIR *d = opendir(c->dir);
        struct dirent *de;

        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.' || strncmp(de->d_name, "conf", 4) == 0)
                        continue;
                _cleanup_free_ char *root = vf_printf("%s/%s", c->dir, de->d_name);
                c->hv->end_root(c, root);
        }
        if (d)
                closedir(d);
        th_rmtree(c->dir);
        for (int i = 0; i < 2; i++) {
                free(c->conf[i]);
                outcome_done(&c->clean[i]);
        }
        free(c->dir);
        free(c);
}

/* ---- running apply ----------------------------------------------------------- */

static const char *virtform_binary(void) {
        const char *path = getenv("VIRTFORM");
        assert_non_null(path);
        return path;
}

static th_child apply_start(const th_crash *c, const char *root, const char *conf, const char *fault) {
        _cleanup_free_ char *uri = c->hv->uri(c, root);
        _cleanup_free_ char *state = vf_printf("%s/state.db", root);
        _cleanup_free_ char *env = fault ? vf_printf("VIRTFORM_FAULT_POINT=%s", fault) : NULL;
        const char *argv[] = { virtform_binary(), "apply", "-c", uri, "--state", state,
                               "--shutdown-timeout", "1", conf, NULL };
        const char *extra[] = { env, NULL };
        return th_spawn_start(argv, extra);
}

th_run th_crash_apply(const th_crash *c, const char *root, const char *conf, const char *fault) {
        th_child child = apply_start(c, root, conf, fault);
        return th_spawn_wait(&child);
}

/* Kills apply with SIGKILL kill_after_usec after its start, unless it has exited by then. */
static th_run apply_killed_after(const th_crash *c, const char *root, const char *conf, int64_t kill_after_usec) {
        th_child child = apply_start(c, root, conf, NULL);
        int64_t deadline = vf_now_monotonic_usec() + kill_after_usec;
        siginfo_t info = {};

        /* WNOWAIT leaves the child for th_spawn_wait() to reap. */
        while (waitid(P_PID, (id_t) child.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0 &&
               vf_now_monotonic_usec() < deadline)
                nanosleep(&(struct timespec) { 0, 1000000L }, NULL);
        if (info.si_pid == 0)
                assert_int_equal(kill(child.pid, SIGKILL), 0);
        return th_spawn_wait(&child);
}

static void apply_ok(const th_crash *c, const char *root, const char *conf, const char *what) {
        th_run r = th_crash_apply(c, root, conf, NULL);
        if (r.status != 0)
                fail_msg("%s exited %d:\n%s%s", what, r.status, r.out, r.err);
        th_run_done(&r);
}

/* ---- observing --------------------------------------------------------------- */

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int compare_strings_after_first_word(const void *a, const void *b) {
        const char *x = *(char *const *) a, *y = *(char *const *) b;
        return strcmp(x + strcspn(x, " "), y + strcspn(y, " "));
}

void th_crash_sort_after_first_word(char **lines) {
        qsort(lines, vf_strv_length(lines), sizeof(char *), compare_strings_after_first_word);
}

/*
 * libvirt's embedded driver may crash as its process exits while its thread
 * reconnecting to a running guest is still inside libvirt (SIGSEGV in
 * exit()), which a query that takes the guest's job first makes rare. Such a
 * run's output is lost: run it again.
 */
char *th_crash_virsh(const th_crash *c, const char *root, const char *commands) {
        _cleanup_free_ char *uri = c->hv->uri(c, root);
        const char *argv[] = { VIRSH, "-q", "-c", uri, commands, NULL };

        for (int attempt = 1;; attempt++) {
                th_run r = th_spawn(argv, NULL);
                if (r.status == 0) {
                        char *out = TAKE_PTR(r.out);
                        th_run_done(&r);
                        return out;
                }
                if (!r.killed || attempt == 5)
                        fail_msg("virsh '%s' exited %d: %s", commands, r.status, r.err);
                print_message("virsh '%s' died of signal %d; running it again\n", commands, r.status - 128);
                th_run_done(&r);
        }
}

/* virsh's echo ends no line: the marker may follow the last line's text. */
char **th_crash_section(char **p) {
        char *end = *p ? strstr(*p, "@@") : NULL;
        char *chunk = *p, **lines = NULL;

        if (end)
                *end = 0;
        *p = end ? end + 2 : NULL;
        for (char *line = chunk ? strsep(&chunk, "\n") : NULL; line; line = strsep(&chunk, "\n"))
                if (line[strspn(line, " ")])
                        assert_int_equal(vf_strv_push(&lines, line + strspn(line, " ")), 0);
        return lines;
}

typedef struct writes_watch {
        int fd;
        int wd[TH_CRASH_MAX_DIRS];
        th_crash_dir dirs[TH_CRASH_MAX_DIRS];
} writes_watch;

static writes_watch watch_writes(const th_crash *c, const char *root) {
        writes_watch w = { .fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) };

        assert_true(w.fd >= 0);
        c->hv->watched(c, root, w.dirs);
        for (size_t i = 0; i < TH_CRASH_MAX_DIRS && w.dirs[i].path; i++) {
                _cleanup_free_ char *cmd = vf_printf("mkdir -p '%s'", w.dirs[i].path);
                assert_int_equal(system(cmd), 0);
                /*
                 * IN_MOVED_FROM (of the temporary file) too, between two renames into place: the kernel
                 * merges an event with an identical one still unread, so two defines in a row would count once.
                 */
                w.wd[i] = inotify_add_watch(w.fd, w.dirs[i].path, IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE);
                assert_true(w.wd[i] >= 0);
        }
        return w;
}

static const char *write_seen(const writes_watch *w, const struct inotify_event *ev) {
        for (size_t i = 0; i < TH_CRASH_MAX_DIRS && w->dirs[i].path; i++)
                if (ev->wd == w->wd[i])
                        return ev->mask & (IN_CREATE | IN_MOVED_TO) ? w->dirs[i].added : w->dirs[i].removed;
        fail_msg("an inotify event from no watched directory");
        return NULL;
}

/* What the watch saw, one write per line, sorted; closes it. */
static char *read_writes(writes_watch *w) {
        _cleanup_strv_free_ char **seen = NULL;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t len;
        vf_buf b = {};

        while ((len = read(w->fd, buf, sizeof buf)) > 0)
                for (char *p = buf; p < buf + len;) {
                        const struct inotify_event *ev = (const struct inotify_event *) p;
                        size_t name_len = ev->len ? strlen(ev->name) : 0;
                        assert_false(ev->mask & IN_Q_OVERFLOW);
                        /* Objects' files only: not the temporary file a define writes first. */
                        if (!(ev->mask & IN_MOVED_FROM) && name_len > 4 &&
                            strcmp(ev->name + name_len - 4, ".xml") == 0)
                                assert_int_equal(vf_strv_consume(&seen, vf_printf("%s %.*s", write_seen(w, ev),
                                                                                  (int) name_len - 4, ev->name)),
                                                 0);
                        p += sizeof(struct inotify_event) + ev->len;
                }
        assert_true(len < 0 && errno == EAGAIN);
        assert_int_equal(close(w->fd), 0);
        for (size_t i = 0; i < TH_CRASH_MAX_DIRS; i++)
                free(w->dirs[i].path);
        qsort(seen, vf_strv_length(seen), sizeof(char *), compare_strings);
        for (size_t i = 0; seen && seen[i]; i++)
                vf_buf_printf(&b, "%s\n", seen[i]);
        return vf_buf_steal(&b) ?: strdup("");
}

static state_store *open_state(const char *root) {
        _cleanup_free_ char *path = vf_printf("%s/state.db", root);
        _cleanup_free_ char *errmsg = NULL;
        state_store *store = NULL;

        if (state_open(path, STATE_OPEN_READONLY, &store, &errmsg) < 0)
                fail_msg("%s", errmsg);
        return store;
}

/* Records and their Ready condition, in a form two runs can be compared by. */
static char *observe_records(state_store *store) {
        state_record **recs = NULL;
        size_t n = 0;
        vf_buf b = {};

        assert_int_equal(state_list(store, &recs, &n), 0);
        for (size_t i = 0; i < n; i++) {
                const state_condition *ready = state_record_condition(recs[i], "Ready");
                vf_buf_printf(&b, "%s/%s gen %" PRId64 "/%" PRId64 " hash %s ready %d %s\n", recs[i]->kind,
                              recs[i]->name, recs[i]->generation, recs[i]->observed_generation, recs[i]->desired_hash,
                              ready && ready->status, ready ? ready->reason : "-");
        }
        state_record_list_free(recs, n);
        return vf_buf_steal(&b) ?: strdup("");
}

static bool event_done(const state_event *ev) {
        return strcmp(ev->outcome, "ok") == 0 ||
               (strcmp(ev->outcome, "unknown") == 0 && vf_streq_ptr(ev->message, "interrupted; found done"));
}

/*
 * The actions the log says were done, sorted. Fails on one shown done twice,
 * and on an intent still open after a run that exited 0.
 */
static char *observe_journal(state_store *store) {
        _cleanup_strv_free_ char **done = NULL;
        state_event *events = NULL;
        size_t n = 0;
        vf_buf b = {};

        assert_int_equal(state_event_list(store, NULL, NULL, 0, &events, &n), 0);
        for (size_t i = 0; i < n; i++) {
                if (strcmp(events[i].outcome, "intended") == 0)
                        fail_msg("intent left open: %s/%s %s gen %" PRId64, events[i].kind, events[i].name,
                                 events[i].action, events[i].generation);
                if (!event_done(&events[i]))
                        continue;
                _cleanup_free_ char *key = vf_printf("%s/%s %s gen %" PRId64, events[i].kind, events[i].name,
                                                     events[i].action, events[i].generation);
                if (vf_strv_contains(done, key))
                        fail_msg("done twice: %s", key);
                assert_int_equal(vf_strv_push(&done, key), 0);
        }
        state_event_list_free(events, n);
        qsort(done, vf_strv_length(done), sizeof(char *), compare_strings);
        for (size_t i = 0; done && done[i]; i++)
                vf_buf_printf(&b, "%s\n", done[i]);
        return vf_buf_steal(&b) ?: strdup("");
}

static void observe(const th_crash *c, const char *root, th_crash_outcome *o) {
        _cleanup_(state_closep) state_store *store = open_state(root);

        c->hv->observe(c, root, o);
        assert_non_null(o->libvirt);
        assert_non_null(o->uuids);
        o->records = observe_records(store);
        o->journal = observe_journal(store);
}

/* A difference comes with what explains it: the hypervisor's account at length and what the runs printed. */
static void assert_same(const char *what, const char *how, const char *got, const char *want,
                        const th_crash_outcome *after, const char *runs) {
        if (strcmp(got, want) != 0)
                fail_msg("after %s, %s differs:\n%s\nclean run:\n%s\nthe hypervisor's account:\n%s\n"
                         "what the killed run and the reruns printed:\n%s",
                         how, what, got, want, after->detail ? after->detail : "(none)\n", runs);
}

static void assert_outcome(const th_crash_outcome *got, const th_crash_outcome *want, const char *how,
                           const char *runs) {
        assert_same("what libvirt wrote", how, got->writes, want->writes, got, runs);
        assert_same("libvirt's state", how, got->libvirt, want->libvirt, got, runs);
        assert_same("the state file's records", how, got->records, want->records, got, runs);
        assert_same("the event log", how, got->journal, want->journal, got, runs);
}

/* ---- trials ------------------------------------------------------------------ */

static void append_run(vf_buf *runs, const char *which, const th_run *r) {
        vf_buf_printf(runs, "--- %s, exit %d\n%s%s", which, r->status, r->out, r->err);
}

/* Reruns until apply exits 0, as an operator or a unit's Restart= would; appends what each printed. */
static void rerun_until_done(const th_crash *c, const char *root, const char *conf, const char *how, vf_buf *runs) {
        for (int attempt = 0;; attempt++) {
                th_run r = th_crash_apply(c, root, conf, NULL);
                int status = r.status;
                if (status != 0 && attempt == 2) {
                        _cleanup_free_ char *kept = c->hv->kept_state ? c->hv->kept_state(c, root) : NULL;
                        fail_msg("rerun after %s exited %d three times:\n%s%s%s", how, status, r.out, r.err,
                                 kept ? kept : "");
                }
                append_run(runs, "rerun", &r);
                th_run_done(&r);
                if (status == 0)
                        return;
        }
}

/* Brings a fresh root to where the phase starts: the first apply done for the second phase. */
static void prepare(const th_crash *c, const char *root, int phase) {
        assert_int_equal(mkdir(root, 0700), 0);
        c->hv->new_root(c, root);
        if (phase == 1)
                apply_ok(c, root, c->conf[0], "the first apply");
}

/* The UUID on the "UUID NAME" line of an object. */
static char *uuid_of(const char *uuids, const char *name) {
        _cleanup_free_ char *needle = vf_printf(" %s\n", name);
        const char *at = strstr(uuids, needle);
        if (!at)
                fail_msg("no object %s in:\n%s", name, uuids);
        const char *line = at;
        while (line > uuids && line[-1] != '\n')
                line--;
        return strndup(line, (size_t) (at - line));
}

/*
 * A daemon that crashed when apply was killed in the middle of its call (Debian's libvirtd 9.0.0 has
 * been seen to) is started again before the rerun, as systemd would: virtform must then recover
 * against a hypervisor that restarted.
 */
static bool revived(const th_crash *c, const char *how) {
        _cleanup_free_ char *died = c->hv->revive ? c->hv->revive(c) : NULL;

        if (died)
                print_message("after %s, %s; started it again\n", how, died);
        return died;
}

/* Not virtform's to finish (see th_crash_hypervisor.clear_stranded_start): the operator's part comes first. */
static void clear_stranded_start(const th_crash *c, const char *root, const char *how) {
        _cleanup_free_ char *cleared = c->hv->clear_stranded_start ? c->hv->clear_stranded_start(c, root) : NULL;

        if (cleared)
                print_message("after %s, %s\n", how, cleared);
}

static bool written_at_start(const th_crash_dir *dirs, const char *line) {
        for (size_t i = 0; i < TH_CRASH_MAX_DIRS && dirs[i].path; i++)
                if (dirs[i].written_at_start && (strncmp(line, dirs[i].added, strlen(dirs[i].added)) == 0 ||
                                                 strncmp(line, dirs[i].removed, strlen(dirs[i].removed)) == 0))
                        return true;
        return false;
}

/*
 * What a restarting hypervisor writes as it starts (the status of the networks it autostarts) cannot
 * be told from virtform's writes there: after a restart, those directories' writes are left out.
 */
static char *writes_but_at_start(const th_crash *c, const char *root, const char *writes) {
        th_crash_dir dirs[TH_CRASH_MAX_DIRS] = {};
        _cleanup_free_ char *copy = strdup(writes);
        vf_buf b = {};

        c->hv->watched(c, root, dirs);
        for (char *p = copy, *line = strsep(&p, "\n"); line; line = strsep(&p, "\n"))
                if (*line && !written_at_start(dirs, line))
                        vf_buf_printf(&b, "%s\n", line);
        for (size_t i = 0; i < TH_CRASH_MAX_DIRS; i++)
                free(dirs[i].path);
        return vf_buf_steal(&b) ?: strdup("");
}

static void check_trial(const th_crash *c, const char *root, int phase, const char *before_uuids, writes_watch *w,
                        const char *how, vf_buf *runs) {
        _cleanup_(outcome_done) th_crash_outcome after = {};
        bool restarted = revived(c, how);

        clear_stranded_start(c, root, how);
        rerun_until_done(c, root, c->conf[phase], how, runs);
        after.writes = read_writes(w);
        observe(c, root, &after);
        th_crash_outcome want = c->clean[phase];
        _cleanup_free_ char *want_writes = restarted ? writes_but_at_start(c, root, want.writes) : NULL;
        if (restarted) {
                char *writes = writes_but_at_start(c, root, after.writes);
                free(after.writes);
                after.writes = writes;
                want.writes = want_writes;
        }
        assert_outcome(&after, &want, how, runs->data ? runs->data : "");
        /* What the second apply keeps, it keeps as the same object: never undefined and made again. */
        for (const char *const *name = c->kept; before_uuids && *name; name++) {
                _cleanup_free_ char *was = uuid_of(before_uuids, *name), *is = uuid_of(after.uuids, *name);
                if (strcmp(was, is) != 0)
                        fail_msg("after %s, %s has a new UUID: %s, was %s", how, *name, is, was);
        }
        c->hv->end_root(c, root);
}

static char *uuids_before(const th_crash *c, const char *root, int phase) {
        _cleanup_(outcome_done) th_crash_outcome o = {};

        if (phase == 0)
                return NULL;
        c->hv->observe(c, root, &o);
        return TAKE_PTR(o.uuids);
}

void th_crash_at_every_point(th_crash *c, int phase, const char *kind, unsigned stride) {
        unsigned n;

        for (n = 1;; n += stride) {
                _cleanup_free_ char *root = vf_printf("%s/%d-%s-%u", c->dir, phase, kind, n);
                _cleanup_free_ char *fault = vf_printf("%s-write:%u", kind, n);
                _cleanup_free_ char *how = vf_printf("apply %d killed at %s", phase + 1, fault);
                prepare(c, root, phase);
                _cleanup_free_ char *before = uuids_before(c, root, phase);
                writes_watch w = watch_writes(c, root);

                th_run crashed = th_crash_apply(c, root, c->conf[phase], fault);
                bool died = crashed.killed;
                _cleanup_(vf_buf_done) vf_buf runs = {};
                append_run(&runs, "killed run", &crashed);
                th_run_done(&crashed);
                if (!died) {
                        free(read_writes(&w));
                        c->hv->end_root(c, root);
                        break;
                }
                check_trial(c, root, phase, before, &w, how, &runs);
                th_rmtree(root);
                assert_true(n < 400);
        }
        /* Past the last point: every one was covered; an apply has more than a couple. */
        print_message("apply %d: killed at %u %s points and recovered\n", phase + 1, (n - 1) / stride, kind);
        assert_true(n > 3);
}

void th_crash_clean_runs(th_crash *c) {
        _cleanup_free_ char *root = vf_printf("%s/clean", c->dir);

        prepare(c, root, 0);
        for (int phase = 0; phase < 2; phase++) {
                writes_watch w = watch_writes(c, root);
                int64_t start = vf_now_monotonic_usec();
                apply_ok(c, root, c->conf[phase], "a clean apply");
                c->clean_usec[phase] = vf_now_monotonic_usec() - start;
                c->clean[phase].writes = read_writes(&w);
                observe(c, root, &c->clean[phase]);
        }
        c->hv->end_root(c, root);
}

/* Kills the phase's apply delay_usec after its start, then, when given, the hypervisor too; checks the rerun's outcome. */
static void killed_trial(th_crash *c, const char *name, int phase, int64_t delay_usec, const char *how,
                         void (*hypervisor_crash)(const th_crash *c)) {
        _cleanup_free_ char *root = vf_printf("%s/%s", c->dir, name);

        prepare(c, root, phase);
        _cleanup_free_ char *before = uuids_before(c, root, phase);
        writes_watch w = watch_writes(c, root);

        th_run crashed = apply_killed_after(c, root, c->conf[phase], delay_usec);
        _cleanup_(vf_buf_done) vf_buf runs = {};
        append_run(&runs, "killed run", &crashed);
        th_run_done(&crashed);
        if (hypervisor_crash)
                hypervisor_crash(c);
        check_trial(c, root, phase, before, &w, how, &runs);
        th_rmtree(root);
}

void th_crash_at_random(th_crash *c, unsigned trials) {
        const char *env = getenv("VIRTFORM_TEST_SEED");
        unsigned seed = env ? (unsigned) strtoul(env, NULL, 10) : (unsigned) vf_now_realtime_usec();

        print_message("random kills: seed %u (VIRTFORM_TEST_SEED=%u reproduces them)\n", seed, seed);
        srandom(seed);
        for (unsigned trial = 0; trial < trials; trial++) {
                int phase = (int) (random() % 2);
                int64_t delay = (int64_t) (random() % (c->clean_usec[phase] + 1));
                _cleanup_free_ char *name = vf_printf("random-%u", trial);
                _cleanup_free_ char *how = vf_printf("apply %d killed after %" PRId64 " ms (seed %u, trial %u)",
                                                     phase + 1, delay / 1000, seed, trial);
                killed_trial(c, name, phase, delay, how, NULL);
        }
}

void th_crash_with_hypervisor(th_crash *c, int phase, void (*hypervisor_crash)(const th_crash *c)) {
        int64_t delay = c->clean_usec[phase] / 2;
        _cleanup_free_ char *how = vf_printf("apply %d and the hypervisor killed after %" PRId64 " ms", phase + 1,
                                             delay / 1000);
        killed_trial(c, "hypervisor-crash", phase, delay, how, hypervisor_crash);
}
