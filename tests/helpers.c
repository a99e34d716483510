/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _XOPEN_SOURCE 700
#include "tests/helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <ftw.h>
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

int th_run_tests(const char *group, const struct CMUnitTest *tests, size_t n, const char *skip_reason) {
        if (!skip_reason)
                return _cmocka_run_group_tests(group, tests, n, NULL, NULL);

        _cleanup_free_ struct CMUnitTest *skipped = calloc(n, sizeof *skipped);
        assert_non_null(skipped);
        for (size_t i = 0; i < n; i++)
                skipped[i] = (struct CMUnitTest) {
                        .name = tests[i].name,
                        .test_func = skipped_test,
                        .initial_state = (void *) skip_reason,
                };
        return _cmocka_run_group_tests(group, skipped, n, NULL, NULL);
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

struct th_libvirt_view {
        virConnectPtr conn;
        int domain_callback, network_callback;
        char *objects; /* one line per object, then its XML */
        vf_buf events; /* one line per event since the view was taken */
};

static int on_domain_event(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        th_libvirt_view *v = opaque;
        vf_buf_printf(&v->events, "domain %s: lifecycle event %d, detail %d\n", virDomainGetName(dom), event, detail);
        return 0;
}

static void on_network_event(virConnectPtr conn, virNetworkPtr net, int event, int detail, void *opaque) {
        th_libvirt_view *v = opaque;
        vf_buf_printf(&v->events, "network %s: lifecycle event %d, detail %d\n", virNetworkGetName(net), event,
                      detail);
}

/* libvirt queues events for its event loop: one turn, with a timer due now so that it never blocks, delivers them. */
static void on_due(int timer, void *opaque) {
}

static void deliver_events(void) {
        int timer = virEventAddTimeout(0, on_due, NULL, NULL);
        assert_true(timer >= 0);
        assert_int_equal(virEventRunDefaultImpl(), 0);
        virEventRemoveTimeout(timer);
}

static int by_name(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Each object as "KIND NAME uuid=U autostart=A active=B" and its XML, in name order. */
static char *describe_objects(virConnectPtr conn) {
        virDomainPtr *doms = NULL;
        virNetworkPtr *nets = NULL;
        int n_doms = virConnectListAllDomains(conn, &doms, 0), n_nets = virConnectListAllNetworks(conn, &nets, 0);
        _cleanup_strv_free_ char **lines = NULL;
        char uuid[VIR_UUID_STRING_BUFLEN];
        int autostart;

        assert_true(n_doms >= 0 && n_nets >= 0);
        for (int i = 0; i < n_doms; i++) {
                _cleanup_free_ char *xml = virDomainGetXMLDesc(doms[i], VIR_DOMAIN_XML_INACTIVE);
                assert_int_equal(virDomainGetUUIDString(doms[i], uuid), 0);
                assert_int_equal(virDomainGetAutostart(doms[i], &autostart), 0);
                assert_int_equal(vf_strv_consume(&lines, vf_printf("domain %s uuid=%s autostart=%d active=%d\n%s",
                                                                 virDomainGetName(doms[i]), uuid, autostart,
                                                                 virDomainIsActive(doms[i]), xml)),
                                 0);
                virDomainFree(doms[i]);
        }
        for (int i = 0; i < n_nets; i++) {
                _cleanup_free_ char *xml = virNetworkGetXMLDesc(nets[i], 0);
                assert_int_equal(virNetworkGetUUIDString(nets[i], uuid), 0);
                assert_int_equal(virNetworkGetAutostart(nets[i], &autostart), 0);
                assert_int_equal(vf_strv_consume(&lines, vf_printf("network %s uuid=%s autostart=%d active=%d\n%s",
                                                                 virNetworkGetName(nets[i]), uuid, autostart,
                                                                 virNetworkIsActive(nets[i]), xml)),
                                 0);
                virNetworkFree(nets[i]);
        }
        free(doms);
        free(nets);
        qsort(lines, vf_strv_length(lines), sizeof *lines, by_name);
        vf_buf b = {};
        for (size_t i = 0; lines && lines[i]; i++)
                vf_buf_printf(&b, "%s\n", lines[i]);
        return vf_buf_steal(&b);
}

th_libvirt_view *th_libvirt_view_new(virConnectPtr conn) {
        th_libvirt_view *v = calloc(1, sizeof *v);

        assert_non_null(v);
        v->conn = conn;
        v->domain_callback = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                              VIR_DOMAIN_EVENT_CALLBACK(on_domain_event), v, NULL);
        v->network_callback = virConnectNetworkEventRegisterAny(conn, NULL, VIR_NETWORK_EVENT_ID_LIFECYCLE,
                                                                VIR_NETWORK_EVENT_CALLBACK(on_network_event), v, NULL);
        assert_true(v->domain_callback >= 0 && v->network_callback >= 0);
        deliver_events();
        vf_buf_done(&v->events); /* what happened before the view is not its business */
        v->objects = describe_objects(conn);
        return v;
}

void th_libvirt_view_assert_untouched(th_libvirt_view *v) {
        deliver_events();
        _cleanup_free_ char *events = vf_buf_steal(&v->events), *now = describe_objects(v->conn);
        if (events && events[0])
                fail_msg("libvirt sent events where nothing was to change:\n%s", events);
        if (strcmp(now, v->objects) != 0)
                fail_msg("libvirt's objects changed where nothing was to change; before:\n%s\nafter:\n%s", v->objects,
                         now);
}

void th_libvirt_view_free(th_libvirt_view *v) {
        if (!v)
                return;
        virConnectDomainEventDeregisterAny(v->conn, v->domain_callback);
        virConnectNetworkEventDeregisterAny(v->conn, v->network_callback);
        vf_buf_done(&v->events);
        free(v->objects);
        free(v);
}

struct th_lifecycle {
        pthread_mutex_t lock;
        char **lines; /* "NAME EVENT", in delivery order */
        int callback;
        virConnectPtr conn;
        char *domain_type; /* of the barrier's throwaway domain */
        unsigned barriers;
};

static const char *const lifecycle_names[] = { "Defined", "Undefined", "Started", "Suspended", "Resumed",
                                               "Stopped", "Shutdown", "PMSuspended", "Crashed" };

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        th_lifecycle *l = opaque;
        const char *what = event >= 0 && (size_t) event < ELEMENTSOF(lifecycle_names) ? lifecycle_names[event] : "?";

        pthread_mutex_lock(&l->lock);
        if (vf_strv_consume(&l->lines, vf_printf("%s %s", virDomainGetName(dom), what)) < 0)
                abort(); /* not an assertion: this is libvirt's thread */
        pthread_mutex_unlock(&l->lock);
        return 0;
}

