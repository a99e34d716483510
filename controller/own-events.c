/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's own writes, recognised when libvirt reports them back.
 *
 * Every define, start or destroy the daemon makes comes back as a lifecycle
 * event, and an event is the cue to reconcile its object. Taken as news, the
 * events of a cold start would reconcile every resource a second time, to
 * find it as the first pass left it. Ignoring events for a while after a
 * write would be cheaper, and wrong: what someone else does just then (virsh
 * destroy, a guest shutting down) must still be seen.
 *
 * So each pass says, per resource, how many of each lifecycle event its
 * successful writes make libvirt report (rc_result.caused: the reconcilers
 * know which event a write of their kind is seen as; here they are numbers).
 * That many events of those numbers are taken as the daemon's own; any
 * other event, and any one more of the same number, is news and queues the
 * resource. Counting, not matching by time, is what keeps someone else's
 * change visible: if virsh defines a domain just after the daemon did, two
 * DEFINED events arrive for one expected, in whichever order, and one of
 * them queues it.
 *
 * What some drivers add (QEMU's RESUMED before STARTED, SHUTDOWN before
 * STOPPED) is taken as the daemon's own, once, only while what every driver
 * sends is still expected: it comes before that, or not at all.
 *
 * What is expected of a resource is replaced when it is reconciled again,
 * since that pass saw the object as it is and says anew what it wrote, and
 * it is forgotten once what every driver sends is all taken, after
 * OWN_EVENTS_TTL_USEC, or when the connection goes. The time bound is for
 * an event that never comes; one that comes after it costs one more
 * reconcile, never a missed change.
 *
 * The other way, comparing what an event says with what the last pass left
 * (state, definition), would ask libvirt about each event's object: a call
 * per event where this asks none.
 */
#include "controller/loop.h"

/*
 * Events are delivered milliseconds after the write; this is for a loaded host, valgrind included. What
 * is expected is at most one entry per resource, and one that ended goes at the next event or pass.
 */
#define OWN_EVENTS_TTL_USEC (30 * 1000000LL)

typedef struct expected {
        int64_t until_usec; /* monotonic */
        rc_caused left;
} expected;

struct own_events {
        vf_map *by_key; /* "kind/name" -> expected* */
        int64_t next_expiry_usec; /* no expectation ends before; INT64_MAX: none does */
};

int own_events_new(own_events **ret) {
        own_events *o = calloc(1, sizeof *o);

        if (!o || !(o->by_key = vf_map_new())) {
                free(o);
                return -ENOMEM;
        }
        o->next_expiry_usec = INT64_MAX;
        *ret = o;
        return 0;
}

void own_events_clear(own_events *o) {
        const char *key;
        size_t it = 0;

        while (vf_map_next(o->by_key, &it, &key, NULL))
                free(vf_map_remove(o->by_key, key)); /* removing leaves the iteration where it is */
        o->next_expiry_usec = INT64_MAX;
}

void own_events_free(own_events *o) {
        if (!o)
                return;
        vf_map_free_with(o->by_key, free);
        free(o);
}

/* Once the earliest end has passed, what has ended goes: a scan per expiry, not per event. */
static void expire(own_events *o, int64_t now_usec) {
        int64_t next = INT64_MAX;
        const char *key;
        size_t it = 0;
        void *v;

        if (now_usec < o->next_expiry_usec)
                return;
        while (vf_map_next(o->by_key, &it, &key, &v)) {
                const expected *x = v;
                if (x->until_usec <= now_usec)
                        free(vf_map_remove(o->by_key, key)); /* removing leaves the iteration where it is */
                else if (x->until_usec < next)
                        next = x->until_usec;
        }
        o->next_expiry_usec = next;
}

/* What only some drivers send is not waited for: it comes before the rest, or not at all. */
static bool all_taken(const expected *x) {
        for (size_t i = 0; i < RC_LIFECYCLE_EVENTS; i++)
                if (x->left.counts[i] > 0)
                        return false;
        return true;
}

int own_events_expect(own_events *o, const char *key, const rc_caused *caused, int64_t now_usec) {
        expected *x = vf_map_remove(o->by_key, key);

        expire(o, now_usec);
        if (!x && !(x = malloc(sizeof *x)))
                return -ENOMEM;
        x->until_usec = now_usec + OWN_EVENTS_TTL_USEC;
        x->left = *caused;
        if (all_taken(x)) {
                free(x);
                return 0;
        }
        int r = vf_map_put(o->by_key, key, x);
        if (r < 0) {
                free(x);
                return r;
        }
        if (x->until_usec < o->next_expiry_usec)
                o->next_expiry_usec = x->until_usec;
        return 0;
}

/* Takes from x what it expects of one event number, up to seen of them; returns how many that was. */
static unsigned take(expected *x, size_t event, unsigned seen) {
        if (!x)
                return 0;
        unsigned own = x->left.counts[event] < seen ? x->left.counts[event] : seen;
        x->left.counts[event] -= (uint8_t) own;
        if (own < seen && (x->left.also & RC_EVENT(event))) {
                x->left.also &= (uint16_t) ~RC_EVENT(event);
                own++;
        }
        return own;
}

bool own_events_news(own_events *o, const char *key, const libvirt_seen *seen, int64_t now_usec) {
        bool news = seen->other;

        expire(o, now_usec);
        expected *x = vf_map_get(o->by_key, key);
        for (size_t i = 0; i < RC_LIFECYCLE_EVENTS; i++)
                news |= seen->counts[i] > take(x, i, seen->counts[i]);
        if (x && all_taken(x))
                free(vf_map_remove(o->by_key, key));
        return news;
}
