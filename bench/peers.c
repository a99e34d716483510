/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The peers: what a user would script instead of virtform, defining the same
 * N native XML files on test:///default. python-libvirt's define loop, and one
 * virsh reading a `define FILE` command per domain on its stdin. Each runs in
 * a process of its own, so each defines into a test driver of its own, as the
 * floor does.
 */
#include "bench/bench.h"

#include <dirent.h>

#define VIRSH "/usr/bin/virsh"
#define PYTHON "/usr/bin/python3" /* the one Debian's python3-libvirt is installed for */

/* One `define FILE` line per XML file of the input, in directory order as the floor takes them. */
static int write_virsh_commands(const bench_input *in, const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "we");
        DIR *d = opendir(in->xml);
        int r = 0;

        if (!f || !d) {
                r = -errno;
                if (d)
                        closedir(d);
                return r;
        }
        for (struct dirent *de; (de = readdir(d));)
                if (vf_str_has_suffix(de->d_name, ".xml"))
                        fprintf(f, "define %s/%s\n", in->xml, de->d_name);
        closedir(d);
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}

/* python-define's "defined N"; -1 when it said nothing. */
static long python_defined(const char *out_path) {
        _cleanup_fclose_ FILE *f = fopen(out_path, "re");
        long n;

        return f && fscanf(f, "defined %ld", &n) == 1 ? n : -1;
}

/* virsh says "Domain 'NAME' defined from FILE" for each; -1 when its output cannot be read. */
static long virsh_defined(const char *out_path) {
        static const char said[] = "' defined from ";
        _cleanup_free_ char *data = NULL;
        size_t len;
        long n = 0;

        if (vf_read_file(out_path, 1024u * 1024 * 1024, &data, &len) < 0)
                return -1;
        for (const char *p = data; (p = strstr(p, said)); p += strlen(said))
                n++;
        return n;
}

typedef struct peer {
        const char *tag;
        const char *binary; /* must exist, or the peer is skipped */
        const char *package; /* what installs what it needs */
        long (*defined)(const char *out_path); /* how many it says it defined */
} peer;

/* The best of --repeat; a failure is noted on m, not fatal: the rest of the run still says something. */
static int run_peer(const bench *b, const bench_input *in, const bench_run *run, const peer *p, char *const *argv,
                    const char *in_path, measure *best) {
        _cleanup_free_ char *out = vf_printf("%s/%s.out", in->dir, p->tag);
        _cleanup_free_ char *err = vf_printf("%s/%s.err", in->dir, p->tag);

        if (!out || !err)
                return -ENOMEM;
        if (access(p->binary, X_OK) < 0) {
                bench_note(best, "skipped: %s is missing (bench/run installs %s)", p->binary, p->package);
                return 0;
        }
        for (unsigned i = 0; i < b->repeat; i++) {
                measure m;
                int status;
                int r = bench_spawn(argv, in_path, out, err, &status, &m);
                if (r < 0)
                        return r;
                long defined = p->defined(out);
                if (status != 0 || defined != (long) run->n) {
                        *best = (measure) { .rss_kib = -1, .writes = -1 };
                        bench_note(best, "failed: exit %d, %ld of %zu defined (is %s installed?); see %s", status,
                                   defined, run->n, p->package, err);
                        return 0;
                }
                m.writes = defined;
                bench_keep_best(best, &m);
        }
        return 0;
}

int bench_peers(const bench *b, const bench_input *in, bench_run *run) {
        static const peer python = { "peer-python", PYTHON, "python3-libvirt", python_defined };
        static const peer virsh = { "peer-virsh", VIRSH, "libvirt-clients", virsh_defined };
        _cleanup_free_ char *commands = vf_printf("%s/virsh-define.cmds", in->dir);
        char *python_argv[] = { (char *) PYTHON, (char *) b->python_peer, (char *) "test:///default", in->xml, NULL };
        char *virsh_argv[] = { (char *) VIRSH, (char *) "-c", (char *) "test:///default", NULL };

        if (!commands)
                return -ENOMEM;
        int r = run_peer(b, in, run, &python, python_argv, NULL, &run->peer_python);
        if (r < 0)
                return r;
        r = write_virsh_commands(in, commands);
        if (r < 0)
                return r;
        return run_peer(b, in, run, &virsh, virsh_argv, commands, &run->peer_virsh);
}
