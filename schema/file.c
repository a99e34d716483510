/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One file while it loads: its diagnostics, the resources it declares, and the duplicate checks. */
#include <string.h>

#include "schema/schema-internal.h"

/*
 * A diagnostic is one line: control characters that came from the input (a
 * quoted "\n" in a name, a &#10; in XML) are escaped, so that no line of a log
 * or of the CLI's output is forged. Takes s; NULL on OOM.
 */
static char *escape_controls(char *s) {
        size_t extra = 0;

        if (!s)
                return NULL;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        extra += 3;
        if (extra == 0)
                return s;
        _cleanup_free_ char *in = s;
        char *out = malloc(strlen(in) + extra + 1), *q = out;
        if (!out)
                return NULL;
        for (const char *p = in; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (c == '\n' || c == '\r' || c == '\t')
                        q += sprintf(q, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
                else if (c < 0x20 || c == 0x7f)
                        q += sprintf(q, "\\x%02x", c);
                else
                        *q++ = (char) c;
        }
        *q = 0;
        return out;
}

static int file_add_diag(schema_file *f, unsigned line, unsigned column, bool warning, char *message) {
        _cleanup_free_ char *msg = escape_controls(message);
        if (!msg)
                return -ENOMEM;
        _cleanup_free_ char *file = strdup(f->path);
        if (!file)
                return -ENOMEM;
        schema_diag *d = realloc(f->diags, (f->n_diags + 1) * sizeof(schema_diag));
        if (!d)
                return -ENOMEM;
        f->diags = d;
        f->diags[f->n_diags++] = (schema_diag) {
                .file = TAKE_PTR(file),
                .line = line,
                .column = column,
                .message = TAKE_PTR(msg),
                .warning = warning,
        };
        return 0;
}

void schema_diags_clear(schema_diag *diags, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(diags[i].file);
                free(diags[i].message);
        }
}

void schema_file_errorv(schema_file *f, unsigned line, unsigned column, const char *fmt, va_list ap) {
        char *message = NULL;

        f->n_errors++;
        if (f->n_errors > SCHEMA_MAX_DIAGS_PER_FILE + 1)
                return;
        if (f->n_errors == SCHEMA_MAX_DIAGS_PER_FILE + 1) {
                line = column = 0;
                message = vf_printf("more than %u errors; fix the ones above first", SCHEMA_MAX_DIAGS_PER_FILE);
        } else if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        if (file_add_diag(f, line, column, false, message) < 0)
                f->oom = true;
}

void schema_file_error(schema_file *f, unsigned line, unsigned column, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        schema_file_errorv(f, line, column, fmt, ap);
        va_end(ap);
}

void schema_file_warning(schema_file *f, unsigned line, unsigned column, const char *fmt, ...) {
        char *message = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        va_end(ap);
        if (file_add_diag(f, line, column, true, message) < 0)
                f->oom = true;
}

/* In a reload the set also holds the files sorting after this one: they come later, so they do not count. */
static const schema_resource *declared_before(const schema_file *f, const schema_resource *other) {
        if (other && f->name && schema_path_name_cmp(other->file, f->name) >= 0)
                return NULL;
        return other;
}

static const schema_resource *find_declared(const schema_file *f, const char *key) {
        const schema_resource *r = declared_before(f, vf_map_get(f->set->by_key, key));
        return r ? r : vf_map_get(f->by_key, key);
}

static const schema_resource *find_pci(schema_resource *const *list, size_t n, const char *pci) {
        for (size_t i = 0; i < n; i++)
                if (list[i]->kind == VF_KIND_HOSTDEV && strcmp(list[i]->hostdev.pci, pci) == 0)
                        return list[i];
        return NULL;
}

/* Two Hostdevs for one PCI function would hand the same device to two guests. */
static bool check_unique_pci(schema_file *f, const schema_resource *r) {
        if (r->kind != VF_KIND_HOSTDEV)
                return true;
        const schema_resource *other = declared_before(f, schema_index_pci(f->set, r->hostdev.pci));
        if (!other)
                other = find_pci(f->resources, f->n_resources, r->hostdev.pci);
        if (!other)
                return true;
        schema_file_error(f, r->line, r->column,
                          "PCI device %s is already declared by hostdev \"%s\" at %s:%u:%u; "
                          "declare each device once",
                          r->hostdev.pci, other->name, other->file, other->line, other->column);
        return false;
}

static bool check_unique_key(schema_file *f, const schema_resource *r, const char *key) {
        const schema_resource *other = find_declared(f, key);
        if (!other)
                return true;
        schema_file_error(f, r->line, r->column,
                          "%s \"%s\" is already declared at %s:%u:%u; rename one of them or remove the duplicate",
                          vf_kind_to_string(r->kind), r->name, other->file, other->line, other->column);
        return false;
}

