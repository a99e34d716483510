/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration tests of one convergence pass against libvirt's real test
 * driver (test:///default, in-process), with real state files in temp dirs.
 * A second connection plays the operator who changes things behind our back.
 */
#include <libxml/parser.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "controller/graph.h"
#include "controller/output.h"
#include "tests/env.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <libvirt/virterror.h>

#define NETWORK_LAN                                                                                    \
        "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec:\n  forward: nat\n"       \
        "  bridge: virbr10\n  ipv4: {address: 192.168.110.1/24, dhcp: {start: 192.168.110.100, end: " \
        "192.168.110.199}}\n  autostart: true\n"

#define DOMAIN_WEB(memory, extra)                                                                           \
        "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web1}\nspec:\n  memory: " memory "\n"      \
        "  vcpus: 2\n  autostart: true\n  disks: [{file: /var/lib/libvirt/images/web1.qcow2}]\n" \
        "  interfaces: [{network: lan}]\n" extra

static int setup(void **state) {
        *state = th_env_new();
        return 0;
}

static int teardown(void **state) {
        th_env_free(*state);
        return 0;
}

static state_record *record(th_env *f, vf_kind kind, const char *name) {
        state_record *rec = NULL;
        assert_int_equal(state_get(f->c.store, vf_kind_to_string(kind), name, &rec), 0);
        return rec;
}

/* The state file as a connection of the test's own sees it: what others committed, and its files on disk. */
typedef struct state_file_view {
        sqlite3 *db;
        int64_t data_version;
        struct stat files[2];
} state_file_view;

static int64_t data_version(sqlite3 *db) {
        sqlite3_stmt *st = NULL;

        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int64_t v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* The file and its -wal: a commit appends to the -wal, a checkpoint writes the file. */
static void stat_state_files(const char *path, struct stat files[2]) {
        _cleanup_free_ char *wal = vf_printf("%s-wal", path);

        assert_non_null(wal);
        assert_int_equal(stat(path, &files[0]), 0);
        assert_int_equal(stat(wal, &files[1]), 0);
}

static void state_file_view_open(state_file_view *v, const char *path) {
        assert_int_equal(sqlite3_open_v2(path, &v->db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        v->data_version = data_version(v->db);
        stat_state_files(path, v->files);
}

static void state_file_view_assert_untouched(state_file_view *v, const char *path) {
        struct stat now[2];

        assert_int_equal(data_version(v->db), v->data_version);
        stat_state_files(path, now);
        for (size_t i = 0; i < ELEMENTSOF(now); i++) {
                assert_int_equal(now[i].st_size, v->files[i].st_size);
                assert_int_equal(now[i].st_mtim.tv_sec, v->files[i].st_mtim.tv_sec);
                assert_int_equal(now[i].st_mtim.tv_nsec, v->files[i].st_mtim.tv_nsec);
        }
        assert_int_equal(sqlite3_close(v->db), SQLITE_OK);
}

/*
 * A pass that must change nothing: libvirt, watched through the test's own
 * connection, sees no object change and sends no event, whatever virtform's
 * own counters say.
 */
static void pass_changing_nothing(th_env *f) {
        _cleanup_(th_libvirt_view_freep) th_libvirt_view *view = th_libvirt_view_new(f->other, "test");
        th_env_pass(f);
        th_libvirt_view_assert_untouched(view);
        assert_int_equal(th_env_writes(f), 0);
}

/* A pass that must change nothing, not even the state file: what it records says what the file says. */
static void pass_writing_nothing(th_env *f) {
        state_file_view state = {};

        state_file_view_open(&state, f->state);
        pass_changing_nothing(f);
        state_file_view_assert_untouched(&state, f->state);
}

static void test_create_then_noop(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_CREATED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_CREATED, NULL);
        assert_true(vf_report_converged(&f->report));
        assert_true(th_domain_active(f->other, "web1"));

        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(xml, RC_OWNER_NS));
        assert_non_null(strstr(xml, "<memory unit='KiB'>1048576</memory>"));

        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_DOMAIN, "web1");
        assert_int_equal(rec->generation, 1);
        assert_int_equal(rec->observed_generation, 1);
        assert_non_null(rec->uuid);
        assert_true(state_record_condition(rec, "Ready")->status);

        /* The second pass in the same process: nothing to do; Ready's message goes from what was done to "in sync". */
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_UNCHANGED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
        assert_true(rc_counters_reads(&f->report.counters) > 0);
        _cleanup_(state_record_freep) state_record *settled = record(f, VF_KIND_DOMAIN, "web1");
        assert_string_equal(state_record_condition(settled, "Ready")->message, "in sync");

        /* The third: nothing to record either. */
        pass_writing_nothing(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
}

/* The operator stops web1 behind virtform's back. */
static void destroy_web1(th_env *f) {
        virDomainPtr d = virDomainLookupByName(f->other, "web1");
        assert_non_null(d);
        assert_int_equal(virDomainDestroy(d), 0);
        virDomainFree(d);
}

/* Between the pass's listing and web1's turn, the operator does what the pass was about to: start it, autostart it. */
static void web1_mended_meanwhile(void *userdata, const char *key, size_t index, size_t total) {
        th_env *f = userdata;

        if (strcmp(key, "domain/web1") != 0)
                return;
        virDomainPtr d = virDomainLookupByName(f->other, "web1");
        assert_non_null(d);
        assert_int_equal(virDomainCreate(d), 0);
        assert_int_equal(virDomainSetAutostart(d, 1), 0);
        virDomainFree(d);
}

/*
 * A pass learns every object's state from a few filtered listings, not a call per object; a write is
 * still decided on what libvirt says when it is about to be made. The listing says web1 is stopped and
 * not autostarted; by its turn it runs and is: a start now would fail ("already running"), so the
 * pass must find that and write nothing.
 */
static void test_listing_never_decides_a_write(void **state) {
        th_env *f = *state;
        vf_observer mend = { .begin = web1_mended_meanwhile, .userdata = f };

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        virDomainPtr d = virDomainLookupByName(f->other, "web1");
        assert_non_null(d);
        assert_int_equal(virDomainDestroy(d), 0);
        assert_int_equal(virDomainSetAutostart(d, 0), 0);
        virDomainFree(d);

        f->c.observer = &mend;
        th_env_pass(f);
        f->c.observer = NULL;
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
        assert_null(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.steps);
        assert_int_equal(th_env_writes(f), 0);
        assert_true(th_domain_active(f->other, "web1"));

        /* Not mended, what the listing says is done: a stop, and nothing else, so that no other write reads it again. */
        destroy_web1(f);
        th_env_pass(f);
        assert_int_equal(th_env_writes(f), 1);
        assert_true(th_domain_active(f->other, "web1"));
        assert_true(th_domain_autostart(f->other, "web1"));

        /* Settled, a pass asks libvirt nothing of each object but its definition. */
        th_env_pass(f);
        assert_int_equal(f->report.counters.calls[RC_CALL_GET_XML], 2 + 2); /* lan, web1; the driver's own two */
        assert_int_equal(f->report.counters.calls[RC_CALL_GET_INFO], 0);
}

/* lan and web1 applied, then web1 stopped behind virtform's back. */
static void web1_applied_then_destroyed(th_env *f) {
        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        destroy_web1(f);
}

/* Set, libvirt cannot list domains by their state: a filtered listing fails, a plain one works. */
static bool filtered_domain_listings_fail;
/* Set, the listing of every domain a full pass starts with fails, with an error of libvirt's own. */
static bool domain_statistics_fail;

/* While on, the filters of the filtered domain listings made, in order. */
static struct {
        bool on;
        size_t n;
        unsigned filters[8];
} domain_listings;

static void note_domain_listing(unsigned flags) {
        if (domain_listings.on && domain_listings.n < ELEMENTSOF(domain_listings.filters))
                domain_listings.filters[domain_listings.n] = flags;
        domain_listings.n += domain_listings.on;
}

int virConnectListAllDomains(virConnectPtr conn, virDomainPtr **domains, unsigned int flags) {
        int (*real)(virConnectPtr, virDomainPtr **, unsigned int) = dlsym(RTLD_NEXT, "virConnectListAllDomains");

        /* A flag no libvirt knows: the driver itself refuses, with its own error. */
        if (filtered_domain_listings_fail && flags)
                flags |= 1u << 31;
        if (flags)
                note_domain_listing(flags);
        return real(conn, domains, flags);
}

/*
 * A filtered listing that fails costs speed, not correctness, and is never silent: the pass says so,
 * once, and asks each domain for its state instead, so that web1, stopped behind its back, runs again.
 */
static void test_failed_state_listing_is_logged(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *log = NULL;
        size_t size = 0;

        web1_applied_then_destroyed(f);

        f->c.log = open_memstream(&log, &size);
        assert_non_null(f->c.log);
        filtered_domain_listings_fail = true;
        th_env_pass(f);
        filtered_domain_listings_fail = false;
        assert_int_equal(fclose(TAKE_PTR(f->c.log)), 0);
        assert_true(th_domain_active(f->other, "web1"));
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        assert_non_null(strstr(log, "cannot list the transient domains: "));
        assert_non_null(strstr(log, "unsupported flags"));
        assert_non_null(strstr(log, "; this pass asks each domain for its state instead"));
        assert_int_equal(th_count_in_text(log, "cannot list"), 1);
}

/* Set, libvirt's driver has no domain statistics: virConnectGetAllDomainStats() fails as such a driver's does. */
static bool domain_statistics_unsupported;

int virConnectGetAllDomainStats(virConnectPtr conn, unsigned int stats, virDomainStatsRecordPtr **records,
                                unsigned int flags) {
        int (*real)(virConnectPtr, unsigned int, virDomainStatsRecordPtr **, unsigned int) =
                dlsym(RTLD_NEXT, "virConnectGetAllDomainStats");
        virTypedParameterPtr params = NULL;
        int n = 0;

        if (domain_statistics_fail)
                flags |= 1u << 20; /* no flag of this call's: 1u << 31 is one */
        if (!domain_statistics_unsupported)
                return real(conn, stats, records, flags);
        /* One the test driver does lack, for the error libvirt sets then. */
        assert_int_equal(virNodeGetSEVInfo(conn, &params, &n, 0), -1);
        assert_int_equal(virGetLastErrorCode(), VIR_ERR_NO_SUPPORT);
        return -1;
}

/*
 * A pass that cannot list libvirt's domains decides nothing: it says why and changes nothing, though
 * a file asks for a change. Where the files cannot be used either, it names them, for they are the
 * operator's to mend first; the listing is made while the files load (controller/reads.c).
 */
static void test_unlistable_domains_stop_the_pass(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *typo = vf_printf("%s-typo", f->conf);
        char *typo_paths[] = { typo, NULL };

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        _cleanup_free_ char *before = th_domain_xml(f->other, "web1", true);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", ""));

        domain_statistics_fail = true;
        for (int files_fail = 0; files_fail < 2; files_fail++) {
                _cleanup_free_ char *errmsg = NULL;
                f->c.opts.paths = files_fail ? typo_paths : f->paths;
                vf_report_done(&f->report);
                assert_true(vf_controller_pass(&f->c, &f->report, &errmsg) < 0);
                assert_non_null(errmsg);
                assert_non_null(strstr(errmsg, files_fail ? typo : "cannot list domains: "));
                assert_int_equal(f->report.n_entries, 0);
        }
        domain_statistics_fail = false;
        f->c.opts.paths = f->paths;
        _cleanup_free_ char *after = th_domain_xml(f->other, "web1", true);
        assert_string_equal(after, before);

        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
}

/* Runs a pass, noting the filtered domain listings it makes. */
static void pass_noting_listings(th_env *f, void (*pass)(th_env *f)) {
        domain_listings = (typeof(domain_listings)) { .on = true };
        pass(f);
        domain_listings.on = false;
}

/* The filters of the listings noted: these n, in this order. */
static void assert_listings(size_t n, ...) {
        va_list ap;

        assert_int_equal(domain_listings.n, n);
        va_start(ap, n);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(domain_listings.filters[i], va_arg(ap, unsigned));
        va_end(ap);
}

static void set_domain_active(virConnectPtr conn, const char *name, bool active) {
        virDomainPtr d = virDomainLookupByName(conn, name);

        assert_non_null(d);
        assert_int_equal(active ? virDomainCreate(d) : virDomainDestroy(d), 0);
        virDomainFree(d);
}

/*
 * libvirt filters a domain listing by taking each domain that does not match out of an array, moving
 * every one behind it: asking which of N domains run, when none does, costs about N * N. The pass
 * asks only what its listing of every domain, which says their states, leaves open: never which are
 * active or run, and on a host where none is active, not which are transient either (only an active
 * domain can be); yet it finds a domain started behind its back, and then asks that again.
 */
static void test_listing_asks_only_what_is_open(void **state) {
        th_env *f = *state;

        set_domain_active(f->other, "test", false); /* the driver's own, running */
        th_write(f->conf, "30-s1.yaml", "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: s1}\nspec:\n"
                                        "  memory: 64MiB\n  vcpus: 1\n  state: shutoff\n");
        th_env_pass(f);
        pass_noting_listings(f, pass_changing_nothing);
        assert_int_equal(f->report.counters.calls[RC_CALL_GET_INFO], 0);
        assert_listings(1, VIR_CONNECT_LIST_DOMAINS_AUTOSTART);

        set_domain_active(f->other, "s1", true);
        pass_noting_listings(f, th_env_pass);
        assert_int_equal(th_env_writes(f), 1);
        assert_false(th_domain_active(f->other, "s1"));
        assert_listings(2, VIR_CONNECT_LIST_DOMAINS_TRANSIENT, VIR_CONNECT_LIST_DOMAINS_AUTOSTART);
}

static void set_domain_autostart(virConnectPtr conn, const char *name, bool autostart) {
        virDomainPtr d = virDomainLookupByName(conn, name);

        assert_non_null(d);
        assert_int_equal(virDomainSetAutostart(d, autostart), 0);
        virDomainFree(d);
}

/*
 * Where the domains run, as many are expected to be autostarted: which are is asked the other way round,
 * which are not, the listing that leaves out fewer. Its answer is as whole: autostart turned off behind
 * the pass's back where a file declares it is turned on again, and turned on where none does, off.
 */
static void test_autostart_asked_of_the_fewer(void **state) {
        th_env *f = *state;

        th_write(f->conf, "30-r1.yaml", RUNNING_DOMAIN("r1", "true"));
        th_write(f->conf, "30-r2.yaml", RUNNING_DOMAIN("r2", "false"));
        th_write(f->conf, "30-r3.yaml", RUNNING_DOMAIN("r3", "true"));
        th_env_pass(f);
        assert_true(vf_report_converged(&f->report));
        pass_noting_listings(f, pass_changing_nothing);
        assert_listings(2, VIR_CONNECT_LIST_DOMAINS_TRANSIENT, VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART);

        set_domain_autostart(f->other, "r1", false);
        set_domain_autostart(f->other, "r2", true);
        pass_noting_listings(f, th_env_pass);
        assert_listings(2, VIR_CONNECT_LIST_DOMAINS_TRANSIENT, VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART);
        assert_int_equal(th_env_writes(f), 2);
        assert_true(th_domain_autostart(f->other, "r1"));
        assert_false(th_domain_autostart(f->other, "r2"));
        assert_true(th_domain_autostart(f->other, "r3"));
        pass_changing_nothing(f);
}

/*
 * A driver without domain statistics is listed as before the statistics: every domain, then which are
 * active and which run, by filtered listings; still nothing asked of each, and a domain stopped
 * behind the pass's back runs again.
 */
static void test_driver_without_statistics(void **state) {
        th_env *f = *state;

        web1_applied_then_destroyed(f);
        domain_statistics_unsupported = true;
        pass_noting_listings(f, th_env_pass);
        assert_int_equal(th_env_writes(f), 1);
        assert_true(th_domain_active(f->other, "web1"));
        assert_listings(4, VIR_CONNECT_LIST_DOMAINS_ACTIVE, VIR_CONNECT_LIST_DOMAINS_RUNNING,
                        VIR_CONNECT_LIST_DOMAINS_TRANSIENT, VIR_CONNECT_LIST_DOMAINS_AUTOSTART);

        pass_changing_nothing(f);
        domain_statistics_unsupported = false;
        assert_int_equal(f->report.counters.calls[RC_CALL_GET_INFO], 0);
}

static int web1_state(th_env *f) {
        virDomainPtr d = virDomainLookupByName(f->other, "web1");
        int state = -1, reason;

        assert_non_null(d);
        assert_int_equal(virDomainGetState(d, &state, &reason, 0), 0);
        virDomainFree(d);
        return state;
}

static void suspend_web1(th_env *f) {
        virDomainPtr d = virDomainLookupByName(f->other, "web1");

        assert_non_null(d);
        assert_int_equal(virDomainSuspend(d), 0);
        virDomainFree(d);
}

/*
 * A paused guest is active, but does not run: one a user paused behind virtform's back is resumed,
 * as the start it undoes (the log then resolves a start a killed run left paused as not done), and
 * only when the drift policy corrects.
 */
static void test_paused_outside_is_resumed(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        suspend_web1(f);
        assert_int_equal(web1_state(f), VIR_DOMAIN_PAUSED);

        th_env_pass(f);
        assert_int_equal(web1_state(f), VIR_DOMAIN_RUNNING);
        assert_int_equal(th_env_writes(f), 1);
        const rc_result *res = &th_env_entry(f, VF_KIND_DOMAIN, "web1")->result;
        assert_true(res->ready);
        assert_int_equal(vf_strv_length(res->steps), 1);
        assert_string_equal(res->steps[0], "start");

        /* Under drift: report, a pause is described and left. */
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", "  drift: report\n"));
        th_env_pass(f);
        suspend_web1(f);
        pass_changing_nothing(f);
        res = &th_env_entry(f, VF_KIND_DOMAIN, "web1")->result;
        assert_non_null(res->drifted);
        assert_non_null(strstr(res->drifted, "paused outside virtform"));
        assert_int_equal(web1_state(f), VIR_DOMAIN_PAUSED);
}

static void test_noop_across_restart(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_env_pass(f);
        th_env_close(f);
        pass_writing_nothing(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
}

static void test_update_running_domain_restart_pending(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        _cleanup_free_ char *mac_before = th_domain_xml(f->other, "web1", true);
        char *mac = strstr(mac_before, "<mac address='");
        assert_non_null(mac);
        mac[strlen("<mac address='52:54:00:00:00:00'")] = 0;

        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", ""));
        th_env_pass(f);
        const vf_report_entry *e = th_env_entry(f, VF_KIND_DOMAIN, "web1");
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        assert_non_null(e->result.restart_pending);
        assert_int_equal(f->report.counters.calls[RC_CALL_DEFINE], 1);
        assert_int_equal(f->report.counters.calls[RC_CALL_SHUTDOWN], 0);
        assert_true(th_domain_active(f->other, "web1"));

        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(xml, "<memory unit='KiB'>2097152</memory>"));
        /* The MAC libvirt assigned at first define survives the redefine. */
        assert_non_null(strstr(xml, mac));

        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_DOMAIN, "web1");
        assert_int_equal(rec->generation, 2);
        assert_true(state_record_condition(rec, "RestartPending")->status);

        /* Still pending on the next pass, with nothing written. */
        pass_changing_nothing(f);
        assert_non_null(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.restart_pending);

        /* A typo in the file holds the domain as it is: the pending restart is still said, and when it is fixed. */
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", "  memroy: 1\n"));
        th_env_pass(f);
        assert_string_equal(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.reason, "InvalidFile");
        _cleanup_(state_record_freep) state_record *held = record(f, VF_KIND_DOMAIN, "web1");
        assert_true(state_record_condition(held, "RestartPending")->status);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", ""));
        th_env_pass(f);
        assert_non_null(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.restart_pending);
}

static void test_update_restart_on_change(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", "  restart: on-change\n"));
        th_env_pass(f);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", "  restart: on-change\n"));
        th_env_pass(f);
        const vf_report_entry *e = th_env_entry(f, VF_KIND_DOMAIN, "web1");
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        assert_null(e->result.restart_pending);
        assert_int_equal(f->report.counters.calls[RC_CALL_SHUTDOWN], 1);
        assert_int_equal(f->report.counters.calls[RC_CALL_START], 1);
        assert_true(th_domain_active(f->other, "web1"));
        _cleanup_free_ char *live = th_domain_xml(f->other, "web1", false);
        assert_non_null(strstr(live, "<memory unit='KiB'>2097152</memory>"));
}

#define NETWORK_LAN_AUTOSTART(autostart)                                                                 \
        "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan}\nspec:\n  forward: nat\n"         \
        "  bridge: virbr10\n  ipv4: {address: 192.168.110.1/24}\n  autostart: " autostart "\n"
#define DOMAIN_WEB_AUTOSTART(autostart)                                                                  \
        "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web1}\nspec:\n  memory: 1GiB\n"           \
        "  autostart: " autostart "\n  restart: on-change\n  interfaces: [{network: lan}]\n"

/*
 * autostart is no part of what runs: changing it alone restarts neither a
 * running domain (even with restart: on-change) nor a network domains use,
 * as libvirt's own events say; libvirt's autostart flags follow the files.
 */
static void test_autostart_change_restarts_nothing(void **state) {
        th_env *f = *state;
        static const char *const restarted[] = { "Stopped", "Shutdown", "Started", NULL };

        th_write(f->conf, "10-net.yaml", NETWORK_LAN_AUTOSTART("true"));
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB_AUTOSTART("true"));
        th_env_pass(f);
        assert_true(th_domain_active(f->other, "web1"));

        th_libvirt_view *view = th_libvirt_view_new(f->other, "test");
        th_write(f->conf, "10-net.yaml", NETWORK_LAN_AUTOSTART("false"));
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB_AUTOSTART("false"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        assert_null(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.restart_pending);
        th_libvirt_view_assert_no_event(view, "domain", "web1", restarted);
        th_libvirt_view_assert_no_event(view, "network", "lan", restarted);
        th_libvirt_view_free(view);

        int autostart = -1;
        assert_false(th_domain_autostart(f->other, "web1"));
        virNetworkPtr net = virNetworkLookupByName(f->other, "lan");
        assert_non_null(net);
        assert_int_equal(virNetworkGetAutostart(net, &autostart), 0);
        virNetworkFree(net);
        assert_int_equal(autostart, 0);

        /* Nothing is left pending: the next pass changes nothing. */
        pass_changing_nothing(f);
        assert_null(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.restart_pending);
}

static void test_prune_and_no_prune(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_remove(f->conf, "20-web.yaml");

        f->c.opts.prune = false;
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_KEPT, NULL);
        _cleanup_free_ char *still = th_domain_xml(f->other, "web1", true);
        assert_non_null(still);

        f->c.opts.prune = true;
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_DELETED, NULL);
        _cleanup_free_ char *gone = th_domain_xml(f->other, "web1", true);
        assert_null(gone);
        state_record *rec = NULL;
        assert_int_equal(state_get(f->c.store, "domain", "web1", &rec), -ENOENT);

        /* The driver's own domain and network were never ours: untouched. */
        _cleanup_free_ char *test_domain = th_domain_xml(f->other, "test", true);
        assert_non_null(test_domain);
}

