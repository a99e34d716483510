/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _XOPEN_SOURCE 700
#include "tests/helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <ftw.h>
#include <regex.h>
#include <sqlite3.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <libvirt/virterror.h>

static bool under_ci(void) {
        const char *ci = getenv("CI");
        return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

void th_skip(const char *fmt, ...) {
        char reason[512]; /* on the stack: skip() longjmps past any cleanup */
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof reason, fmt, ap);
        va_end(ap);
        if (under_ci())
                fail_msg("skipped under CI, which must run everything: %s", reason);
        print_message("SKIP: %s\n", reason);
        skip();
}

static void skipped_test(void **state) {
        th_skip("%s", (const char *) *state);
}

/* A fresh directory for the whole suite, made $TMPDIR for what the suite makes. */
static char *suite_tmpdir(void) {
        const char *tmp = getenv("TMPDIR");
        char *path = vf_printf("%s/%s-XXXXXX", tmp ? tmp : "/tmp", program_invocation_short_name);

        if (!path || !mkdtemp(path) || setenv("TMPDIR", path, 1) < 0) {
                fprintf(stderr, "cannot make the suite's temporary directory %s: %m\n", path);
                abort();
        }
        return path;
}

/* The PID of the process whose /proc/PID/stat says stat; 0 when it is not our child. */
static pid_t child_of_ours(const char *stat_text, char *ret_state) {
        const char *after_comm = strrchr(stat_text, ')');
        int ppid;

        if (!after_comm || sscanf(after_comm + 1, " %c %d", ret_state, &ppid) != 2 || ppid != getpid())
                return 0;
        return (pid_t) atoi(stat_text);
}

/*
 * A test that fails by an assertion longjmps past the code that would stop
 * what it started: the children still here are killed and reaped, each
 * named, and count as a failure (a passing suite leaves none either).
 */
static int reap_children(void) {
        _cleanup_(closedirp) DIR *proc = opendir("/proc");
        int left = 0;

        for (struct dirent *de; proc && (de = readdir(proc));) {
                _cleanup_free_ char *stat_path = vf_printf("/proc/%s/stat", de->d_name), *text = NULL;
                _cleanup_free_ char *cmd_path = vf_printf("/proc/%s/cmdline", de->d_name), *cmd = NULL;
                size_t len;
                char state;

                if (de->d_name[0] < '1' || de->d_name[0] > '9' || vf_read_file(stat_path, 4096, &text, &len) < 0)
                        continue;
                pid_t pid = child_of_ours(text, &state);
                if (pid <= 0)
                        continue;
                if (vf_read_file(cmd_path, 4096, &cmd, &len) == 0)
                        for (size_t i = 0; i + 1 < len; i++)
                                cmd[i] = cmd[i] ? cmd[i] : ' ';
                fprintf(stderr, "%s: a test left child %d (%s) %s; killed\n", program_invocation_short_name, (int) pid,
                        cmd && len ? cmd : "?", state == 'Z' ? "unreaped" : "running");
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                left++;
        }
        return left;
}

int th_count_entries(const char *dir, const char *name_them_as) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        int n = 0;

        for (struct dirent *de; d && (de = readdir(d));)
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                        if (name_them_as)
                                fprintf(stderr, "%s %s/%s\n", name_them_as, dir, de->d_name);
                        n++;
                }
        return n;
}

/* The suite's directory goes, with whatever failed tests left; a passing suite must have left nothing. */
static int sweep(const char *root, bool passed) {
        _cleanup_free_ char *left_as = vf_printf("%s: a passing test left", program_invocation_short_name);
        int left = th_count_entries(root, passed ? left_as : NULL);

        th_rmtree(root);
        return passed && left > 0;
}

int th_run_tests(const char *group, const struct CMUnitTest *tests, size_t n, CMFixtureFunction group_setup,
                 CMFixtureFunction group_teardown, const char *skip_reason) {
        _cleanup_free_ char *root = suite_tmpdir();
        _cleanup_free_ struct CMUnitTest *skipped = NULL;

        if (skip_reason) {
                skipped = calloc(n, sizeof *skipped);
                assert_non_null(skipped);
                for (size_t i = 0; i < n; i++)
                        skipped[i] = (struct CMUnitTest) {
                                .name = tests[i].name,
                                .test_func = skipped_test,
                                .initial_state = (void *) skip_reason,
                        };
                tests = skipped;
                group_setup = group_teardown = NULL;
        }
        /* While working on one test: VIRTFORM_TEST_ONLY=test_name (a glob) runs that alone. */
        const char *only = getenv("VIRTFORM_TEST_ONLY");
        if (only)
                cmocka_set_test_filter(only);
        int failed = _cmocka_run_group_tests(group, tests, n, group_setup, group_teardown);
        return failed + reap_children() + sweep(root, failed == 0);
}

