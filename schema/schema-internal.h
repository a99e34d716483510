/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal interfaces shared by the schema module's files. Nothing outside
 * schema/ includes this.
 */
#pragma once

#include <libxml/tree.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "schema/schema.h"

typedef struct schema_index schema_index;
typedef struct schema_layer schema_layer;
typedef struct schema_layers schema_layers;
typedef struct schema_readahead schema_readahead;

#define SCHEMA_POLICY_NS "https://virtform.org/xmlns/policy/1"
/* The ownership marker as written now, and its first form; reconcilers/reconciler.h says what each holds. */
#define SCHEMA_OWNER_NS "https://virtform.org/xmlns/owner/2"
#define SCHEMA_OWNER_NS_1 "https://virtform.org/xmlns/owner/1"

/* Past this many errors a file is clearly broken: more messages would bury the first ones. */
#define SCHEMA_MAX_DIAGS_PER_FILE 100

/* ---- one file being loaded (file.c) ------------------------------------ */

/*
 * What tells a file's content without reading it: any write changes the
 * ctime, and a file replaced is another inode. Only a stamp taken well after
 * the file's last change is kept (load.c): a write in the
 * same clock tick as the read would leave the stamp as it was.
 */
typedef struct schema_stamp {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
} schema_stamp;

/* Where a name's winning path is. */
typedef struct schema_entry {
        const schema_layer *layer; /* NULL when masked */
        /* The entry itself (a symlink, not its target), as schema_stat_entry() takes it; st_mode 0: not taken. */
        struct stat st;
} schema_entry;

/*
 * Resources parsed from one file, and its diagnostics, wait here until the
 * whole file is known; only then do they go to the set, at the file's place.
 */
typedef struct schema_file {
        schema_set *set;
        const schema_layers *layers; /* all of them: a symlink may point into another */
        const schema_layer *layer; /* the one it is read from */
        const struct stat *entry_st; /* its entry as the layers were resolved; st_mode 0: not taken */
        const char *path;
        /* Its drop-in name: only files sorting before it count as declared earlier. NULL: the whole set does. */
        const char *name;
        unsigned n_errors;
        bool oom;
        schema_resource **resources;
        size_t n_resources;
        vf_map *by_key; /* "kind/name" -> resource, for duplicates inside the file */
        schema_diag *diags;
        size_t n_diags;
        char **tokens; /* what it declared (schema_resource_tokens()), checked against the set */
        schema_stamp stamp; /* the file as it was opened */
        bool settled; /* the stamp can stand for the content read */
} schema_file;

void schema_file_error(schema_file *f, unsigned line, unsigned column, const char *fmt, ...) _printf_(4, 5);
void schema_file_errorv(schema_file *f, unsigned line, unsigned column, const char *fmt, va_list ap) _printf_(4, 0);
/* A diagnostic that does not fail the file. */
void schema_file_warning(schema_file *f, unsigned line, unsigned column, const char *fmt, ...) _printf_(4, 5);
/* Takes ownership of r, hashes it unless it is hashed, and reports duplicates; -EINVAL when r was a duplicate. */
int schema_file_add(schema_file *f, schema_resource *r);
void schema_file_done(schema_file *f);
/* The checks of a parsed file against the set before it: volumes made from themselves. */
int schema_file_check_set(schema_file *f);
/* Whether a file before f in set declares a key or PCI address f declared (f's tokens). */
bool schema_file_declares_taken(const schema_file *f, const schema_set *set);
/* Moves what from read (resources, diagnostics, tokens, stamp) into to, which has read nothing. */
void schema_file_take_read(schema_file *to, schema_file *from);

/* The volume or other resource under key as some judgement sees the set, or NULL. */
typedef const schema_resource *(*schema_volume_lookup)(const void *userdata, const char *key);
/*
 * 1 when v's from.volume leads, through the volumes lookup finds, back to v;
 * then *ret (may be NULL) gets the volumes on the way, v first, and *ret_n
 * their number. 0 when it does not; -ENOMEM.
 */
