/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `virtform state recover`: a lost store rebuilt from what the host shows.
 *
 * Every object virtform defines carries its store's instance id, its
 * "kind/name", generation and desired hash. From those a record is made as
 * the pass would have left it, so that the next apply of the same files finds
 * every object in sync and writes nothing. What only the store knew (a
 * device's original driver, a VF's saved MAC and VLAN, drift since the last
 * pass) cannot be rebuilt: docs/state-file.md says what is lost.
 */
#include "controller/controller.h"

typedef struct recovery {
        vf_controller *c;
        rc_marked_object *objs;
        size_t n;
} recovery;

static void recovery_done(recovery *rec) {
        rc_marked_object_list_free(rec->objs, rec->n);
}

static int refuse_records(vf_controller *c, char **errmsg) {
        state_record **recs = NULL;
        size_t n = 0;

        int r = state_list(c->store, &recs, &n);
        state_record_list_free(recs, n);
        if (r < 0)
                return vf_error(errmsg, r, "cannot read the state file: %s", state_last_error(c->store));
        if (n > 0)
                return vf_error(errmsg, -ENOTEMPTY, "the state file holds %zu records already: recover only rebuilds "
                                "a lost or emptied state; if this one is wrong, move it away first", n);
        return 0;
}

static int list_marked(recovery *rec, char **errmsg) {
        int r = rc_context_begin_pass(&rec->c->rc, true, errmsg);

        for (vf_kind k = 0; k < _VF_KIND_MAX && r >= 0; k++) {
                const rc_ops *ops = rc_ops_for_kind(k);
                if (ops && ops->marked_objects)
                        r = ops->marked_objects(&rec->c->rc, &rec->objs, &rec->n);
        }
        if (r < 0 && errmsg && !*errmsg)
                return vf_error(errmsg, r, "cannot read libvirt's objects: %s", rc_libvirt_error());
        return r;
}

/* "ID (kind/name, ...); ID (...)": which objects carry which instance. */
static char *describe_instances(const recovery *rec) {
        vf_buf b = {};

        for (size_t i = 0; i < rec->n; i++) {
                const char *id = rec->objs[i].owner.instance;
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(rec->objs[j].owner.instance, id) == 0;
                if (seen)
                        continue;
                const char *sep = "";
                vf_buf_printf(&b, "%s%s (", b.len ? "; " : "", id);
                for (size_t j = i; j < rec->n; j++)
                        if (strcmp(rec->objs[j].owner.instance, id) == 0) {
                                vf_buf_printf(&b, "%s%s", sep, rec->objs[j].owner.resource);
                                sep = ", ";
                        }
                vf_buf_puts(&b, ")");
        }
        return vf_buf_steal(&b);
}

static int pick_instance(const recovery *rec, const char *wanted, const char **ret, char **errmsg) {
        const char *found = NULL;
        bool several = false;

        for (size_t i = 0; i < rec->n; i++) {
                const char *id = rec->objs[i].owner.instance;
                if (wanted && strcmp(id, wanted) != 0)
                        continue;
                several = several || (found && strcmp(found, id) != 0);
                found = found ? found : id;
        }
        _cleanup_free_ char *all = describe_instances(rec);
        if (!found && rec->n == 0)
                return vf_error(errmsg, -ENOENT, "no libvirt object carries a virtform ownership marker: there is "
                                "nothing to recover; check that -c names the right hypervisor");
        if (!found)
                return vf_error(errmsg, -ENOENT, "no libvirt object carries instance %s; found: %s", wanted,
                                all ? all : "out of memory");
        if (several)
                return vf_error(errmsg, -ENOTUNIQ, "libvirt's objects carry the markers of more than one virtform "
                                "state: %s; choose the one to recover with --instance ID",
                                all ? all : "out of memory");
        *ret = found;
        return 0;
}