/* A pass over paths that must be refused: an error naming the path, and nothing applied or pruned. */
static void assert_pass_refused(th_env *f, char *path) {
        _cleanup_free_ char *errmsg = NULL;
        char *paths[] = { path, NULL };

        f->c.opts.paths = paths;
        vf_report_done(&f->report);
        assert_int_equal(vf_controller_pass(&f->c, &f->report, &errmsg), -ENOENT);
        assert_non_null(errmsg);
        assert_non_null(strstr(errmsg, path));
        assert_int_equal(f->report.n_entries, 0);
        f->c.opts.paths = f->paths;
}

static void test_missing_path_prunes_nothing(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *typo = vf_printf("%s-typo", f->conf);
        _cleanup_free_ char *file = vf_printf("%s/10-net.yaml", f->conf);
        _cleanup_free_ char *through_file = vf_printf("%s/conf.d", file);

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        _cleanup_free_ char *uuid = th_domain_uuid(f->other, "web1");

        /* A typo, and a path through a regular file (ENOTDIR: root reads past any mode), for apply and plan. */
        for (int dry_run = 0; dry_run < 2; dry_run++) {
                th_env_close(f);
                f->opts.dry_run = dry_run;
                th_env_pass(f);
                assert_pass_refused(f, typo);
                assert_pass_refused(f, through_file);
        }
        f->opts.dry_run = false;
        th_env_close(f);

        _cleanup_free_ char *after = th_domain_uuid(f->other, "web1");
        assert_string_equal(after, uuid);
        assert_true(th_domain_active(f->other, "web1"));
        _cleanup_free_ char *net = th_network_xml(f->other, "lan");
        assert_non_null(net);

        /* The right path again: nothing to do. */
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_UNCHANGED, NULL);

        /* A running daemon goes on without the path, holding what it cannot see declared. */
        char *typo_paths[] = { typo, NULL };
        f->c.opts.daemon = true;
        f->c.opts.paths = typo_paths;
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_KEPT, "PruneHeld");
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_KEPT, "PruneHeld");
        _cleanup_free_ char *held = th_domain_uuid(f->other, "web1");
        assert_string_equal(held, uuid);
        f->c.opts.paths = f->paths;
}

static void test_network_not_pulled_from_running_domain(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_remove(f->conf, "10-net.yaml");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_WAITING, NULL);
        assert_string_equal(th_env_entry(f, VF_KIND_NETWORK, "lan")->result.reason, "InUse");
        _cleanup_free_ char *net = th_network_xml(f->other, "lan");
        assert_non_null(net);
        /* The domain still runs on the (undeclared but present) network. */
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
}

/* What `virsh edit` does: web1 redefined with 1 KiB less memory, its other XML (our marker too) kept. */
/* web1 redefined through the test's own connection with its memory (KiB, seven digits) from one size to another. */
static void set_memory_out_of_band(th_env *f, const char *from, const char *to) {
        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        _cleanup_free_ char *was = vf_printf("<memory unit='KiB'>%s</memory>", from);
        char *mem = xml && was ? strstr(xml, was) : NULL;

        assert_non_null(mem);
        assert_int_equal(strlen(from), strlen(to));
        memcpy(mem + strlen("<memory unit='KiB'>"), to, strlen(to));
        virDomainPtr d = virDomainDefineXML(f->other, xml);
        assert_non_null(d);
        virDomainFree(d);
}

static void edit_memory_out_of_band(th_env *f) {
        set_memory_out_of_band(f, "1048576", "1048575");
}

static void test_drift_undefine_and_redefine(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", "  state: shutoff\n"));
        th_env_pass(f);

        /* Out-of-band undefine: recreated. */
        virDomainPtr d = virDomainLookupByName(f->other, "web1");
        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_CREATED, NULL);
        assert_non_null(strstr(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.message, "removed outside virtform"));

        /* Out-of-band redefine with other memory, marker kept (as virsh edit does): put back. */
        edit_memory_out_of_band(f);
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        assert_non_null(strstr(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.message, "drift"));
        _cleanup_free_ char *fixed = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(fixed, "<memory unit='KiB'>1048576</memory>"));

        /* And then it is settled again. */
        pass_changing_nothing(f);
}

