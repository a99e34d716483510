/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pools and volumes on a real libvirtd: the test starts its own libvirtd (in
 * namespaces of its own, tests/libvirtd.h), whose storage driver makes the
 * volumes, and runs virtform's passes in-process against it. What virtform
 * did is observed through a second connection and on disk, never through
 * virtform: libvirt's volumes after a pool refresh, and the files in the
 * pool's directory.
 *
 * Images come from qemu-img and from the test's own files; URLs from a tiny
 * HTTP server in a thread of the test, on 127.0.0.1 of its network namespace.
 */
#include "tests/env.h"
#include "tests/libvirtd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

/* A watchdog for the whole run: a hung hypervisor must fail the suite, not hang it. */
#define WATCHDOG_SEC 600
#define MiB (1024 * 1024ULL)

static th_libvirtd *libvirtd;

typedef struct fixture {
        th_env *env;
        virConnectPtr conn; /* the test's own */
        char *pool; /* the pool's name, the test's own */
        char *pool_dir;
        bool mounted; /* a tmpfs on pool_dir */
} fixture;

/* ---- the HTTP server ---------------------------------------------------------------- */

typedef struct http_server {
        int fd;
        int port;
        pthread_t thread;
        const char *path; /* what every GET gets */
        uint64_t stall_after; /* 0: send it all; else send this much, then hold the connection until stopped */
        bool no_length; /* no Content-Length: the body ends when the connection does */
        atomic_bool hang_up; /* with stall_after: close the connection there instead, short of the length announced */
        atomic_bool stalled;
        atomic_bool stopping;
} http_server;

static void serve_one(http_server *s, int c) {
        char request[4096];
        struct stat st;
        ssize_t n;
        size_t got = 0;

        /* The request itself does not matter: read up to its blank line. */
        while (got < sizeof request - 1 && (n = read(c, request + got, sizeof request - 1 - got)) > 0) {
                got += (size_t) n;
                request[got] = 0;
                if (strstr(request, "\r\n\r\n"))
                        break;
        }
        _cleanup_close_ int fd = open(s->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return;
        _cleanup_free_ char *length = s->no_length ? strdup("") : vf_printf("Content-Length: %lld\r\n", (long long) st.st_size);
        _cleanup_free_ char *header = vf_printf("HTTP/1.1 200 OK\r\n%sConnection: close\r\n\r\n", length);
        if (write(c, header, strlen(header)) != (ssize_t) strlen(header))
                return;
        off_t offset = 0, end = s->stall_after ? (off_t) s->stall_after : st.st_size;
        while (offset < end && sendfile(c, fd, &offset, (size_t) (end - offset)) > 0)
                ;
        if (!s->stall_after || atomic_load(&s->hang_up))
                return;
        atomic_store(&s->stalled, true);
        while (!atomic_load(&s->stopping))
                poll(NULL, 0, 10); /* holding the connection open, as a stalled server does */
}

static void *serve(void *userdata) {
        http_server *s = userdata;

        for (;;) {
                int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        return NULL;
                serve_one(s, c);
                close(c);
        }
}

static http_server *http_start(const char *path, uint64_t stall_after, bool no_length) {
        http_server *s = calloc(1, sizeof *s);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;

        assert_non_null(s);
        s->path = path;
        s->stall_after = stall_after;
        s->no_length = no_length;
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(listen(s->fd, 8), 0);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *) &a, &len), 0);
        s->port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
        return s;
}

static void http_stop(http_server *s) {
        if (!s)
                return;
        atomic_store(&s->stopping, true);
        shutdown(s->fd, SHUT_RDWR); /* wakes accept() */
        pthread_join(s->thread, NULL);
        close(s->fd);
        free(s);
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int group_setup(void **state) {
        _cleanup_free_ char *dir = th_mkdtemp();

        libvirtd = th_libvirtd_new(dir);
        th_libvirtd_start(libvirtd);
        *state = strdup(dir);
        return 0;
}

static int group_teardown(void **state) {
        th_libvirtd_free(libvirtd);
        th_rmtree(*state);
        free(*state);
        return 0;
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);

        f->env = th_env_new();
        f->env->opts.uri = libvirtd->uri;
        f->conn = virConnectOpen(libvirtd->uri);
        assert_non_null(f->conn);
        f->pool = vf_printf("vf-pool-%d", (int) getpid());
        f->pool_dir = vf_printf("%s/pool", f->env->dir);
        assert_int_equal(mkdir(f->pool_dir, 0755), 0);
        *state = f;
        return 0;
}

/* The test's pool and everything in it, through the test's own connection. */
static void remove_pool(fixture *f) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(f->conn, f->pool);
        virStorageVolPtr *vols = NULL;
        int n = pool ? virStoragePoolListAllVolumes(pool, &vols, 0) : 0;

        for (int i = 0; i < n; i++) {
                virStorageVolDelete(vols[i], 0);
                virStorageVolFree(vols[i]);
        }
        free(vols);
        if (pool) {
                virStoragePoolDestroy(pool);
                virStoragePoolUndefine(pool);
                virStoragePoolFree(pool);
        }
}

static void remove_domains(fixture *f) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(f->conn, &doms, 0);

        for (int i = 0; i < n; i++) {
                if (strstr(virDomainGetName(doms[i]), "vf-user-"))
                        virDomainUndefine(doms[i]);
                virDomainFree(doms[i]);
        }
        free(doms);
}

