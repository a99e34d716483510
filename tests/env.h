/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A controller in a temp tree against test:///default: conf/ for the files,
 * state.db for the store, and a second connection that plays the operator
 * changing things behind virtform's back.
 */
#pragma once

#include "controller/controller.h"
#include "tests/helpers.h"

/* A domain file: 64 MiB, one vCPU, to run, autostarted or not ("true", "false"). */
#define RUNNING_DOMAIN(name, autostart)                                                                  \
        "apiVersion: virtform/v1\nkind: Domain\nmetadata: {name: " name "}\nspec:\n  memory: 64MiB\n" \
        "  vcpus: 1\n  state: running\n  autostart: " autostart "\n"

typedef struct th_env th_env;
struct th_env {
        char *dir;
        char *conf;
        char *state;
        char *paths[2];
        vf_options opts;
        vf_controller c;
        bool open;
        vf_report report;
        virConnectPtr other;
        /* Called right after the controller opens: a test puts its fakes in here. */
        void (*on_open)(th_env *env);
        void *userdata;
};

/* Starts from a test driver with nothing of the previous test's on it. */
th_env *th_env_new(void);
void th_env_free(th_env *env);
/* Closes the controller: the next pass opens a new one, as a restarted process would. */
void th_env_close(th_env *env);
/* One pass with the controller kept open between passes, as a daemon would. */
void th_env_pass(th_env *env);
/* The same pass without assertions, for a forked child, where a failed cmocka assertion would go on
 * with the next tests in the child: 0 or a negative errno, the reason on stderr. */
int th_env_try_pass(th_env *env);
const vf_report_entry *th_env_entry(th_env *env, vf_kind kind, const char *name);
/* Fails with the outcome, reason and message when they are not the ones expected (reason NULL: any). */
void th_env_assert(th_env *env, vf_kind kind, const char *name, rc_outcome outcome, const char *reason);
unsigned th_env_writes(const th_env *env);