/* The state file as a connection of the test's own sees it: one value, NULL when no row has it. */
static char *state_file_text(th_env *f, const char *sql) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        char *text = NULL;

        assert_int_equal(sqlite3_open_v2(f->state, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                text = strdup((const char *) sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        return text;
}

/* A change to the state file made by hand, with the controller closed, as an operator's would be. */
static void state_file_edit(th_env *f, const char *sql) {
        sqlite3 *db = NULL;

        th_env_close(f);
        assert_int_equal(sqlite3_open_v2(f->state, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* web1's baseline is libvirt's document now, kept whole in the state file. */
static void assert_baseline_kept(th_env *f) {
        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        char hash[VF_HASH_HEX_LEN + 1];

        assert_non_null(xml);
        vf_sha256_hex(xml, strlen(xml), hash);
        _cleanup_free_ char *expected = vf_printf("%s:stored", hash);
        _cleanup_free_ char *baseline = state_file_text(
                f, "SELECT applied_xml_hash FROM resources WHERE kind = 'domain' AND name = 'web1'");
        _cleanup_free_ char *kept =
                state_file_text(f, "SELECT xml FROM baselines WHERE kind = 'domain' AND name = 'web1'");
        assert_string_equal(baseline, expected);
        assert_string_equal(kept, xml);
}

/*
 * A pass that finds web1 changed out of band with its baseline's document gone from the state file,
 * or not the one hashed: nothing is redefined on a guess, the operator is told, and what libvirt
 * holds becomes the baseline.
 */
static void log_to_userdata(th_env *f) {
        f->c.log = f->userdata;
}

static void pass_without_baseline_document(th_env *f, const char *said) {
        _cleanup_free_ char *log = NULL;
        size_t size = 0;

        /* The state file was edited with the controller closed: the pass opens a new one. */
        f->userdata = open_memstream(&log, &size);
        assert_non_null(f->userdata);
        f->on_open = log_to_userdata;
        pass_changing_nothing(f);
        f->on_open = NULL;
        f->c.log = NULL;
        assert_int_equal(fclose(TAKE_PTR(f->userdata)), 0);
        assert_non_null(strstr(log, said));
        assert_non_null(strstr(log, "check it with 'virsh dumpxml web1'"));
        assert_baseline_kept(f);
}

/*
 * A define projects nothing: it keeps libvirt's document beside the record, and a pass projects it
 * only once libvirt's document has changed (the drift tests above judge by it). A document lost or
 * edited in the state file costs the drift since, never a redefine.
 */
static void test_define_keeps_baseline_document(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", "  state: shutoff\n"));
        th_env_pass(f);
        assert_baseline_kept(f);
        /* In sync: kept as it is, not projected. */
        pass_changing_nothing(f);
        assert_baseline_kept(f);

        state_file_edit(f, "DELETE FROM baselines");
        edit_memory_out_of_band(f);
        pass_without_baseline_document(f, "web1: the document its drift baseline was taken of is missing");
        _cleanup_free_ char *kept = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(kept, "<memory unit='KiB'>1048575</memory>"));

        state_file_edit(f, "UPDATE baselines SET xml = xml || ' '");
        set_memory_out_of_band(f, "1048575", "1048574");
        pass_without_baseline_document(f, "web1: the document its drift baseline was taken of is not the one recorded");
}

static void undefine_out_of_band(th_env *f, const char *name) {
        virDomainPtr d = virDomainLookupByName(f->other, name);

        assert_non_null(d);
        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        assert_false(th_domain_persistent(f->other, name));
        assert_true(th_domain_active(f->other, name));
}

/* `virsh undefine` of a running domain leaves it transient: defined again, never stopped for it. */
static void test_undefine_of_running_domain(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", "  restart: on-change\n"));
        th_env_pass(f);
        _cleanup_free_ char *uuid = th_domain_uuid(f->other, "web1");
        virDomainPtr d = virDomainLookupByName(f->other, "web1");
        assert_non_null(d);
        unsigned id = virDomainGetID(d);
        virDomainFree(d);

        undefine_out_of_band(f, "web1");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, "Applied");
        assert_true(th_domain_persistent(f->other, "web1"));
        assert_true(th_domain_active(f->other, "web1"));
        _cleanup_free_ char *after = th_domain_uuid(f->other, "web1");
        assert_string_equal(after, uuid);
        /* The same running instance: a restart would have given it a new ID. */
        d = virDomainLookupByName(f->other, "web1");
        assert_non_null(d);
        assert_int_equal(virDomainGetID(d), id);
        virDomainFree(d);
        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(xml, RC_OWNER_NS));

        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, "Applied");

        /* drift: report leaves it transient, and says so on every pass. */
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", "  restart: on-change\n  drift: report\n"));
        th_env_pass(f);
        undefine_out_of_band(f, "web1");
        for (int round = 0; round < 2; round++) {
                th_env_pass(f);
                const rc_result *res = &th_env_entry(f, VF_KIND_DOMAIN, "web1")->result;
                assert_non_null(res->drifted);
                assert_non_null(strstr(res->drifted, "undefined outside virtform"));
                assert_false(th_domain_persistent(f->other, "web1"));
                assert_true(th_domain_active(f->other, "web1"));
        }

        /* Back to correct: defined again, still the same running instance. */
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", "  restart: on-change\n"));
        th_env_pass(f);
        assert_null(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.drifted);
        assert_true(th_domain_persistent(f->other, "web1"));
        d = virDomainLookupByName(f->other, "web1");
        assert_non_null(d);
        assert_int_equal(virDomainGetID(d), id);
        virDomainFree(d);
}

static void test_drift_report_leaves_changes(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", "  drift: report\n"));
        th_env_pass(f);

        virDomainPtr d = virDomainLookupByName(f->other, "web1");
        assert_int_equal(virDomainDestroy(d), 0);
        virDomainFree(d);
        pass_changing_nothing(f);
        const rc_result *res = &th_env_entry(f, VF_KIND_DOMAIN, "web1")->result;
        assert_non_null(res->drifted);
        assert_non_null(strstr(res->drifted, "stopped outside virtform"));
        assert_false(th_domain_active(f->other, "web1"));
        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_DOMAIN, "web1");
        assert_true(state_record_condition(rec, "Drifted")->status);

        /* A changed definition is reported, and stays reported: the baseline is still ours. */
        edit_memory_out_of_band(f);
        for (int round = 0; round < 2; round++) {
                pass_changing_nothing(f);
                res = &th_env_entry(f, VF_KIND_DOMAIN, "web1")->result;
                assert_non_null(res->drifted);
                assert_non_null(strstr(res->drifted, "changed outside virtform"));
        }

        /* Back to correct: put back, and the condition goes. */
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        res = &th_env_entry(f, VF_KIND_DOMAIN, "web1")->result;
        assert_null(res->drifted);
        assert_true(th_domain_active(f->other, "web1"));
        _cleanup_free_ char *fixed = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(fixed, "<memory unit='KiB'>1048576</memory>"));
        _cleanup_(state_record_freep) state_record *after = record(f, VF_KIND_DOMAIN, "web1");
        assert_null(state_record_condition(after, "Drifted"));
}

static void test_conflict_and_adoption(void **state) {
        th_env *f = *state;
        const char *foreign = "<domain type='test'><name>web1</name><memory>1048576</memory>"
                              "<os><type>hvm</type></os></domain>";

        virDomainPtr d = virDomainDefineXML(f->other, foreign);
        assert_non_null(d);
        virDomainFree(d);
        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_FAILED, NULL);
        assert_string_equal(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.reason, "Conflict");
        assert_false(vf_report_converged(&f->report));
        _cleanup_free_ char *untouched = th_domain_xml(f->other, "web1", true);
        assert_null(strstr(untouched, RC_OWNER_NS));

        /* Removing the file must not delete what was never ours. */
        th_remove(f->conf, "20-web.yaml");
        th_env_pass(f);
        _cleanup_free_ char *kept = th_domain_xml(f->other, "web1", true);
        assert_non_null(kept);

        th_write(f->conf, "20-web.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web1, adopt: true}\nspec:\n"
                 "  memory: 1GiB\n  state: shutoff\n");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        assert_non_null(strstr(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.message, "adopted"));
        _cleanup_free_ char *adopted = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(adopted, RC_OWNER_NS));
}

/*
 * Set, the next define of a domain or a pool is preceded by a define through
 * the test's own connection: of this XML, or (when it is "") of the very XML
 * virtform defines, as a killed run's define that libvirtd was still making
 * when this run listed, and finished first.
 */
static const char *define_first;
static virConnectPtr define_first_on;

/* What to define first, once: NULL when nothing is set. */
static const char *take_define_first(const char *xml) {
        const char *first = TAKE_PTR(define_first);
        return first && !*first ? xml : first;
}

virDomainPtr virDomainDefineXML(virConnectPtr conn, const char *xml) {
        virDomainPtr (*real)(virConnectPtr, const char *) = dlsym(RTLD_NEXT, "virDomainDefineXML");
        const char *first = take_define_first(xml);
        virDomainPtr made = first ? real(define_first_on, first) : NULL;

        assert_true(!first || made);
        if (made)
                virDomainFree(made);
        return real(conn, xml);
}

virStoragePoolPtr virStoragePoolDefineXML(virConnectPtr conn, const char *xml, unsigned int flags) {
        virStoragePoolPtr (*real)(virConnectPtr, const char *, unsigned int) =
                dlsym(RTLD_NEXT, "virStoragePoolDefineXML");
        const char *first = take_define_first(xml);
        virStoragePoolPtr made = first ? real(define_first_on, first, flags) : NULL;

        assert_true(!first || made);
        if (made)
                virStoragePoolFree(made);
        return real(conn, xml, flags);
}

static void pass_with_define_first(th_env *f, const char *xml) {
        define_first = xml;
        define_first_on = f->other;
        th_env_pass(f);
        assert_null(define_first);
}

/* The killed run's domain is known as ours by its marker: taken as found, not a DefineFailed. */
static void test_define_finished_by_a_killed_run_meanwhile(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        pass_with_define_first(f, "");
        /* This run's define failed: it made web1 autostart and started it, and says no more. */
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, "Applied");
        assert_string_equal(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.message, "autostart on, start");
        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_DOMAIN, "web1");
        assert_true(state_record_condition(rec, "Ready")->status);
        assert_true(vf_report_converged(&f->report));
        assert_true(th_domain_active(f->other, "web1"));
        _cleanup_free_ char *uuid = th_domain_uuid(f->other, "web1");
        assert_string_equal(rec->uuid, uuid);
        th_env_close(f);
        pass_changing_nothing(f);
}

/* Someone else's, made between the listing and the define: a Conflict, and left as it is. */
static void test_foreign_object_made_meanwhile_is_a_conflict(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        pass_with_define_first(f, "<domain type='test'><name>web1</name><memory>1048576</memory>"
                                  "<os><type>hvm</type></os></domain>");
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_FAILED, NULL);
        assert_string_equal(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.reason, "Conflict");
        _cleanup_free_ char *untouched = th_domain_xml(f->other, "web1", true);
        assert_null(strstr(untouched, RC_OWNER_NS));
}

static void test_dependency_waiting(void **state) {
        th_env *f = *state;

        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        const vf_report_entry *e = th_env_entry(f, VF_KIND_DOMAIN, "web1");
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_WAITING, NULL);
        assert_string_equal(e->result.reason, "DependencyNotReady");
        assert_non_null(strstr(e->result.message, "network lan"));
        _cleanup_free_ char *none = th_domain_xml(f->other, "web1", true);
        assert_null(none);

        /* The network appears: the domain follows in the same pass. */
        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_env_pass(f);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_CREATED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_CREATED, NULL);
}

static void test_dependency_on_failed_network(void **state) {
        th_env *f = *state;
        virNetworkPtr n = virNetworkDefineXML(f->other, "<network><name>lan</name></network>");

        assert_non_null(n);
        virNetworkFree(n);
        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_FAILED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_WAITING, NULL);
        assert_non_null(strstr(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.message, "Conflict"));
}

/* A spec that changed while the domain waited on a new dependency is applied once the dependency is there. */
static void test_change_waiting_on_a_dependency_is_applied_later(void **state) {
        th_env *f = *state;
#define WEB "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web1}\nspec:\n  memory: %s\n  interfaces: [{network: %s}]\n"
        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", WEB, "1GiB", "lan");
        th_env_pass(f);
        th_write(f->conf, "20-web.yaml", WEB, "2GiB", "lan2");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_WAITING, "DependencyNotReady");

        th_write(f->conf, "15-lan2.yaml",
                 "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan2}\nspec:\n  bridge: virbr12\n"
                 "  ipv4: {address: 192.168.112.1/24}\n");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(xml, "<memory unit='KiB'>2097152</memory>"));
        assert_non_null(strstr(xml, "network='lan2'"));
#undef WEB
}

static void copy_file(const char *from, const char *to) {
        _cleanup_free_ char *cmd = vf_printf("cp '%s' '%s'", from, to);
        assert_int_equal(system(cmd), 0);
}

/*
 * A run killed after its define but before its record committed: the record says generation 1, the object's
 * marker 2. The next spec must be generation 3, or one number would name two specs.
 */
static void test_generation_never_reused_after_a_lost_commit(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *saved = vf_printf("%s/saved.db", f->dir);

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_env_close(f);
        copy_file(f->state, saved);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", ""));
        th_env_pass(f);
        th_env_close(f);
        copy_file(saved, f->state); /* what the killed run's store held */

        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("3GiB", ""));
        th_env_pass(f);
        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(xml, "<memory unit='KiB'>3145728</memory>"));
        assert_non_null(strstr(xml, "\ngeneration=3\n"));
        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_DOMAIN, "web1");
        assert_int_equal(rec->generation, 3);
}

/* A domain's marker as libvirt keeps it in its inactive definition: the text of the element. */
static char *marker_text(th_env *f, const char *name) {
        virDomainPtr d = virDomainLookupByName(f->other, name);
        assert_non_null(d);
        _cleanup_free_ char *xml = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, RC_OWNER_NS,
                                                        VIR_DOMAIN_AFFECT_CONFIG);
        virDomainFree(d);
        assert_non_null(xml);
        xmlDoc *doc = xmlReadMemory(xml, (int) strlen(xml), NULL, NULL, XML_PARSE_NONET);
        assert_non_null(doc);
        xmlChar *content = xmlNodeGetContent(xmlDocGetRootElement(doc));
        char *text = strdup((const char *) content);
        xmlFree(content);
        xmlFreeDoc(doc);
        assert_non_null(text);
        return text;
}