static int teardown(void **state) {
        fixture *f = *state;

        th_env_close(f->env);
        remove_domains(f);
        remove_pool(f);
        if (f->mounted)
                umount2(f->pool_dir, MNT_DETACH);
        virConnectClose(f->conn);
        f->env->opts.uri = "test:///default";
        th_env_free(f->env);
        free(f->pool);
        free(f->pool_dir);
        free(f);
        return 0;
}

/* ---- declaring and observing ----------------------------------------------------------- */

/* The pool and the volumes given (YAML specs without the pool, which is added), all in one file. */
static void declare(fixture *f, const char *const *volumes) {
        vf_buf b = {};

        vf_buf_printf(&b, "apiVersion: virtform/v1\nkind: StoragePool\nmetadata: {name: %s}\nspec: {path: %s}\n",
                      f->pool, f->pool_dir);
        for (size_t i = 0; volumes && volumes[i]; i += 2)
                vf_buf_printf(&b, "---\napiVersion: virtform/v1\nkind: Volume\nmetadata: {name: %s}\n"
                              "spec: {pool: %s, %s}\n", volumes[i], f->pool, volumes[i + 1]);
        _cleanup_free_ char *text = vf_buf_steal(&b);
        assert_non_null(text);
        th_write(f->env->conf, "10-storage.yaml", "%s", text);
}

static char *pool_path(const fixture *f, const char *name) {
        return vf_printf("%s/%s", f->pool_dir, name);
}

/* libvirt's volume as a connection of the test's own sees it after a refresh; NULL when there is none. */
static virStorageVolPtr observe_volume(fixture *f, const char *name) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(f->conn, f->pool);
        virStorageVolPtr vol = NULL;

        if (pool) {
                (void) virStoragePoolRefresh(pool, 0);
                vol = virStorageVolLookupByName(pool, name);
                virStoragePoolFree(pool);
        }
        return vol;
}

static bool volume_exists(fixture *f, const char *name) {
        virStorageVolPtr vol = observe_volume(f, name);
        if (vol)
                virStorageVolFree(vol);
        return vol != NULL;
}

static unsigned long long volume_capacity(fixture *f, const char *name) {
        virStorageVolPtr vol = observe_volume(f, name);
        virStorageVolInfo info;

        assert_non_null(vol);
        assert_int_equal(virStorageVolGetInfo(vol, &info), 0);
        virStorageVolFree(vol);
        return info.capacity;
}

static char *volume_xml(fixture *f, const char *name) {
        virStorageVolPtr vol = observe_volume(f, name);
        assert_non_null(vol);
        char *xml = virStorageVolGetXMLDesc(vol, 0);
        virStorageVolFree(vol);
        assert_non_null(xml);
        return xml;
}

static int volume_count(fixture *f) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(f->conn, f->pool);
        assert_non_null(pool);
        assert_int_equal(virStoragePoolRefresh(pool, 0), 0);
        int n = virStoragePoolNumOfVolumes(pool);
        virStoragePoolFree(pool);
        return n;
}

static void run(const char *command) {
        if (system(command) != 0)
                fail_msg("failed: %s", command);
}

/* A file of random bytes, so that a copy that is not the file cannot pass for it. */
static char *random_file(fixture *f, const char *name, unsigned long long size) {
        char *path = vf_printf("%s/%s", f->env->dir, name);
        _cleanup_free_ char *cmd = vf_printf("head -c %llu /dev/urandom > '%s'", size, path);
        run(cmd);
        return path;
}

static char *sha256_of(const char *path) {
        _cleanup_free_ char *cmd = vf_printf("sha256sum '%s'", path);
        const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
        _cleanup_(th_run_done) th_run r = th_spawn(argv, NULL);
        assert_int_equal(r.status, 0);
        return strndup(r.out, VF_HASH_HEX_LEN);
}

static bool same_content(const char *a, const char *b) {
        _cleanup_free_ char *cmd = vf_printf("cmp -s '%s' '%s'", a, b);
        return system(cmd) == 0;
}

static const char *message_of(fixture *f, const char *volume) {
        _cleanup_free_ char *name = vf_printf("%s/%s", f->pool, volume);
        return th_env_entry(f->env, VF_KIND_VOLUME, name)->result.message;
}

static void assert_volume(fixture *f, const char *volume, rc_outcome outcome, const char *reason) {
        _cleanup_free_ char *name = vf_printf("%s/%s", f->pool, volume);
        th_env_assert(f->env, VF_KIND_VOLUME, name, outcome, reason);
}

/* ---- tests --------------------------------------------------------------------------------- */

/*
 * A dir pool; a base image placed in it by someone (no file declares it); a
 * copy-on-write clone of it, a full copy, and an import from a local file.
 * A second pass finds everything in sync and writes nothing.
 */