bool th_enter_netns(void) {
        return unshare(CLONE_NEWNET) == 0 && system("ip link set lo up") == 0;
}

char *th_mkdtemp(void) {
        const char *tmp = getenv("TMPDIR");
        char *path = vf_printf("%s/virtform-test-XXXXXX", tmp ? tmp : "/tmp");
        assert_non_null(path);
        assert_non_null(mkdtemp(path));
        return path;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

void th_rmtree(const char *path) {
        if (path)
                nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void th_write(const char *dir, const char *name, const char *fmt, ...) {
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, name);
        FILE *f = fopen(path, "we");
        va_list ap;

        assert_non_null(f);
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        assert_int_equal(fclose(f), 0);
}

void th_remove(const char *dir, const char *name) {
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, name);
        assert_int_equal(unlink(path), 0);
}

static void ignore_error(void *userdata, virErrorPtr error) {
}

virConnectPtr th_connect(void) {
        virSetErrorFunc(NULL, ignore_error);
        virConnectPtr conn = virConnectOpen("test:///default");
        assert_non_null(conn);
        return conn;
}

void th_reset_test_driver(void) {
        virConnectPtr conn = th_connect();
        virDomainPtr *doms = NULL;
        virNetworkPtr *nets = NULL;
        virStoragePoolPtr *pools = NULL;
        int n = virConnectListAllDomains(conn, &doms, 0);

        for (int i = 0; i < n; i++) {
                if (strcmp(virDomainGetName(doms[i]), "test") != 0) {
                        if (virDomainIsActive(doms[i]) == 1)
                                virDomainDestroy(doms[i]);
                        virDomainUndefine(doms[i]);
                } else if (virDomainIsActive(doms[i]) == 0)
                        virDomainCreate(doms[i]); /* stopped by a test of a host where nothing runs */
                virDomainFree(doms[i]);
        }
        free(doms);
        n = virConnectListAllNetworks(conn, &nets, 0);
        for (int i = 0; i < n; i++) {
                if (strcmp(virNetworkGetName(nets[i]), "default") != 0) {
                        if (virNetworkIsActive(nets[i]) == 1)
                                virNetworkDestroy(nets[i]);
                        virNetworkUndefine(nets[i]);
                }
                virNetworkFree(nets[i]);
        }
        free(nets);
        n = virConnectListAllStoragePools(conn, &pools, 0);
        for (int i = 0; i < n; i++) {
                if (strcmp(virStoragePoolGetName(pools[i]), "default-pool") != 0) {
                        if (virStoragePoolIsActive(pools[i]) == 1)
                                virStoragePoolDestroy(pools[i]);
                        virStoragePoolUndefine(pools[i]);
                }
                virStoragePoolFree(pools[i]);
        }
        free(pools);
        virConnectClose(conn);
}

char *th_domain_xml(virConnectPtr conn, const char *name, bool inactive) {
        virDomainPtr d = virDomainLookupByName(conn, name);
        if (!d)
                return NULL;
        char *xml = virDomainGetXMLDesc(d, inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
        virDomainFree(d);
        return xml;
}

char *th_network_xml(virConnectPtr conn, const char *name) {
        virNetworkPtr n = virNetworkLookupByName(conn, name);
        if (!n)
                return NULL;
        char *xml = virNetworkGetXMLDesc(n, 0); /* the test driver refuses XML_INACTIVE */
        virNetworkFree(n);
        return xml;
}

bool th_domain_active(virConnectPtr conn, const char *name) {
        virDomainPtr d = virDomainLookupByName(conn, name);
        assert_non_null(d);
        bool active = virDomainIsActive(d) == 1;
        virDomainFree(d);
        return active;
}

bool th_domain_autostart(virConnectPtr conn, const char *name) {
        virDomainPtr d = virDomainLookupByName(conn, name);
        int autostart = 0;

        assert_non_null(d);
        assert_int_equal(virDomainGetAutostart(d, &autostart), 0);
        virDomainFree(d);
        return autostart;
}

char *th_domain_uuid(virConnectPtr conn, const char *name) {
        char uuid[VIR_UUID_STRING_BUFLEN];
        virDomainPtr d = virDomainLookupByName(conn, name);

        assert_non_null(d);
        assert_int_equal(virDomainGetUUIDString(d, uuid), 0);
        virDomainFree(d);
        return strdup(uuid);
}

bool th_domain_persistent(virConnectPtr conn, const char *name) {
        virDomainPtr d = virDomainLookupByName(conn, name);
        assert_non_null(d);
        bool persistent = virDomainIsPersistent(d) == 1;
        virDomainFree(d);
        return persistent;
}

void th_run_done(th_run *r) {
        free(r->out);
        free(r->err);
        *r = (th_run) {};
}

char *th_slurp(const char *path) {
        char *data = NULL;
        assert_int_equal(vf_read_file(path, 16 * 1024 * 1024, &data, NULL), 0);
        return data;
}

void th_copy_file(const char *from, const char *to) {
        _cleanup_free_ char *data = NULL;
        size_t len;

        assert_int_equal(vf_read_file(from, 64 << 20, &data, &len), 0);
        int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t) len);
        assert_int_equal(close(fd), 0);
}