/* Replaces a domain's element of namespace ns, live and inactive, through the test's connection; NULL removes it. */
static void set_marker(th_env *f, const char *name, const char *ns, const char *xml) {
        virDomainPtr d = virDomainLookupByName(f->other, name);
        assert_non_null(d);
        unsigned flags = VIR_DOMAIN_AFFECT_CONFIG | (virDomainIsActive(d) == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0);
        assert_int_equal(virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml, xml ? "virtform" : NULL, ns, flags),
                         0);
        virDomainFree(d);
}

/* The marker an earlier virtform would have written: the same facts, an attribute each. */
static void mark_in_first_form(th_env *f, const char *name) {
        _cleanup_free_ char *text = marker_text(f, name);
        _cleanup_free_ char *attributes = strdup("");
        char *rest = text, *line;

        while ((line = strsep(&rest, "\n"))) {
                char *eq = strchr(line, '=');
                assert_non_null(eq);
                *eq = '\0';
                char *longer = vf_printf("%s %s='%s'", attributes, line, eq + 1);
                free(attributes);
                attributes = longer;
                assert_non_null(attributes);
        }
        _cleanup_free_ char *xml = vf_printf("<owner%s/>", attributes);
        set_marker(f, name, RC_OWNER_NS_1, xml);
        set_marker(f, name, RC_OWNER_NS, NULL);
}

/*
 * An object marked by an earlier virtform, a fact per attribute, is still ours: a pass neither takes it
 * for someone else's nor redefines it to rewrite its marker. The next change of its spec does.
 */
static void test_marker_of_the_first_form_is_still_ours(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        mark_in_first_form(f, "web1");

        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
        _cleanup_free_ char *kept = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(kept, RC_OWNER_NS_1));
        assert_null(strstr(kept, RC_OWNER_NS));

        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        _cleanup_free_ char *rewritten = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(rewritten, "<memory unit='KiB'>2097152</memory>"));
        assert_non_null(strstr(rewritten, RC_OWNER_NS));
        assert_null(strstr(rewritten, RC_OWNER_NS_1));
}

/*
 * A marker that gives a fact twice is no marker: whose an object is must not hang on which line wins. A
 * domain nothing recorded, marked as this store's and another's, is someone else's in either order.
 */
static void test_marker_giving_a_fact_twice_is_someone_elses(void **state) {
        th_env *f = *state;
        static const char other[] = "instance=5a0e7c1e-0d7b-4a51-9c3e-2f4d6b8a9e10";

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_env_pass(f);
        _cleanup_free_ char *ours = vf_printf("instance=%s", state_instance_id(f->c.store));
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));

        for (unsigned ours_first = 0; ours_first < 2; ours_first++) {
                _cleanup_free_ char *xml = vf_printf(
                        "<domain type='test'><name>web1</name><memory>524288</memory><os><type>hvm</type></os>"
                        "<metadata><virtform:owner xmlns:virtform='" RC_OWNER_NS "'>%s\n%s\nresource=domain/web1\n"
                        "generation=1\nhash=0123abcd</virtform:owner></metadata></domain>",
                        ours_first ? ours : other, ours_first ? other : ours);
                virDomainPtr d = virDomainDefineXML(f->other, xml);
                assert_non_null(d);
                th_env_pass(f);
                assert_string_equal(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.reason, "Conflict");
                _cleanup_free_ char *untouched = th_domain_xml(f->other, "web1", true);
                assert_non_null(strstr(untouched, "<memory unit='KiB'>524288</memory>"));
                assert_int_equal(virDomainUndefine(d), 0);
                virDomainFree(d);
        }
}

static void test_bad_file_changes_nothing(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);

        /* web1's file breaks; another file gains a resource. */
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("4GiB", "  memroy: 1\n"));
        th_write(f->conf, "30-other.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: other}\nspec:\n  memory: 256MiB\n");
        th_env_pass(f);
        assert_true(f->report.n_file_errors > 0);
        assert_false(vf_report_converged(&f->report));
        th_env_assert(f, VF_KIND_DOMAIN, "other", RC_CREATED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_FAILED, NULL);
        assert_string_equal(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.reason, "InvalidFile");
        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(xml, "<memory unit='KiB'>1048576</memory>"));
        assert_true(th_domain_active(f->other, "web1"));
}

static void test_plan_changes_nothing(void **state) {
        th_env *f = *state;
        struct stat before, after;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_env_close(f);
        assert_int_equal(stat(f->state, &before), 0);

        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", ""));
        th_write(f->conf, "30-other.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: other}\nspec:\n  memory: 256MiB\n");
        f->opts.dry_run = true;
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "other", RC_CREATED, NULL);
        assert_true(th_env_entry(f, VF_KIND_DOMAIN, "web1")->result.config_changed);
        _cleanup_free_ char *none = th_domain_xml(f->other, "other", true);
        assert_null(none);
        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        assert_non_null(strstr(xml, "<memory unit='KiB'>1048576</memory>"));
        assert_int_equal(stat(f->state, &after), 0);
        assert_int_equal(before.st_mtime, after.st_mtime);
        assert_int_equal(before.st_size, after.st_size);

        /* What plan said is what apply does. */
        th_env_close(f);
        f->opts.dry_run = false;
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "other", RC_CREATED, NULL);
}

/* What `virtform plan` prints, from a plan pass in a controller of its own; the caller frees it. */
static char *plan_text(th_env *f) {
        char *text = NULL;
        size_t size = 0;

        th_env_close(f);
        f->opts.dry_run = true;
        pass_changing_nothing(f);
        FILE *out = open_memstream(&text, &size);
        assert_non_null(out);
        output_plan(out, &f->report);
        assert_int_equal(fclose(out), 0);
        th_env_close(f);
        f->opts.dry_run = false;
        return text;
}

#define DOMAIN_APP(nics)                                                                                \
        "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: app}\nspec:\n  memory: 256MiB\n"           \
        "  interfaces: [" nics "]\n"

#define NETWORK_ISOLATED "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: iso}\nspec: {bridge: virbr12}\n"

/*
 * A change shows as a unified diff of what was asked for, projected as drift
 * is: libvirt's additions (controllers, addresses) and its order are no change.
 */
static void test_plan_diff_of_a_change(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        _cleanup_free_ char *uuid = th_domain_uuid(f->other, "web1");
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("2GiB", ""));
        _cleanup_free_ char *text = plan_text(f);
        _cleanup_free_ char *expected = vf_printf(
                "~ update domain/web1 (%s/20-web.yaml) [RestartPending: the new definition takes effect at the "
                "next restart of the domain; set spec.restart: on-change to restart automatically]\n"
                "    steps: define\n"
                "    @@ -1,7 +1,7 @@ /domain/memory\n"
                "     <domain type=\"test\">\n"
                "       <name>web1</name>\n"
                "       <uuid>%s</uuid>\n"
                "    -  <memory unit=\"KiB\">1048576</memory>\n"
                "    +  <memory unit=\"KiB\">2097152</memory>\n"
                "       <vcpu>2</vcpu>\n"
                "       <os>\n"
                "         <type>hvm</type>\n"
                "plan: 2 resources:",
                f->conf, uuid);
        if (!strstr(text, expected))
                fail_msg("expected\n%s\nin\n%s", expected, text);

        /* Two lines of the second interface: the hunk names the element that holds both. */
        th_write(f->conf, "30-app.yaml", DOMAIN_APP("{network: lan}, {network: lan}"));
        th_env_pass(f);
        th_write(f->conf, "30-app.yaml", DOMAIN_APP("{network: lan}, {bridge: br0, model: e1000e}"));
        _cleanup_free_ char *two = plan_text(f);
        const char *hunk = strstr(two, "    @@ -12,10 +12,10 @@ /domain/devices/interface[2]\n");
        if (!hunk)
                fail_msg("no hunk for the second interface in\n%s", two);
        assert_non_null(strstr(hunk, "    -    <interface type=\"network\">\n    +    <interface type=\"bridge\">\n"));
        assert_non_null(strstr(hunk, "    -      <source/>\n    -      <model type=\"virtio\"/>\n"
                                     "    +      <source bridge=\"br0\"/>\n    +      <model type=\"e1000e\"/>\n"
                                     "         </interface>\n       </devices>\n     </domain>\n= unchanged domain/web1"));

        /* Lines of both interfaces: their parent, a whole element (interface[1] and [2] share no more). */
        th_write(f->conf, "30-app.yaml", DOMAIN_APP("{network: lan, model: e1000e}, {network: lan, model: e1000e}"));
        _cleanup_free_ char *both = plan_text(f);
        if (!strstr(both, "    @@ -10,12 +10,12 @@ /domain/devices\n"))
                fail_msg("no hunk for both interfaces in\n%s", both);
}

/* Moves the first <interface> of a domain's XML before its first <disk>: an order libvirt may write devices in. */
static void move_interface_first(char *xml) {
        char *disk = strstr(xml, "<disk "), *iface = strstr(xml, "<interface "),
             *end = iface ? strstr(iface, "</interface>") : NULL;

        assert_true(disk && iface && end && disk < iface);
        size_t n = (size_t) (end + strlen("</interface>") - iface);
        _cleanup_free_ char *block = strndup(iface, n);
        memmove(disk + n, disk, (size_t) (iface - disk));
        memcpy(disk, block, n);
}

/* A drift shows as what apply corrects; devices written in another order are no change. */
static void test_plan_diff_of_drift(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        _cleanup_free_ char *xml = th_domain_xml(f->other, "web1", true);
        char *mem = xml ? strstr(xml, "<memory unit='KiB'>1048576</memory>") : NULL;
        assert_non_null(mem);
        memcpy(mem, "<memory unit='KiB'>1048575</memory>", strlen("<memory unit='KiB'>1048576</memory>"));
        move_interface_first(xml);
        virDomainPtr d = virDomainDefineXML(f->other, xml);
        assert_non_null(d);
        virDomainFree(d);

        _cleanup_free_ char *text = plan_text(f);
        const char *web1 = strstr(text, "~ update domain/web1");
        if (!web1 || !strstr(web1, "    @@ -1,7 +1,7 @@ /domain/memory\n") ||
            !strstr(web1, "    -  <memory unit=\"KiB\">1048575</memory>\n    +  <memory unit=\"KiB\">1048576</memory>\n"))
                fail_msg("no diff of the memory in\n%s", text);
        /* One hunk: the interface libvirt now writes first is no change. */
        assert_null(strstr(strstr(web1, "    @@ -") + 1, "    @@ -"));
}

/*
 * A delete shows what goes, as the files declared it, and the steps apply
 * takes: a running domain is asked to shut down, and destroyed at the timeout.
 */
static void test_plan_delete_steps(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "15-iso.yaml", NETWORK_ISOLATED);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        assert_true(th_domain_active(f->other, "web1"));
        th_remove(f->conf, "15-iso.yaml");
        th_remove(f->conf, "20-web.yaml");
        _cleanup_free_ char *text = plan_text(f);
        _cleanup_free_ char *web = vf_printf("- delete domain/web1 (%s/20-web.yaml)\n"
                                             "    steps: shutdown (timeout %u s), destroy if still running, undefine\n"
                                             "    @@ -1,19 +0,0 @@ /domain\n"
                                             "    -<domain>\n"
                                             "    -  <name>web1</name>\n"
                                             "    -  <memory unit=\"KiB\">1048576</memory>\n",
                                             f->conf, f->opts.shutdown_timeout_sec);
        _cleanup_free_ char *iso = vf_printf("- delete network/iso (%s/15-iso.yaml)\n"
                                             "    steps: destroy, undefine\n"
                                             "    @@ -1,4 +0,0 @@ /network\n"
                                             "    -<network>\n"
                                             "    -  <name>iso</name>\n"
                                             "    -  <bridge name=\"virbr12\"/>\n"
                                             "    -</network>\n"
                                             "plan: 3 resources:",
                                             f->conf);
        if (!strstr(text, web) || !strstr(text, iso))
                fail_msg("expected\n%s\nand\n%s\nin\n%s", web, iso, text);
}

/* ---- disks the file leaves to the host ------------------------------------------------- */

#define DISK_VOLUME "vf-apply-disk.qcow2"
#define MISSING_VOLUME "vf-apply-missing.qcow2"
#define GHOST_SEED_VOLUME "vf-ghost.cidata.iso"

/*
 * A native domain whose volume disks name no format, one with a driver and one without, and whose cdrom
 * has no target.
 */
#define DOMAIN_VOLUME_DISK(volume)                                                                            \
        "<domain><name>vm1</name><memory unit='KiB'>131072</memory><os><type>hvm</type></os><devices>"     \
        "<disk type='volume' device='disk'><source pool='default-pool' volume='" volume "'/>"               \
        "<target dev='vda' bus='virtio'/></disk>"                                                             \
        "<disk type='volume' device='disk'><driver name='qemu' cache='none'/>"                                \
        "<source pool='default-pool' volume='" volume "'/><target dev='vdb' bus='virtio'/><readonly/></disk>" \
        "<disk type='file' device='cdrom'><source file='/var/lib/libvirt/images/vm1.iso'/><readonly/></disk>" \
        "</devices></domain>"

/* A volume made behind virtform's back, in the test driver's own pool. */
static void create_default_pool_volume(virConnectPtr conn, const char *name, const char *format) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(conn, "default-pool");
        _cleanup_free_ char *xml = vf_printf("<volume><name>%s</name><capacity>1048576</capacity>"
                                             "<target><format type='%s'/></target></volume>", name, format);
        assert_non_null(pool);
        virStorageVolPtr vol = virStorageVolCreateXML(pool, xml, 0);
        assert_non_null(vol);
        virStorageVolFree(vol);
        virStoragePoolFree(pool);
}