static void test_clone_copy_and_file_import(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *mkdir_base = vf_printf("qemu-img create -q -f qcow2 '%s/base.qcow2' 64M", f->pool_dir);
        _cleanup_free_ char *image = random_file(f, "image.raw", 3 * MiB + 12345);
        _cleanup_free_ char *base_ref = vf_printf("from: {volume: %s/base.qcow2}", f->pool);
        _cleanup_free_ char *copy_ref = vf_printf("from: {volume: %s/base.qcow2, clone: copy}", f->pool);
        _cleanup_free_ char *file_ref = vf_printf("format: raw, from: {file: %s}", image);
        _cleanup_free_ char *base = pool_path(f, "base.qcow2"), *imported = pool_path(f, "imported.raw");

        run(mkdir_base);
        declare(f, (const char *const[]) { "web.qcow2", base_ref, "copy.qcow2", copy_ref, "imported.raw", file_ref,
                                           NULL });
        th_env_pass(f->env);
        assert_volume(f, "web.qcow2", RC_CREATED, "Applied");
        assert_volume(f, "copy.qcow2", RC_CREATED, "Applied");
        assert_volume(f, "imported.raw", RC_CREATED, "Applied");

        /* The clone is a qcow2 overlay on the base; the copy stands alone, of the base's size. */
        _cleanup_free_ char *web = volume_xml(f, "web.qcow2"), *copy = volume_xml(f, "copy.qcow2");
        _cleanup_free_ char *backing = vf_printf("<path>%s</path>", base);
        assert_non_null(strstr(web, backing));
        assert_non_null(strstr(web, "<format type='qcow2'/>"));
        assert_null(strstr(copy, "<backingStore>"));
        assert_int_equal(volume_capacity(f, "copy.qcow2"), 64 * MiB);
        assert_int_equal(volume_capacity(f, "web.qcow2"), 64 * MiB);
        /* The import is the file, byte for byte. */
        assert_true(same_content(image, imported));

        th_env_pass(f->env);
        assert_volume(f, "web.qcow2", RC_UNCHANGED, "Applied");
        assert_volume(f, "imported.raw", RC_UNCHANGED, "Applied");
        assert_int_equal(th_env_writes(f->env), 0);
}

/* An import from a URL, verified as it streams; and one whose digest is wrong leaves nothing behind. */
static void test_url_import_and_checksum_mismatch(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *image = random_file(f, "served.img", 5 * MiB + 7);
        _cleanup_free_ char *digest = sha256_of(image);
        http_server *http = http_start(image, 0, false);
        _cleanup_free_ char *good = vf_printf("format: raw, from: {url: 'http://127.0.0.1:%d/served.img', sha256: %s}",
                                              http->port, digest);
        _cleanup_free_ char *bad = vf_printf("format: raw, from: {url: 'http://127.0.0.1:%d/served.img', sha256: %064d}",
                                             http->port, 0);
        _cleanup_free_ char *downloaded = pool_path(f, "downloaded.raw"), *wrong = pool_path(f, "wrong.raw");

        declare(f, (const char *const[]) { "downloaded.raw", good, "wrong.raw", bad, NULL });
        th_env_pass(f->env);
        http_stop(http);

        assert_volume(f, "downloaded.raw", RC_CREATED, "Applied");
        assert_true(same_content(image, downloaded));

        assert_volume(f, "wrong.raw", RC_FAILED, "ChecksumMismatch");
        const char *message = message_of(f, "wrong.raw");
        assert_non_null(strstr(message, digest));
        assert_non_null(strstr(message, "0000000000000000000000000000000000000000000000000000000000000000"));
        assert_false(volume_exists(f, "wrong.raw"));
        assert_int_equal(access(wrong, F_OK), -1);
}

/* Capacity grows as the file says, and a smaller one is refused with the volume left as it is. */
static void test_grow_and_refused_shrink(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *disk = pool_path(f, "disk.qcow2");

        declare(f, (const char *const[]) { "disk.qcow2", "capacity: 8MiB", NULL });
        th_env_pass(f->env);
        assert_volume(f, "disk.qcow2", RC_CREATED, "Applied");
        assert_int_equal(volume_capacity(f, "disk.qcow2"), 8 * MiB);

        declare(f, (const char *const[]) { "disk.qcow2", "capacity: 16MiB", NULL });
        th_env_pass(f->env);
        assert_volume(f, "disk.qcow2", RC_UPDATED, "Applied");
        assert_int_equal(volume_capacity(f, "disk.qcow2"), 16 * MiB);

        struct stat before, after;
        assert_int_equal(stat(disk, &before), 0);
        declare(f, (const char *const[]) { "disk.qcow2", "capacity: 4MiB", NULL });
        th_env_pass(f->env);
        assert_volume(f, "disk.qcow2", RC_FAILED, "ShrinkRefused");
        assert_int_equal(th_env_writes(f->env), 0);
        assert_int_equal(volume_capacity(f, "disk.qcow2"), 16 * MiB);
        assert_int_equal(stat(disk, &after), 0);
        assert_int_equal(after.st_size, before.st_size);
        assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
        assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
}