static int put_record(vf_controller *c, const rc_marked_object *m, FILE *out) {
        _cleanup_free_ char *key = schema_key(m->kind, m->name);
        int64_t now = vf_now_realtime_usec();

        if (!key)
                return -ENOMEM;
        /* A marker copied onto another object by hand names something else: that object is not ours. */
        if (!vf_streq_ptr(m->owner.resource, key)) {
                vf_log(c, VF_LOG_WARNING, "%s carries the marker of %s; left out", key, m->owner.resource);
                return 0;
        }
        _cleanup_(state_record_freep) state_record *rec = state_record_new(vf_kind_to_string(m->kind), m->name);
        if (!rec)
                return -ENOMEM;
        rec->generation = rec->observed_generation = m->owner.generation;
        rec->updated_usec = now;
        int r = vf_free_and_strdup(&rec->desired_hash, m->owner.hash);
        if (r >= 0)
                r = vf_free_and_strdup(&rec->uuid, m->uuid);
        if (r >= 0)
                r = vf_free_and_strdup(&rec->applied_xml_hash, m->baseline);
        if (r >= 0)
                r = state_record_set_condition(rec, "Ready", false, "Recovered",
                                               "rebuilt from libvirt's ownership marker; the next apply confirms it",
                                               now);
        if (r >= 0 && m->restart_pending)
                r = state_record_set_condition(rec, "RestartPending", true, "ConfigChanged",
                                               "it runs an older definition than the one it has (recovered); "
                                               "restart it to apply the change",
                                               now);
        if (r >= 0)
                r = state_put(c->store, rec);
        if (r >= 0)
                fprintf(out, "recovered %s (generation %" PRIi64 ", uuid %s)\n", key, rec->generation, rec->uuid);
        return r;
}

static int put_devices(vf_controller *c, const rc_marked_object *m, FILE *out) {
        for (char **bdf = m->hostdevs; bdf && *bdf; bdf++) {
                _cleanup_(state_device_freep) state_device *dev = NULL;
                int r = rc_hostdev_recovered_device(c->opts.sysfs_root, *bdf, &dev);
                if (r < 0) {
                        vf_log(c, VF_LOG_WARNING, "cannot read device %s in sysfs: %s; its binding is not recorded",
                               *bdf, strerror(-r));
                        continue;
                }
                if (!dev)
                        continue;
                r = state_device_put(c->store, dev);
                if (r < 0)
                        return r;
                fprintf(out, "recovered device %s (bound to vfio-pci; original driver unknown)\n", *bdf);
        }
        return 0;
}

static int write_records(vf_controller *c, const recovery *rec, const char *instance, FILE *out, char **errmsg) {
        int r = state_begin(c->store);
        if (r >= 0)
                r = state_adopt_instance_id(c->store, instance);
        for (size_t i = 0; i < rec->n && r >= 0; i++) {
                const rc_marked_object *m = &rec->objs[i];
                if (strcmp(m->owner.instance, instance) != 0)
                        continue;
                r = put_record(c, m, out);
                if (r >= 0)
                        r = put_devices(c, m, out);
        }
        if (r >= 0)
                r = state_commit(c->store);
        if (r < 0) {
                const char *why = r == -ENOTEMPTY ? "another process wrote to it" : state_last_error(c->store);
                (void) state_rollback(c->store);
                return vf_error(errmsg, r, "cannot write the recovered state: %s (%s); the state file is left "
                                "as it was", strerror(-r), why);
        }
        return state_publish(c->store, errmsg);
}

int vf_controller_recover(vf_controller *c, const char *instance, FILE *out, char **errmsg) {
        _cleanup_(recovery_done) recovery rec = { .c = c };
        const char *chosen = NULL;

        int r = list_marked(&rec, errmsg);
        if (r >= 0)
                r = pick_instance(&rec, instance, &chosen, errmsg);
        if (r >= 0)
                r = vf_controller_open_store(c, errmsg);
        if (r >= 0)
                r = refuse_records(c, errmsg);
        if (r >= 0)
                r = write_records(c, &rec, chosen, out, errmsg);
        rc_context_end_pass(&c->rc);
        return r;
}