int th_state_exec(const char *path, const char *sql) {
        sqlite3 *db = NULL;
        char *err = NULL;

        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        /* The controller under test may hold a write transaction for a moment: wait it out, as an operator's sqlite3 would. */
        assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
                fail_msg("%s: %s", sql, err);
        int changes = sqlite3_changes(db);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        return changes;
}

unsigned th_count_in_text(const char *text, const char *needle) {
        unsigned n = 0;

        for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

unsigned th_count_in_file(const char *path, const char *needle) {
        _cleanup_free_ char *text = th_slurp(path);
        return th_count_in_text(text, needle);
}

/* The parent's environment plus the extra entries, which win. */
static char **child_environment(const char *const *extra) {
        extern char **environ;
        char **env = NULL;

        for (size_t i = 0; extra && extra[i]; i++)
                assert_int_equal(vf_strv_push(&env, extra[i]), 0);
        for (size_t i = 0; environ[i]; i++) {
                size_t name_len = strcspn(environ[i], "=");
                bool overridden = false;
                for (size_t j = 0; extra && extra[j]; j++)
                        overridden |= strncmp(extra[j], environ[i], name_len + 1) == 0;
                if (!overridden)
                        assert_int_equal(vf_strv_push(&env, environ[i]), 0);
        }
        return env;
}

th_child th_spawn_start(const char *const *argv, const char *const *extra_env) {
        th_child c = { .dir = th_mkdtemp(), .deadline_sec = TH_SPAWN_DEADLINE_SEC };
        _cleanup_free_ char *out = vf_printf("%s/out", c.dir), *err = vf_printf("%s/err", c.dir);
        _cleanup_strv_free_ char **env = child_environment(extra_env);
        _cleanup_(vf_buf_done) vf_buf command = {};
        posix_spawn_file_actions_t fa;

        for (size_t i = 0; argv[i]; i++)
                vf_buf_printf(&command, "%s%s", i ? " " : "", argv[i]);
        c.command = strdup(command.data ? command.data : "");
        assert_non_null(c.command);

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_int_equal(posix_spawn(&c.pid, argv[0], &fa, NULL, (char **) argv, env), 0);
        posix_spawn_file_actions_destroy(&fa);
        return c;
}

static char *child_output(const th_child *c, const char *name) {
        _cleanup_free_ char *path = vf_printf("%s/%s", c->dir, name);
        return th_slurp(path);
}

char *th_child_stdout(const th_child *c) {
        return child_output(c, "out");
}

char *th_child_stderr(const th_child *c) {
        return child_output(c, "err");
}

/* Each thread of pid: its name, and the kernel's stack of where it waits (root may read it). */
static char *threads_of(pid_t pid) {
        _cleanup_free_ char *tasks = vf_printf("/proc/%d/task", (int) pid);
        _cleanup_(vf_buf_done) vf_buf b = {};
        DIR *d = opendir(tasks);

        for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
                if (e->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *comm_path = vf_printf("%s/%s/comm", tasks, e->d_name);
                _cleanup_free_ char *stack_path = vf_printf("%s/%s/stack", tasks, e->d_name);
                _cleanup_free_ char *comm = NULL, *stack = NULL;
                size_t len;
                (void) vf_read_file(comm_path, 4096, &comm, &len);
                (void) vf_read_file(stack_path, 64 * 1024, &stack, &len);
                vf_buf_printf(&b, "thread %s %s%s\n", e->d_name, comm ? comm : "?\n",
                              stack ? stack : "(no stack)");
        }
        if (d)
                closedir(d);
        return b.data ? TAKE_PTR(b.data) : strdup("(no threads listed)\n");
}

/*
 * A thread blocks in waitid() until the child exits, leaving it unreaped, and
 * says so under the lock: the test waits on the condition with a deadline.
 * (pidfd_open() would be simpler, but valgrind does not know it.)
 */
typedef struct exit_watch {
        pid_t pid;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t exited_cond;
        bool exited;
} exit_watch;

static void *watch_exit(void *userdata) {
        exit_watch *w = userdata;
        siginfo_t info;

        while (waitid(P_PID, (id_t) w->pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR)
                ;
        pthread_mutex_lock(&w->lock);
        w->exited = true;
        pthread_cond_signal(&w->exited_cond);
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* Whether the watched child exits within timeout_sec. */
static bool exits_within(exit_watch *w, int timeout_sec) {
        struct timespec deadline;
        int r = 0;

        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &deadline), 0);
        deadline.tv_sec += timeout_sec;
        pthread_mutex_lock(&w->lock);
        while (!w->exited && r != ETIMEDOUT)
                r = pthread_cond_timedwait(&w->exited_cond, &w->lock, &deadline);
        bool exited = w->exited;
        pthread_mutex_unlock(&w->lock);
        return exited;
}

/*
 * Says where the stuck child's threads wait and what it wrote, then kills it.
 * Writes the failure's headline into headline; the rest is freed, so that the
 * failure leaks nothing when a test expects it.
 */
static void report_stuck(const th_child *c, char *headline, size_t size) {
        _cleanup_free_ char *threads = threads_of(c->pid);
        _cleanup_free_ char *out = th_child_stdout(c), *err = th_child_stderr(c);

        print_error("%s (pid %d) still ran after %d s, and was killed. Its threads:\n%s--- stdout:\n%s--- stderr:\n%s",
                    c->command, (int) c->pid, c->deadline_sec, threads, out, err);
        kill(c->pid, SIGKILL);
        snprintf(headline, size, "%s (pid %d) still ran after %d s", c->command, (int) c->pid, c->deadline_sec);
}

th_run th_spawn_wait(th_child *c) {
        exit_watch w = { .pid = c->pid, .lock = PTHREAD_MUTEX_INITIALIZER };
        pthread_condattr_t attr;
        char stuck[512] = "";
        int status;
        th_run r = {};

        assert_int_equal(pthread_condattr_init(&attr), 0);
        assert_int_equal(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), 0);
        assert_int_equal(pthread_cond_init(&w.exited_cond, &attr), 0);
        pthread_condattr_destroy(&attr);
        assert_int_equal(pthread_create(&w.thread, NULL, watch_exit, &w), 0);
        if (!exits_within(&w, c->deadline_sec))
                report_stuck(c, stuck, sizeof stuck);
        pthread_join(w.thread, NULL);
        pthread_cond_destroy(&w.exited_cond);
        assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
        r.killed = WIFSIGNALED(status);
        r.status = r.killed ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        r.out = th_child_stdout(c);
        r.err = th_child_stderr(c);
        th_rmtree(c->dir);
        free(c->dir);
        free(c->command);
        *c = (th_child) {};
        if (stuck[0]) {
                th_run_done(&r);
                fail_msg("%s", stuck);
        }
        return r;
}