/* Pruned: a volume with deletionPolicy: delete goes, one retained stays on disk and is forgotten. */
static void test_prune_retain_and_delete(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *kept = pool_path(f, "kept.qcow2"), *gone = pool_path(f, "gone.qcow2");
        _cleanup_free_ char *kept_name = vf_printf("%s/kept.qcow2", f->pool);
        _cleanup_(state_closep) state_store *store = NULL;
        _cleanup_(state_record_freep) state_record *rec = NULL;
        _cleanup_free_ char *errmsg = NULL;

        declare(f, (const char *const[]) { "kept.qcow2", "capacity: 4MiB", "gone.qcow2",
                                           "capacity: 4MiB, deletionPolicy: delete", NULL });
        th_env_pass(f->env);
        assert_int_equal(access(kept, F_OK), 0);
        assert_int_equal(access(gone, F_OK), 0);

        declare(f, NULL);
        th_env_pass(f->env);
        assert_volume(f, "kept.qcow2", RC_KEPT, "Retained");
        assert_volume(f, "gone.qcow2", RC_DELETED, "Removed");
        assert_int_equal(access(kept, F_OK), 0);
        assert_int_equal(access(gone, F_OK), -1);
        assert_true(volume_exists(f, "kept.qcow2"));

        /* Forgotten: declared again, the retained volume is someone else's until adopted. */
        th_env_close(f->env);
        assert_int_equal(state_open(f->env->state, STATE_OPEN_READONLY, &store, &errmsg), 0);
        assert_int_equal(state_get(store, "volume", kept_name, &rec), -ENOENT);
        declare(f, (const char *const[]) { "kept.qcow2", "capacity: 4MiB", NULL });
        th_env_pass(f->env);
        assert_volume(f, "kept.qcow2", RC_FAILED, "Conflict");

        /* Adopted, it is this state's again: grown as the file says. */
        declare(f, (const char *const[]) { "kept.qcow2, adopt: true", "capacity: 8MiB", NULL });
        th_env_pass(f->env);
        assert_volume(f, "kept.qcow2", RC_UPDATED, "Applied");
        assert_non_null(strstr(message_of(f, "kept.qcow2"), "adopted"));
        assert_int_equal(volume_capacity(f, "kept.qcow2"), 8 * MiB);
}

/* The file that declares a volume set to be deleted is renamed: nothing is written, the volume keeps its bytes. */
static void test_renamed_file_touches_no_data(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *path = pool_path(f, "data.qcow2");
        _cleanup_free_ char *from = vf_printf("%s/10-storage.yaml", f->env->conf),
                            *to = vf_printf("%s/30-renamed.yaml", f->env->conf);
        _cleanup_free_ char *cmd = vf_printf("qemu-io -f qcow2 -c 'write -P 0x5a 0 64k' '%s' >/dev/null", path);
        struct stat before, after;

        declare(f, (const char *const[]) { "data.qcow2", "capacity: 4MiB, deletionPolicy: delete", NULL });
        th_env_pass(f->env);
        assert_volume(f, "data.qcow2", RC_CREATED, "Applied");
        assert_int_equal(system(cmd), 0);
        assert_int_equal(stat(path, &before), 0);
        _cleanup_free_ char *data = th_slurp(path);

        assert_int_equal(rename(from, to), 0);
        th_env_pass(f->env);
        assert_volume(f, "data.qcow2", RC_UNCHANGED, "Applied");
        assert_int_equal(th_env_writes(f->env), 0);
        assert_int_equal(stat(path, &after), 0);
        assert_int_equal(after.st_ino, before.st_ino);
        _cleanup_free_ char *now = th_slurp(path);
        assert_memory_equal(now, data, before.st_size);
}

/* A volume a defined domain's disk names is not deleted: it waits, naming the domain, until it is free. */
static void test_in_use_by_a_defined_domain(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *data = pool_path(f, "data.qcow2");
        _cleanup_free_ char *domain = vf_printf("vf-user-%d", (int) getpid());
        _cleanup_free_ char *xml = vf_printf(
                "<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory>"
                "<os><type arch='x86_64'>hvm</type></os><devices><disk type='volume' device='disk'>"
                "<driver name='qemu' type='qcow2'/><source pool='%s' volume='data.qcow2'/>"
                "<target dev='vda' bus='virtio'/></disk></devices></domain>",
                domain, f->pool);

        declare(f, (const char *const[]) { "data.qcow2", "capacity: 4MiB, deletionPolicy: delete", NULL });
        th_env_pass(f->env);
        virDomainPtr dom = virDomainDefineXML(f->conn, xml);
        assert_non_null(dom);

        declare(f, NULL);
        th_env_pass(f->env);
        assert_volume(f, "data.qcow2", RC_WAITING, "InUse");
        assert_non_null(strstr(message_of(f, "data.qcow2"), domain));
        assert_int_equal(access(data, F_OK), 0);

        assert_int_equal(virDomainUndefine(dom), 0);
        virDomainFree(dom);
        th_env_pass(f->env);
        assert_volume(f, "data.qcow2", RC_DELETED, "Removed");
        assert_int_equal(access(data, F_OK), -1);
}

/* A base that a retained copy-on-write clone is made on is not deleted: the clone would lose its data. */
static void test_base_of_a_kept_clone_is_kept(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *base = pool_path(f, "base.qcow2"), *clone = pool_path(f, "clone.qcow2");
        _cleanup_free_ char *clone_ref = vf_printf("from: {volume: %s/base.qcow2}", f->pool);
        _cleanup_free_ char *clone_key = vf_printf("volume/%s/clone.qcow2", f->pool);

        declare(f, (const char *const[]) { "base.qcow2", "capacity: 4MiB, deletionPolicy: delete", "clone.qcow2",
                                           clone_ref, NULL });
        th_env_pass(f->env);
        assert_volume(f, "clone.qcow2", RC_CREATED, "Applied");

        declare(f, NULL);
        th_env_pass(f->env);
        assert_volume(f, "clone.qcow2", RC_KEPT, "Retained");
        assert_volume(f, "base.qcow2", RC_WAITING, "InUse");
        _cleanup_free_ char *base_name = vf_printf("%s/base.qcow2", f->pool);
        const rc_result *res = &th_env_entry(f->env, VF_KIND_VOLUME, base_name)->result;
        assert_string_equal(res->wait.target, clone_key);
        assert_int_equal(access(base, F_OK), 0);
        assert_int_equal(access(clone, F_OK), 0);

        /* Once the clone is gone, the base goes too. */
        virStorageVolPtr vol = observe_volume(f, "clone.qcow2");
        assert_non_null(vol);
        assert_int_equal(virStorageVolDelete(vol, 0), 0);
        virStorageVolFree(vol);
        th_env_pass(f->env);
        assert_volume(f, "base.qcow2", RC_DELETED, "Removed");
        assert_int_equal(access(base, F_OK), -1);
}

