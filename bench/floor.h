/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What virtform-bench-floor and virtform-bench share: the generated policy element, and the floor's line. */
#pragma once

#include <stddef.h>

/* The policy element of the generated native files (generate.c), which virtform keeps out of what it defines. */
#define BENCH_POLICY_NS "https://virtform.org/xmlns/policy/1"

/* The one line the floor prints (floor.c), with figures in milliseconds. */
typedef struct floor_figures {
        size_t defined;
        double connect_ms, define_ms, read_ms, marked_read_ms;
        long peak_rss_kib; /* before the marking, which a floor of any tool would not do */
} floor_figures;

/* Reads the floor's line from the file at path: 0, or -EBADMSG when it is not there whole. */
int bench_floor_parse(const char *path, floor_figures *ret);