int schema_volume_cycle(const schema_resource *v, schema_volume_lookup lookup, const void *userdata,
                        const schema_resource ***ret, size_t *ret_n);
/* Frees what n diagnostics hold, not the array. */
void schema_diags_clear(schema_diag *diags, size_t n);

/*
 * Reads the file at path, which entry holds under name, into the set at the
 * place of its drop-in name (NULL: at the end). *displaced (may be NULL) gets
 * the names of later files whose key or PCI address it took over: they have
 * to be judged again.
 */
int schema_file_load(schema_set *set, const schema_layers *layers, const schema_entry *entry, const char *path,
                     const char *name, char ***displaced);

/* ---- drop-in layers (dropin.c) ----------------------------------------- */

struct schema_layer {
        const char *path;
        int fd; /* the open directory, or -1 for a layer holding just the file at path */
        /* With trust checks, for a directory: */
        char *real; /* where it is, for symlinks that point into it; NULL if unknown */
        char *distrust; /* why its files are not to be believed (schema_trust_stat()), or NULL */
};

/* A path given that is no layer: a default directory that does not exist, or a path that cannot be read. */
typedef struct schema_unopened {
        const char *path;
        int error; /* negative errno */
        bool optional; /* a default directory: missing, it is an empty layer */
} schema_unopened;

struct schema_layers {
        schema_layer *layers; /* highest precedence first; the unopened paths left out */
        size_t n;
        schema_unopened *unopened;
        size_t n_unopened;
        schema_load_options options;
        /* A set loaded before with the same options: a file unchanged since is taken from it unread. */
        const schema_set *previous;
        /* A full load's files, read ahead on several threads (readahead.c); NULL when none were. */
        schema_readahead *ahead;
};

int schema_layers_open(char *const *paths, const schema_load_options *options, schema_layers *ret);
void schema_layers_close(schema_layers *l);
/* Every name some layer may hold, sorted and unique. */
int schema_layers_list(const schema_layers *l, char ***ret);
/* 1, the name's source and its winning entry, or 0 when no layer holds it. */
int schema_layers_resolve(const schema_layers *l, const char *name, schema_source *ret, schema_entry *ret_entry);
/*
 * The entry itself, not a symlink's target. AT_STATX_FORCE_SYNC: on NFS a
 * plain stat may answer from the client's attribute cache for up to a minute
 * after another host changed the file; this asks the server, as an open would
 * (close-to-open). Local file systems ignore it.
 */
int schema_stat_entry(int dir_fd, const char *entry, struct stat *ret);
void schema_source_done(schema_source *s);

/* The drop-in name of a path: its last component, trailing slashes ignored. NULL on OOM. */
char *schema_path_name(const char *path);
/* Compares the drop-in name of path with name, like strcmp(). */
int schema_path_name_cmp(const char *path, const char *name);

/* ---- reading ahead (readahead.c, load.c) ------------------------------------ */

/* Opens, checks and parses the file f names; its resources and diagnostics stay in f. */
int schema_file_read(schema_file *f);
/*
 * Starts reading the files of names (sorted, as schema_layers_list() gives
 * them, and alive until the read-ahead is freed) on other threads, when the
 * options' jobs and the number of files call for it; *ret NULL when they do
 * not. The files must then be taken in name order.
 */
int schema_readahead_start(const schema_layers *layers, char *const *names, schema_readahead **ret);
/* 1 when f got what was read ahead for it; 0 when f is to be read. */
int schema_readahead_take(schema_readahead *ra, schema_file *f);
/* Stops and joins the threads. */
void schema_readahead_free(schema_readahead *ra);
DEFINE_POINTER_CLEANUP(schema_readahead, schema_readahead_free);

/* ---- trust (trust.c) ----------------------------------------------------- */

/* Trust checks refuse, rather than warn. */
static inline bool schema_trust_strict(const schema_load_options *o) {
        return o->check_trust && !o->insecure_permissions;
}
/*
 * 0 when root alone can change what st describes (vf_trust_owner_mode());
 * else 1 and in *ret why not and the command that changes that: "the file
 * is ...; run '...'", or for a directory "its directory PATH is ...". -ENOMEM.
 */
