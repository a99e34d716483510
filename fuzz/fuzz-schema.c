/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz/fuzz-schema.h"

#include <fcntl.h>
#include <libxml/parser.h>
#include <stdarg.h>

#include "fuzz/fuzz-util.h"
#include "schema/schema-internal.h"

/*
 * Loading never commits to this set: it only holds what a set shares between
 * files, the RelaxNG schemas, compiled once here rather than on every input.
 */
static schema_set *shared;

static const char *const warm[] = {
        "<network><name>warm</name></network>",
        "<domain><name>warm</name><memory>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>",
        "<pool type='dir'><name>warm</name><target><path>/warm</path></target></pool>",
        "<volume><vf:policy xmlns:vf='https://virtform.org/xmlns/policy/1' pool='warm'/><name>warm</name>"
        "<capacity>1</capacity></volume>",
};

/* schema/xml-read.c: "Errors come through the parser context, never through global handlers." */
_printf_(2, 3) static void on_stray_error(void *userdata, const char *fmt, ...) {
        _cleanup_free_ char *message = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        va_end(ap);
        fuzz_fail("libxml2 reported through its global handler, stderr by default: %s", message ? message : fmt);
}

static void free_shared(void) {
        schema_set_free(shared);
        shared = NULL;
}

void fuzz_schema_init(void) {
        xmlInitParser();
        xmlSetGenericErrorFunc(NULL, on_stray_error);
        shared = schema_set_new();
        if (!shared)
                fuzz_fail("out of memory");
        atexit(free_shared);

        /* Compiles every validator now, so every input runs the same code. */
        for (size_t i = 0; i < ELEMENTSOF(warm); i++) {
                const char *text = warm[i];
                _cleanup_(schema_file_done) schema_file f = { .set = shared, .path = "warm.xml" };

                if (schema_native_parse(&f, text, strlen(text)) < 0 || f.n_errors > 0 || f.n_resources != 1)
                        fuzz_fail("the warm-up document %zu does not load", i);
        }
        fuzz_check(shared->validators);
}

static bool is_hex64(const char *s) {
        return strlen(s) == VF_HASH_HEX_LEN && strspn(s, "0123456789abcdef") == VF_HASH_HEX_LEN;
}

static void check_diag(const schema_diag *d) {
        fuzz_check(d->file && d->message && d->message[0]);
        /* schema.h: "one line". A newline from the input would forge a second diagnostic in logs. */
        if (strpbrk(d->message, "\n\r"))
                fuzz_fail("diagnostic is not one line: %s", d->message);
        _cleanup_free_ char *text = schema_diag_format(d);
        fuzz_check(text);
}

/* A volume's parts make its name, and its source is whole: what the volume reconciler relies on. */
static void check_volume(const schema_resource *r) {
        const schema_volume_spec *v = &r->volume;
        _cleanup_free_ char *name = vf_printf("%s/%s", v->pool, v->volume);

        fuzz_check(r->xml && r->xml[0] == '<');
        fuzz_check(name && streq(name, r->name));
        fuzz_check(v->format == SCHEMA_VOLUME_QCOW2 || v->format == SCHEMA_VOLUME_RAW);
        fuzz_check(v->capacity > 0 || v->source != SCHEMA_SOURCE_NONE);
        fuzz_check((v->source == SCHEMA_SOURCE_NONE) == !v->from);
        fuzz_check((v->source == SCHEMA_SOURCE_URL) == !!v->sha256);
        fuzz_check(!v->sha256 || is_hex64(v->sha256));
        fuzz_check(v->source != SCHEMA_SOURCE_VOLUME ||
                   (schema_volume_ref_is_valid(v->from) && !streq(v->from, r->name)));
        fuzz_check(v->source != SCHEMA_SOURCE_FILE || v->from[0] == '/');
        fuzz_check(!v->full_copy || v->source == SCHEMA_SOURCE_VOLUME);
}

