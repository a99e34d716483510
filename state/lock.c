/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The single-instance lock: one writer per state file. An flock(2) on
 * PATH.lock, not on the database itself: SQLite holds fcntl(2) locks on the
 * database, and closing any other descriptor of that file would drop them.
 * The lock file names its holder, so that a second writer can say who is in
 * the way, and it is emptied when the holder closes the store: a name found
 * in it by the next holder means the last one was killed, or the host went
 * down. It is never removed: removing a lock file lets two processes each
 * lock a different inode.
 *
 * Its text: "PID COMMAND LINE\n", then "opening\n" until the store is open
 * with its -wal.
 */
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "state/state-internal.h"

/* Enough to recognise the holder: "virtform run --state ... /etc/virtform.d". */
#define HOLDER_MAX 256

/* "PID COMMAND LINE", with the NULs between arguments made spaces. */
static void describe_self(char buf[static HOLDER_MAX]) {
        int n = snprintf(buf, HOLDER_MAX, "%d ", (int) getpid());
        _cleanup_close_ int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        ssize_t len = fd >= 0 ? read(fd, buf + n, (size_t) (HOLDER_MAX - n - 1)) : -1;

        if (len <= 0) {
                buf[n - 1] = 0; /* the PID alone says enough to find the process */
                return;
        }
        for (ssize_t i = 0; i < len; i++)
                if (buf[n + i] == 0)
                        buf[n + i] = ' ';
        while (len > 0 && buf[n + len - 1] == ' ')
                len--;
        buf[n + len] = 0;
}

/* A holder writes its name right after it takes the lock: how long to give it, and how often to look. */
#define HOLDER_WAIT_USEC 50000
#define HOLDER_POLL_USEC 5000

#define OPENING_LINE "opening\n"
#define CLOSING_LINE "closing\n"
_Static_assert(sizeof CLOSING_LINE == sizeof OPENING_LINE, "write_state() makes room for one of them");

/* Why the lock is taken: "PID 1234 (virtform run /etc/virtform.d)", or less if the holder did not say yet. */
static char *describe_holder(int fd) {
        char buf[HOLDER_MAX];
        int pid, skip = 0;
        ssize_t len;

        for (int waited = 0; (len = pread(fd, buf, sizeof buf - 1, 0)) == 0 && waited < HOLDER_WAIT_USEC;
             waited += HOLDER_POLL_USEC)
                usleep(HOLDER_POLL_USEC);
        buf[len > 0 ? len : 0] = 0;
        buf[strcspn(buf, "\n")] = 0;
        if (sscanf(buf, "%d %n", &pid, &skip) < 1 || pid <= 0)
                return strdup("another process");
        if (!buf[skip])
                return vf_printf("PID %d", pid);
        return vf_printf("PID %d (%s)", pid, buf + skip);
}

/*
 * Says how the store is left: empty for closed, else our name, and whether
 * we are still opening it. Written over the old text, then cut to length, so
 * that a crash in between leaves a text that says no less.
 */
static int write_state(int fd, state_last_writer last) {
        char buf[HOLDER_MAX + sizeof OPENING_LINE + 1];

        if (last != STATE_LAST_WRITER_CLEAN) {
                describe_self(buf);
                strcat(buf, "\n");
                if (last == STATE_LAST_WRITER_OPENING)
                        strcat(buf, OPENING_LINE);
                else if (last == STATE_LAST_WRITER_CLOSING)
                        strcat(buf, CLOSING_LINE);
        } else
                buf[0] = 0;
        size_t len = strlen(buf);
        if (len > 0 && pwrite(fd, buf, len, 0) != (ssize_t) len)
                return errno ? -errno : -EIO;
        if (ftruncate(fd, (off_t) len) < 0)
                return -errno;
        return 0;
}

static state_last_writer read_state(int fd) {
        char buf[HOLDER_MAX + sizeof OPENING_LINE + 1];

        ssize_t len = pread(fd, buf, sizeof buf - 1, 0);
        if (len <= 0)
                return STATE_LAST_WRITER_CLEAN;
        buf[len] = 0;
        if (strstr(buf, "\n" OPENING_LINE))
                return STATE_LAST_WRITER_OPENING;
        return strstr(buf, "\n" CLOSING_LINE) ? STATE_LAST_WRITER_CLOSING : STATE_LAST_WRITER_KILLED;
}

int state_lock_take(const char *path, int *ret_fd, state_last_writer *ret_last, char **errmsg) {
        _cleanup_free_ char *lock_path = vf_printf("%s.lock", path);
        struct stat st;

        if (!lock_path)
                return vf_error(errmsg, -ENOMEM, "%s: out of memory", path);
        _cleanup_close_ int fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0 && errno == ELOOP)
                return vf_error(errmsg, -ELOOP, "%s is a symlink; remove it: virtform makes its lock file itself",
                                lock_path);
        if (fd < 0)
                return vf_error(errmsg, -errno, "%s: cannot open the lock file: %s", lock_path, strerror(errno));
        if (fstat(fd, &st) < 0)
                return vf_error(errmsg, -errno, "%s: %s", lock_path, strerror(errno));
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
                return vf_error(errmsg, -EPERM, "%s is not a regular file of uid %u; remove it: virtform makes its "
                                "lock file itself", lock_path, (unsigned) geteuid());

        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return vf_error(errmsg, -errno, "%s: cannot lock: %s", lock_path, strerror(errno));
                _cleanup_free_ char *holder = describe_holder(fd);
                return vf_error(errmsg, -EBUSY, "the state file %s is in use by %s; stop it, or wait with "
                                "--wait-lock SEC", path, holder ? holder : "another process");
        }
        *ret_last = read_state(fd);
        /* Best effort, as every write of the text: a full disk must not stop the writer. Without the
         * text, a second process says "another process", and the next writer after a crash skips the
         * check it would have made. */
        (void) write_state(fd, STATE_LAST_WRITER_OPENING);
        *ret_fd = fd;
        fd = -1;
        return 0;
}

void state_lock_mark_open(int fd) {
        (void) write_state(fd, STATE_LAST_WRITER_KILLED);
}

void state_lock_mark_closing(int fd) {
        if (fd >= 0)
                (void) write_state(fd, STATE_LAST_WRITER_CLOSING);
}

void state_lock_release(int fd, state_last_writer leave) {
        if (fd < 0)
                return;
        (void) write_state(fd, leave);
        close(fd);
}
