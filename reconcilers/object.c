/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "reconcilers/object.h"

#include <signal.h>

#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <string.h>

/* ---- the two classes --------------------------------------------------- */

/*
 * libvirt's domain, network and storage pool calls take their own handle
 * types; calling them through a pointer to a function of another type is
 * undefined behaviour, so each gets a small adapter with the class's
 * signature.
 */
#define DEFINE_OBJECT_ADAPTERS(prefix, Kind)                                                                   \
        static void *prefix##_lookup_by_name(virConnectPtr conn, const char *name) {                          \
                return vir##Kind##LookupByName(conn, name);                                                    \
        }                                                                                                      \
        static const char *prefix##_get_name(void *obj) {                                                      \
                return vir##Kind##GetName(obj);                                                                \
        }                                                                                                      \
        static int prefix##_is_active(void *obj) {                                                             \
                return vir##Kind##IsActive(obj);                                                               \
        }                                                                                                      \
        static int prefix##_is_persistent(void *obj) {                                                         \
                return vir##Kind##IsPersistent(obj);                                                           \
        }                                                                                                      \
        static int prefix##_get_autostart(void *obj, int *autostart) {                                         \
                return vir##Kind##GetAutostart(obj, autostart);                                                \
        }                                                                                                      \
        static int prefix##_set_autostart(void *obj, int autostart) {                                          \
                return vir##Kind##SetAutostart(obj, autostart);                                                \
        }                                                                                                      \
        static int prefix##_get_uuid_string(void *obj, char *buf) {                                            \
                return vir##Kind##GetUUIDString(obj, buf);                                                     \
        }                                                                                                      \
        static int prefix##_destroy(void *obj) {                                                               \
                return vir##Kind##Destroy(obj);                                                                \
        }                                                                                                      \
        static int prefix##_free(void *obj) {                                                                  \
                return vir##Kind##Free(obj);                                                                   \
        }

#define OBJECT_ADAPTERS(prefix)                                                                                \
        .lookup_by_name = prefix##_lookup_by_name, .get_name = prefix##_get_name,                              \
        .is_active = prefix##_is_active, .is_persistent = prefix##_is_persistent,                              \
        .get_autostart = prefix##_get_autostart, .set_autostart = prefix##_set_autostart,                      \
        .get_uuid_string = prefix##_get_uuid_string, .start = prefix##_start, .destroy = prefix##_destroy,     \
        .free = prefix##_free

DEFINE_OBJECT_ADAPTERS(domain, Domain)
DEFINE_OBJECT_ADAPTERS(network, Network)
DEFINE_OBJECT_ADAPTERS(pool, StoragePool)

static int domain_start(void *obj) {
        return virDomainCreate(obj);
}

static int network_start(void *obj) {
        return virNetworkCreate(obj);
}

static int pool_start(void *obj) {
        return virStoragePoolCreate(obj, 0);
}

static int domain_list_all(virConnectPtr conn, void ***objs, unsigned filter) {
        return virConnectListAllDomains(conn, (virDomainPtr **) objs, filter);
}

/*
 * Every domain and its state, in one call that filters nothing (filtered listings: list_states()):
 * libvirt's state is shut off exactly while a domain is inactive, and running while it runs.
 */
static int domain_list_all_stated(virConnectPtr conn, void ***objs, unsigned **states) {
        virDomainStatsRecordPtr *records = NULL;
        int n = virConnectGetAllDomainStats(conn, VIR_DOMAIN_STATS_STATE, &records, 0);

        if (n < 0)
                return -1;
        virDomainPtr *doms = calloc(n + 1, sizeof *doms);
        unsigned *got = calloc(n + 1, sizeof *got);
        for (int i = 0; doms && got && i < n; i++) {
                int state = VIR_DOMAIN_NOSTATE; /* not said: active and not running, which is read again */

                (void) virTypedParamsGetInt(records[i]->params, records[i]->nparams, "state.state", &state);
                got[i] = (state != VIR_DOMAIN_SHUTOFF ? RC_LISTED_ACTIVE : 0) |
                         (state == VIR_DOMAIN_RUNNING ? RC_LISTED_RUNNING : 0);
                doms[i] = records[i]->dom;
                virDomainRef(doms[i]);
        }
        virDomainStatsRecordListFree(records);
        if (!doms || !got) {
                free(doms);
                free(got);
                return -ENOMEM;
        }
        *objs = (void **) doms;
        *states = got;
        return n;
}

static void *domain_define(virConnectPtr conn, const char *xml) {
        return virDomainDefineXML(conn, xml);
}

