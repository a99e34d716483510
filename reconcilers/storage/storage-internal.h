/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to reconcilers/storage/: what the pool, volume and cloud-init
 * reconcilers share. Nothing outside this directory includes it.
 */
#pragma once

#ifndef VF_STORAGE_INTERNAL
# error "storage-internal.h is private to reconcilers/storage/"
#endif

#include "reconcilers/object.h"
