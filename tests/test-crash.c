/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crash consistency: `virtform apply` is killed with SIGKILL and run again
 * until it exits 0. The hypervisor must outlive the process, so this runs the
 * real QEMU driver embedded (qemu:///embed?root=DIR): its definitions are
 * files under DIR and its guests (TCG, no OS: they ignore ACPI) go on
 * running, there for the next process as a daemon's would be.
 *
 * Two applies: the first defines three domains, one of them running; the
 * second prunes one, redefines one and stops the running one (a graceful
 * shutdown that times out, then destroy). Kill points: every intent (just
 * durable, before its write), every libvirt write (made, its outcome not yet
 * recorded), every state write of the first apply, and random moments.
 *
 * After each crash and rerun, compared with a clean run's:
 * - libvirt's end state, read by virsh through its own embedded driver:
 *   domains, memory, active state, autostart; UUIDs kept across the apply;
 * - the writes libvirt made (defines, undefines, autostart links), seen in
 *   its files by an inotify watch the test holds across the runs;
 * - the records in the state file;
 * - the event log: the actions it shows done (ok, or interrupted and found
 *   done) are the clean run's, each once, and no intent is left open.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/helpers.h"

#include "state/state.h"

#define VIRSH "/usr/bin/virsh"
#define RANDOM_TRIALS 10

typedef struct outcome {
        char *libvirt; /* one line per domain: name, state, autostart, memory */
        char *uuids; /* one line per domain: name and UUID */
        char *records;
        char *journal; /* the actions done, sorted */
        char *writes; /* the writes libvirt made, as its files show them, sorted */
} outcome;

typedef struct fixture {
        char *dir;
        char *conf[2]; /* the first and the second apply */
        outcome clean[2];
        int64_t clean_usec[2]; /* how long the clean applies took */
} fixture;

static void outcome_done(outcome *o) {
        free(o->libvirt);
        free(o->uuids);
        free(o->records);
        free(o->journal);
        free(o->writes);
        *o = (outcome) {};
}

static const char *virtform_binary(void) {
        const char *path = getenv("VIRTFORM");
        assert_non_null(path);
        return path;
}

static th_child apply_start(const char *root, const char *conf, const char *fault) {
        _cleanup_free_ char *uri = vf_printf("qemu:///embed?root=%s/hv", root);
        _cleanup_free_ char *state = vf_printf("%s/state.db", root);
        _cleanup_free_ char *env = fault ? vf_printf("VIRTFORM_FAULT_POINT=%s", fault) : NULL;
        const char *argv[] = { virtform_binary(), "apply", "-c", uri, "--state", state,
                               "--shutdown-timeout", "1", conf, NULL };
        const char *extra[] = { env, NULL };
        return th_spawn_start(argv, extra);
}

static th_run apply(const char *root, const char *conf, const char *fault) {
        th_child c = apply_start(root, conf, fault);
        return th_spawn_wait(&c);
}

/* Kills apply with SIGKILL kill_after_usec after its start, unless it has exited by then. */
static th_run apply_killed_after(const char *root, const char *conf, int64_t kill_after_usec) {
        th_child c = apply_start(root, conf, NULL);
        int64_t deadline = vf_now_monotonic_usec() + kill_after_usec;
        siginfo_t info = {};

        /* WNOWAIT leaves the child for th_spawn_wait() to reap. */
        while (waitid(P_PID, (id_t) c.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0 &&
               vf_now_monotonic_usec() < deadline)
                nanosleep(&(struct timespec) { 0, 1000000L }, NULL);
        if (info.si_pid == 0)
                assert_int_equal(kill(c.pid, SIGKILL), 0);
        return th_spawn_wait(&c);
}

static void apply_ok(const char *root, const char *conf, const char *what) {
        th_run r = apply(root, conf, NULL);
        if (r.status != 0)
                fail_msg("%s exited %d:\n%s%s", what, r.status, r.out, r.err);
        th_run_done(&r);
}

static void write_domain(const char *dir, const char *name, const char *memory, const char *state, bool autostart) {
        _cleanup_free_ char *file = vf_printf("%s.yaml", name);
        th_write(dir, file,
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: %s}\nspec:\n"
                 "  memory: %s\n  type: qemu\n  arch: x86_64\n  state: %s\n  autostart: %s\n",
                 name, memory, state, autostart ? "true" : "false");
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);

        f->dir = th_mkdtemp();
        for (int i = 0; i < 2; i++) {
                f->conf[i] = vf_printf("%s/conf%d", f->dir, i);
                assert_int_equal(mkdir(f->conf[i], 0755), 0);
        }
        write_domain(f->conf[0], "vm0", "64MiB", "shutoff", true);
        write_domain(f->conf[0], "vm1", "64MiB", "shutoff", false);
        write_domain(f->conf[0], "vm2", "64MiB", "running", true);
        /* vm0 is pruned, vm1 redefined, vm2 shut down. */
        write_domain(f->conf[1], "vm1", "96MiB", "shutoff", false);
        write_domain(f->conf[1], "vm2", "64MiB", "shutoff", true);
        *state = f;
        return 0;
}