static char *domain_get_xml(void *obj, bool inactive) {
        return virDomainGetXMLDesc(obj, inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
}

static int domain_undefine(void *obj) {
        /* Keep NVRAM: removing a domain must never destroy what its guest stored. */
        unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                         VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_KEEP_NVRAM;
        if (virDomainUndefineFlags(obj, flags) == 0)
                return 0;
        /*
         * Drivers without checkpoints or NVRAM (the test driver) refuse those
         * flags. Without KEEP_NVRAM, a domain that has NVRAM fails to undefine
         * rather than losing it, so the smaller set is just as safe.
         */
        if (virGetLastErrorCode() != VIR_ERR_INVALID_ARG)
                return -1;
        return virDomainUndefineFlags(obj, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
}

/*
 * What a paused guest waits for. A user's pause is undone as drift. While libvirt holds a guest paused
 * for an operation of its own, the operation ends it either way: a start that a killed process left
 * half done is stopped when the driver reconnects to the guest. Not always: one the driver lost may
 * say "starting" for good, so apply waits for it only a while (RC_WAIT_HYPERVISOR). The other causes
 * are the operator's to deal with before the guest may run again: resuming after a disk error would
 * only meet it again.
 */
static const struct {
        rc_run_state state;
        const char *why;
} paused_for[VIR_DOMAIN_PAUSED_POSTCOPY_FAILED + 1] = {
        [VIR_DOMAIN_PAUSED_UNKNOWN] = { RC_RUN_HELD, "paused for a reason libvirt does not know" },
        [VIR_DOMAIN_PAUSED_USER] = { RC_RUN_PAUSED, "paused by a user" },
        [VIR_DOMAIN_PAUSED_MIGRATION] = { RC_RUN_IN_TRANSITION, "paused while it migrates" },
        [VIR_DOMAIN_PAUSED_SAVE] = { RC_RUN_IN_TRANSITION, "paused while it is saved" },
        [VIR_DOMAIN_PAUSED_DUMP] = { RC_RUN_IN_TRANSITION, "paused while its memory is dumped" },
        [VIR_DOMAIN_PAUSED_IOERROR] = { RC_RUN_HELD, "paused by a disk I/O error" },
        [VIR_DOMAIN_PAUSED_WATCHDOG] = { RC_RUN_HELD, "paused by its watchdog" },
        [VIR_DOMAIN_PAUSED_FROM_SNAPSHOT] = { RC_RUN_PAUSED, "paused as a snapshot was restored" },
        [VIR_DOMAIN_PAUSED_SHUTTING_DOWN] = { RC_RUN_IN_TRANSITION, "paused while it shuts down" },
        [VIR_DOMAIN_PAUSED_SNAPSHOT] = { RC_RUN_IN_TRANSITION, "paused while a snapshot is taken" },
        [VIR_DOMAIN_PAUSED_CRASHED] = { RC_RUN_HELD, "paused after its guest crashed" },
        [VIR_DOMAIN_PAUSED_STARTING_UP] = { RC_RUN_IN_TRANSITION, "paused while it starts" },
        [VIR_DOMAIN_PAUSED_POSTCOPY] = { RC_RUN_IN_TRANSITION, "paused while it migrates (post-copy)" },
        [VIR_DOMAIN_PAUSED_POSTCOPY_FAILED] = { RC_RUN_HELD, "paused after a failed post-copy migration" },
};

static int run_state_is(rc_run_state *ret, const char **why, rc_run_state state, const char *because) {
        *ret = state;
        *why = because;
        return 0;
}

static int domain_run_state(void *obj, rc_run_state *ret, const char **why) {
        int state, reason;

        if (virDomainGetState(obj, &state, &reason, 0) < 0)
                return -EIO;
        switch (state) {
        case VIR_DOMAIN_SHUTDOWN:
                return run_state_is(ret, why, RC_RUN_IN_TRANSITION, "shutting down");
        case VIR_DOMAIN_CRASHED:
                return run_state_is(ret, why, RC_RUN_HELD, "crashed, and kept for inspection");
        case VIR_DOMAIN_PAUSED:
                if (reason >= 0 && (size_t) reason < ELEMENTSOF(paused_for) && paused_for[reason].why)
                        return run_state_is(ret, why, paused_for[reason].state, paused_for[reason].why);
                return run_state_is(ret, why, RC_RUN_HELD, "paused for a reason this virtform does not know");
        default:
                return run_state_is(ret, why, RC_RUNS, NULL);
        }
}

static int domain_resume(void *obj) {
        return virDomainResume(obj);
}

/*
 * Every driver reports a start as STARTED and a destroy as STOPPED. QEMU also starts a guest paused and
 * lets it run (RESUMED, before STARTED), and says a destroyed guest shut down on the host's signal
 * (SHUTDOWN, before STOPPED); the test driver does not. A graceful shutdown is no write of ours here:
 * the guest decides when it stops, and that event is the cue a resource waiting on it comes back on.
 * Autostart makes no lifecycle event.
 */
static const rc_call_events domain_caused[_RC_CALL_MAX] = {
        [RC_CALL_DEFINE] = { RC_EVENT(VIR_DOMAIN_EVENT_DEFINED) },
        [RC_CALL_UNDEFINE] = { RC_EVENT(VIR_DOMAIN_EVENT_UNDEFINED) },
        [RC_CALL_START] = { RC_EVENT(VIR_DOMAIN_EVENT_STARTED), RC_EVENT(VIR_DOMAIN_EVENT_RESUMED) },
        [RC_CALL_DESTROY] = { RC_EVENT(VIR_DOMAIN_EVENT_STOPPED), RC_EVENT(VIR_DOMAIN_EVENT_SHUTDOWN) },
};

const rc_object_class rc_domain_class = {
        .kind = VF_KIND_DOMAIN,
        .missing_code = VIR_ERR_NO_DOMAIN,
        .caused = domain_caused,
        .list_all = domain_list_all,
        .list_active = VIR_CONNECT_LIST_DOMAINS_ACTIVE,
        .list_transient = VIR_CONNECT_LIST_DOMAINS_TRANSIENT,
        .list_persistent = VIR_CONNECT_LIST_DOMAINS_PERSISTENT,
        .list_autostart = VIR_CONNECT_LIST_DOMAINS_AUTOSTART,
        .list_no_autostart = VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART,
        .list_running = VIR_CONNECT_LIST_DOMAINS_RUNNING,
        .list_all_stated = domain_list_all_stated,
        .define_xml = domain_define,
        .get_xml = domain_get_xml,
        .undefine = domain_undefine,
        .run_state = domain_run_state,
        .resume = domain_resume,
        OBJECT_ADAPTERS(domain),
};

static int network_list_all(virConnectPtr conn, void ***objs, unsigned filter) {
        return virConnectListAllNetworks(conn, (virNetworkPtr **) objs, filter);
}

static void *network_define(virConnectPtr conn, const char *xml) {
        return virNetworkDefineXML(conn, xml);
}

static int network_undefine(void *obj) {
        return virNetworkUndefine(obj);
}

static char *network_get_xml(void *obj, bool inactive) {
        char *xml = virNetworkGetXMLDesc(obj, inactive ? VIR_NETWORK_XML_INACTIVE : 0);
        /*
         * The test driver knows no inactive network XML and refuses the flag;
         * its networks have no runtime state, so the live XML is the same thing.
         */
        if (!xml && inactive && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
                xml = virNetworkGetXMLDesc(obj, 0);
        return xml;
}

static const rc_call_events network_caused[_RC_CALL_MAX] = {
        [RC_CALL_DEFINE] = { RC_EVENT(VIR_NETWORK_EVENT_DEFINED) },
        [RC_CALL_UNDEFINE] = { RC_EVENT(VIR_NETWORK_EVENT_UNDEFINED) },
        [RC_CALL_START] = { RC_EVENT(VIR_NETWORK_EVENT_STARTED) },
        [RC_CALL_DESTROY] = { RC_EVENT(VIR_NETWORK_EVENT_STOPPED) },
};

const rc_object_class rc_network_class = {
        .kind = VF_KIND_NETWORK,
        .missing_code = VIR_ERR_NO_NETWORK,
        .caused = network_caused,
        .list_all = network_list_all,
        .list_active = VIR_CONNECT_LIST_NETWORKS_ACTIVE,
        .list_transient = VIR_CONNECT_LIST_NETWORKS_TRANSIENT,
        .list_persistent = VIR_CONNECT_LIST_NETWORKS_PERSISTENT,
        .list_autostart = VIR_CONNECT_LIST_NETWORKS_AUTOSTART,
        .list_no_autostart = VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART,
        .define_xml = network_define,
        .get_xml = network_get_xml,
        .undefine = network_undefine,
        OBJECT_ADAPTERS(network),
};

static int pool_list_all(virConnectPtr conn, void ***objs, unsigned filter) {
        return virConnectListAllStoragePools(conn, (virStoragePoolPtr **) objs, filter);
}

static void *pool_define(virConnectPtr conn, const char *xml) {
        return virStoragePoolDefineXML(conn, xml, 0);
}

static char *pool_get_xml(void *obj, bool inactive) {
        char *xml = virStoragePoolGetXMLDesc(obj, inactive ? VIR_STORAGE_XML_INACTIVE : 0);
        /* As for networks: the test driver refuses the flag, and has no definition pending apart from what runs. */
        if (!xml && inactive && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
                xml = virStoragePoolGetXMLDesc(obj, 0);
        return xml;
}

/* Undefining keeps the target: only virStoragePoolDelete removes a directory, and nothing calls it. */
static int pool_undefine(void *obj) {
        return virStoragePoolUndefine(obj);
}

/* Building a pool's target is a lifecycle event of its own (CREATED); creating its volumes is none. */
static const rc_call_events pool_caused[_RC_CALL_MAX] = {
        [RC_CALL_DEFINE] = { RC_EVENT(VIR_STORAGE_POOL_EVENT_DEFINED) },
        [RC_CALL_UNDEFINE] = { RC_EVENT(VIR_STORAGE_POOL_EVENT_UNDEFINED) },
        [RC_CALL_START] = { RC_EVENT(VIR_STORAGE_POOL_EVENT_STARTED) },
        [RC_CALL_DESTROY] = { RC_EVENT(VIR_STORAGE_POOL_EVENT_STOPPED) },
        [RC_CALL_BUILD] = { RC_EVENT(VIR_STORAGE_POOL_EVENT_CREATED) },
};

const rc_object_class rc_pool_class = {
        .kind = VF_KIND_POOL,
        .missing_code = VIR_ERR_NO_STORAGE_POOL,
        .caused = pool_caused,
        .unmarked = true,
        .list_all = pool_list_all,
        .list_active = VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE,
        .list_transient = VIR_CONNECT_LIST_STORAGE_POOLS_TRANSIENT,
        .list_persistent = VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT,
        .list_autostart = VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART,
        .list_no_autostart = VIR_CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART,
        .define_xml = pool_define,
        .get_xml = pool_get_xml,
        .undefine = pool_undefine,
        OBJECT_ADAPTERS(pool),
};

static const rc_object_class *class_for_kind(vf_kind kind) {
        switch (kind) {
        case VF_KIND_DOMAIN:
                return &rc_domain_class;
        case VF_KIND_NETWORK:
                return &rc_network_class;
        case VF_KIND_POOL:
                return &rc_pool_class;
        default:
                return NULL;
        }
}

/* ---- inventory --------------------------------------------------------- */

/* name -> listed_object, per kind; the handles are owned here and freed at end of pass. */
struct rc_inventory {
        rc_context *ctx;
        vf_map *objects[_VF_KIND_MAX];
        bool listed[_VF_KIND_MAX]; /* every object of the kind is in the map */
};

typedef struct listed_object {
        void *obj;
        unsigned state; /* rc_listed */
} listed_object;

static void free_objects(const rc_object_class *cls, vf_map *map) {
        size_t it = 0;
        listed_object *l;

        while (map && vf_map_next(map, &it, NULL, (void **) &l)) {
                cls->free(l->obj);
                free(l);
        }
        vf_map_free(map);
}

static void inventory_free(rc_inventory *inv) {
        if (!inv)
                return;
        for (int k = 0; k < _VF_KIND_MAX; k++)
                if (inv->objects[k])
                        free_objects(class_for_kind(k), inv->objects[k]);
        free(inv);
}

/* A map of the inventory's: keyed by each object's own name, which its handle holds as long as it lives. */
static vf_map *objects_new(void) {
        return vf_map_new_borrowing_keys();
}

/* Takes obj, whatever it returns. */
static int put_object(const rc_object_class *cls, vf_map *map, void *obj, unsigned state) {
        listed_object *l = malloc(sizeof *l);
        int r = l ? 0 : -ENOMEM;

        if (l) {
                *l = (listed_object) { .obj = obj, .state = state };
                r = vf_map_put(map, cls->get_name(obj), l);
        }
        if (r < 0) {
                cls->free(obj);
                free(l);
        }
        return r;
}

/*
 * Marks with bit what the listing under filter names, or, asked its complement, what it does not name;
 * returns how many it named that the map holds. -EIO, and a warning, when libvirt cannot list so.
 */
static int list_state(rc_inventory *inv, const rc_object_class *cls, vf_map *map, unsigned filter,
                      bool complement, unsigned bit, const char *state) {
        void **objs = NULL;
        int marked = 0;
        size_t it = 0;
        listed_object *every;

        /* Asked which are not: each object is until listed. */
        while (complement && vf_map_next(map, &it, NULL, (void **) &every))
                every->state |= bit;

        rc_count_read(inv->ctx, RC_CALL_LIST);
        int n = cls->list_all(inv->ctx->conn, &objs, filter);
        if (n < 0)
                rc_warn(inv->ctx, "cannot list the %s %ss: %s; this pass asks each %s for its state instead (slower)",
                        state, vf_kind_to_string(cls->kind), rc_libvirt_error(), vf_kind_to_string(cls->kind));
        for (int i = 0; i < n; i++) {
                listed_object *l = vf_map_get(map, cls->get_name(objs[i]));
                if (l) { /* one made since the first listing is not in the map: looked up in its turn */
                        l->state = complement ? l->state & ~bit : l->state | bit;
                        marked++;
                }
                cls->free(objs[i]);
        }
        free(objs);
        return n < 0 ? -EIO : marked;
}

/*
 * A handle a listing returns, built by libvirt and freed by the pass, costs about as much as moving this
 * many elements of the array libvirt filters: 1.6 us against 0.15 ns, timed on the test driver at 10k
 * and 60k domains (the autostarted of none: 7 and 277 ms; the not autostarted, all: 17 and 115 ms).
 */
#define LISTING_MOVES_PER_HANDLE 10000

/* What a filtered listing of n objects costs, in moves: each one left out moves about half the array. */
static uint64_t listing_cost(uint64_t n, uint64_t left_out) {
        return n * left_out / 2 + LISTING_MOVES_PER_HANDLE * (n - left_out);
}

/*
 * Asks which objects a question is true of (yes: the filter that lists them, no: the one that lists the
 * others) the way that leaves out fewer, weighed against the handles it brings back: expected is how
 * many it is guessed true of. The guess decides the cost only; either answer is whole.
 */
static int ask(rc_inventory *inv, const rc_object_class *cls, vf_map *map, unsigned yes, unsigned no,
               size_t expected, unsigned bit, const char *state) {
        uint64_t n = vf_map_size(map), e = expected < n ? expected : n;
        bool complement = listing_cost(n, e) < listing_cost(n, n - e);

        return list_state(inv, cls, map, complement ? no : yes, complement, bit, state);
}

/*
 * The state of every object, by a filtered listing per question instead of
 * calls per object: over a remote connection each call is a round trip. A
 * listing that fails leaves the states unknown, and each is read when needed.
 *
 * Only the questions the listing of every object left open are asked.
 * libvirt filters a domain listing by taking each domain that does not match
 * out of an array, moving every one behind it: a listing costs the number of
 * domains times the number it leaves out, the square of their number when it
 * leaves out most, so a question whose answer is most objects is asked the
 * other way round (ask()). n_active is what the first listing said, or -1
 * when it said nothing of their state; only an active object runs or is transient
 * (libvirt forgets a transient object once it stops), so where none is,
 * neither is asked.
 */
static void list_states(rc_inventory *inv, const rc_object_class *cls, vf_map *map, int n_active) {
        bool said = n_active >= 0;
        int r = 0;

        if (!said)
                r = n_active = list_state(inv, cls, map, cls->list_active, false,
                                          cls->list_running ? RC_LISTED_ACTIVE : RC_LISTED_ACTIVE | RC_LISTED_RUNNING,
                                          "active");
        if (r >= 0 && !said && n_active > 0 && cls->list_running)
                r = list_state(inv, cls, map, cls->list_running, false, RC_LISTED_RUNNING, "running");
        /* Few objects are transient; as many are autostarted as run: on a host, what runs starts at boot. */
        if (r >= 0 && n_active > 0)
                r = ask(inv, cls, map, cls->list_transient, cls->list_persistent, 0, RC_LISTED_TRANSIENT,
                        "transient");
        if (r >= 0)
                r = ask(inv, cls, map, cls->list_autostart, cls->list_no_autostart, (size_t) n_active,
                        RC_LISTED_AUTOSTART, "autostarted");
        if (r >= 0)
                return;
        size_t it = 0;
        listed_object *l;
        while (vf_map_next(map, &it, NULL, (void **) &l))
                l->state = 0;
}

/*
 * Every object of a kind, with what the same call says of their states into *states where it says
 * them (NULL where it does not): count, -1 with libvirt's error, or -ENOMEM.
 */
static int list_every(rc_inventory *inv, const rc_object_class *cls, void ***objs, unsigned **states) {
        rc_count_read(inv->ctx, RC_CALL_LIST);
        if (cls->list_all_stated) {
                int n = cls->list_all_stated(inv->ctx->conn, objs, states);
                if (n >= 0 || n == -ENOMEM || virGetLastErrorCode() != VIR_ERR_NO_SUPPORT)
                        return n;
                rc_count_read(inv->ctx, RC_CALL_LIST); /* a driver without statistics */
        }
        return cls->list_all(inv->ctx->conn, objs, 0);
}

/* Replaces what the map holds of a kind with a fresh listing of all of them. */
static int inventory_list_kind(rc_inventory *inv, vf_kind kind, char **errmsg) {
        const rc_object_class *cls = class_for_kind(kind);
        _cleanup_(vf_map_freep) vf_map *map = objects_new();
        void **objs = NULL;
        _cleanup_free_ unsigned *states = NULL;
        int r = map ? 0 : -ENOMEM;

        int n = r < 0 ? 0 : list_every(inv, cls, &objs, &states);
        if (n == -ENOMEM)
                return n;
        /* A driver without networks or pools (qemu:///embed) has none to list; declaring one fails at its define. */
        if (n < 0 && virGetLastErrorCode() == VIR_ERR_NO_SUPPORT)
                n = 0;
        if (n < 0)
                return vf_error(errmsg, -EIO, "cannot list %ss: %s", vf_kind_to_string(kind), rc_libvirt_error());
        int n_active = states ? 0 : -1;
        for (int i = 0; i < n; i++) {
                n_active += states && (states[i] & RC_LISTED_ACTIVE);
                if (r == 0)
                        r = put_object(cls, map, objs[i], RC_LISTED | (states ? states[i] : 0));
                else
                        cls->free(objs[i]);
        }
        free(objs);
        if (r < 0) {
                free_objects(cls, TAKE_PTR(map));
                return r;
        }
        if (n > 0)
                list_states(inv, cls, map, n_active);
        free_objects(cls, inv->objects[kind]);
        inv->objects[kind] = TAKE_PTR(map);
        inv->listed[kind] = true;
        return 0;
}

int rc_context_begin_pass(rc_context *ctx, bool list_all, char **errmsg) {
        rc_inventory *inv = calloc(1, sizeof *inv);

        if (!inv)
                return -ENOMEM;
        rc_context_end_pass(ctx);
        ctx->inventory = inv;
        inv->ctx = ctx;
        for (int k = 0; k < _VF_KIND_MAX; k++) {
                if (!class_for_kind(k))
                        continue;
                inv->objects[k] = objects_new();
                if (!inv->objects[k])
                        return -ENOMEM;
                if (list_all) {
                        int r = inventory_list_kind(inv, k, errmsg);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

void rc_context_end_pass(rc_context *ctx) {
        inventory_free(ctx->inventory);
        ctx->inventory = NULL;
}

void rc_context_done(rc_context *ctx) {
        rc_context_end_pass(ctx);
        for (vf_kind k = 0; k < _VF_KIND_MAX; k++) {
                const rc_ops *ops = rc_ops_for_kind(k);
                if (ops && ops->context_free)
                        ops->context_free(ctx->kind_state[k]);
                ctx->kind_state[k] = NULL;
        }
        rc_context_forget_hypervisor(ctx);
}

void rc_context_forget_hypervisor(rc_context *ctx) {
        free(ctx->domain_type);
        free(ctx->machine_arch);
        free(ctx->default_machine);
        ctx->domain_type = ctx->machine_arch = ctx->default_machine = NULL;
}

void *rc_inventory_lookup(rc_context *ctx, vf_kind kind, const char *name) {
        rc_inventory *inv = ctx->inventory;
        const rc_object_class *cls = class_for_kind(kind);

        if (!inv || !inv->objects[kind])
                return NULL;
        listed_object *l = vf_map_get(inv->objects[kind], name);
        if (l || inv->listed[kind])
                return l ? l->obj : NULL;
        rc_count_read(ctx, RC_CALL_GET_INFO);
        void *obj = cls->lookup_by_name(ctx->conn, name);
        if (!obj || put_object(cls, inv->objects[kind], obj, 0) < 0)
                return NULL;
        return obj;
}

/* The object the inventory holds under that name, without looking it up in libvirt; NULL when none. */
static listed_object *inventory_entry(rc_context *ctx, vf_kind kind, const char *name) {
        rc_inventory *inv = ctx->inventory;
        return inv && inv->objects[kind] ? vf_map_get(inv->objects[kind], name) : NULL;
}

unsigned rc_inventory_listed(rc_context *ctx, vf_kind kind, const char *name) {
        const listed_object *l = inventory_entry(ctx, kind, name);
        return l ? l->state : 0;
}

/* A write makes what the listings said of the object stale. */
static void inventory_written(rc_context *ctx, vf_kind kind, const char *name) {
        listed_object *l = inventory_entry(ctx, kind, name);
        if (l)
                l->state = 0;
}

int rc_inventory_replace(rc_context *ctx, vf_kind kind, const char *name, void *obj, unsigned state) {
        const rc_object_class *cls = class_for_kind(kind);

        rc_inventory_forget(ctx, kind, name);
        return put_object(cls, ctx->inventory->objects[kind], obj, state);
}

void rc_inventory_forget(rc_context *ctx, vf_kind kind, const char *name) {
        listed_object *l = vf_map_remove(ctx->inventory->objects[kind], name);
        if (l) {
                class_for_kind(kind)->free(l->obj);
                free(l);
        }
}

int rc_inventory_foreach(rc_context *ctx, vf_kind kind, int (*fn)(void *obj, void *userdata), void *userdata) {
        size_t it = 0;
        listed_object *l;

        if (!ctx->inventory->listed[kind]) {
                _cleanup_free_ char *errmsg = NULL;
                int r = inventory_list_kind(ctx->inventory, kind, &errmsg);
                if (r < 0)
                        return r;
        }
        while (vf_map_next(ctx->inventory->objects[kind], &it, NULL, (void **) &l)) {
                int r = fn(l->obj, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- users ------------------------------------------------------------- */

typedef struct user_scan {
        rc_context *ctx;
        bool running_only;
        int (*uses)(xmlDoc *doc, const void *what, bool *ret);
        const void *what;
        char **users;
} user_scan;

static int collect_user(void *obj, void *userdata) {
        user_scan *scan = userdata;
        bool used = false;

        if (scan->running_only) {
                rc_count_read(scan->ctx, RC_CALL_GET_INFO);
                if (virDomainIsActive(obj) != 1)
                        return 0;
        }
        rc_count_read(scan->ctx, RC_CALL_GET_XML);
        _cleanup_free_ char *xml = virDomainGetXMLDesc(obj, scan->running_only ? 0 : VIR_DOMAIN_XML_INACTIVE);
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xml ? rc_xml_parse(xml) : NULL;
        if (!doc)
                return 0; /* gone since the listing */
        int r = scan->uses(doc, scan->what, &used);
        if (r < 0 || !used)
                return r;
        return vf_strv_push(&scan->users, virDomainGetName(obj));
}

int rc_domain_users(rc_context *ctx, bool running_only, int (*uses)(xmlDoc *doc, const void *what, bool *ret),
                    const void *what, char **joined, char **first_key) {
        user_scan scan = { ctx, running_only, uses, what, NULL };
        _cleanup_strv_free_ char **users = NULL;
        int r = rc_inventory_foreach(ctx, VF_KIND_DOMAIN, collect_user, &scan);

        users = scan.users;
        if (r < 0)
                return r;
        *joined = NULL;
        if (!users)
                return 0;
        _cleanup_free_ char *key = first_key ? schema_key(VF_KIND_DOMAIN, users[0]) : NULL;
        if (first_key && !key)
                return -ENOMEM;
        *joined = vf_strv_join((const char *const *) users, ", ");
        if (!*joined)
                return -ENOMEM;
        if (first_key)
                *first_key = TAKE_PTR(key);
        return 0;
}

/* ---- XML helpers ------------------------------------------------------- */

xmlDoc *rc_xml_parse(const char *xml) {
        /* The text comes from libvirt or our own schema: still, never fetch or expand anything. */
        return xmlReadMemory(xml, (int) strlen(xml), "libvirt.xml", NULL,
                             XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

char *rc_xml_format(xmlDoc *doc) {
        xmlBuffer *buf = xmlBufferCreate();
        char *s = NULL;

        if (!buf)
                return NULL;
        if (xmlNodeDump(buf, doc, xmlDocGetRootElement(doc), 0, 1) >= 0)
                s = strdup((const char *) xmlBufferContent(buf));
        xmlBufferFree(buf);
        return s;
}

xmlNode *rc_xml_next(xmlNode *n, const char *name) {
        for (; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0)
                        return n;
        return NULL;
}

xmlNode *rc_xml_child(xmlNode *parent, const char *name) {
        return rc_xml_next(parent ? parent->children : NULL, name);
}

int rc_xml_xpath_strings(xmlDoc *doc, const char *expr, char ***ret) {
        xmlXPathContext *xp = xmlXPathNewContext(doc);
        xmlXPathObject *res = NULL;
        char **v = NULL;
        int r = 0;

        if (!xp)
                return -ENOMEM;
        res = xmlXPathEvalExpression(BAD_CAST expr, xp);
        if (!res) {
                r = -EINVAL;
                goto out;
        }
        for (int i = 0; res->nodesetval && i < res->nodesetval->nodeNr && r == 0; i++) {
                xmlChar *s = xmlNodeGetContent(res->nodesetval->nodeTab[i]);
                r = vf_strv_push(&v, s ? (const char *) s : "");
                xmlFree(s);
        }
out:
        xmlXPathFreeObject(res);
        xmlXPathFreeContext(xp);
        if (r < 0) {
                vf_strv_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

char *rc_xml_xpath_string(xmlDoc *doc, const char *expr) {
        char **v = NULL;
        char *s = NULL;

        if (rc_xml_xpath_strings(doc, expr, &v) >= 0 && v && v[0])
                s = strdup(v[0]);
        vf_strv_free(v);
        return s;
}

/* ---- ownership marker -------------------------------------------------- */

void rc_owner_done(rc_owner *o) {
        free(o->instance);
        free(o->resource);
        free(o->hash);
        free(o->definition_hash);
        *o = (rc_owner) {};
}

/* Newest first: a reader tries the form libvirt most likely holds before the others. */
static const char *const owner_forms[] = { RC_OWNER_NS, RC_OWNER_NS_1 };

bool rc_owner_ns_known(const xmlChar *href) {
        for (size_t i = 0; href && i < ELEMENTSOF(owner_forms); i++)
                if (xmlStrcmp(href, BAD_CAST owner_forms[i]) == 0)
                        return true;
        return false;
}

static xmlNode *owner_node(xmlDoc *doc, const char *ns) {
        xmlNode *metadata = rc_xml_child(xmlDocGetRootElement(doc), "metadata");
        for (xmlNode *n = metadata ? metadata->children : NULL; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE && n->ns && xmlStrcmp(n->ns->href, BAD_CAST ns) == 0 &&
                    xmlStrcmp(n->name, BAD_CAST "owner") == 0)
                        return n;
        return NULL;
}

static char *node_attr(xmlNode *n, const char *name) {
        xmlChar *v = xmlGetProp(n, BAD_CAST name);
        char *s = v ? strdup((const char *) v) : NULL;
        xmlFree(v);
        return s;
}

/* The first form: a fact per attribute. */
static void read_attributes(xmlNode *n, rc_owner *o, char **generation) {
        o->instance = node_attr(n, "instance");
        o->resource = node_attr(n, "resource");
        o->hash = node_attr(n, "hash");
        o->definition_hash = node_attr(n, "definition");
        *generation = node_attr(n, "generation");
}

static char **text_fact(rc_owner *o, char **generation, const char *key) {
        if (strcmp(key, "instance") == 0)
                return &o->instance;
        if (strcmp(key, "resource") == 0)
                return &o->resource;
        if (strcmp(key, "generation") == 0)
                return generation;
        if (strcmp(key, "hash") == 0)
                return &o->hash;
        if (strcmp(key, "definition") == 0)
                return &o->definition_hash;
        return NULL;
}

/*
 * A line "key=value" per fact, in any order; a key this version does not know
 * is passed over, for a later one may add facts. A fact given twice leaves
 * the marker unread: whose an object is must not hang on which line wins.
 */
static int read_text(xmlNode *n, rc_owner *o, char **generation) {
        xmlChar *content = xmlNodeGetContent(n);
        char *text = (char *) content, *line;
        int r = content ? 0 : -ENOMEM;

        while (r >= 0 && (line = strsep(&text, "\n"))) {
                char *eq = strchr(line, '=');
                if (!eq)
                        continue;
                *eq = '\0';
                char **fact = text_fact(o, generation, line);
                if (!fact)
                        continue;
                if (*fact)
                        r = -EBADMSG;
                else if (!(*fact = strdup(eq + 1)))
                        r = -ENOMEM;
        }
        xmlFree(content);
        return r;
}

int rc_owner_read(xmlDoc *doc, rc_owner *ret) {
        xmlNode *n = owner_node(doc, RC_OWNER_NS), *first_form;
        _cleanup_free_ char *generation = NULL;
        int r = 0;

        *ret = (rc_owner) {};
        if (n)
                r = read_text(n, ret, &generation);
        else if ((first_form = owner_node(doc, RC_OWNER_NS_1)))
                read_attributes(first_form, ret, &generation);
        if (r < 0 || !ret->instance) {
                rc_owner_done(ret);
                return -ENOENT;
        }
        ret->generation = generation ? strtoll(generation, NULL, 10) : 0;
        return 0;
}

static void remove_markers(xmlDoc *doc) {
        for (size_t i = 0; i < ELEMENTSOF(owner_forms); i++)
                for (xmlNode *old; (old = owner_node(doc, owner_forms[i]));) {
                        xmlUnlinkNode(old);
                        xmlFreeNode(old);
                }
}

static xmlNode *metadata_of(xmlDoc *doc) {
        xmlNode *root = xmlDocGetRootElement(doc);
        xmlNode *metadata = rc_xml_child(root, "metadata");

        if (metadata)
                return metadata;
        metadata = xmlNewNode(NULL, BAD_CAST "metadata");
        if (!metadata)
                return NULL;
        /* libvirt reads <metadata> anywhere among the root's children. */
        if (root->children)
                xmlAddPrevSibling(root->children, metadata);
        else
                xmlAddChild(root, metadata);
        return metadata;
}

int rc_owner_write(xmlDoc *doc, const rc_context *ctx, const rc_request *req, int64_t generation) {
        _cleanup_free_ char *resource = schema_key(req->kind, req->name);
        _cleanup_free_ char *text = NULL;

        if (!resource)
                return -ENOMEM;
        remove_markers(doc);
        xmlNode *metadata = metadata_of(doc);
        xmlNode *owner = metadata ? xmlNewChild(metadata, NULL, BAD_CAST "owner", NULL) : NULL;
        xmlNs *ns = owner ? xmlNewNs(owner, BAD_CAST RC_OWNER_NS, BAD_CAST "virtform") : NULL;
        if (!ns)
                return -ENOMEM;
        xmlSetNs(owner, ns);
        text = vf_printf("instance=%s\nresource=%s\ngeneration=%" PRId64 "\nhash=%s%s%s", ctx->instance_id, resource,
                         generation, req->hash, req->definition_hash ? "\ndefinition=" : "",
                         req->definition_hash ? req->definition_hash : "");
        if (!text)
                return -ENOMEM;
        xmlNodeAddContent(owner, BAD_CAST text);
        return 0;
}

int rc_applied_desired_read(rc_context *ctx, const rc_request *req, rc_result *res, char **ret) {
        const char *kind = vf_kind_to_string(req->kind);
        int r = req->record ? state_applied_desired_get(ctx->store, kind, req->name, ret) : -ENOENT;

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                rc_result_set(res, RC_FAILED, false, "ReadFailed",
                              "cannot read what was last applied to %s %s from the state file: %s", kind, req->name,
                              state_last_error(ctx->store));
        return r;
}

/* ---- steps ------------------------------------------------------------- */

const char *rc_libvirt_error(void) {
        const char *m = virGetLastErrorMessage();
        return m ? m : "unknown libvirt error";
}

void rc_count_read(rc_context *ctx, rc_call call) {
        ctx->counters.calls[call]++;
}

/* Lists the step, then makes its intent durable: nothing is written that the log does not know of. */
static int intend(rc_context *ctx, const rc_request *req, rc_result *res, const char *what) {
        /* A failed push only loses the step's description, never the step. */
        (void) vf_strv_push(&res->steps, what);
        if (ctx->on_step)
                ctx->on_step(ctx->on_step_userdata, req->kind, req->name, what);
        if (ctx->dry_run)
                return 0;
        int r = state_intent_begin(ctx->store, vf_kind_to_string(req->kind), req->name, req->generation, what,
                                   &ctx->open_intent);
        if (r < 0) {
                rc_result_set(res, RC_FAILED, false, "StateWriteFailed",
                              "%s %s was not done: its intent cannot be recorded in the state file: %s (%s); "
                              "check the disk the state file is on",
                              what, req->name, strerror(-r), state_last_error(ctx->store));
                return -EIO;
        }
        ctx->steps_begun++;
        if (ctx->fault_after_intents > 0 && --ctx->fault_after_intents == 0)
                raise(SIGKILL);
        return 1;
}

static int record_outcome(rc_context *ctx, const rc_request *req, rc_result *res, const char *what, bool ok,
                          const char *message) {
        int r = state_intent_end(ctx->store, ctx->open_intent, ok, message);
        ctx->open_intent = 0;
        if (r >= 0)
                return 0;
        rc_result_set(res, RC_FAILED, false, "StateWriteFailed",
                      "%s %s %s, but its outcome cannot be recorded in the state file: %s (%s); the next run "
                      "finds what was done",
                      what, req->name, ok ? "succeeded" : "failed", strerror(-r), state_last_error(ctx->store));
        return -EIO;
}

int rc_step_begin(rc_context *ctx, const rc_request *req, rc_result *res, rc_call call, const char *what) {
        int r = intend(ctx, req, res, what);
        if (r > 0) {
                inventory_written(ctx, req->kind, req->name);
                ctx->counters.calls[call]++;
                ctx->open_call = call;
        }
        return r;
}

/* What libvirt will report of the write just made, counted as the result's own (rc_result.caused). */
static void count_caused(const rc_context *ctx, const rc_request *req, rc_result *res) {
        const rc_object_class *cls = class_for_kind(req->kind);
        const rc_call_events *caused = cls ? &cls->caused[ctx->open_call] : NULL;
        rc_caused one = { .also = caused ? caused->also : 0 };

        for (size_t i = 0; caused && i < RC_LIFECYCLE_EVENTS; i++)
                one.counts[i] = (caused->events & RC_EVENT(i)) != 0;
        rc_caused_add(&res->caused, &one);
}

/* A libvirt write was made: a crash test may die here. */
static void libvirt_write_made(rc_context *ctx) {
        if (ctx->fault_after_libvirt_writes > 0 && --ctx->fault_after_libvirt_writes == 0)
                raise(SIGKILL);
}

int rc_step_end(rc_context *ctx, const rc_request *req, rc_result *res, const char *what, bool ok,
                const char *fail_reason) {
        if (!ok) {
                /* Copied before the store is written: SQLite calls do not touch libvirt's error, but be sure. */
                _cleanup_free_ char *refusal = strdup(rc_libvirt_error());
                return rc_step_end_refused(ctx, req, res, what, refusal ? refusal : "out of memory", fail_reason);
        }
        libvirt_write_made(ctx);
        int r = record_outcome(ctx, req, res, what, true, NULL);
        count_caused(ctx, req, res);
        return r;
}

int rc_step_end_refused(rc_context *ctx, const rc_request *req, rc_result *res, const char *what,
                        const char *refusal, const char *fail_reason) {
        libvirt_write_made(ctx);
        if (!fail_reason) {
                _cleanup_free_ char *message = vf_printf("%s; found done already", refusal);
                return record_outcome(ctx, req, res, what, false, message ? message : refusal);
        }
        (void) record_outcome(ctx, req, res, what, false, refusal);
        /* The write's own failure says more than a failure to record it. */
        rc_result_set(res, RC_FAILED, false, fail_reason, "%s %s: %s", what, req->name, refusal);
        return -EIO;
}

int rc_host_step_begin(rc_context *ctx, const rc_request *req, rc_result *res, const char *what) {
        return intend(ctx, req, res, what);
}

int rc_host_step_end(rc_context *ctx, const rc_request *req, rc_result *res, const char *what, bool ok,
                     const char *message) {
        return record_outcome(ctx, req, res, what, ok, message);
}

int rc_step_forget(rc_context *ctx, const rc_request *req, rc_result *res) {
        int r = rc_host_step_begin(ctx, req, res, RC_STEP_FORGET);
        if (r > 0)
                r = rc_host_step_end(ctx, req, res, RC_STEP_FORGET, true, NULL);
        return r < 0 ? r : 0;
}

bool rc_state_step(const rc_context *ctx, rc_result *res, const char *what) {
        (void) vf_strv_push(&res->steps, what);
        return !ctx->dry_run;
}

void rc_fault_point(const rc_context *ctx, const char *point) {
        if (ctx->fault_point && strcmp(ctx->fault_point, point) == 0)
                raise(SIGKILL);
}