/* A pool on a 1 MiB tmpfs: a 4 MiB import is refused before anything is written, and nothing is left. */
static void test_full_pool(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *image = random_file(f, "big.raw", 4 * MiB);
        _cleanup_free_ char *ref = vf_printf("format: raw, from: {file: %s}", image);

        if (mount("tmpfs", f->pool_dir, "tmpfs", 0, "size=1m,mode=0755") < 0)
                fail_msg("cannot mount a tmpfs on %s: %s", f->pool_dir, strerror(errno));
        f->mounted = true;

        declare(f, (const char *const[]) { "big.raw", ref, NULL });
        th_env_pass(f->env);
        _cleanup_free_ char *name = vf_printf("%s/big.raw", f->pool);
        const rc_result *res = &th_env_entry(f->env, VF_KIND_VOLUME, name)->result;
        if (!vf_streq_ptr(res->reason, "InsufficientSpace") && !vf_streq_ptr(res->reason, "NoSpace"))
                fail_msg("%s: %s", res->reason, res->message);
        assert_int_equal(res->outcome, RC_FAILED);
        assert_int_equal(volume_count(f), 0);
}

/* A download cut short: the half-made volume is deleted, and the download's error said. */
static void test_download_cut_short(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *image = random_file(f, "cut.img", 4 * MiB);
        _cleanup_free_ char *digest = sha256_of(image);
        http_server *http = http_start(image, MiB, false);
        atomic_store(&http->hang_up, true);
        _cleanup_free_ char *ref = vf_printf("format: raw, from: {url: 'http://127.0.0.1:%d/cut.img', sha256: %s}",
                                             http->port, digest);

        declare(f, (const char *const[]) { "cut.raw", ref, NULL });
        th_env_pass(f->env);
        http_stop(http);
        assert_volume(f, "cut.raw", RC_FAILED, "ImportFailed");
        assert_non_null(strstr(message_of(f, "cut.raw"), "half-made volume was deleted"));
        assert_int_equal(volume_count(f), 0);
}

/*
 * The same pool filling up while the bytes stream in: the server gives no
 * length, so nothing could be refused up front; the write fails with ENOSPC
 * and the half-written volume is deleted.
 */
static void test_pool_full_during_import(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *image = random_file(f, "unsized.raw", 4 * MiB);
        _cleanup_free_ char *digest = sha256_of(image);
        http_server *http = http_start(image, 0, true);
        _cleanup_free_ char *ref = vf_printf("format: raw, capacity: 1MiB, from: {url: 'http://127.0.0.1:%d/x', sha256: %s}",
                                             http->port, digest);

        if (mount("tmpfs", f->pool_dir, "tmpfs", 0, "size=1m,mode=0755") < 0)
                fail_msg("cannot mount a tmpfs on %s: %s", f->pool_dir, strerror(errno));
        f->mounted = true;
        declare(f, (const char *const[]) { "unsized.raw", ref, NULL });
        th_env_pass(f->env);
        http_stop(http);
        assert_volume(f, "unsized.raw", RC_FAILED, "NoSpace");
        assert_non_null(strstr(message_of(f, "unsized.raw"), "half-made volume was deleted"));
        assert_int_equal(volume_count(f), 0);
}

/*
 * Bytes that are not what the format says are refused, and nothing is left:
 * random bytes for a qcow2 volume, a qcow2 image for a raw one, and a qcow2
 * image with a backing file (either would let a guest's disk name a host file).
 */
static void test_format_mismatch(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *noise = random_file(f, "noise.bin", MiB);
        _cleanup_free_ char *qcow2 = vf_printf("%s/image.qcow2", f->env->dir);
        _cleanup_free_ char *mk = vf_printf("qemu-img create -q -f qcow2 -b /etc/shadow -F raw '%s' 1M", qcow2);
        _cleanup_free_ char *as_qcow2 = vf_printf("from: {file: %s}", noise);
        _cleanup_free_ char *as_raw = vf_printf("format: raw, from: {file: %s}", qcow2);

        run(mk);
        _cleanup_free_ char *backed = vf_printf("from: {file: %s}", qcow2);

        declare(f, (const char *const[]) { "noise.qcow2", as_qcow2, "sneaky.raw", as_raw, "backed.qcow2", backed,
                                           NULL });
        th_env_pass(f->env);
        assert_volume(f, "noise.qcow2", RC_FAILED, "FormatMismatch");
        assert_volume(f, "sneaky.raw", RC_FAILED, "FormatMismatch");
        assert_volume(f, "backed.qcow2", RC_FAILED, "FormatMismatch");
        assert_int_equal(volume_count(f), 0);
}

/*
 * A run killed while it made a volume left it unrecorded, with its create the
 * newest step in the event log: the next run deletes it and makes it again.
 * The same volume with no such step is someone else's: Conflict, untouched.
 */