int schema_trust_stat(const struct stat *st, const char *path, bool directory, char **ret);
/* The path the open fd stands for, resolved (from /proc/self/fd). */
int schema_fd_path(int fd, char **ret);
/* 0 when the file open at fd is directly in a trusted directory of l; else 1 and why in *ret. -ENOMEM. */
int schema_trust_link(const schema_layers *l, int fd, char **ret);

/* ---- reloading names (reload.c) ----------------------------------------- */

/* schema_set_reload() with layers already open. */
int schema_reload_name(schema_set *set, const schema_layers *layers, const char *name, char ***changed);

/* ---- the name-ordered set and its private index (index.c) --------------- */

schema_index *schema_index_new(void);
void schema_index_free(schema_index *x);

/* Inserts k items of size bytes at pos of an array of n; NULL on OOM, leaving base as it was. */
void *schema_array_insert(void *base, size_t n, size_t size, size_t pos, const void *items, size_t k);
void schema_array_remove(void *base, size_t n, size_t size, size_t pos, size_t k);

typedef struct schema_range {
        size_t start, end;
} schema_range;

/* Where the entries of one file name are, or would go (start == end), in the set's name-ordered arrays. */
schema_range schema_set_resources_of(const schema_set *set, const char *name);
schema_range schema_set_diags_of(const schema_set *set, const char *name);
size_t schema_set_source_pos(const schema_set *set, const char *name);

/*
 * Name-ordered string vectors (paths or names) of n entries: the place of
 * name, insertion, removal. The count is kept beside the vector, so that a
 * load of N files costs N binary searches and not N walks to the end.
 */
size_t schema_strv_pos(char *const *v, size_t n, const char *name);
int schema_strv_insert(char ***v, size_t *n, size_t pos, const char *s);
/* Removes and returns v[pos]; an emptied vector becomes NULL. */
char *schema_strv_take(char ***v, size_t *n, size_t pos);
/* Removes the entry for name, if there is one. */
void schema_strv_drop(char ***v, size_t *n, const char *name);
void schema_strv_sort_unique(char **v);

/* "kind/name", and "pci/ADDRESS" for a Hostdev: what may be declared only once, appended to *tokens. */
int schema_resource_tokens(const schema_resource *r, char ***tokens);
/* The committed Hostdev for a PCI address, or NULL. */
schema_resource *schema_index_pci(const schema_set *set, const char *pci);
/* Makes r findable by key and PCI address; names of the files it takes them from go to *displaced (may be NULL). */
int schema_index_add(schema_set *set, schema_resource *r, char ***displaced);
/* Forgets r, leaving entries another file has taken over alone. */
int schema_index_remove(schema_set *set, const schema_resource *r);

/*
 * A failed file's tokens: when one of them changes hands, the file has to be
 * judged again, since a full load could now accept it or word its errors
 * differently. Claim takes ownership of tokens.
 */
int schema_index_claim(schema_set *set, const char *name, char **tokens);
void schema_index_withdraw(schema_set *set, const char *name);
/* The names of the failed files that declared token, or NULL. */
char *const *schema_index_claimants(const schema_set *set, const char *token);

/*
 * The stamp of the file read clean (not even a warning) under name, and its
 * path: a later load may take its resources from this set unread.
 */
int schema_index_stamp(schema_set *set, const char *name, const char *path, const schema_stamp *stamp);
void schema_index_unstamp(schema_set *set, const char *name);
/* The stamp of name and *ret_path, or NULL when the name was not read clean and settled. */
const schema_stamp *schema_index_stamp_of(const schema_set *set, const char *name, const char **ret_path);

/* ---- resources (resource.c) -------------------------------------------- */

schema_resource *schema_resource_new(schema_file *f, vf_kind kind, const char *name, unsigned line, unsigned column);
/*
 * A resource is never changed once a file has added it to a set, so the
 * sets of one controller (one thread) share what a file taken unread holds.
 */