th_run th_spawn(const char *const *argv, const char *const *extra_env) {
        th_child c = th_spawn_start(argv, extra_env);
        return th_spawn_wait(&c);
}

char *th_copy_examples(void) {
        const char *from = getenv("VIRTFORM_EXAMPLES");
        char *to = th_mkdtemp();
        DIR *d = opendir(from);
        struct dirent *e;

        assert_non_null(d);
        assert_int_equal(chmod(to, 0755), 0);
        while ((e = readdir(d))) {
                _cleanup_free_ char *path = vf_printf("%s/%s", from, e->d_name);
                struct stat st;
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                _cleanup_free_ char *content = th_slurp(path), *copy = vf_printf("%s/%s", to, e->d_name);
                th_write(to, e->d_name, "%s", content);
                assert_int_equal(chmod(copy, 0644), 0);
        }
        closedir(d);
        return to;
}

void th_assert_lines_match(const char *text, const char *ere) {
        regex_t re;

        assert_int_equal(regcomp(&re, ere, REG_EXTENDED | REG_NOSUB), 0);
        assert_true(text[0] != 0);
        for (const char *line = text; *line;) {
                size_t len = strcspn(line, "\n");
                _cleanup_free_ char *copy = strndup(line, len);
                if (regexec(&re, copy, 0, NULL, 0) != 0) {
                        regfree(&re);
                        fail_msg("'%s' does not match '%s'", copy, ere);
                }
                line += len + (line[len] == '\n');
        }
        regfree(&re);
}
