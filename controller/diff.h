/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal to controller/: plan's unified diff of two definitions. */
#pragma once

#include "reconcilers/reconciler.h"

/*
 * Appends to out the unified diff from a to b (either may be empty) with
 * context lines around each change: hunks headed "@@ -l,n +l,n @@ PATH", PATH
 * the innermost element that holds every changed line of the hunk, removed
 * lines before added ones. Each line starts with prefix. Nothing for equal
 * definitions.
 */
void diff_unified(const rc_xml_lines *a, const rc_xml_lines *b, unsigned context, const char *prefix, vf_buf *out);