schema_resource *schema_resource_ref(schema_resource *r);
void schema_resource_unref(schema_resource *r);
DEFINE_POINTER_CLEANUP(schema_resource, schema_resource_unref);

void schema_resource_hash(schema_resource *r);

/* ---- XML (xml-read.c, xml-util.c, validate.c) --------------------------- */

/*
 * Where a piece of XML came from. A native file reports XML positions as they
 * are. XML embedded in a YAML literal block scalar (spec.xml: |) reports
 * where it stands in the YAML file; in any other scalar, whose lines do not
 * map to the file's, at the scalar, naming the line within the XML.
 */
typedef struct xml_origin {
        schema_file *file;
        unsigned line, column; /* the YAML scalar; 0 for a native XML file */
        /* A literal block scalar's indentation: then XML line N is at the file's line + N, shifted by it. */
        unsigned indent;
        /* No spec.xml: the document is rendered from typed fields alone, each checked as it was read. */
        bool rendered;
} xml_origin;

void xml_origin_error(const xml_origin *o, unsigned line, unsigned column, const char *fmt, ...) _printf_(4, 5);

/* Reports a libxml2 error at the element it names, or at the line it gives. */
void xml_report_error(const xml_origin *o, const xmlError *e, const char *prefix);

DEFINE_POINTER_CLEANUP(xmlDoc, xmlFreeDoc);

/* Parses untrusted XML: no DTD, no entities, no network, bounded depth. Root must be expected_root if given. */
int xml_read(const xml_origin *o, const char *data, size_t len, const char *expected_root, xmlDoc **ret);

/* First child element called name (no namespace), or NULL. */
xmlNode *xml_child(xmlNode *parent, const char *name);
/* The children of parent called name are replaced by one new element with these attributes. */
xmlNode *xml_replace(xmlNode *parent, const char *name, ...) __attribute__((sentinel));
/* Appends a new element with attribute name/value pairs, NULL-terminated. */
xmlNode *xml_element(xmlNode *parent, const char *name, ...) __attribute__((sentinel));
/* Removes the children called name, except keep. */
void xml_remove_children(xmlNode *parent, const char *name, const xmlNode *keep);
xmlNode *xml_child_or_new(xmlNode *parent, const char *name);
int xml_set_text(xmlNode *node, const char *text);
void xml_unlink_free(xmlNode *node);
bool xml_is_element(const xmlNode *node, const char *name);
bool xml_in_namespace(const xmlNode *node, const char *href);
unsigned xml_line(const xmlNode *node);
/* Where an element's start tag begins; 1 when unknown (an element virtform made). */
unsigned xml_column(const xmlNode *node);
void xml_set_position(xmlNode *node, unsigned line, unsigned column);

/* RelaxNG validation against virtform's schema for the kind. */
int schema_validate(const xml_origin *o, vf_kind kind, xmlDoc *doc);
void schema_validators_free(struct schema_validators *v);

/*
 * The last step for valid XML kinds from either source: for a domain, take
 * the dependencies from <interface type='network'> and <disk type='volume'>
 * (and its seeds, into domain.cloudinits), and keep the serialized XML.
 */
int schema_resource_take_xml(schema_resource *r, xmlDoc *doc);

/* Embedded RelaxNG texts (generated from rng/ by rng-embed). */
extern const char schema_rng_domain[];
extern const char schema_rng_network[];
extern const char schema_rng_pool[];
extern const char schema_rng_volume[];

/* ---- pools and volumes, whether from YAML or native XML (spec-pool.c, spec-volume.c) ---- */

/*
 * A valid <pool>'s last check and r->pool.path: what dir and logical pools
 * cannot do without, as *ret_problem (a static message) when it is missing.
 */
int schema_pool_finish(xmlNode *root, schema_resource *r, const char **ret_problem);