/* libvirt calls it once no callback can run any more: only then is the log freed. */
static void lifecycle_free(void *opaque) {
        th_lifecycle *l = opaque;

        vf_strv_free(l->lines);
        free(l->domain_type);
        pthread_mutex_destroy(&l->lock);
        free(l);
}

th_lifecycle *th_lifecycle_new(virConnectPtr conn, const char *domain_type) {
        th_lifecycle *l = calloc(1, sizeof *l);

        assert_non_null(l);
        pthread_mutex_init(&l->lock, NULL);
        l->conn = conn;
        l->domain_type = strdup(domain_type);
        l->callback = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                       VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), l, lifecycle_free);
        assert_true(l->callback >= 0);
        th_lifecycle_barrier(l, true);
        return l;
}

bool th_lifecycle_logged(th_lifecycle *l, const char *line) {
        pthread_mutex_lock(&l->lock);
        bool found = vf_strv_contains(l->lines, line);
        pthread_mutex_unlock(&l->lock);
        return found;
}

/* Events arrive in order on libvirt's thread: once one caused now is delivered, every earlier one is. */
void th_lifecycle_barrier(th_lifecycle *l, bool forget) {
        _cleanup_free_ char *name = vf_printf("th-barrier-%d-%u", (int) getpid(), ++l->barriers),
                            *line = vf_printf("%s Undefined", name);
        _cleanup_free_ char *xml = vf_printf("<domain type='%s'><name>%s</name><memory>65536</memory>"
                                             "<os><type arch='x86_64'>hvm</type></os></domain>",
                                             l->domain_type, name);
        int64_t deadline = vf_now_monotonic_usec() + 60 * 1000000LL;
        virDomainPtr d = virDomainDefineXML(l->conn, xml);

        assert_non_null(d);
        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        while (!th_lifecycle_logged(l, line)) {
                if (vf_now_monotonic_usec() > deadline)
                        fail_msg("timed out waiting for libvirt to deliver \"%s\"", line);
                usleep(10 * 1000); /* polling the condition, not waiting for a time */
        }
        if (!forget)
                return;
        pthread_mutex_lock(&l->lock);
        vf_strv_free(TAKE_PTR(l->lines));
        pthread_mutex_unlock(&l->lock);
}

void th_lifecycle_assert_none(th_lifecycle *l, const char *domain, const char *const *events) {
        th_lifecycle_barrier(l, false);
        for (size_t i = 0; events[i]; i++) {
                _cleanup_free_ char *line = vf_printf("%s %s", domain, events[i]);
                if (th_lifecycle_logged(l, line))
                        fail_msg("libvirt reported \"%s\", which virtform should not have caused", line);
        }
}

void th_lifecycle_free(th_lifecycle *l) {
        if (l)
                assert_int_equal(virConnectDomainEventDeregisterAny(l->conn, l->callback), 0);
}

void th_reset_test_driver(void) {
        virConnectPtr conn = th_connect();
        virDomainPtr *doms = NULL;
        virNetworkPtr *nets = NULL;
        int n = virConnectListAllDomains(conn, &doms, 0);

        for (int i = 0; i < n; i++) {
                if (strcmp(virDomainGetName(doms[i]), "test") != 0) {
                        if (virDomainIsActive(doms[i]) == 1)
                                virDomainDestroy(doms[i]);
                        virDomainUndefine(doms[i]);
                }
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
        th_child c = { .dir = th_mkdtemp() };
        _cleanup_free_ char *out = vf_printf("%s/out", c.dir), *err = vf_printf("%s/err", c.dir);
        _cleanup_strv_free_ char **env = child_environment(extra_env);
        posix_spawn_file_actions_t fa;

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

th_run th_spawn_wait(th_child *c) {
        int status;
        th_run r = {};

        assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
        r.killed = WIFSIGNALED(status);
        r.status = r.killed ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        r.out = th_child_stdout(c);
        r.err = th_child_stderr(c);
        th_rmtree(c->dir);
        free(c->dir);
        *c = (th_child) {};
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