static void test_half_made_volume_is_made_again(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *image = random_file(f, "image.raw", 2 * MiB);
        _cleanup_free_ char *ref = vf_printf("format: raw, from: {file: %s}", image);
        _cleanup_free_ char *name = vf_printf("%s/half.raw", f->pool), *half = pool_path(f, "half.raw");
        _cleanup_free_ char *errmsg = NULL;
        state_store *store = NULL;
        int64_t intent;

        declare(f, NULL);
        th_env_pass(f->env);
        th_env_close(f->env);
        /* What a killed run leaves: its intent open, and a volume with only part of the bytes. */
        virStoragePoolPtr pool = virStoragePoolLookupByName(f->conn, f->pool);
        assert_non_null(pool);
        virStorageVolPtr vol = virStorageVolCreateXML(
                pool, "<volume><name>half.raw</name><capacity unit='MiB'>1</capacity><target><format type='raw'/></target></volume>",
                0);
        assert_non_null(vol);
        virStorageVolFree(vol);
        virStoragePoolFree(pool);

        /* Without an intent of its own, the volume is someone else's. */
        declare(f, (const char *const[]) { "half.raw", ref, NULL });
        th_env_pass(f->env);
        assert_volume(f, "half.raw", RC_FAILED, "Conflict");
        assert_false(same_content(image, half));

        th_env_close(f->env);
        assert_int_equal(state_open(f->env->state, 0, &store, &errmsg), 0);
        assert_int_equal(state_intent_begin(store, "volume", name, 1, "create-volume", &intent), 0);
        state_close(store);
        th_env_pass(f->env);
        assert_volume(f, "half.raw", RC_CREATED, "Applied");
        assert_non_null(strstr(message_of(f, "half.raw"), "made again"));
        assert_true(same_content(image, half));
}

/* What SIGTERM is to the daemon: asked for once the server stalls with the volume half written. */
typedef struct stop_request {
        http_server *http;
        char *volume_path;
} stop_request;

static stop_request stopping;

static bool stop_requested(void *userdata) {
        const stop_request *s = userdata;
        return atomic_load(&s->http->stalled) && access(s->volume_path, F_OK) == 0;
}

static void stop_when_stalled(th_env *env) {
        env->c.should_stop = stop_requested;
        env->c.should_stop_userdata = &stopping;
}

/* SIGTERM during a download (here: the controller's stop request) stops it promptly and leaves nothing. */
static void test_interrupted_import_leaves_nothing(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *image = random_file(f, "slow.img", 8 * MiB);
        _cleanup_free_ char *digest = sha256_of(image);
        http_server *http = http_start(image, 2 * MiB, false);
        _cleanup_free_ char *ref = vf_printf("format: raw, from: {url: 'http://127.0.0.1:%d/slow.img', sha256: %s}",
                                             http->port, digest);

        declare(f, (const char *const[]) { "slow.raw", ref, NULL });
        _cleanup_free_ char *path = pool_path(f, "slow.raw");
        stopping = (stop_request) { http, path };
        f->env->on_open = stop_when_stalled;
        int64_t started = vf_now_monotonic_usec();
        th_env_pass(f->env);
        int64_t took = vf_now_monotonic_usec() - started;
        http_stop(http);

        assert_volume(f, "slow.raw", RC_FAILED, "Interrupted");
        assert_true(took < 10 * 1000000LL);
        assert_non_null(strstr(message_of(f, "slow.raw"), "half-made volume was deleted"));
        assert_false(volume_exists(f, "slow.raw"));
        assert_int_equal(access(path, F_OK), -1);
}

/* ---- cloud-init seeds ------------------------------------------------------------------ */

/* A CloudInit in a pool, in a file of its own; user_data is indented as a block of its. */
static void declare_seed_in(fixture *f, const char *pool, const char *hostname, const char *user_data) {
        th_write(f->env->conf, "20-seed.yaml",
                 "apiVersion: virtform/v1\nkind: CloudInit\nmetadata: {name: vf-seed}\nspec:\n  pool: %s\n"
                 "  userData: |\n    #cloud-config\n%s  metaData: {local-hostname: %s}\n",
                 pool, user_data, hostname);
}

static void declare_seed(fixture *f, const char *hostname, const char *user_data) {
        declare_seed_in(f, f->pool, hostname, user_data);
}

/* What `virtform cloud-init render` makes of the declared seed, as a file; its size in *size. */
static char *render(fixture *f, off_t *size) {
        _cleanup_free_ char *file = vf_printf("%s/20-seed.yaml", f->env->conf);
        char *iso = vf_printf("%s/seed.iso", f->env->dir);
        const char *argv[] = { getenv("VIRTFORM"), "cloud-init", "render", file, "-o", iso, NULL };
        _cleanup_(th_run_done) th_run r = th_spawn(argv, NULL);
        struct stat st;

        assert_int_equal(r.status, 0);
        assert_int_equal(stat(iso, &st), 0);
        *size = st.st_size;
        return iso;
}

/* The volume's file begins with the rendered seed, byte for byte. */
static void assert_seed_holds(fixture *f, const char *volume) {
        off_t size;
        _cleanup_free_ char *iso = render(f, &size);
        _cleanup_free_ char *cmd = vf_printf("cmp -s -n %lld '%s' '%s'", (long long) size, iso, volume);

        if (system(cmd) != 0)
                fail_msg("%s does not hold the seed %s renders", volume, iso);
}

/*
 * The seed uploaded into a raw volume of a dir pool, as cloud-init render makes it; nothing
 * written while it is in sync; uploaded again when it changes, its volume grown when it must;
 * deleted once nothing declares it.
 */