/* "pool/POOL", and with from.volume that volume's key, appended to a volume's depends. */
int schema_volume_depends(schema_resource *r);
/* The from keys (and vf:from attributes) that choose a source, indexed by schema_volume_source. */
extern const char *const schema_volume_source_keys[];
/*
 * The checks of a volume's source, for YAML and native XML alike: 0 when
 * there is nothing wrong, 1 with a message for the operator in *ret (the
 * caller places and frees it), or -ENOMEM.
 */
/* clone and sha256 belong to one source each; *ret_key: the one at fault, NULL for the source's own. */
int schema_volume_from_problem(schema_volume_source source, bool has_clone, bool has_sha256, const char **ret_key,
                               char **ret);
/* The value of from.volume, from.file or from.url, for the volume called self ("POOL/NAME"). */
int schema_volume_source_problem(schema_volume_source source, const char *value, const char *self, char **ret);
/* A digest; when valid, *ret_digest gets it in lower case. */
int schema_volume_sha256_problem(const char *value, char **ret_digest, char **ret);
/* A copy-on-write clone has to be qcow2. */
int schema_volume_format_problem(const schema_resource *r, char **ret);

/* ---- values (values.c) ------------------------------------------------- */

extern const char *const schema_state_names[];   /* indexed by schema_domain_state */
extern const char *const schema_restart_names[]; /* indexed by schema_restart_policy */
extern const char *const schema_drift_names[]; /* indexed by schema_drift_policy */
extern const char *const schema_yes_no_names[];  /* "no", "yes": indexed by bool */
extern const char *const schema_volume_format_names[]; /* indexed by schema_volume_format */
extern const char *const schema_clone_names[]; /* "cow", "copy": indexed by schema_volume_spec.full_copy */
extern const char *const schema_deletion_names[]; /* indexed by schema_deletion_policy */

/* Index of s in a NULL-terminated table, or -EINVAL. */
int schema_lookup(const char *const *names, const char *s);
/* "a, b, c" for messages; NULL on OOM. */
char *schema_join(const char *const *names);

bool schema_ifname_is_valid(const char *s);
bool schema_token_is_valid(const char *s); /* [A-Za-z0-9_-]{1,32}: models, architectures */
int schema_parse_ipv4(const char *s, uint32_t *ret);
int schema_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix);
void schema_format_ipv4(uint32_t addr, char out[16]);
/* -EINVAL: not six hex octets; -EDOM: a multicast address. */
int schema_parse_mac(const char *s, char out[18]);
int schema_parse_pci(const char *s, char out[13]);
/* "<integer><unit>" in KiB; -EINVAL: syntax or unit, -ERANGE: outside 1 MiB..16 TiB. */
int schema_parse_memory(const char *s, uint64_t *ret_kib);
/* A volume's capacity, in the units of schema_parse_memory(); -ERANGE: outside 1 MiB..1 PiB (zero included). */
int schema_parse_capacity(const char *s, uint64_t *ret_bytes);
/* A libvirt scaled integer (<capacity unit='GiB'>20</capacity>) in bytes; unit NULL or empty: bytes. */
int schema_parse_scaled(const char *number, const char *unit, uint64_t *ret_bytes);
/*
 * A unit libvirt's schemas take for a scaled integer: b, bytes, k, KiB, KB up to e, EiB, EB, in any
 * case; not empty.
 */
bool schema_unit_is_valid(const char *unit);
/* "POOL/NAME", both valid names: how disks and from.volume name a volume. */
bool schema_volume_ref_is_valid(const char *s);
/* 64 hex digits, normalised to lower case. */
int schema_parse_sha256(const char *s, char out[VF_HASH_HEX_LEN + 1]);
/* An http:// or https:// URL with a host and no spaces or control characters. */
bool schema_url_is_http(const char *s);

/* ---- native XML files (native.c) and YAML files (yaml.c) ---------------- */

int schema_native_parse(schema_file *f, const char *data, size_t len);
int schema_yaml_parse(schema_file *f, const char *data, size_t len);

/* The rule schema_name_is_valid() enforces, for messages. */
#define SCHEMA_NAME_RULE "a name is 1 to 64 bytes without '/' or control characters"

static inline void xml_freep(xmlChar **p) {
        xmlFree(*p);
}