static void check_resource(const schema_resource *r) {
        fuzz_check(r->kind >= 0 && r->kind < _VF_KIND_MAX);
        /* A volume is named POOL/NAME. */
        if (r->kind == VF_KIND_VOLUME ? !schema_volume_ref_is_valid(r->name) : !schema_name_is_valid(r->name))
                fuzz_fail("resource with an invalid name: \"%s\"", r->name);
        fuzz_check(r->file && r->line > 0);
        fuzz_check(is_hex64(r->hash));
        for (size_t i = 0; r->depends && r->depends[i]; i++)
                fuzz_check(strchr(r->depends[i], '/'));

        switch (r->kind) {
        case VF_KIND_HOSTDEV: {
                char canonical[13];

                fuzz_check(!r->xml && r->hostdev.pci);
                fuzz_check(schema_parse_pci(r->hostdev.pci, canonical) == 0 && streq(canonical, r->hostdev.pci));
                fuzz_check(r->hostdev.vlan >= -1 && r->hostdev.vlan <= 4095);
                break;
        }
        case VF_KIND_DOMAIN:
                for (size_t i = 0; r->domain.hostdevs && r->domain.hostdevs[i]; i++)
                        fuzz_check(schema_name_is_valid(r->domain.hostdevs[i]));
                for (size_t i = 0; r->domain.cloudinits && r->domain.cloudinits[i]; i++)
                        fuzz_check(schema_name_is_valid(r->domain.cloudinits[i]));
                fuzz_check(r->xml && r->xml[0] == '<');
                break;
        case VF_KIND_POOL:
                fuzz_check(r->xml && r->xml[0] == '<');
                fuzz_check(!r->pool.path || r->pool.path[0] == '/');
                break;
        case VF_KIND_VOLUME:
                check_volume(r);
                break;
        case VF_KIND_CLOUDINIT:
                fuzz_check(!r->xml && schema_name_is_valid(r->cloudinit.pool));
                fuzz_check(r->depends && !r->depends[1] && streq(r->depends[0] + strlen("pool/"), r->cloudinit.pool));
                break;
        default:
                fuzz_check(r->xml && r->xml[0] == '<');
                break;
        }
}

static void check_file(const schema_file *f) {
        fuzz_check(!f->oom);
        /* Every error has its diagnostic (up to the cap); warnings may come without errors. */
        fuzz_check(f->n_errors == 0 || f->n_diags > 0);
        fuzz_check(f->n_diags <= SCHEMA_MAX_DIAGS_PER_FILE + 1);
        for (size_t i = 0; i < f->n_diags; i++)
                check_diag(&f->diags[i]);
        for (size_t i = 0; i < f->n_resources; i++)
                check_resource(f->resources[i]);
}

static void write_input(const char *path, const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0)
                fuzz_fail("cannot write %s: %m", path);
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, data + done, size - done);
                if (n < 0)
                        fuzz_fail("cannot write %s: %m", path);
                done += (size_t) n;
        }
}

/* What schema_load() makes of the same bytes in a real file must be what the buffer gave. */
static void check_against_load(const schema_file *f, const char *suffix, const uint8_t *data, size_t size) {
        _cleanup_free_ char *path = vf_printf("%s/input%s", fuzz_tmpdir(), suffix);
        _cleanup_(schema_set_freep) schema_set *set = NULL;

        fuzz_check(path);
        write_input(path, data, size);
        char *paths[] = { path };
        int r = schema_load(paths, 1, &set);
        (void) unlink(path);
        fuzz_check(r == 0);

        fuzz_check(!set->files_failed);
        fuzz_check(vf_strv_length(set->files_ok) == 1);
        fuzz_check(set->n_resources == f->n_resources);
        for (size_t i = 0; i < set->n_resources; i++) {
                const schema_resource *a = f->resources[i], *b = set->resources[i];

                fuzz_check(a->kind == b->kind && streq(a->name, b->name));
                if (!streq(a->hash, b->hash))
                        fuzz_fail("%s/%s: hash %s from the buffer, %s from the file",
                                  vf_kind_to_string(a->kind), a->name, a->hash, b->hash);
                fuzz_check(schema_set_find(set, b->kind, b->name) == b);
        }
}

void fuzz_schema_run(fuzz_schema_format format, const uint8_t *data, size_t size) {
        const char *suffix = format == FUZZ_SCHEMA_XML ? ".xml" : ".yaml";
        _cleanup_free_ char *path = vf_printf("fuzz%s", suffix);
        _cleanup_(schema_file_done) schema_file f = { .set = shared, .path = path };

        /* vf_read_file() refuses bigger files before any parsing. */
        if (size > SCHEMA_MAX_FILE_SIZE || !path)
                return;
        int r = format == FUZZ_SCHEMA_XML ? schema_native_parse(&f, (const char *) data, size)
                                          : schema_yaml_parse(&f, (const char *) data, size);
        /* As schema_file_load() judges a clean file: its volumes must not come round to themselves. */
        if (r != -ENOMEM && f.n_errors == 0)
                r = schema_file_check_set(&f);
        /* Only a failed allocation may say -ENOMEM, and libFuzzer reports those itself. */
        if (r == -ENOMEM)
                fuzz_fail("-ENOMEM without running out of memory");
        check_file(&f);
        /* Loading never commits to the shared set. */
        fuzz_check(shared->n_resources == 0 && shared->n_diags == 0);

        if (f.n_errors == 0 && f.n_resources > 0)
                check_against_load(&f, suffix, data, size);
}
