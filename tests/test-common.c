/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/common.h"
#include "tests/helpers.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/stat.h>

static void test_kind_names(void **state) {
        for (vf_kind k = 0; k < _VF_KIND_MAX; k++) {
                assert_int_equal(vf_kind_from_string(vf_kind_to_string(k)), k);
                assert_int_equal(vf_kind_from_yaml(vf_kind_to_yaml(k)), k);
        }
        assert_int_equal(vf_kind_from_string("Domain"), -EINVAL);
        assert_int_equal(vf_kind_from_yaml("domain"), -EINVAL);
        assert_int_equal(vf_kind_from_string(NULL), -EINVAL);
}

static void test_sha256(void **state) {
        char hex[VF_HASH_HEX_LEN + 1];
        vf_sha256_hex("abc", 3, hex);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* Whole at every length, on either side of the buffer the short ones are formatted in first. */
static void test_printf_any_length(void **state) {
        for (int len = 0; len < 1100; len += len < 300 ? 1 : 97) {
                _cleanup_free_ char *expected = malloc((size_t) len + 3);
                assert_non_null(expected);
                memset(expected + 1, 'x', (size_t) len);
                expected[0] = '<';
                expected[len + 1] = '>';
                expected[len + 2] = '\0';
                _cleanup_free_ char *s = vf_printf("<%.*s>", len, expected + 1);
                assert_non_null(s);
                assert_string_equal(s, expected);
        }
        _cleanup_free_ char *empty = vf_printf("%s", "");
        assert_non_null(empty);
        assert_string_equal(empty, "");
}

/* The same text keeps the string it has; another replaces it; NULL clears it; aliasing is safe. */
static void test_free_and_strdup(void **state) {
        char *field = NULL;

        assert_int_equal(vf_free_and_strdup(&field, "<domain/>"), 0);
        assert_string_equal(field, "<domain/>");
        const char *kept = field;
        assert_int_equal(vf_free_and_strdup(&field, "<domain/>"), 0);
        assert_ptr_equal(field, kept);
        assert_int_equal(vf_free_and_strdup(&field, field), 0);
        assert_ptr_equal(field, kept);
        assert_int_equal(vf_free_and_strdup(&field, "<network/>"), 0);
        assert_string_equal(field, "<network/>");
        assert_int_equal(vf_free_and_strdup(&field, NULL), 0);
        assert_null(field);
}

static void test_map_put_get_remove_grow(void **state) {
        _cleanup_(vf_map_freep) vf_map *m = vf_map_new();
        char key[32];

        for (intptr_t i = 0; i < 5000; i++) {
                snprintf(key, sizeof key, "k%" PRIdPTR, i);
                assert_int_equal(vf_map_put(m, key, (void *) (i + 1)), 0);
        }
        assert_int_equal(vf_map_size(m), 5000);
        for (intptr_t i = 0; i < 5000; i += 2) {
                snprintf(key, sizeof key, "k%" PRIdPTR, i);
                assert_ptr_equal(vf_map_remove(m, key), (void *) (i + 1));
        }
        assert_int_equal(vf_map_size(m), 2500);
        for (intptr_t i = 0; i < 5000; i++) {
                snprintf(key, sizeof key, "k%" PRIdPTR, i);
                assert_ptr_equal(vf_map_get(m, key), i % 2 ? (void *) (i + 1) : NULL);
        }
        /* Replacing keeps one entry; iteration sees each live entry once. */
        assert_int_equal(vf_map_put(m, "k1", (void *) 7), 0);
        assert_int_equal(vf_map_size(m), 2500);
        size_t it = 0, seen = 0;
        const char *k;
        while (vf_map_next(m, &it, &k, NULL))
                seen++;
        assert_int_equal(seen, 2500);
}

typedef struct named {
        char *name;
} named;

/*
 * A map that borrows its keys holds the caller's strings themselves: found by any equal string,
 * its key the value's own, a replacing value's after a put; neither a remove nor the map's end frees
 * one (valgrind and ASan see a double free, the values' own frees below).
 */
static void test_map_borrowing_keys(void **state) {
        _cleanup_(vf_map_freep) vf_map *m = vf_map_new_borrowing_keys();
        named first = { strdup("web1") }, second = { strdup("web1") }, other = { strdup("db1") };
        const char *key;
        void *value;
        size_t it = 0;

        assert_non_null(m);
        assert_int_equal(vf_map_put(m, first.name, &first), 0);
        assert_int_equal(vf_map_put(m, other.name, &other), 0);
        assert_ptr_equal(vf_map_get(m, "web1"), &first);
        assert_int_equal(vf_map_put(m, second.name, &second), 0);
        free(first.name);
        assert_ptr_equal(vf_map_get(m, "web1"), &second);
        assert_int_equal(vf_map_size(m), 2);
        while (vf_map_next(m, &it, &key, &value))
                assert_ptr_equal(key, ((named *) value)->name);
        assert_ptr_equal(vf_map_remove(m, "db1"), &other);
        free(other.name);
        assert_null(vf_map_get(m, "db1"));
        vf_map_free(TAKE_PTR(m));
        free(second.name);
}

static unsigned values_freed;

static void free_value(void *value) {
        values_freed++;
        free(value);
}

/* Each live value is freed once, none that was removed (valgrind sees a double free or a leak). */
static void test_map_free_with(void **state) {
        vf_map *m = vf_map_new();

        assert_int_equal(vf_map_put(m, "a", strdup("1")), 0);
        assert_int_equal(vf_map_put(m, "b", strdup("2")), 0);
        assert_int_equal(vf_map_put(m, "c", strdup("3")), 0);
        free(vf_map_remove(m, "b"));
        values_freed = 0;
        vf_map_free_with(m, free_value);
        assert_int_equal(values_freed, 2);
        vf_map_free_with(NULL, free_value);
        assert_int_equal(values_freed, 2);
}

/*
 * Appending one at a time doubles the capacity, so the array moves a
 * logarithmic number of times; a size asked for whole is taken without slack;
 * what fits moves nothing.
 */
static void test_grow(void **state) {
        int *a = NULL;
        size_t cap = 0, growths = 0;

        for (size_t n = 0; n < 10000; n++) {
                size_t before = cap;
                int *grown = vf_grow(a, &cap, n + 1, sizeof *a);
                assert_non_null(grown);
                a = grown;
                a[n] = (int) n;
                growths += cap != before;
                assert_true(cap >= n + 1);
        }
        for (size_t n = 0; n < 10000; n++)
                assert_int_equal(a[n], (int) n);
        assert_int_equal(growths, 11); /* 16, 32, ..., 16384 */
        free(a);

        a = NULL;
        cap = 0;
        a = vf_grow(a, &cap, 10000, sizeof *a);
        assert_non_null(a);
        assert_int_equal(cap, 10000);
        assert_ptr_equal(vf_grow(a, &cap, 10000, sizeof *a), a);
        assert_int_equal(cap, 10000);
        a = vf_grow(a, &cap, 10001, sizeof *a);
        assert_non_null(a);
        assert_int_equal(cap, 20000);
        free(a);
}

static void test_buf_and_json(void **state) {
        vf_buf b = {};
        vf_buf_printf(&b, "%d-", 42);
        vf_buf_put_json_string(&b, "a\"b\\c\n\x01");
        vf_buf_puts(&b, " ");
        vf_buf_put_json_string(&b, NULL);
        _cleanup_free_ char *s = vf_buf_steal(&b);
        assert_string_equal(s, "42-\"a\\\"b\\\\c\\n\\u0001\" null");
}

/* JSON is UTF-8: what is not (a stray byte, an overlong form, a surrogate, a cut sequence) becomes U+FFFD. */
static void test_json_string_any_bytes(void **state) {
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
                { "a\xff" "b", "\"a\\ufffd" "b\"" },
                { "\xc0\xaf", "\"\\ufffd\\ufffd\"" },
                { "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },
                { "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
                { "end\xe2\x82", "\"end\\ufffd\\ufffd\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                vf_buf b = {};
                vf_buf_put_json_string(&b, cases[i].in);
                _cleanup_free_ char *s = vf_buf_steal(&b);
                assert_string_equal(s, cases[i].out);
        }
}

static void test_strv(void **state) {
        _cleanup_strv_free_ char **v = NULL;
        assert_int_equal(vf_strv_push(&v, "a"), 0);
        assert_int_equal(vf_strv_consume(&v, strdup("b")), 0);
        assert_int_equal(vf_strv_length(v), 2);
        assert_true(vf_strv_contains(v, "b"));
        assert_false(vf_strv_contains(v, "c"));
        assert_int_equal(vf_strv_consume(&v, NULL), -ENOMEM);
        assert_int_equal(vf_strv_length(v), 2);

        _cleanup_free_ char *joined = vf_strv_join((const char *const *) v, ", ");
        assert_string_equal(joined, "a, b");
        _cleanup_free_ char *none = vf_strv_join(NULL, "|");
        assert_string_equal(none, "");
}

/* A new empty file in a new directory under $TMPDIR, open for writing. */
static int make_file(char **ret_dir, char **ret_path, const char *name) {
        *ret_dir = th_mkdtemp();
        *ret_path = vf_printf("%s/%s", *ret_dir, name);
        return open(*ret_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

static void test_read_file_limits(void **state) {
        _cleanup_free_ char *dir = NULL, *path = NULL;
        int fd = make_file(&dir, &path, "data");
        char *data = NULL;
        size_t len;

        assert_true(fd >= 0);
        for (int i = 0; i < 3000; i++)
                assert_int_equal(write(fd, "0123456789", 10), 10);
        close(fd);
        assert_int_equal(vf_read_file(path, 30000, &data, &len), 0);
        assert_int_equal(len, 30000);
        assert_int_equal(data[len], 0);
        free(data);
        assert_int_equal(vf_read_file(path, 29999, &data, &len), -EFBIG);
        assert_int_equal(vf_read_file("/tmp", 100, &data, &len), -EISDIR);
        unlink(path);
        assert_int_equal(vf_read_file(path, 100, &data, &len), -ENOENT);
        assert_int_equal(rmdir(dir), 0);
}

/* A whole file or none: written beside, renamed into place, with the umask's mode; a failure leaves nothing. */
static void test_write_file_atomic(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();
        struct stat st;
        char *data = NULL;
        size_t len;
        mode_t old = umask(027);

        char *path = vf_printf("%s/seed.iso", dir), *ls = vf_printf("ls -A '%s' | wc -l", dir);
        assert_int_equal(vf_write_file_atomic(path, "a\0b", 3), 0);
        assert_int_equal(vf_write_file_atomic(path, "new\0", 4), 0);
        assert_int_equal(vf_read_file(path, 100, &data, &len), 0);
        assert_int_equal(len, 4);
        assert_memory_equal(data, "new\0", 4);
        free(data);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);

        /* A directory in the way: the rename fails, and the temporary file goes with it. */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkdir(path, 0755), 0);
        assert_int_equal(vf_write_file_atomic(path, "x", 1), -EISDIR);
        FILE *p = popen(ls, "r");
        int n = -1;
        assert_non_null(p);
        assert_int_equal(fscanf(p, "%d", &n), 1);
        pclose(p);
        assert_int_equal(n, 1);
        assert_int_equal(vf_write_file_atomic("/nonexistent/seed.iso", "x", 1), -ENOENT);

        assert_int_equal(rmdir(path), 0);
        assert_int_equal(rmdir(dir), 0);
        umask(old);
        free(path);
        free(ls);
}

/* The retries' jitter comes from the kernel, not from an unseeded random(): two processes never draw alike. */
static void test_random_bytes(void **state) {
        uint64_t a = 0, b = 0;

        assert_int_equal(vf_random_bytes(&a, sizeof a), 0);
        assert_int_equal(vf_random_bytes(&b, sizeof b), 0);
        assert_true(a != b);
}

/* Relative times as status shows them: the largest whole unit, the sign left to the words around it. */
static void test_format_duration(void **state) {
        static const struct {
                int64_t usec;
                const char *text;
        } cases[] = {
                { 0, "0s" }, { 999999, "0s" }, { 12 * 1000000LL, "12s" }, { -12 * 1000000LL, "12s" },
                { 59 * 1000000LL, "59s" }, { 60 * 1000000LL, "1m" }, { 3599 * 1000000LL, "59m" },
                { 3600 * 1000000LL, "1h" }, { 86399 * 1000000LL, "23h" }, { 3 * 86400 * 1000000LL, "3d" },
        };
        char out[16];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                vf_format_duration(cases[i].usec, out);
                assert_string_equal(out, cases[i].text);
        }
}

/* Log times: UTC, milliseconds truncated, not rounded (a line never claims a later time than it had). */
static void test_format_time_msec(void **state) {
        char out[32];

        vf_format_time_msec(1764815523123999LL, out);
        assert_string_equal(out, "2025-12-04T02:32:03.123Z");
        vf_format_time_msec(1764815523000001LL, out);
        assert_string_equal(out, "2025-12-04T02:32:03.000Z");
        vf_format_time(1764815523999999LL, out);
        assert_string_equal(out, "2025-12-04T02:32:03Z");
}

/* JOURNAL_STREAM names the journal's stream by device and inode; any other fd, or a garbled value, is not it. */
static void test_journal_stream(void **state) {
        _cleanup_free_ char *dir = NULL, *path = NULL, *other_dir = NULL, *other = NULL;
        int fd = make_file(&dir, &path, "journal"), fd_other = make_file(&other_dir, &other, "other");
        struct stat st;
        char value[64];

        assert_true(fd >= 0 && fd_other >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        unsetenv("JOURNAL_STREAM");
        assert_false(vf_fd_is_journal_stream(fd));
        snprintf(value, sizeof value, "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
        setenv("JOURNAL_STREAM", value, 1);
        assert_true(vf_fd_is_journal_stream(fd));
        assert_false(vf_fd_is_journal_stream(fd_other));
        snprintf(value, sizeof value, "%llu:%llux", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
        setenv("JOURNAL_STREAM", value, 1);
        assert_false(vf_fd_is_journal_stream(fd));
        unsetenv("JOURNAL_STREAM");
        close(fd);
        close(fd_other);
        th_rmtree(dir);
        th_rmtree(other_dir);
}

/* ---- the tests' own harness (tests/helpers.c) ---------------------------------------------- */

/* Passes, as a test whose cleanup a failure skipped would: a file under $TMPDIR and a child left running. */
static void leave_a_file_and_a_child(void **state) {
        th_write(getenv("TMPDIR"), "left-behind", "x");
        if (fork() == 0) {
                pause();
                _exit(0);
        }
}

static void wait_for_a_stuck_child(void **state) {
        const char *argv[] = { "/bin/sleep", "600", NULL }; /* unless killed, the suite waits it out */
        th_child c = th_spawn_start(argv, NULL);

        c.deadline_sec = 1;
        th_run r = th_spawn_wait(&c);
        th_run_done(&r);
}

/*
 * Runs one test as a suite of its own, by th_run_group() in a child of ours:
 * its exit status, and what it wrote to stderr. We are the subreaper
 * meanwhile, so a child the suite left alive would be ours now: none may be.
 */
static int run_suite_of(const struct CMUnitTest *test, char **ret_stderr) {
        const char *tmp = getenv("TMPDIR");
        char err_path[PATH_MAX]; /* on the stack: valgrind, checking the forked child for leaks, calls a heap copy lost */
        int status;
        size_t len;

        assert_true(snprintf(err_path, sizeof err_path, "%s/suite-stderr", tmp) < (int) sizeof err_path);
        assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                const struct CMUnitTest suite[] = { *test };
                int null = open("/dev/null", O_WRONLY), errfd = open(err_path, O_WRONLY | O_CREAT, 0600);
                if (null < 0 || errfd < 0 || dup2(null, 1) < 0 || dup2(errfd, 2) < 0)
                        _exit(100);
                _exit(th_run_group(suite, NULL, NULL, NULL));
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
        assert_int_equal(vf_read_file(err_path, 64 * 1024, ret_stderr, &len), 0);
        assert_int_equal(unlink(err_path), 0);
        return WEXITSTATUS(status);
}

/*
 * A child that does not exit by its deadline fails the test that waits for
 * it, named, with where its threads wait, instead of holding the suite until
 * meson's timeout says only that it took too long; and it is gone after.
 */
static void test_a_stuck_child_fails_its_test_named(void **state) {
        const struct CMUnitTest stuck = cmocka_unit_test(wait_for_a_stuck_child);
        _cleanup_free_ char *err = NULL;

        assert_int_equal(run_suite_of(&stuck, &err), 1);
        assert_non_null(strstr(err, "/bin/sleep 600 (pid "));
        assert_non_null(strstr(err, "still ran after 1 s, and was killed. Its threads:\nthread "));
        assert_non_null(strstr(err, "still ran after 1 s\n"));
}

/* What a suite's passing test left fails it, named, and is gone after it. */
static void test_a_suite_that_leaves_things_fails_and_leaves_nothing(void **state) {
        const struct CMUnitTest leaky = cmocka_unit_test(leave_a_file_and_a_child);
        const char *tmp = getenv("TMPDIR");
        _cleanup_free_ char *err = NULL;
        int before = th_count_entries(tmp, NULL);

        assert_int_equal(run_suite_of(&leaky, &err), 2); /* the child and the file, each a failure */
        assert_non_null(strstr(err, "a test left child"));
        assert_non_null(strstr(err, "a passing test left /"));
        assert_non_null(strstr(err, "/left-behind\n"));
        assert_int_equal(th_count_entries(tmp, NULL), before);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kind_names),
                cmocka_unit_test(test_printf_any_length),
                cmocka_unit_test(test_sha256),
                cmocka_unit_test(test_free_and_strdup),
                cmocka_unit_test(test_map_put_get_remove_grow),
                cmocka_unit_test(test_grow),
                cmocka_unit_test(test_map_free_with),
                cmocka_unit_test(test_map_borrowing_keys),
                cmocka_unit_test(test_buf_and_json),
                cmocka_unit_test(test_json_string_any_bytes),
                cmocka_unit_test(test_strv),
                cmocka_unit_test(test_read_file_limits),
                cmocka_unit_test(test_write_file_atomic),
                cmocka_unit_test(test_random_bytes),
                cmocka_unit_test(test_format_duration),
                cmocka_unit_test(test_format_time_msec),
                cmocka_unit_test(test_journal_stream),
                cmocka_unit_test(test_a_suite_that_leaves_things_fails_and_leaves_nothing),
                cmocka_unit_test(test_a_stuck_child_fails_its_test_named),
        };
        return th_run_group(tests, NULL, NULL, NULL);
}