/* Guests outlive every apply: each root's are killed by the PIDs libvirt recorded, before its files go. */
static void kill_guests(const char *root) {
        _cleanup_free_ char *dir = vf_printf("%s/hv/run/qemu", root);
        DIR *d = opendir(dir);
        struct dirent *de;

        while (d && (de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (len < 5 || strcmp(de->d_name + len - 4, ".pid") != 0 || strcmp(de->d_name, "driver.pid") == 0)
                        continue;
                _cleanup_free_ char *path = vf_printf("%s/%s", dir, de->d_name), *text = th_slurp(path);
                pid_t pid = (pid_t) atoi(text);
                if (pid <= 1 || kill(pid, SIGKILL) < 0)
                        continue;
                int64_t deadline = vf_now_monotonic_usec() + 10 * 1000000;
                while (kill(pid, 0) == 0 && vf_now_monotonic_usec() < deadline)
                        nanosleep(&(struct timespec) { 0, 10000000L }, NULL);
        }
        if (d)
                closedir(d);
}

static int teardown(void **state) {
        fixture *f = *state;
        DIR *d = opendir(f->dir);
        struct dirent *de;

        while (d && (de = readdir(d))) {
                _cleanup_free_ char *root = vf_printf("%s/%s", f->dir, de->d_name);
                kill_guests(root);
        }
        if (d)
                closedir(d);
        th_rmtree(f->dir);
        for (int i = 0; i < 2; i++) {
                free(f->conf[i]);
                outcome_done(&f->clean[i]);
        }
        free(f->dir);
        free(f);
        return 0;
}

/* ---- observing --------------------------------------------------------------- */

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Orders "ID NAME ..." lines by what follows the first word. */
static int compare_strings_after_id(const void *a, const void *b) {
        const char *x = *(char *const *) a, *y = *(char *const *) b;
        return strcmp(x + strcspn(x, " "), y + strcspn(y, " "));
}

/*
 * libvirt's embedded driver may crash as its process exits while its thread
 * reconnecting to a running guest is still inside libvirt (SIGSEGV in
 * exit()), which a query that takes the guest's job first makes rare. Such a
 * run's output is lost: run it again.
 */
static char *virsh(const char *root, const char *commands) {
        _cleanup_free_ char *uri = vf_printf("qemu:///embed?root=%s/hv", root);
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

/* The lines of virsh's output up to an "@@" marker (virsh's echo ends no line), from *p on; moves *p past it. */
static char **section(char **p) {
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

/*
 * What libvirt has, through virsh's own embedded driver: nothing of virtform's
 * in between. Per domain, sorted: its state, whether it autostarts, and vm1's
 * memory (the second apply changes it).
 */
static void observe_libvirt(const char *root, outcome *o) {
        /* domstats first waits for virsh's driver to reconnect to running guests (see virsh()). */
        _cleanup_free_ char *out = virsh(root, "domstats --list-active --balloon; echo @@; list --all; echo @@; "
                                               "list --all --autostart --name; echo @@; list --all --uuid --name; "
                                               "echo @@; dumpxml --inactive --xpath /domain/memory vm1");
        char *p = out;
        _cleanup_strv_free_ char **reconnected = section(&p), **domains = section(&p), **autostart = section(&p),
                                 **uuids = section(&p);
        vf_buf state = {}, ids = {};

        qsort(domains, vf_strv_length(domains), sizeof(char *), compare_strings_after_id);
        qsort(uuids, vf_strv_length(uuids), sizeof(char *), compare_strings_after_id);
        for (size_t i = 0; domains && domains[i]; i++) {
                char *name = domains[i] + strcspn(domains[i], " "), *st;
                name += strspn(name, " ");
                st = name + strcspn(name, " ");
                *st++ = 0;
                vf_buf_printf(&state, "%s %s autostart %d\n", name, st + strspn(st, " "),
                              vf_strv_contains(autostart, name));
        }
        for (size_t i = 0; uuids && uuids[i]; i++)
                vf_buf_printf(&ids, "%s\n", uuids[i]);
        vf_buf_printf(&state, "vm1 %s\n", p ? p : "");
        o->libvirt = vf_buf_steal(&state);
        o->uuids = vf_buf_steal(&ids);
        assert_non_null(o->libvirt);
        assert_non_null(o->uuids);
}

/*
 * libvirt's own trace of its writes, seen by an inotify watch the test holds
 * across every run of a trial: a define renames the domain's new config file
 * into place, an undefine deletes it, autostart is a link in autostart/.
 */
typedef struct writes_watch {
        int fd;
        int autostart_wd;
} writes_watch;

static writes_watch watch_writes(const char *root) {
        _cleanup_free_ char *config = vf_printf("%s/hv/etc/qemu", root);
        _cleanup_free_ char *autostart = vf_printf("%s/autostart", config);
        _cleanup_free_ char *cmd = vf_printf("mkdir -p '%s'", autostart);
        writes_watch w = { .fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) };

        assert_int_equal(system(cmd), 0);
        assert_true(w.fd >= 0);
        /*
         * IN_MOVED_FROM (of the temporary file) too, between two renames into place: the kernel
         * merges an event with an identical one still unread, so two defines in a row would count once.
         */
        assert_true(inotify_add_watch(w.fd, config, IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE) >= 0);
        w.autostart_wd = inotify_add_watch(w.fd, autostart, IN_CREATE | IN_DELETE);
        assert_true(w.autostart_wd >= 0);
        return w;
}

static const char *write_seen(const writes_watch *w, const struct inotify_event *ev) {
        if (ev->wd == w->autostart_wd)
                return ev->mask & IN_CREATE ? "autostart on" : "autostart off";
        return ev->mask & IN_MOVED_TO ? "define" : "undefine";
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
                        /* Domain files only: not the temporary file a define writes first. */
                        if (name_len > 4 && strcmp(ev->name + name_len - 4, ".xml") == 0)
                                assert_int_equal(vf_strv_consume(&seen, vf_printf("%s %.*s", write_seen(w, ev),
                                                                                  (int) name_len - 4, ev->name)),
                                                 0);
                        p += sizeof(struct inotify_event) + ev->len;
                }
        assert_true(len < 0 && errno == EAGAIN);
        assert_int_equal(close(w->fd), 0);
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

static void observe(const char *root, outcome *o) {
        _cleanup_(state_closep) state_store *store = open_state(root);

        observe_libvirt(root, o);
        o->records = observe_records(store);
        o->journal = observe_journal(store);
}

static void assert_same(const char *what, const char *how, const char *got, const char *want) {
        if (strcmp(got, want) != 0)
                fail_msg("after %s, %s differs:\n%s\nclean run:\n%s", how, what, got, want);
}

static void assert_outcome(const outcome *got, const outcome *want, const char *how) {
        assert_same("what libvirt wrote", how, got->writes, want->writes);
        assert_same("libvirt's state", how, got->libvirt, want->libvirt);
        assert_same("the state file's records", how, got->records, want->records);
        assert_same("the event log", how, got->journal, want->journal);
}

/* ---- trials ------------------------------------------------------------------ */

/* A hypervisor root without virtlogd, with the clean run's capability cache: probing QEMU anew costs seconds. */
static void new_root(const fixture *f, const char *root) {
        _cleanup_free_ char *etc = vf_printf("%s/hv/etc", root);
        _cleanup_free_ char *cmd = vf_printf("mkdir -p '%s' && { [ ! -d '%s/clean/hv/cache' ] || "
                                             "cp -a '%s/clean/hv/cache' '%s/hv/'; }",
                                             etc, f->dir, f->dir, root);
        assert_int_equal(system(cmd), 0);
        /* Guests run as root: the temporary directories are not for the qemu user to read. */
        th_write(etc, "qemu.conf", "stdio_handler = \"file\"\nuser = \"root\"\ngroup = \"root\"\n");
}

/* Reruns until apply exits 0, as an operator or a unit's Restart= would. */
static void rerun_until_done(const char *root, const char *conf, const char *how) {
        for (int attempt = 0;; attempt++) {
                th_run r = apply(root, conf, NULL);
                int status = r.status;
                if (status != 0 && attempt == 2)
                        fail_msg("rerun after %s exited %d three times:\n%s%s", how, status, r.out, r.err);
                th_run_done(&r);
                if (status == 0)
                        return;
        }
}

/* Brings a fresh root to where the phase starts: the first apply done for the second phase. */
static void prepare(const fixture *f, const char *root, int phase) {
        new_root(f, root);
        if (phase == 1)
                apply_ok(root, f->conf[0], "the first apply");
}

/* The UUID on the "UUID NAME" line of a domain. */
static char *uuid_of(const char *uuids, const char *name) {
        _cleanup_free_ char *needle = vf_printf(" %s\n", name);
        const char *at = strstr(uuids, needle);
        if (!at)
                fail_msg("no domain %s in:\n%s", name, uuids);
        const char *line = at;
        while (line > uuids && line[-1] != '\n')
                line--;
        return strndup(line, (size_t) (at - line));
}

static void check_trial(const fixture *f, const char *root, int phase, const char *before_uuids, writes_watch *w,
                        const char *how) {
        _cleanup_(outcome_done) outcome after = {};

        rerun_until_done(root, f->conf[phase], how);
        after.writes = read_writes(w);
        observe(root, &after);
        assert_outcome(&after, &f->clean[phase], how);
        /* What the second apply keeps, it keeps as the same object: never undefined and made again. */
        if (before_uuids)
                for (const char *const *name = (const char *const[]) { "vm1", "vm2", NULL }; *name; name++) {
                        _cleanup_free_ char *was = uuid_of(before_uuids, *name), *is = uuid_of(after.uuids, *name);
                        if (strcmp(was, is) != 0)
                                fail_msg("after %s, %s has a new UUID: %s, was %s", how, *name, is, was);
                }
        kill_guests(root);
}

static char *uuids_before(const char *root, int phase) {
        _cleanup_(outcome_done) outcome o = {};

        if (phase == 0)
                return NULL;
        observe_libvirt(root, &o);
        return TAKE_PTR(o.uuids);
}

/* Kills the phase's apply at its Nth point of a kind, for every N until a run completes untouched. */
static void crash_at_every_point(fixture *f, int phase, const char *kind, unsigned stride) {
        unsigned n;

        for (n = 1;; n += stride) {
                _cleanup_free_ char *root = vf_printf("%s/%d-%s-%u", f->dir, phase, kind, n);
                _cleanup_free_ char *fault = vf_printf("%s-write:%u", kind, n);
                _cleanup_free_ char *how = vf_printf("apply %d killed at %s", phase + 1, fault);
                prepare(f, root, phase);
                _cleanup_free_ char *before = uuids_before(root, phase);
                writes_watch w = watch_writes(root);

                th_run crashed = apply(root, f->conf[phase], fault);
                bool died = crashed.killed;
                th_run_done(&crashed);
                if (!died) {
                        free(read_writes(&w));
                        kill_guests(root);
                        break;
                }
                check_trial(f, root, phase, before, &w, how);
                th_rmtree(root);
                assert_true(n < 400);
        }
        /* Past the last point: every one was covered; an apply has more than a couple. */
        print_message("apply %d: killed at %u %s points and recovered\n", phase + 1, (n - 1) / stride, kind);
        assert_true(n > 3);
}

static bool embedded_qemu_works(const fixture *f) {
        _cleanup_free_ char *root = vf_printf("%s/probe", f->dir);
        new_root(f, root);
        th_run r = apply(root, "/nonexistent-virtform-dir", NULL);
        bool works = !strstr(r.err, "cannot connect to the hypervisor");
        if (!works)
                print_message("qemu:///embed is not usable here (%s); skipped\n", r.err);
        th_run_done(&r);
        th_rmtree(root);
        return works;
}

static void clean_runs(fixture *f) {
        _cleanup_free_ char *root = vf_printf("%s/clean", f->dir);

        new_root(f, root);
        for (int phase = 0; phase < 2; phase++) {
                writes_watch w = watch_writes(root);
                int64_t start = vf_now_monotonic_usec();
                apply_ok(root, f->conf[phase], "a clean apply");
                f->clean_usec[phase] = vf_now_monotonic_usec() - start;
                f->clean[phase].writes = read_writes(&w);
                observe(root, &f->clean[phase]);
        }
        kill_guests(root);
}

static void test_kill_at_every_point(void **state) {
        fixture *f = *state;

        if (!embedded_qemu_works(f))
                th_skip("the embedded QEMU driver does not start a TCG guest here");
        clean_runs(f);
        assert_non_null(strstr(f->clean[0].libvirt, "vm2 running"));
        assert_non_null(strstr(f->clean[1].libvirt, "vm2 shut off"));

        for (int phase = 0; phase < 2; phase++) {
                crash_at_every_point(f, phase, "intent", 1);
                crash_at_every_point(f, phase, "libvirt", 1);
        }
        /*
         * Every third state write of the first apply: the points between are in the same
         * places relative to libvirt's writes (a step's commit, insert, begin).
         */
        crash_at_every_point(f, 0, "state", 3);
}

/* Kills apply at random moments of its clean run's duration: wherever it is, even inside a libvirt call. */
static void test_kill_at_random(void **state) {
        fixture *f = *state;
        const char *env = getenv("VIRTFORM_TEST_SEED");
        unsigned seed = env ? (unsigned) strtoul(env, NULL, 10) : (unsigned) vf_now_realtime_usec();

        if (!embedded_qemu_works(f))
                th_skip("the embedded QEMU driver does not start a TCG guest here");
        print_message("random kills: seed %u (VIRTFORM_TEST_SEED=%u reproduces them)\n", seed, seed);
        srandom(seed);
        clean_runs(f);
        for (int trial = 0; trial < RANDOM_TRIALS; trial++) {
                int phase = (int) (random() % 2);
                int64_t delay = (int64_t) (random() % (f->clean_usec[phase] + 1));
                _cleanup_free_ char *root = vf_printf("%s/random-%d", f->dir, trial);
                _cleanup_free_ char *how = vf_printf("apply %d killed after %" PRId64 " ms (seed %u, trial %d)",
                                                     phase + 1, delay / 1000, seed, trial);
                prepare(f, root, phase);
                _cleanup_free_ char *before = uuids_before(root, phase);
                writes_watch w = watch_writes(root);

                th_run crashed = apply_killed_after(root, f->conf[phase], delay);
                th_run_done(&crashed);
                check_trial(f, root, phase, before, &w, how);
                th_rmtree(root);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_kill_at_every_point, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kill_at_random, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