static void test_cloudinit_seed(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *volume = pool_path(f, "vf-seed.cidata.iso");
        const char *seed = "vf-seed.cidata.iso";

        declare(f, NULL);
        declare_seed(f, "web1", "");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_CREATED, "Applied");
        assert_true(vf_report_converged(&f->env->report));
        assert_seed_holds(f, volume);
        assert_int_equal(volume_capacity(f, seed), 1 * MiB);
        _cleanup_free_ char *xml = volume_xml(f, seed);
        assert_non_null(strstr(xml, "<format type='iso'/>")); /* libvirt's probe knows an ISO 9660 image */

        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_UNCHANGED, "Applied");
        assert_int_equal(th_env_writes(f->env), 0);

        declare_seed(f, "web2", "");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_UPDATED, "Applied");
        assert_int_equal(th_env_writes(f->env), 1);
        assert_int_equal(f->env->report.counters.calls[RC_CALL_UPLOAD], 1);
        assert_seed_holds(f, volume);

        /* A seed larger than its volume: grown first, then uploaded. */
        vf_buf big = {};
        for (int i = 0; i < 16 * 1024; i++)
                vf_buf_printf(&big, "    # %094d\n", i);
        assert_false(big.oom);
        declare_seed(f, "web2", big.data);
        vf_buf_done(&big);
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_UPDATED, "Applied");
        assert_int_equal(f->env->report.counters.calls[RC_CALL_RESIZE], 1);
        assert_int_equal(volume_capacity(f, seed), 2 * MiB);
        assert_seed_holds(f, volume);

        th_remove(f->env->conf, "20-seed.yaml");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_DELETED, "Removed");
        assert_false(volume_exists(f, seed));
        assert_int_equal(access(volume, F_OK), -1);
}

/* The volume's file, written by the test as a killed run's upload left it, dated long ago. */
static void write_volume_as_killed_run_left_it(fixture *f, const char *volume, const char *iso, off_t size) {
        _cleanup_free_ char *cmd = vf_printf("dd if='%s' of='%s' bs=%lld count=1 conv=notrunc status=none", iso,
                                             volume, (long long) size);
        const struct timespec long_ago[2] = { { .tv_sec = 946684800 }, { .tv_sec = 946684800 } };

        assert_int_equal(system(cmd), 0);
        assert_int_equal(utimensat(AT_FDCWD, volume, long_ago, 0), 0);
}

/* What a run killed during the seed's upload left in the log: the upload intended, never closed. */
static void intend_upload(fixture *f) {
        _cleanup_free_ char *errmsg = NULL;
        state_store *store = NULL;
        int64_t intent;

        th_env_close(f->env);
        assert_int_equal(state_open(f->env->state, 0, &store, &errmsg), 0);
        assert_int_equal(state_intent_begin(store, "cloudinit", "vf-seed", 2, "upload", &intent), 0);
        state_close(store);
}

static time_t volume_mtime(const char *volume) {
        struct stat st;
        assert_int_equal(stat(volume, &st), 0);
        return st.st_mtim.tv_sec;
}

static char *newest_upload_message(fixture *f) {
        static const char *const actions[] = { "upload" };
        _cleanup_free_ char *errmsg = NULL;
        state_store *store = NULL;
        state_event *ev = NULL;

        assert_int_equal(state_open(f->env->state, STATE_OPEN_READONLY, &store, &errmsg), 0);
        assert_int_equal(state_event_newest(store, "cloudinit", "vf-seed", actions, 1, NULL, &ev), 0);
        char *message = vf_printf("%s: %s", ev->outcome, ev->message ? ev->message : "");
        state_event_free(ev);
        state_close(store);
        return message;
}

/*
 * A run killed after its upload and before the commit of the upload's outcome and the seed's record
 * left the intent open and the old hash recorded. The volume already holds the new seed: it is not
 * written again, and the log says the upload was found done. A half-written one is uploaded again.
 */
static void test_interrupted_upload_found_done(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *volume = pool_path(f, "vf-seed.cidata.iso");
        off_t size;

        declare(f, NULL);
        declare_seed(f, "web1", "");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_CREATED, "Applied");

        declare_seed(f, "web2", "");
        _cleanup_free_ char *iso = render(f, &size);
        intend_upload(f);
        write_volume_as_killed_run_left_it(f, volume, iso, size);
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_UNCHANGED, "Applied");
        assert_int_equal(volume_mtime(volume), 946684800);
        _cleanup_free_ char *found = newest_upload_message(f);
        assert_string_equal(found, "unknown: interrupted; found done");
        assert_seed_holds(f, volume);

        /* Killed halfway through web3's upload: the first half is web3's, the rest still web2's. */
        declare_seed(f, "web3", "");
        _cleanup_free_ char *iso3 = render(f, &size);
        intend_upload(f);
        write_volume_as_killed_run_left_it(f, volume, iso3, size / 2);
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_UPDATED, "Applied");
        assert_true(volume_mtime(volume) > 946684800);
        _cleanup_free_ char *redone = newest_upload_message(f);
        assert_string_equal(redone, "ok: ");
        assert_seed_holds(f, volume);
}

/*
 * A pool with a seed in it that a defined domain still uses: the seed waits for the domain, and the
 * pool for the seed; once the domain goes, both go in one pass, the pool's directory kept.
 */