int schema_volume_cycle(const schema_resource *v, schema_volume_lookup lookup, const void *userdata,
                        const schema_resource ***ret, size_t *ret_n) {
        _cleanup_free_ const schema_resource **chain = NULL;
        size_t n = 0;

        for (const schema_resource *at = v;
             at && at->kind == VF_KIND_VOLUME && at->volume.source == SCHEMA_SOURCE_VOLUME;) {
                _cleanup_free_ char *key = schema_key(VF_KIND_VOLUME, at->volume.from);
                const schema_resource **c = reallocarray(chain, n + 1, sizeof *chain);
                if (!key || !c)
                        return -ENOMEM;
                chain = c;
                chain[n++] = at;
                at = lookup(userdata, key);
                if (at == v) {
                        if (ret) {
                                *ret = TAKE_PTR(chain);
                                *ret_n = n;
                        }
                        return 1;
                }
                /* Into a cycle that v is not on: someone else's to report. */
                for (size_t i = 1; i < n; i++)
                        if (chain[i] == at)
                                return 0;
        }
        return 0;
}

static const schema_resource *lookup_declared(const void *userdata, const char *key) {
        return find_declared(userdata, key);
}

/* "p/a, made from p/b (FILE:LINE:COLUMN), made from p/a": where each step is declared, when not in this file. */
static char *describe_cycle(const schema_file *f, const schema_resource *const *chain, size_t n) {
        vf_buf b = {};

        vf_buf_puts(&b, chain[0]->name);
        for (size_t i = 1; i <= n; i++) {
                const schema_resource *m = chain[i % n];
                vf_buf_printf(&b, ", made from %s", m->name);
                if (i < n && strcmp(m->file, f->path) != 0)
                        vf_buf_printf(&b, " (%s:%u:%u)", m->file, m->line, m->column);
        }
        return vf_buf_steal(&b);
}

/*
 * A volume made, through from.volume, from itself can never be created.
 * Like a duplicate key, a cycle fails the file that closes it, judged
 * against the files before it: at each of its volumes on the cycle. It
 * claims the keys of the others (schema_index_claim()), so that a change to
 * them judges it again.
 */
static int check_cycles(schema_file *f) {
        for (size_t i = 0; i < f->n_resources; i++) {
                _cleanup_free_ const schema_resource **chain = NULL;
                size_t n;

                int k = schema_volume_cycle(f->resources[i], lookup_declared, f, &chain, &n);
                if (k <= 0) {
                        if (k < 0)
                                return k;
                        continue;
                }
                _cleanup_free_ char *cycle = describe_cycle(f, chain, n);
                if (!cycle)
                        return -ENOMEM;
                schema_file_error(f, chain[0]->line, chain[0]->column,
                                  "volume %s is made from itself: %s; make one of them from another volume, a file "
                                  "or a URL", chain[0]->name, cycle);
                for (size_t j = 1; j < n; j++)
                        if (strcmp(chain[j]->file, f->path) != 0 &&
                            vf_strv_consume(&f->tokens, schema_key(VF_KIND_VOLUME, chain[j]->name)) < 0)
                                return -ENOMEM;
        }
        return 0;
}

int schema_file_check_set(schema_file *f) {
        return check_cycles(f);
}

bool schema_file_declares_taken(const schema_file *f, const schema_set *set) {
        for (size_t i = 0; f->tokens && f->tokens[i]; i++) {
                const char *token = f->tokens[i];
                bool pci = strncmp(token, "pci/", 4) == 0;
                const schema_resource *other = pci ? schema_index_pci(set, token + 4) : vf_map_get(set->by_key, token);
                if (declared_before(f, other))
                        return true;
        }
        return false;
}

void schema_file_take_read(schema_file *to, schema_file *from) {
        to->n_errors = from->n_errors;
        to->oom = from->oom;
        to->resources = TAKE_PTR(from->resources);
        to->n_resources = from->n_resources;
        to->by_key = TAKE_PTR(from->by_key);
        to->diags = TAKE_PTR(from->diags);
        to->n_diags = from->n_diags;
        to->tokens = TAKE_PTR(from->tokens);
        to->stamp = from->stamp;
        to->settled = from->settled;
        from->n_resources = from->n_diags = 0;
}

int schema_file_add(schema_file *f, schema_resource *resource) {
        _cleanup_(schema_resource_unrefp) schema_resource *r = resource;

        if (!f->by_key && !(f->by_key = vf_map_new()))
                return -ENOMEM;
        _cleanup_free_ char *key = schema_key(r->kind, r->name);
        if (!key || schema_resource_tokens(r, &f->tokens) < 0)
                return -ENOMEM;
        bool unique = check_unique_key(f, r, key);
        if (!check_unique_pci(f, r) || !unique)
                return -EINVAL;

        schema_resource **list = realloc(f->resources, (f->n_resources + 1) * sizeof(schema_resource *));
        if (!list)
                return -ENOMEM;
        f->resources = list;
        if (vf_map_put(f->by_key, key, r) < 0)
                return -ENOMEM;
        /* A resource taken unread (load.c) was hashed when it was read: a hash covers its fields alone. */
        if (!r->hash[0])
                schema_resource_hash(r);
        f->resources[f->n_resources++] = TAKE_PTR(r);
        return 0;
}

void schema_file_done(schema_file *f) {
        for (size_t i = 0; i < f->n_resources; i++)
                schema_resource_unref(f->resources[i]);
        free(f->resources);
        vf_map_free(f->by_key);
        schema_diags_clear(f->diags, f->n_diags);
        free(f->diags);
        vf_strv_free(f->tokens);
        *f = (schema_file) {};
}