/* The test driver keeps volumes for the life of the process: the tests that make them delete them. */
static int teardown_volumes(void **state) {
        th_env *f = *state;
        virStoragePoolPtr pool = virStoragePoolLookupByName(f->other, "default-pool");
        const char *names[] = { DISK_VOLUME, MISSING_VOLUME, GHOST_SEED_VOLUME };

        for (size_t i = 0; pool && i < ELEMENTSOF(names); i++) {
                virStorageVolPtr vol = virStorageVolLookupByName(pool, names[i]);
                if (vol) {
                        virStorageVolDelete(vol, 0);
                        virStorageVolFree(vol);
                }
        }
        if (pool)
                virStoragePoolFree(pool);
        return teardown(state);
}

/*
 * A qcow2 volume the file gives no format is defined as qcow2, as libvirt
 * reports it, and a cdrom without a target gets one (ide: the test driver
 * names no machine). Neither is drift: not on the next pass, nor when the
 * definition changes out of band in what the file does not say, so that
 * drift is judged on the completed document, read again from the host.
 */
static void test_volume_disk_takes_its_format(void **state) {
        th_env *f = *state;

        create_default_pool_volume(f->other, DISK_VOLUME, "qcow2");
        th_write(f->conf, "20-vm.xml", DOMAIN_VOLUME_DISK(DISK_VOLUME));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_CREATED, NULL);
        _cleanup_free_ char *xml = th_domain_xml(f->other, "vm1", true);
        assert_non_null(strstr(xml, "<disk type='volume'"));
        for (const char *disk = strstr(xml, "<disk type='volume'"); disk; disk = strstr(disk + 1, "<disk type='volume'")) {
                const char *driver = strstr(disk, "<driver"), *format = strstr(disk, "type='qcow2'");
                const char *end = strstr(disk, "</disk>");
                if (!driver || driver > end || !format || format > end)
                        fail_msg("expected a driver of type qcow2 in:\n%s", xml);
                assert_non_null(strstr(disk, "<source pool='default-pool' volume='" DISK_VOLUME "'/>"));
        }
        assert_non_null(strstr(xml, "cache='none'"));
        assert_non_null(strstr(xml, "<target dev='hda' bus='ide'/>"));
        assert_null(strstr(xml, "type='raw'"));

        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_UNCHANGED, NULL);

        /* libvirt's document changes where the file says nothing: the projection is read anew, and agrees. */
        char *at = strstr(xml, "</name>");
        _cleanup_free_ char *described = vf_printf("%.*s<description>noted</description>%s",
                                                   (int) (at - xml + strlen("</name>")), xml, at + strlen("</name>"));
        virDomainPtr dom = virDomainDefineXML(f->other, described);
        assert_non_null(dom);
        virDomainFree(dom);
        th_env_close(f);
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_UNCHANGED, NULL);
        assert_null(th_env_entry(f, VF_KIND_DOMAIN, "vm1")->result.drifted);
}

/* A volume that neither a file nor libvirt has: the domain waits for it, by name, and follows it. */
static void test_volume_disk_waits_for_its_volume(void **state) {
        th_env *f = *state;

        th_write(f->conf, "20-vm.xml", DOMAIN_VOLUME_DISK(MISSING_VOLUME));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_WAITING, "DependencyNotReady");
        const vf_report_entry *e = th_env_entry(f, VF_KIND_DOMAIN, "vm1");
        assert_non_null(strstr(e->result.message, "volume default-pool/" MISSING_VOLUME));
        assert_int_equal(e->result.wait.kind, RC_WAIT_DEPENDENCY);
        assert_string_equal(e->result.wait.target, "volume/default-pool/" MISSING_VOLUME);
        _cleanup_free_ char *none = th_domain_xml(f->other, "vm1", true);
        assert_null(none);
        assert_int_equal(th_env_writes(f), 0);

        create_default_pool_volume(f->other, MISSING_VOLUME, "raw");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_CREATED, NULL);
        _cleanup_free_ char *xml = th_domain_xml(f->other, "vm1", true);
        assert_non_null(strstr(xml, "type='raw'"));
}

/*
 * A seed no file declares has no pool to place its cdrom in, even when a
 * volume of its name lies in some pool: the domain waits for it, undefined.
 */
static void test_undeclared_seed_holds_its_domain(void **state) {
        th_env *f = *state;

        create_default_pool_volume(f->other, GHOST_SEED_VOLUME, "raw");
        th_write(f->conf, "30-vm.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: vm1}\nspec:\n  memory: 128MiB\n"
                 "  disks: [{cloudInit: vf-ghost}]\n");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_WAITING, "DependencyNotReady");
        const rc_result *res = &th_env_entry(f, VF_KIND_DOMAIN, "vm1")->result;
        assert_non_null(strstr(res->message, "cloudinit vf-ghost"));
        assert_int_equal(res->wait.kind, RC_WAIT_DEPENDENCY);
        assert_string_equal(res->wait.target, "cloudinit/vf-ghost");
        _cleanup_free_ char *none = th_domain_xml(f->other, "vm1", true);
        assert_null(none);
        assert_int_equal(th_env_writes(f), 0);
}

/*
 * A custom test-driver node: a host that already has objects of the same
 * names, none of them ours. Each connection to it is a fresh hypervisor.
 */
static void test_custom_node_with_foreign_objects(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *uri = vf_printf("test://%s/node.xml", f->dir);

        th_write(f->dir, "node.xml",
                 "<node>\n"
                 "  <network><name>lan</name><bridge name='virbr10'/></network>\n"
                 "  <domain type='test'><name>web1</name><memory>1048576</memory>"
                 "<os><type>hvm</type></os></domain>\n"
                 "</node>\n");
        f->opts.uri = uri;
        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_FAILED, NULL);
        assert_string_equal(th_env_entry(f, VF_KIND_NETWORK, "lan")->result.reason, "Conflict");
        assert_non_null(strstr(th_env_entry(f, VF_KIND_NETWORK, "lan")->result.message, "adopt"));
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_WAITING, NULL);
        assert_int_equal(th_env_writes(f), 0);

        th_write(f->conf, "10-net.yaml",
                 "apiVersion: virtform/v1\nkind: Network\nmetadata: {name: lan, adopt: true}\nspec:\n"
                 "  forward: nat\n  bridge: virbr10\n  ipv4: {address: 192.168.110.1/24}\n");
        th_write(f->conf, "20-web.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: web1, adopt: true}\nspec:\n"
                 "  memory: 1GiB\n  interfaces: [{network: lan}]\n");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_UPDATED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UPDATED, NULL);
        assert_true(vf_report_converged(&f->report));
        pass_changing_nothing(f);
}

/* ---- storage pools --------------------------------------------------------------- */

#define POOL_IMAGES(path, extra)                                                                       \
        "apiVersion: virtform/v1\nkind: StoragePool\nmetadata: {name: images" extra "}\nspec:\n"       \
        "  type: dir\n  path: %s\n  autostart: true\n", path

#define VOLUME(name, extra)                                                                            \
        "apiVersion: virtform/v1\nkind: Volume\nmetadata: {name: " name "}\nspec:\n  pool: images\n"   \
        "  capacity: 1GiB\n" extra

static virStoragePoolPtr pool_lookup(th_env *f, const char *name) {
        return virStoragePoolLookupByName(f->other, name);
}

static void assert_pool_absent(th_env *f, const char *name) {
        virStoragePoolPtr p = pool_lookup(f, name);
        if (p) {
                virStoragePoolFree(p);
                fail_msg("pool %s is still defined", name);
        }
}

/* The pool as the operator sees it: defined, active, autostart as asked, on the path asked. */
static void assert_pool_running(th_env *f, const char *name, const char *path) {
        virStoragePoolPtr p = pool_lookup(f, name);
        int autostart = -1;

        assert_non_null(p);
        assert_int_equal(virStoragePoolIsActive(p), 1);
        assert_int_equal(virStoragePoolIsPersistent(p), 1);
        assert_int_equal(virStoragePoolGetAutostart(p, &autostart), 0);
        assert_int_equal(autostart, 1);
        _cleanup_free_ char *xml = virStoragePoolGetXMLDesc(p, 0), *want = vf_printf("<path>%s</path>", path);
        assert_non_null(strstr(xml, want));
        virStoragePoolFree(p);
}

static char *pool_uuid(th_env *f, const char *name) {
        virStoragePoolPtr p = pool_lookup(f, name);
        char uuid[VIR_UUID_STRING_BUFLEN];

        assert_non_null(p);
        assert_int_equal(virStoragePoolGetUUIDString(p, uuid), 0);
        virStoragePoolFree(p);
        return strdup(uuid);
}

/* The writes the intent log holds for a resource, in order, "action:outcome" each. */
static char *logged_writes(th_env *f, vf_kind kind, const char *name) {
        state_event *events = NULL;
        size_t n = 0;
        vf_buf b = {};

        assert_int_equal(state_event_list(f->c.store, vf_kind_to_string(kind), name, 0, &events, &n), 0);
        for (size_t i = 0; i < n; i++)
                vf_buf_printf(&b, "%s%s:%s", i ? ", " : "", events[i].action, events[i].outcome);
        state_event_list_free(events, n);
        char *joined = vf_buf_steal(&b);
        return joined ? joined : strdup("");
}

/*
 * Writes a killed run may have left in flight inside libvirtd: set, the next of each is made first
 * through the test's own connection, so that virtform's own is refused ("already running", no such
 * network) with its goal in place all the same. (The test driver destroys a network that is not
 * active without a word; test-libvirtd makes a destroy refused.)
 */
static struct {
        virConnectPtr on;
        bool domain_start, network_undefine;
} made_first;

/* libvirt's write call, made first through made_first.on when flag is set. */
#define MADE_FIRST(Kind, call, flag)                                                                \
        int vir##Kind##call(vir##Kind##Ptr obj) {                                                   \
                int (*real)(vir##Kind##Ptr) = dlsym(RTLD_NEXT, "vir" #Kind #call);                  \
                if (TAKE_PTR(made_first.flag)) {                                                    \
                        vir##Kind##Ptr o = vir##Kind##LookupByName(made_first.on, vir##Kind##GetName(obj)); \
                        assert_int_equal(real(o), 0);                                               \
                        vir##Kind##Free(o);                                                         \
                }                                                                                   \
                return real(obj);                                                                   \
        }

MADE_FIRST(Domain, Create, domain_start)
MADE_FIRST(Network, Undefine, network_undefine)

/* The message of the resource's last logged write. */
static char *last_logged_message(th_env *f, vf_kind kind, const char *name) {
        state_event *events = NULL;
        size_t n = 0;

        assert_int_equal(state_event_list(f->c.store, vf_kind_to_string(kind), name, 0, &events, &n), 0);
        assert_true(n > 0);
        char *message = strdup(events[n - 1].message ? events[n - 1].message : "");
        state_event_list_free(events, n);
        return message;
}

/*
 * A write refused because its goal was met meanwhile, by a killed run's write still in flight inside
 * libvirtd or a guest that stopped by itself, fails nothing: the log keeps libvirt's refusal, and the
 * pass goes on to the end, Ready, without a second run.
 */
static void test_write_made_meanwhile_is_found_done(void **state) {
        th_env *f = *state;

        web1_applied_then_destroyed(f);

        made_first.on = f->other;
        made_first.domain_start = true;
        th_env_pass(f);
        assert_false(made_first.domain_start);
        assert_true(vf_report_converged(&f->report));
        assert_true(th_domain_active(f->other, "web1"));
        _cleanup_free_ char *writes = logged_writes(f, VF_KIND_DOMAIN, "web1");
        assert_string_equal(writes, "define:ok, autostart on:ok, start:ok, start:failed");
        _cleanup_free_ char *start = last_logged_message(f, VF_KIND_DOMAIN, "web1");
        assert_non_null(strstr(start, "already running; found done already"));

        /* Pruned, lan is undefined by the other connection first. */
        th_remove(f->conf, "20-web.yaml");
        th_env_pass(f);
        th_remove(f->conf, "10-net.yaml");
        made_first.network_undefine = true;
        th_env_pass(f);
        assert_false(made_first.network_undefine);
        th_env_assert(f, VF_KIND_NETWORK, "lan", RC_DELETED, NULL);
        assert_true(vf_report_converged(&f->report));
        virNetworkPtr gone = virNetworkLookupByName(f->other, "lan");
        assert_null(gone);
        _cleanup_free_ char *net_writes = logged_writes(f, VF_KIND_NETWORK, "lan");
        assert_string_equal(net_writes, "define:ok, autostart on:ok, start:ok, destroy:ok, undefine:failed");
        _cleanup_free_ char *undefine = last_logged_message(f, VF_KIND_NETWORK, "lan");
        assert_non_null(strstr(undefine, "; found done already"));
}

static void test_pool_defined_built_started(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir);

        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_CREATED, "Applied");
        assert_true(vf_report_converged(&f->report));
        assert_pool_running(f, "images", path);
        /* Its target was missing: built before it started. */
        _cleanup_free_ char *writes = logged_writes(f, VF_KIND_POOL, "images");
        assert_string_equal(writes, "define:ok, autostart on:ok, build:ok, start:ok");

        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_POOL, "images");
        _cleanup_free_ char *uuid = pool_uuid(f, "images");
        assert_string_equal(rec->uuid, uuid);
        assert_true(state_record_condition(rec, "Ready")->status);

        /* Nothing to do, in the same process and in the next one. */
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_UNCHANGED, "Applied");
        th_env_close(f);
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_UNCHANGED, "Applied");

        /* Stopped and undefined behind virtform's back: a recorded pool is defined and started again. */
        virStoragePoolPtr p = pool_lookup(f, "images");
        assert_int_equal(virStoragePoolDestroy(p), 0);
        assert_int_equal(virStoragePoolUndefine(p), 0);
        virStoragePoolFree(p);
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_CREATED, "Applied");
        assert_non_null(strstr(th_env_entry(f, VF_KIND_POOL, "images")->result.message, "recreated"));
        assert_pool_running(f, "images", path);
}

