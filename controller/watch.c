/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * inotify on the desired-state directories. File events name the file that
 * changed; which files count is schema's business. A directory that does not
 * exist yet is waited for through its parent, so that a /run/virtform.d made
 * after start-up is picked up without polling.
 */
#include "controller/loop.h"

#include <fcntl.h>
#include <libgen.h>
#include <sys/inotify.h>
#include <sys/stat.h>

/* IN_MODIFY too: each write of a file still being written slides the debounce, so it is read once it settles. */
#define FILE_EVENTS (IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB)
#define SELF_EVENTS (IN_DELETE_SELF | IN_MOVE_SELF)
#define PARENT_EVENTS (IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)

typedef struct watched_dir {
        char *path;
        int wd; /* on the directory; -1 while it does not exist */
        int parent_wd; /* on its parent while it does not exist; else -1 */
} watched_dir;

struct watch {
        int fd;
        watched_dir *dirs;
        size_t n_dirs;
        int64_t hold_usec; /* how long a file open for writing is waited for; 0: not at all */
        watch_hold *holds;
        size_t n_holds;
};

/* Whether a directory other than d still needs the watch descriptor wd. */
static bool wd_shared(const watch *w, const watched_dir *d, int wd) {
        for (size_t i = 0; i < w->n_dirs; i++)
                if (&w->dirs[i] != d && (w->dirs[i].wd == wd || w->dirs[i].parent_wd == wd))
                        return true;
        return false;
}

static void unwatch(watch *w, const watched_dir *d, int wd) {
        if (wd >= 0 && !wd_shared(w, d, wd))
                inotify_rm_watch(w->fd, wd);
}

/*
 * One inode has one watch: a directory that is both watched and the parent
 * of a missing one gets one descriptor for both, whose masks add up
 * (IN_MASK_ADD) rather than replace each other.
 */
static int add_dir_watch(watch *w, const watched_dir *d) {
        return inotify_add_watch(w->fd, d->path, FILE_EVENTS | SELF_EVENTS | IN_ONLYDIR | IN_MASK_ADD);
}

/*
 * A directory found missing is waited for through its parent, but the
 * parent is watched only after the directory was found missing: one made in
 * between sends its IN_CREATE to no one, and would be waited for forever
 * while files are dropped into it unseen. So it is looked for once more with
 * the parent watched: made before that second look, it is watched directly
 * (and read whole by the pass that follows every watch_dir); made after it,
 * the parent's IN_CREATE tells of it.
 */
static void watch_dir(watch *w, watched_dir *d) {
        d->parent_wd = -1;
        d->wd = add_dir_watch(w, d);
        if (d->wd >= 0)
                return;
        _cleanup_free_ char *copy = strdup(d->path);
        int parent_wd = copy ? inotify_add_watch(w->fd, dirname(copy), PARENT_EVENTS | IN_MASK_ADD) : -1;
        d->wd = parent_wd >= 0 ? add_dir_watch(w, d) : -1;
        if (d->wd >= 0)
                unwatch(w, d, parent_wd);
        else
                d->parent_wd = parent_wd;
}

int watch_new(char *const *dirs, int64_t hold_usec, watch **ret) {
        watch *w = calloc(1, sizeof *w);
        size_t n = vf_strv_length(dirs);

        if (!w)
                return -ENOMEM;
        w->hold_usec = hold_usec;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        w->dirs = calloc(n ? n : 1, sizeof *w->dirs);
        if (w->fd < 0 || !w->dirs) {
                int r = w->fd < 0 ? -errno : -ENOMEM;
                watch_free(w);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                w->dirs[i].path = strdup(dirs[i]);
                if (!w->dirs[i].path) {
                        watch_free(w);
                        return -ENOMEM;
                }
                w->n_dirs++;
                watch_dir(w, &w->dirs[i]);
        }
        *ret = w;
        return 0;
}

void watch_free(watch *w) {
        if (!w)
                return;
        for (size_t i = 0; i < w->n_dirs; i++)
                free(w->dirs[i].path);
        free(w->dirs);
        while (w->n_holds > 0)
                watch_release(w, 0);
        free(w->holds);
        if (w->fd >= 0)
                close(w->fd);
        free(w);
}

int watch_fd(const watch *w) {
        return w->fd;
}

/* ---- files open for writing ------------------------------------------------------- */

static ssize_t hold_find(const watch *w, const char *path) {
        for (size_t i = 0; i < w->n_holds; i++)
                if (vf_streq_ptr(w->holds[i].path, path))
                        return (ssize_t) i;
        return -1;
}

