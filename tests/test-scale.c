/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What shows only with many domains, judged from outside as everywhere else.
 * libvirt filters a listing by taking each object it leaves out of an array,
 * and a pass asks each question the way that leaves out fewer, weighed
 * against the handles the answer brings back (ask() in reconcilers/object.c):
 * below some 20,000 domains the question itself, above it its complement.
 * Here the complement's answers must be as whole as the question's, which
 * test-apply checks on a few domains. Not under valgrind, which would take
 * minutes to define the domains alone.
 */
#include "tests/env.h"

/* Someone else's domains, shut off: past the point where a pass asks the other way round. */
#define UNDECLARED 25000

static int setup(void **state) {
        th_env *f = th_env_new();

        for (unsigned i = 0; i < UNDECLARED; i++) {
                char xml[160];
                snprintf(xml, sizeof xml, "<domain type='test'><name>other%05u</name><memory>65536</memory>"
                         "<os><type>hvm</type></os></domain>", i);
                virDomainPtr d = virDomainDefineXML(f->other, xml);
                assert_non_null(d);
                virDomainFree(d);
        }
        *state = f;
        return 0;
}

static int teardown(void **state) {
        th_env_free(*state);
        return 0;
}

static virDomainPtr lookup(th_env *f, const char *name) {
        virDomainPtr d = virDomainLookupByName(f->other, name);

        assert_non_null(d);
        return d;
}

/*
 * Two running domains among 25,000 shut off. Few domains are transient, so the pass asks which are
 * persistent; as many are autostarted as run, so it asks which are not. Behind its back, s1 is
 * undefined while it runs, and s2, declared autostarted, is autostarted no more: the pass finds both,
 * defines s1 again and turns s2's autostart on, and then has nothing left to do.
 */
static void test_many_domains_asked_the_other_way_round(void **state) {
        th_env *f = *state;

        th_write(f->conf, "30-s1.yaml", RUNNING_DOMAIN("s1", "false"));
        th_write(f->conf, "30-s2.yaml", RUNNING_DOMAIN("s2", "true"));
        th_env_pass(f);
        assert_true(vf_report_converged(&f->report));

        virDomainPtr s1 = lookup(f, "s1"), s2 = lookup(f, "s2");
        assert_int_equal(virDomainUndefine(s1), 0);
        assert_int_equal(virDomainSetAutostart(s2, 0), 0);
        th_env_pass(f);
        assert_true(vf_report_converged(&f->report));
        assert_int_equal(f->report.counters.calls[RC_CALL_DEFINE], 1);
        assert_int_equal(f->report.counters.calls[RC_CALL_SET_AUTOSTART], 1);
        assert_int_equal(th_env_writes(f), 2);
        assert_int_equal(virDomainIsPersistent(s1), 1);
        assert_int_equal(virDomainIsActive(s1), 1);
        assert_true(th_domain_autostart(f->other, "s2"));
        virDomainFree(s1);
        virDomainFree(s2);

        th_env_pass(f);
        assert_int_equal(th_env_writes(f), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_many_domains_asked_the_other_way_round, setup, teardown),
        };
        return th_run_group(tests, NULL, NULL, NULL);
}