/*
 * A record of before state schema 9 names the declaration it applied by no hash. The pool it made is
 * judged by the document the record kept, not defined again, and the record takes the hash; a kept
 * document that says something else is a change.
 */
static void test_pool_recorded_before_its_hash(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir);
        const char *hash_sql = "SELECT applied_desired_hash FROM resources WHERE kind = 'pool'";

        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_CREATED, "Applied");
        _cleanup_free_ char *hash = state_file_text(f, hash_sql);
        assert_non_null(hash);

        /* Of another spec than the file's, the record is not settled by libvirt's document alone. */
        state_file_edit(f, "UPDATE resources SET applied_desired_hash = NULL, desired_hash = 'another' "
                           "WHERE kind = 'pool'");
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_UNCHANGED, "Applied");
        _cleanup_free_ char *taken = state_file_text(f, hash_sql);
        assert_string_equal(taken, hash);

        state_file_edit(f, "UPDATE resources SET applied_desired_hash = NULL, desired_hash = 'another', "
                           "applied_desired_xml = replace(applied_desired_xml, '</pool>', '<!-- another --></pool>') "
                           "WHERE kind = 'pool'");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_UPDATED, "Applied");
        assert_int_equal(f->report.counters.calls[RC_CALL_DEFINE], 1);
        assert_true(vf_report_converged(&f->report));
        pass_changing_nothing(f);
}

/* Pruned: stopped and undefined, and its directory and the files in it stay. */
static void test_pool_pruned_keeps_its_directory(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir), *kept = vf_printf("%s/kept.qcow2", path);

        assert_int_equal(mkdir(path, 0755), 0);
        th_write(path, "kept.qcow2", "data");
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_CREATED, "Applied");
        assert_int_equal(f->report.counters.calls[RC_CALL_BUILD], 0); /* the directory was there */
        assert_pool_running(f, "images", path);

        th_remove(f->conf, "10-pool.yaml");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_DELETED, "Removed");
        assert_int_equal(f->report.counters.calls[RC_CALL_DESTROY], 1);
        assert_int_equal(f->report.counters.calls[RC_CALL_UNDEFINE], 1);
        assert_int_equal(th_env_writes(f), 2);
        assert_pool_absent(f, "images");
        _cleanup_free_ char *data = th_slurp(kept);
        assert_string_equal(data, "data");
        state_record *rec = NULL;
        assert_int_equal(state_get(f->c.store, "pool", "images", &rec), -ENOENT);
}

/*
 * A pool of that name that this state did not make is someone else's, left as it is, until the file
 * adopts it: then it is defined as declared, keeping its UUID, and started.
 */
static void test_pool_conflict_and_adoption(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir), *theirs = vf_printf("%s/theirs", f->dir);
        _cleanup_free_ char *xml = vf_printf("<pool type='dir'><name>images</name><target><path>%s</path></target>"
                                             "</pool>",
                                             theirs);
        virStoragePoolPtr p = virStoragePoolDefineXML(f->other, xml, 0);

        assert_non_null(p);
        virStoragePoolFree(p);
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_FAILED, "Conflict");
        assert_non_null(strstr(th_env_entry(f, VF_KIND_POOL, "images")->result.message, "adopt"));

        _cleanup_free_ char *uuid = pool_uuid(f, "images");
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ", adopt: true"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_UPDATED, "Applied");
        assert_non_null(strstr(th_env_entry(f, VF_KIND_POOL, "images")->result.message, "adopted"));
        assert_pool_running(f, "images", path);
        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_POOL, "images");
        assert_string_equal(rec->uuid, uuid);
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_UNCHANGED, "Applied");
}

/* The directory of the pool images, made. */
static char *images_dir(th_env *f) {
        char *path = vf_printf("%s/images", f->dir);
        assert_int_equal(mkdir(path, 0755), 0);
        return path;
}

/* Someone else's define of the pool images, through the test's own connection. */
static void define_images_elsewhere(th_env *f, const char *path) {
        _cleanup_free_ char *xml = vf_printf("<pool type='dir'><name>images</name><target><path>%s</path></target>"
                                             "</pool>",
                                             path);
        virStoragePoolPtr p = virStoragePoolDefineXML(f->other, xml, 0);

        assert_non_null(p);
        virStoragePoolFree(p);
}

/* The open intent a run killed in the middle of its define of the pool images leaves. */
static void intend_images_define(th_env *f) {
        int64_t intent;

        th_env_pass(f); /* opens the store */
        assert_int_equal(state_intent_begin(f->c.store, "pool", "images", 1, "define", &intent), 0);
}

/* The pool images taken as this store's: running as declared, the very pool (was, if known) recorded. */
static void assert_images_ours(th_env *f, const char *path, const char *was) {
        _cleanup_free_ char *uuid = pool_uuid(f, "images");
        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_POOL, "images");

        th_env_assert(f, VF_KIND_POOL, "images", RC_UPDATED, "Applied");
        assert_pool_running(f, "images", path);
        if (was)
                assert_string_equal(uuid, was);
        assert_string_equal(rec->uuid, uuid);
}

/*
 * A run killed after it defined a pool and before its record was committed left no record, and a
 * pool has no marker: the intent log says the define was this store's, so it is ours, not a Conflict.
 */
static void test_pool_defined_by_a_killed_run_is_ours(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = images_dir(f);

        intend_images_define(f);
        define_images_elsewhere(f, path);
        _cleanup_free_ char *uuid = pool_uuid(f, "images");
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_env_pass(f);
        assert_images_ours(f, path, uuid);
}

/*
 * The killed run's pool define was still being made when this run listed, and finished first: this
 * run's define fails, and the pool, unmarked, is known by the killed run's open intent, not taken for
 * someone else's (a Conflict) because this run's own failed define is now the newest in the log.
 */
static void test_pool_defined_meanwhile_by_a_killed_run_is_ours(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = images_dir(f);

        intend_images_define(f);
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        pass_with_define_first(f, "");
        assert_images_ours(f, path, NULL);
}

/*
 * Our pool removed out of band, then its file: the record is forgotten without an undefine of ours.
 * Someone else's pool of that name, declared again later, is theirs: a Conflict, left as it is, not
 * taken for one a killed run defined because this store's log once defined that name.
 */
static void test_pool_of_a_forgotten_name_is_someone_elses(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = images_dir(f);

        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_CREATED, "Applied");
        virStoragePoolPtr p = virStoragePoolLookupByName(f->other, "images");
        assert_non_null(p);
        assert_int_equal(virStoragePoolDestroy(p), 0);
        assert_int_equal(virStoragePoolUndefine(p), 0);
        virStoragePoolFree(p);
        th_remove(f->conf, "10-pool.yaml");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_DELETED, "Removed");

        define_images_elsewhere(f, path);
        _cleanup_free_ char *theirs = pool_uuid(f, "images");
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_FAILED, "Conflict");
        p = virStoragePoolLookupByName(f->other, "images");
        assert_non_null(p);
        assert_int_equal(virStoragePoolIsActive(p), 0); /* not started, not made autostart: left as it is */
        virStoragePoolFree(p);
        _cleanup_free_ char *still = pool_uuid(f, "images");
        assert_string_equal(still, theirs);
}

/* A pool that still holds a volume virtform manages waits for it, and goes once the volume is gone. */
static void test_pool_with_recorded_volume_is_in_use(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir);

        assert_int_equal(mkdir(path, 0755), 0);
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_write(f->conf, "20-disk.yaml", VOLUME("disk.qcow2", ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_CREATED, "Applied");
        _cleanup_(state_record_freep) state_record *volume = record(f, VF_KIND_VOLUME, "images/disk.qcow2");

        th_remove(f->conf, "10-pool.yaml");
        th_env_pass(f);
        const rc_result *res = &th_env_entry(f, VF_KIND_POOL, "images")->result;
        th_env_assert(f, VF_KIND_POOL, "images", RC_WAITING, "InUse");
        assert_non_null(strstr(res->message, "volume/images/disk.qcow2"));
        assert_int_equal(res->wait.kind, RC_WAIT_USER);
        assert_string_equal(res->wait.target, "volume/images/disk.qcow2");
        assert_int_equal(f->report.counters.calls[RC_CALL_DESTROY] + f->report.counters.calls[RC_CALL_UNDEFINE], 0);
        assert_pool_running(f, "images", path);

        th_remove(f->conf, "20-disk.yaml");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_DELETED, "Removed");
        assert_pool_absent(f, "images");
}

static size_t entry_index(th_env *f, vf_kind kind, const char *name) {
        return (size_t) (th_env_entry(f, kind, name) - f->report.entries);
}

/*
 * Within a kind, a volume made from another comes after it, and is removed before it, whatever
 * their names say.
 */
static void test_volumes_ordered_by_their_sources(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir);

        assert_int_equal(mkdir(path, 0755), 0);
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_write(f->conf, "20-base.yaml", VOLUME("base.qcow2", ""));
        th_write(f->conf, "30-clones.yaml",
                 VOLUME("a-clone.qcow2", "  from: {volume: images/base.qcow2}\n") "---\n"
                 VOLUME("z-clone.qcow2", "  from: {volume: images/base.qcow2}\n"));
        th_env_pass(f);
        assert_true(entry_index(f, VF_KIND_VOLUME, "images/base.qcow2") <
                    entry_index(f, VF_KIND_VOLUME, "images/a-clone.qcow2"));
        assert_true(entry_index(f, VF_KIND_VOLUME, "images/a-clone.qcow2") <
                    entry_index(f, VF_KIND_VOLUME, "images/z-clone.qcow2"));

        th_remove(f->conf, "20-base.yaml");
        th_remove(f->conf, "30-clones.yaml");
        th_env_pass(f);
        assert_true(entry_index(f, VF_KIND_VOLUME, "images/a-clone.qcow2") <
                    entry_index(f, VF_KIND_VOLUME, "images/z-clone.qcow2"));
        assert_true(entry_index(f, VF_KIND_VOLUME, "images/z-clone.qcow2") <
                    entry_index(f, VF_KIND_VOLUME, "images/base.qcow2"));
}

/* ---- cloud-init seeds ------------------------------------------------------------- */

#define CLOUDINIT_WEB1(host)                                                                           \
        "apiVersion: virtform/v1\nkind: CloudInit\nmetadata: {name: web1}\nspec:\n  pool: images\n"    \
        "  userData: |\n    #cloud-config\n    packages: [nginx]\n  metaData: {local-hostname: " host "}\n"

static virStorageVolPtr seed_lookup(th_env *f) {
        virStoragePoolPtr p = pool_lookup(f, "images");
        virStorageVolPtr v;

        assert_non_null(p);
        v = virStorageVolLookupByName(p, "web1.cidata.iso");
        virStoragePoolFree(p);
        return v;
}

static bool seed_exists(th_env *f) {
        virStorageVolPtr v = seed_lookup(f);
        if (v)
                virStorageVolFree(v);
        return v;
}

static void declare_pool(th_env *f) {
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir);

        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_POOL, "images", RC_CREATED, "Applied");
}

/* The test driver uploads nothing: the step fails naming the connection, and no empty seed is left. */
static void test_cloudinit_upload_not_supported(void **state) {
        th_env *f = *state;

        declare_pool(f);
        th_write(f->conf, "20-seed.yaml", CLOUDINIT_WEB1("web1"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_CLOUDINIT, "web1", RC_FAILED, "NotSupported");
        const char *message = th_env_entry(f, VF_KIND_CLOUDINIT, "web1")->result.message;
        if (!strstr(message, "upload web1.cidata.iso: the hypervisor test:///default cannot upload volumes"))
                fail_msg("'%s' does not say what the connection cannot do", message);
        _cleanup_free_ char *writes = logged_writes(f, VF_KIND_CLOUDINIT, "web1");
        assert_string_equal(writes, "create-volume:ok, upload:failed, delete-volume:ok");
        assert_false(seed_exists(f));
        _cleanup_(state_record_freep) state_record *rec = record(f, VF_KIND_CLOUDINIT, "web1");
        assert_false(state_record_condition(rec, "Ready")->status);
}

static void create_volume(th_env *f, const char *name, const char *capacity) {
        virStoragePoolPtr p = pool_lookup(f, "images");
        _cleanup_free_ char *xml = vf_printf("<volume><name>%s</name><capacity>%s</capacity>"
                                             "<target><format type='raw'/></target></volume>",
                                             name, capacity);
        virStorageVolPtr v = virStorageVolCreateXML(p, xml, 0);

        assert_non_null(v);
        virStorageVolFree(v);
        virStoragePoolFree(p);
}

/*
 * Our volume deleted out of band, then its file: the record goes with no delete of ours in the log.
 * Someone else's volume made later under that name is theirs, data and all, when it is declared again:
 * a Conflict, not taken for one a killed run half made, which would go whatever the policy.
 */
static void test_volume_of_a_forgotten_name_is_someone_elses(void **state) {
        th_env *f = *state;

        declare_pool(f);
        th_write(f->conf, "20-disk.yaml", VOLUME("disk.qcow2", ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "images/disk.qcow2", RC_CREATED, NULL);
        virStoragePoolPtr p = pool_lookup(f, "images");
        virStorageVolPtr v = p ? virStorageVolLookupByName(p, "disk.qcow2") : NULL;
        assert_non_null(v);
        assert_int_equal(virStorageVolDelete(v, 0), 0);
        virStorageVolFree(v);
        th_remove(f->conf, "20-disk.yaml");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "images/disk.qcow2", RC_DELETED, "Removed");

        create_volume(f, "disk.qcow2", "1048576");
        th_write(f->conf, "20-disk.yaml", VOLUME("disk.qcow2", ""));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "images/disk.qcow2", RC_FAILED, "Conflict");
        virStorageVolInfo info;
        v = virStorageVolLookupByName(p, "disk.qcow2");
        assert_non_null(v);
        assert_int_equal(virStorageVolGetInfo(v, &info), 0);
        assert_int_equal(info.capacity, 1048576); /* theirs, as they made it */
        virStorageVolFree(v);
        virStoragePoolFree(p);
}