void watch_release(watch *w, size_t i) {
        free(w->holds[i].path);
        w->holds[i] = w->holds[--w->n_holds];
}

/*
 * A file created to be written: a regular file with no other name. A symlink (symlink(2)) and a
 * hard link to a file that exists already (link(2): ln, cp -l, rsync --link-dest) are made whole
 * by one call, and never closed.
 */
static bool created_for_writing(const char *path) {
        struct stat st;
        return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
}

/*
 * The writer's own events say when it is done: a write (or a file created
 * empty) starts a hold, and closing the file, renaming it or deleting it
 * ends it. The hold's end is fixed at its start, so a writer that never
 * closes is read after hold_usec all the same. Only files that are read are
 * held: an editor keeps its swap file open for the whole session.
 */
static int hold_update(watch *w, const watched_dir *d, const struct inotify_event *ev) {
        if (!schema_file_is_candidate(ev->name))
                return 0;
        _cleanup_free_ char *path = vf_printf("%s/%s", d->path, ev->name);
        ssize_t i = path ? hold_find(w, path) : -1;

        if (!path)
                return -ENOMEM;
        if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE)) {
                if (i >= 0)
                        watch_release(w, (size_t) i);
                return 0;
        }
        bool writing = (ev->mask & IN_MODIFY) || ((ev->mask & IN_CREATE) && created_for_writing(path));
        if (!writing || i >= 0 || w->hold_usec == 0)
                return 0;
        watch_hold *holds = reallocarray(w->holds, w->n_holds + 1, sizeof *holds);
        if (!holds)
                return -ENOMEM;
        w->holds = holds;
        const char *name = path + strlen(d->path) + 1;
        w->holds[w->n_holds++] = (watch_hold) { .path = TAKE_PTR(path), .name = name,
                                                .until_usec = vf_now_monotonic_usec() + w->hold_usec };
        return 0;
}

/* A directory that came or went takes its files' holds along: they are read whole again. */
static void release_dir(watch *w, const watched_dir *d) {
        size_t len = strlen(d->path);

        for (size_t i = 0; i < w->n_holds;)
                if (strncmp(w->holds[i].path, d->path, len) == 0 && w->holds[i].path[len] == '/' &&
                    !strchr(w->holds[i].path + len + 1, '/'))
                        watch_release(w, i);
                else
                        i++;
}

size_t watch_n_holds(const watch *w) {
        return w->n_holds;
}

watch_hold *watch_hold_at(watch *w, size_t i) {
        return &w->holds[i];
}

/* A watched directory came or went: watch it (or its parent) anew and reload everything. */
static void rewatch(watch *w, watched_dir *d, bool *rescan) {
        release_dir(w, d);
        unwatch(w, d, d->wd);
        unwatch(w, d, d->parent_wd);
        watch_dir(w, d);
        *rescan = true;
}

static const char *basename_of(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash ? slash + 1 : path;
}

/* ---- events ------------------------------------------------------------------------ */

/* A shared descriptor's event may concern several directories: each one looks at it. */
static int handle_event(watch *w, const struct inotify_event *ev, char ***names, bool *rescan) {
        if (ev->mask & IN_Q_OVERFLOW) {
                *rescan = true;
                return 0;
        }
        for (size_t i = 0; i < w->n_dirs; i++) {
                watched_dir *d = &w->dirs[i];
                if (ev->wd == d->parent_wd && ev->len > 0 && strcmp(ev->name, basename_of(d->path)) == 0)
                        rewatch(w, d, rescan);
                else if ((ev->wd == d->wd || ev->wd == d->parent_wd) && (ev->mask & (SELF_EVENTS | IN_IGNORED)))
                        rewatch(w, d, rescan); /* it, or the parent it waits in, went away */
                else if (ev->wd == d->wd && ev->len == 0 && (ev->mask & IN_ATTRIB))
                        *rescan = true; /* the directory's own owner or mode: its trust, for every file */
                else if (ev->wd == d->wd && ev->len > 0 && !(ev->mask & IN_ISDIR)) {
                        int r = hold_update(w, d, ev);
                        if (r >= 0 && !vf_strv_contains(*names, ev->name))
                                r = vf_strv_push(names, ev->name);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int watch_read(watch *w, char ***names, bool *rescan) {
        char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

        for (;;) {
                ssize_t n = read(w->fd, buf, sizeof buf);
                if (n < 0)
                        return errno == EAGAIN ? 0 : -errno;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *) p;
                        int r = handle_event(w, ev, names, rescan);
                        if (r < 0)
                                return r;
                        p += sizeof(struct inotify_event) + ev->len;
                }
        }
}
