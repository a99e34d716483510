/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests/env.h"

th_env *th_env_new(void) {
        th_env *env = calloc(1, sizeof *env);

        assert_non_null(env);
        th_reset_test_driver();
        env->dir = th_mkdtemp();
        env->conf = vf_printf("%s/conf", env->dir);
        env->state = vf_printf("%s/state.db", env->dir);
        assert_int_equal(mkdir(env->conf, 0755), 0);
        env->paths[0] = env->conf;
        vf_options_init(&env->opts);
        env->opts.uri = "test:///default";
        env->opts.state_path = env->state;
        env->opts.paths = env->paths;
        env->opts.shutdown_timeout_sec = 2;
        env->other = th_connect();
        return env;
}

void th_env_close(th_env *env) {
        vf_report_done(&env->report);
        if (env->open)
                vf_controller_close(&env->c);
        env->open = false;
}

void th_env_free(th_env *env) {
        th_env_close(env);
        virConnectClose(env->other);
        th_rmtree(env->dir);
        free(env->dir);
        free(env->conf);
        free(env->state);
        free(env);
        th_reset_test_driver();
}

int th_env_try_pass(th_env *env) {
        _cleanup_free_ char *errmsg = NULL;
        int r;

        vf_report_done(&env->report);
        if (!env->open) {
                r = vf_controller_open(&env->c, &env->opts, &errmsg);
                if (r < 0) {
                        fprintf(stderr, "controller open: %s\n", errmsg ? errmsg : strerror(-r));
                        return r;
                }
                env->c.log = NULL;
                env->open = true;
                if (env->on_open)
                        env->on_open(env);
        }
        r = vf_controller_pass(&env->c, &env->report, &errmsg);
        if (r < 0)
                fprintf(stderr, "pass: %s\n", errmsg ? errmsg : strerror(-r));
        return r;
}

void th_env_pass(th_env *env) {
        assert_int_equal(th_env_try_pass(env), 0);
}

const vf_report_entry *th_env_entry(th_env *env, vf_kind kind, const char *name) {
        for (size_t i = 0; i < env->report.n_entries; i++)
                if (env->report.entries[i].kind == kind && strcmp(env->report.entries[i].name, name) == 0)
                        return &env->report.entries[i];
        fail_msg("no report entry for %s/%s", vf_kind_to_string(kind), name);
        return NULL;
}

void th_env_assert(th_env *env, vf_kind kind, const char *name, rc_outcome outcome, const char *reason) {
        const rc_result *r = &th_env_entry(env, kind, name)->result;
        if (r->outcome != outcome || (reason && !vf_streq_ptr(r->reason, reason)))
                fail_msg("%s/%s: expected %s %s, got %s %s: %s", vf_kind_to_string(kind), name,
                         rc_outcome_to_string(outcome), reason ? reason : "", rc_outcome_to_string(r->outcome),
                         r->reason, r->message);
}

unsigned th_env_writes(const th_env *env) {
        return rc_counters_writes(&env->report.counters);
}