/* A volume of the seed's name that this state did not make is left alone, unless the file adopts it. */
static void test_cloudinit_conflict_and_adoption(void **state) {
        th_env *f = *state;

        declare_pool(f);
        create_volume(f, "web1.cidata.iso", "1048576");
        th_write(f->conf, "20-seed.yaml", CLOUDINIT_WEB1("web1"));
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_CLOUDINIT, "web1", RC_FAILED, "Conflict");
        assert_non_null(strstr(th_env_entry(f, VF_KIND_CLOUDINIT, "web1")->result.message, "adopt"));

        /* Adopted: uploaded into as it is, big enough; and, not made by this pass, not deleted when that fails. */
        th_write(f->conf, "20-seed.yaml",
                 "apiVersion: virtform/v1\nkind: CloudInit\nmetadata: {name: web1, adopt: true}\nspec:\n"
                 "  pool: images\n  userData: |\n    #cloud-config\n");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_CLOUDINIT, "web1", RC_FAILED, "NotSupported");
        _cleanup_free_ char *writes = logged_writes(f, VF_KIND_CLOUDINIT, "web1");
        assert_string_equal(writes, "upload:failed");
        assert_true(seed_exists(f));
}

/*
 * A run killed right after it made the seed's volume, before it recorded it, left only its intent in
 * the event log: the next run takes the volume for its own, not for someone else's.
 */
static void test_cloudinit_made_by_a_killed_run(void **state) {
        th_env *f = *state;
        int64_t intent;

        declare_pool(f);
        create_volume(f, "web1.cidata.iso", "1048576");
        assert_int_equal(state_intent_begin(f->c.store, "cloudinit", "web1", 1, "create-volume", &intent), 0);
        th_env_close(f);
        th_write(f->conf, "20-seed.yaml", CLOUDINIT_WEB1("web1"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_CLOUDINIT, "web1", RC_FAILED, "NotSupported");
        assert_int_equal(f->report.counters.calls[RC_CALL_UPLOAD], 1);
        assert_int_equal(th_env_writes(f), 1);
}

/* The SHA-256 of the seed `virtform cloud-init render` writes for a file. */
static void render_hash(th_env *f, const char *yaml, char hash[VF_HASH_HEX_LEN + 1]) {
        _cleanup_free_ char *file = vf_printf("%s/seed.yaml", f->dir), *iso = vf_printf("%s/seed.iso", f->dir);
        const char *argv[] = { getenv("VIRTFORM"), "cloud-init", "render", file, "-o", iso, NULL };
        _cleanup_free_ char *data = NULL;
        size_t len;

        th_write(f->dir, "seed.yaml", "%s", yaml);
        _cleanup_(th_run_done) th_run r = th_spawn(argv, NULL);
        assert_int_equal(r.status, 0);
        assert_int_equal(vf_read_file(iso, SIZE_MAX, &data, &len), 0);
        vf_sha256_hex(data, len, hash);
}

/*
 * What a pass on a hypervisor that uploads leaves behind, which the test driver cannot: the seed
 * volume, recorded with its key and the hash of the seed `cloud-init render` makes of the file.
 */
static void record_uploaded_seed(th_env *f, const char *yaml) {
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_(state_record_freep) state_record *rec = state_record_new("cloudinit", "web1");
        _cleanup_free_ char *errmsg = NULL;
        char hash[VF_HASH_HEX_LEN + 1];

        create_volume(f, "web1.cidata.iso", "1048576");
        virStorageVolPtr v = seed_lookup(f);
        assert_non_null(v);
        rec->uuid = strdup(virStorageVolGetKey(v));
        virStorageVolFree(v);
        render_hash(f, yaml, hash);
        rec->applied_xml_hash = strdup(hash);
        th_env_close(f);
        assert_int_equal(state_open(f->state, 0, &store, &errmsg), 0);
        assert_int_equal(state_put(store, rec), 0);
}

/* A seed whose hash is the one recorded is in sync: no write; a changed one is uploaded again. */
static void test_cloudinit_noop_then_changed(void **state) {
        th_env *f = *state;

        declare_pool(f);
        record_uploaded_seed(f, CLOUDINIT_WEB1("web1"));
        th_write(f->conf, "20-seed.yaml", CLOUDINIT_WEB1("web1"));
        pass_changing_nothing(f);
        th_env_assert(f, VF_KIND_CLOUDINIT, "web1", RC_UNCHANGED, "Applied");
        assert_true(vf_report_converged(&f->report));

        /* Another hostname, another seed: uploaded into the same volume, which is big enough. */
        th_write(f->conf, "20-seed.yaml", CLOUDINIT_WEB1("web2"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_CLOUDINIT, "web1", RC_FAILED, "NotSupported");
        assert_int_equal(th_env_writes(f), 1);
        assert_int_equal(f->report.counters.calls[RC_CALL_UPLOAD], 1);
        assert_true(seed_exists(f));

        /* The failed upload may have left anything in it: the old file is no longer in sync either. */
        th_write(f->conf, "20-seed.yaml", CLOUDINIT_WEB1("web1"));
        th_env_pass(f);
        assert_int_equal(f->report.counters.calls[RC_CALL_UPLOAD], 1);
}

/* A seed a domain's disk uses is not deleted while it does, whoever owns the domain. */
static void test_cloudinit_in_use_then_removed(void **state) {
        th_env *f = *state;
        static const char vm[] = "<domain type='test'><name>vm</name><memory>1048576</memory>"
                                 "<os><type>hvm</type></os><devices><disk type='volume' device='cdrom'>"
                                 "<source pool='images' volume='web1.cidata.iso'/><target dev='hdc' bus='ide'/>"
                                 "<readonly/></disk></devices></domain>";

        declare_pool(f);
        record_uploaded_seed(f, CLOUDINIT_WEB1("web1"));
        virDomainPtr d = virDomainDefineXML(f->other, vm);
        assert_non_null(d);

        pass_changing_nothing(f); /* nothing declares the seed: it goes, but the domain uses it */
        const rc_result *res = &th_env_entry(f, VF_KIND_CLOUDINIT, "web1")->result;
        th_env_assert(f, VF_KIND_CLOUDINIT, "web1", RC_WAITING, "InUse");
        assert_non_null(strstr(res->message, "(vm)"));
        assert_int_equal(res->wait.kind, RC_WAIT_USER);
        assert_string_equal(res->wait.target, "domain/vm");
        assert_true(seed_exists(f));

        assert_int_equal(virDomainUndefine(d), 0);
        virDomainFree(d);
        th_env_pass(f);
        th_env_assert(f, VF_KIND_CLOUDINIT, "web1", RC_DELETED, "Removed");
        assert_false(seed_exists(f));
        state_record *rec = NULL;
        assert_int_equal(state_get(f->c.store, "cloudinit", "web1", &rec), -ENOENT);
}

/*
 * A domain on a declared volume comes after its pool and its volume, and is defined in the format the
 * volume has. Pruned, it goes first: the volume it used is deleted after it, and the pool last, in
 * the same pass.
 */
static void test_domain_on_a_declared_volume(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir);

        assert_int_equal(mkdir(path, 0755), 0);
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_write(f->conf, "20-disk.yaml", VOLUME("vm1.qcow2", "  format: qcow2\n  deletionPolicy: delete\n"));
        th_write(f->conf, "30-vm.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: vm1}\nspec:\n  memory: 128MiB\n"
                 "  disks: [{volume: images/vm1.qcow2}]\n");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_CREATED, NULL);
        assert_true(entry_index(f, VF_KIND_POOL, "images") < entry_index(f, VF_KIND_VOLUME, "images/vm1.qcow2"));
        assert_true(entry_index(f, VF_KIND_VOLUME, "images/vm1.qcow2") < entry_index(f, VF_KIND_DOMAIN, "vm1"));
        _cleanup_free_ char *xml = th_domain_xml(f->other, "vm1", true);
        const char *disk = strstr(xml, "<disk type='volume' device='disk'>");
        assert_non_null(disk);
        assert_non_null(strstr(disk, "type='qcow2'"));
        assert_non_null(strstr(disk, "<source pool='images' volume='vm1.qcow2'/>"));
        assert_non_null(strstr(disk, "<target dev='vda' bus='virtio'/>"));
        pass_changing_nothing(f);

        th_remove(f->conf, "30-vm.yaml");
        th_remove(f->conf, "20-disk.yaml");
        th_remove(f->conf, "10-pool.yaml");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_DELETED, NULL);
        th_env_assert(f, VF_KIND_VOLUME, "images/vm1.qcow2", RC_DELETED, NULL);
        th_env_assert(f, VF_KIND_POOL, "images", RC_DELETED, NULL);
        assert_true(entry_index(f, VF_KIND_DOMAIN, "vm1") < entry_index(f, VF_KIND_VOLUME, "images/vm1.qcow2"));
        assert_true(entry_index(f, VF_KIND_VOLUME, "images/vm1.qcow2") < entry_index(f, VF_KIND_POOL, "images"));
        assert_pool_absent(f, "images");
}

/* A seed that is not Ready (the test driver cannot upload one) holds its domain back, by name. */
static void test_domain_waits_for_its_seed(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir);

        assert_int_equal(mkdir(path, 0755), 0);
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_write(f->conf, "20-seed.yaml",
                 "apiVersion: virtform/v1\nkind: CloudInit\nmetadata: {name: vm1}\nspec:\n  pool: images\n"
                 "  userData: \"#cloud-config\\n\"\n");
        th_write(f->conf, "30-vm.yaml",
                 "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: vm1}\nspec:\n  memory: 128MiB\n"
                 "  disks: [{cloudInit: vm1}]\n");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_CLOUDINIT, "vm1", RC_FAILED, NULL);
        th_env_assert(f, VF_KIND_DOMAIN, "vm1", RC_WAITING, "DependencyNotReady");
        const rc_result *res = &th_env_entry(f, VF_KIND_DOMAIN, "vm1")->result;
        assert_non_null(strstr(res->message, "cloudinit vm1"));
        assert_int_equal(res->wait.kind, RC_WAIT_DEPENDENCY);
        assert_string_equal(res->wait.target, "cloudinit/vm1");
        _cleanup_free_ char *none = th_domain_xml(f->other, "vm1", true);
        assert_null(none);
}

/* A pass for one key brings along what depends on it, and what depends on that: a chain of volumes. */
static void test_pass_of_a_key_brings_its_chain(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir), *errmsg = NULL;
        char *keys[] = { (char *) "volume/images/base.qcow2", NULL };

        assert_int_equal(mkdir(path, 0755), 0);
        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        th_write(f->conf, "20-volumes.yaml",
                 VOLUME("base.qcow2", "") "---\n" VOLUME("clone.qcow2", "  from: {volume: images/base.qcow2}\n")
                 "---\n" VOLUME("clone2.qcow2", "  from: {volume: images/clone.qcow2}\n"));
        th_env_pass(f);
        vf_report_done(&f->report);
        assert_int_equal(vf_controller_pass_keys(&f->c, keys, &f->report, &errmsg), 0);
        assert_int_equal(f->report.n_entries, 3);
        assert_true(entry_index(f, VF_KIND_VOLUME, "images/base.qcow2") <
                    entry_index(f, VF_KIND_VOLUME, "images/clone.qcow2"));
        assert_true(entry_index(f, VF_KIND_VOLUME, "images/clone.qcow2") <
                    entry_index(f, VF_KIND_VOLUME, "images/clone2.qcow2"));
}

/* Changes a record in the state file behind the controller, as a rolled-back batch leaves it behind its memory. */
static void tamper_with_record(th_env *f, const char *kind, const char *name) {
        _cleanup_free_ char *sql = vf_printf(
                "UPDATE resources SET last_error = 'tampered', attempts = 9 WHERE kind = '%s' AND name = '%s';"
                "UPDATE conditions SET message = 'tampered' WHERE kind = '%s' AND name = '%s' AND type = 'Ready'",
                kind, name, kind, name);

        assert_int_equal(th_state_exec(f->state, sql), 1);
}