static void test_pool_kept_for_its_seed(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *domain = vf_printf("vf-seeded-%d", (int) getpid());
        _cleanup_free_ char *xml = vf_printf(
                "<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory>"
                "<os><type arch='x86_64'>hvm</type></os><devices><disk type='volume' device='cdrom'>"
                "<driver name='qemu' type='raw'/><source pool='%s' volume='vf-seed.cidata.iso'/>"
                "<target dev='hda' bus='ide'/><readonly/></disk></devices></domain>",
                domain, f->pool);

        declare(f, NULL);
        declare_seed(f, "web1", "");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_CREATED, "Applied");
        virDomainPtr dom = virDomainDefineXML(f->conn, xml);
        assert_non_null(dom);

        th_remove(f->env->conf, "20-seed.yaml");
        th_remove(f->env->conf, "10-storage.yaml");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_WAITING, "InUse");
        th_env_assert(f->env, VF_KIND_POOL, f->pool, RC_WAITING, "InUse");
        assert_non_null(strstr(th_env_entry(f->env, VF_KIND_POOL, f->pool)->result.message, "cloudinit/vf-seed"));
        assert_true(volume_exists(f, "vf-seed.cidata.iso"));
        virStoragePoolPtr pool = virStoragePoolLookupByName(f->conn, f->pool);
        assert_non_null(pool);
        assert_int_equal(virStoragePoolIsActive(pool), 1);
        virStoragePoolFree(pool);

        assert_int_equal(virDomainUndefine(dom), 0);
        virDomainFree(dom);
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_DELETED, "Removed");
        th_env_assert(f->env, VF_KIND_POOL, f->pool, RC_DELETED, "Removed");
        assert_null(virStoragePoolLookupByName(f->conn, f->pool));
        assert_int_equal(access(f->pool_dir, F_OK), 0);
}

/*
 * A seed moved to another pool is made there; the volume it had is deleted, unless a domain still
 * uses it, which leaves it where it is and says so.
 */
static void test_cloudinit_seed_moved(void **state) {
        fixture *f = *state;
        _cleanup_free_ char *other = vf_printf("%s-2", f->pool), *other_dir = vf_printf("%s/pool-2", f->env->dir);
        _cleanup_free_ char *here = pool_path(f, "vf-seed.cidata.iso");
        _cleanup_free_ char *there = vf_printf("%s/vf-seed.cidata.iso", other_dir);
        _cleanup_free_ char *domain = vf_printf("vf-user-%d", (int) getpid());
        _cleanup_free_ char *xml = vf_printf(
                "<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory>"
                "<os><type arch='x86_64'>hvm</type></os><devices><disk type='volume' device='cdrom'>"
                "<driver name='qemu' type='raw'/><source pool='%s' volume='vf-seed.cidata.iso'/>"
                "<target dev='hdc' bus='ide'/><readonly/></disk></devices></domain>",
                domain, other);

        assert_int_equal(mkdir(other_dir, 0755), 0);
        declare(f, NULL);
        th_write(f->env->conf, "11-pool.yaml",
                 "apiVersion: virtform/v1\nkind: StoragePool\nmetadata: {name: %s}\nspec: {path: %s}\n", other,
                 other_dir);
        declare_seed(f, "web1", "");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_CREATED, "Applied");
        assert_int_equal(access(here, F_OK), 0);

        /* Nothing uses it: the seed is made in the other pool, and its old volume goes. */
        declare_seed_in(f, other, "web1", "");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_CREATED, "Applied");
        assert_seed_holds(f, there);
        assert_int_equal(access(here, F_OK), -1);

        /* A domain's disk names it: moved back, the seed is made again here, and the one there is left. */
        virDomainPtr dom = virDomainDefineXML(f->conn, xml);
        assert_non_null(dom);
        virDomainFree(dom);
        declare_seed(f, "web1", "");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_CREATED, "Applied");
        assert_non_null(strstr(th_env_entry(f->env, VF_KIND_CLOUDINIT, "vf-seed")->result.message, domain));
        assert_seed_holds(f, here);
        assert_int_equal(access(there, F_OK), 0);

        /* What the test made: the seed and the other pool, removed by virtform; the volume left, by hand. */
        th_remove(f->env->conf, "20-seed.yaml");
        th_remove(f->env->conf, "11-pool.yaml");
        th_env_pass(f->env);
        th_env_assert(f->env, VF_KIND_CLOUDINIT, "vf-seed", RC_DELETED, "Removed");
        th_env_assert(f->env, VF_KIND_POOL, other, RC_DELETED, "Removed");
        assert_int_equal(unlink(there), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_clone_copy_and_file_import, setup, teardown),
                cmocka_unit_test_setup_teardown(test_url_import_and_checksum_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_grow_and_refused_shrink, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune_retain_and_delete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_in_use_by_a_defined_domain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_base_of_a_kept_clone_is_kept, setup, teardown),
                cmocka_unit_test_setup_teardown(test_full_pool, setup, teardown),
                cmocka_unit_test_setup_teardown(test_download_cut_short, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_full_during_import, setup, teardown),
                cmocka_unit_test_setup_teardown(test_format_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_made_volume_is_made_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_interrupted_import_leaves_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloudinit_seed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_interrupted_upload_found_done, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloudinit_seed_moved, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_kept_for_its_seed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_renamed_file_touches_no_data, setup, teardown),
        };

        /* The test's HTTP server writes to clients that may hang up (an import refused halfway). */
        signal(SIGPIPE, SIG_IGN);
        /* Before any thread exists. */
        const char *missing = th_libvirtd_isolate(WATCHDOG_SEC);
        return th_run_group(tests, group_setup, group_teardown, missing);
}