/* What the state file says of a record, read through a connection of the test's own. */
static void assert_file_record_settled(th_env *f, const char *kind, const char *name) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;

        assert_int_equal(sqlite3_open_v2(f->state, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT r.last_error IS NULL, r.attempts, c.message FROM resources r "
                                            "JOIN conditions c USING (kind, name) "
                                            "WHERE kind = ?1 AND name = ?2 AND c.type = 'Ready'",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 1);
        assert_int_equal(sqlite3_column_int(st, 1), 0);
        assert_string_equal((const char *) sqlite3_column_text(st, 2), "in sync");
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/*
 * A pass skips the put of a record that says what it read from the store: what it read, then, must be the
 * store's and not what an earlier pass left in memory. A full pass reads every record; a pass of a key
 * reads those of what it brings along (the domain on the network) too.
 */
static void test_a_pass_compares_with_the_store_not_its_memory(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *errmsg = NULL;
        char *keys[] = { (char *) "network/lan", NULL };

        th_write(f->conf, "10-net.yaml", NETWORK_LAN);
        th_write(f->conf, "20-web.yaml", DOMAIN_WEB("1GiB", ""));
        th_env_pass(f);
        th_env_pass(f);
        assert_file_record_settled(f, "domain", "web1");

        tamper_with_record(f, "domain", "web1");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
        assert_file_record_settled(f, "domain", "web1");

        tamper_with_record(f, "domain", "web1");
        vf_report_done(&f->report);
        assert_int_equal(vf_controller_pass_keys(&f->c, keys, &f->report, &errmsg), 0);
        th_env_assert(f, VF_KIND_DOMAIN, "web1", RC_UNCHANGED, NULL);
        assert_file_record_settled(f, "domain", "web1");
}

static graph_node *declared_node(graph *g, schema_resource *r, const char *key, const char *depends) {
        graph_node *n;

        assert_int_equal(graph_ensure(g, key, &n), 0);
        *r = (schema_resource) { .kind = n->kind };
        if (depends)
                assert_int_equal(vf_strv_push(&r->depends, depends), 0);
        assert_int_equal(graph_set_desired(g, n, r), 0);
        return n;
}

static graph_node *removed_node(graph *g, const char *key, const char *depended) {
        graph_node *n;

        assert_int_equal(graph_ensure(g, key, &n), 0);
        state_record *rec = state_record_new(vf_kind_to_string(n->kind), n->name);
        assert_non_null(rec);
        if (depended)
                assert_int_equal(vf_strv_push(&rec->depends, depended), 0);
        graph_set_record(n, rec);
        return n;
}

/*
 * The order of a pass, sorted directly: a cycle within a kind (which the schema refuses) still sorts,
 * each node once; removals go before what their records say they depended on.
 */
static void test_graph_sort_within_a_kind(void **state) {
        schema_resource res[4] = {};
        graph g;

        assert_int_equal(graph_init(&g), 0);
        declared_node(&g, &res[0], "domain/web", "volume/p/b");
        declared_node(&g, &res[1], "volume/p/b", "volume/p/a");
        declared_node(&g, &res[2], "volume/p/a", "volume/p/b");
        declared_node(&g, &res[3], "network/lan", NULL);
        removed_node(&g, "volume/p/base", NULL);
        removed_node(&g, "volume/p/clone", "volume/p/base");
        removed_node(&g, "volume/p/other", NULL);
        removed_node(&g, "pool/p", NULL);
        _cleanup_free_ graph_node **nodes = malloc(g.n_nodes * sizeof *nodes);
        assert_non_null(nodes);
        memcpy(nodes, g.nodes, g.n_nodes * sizeof *nodes);

        assert_int_equal(graph_sort(nodes, g.n_nodes), 0);
        vf_buf b = {};
        for (size_t i = 0; i < g.n_nodes; i++)
                vf_buf_printf(&b, "%s%s", i ? " " : "", nodes[i]->key);
        _cleanup_free_ char *order = vf_buf_steal(&b);
        assert_string_equal(order, "network/lan volume/p/a volume/p/b domain/web "
                                   "volume/p/clone volume/p/base volume/p/other pool/p");
        graph_done(&g);
        for (size_t i = 0; i < ELEMENTSOF(res); i++)
                vf_strv_free(res[i].depends);
}

#define DEFAULT_POOL_VOLUME(name, spec)                                                                           \
        "apiVersion: virtform/v1\nkind: Volume\nmetadata: {name: " name "}\nspec: {pool: default-pool, " spec "}\n"

static bool test_volume_exists(th_env *f, const char *name) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(f->other, "default-pool");
        virStorageVolPtr vol = pool ? virStorageVolLookupByName(pool, name) : NULL;

        if (vol)
                virStorageVolFree(vol);
        if (pool)
                virStoragePoolFree(pool);
        return vol != NULL;
}

/*
 * The test driver makes volumes but cannot upload into them or resize them:
 * those steps fail NotSupported, naming the hypervisor, and an import leaves
 * no volume behind.
 */
#define MANY_VOLUMES 1000

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Every volume of a pool as a second connection reads it, definitions and all, in name order. */
static char *pool_volumes_seen(th_env *f, const char *pool_name) {
        virStoragePoolPtr pool = pool_lookup(f, pool_name);
        virStorageVolPtr *vols = NULL;
        vf_buf b = {};

        assert_non_null(pool);
        assert_int_equal(virStoragePoolRefresh(pool, 0), 0);
        int n = virStoragePoolListAllVolumes(pool, &vols, 0);
        assert_int_equal(n, MANY_VOLUMES);
        _cleanup_strv_free_ char **xmls = NULL;
        for (int i = 0; i < n; i++) {
                char *xml = virStorageVolGetXMLDesc(vols[i], 0);
                assert_non_null(xml);
                assert_int_equal(vf_strv_push(&xmls, xml), 0);
                free(xml);
                virStorageVolFree(vols[i]);
        }
        free(vols);
        virStoragePoolFree(pool);
        qsort(xmls, n, sizeof(char *), compare_strings);
        for (size_t i = 0; xmls && xmls[i]; i++)
                vf_buf_puts(&b, xmls[i]);
        return vf_buf_steal(&b);
}

/* A capacity larger than the whole pool is refused before anything is made, and so is such a growth. */
static void test_volume_larger_than_its_pool(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-big.yaml", DEFAULT_POOL_VOLUME("big.qcow2", "capacity: 10TiB"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/big.qcow2", RC_FAILED, "InsufficientSpace");
        assert_non_null(strstr(th_env_entry(f, VF_KIND_VOLUME, "default-pool/big.qcow2")->result.message,
                               "more than pool default-pool holds in all"));
        assert_false(test_volume_exists(f, "big.qcow2"));

        th_write(f->conf, "10-big.yaml", DEFAULT_POOL_VOLUME("big.qcow2", "capacity: 1GiB"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/big.qcow2", RC_CREATED, "Applied");
        th_write(f->conf, "10-big.yaml", DEFAULT_POOL_VOLUME("big.qcow2", "capacity: 10TiB"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/big.qcow2", RC_FAILED, "InsufficientSpace");
        virStoragePoolPtr pool = virStoragePoolLookupByName(f->other, "default-pool");
        virStorageVolPtr vol = pool ? virStorageVolLookupByName(pool, "big.qcow2") : NULL;
        virStorageVolInfo info;
        assert_non_null(vol);
        assert_int_equal(virStorageVolGetInfo(vol, &info), 0);
        assert_int_equal(info.capacity, 1024ULL * 1024 * 1024);
        virStorageVolFree(vol);
        virStoragePoolFree(pool);
}

/* A no-op pass over 1,000 volumes writes nothing: what libvirt has of each is as it was. */
static void test_noop_over_many_volumes(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *path = vf_printf("%s/images", f->dir);
        vf_buf b = {};

        th_write(f->conf, "10-pool.yaml", POOL_IMAGES(path, ""));
        for (unsigned i = 0; i < MANY_VOLUMES; i++)
                vf_buf_printf(&b, "%sapiVersion: virtform/v1\nkind: Volume\nmetadata: {name: v%04u.qcow2}\n"
                              "spec: {pool: images, capacity: 1MiB}\n", i ? "---\n" : "", i);
        _cleanup_free_ char *volumes = vf_buf_steal(&b);
        assert_non_null(volumes);
        th_write(f->conf, "20-volumes.yaml", "%s", volumes);
        th_env_pass(f);
        assert_true(vf_report_converged(&f->report));
        assert_int_equal(f->report.by_outcome[RC_CREATED], MANY_VOLUMES + 1);

        _cleanup_free_ char *before = pool_volumes_seen(f, "images");
        th_env_close(f);
        pass_changing_nothing(f);
        assert_int_equal(f->report.by_outcome[RC_UNCHANGED], MANY_VOLUMES + 1);
        _cleanup_free_ char *after = pool_volumes_seen(f, "images");
        assert_string_equal(after, before);

        /* The pool's Ready message said what the first pass did, and now says "in sync": from here on, nothing. */
        th_env_close(f);
        pass_writing_nothing(f);
        assert_int_equal(f->report.by_outcome[RC_UNCHANGED], MANY_VOLUMES + 1);
}

static void test_volume_upload_and_resize_not_supported(void **state) {
        th_env *f = *state;
        _cleanup_free_ char *image = vf_printf("%s/image.raw", f->dir);

        th_write(f->dir, "image.raw", "some raw bytes");
        th_write(f->conf, "10-import.yaml", DEFAULT_POOL_VOLUME("imported", "format: raw, from: {file: %s}"), image);
        th_write(f->conf, "20-disk.yaml", DEFAULT_POOL_VOLUME("disk", "capacity: 4MiB"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/imported", RC_FAILED, "NotSupported");
        assert_non_null(strstr(th_env_entry(f, VF_KIND_VOLUME, "default-pool/imported")->result.message,
                               "test:///default"));
        assert_false(test_volume_exists(f, "imported"));
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/disk", RC_CREATED, "Applied");

        th_write(f->conf, "20-disk.yaml", DEFAULT_POOL_VOLUME("disk", "capacity: 8MiB"));
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/disk", RC_FAILED, "NotSupported");
        assert_non_null(strstr(th_env_entry(f, VF_KIND_VOLUME, "default-pool/disk")->result.message,
                               "test:///default"));

        th_remove(f->conf, "10-import.yaml");
        th_write(f->conf, "20-disk.yaml", DEFAULT_POOL_VOLUME("disk", "capacity: 4MiB, deletionPolicy: delete"));
        th_env_pass(f);
        th_remove(f->conf, "20-disk.yaml");
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/disk", RC_DELETED, "Removed");
        assert_false(test_volume_exists(f, "disk"));
}

/* plan lists what an import would do, and does none of it. */
static void test_volume_plan(void **state) {
        th_env *f = *state;

        th_write(f->conf, "10-import.yaml",
                 DEFAULT_POOL_VOLUME("planned", "format: raw, from: {file: /nonexistent/image.raw}"));
        th_write(f->conf, "20-disk.yaml", DEFAULT_POOL_VOLUME("planned-disk", "capacity: 4MiB"));
        f->opts.dry_run = true;
        th_env_pass(f);
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/planned", RC_CREATED, "Applied");
        th_env_assert(f, VF_KIND_VOLUME, "default-pool/planned-disk", RC_CREATED, "Applied");
        const rc_result *res = &th_env_entry(f, VF_KIND_VOLUME, "default-pool/planned")->result;
        assert_int_equal(vf_strv_length(res->steps), 2);
        assert_string_equal(res->steps[0], "create-volume");
        assert_string_equal(res->steps[1], "upload");
        assert_int_equal(th_env_writes(f), 0);
        assert_false(test_volume_exists(f, "planned"));
        assert_false(test_volume_exists(f, "planned-disk"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_create_then_noop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_listing_never_decides_a_write, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_state_listing_is_logged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_listing_asks_only_what_is_open, setup, teardown),
                cmocka_unit_test_setup_teardown(test_autostart_asked_of_the_fewer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_without_statistics, setup, teardown),
                cmocka_unit_test_setup_teardown(test_paused_outside_is_resumed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_made_meanwhile_is_found_done, setup, teardown),
                cmocka_unit_test_setup_teardown(test_noop_across_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_update_running_domain_restart_pending, setup, teardown),
                cmocka_unit_test_setup_teardown(test_update_restart_on_change, setup, teardown),
                cmocka_unit_test_setup_teardown(test_autostart_change_restarts_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune_and_no_prune, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_path_prunes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unlistable_domains_stop_the_pass, setup, teardown),
                cmocka_unit_test_setup_teardown(test_network_not_pulled_from_running_domain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drift_undefine_and_redefine, setup, teardown),
                cmocka_unit_test_setup_teardown(test_undefine_of_running_domain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drift_report_leaves_changes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_define_keeps_baseline_document, setup, teardown),
                cmocka_unit_test_setup_teardown(test_conflict_and_adoption, setup, teardown),
                cmocka_unit_test_setup_teardown(test_define_finished_by_a_killed_run_meanwhile, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_defined_meanwhile_by_a_killed_run_is_ours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_of_a_forgotten_name_is_someone_elses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_volume_of_a_forgotten_name_is_someone_elses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreign_object_made_meanwhile_is_a_conflict, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dependency_waiting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dependency_on_failed_network, setup, teardown),
                cmocka_unit_test_setup_teardown(test_change_waiting_on_a_dependency_is_applied_later, setup, teardown),
                cmocka_unit_test_setup_teardown(test_generation_never_reused_after_a_lost_commit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_marker_of_the_first_form_is_still_ours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_marker_giving_a_fact_twice_is_someone_elses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_file_changes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_changes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_diff_of_a_change, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_diff_of_drift, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_delete_steps, setup, teardown),
                cmocka_unit_test_setup_teardown(test_volume_disk_takes_its_format, setup, teardown_volumes),
                cmocka_unit_test_setup_teardown(test_volume_disk_waits_for_its_volume, setup, teardown_volumes),
                cmocka_unit_test_setup_teardown(test_undeclared_seed_holds_its_domain, setup, teardown_volumes),
                cmocka_unit_test_setup_teardown(test_custom_node_with_foreign_objects, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_defined_built_started, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_recorded_before_its_hash, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_pruned_keeps_its_directory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_conflict_and_adoption, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_defined_by_a_killed_run_is_ours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_with_recorded_volume_is_in_use, setup, teardown),
                cmocka_unit_test_setup_teardown(test_volumes_ordered_by_their_sources, setup, teardown),
                cmocka_unit_test_setup_teardown(test_noop_over_many_volumes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_volume_larger_than_its_pool, setup, teardown),
                cmocka_unit_test_setup_teardown(test_domain_on_a_declared_volume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_domain_waits_for_its_seed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pass_of_a_key_brings_its_chain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_pass_compares_with_the_store_not_its_memory, setup, teardown),
                cmocka_unit_test(test_graph_sort_within_a_kind),
                cmocka_unit_test_setup_teardown(test_volume_upload_and_resize_not_supported, setup, teardown),
                cmocka_unit_test_setup_teardown(test_volume_plan, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloudinit_upload_not_supported, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloudinit_conflict_and_adoption, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloudinit_made_by_a_killed_run, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloudinit_noop_then_changed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloudinit_in_use_then_removed, setup, teardown),
        };
        /* Before any connection: the view of libvirt from outside counts its events. */
        assert_int_equal(virEventRegisterDefaultImpl(), 0);
        return th_run_group(tests, NULL, NULL, NULL);
}
