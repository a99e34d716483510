/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * schema: desired-state files to typed resources.
 *
 * It reads YAML and libvirt-native XML, validates them strictly and turns each
 * declared object into a schema_resource. It knows libvirt's XML *format* (it
 * renders and validates it) but not libvirt, the host or the state store.
 *
 * Every problem becomes a schema_diag with FILE:LINE:COLUMN. A file with any
 * error contributes no resource at all: its name lands in failed_files so the
 * controller can hold what that file declared at its last applied state.
 * Warnings fail nothing.
 */
#pragma once

#include "common/common.h"

/* Limits on hostile input. Each one is enforced with a diagnostic naming it. */
#define SCHEMA_MAX_FILE_SIZE (4u * 1024 * 1024)
#define SCHEMA_MAX_DOCUMENTS 1024
#define SCHEMA_MAX_DEPTH 64
#define SCHEMA_MAX_ALIASES 64
#define SCHEMA_MAX_NAME_LEN 64
/* YAML nodes per document, an alias counting as the nodes it stands for. */
#define SCHEMA_MAX_NODES 100000

typedef enum schema_domain_state {
        SCHEMA_DOMAIN_RUNNING,
        SCHEMA_DOMAIN_SHUTOFF,
} schema_domain_state;

typedef enum schema_restart_policy {
        SCHEMA_RESTART_NEVER, /* a changed config on a running domain waits: RestartPending */
        SCHEMA_RESTART_ON_CHANGE, /* shut down gracefully and start again */
} schema_restart_policy;

typedef enum schema_drift_policy {
        SCHEMA_DRIFT_CORRECT, /* an out-of-band change is put back */
        SCHEMA_DRIFT_REPORT, /* it is left alone and reported (condition Drifted) */
} schema_drift_policy;

typedef struct schema_network_spec {
        bool autostart;
} schema_network_spec;

typedef struct schema_domain_spec {
        schema_domain_state state;
        bool autostart;
        schema_restart_policy restart;
        /* Hostdev names from spec.hostdevs and interfaces {hostdev: NAME}, in file order. */
        char **hostdevs;
        /*
         * CloudInit names of the disks {cloudInit: NAME}, in document order:
         * their <disk> carries the name in vf:cloudinit on <source> and an
         * empty pool, for the reconciler to resolve (spec-domain.c).
         */
        char **cloudinits;
} schema_domain_spec;

typedef struct schema_hostdev_spec {
        char *pci; /* canonical lower-case DDDD:BB:SS.F */
        char *mac; /* canonical lower-case aa:bb:cc:dd:ee:ff, or NULL */
        int vlan; /* 0..4095, or -1 when not set */
        bool managed;
} schema_hostdev_spec;

typedef struct schema_pool_spec {
        bool autostart;
        char *path; /* the directory of a dir pool (<target><path>); NULL for other types */
} schema_pool_spec;

typedef enum schema_volume_format {
        SCHEMA_VOLUME_QCOW2,
        SCHEMA_VOLUME_RAW,
} schema_volume_format;

/* Where a volume's first content comes from (spec.from); only read when the volume is created. */
typedef enum schema_volume_source {
        SCHEMA_SOURCE_NONE, /* empty, of spec.capacity */
        SCHEMA_SOURCE_VOLUME, /* from.volume: POOL/NAME, copy-on-write or (clone: copy) a full copy */
        SCHEMA_SOURCE_FILE, /* from.file: an absolute path on the host, uploaded */
        SCHEMA_SOURCE_URL, /* from.url with from.sha256: downloaded, uploaded, verified */
} schema_volume_source;

/* What becomes of a volume's data once nothing declares it. */
typedef enum schema_deletion_policy {
        SCHEMA_DELETION_RETAIN, /* forgotten, the data stays: the default */
        SCHEMA_DELETION_DELETE, /* deleted with its data */
} schema_deletion_policy;

/*
 * A Volume's name is "POOL/NAME" (its pool and its name in that pool), as
 * libvirt identifies a volume and as disks and from.volume refer to it.
 */
typedef struct schema_volume_spec {
        char *pool; /* POOL */
        char *volume; /* NAME, the volume's name in the pool */
        uint64_t capacity; /* bytes; 0: not given, the source's size */
        schema_volume_format format;
        schema_volume_source source;
        char *from; /* "POOL/NAME", the path or the URL, as source says; NULL for SCHEMA_SOURCE_NONE */
        char *sha256; /* with SCHEMA_SOURCE_URL: 64 lower-case hex digits */
        bool full_copy; /* with SCHEMA_SOURCE_VOLUME: clone: copy */
        schema_deletion_policy deletion;
} schema_volume_spec;

/* A seed's volume is its name with this suffix, in the seed's pool. */
#define SCHEMA_CLOUDINIT_SUFFIX ".cidata.iso"

/* A NoCloud seed, uploaded as a raw ISO volume named "NAME.cidata.iso" into pool. */
typedef struct schema_cloudinit_spec {
        char *pool;
        char *user_data; /* the user-data file, verbatim; NULL: none */
        char *instance_id; /* meta-data instance-id; NULL: derived from the content, so a change gets a new one */
        char *hostname; /* meta-data local-hostname, or NULL */
        char *network_config; /* network-config, verbatim, or NULL */
} schema_cloudinit_spec;

typedef struct schema_resource {
        vf_kind kind;
        char *name;
        char *file; /* the path it was read from, as given */
        unsigned line, column; /* 1-based position of its declaration */
        bool adopt; /* metadata.adopt: take over an existing object of the same name */
        schema_drift_policy drift; /* spec.drift; not part of the hash: changing it redefines nothing */

        /*
         * libvirt XML for networks, domains, pools and volumes (the <volume> a
         * create is given); NULL for hostdevs and cloud-init seeds. For domains the
         * root <domain> carries no type attribute unless the file gave one: the
         * reconciler picks it from the hypervisor.
         */
        char *xml;

        /* Keys "kind/name" of the resources this one depends on, e.g. "network/lan". */
        char **depends;

        /*
         * SHA-256 over everything that is desired: the XML and the spec's policy
         * fields. metadata.adopt and the file's position are not part of it.
         */
        char hash[VF_HASH_HEX_LEN + 1];
        /*
         * SHA-256 over what goes into the libvirt definition only: the XML and,
         * for a domain, the hostdevs it names; for a cloud-init seed, which has
         * no XML, its content. A change of state, autostart or restart policy
         * changes hash but not this, and restarts nothing.
         */
        char definition_hash[VF_HASH_HEX_LEN + 1];

        union {
                schema_network_spec network;
                schema_domain_spec domain;
                schema_hostdev_spec hostdev;
                schema_pool_spec pool;
                schema_volume_spec volume;
                schema_cloudinit_spec cloudinit;
        };

        /* Private to schema/: the sets holding it, as a file taken unread shares its resources with the set before. */
        unsigned n_ref;
} schema_resource;

typedef struct schema_diag {
        char *file;
        unsigned line, column; /* 1-based; 0 when the error has no position (e.g. unreadable file) */
        char *message; /* one line, says what is wrong and what to do */
        bool warning; /* false: an error, which fails the file; true: worth saying, and the file is read */
} schema_diag;

/*
 * Whose files to believe. Running as root, virtform does with root's power
 * whatever the files say, so (like sshd's StrictModes) it should read only
 * what root alone can change.
 */
typedef struct schema_load_options {
        /*
         * Refuse a file, or the files of a directory, owned by anyone but root
         * or writable by group or others, and a symlink that does not resolve
         * directly into a trusted directory being loaded (a mask, a symlink to
         * /dev/null, excepted). A refused file fails like a file with errors.
         * For a caller running as root; the checks hold for root as for anyone.
         */
        bool check_trust;
        /* With check_trust: read them anyway, with a warning each (--insecure-permissions). */
        bool insecure_permissions;
        /*
         * The paths are the default drop-in directories, which need not
         * exist: a missing one is an empty layer, not an error.
         */
        bool default_dirs;
        /*
         * A directory of libvirt's own RelaxNG schemas (domain.rng,
         * network.rng, storagepool.rng, storagevol.rng, as libvirt installs
         * them in SCHEMA_LIBVIRT_SCHEMAS):
         * documents valid by virtform's compact schemas are checked against
         * these too, so that they agree with the host's libvirt. A schema
         * missing there is skipped; one that does not compile is a warning.
         * NULL: the compact schemas only, the fast path. Must outlive the set.
         */
        const char *libvirt_schemas;
        /*
         * How many files a full load reads at once, each on its own thread;
         * what the set holds is the same whatever the number. 0: one per
         * processor online (at most 8) once there are enough files to be worth
         * it; 1: one at a time.
         */
        unsigned jobs;
} schema_load_options;

#define SCHEMA_LIBVIRT_SCHEMAS "/usr/share/libvirt/schemas"

/*
 * Drop-in directories read when no path is given, highest precedence first:
 * the administrator's, then runtime's, then the vendor's. NULL-terminated.
 * Loaded with schema_load_options.default_dirs.
 */
extern const char *const schema_default_dirs[];

/* Where one file name's desired state comes from, after precedence and masking. */
typedef struct schema_source {
        char *name; /* "20-web.yaml" */
        char *path; /* the file that is read; NULL when masked */
        char *masked_by; /* the empty file or /dev/null symlink that masks the name, or NULL */
        char **overridden; /* paths of the same name in lower-precedence directories, in precedence order */
} schema_source;

/*
 * Everything below is in file-name order: the drop-in name (a path's last
 * component) sorts resources, diags, files_ok, files_failed and sources alike.
 */
typedef struct schema_set {
        schema_resource **resources; /* in file-name order, then declaration order */
        size_t n_resources;
        schema_diag *diags; /* errors and warnings */
        size_t n_diags;
        char **files_ok; /* files read with no error (warnings allowed) */
        size_t n_files_ok;
        char **files_failed; /* files with at least one error: nothing from them is in resources */
        size_t n_files_failed;
        schema_source *sources; /* one per file name found, masked ones included */
        size_t n_sources;
        char **dirs; /* the paths the set was loaded from, for schema_set_reload() */
        /*
         * Paths given that could not be read at all (missing, a component not
         * a directory, no permission), one error each, at the path. What they
         * declared is unknown, not gone: nothing may be pruned for it.
         */
        schema_diag *path_errors;
        size_t n_path_errors;
        char **dirs_missing; /* default directories that do not exist: empty layers */
        schema_load_options options; /* how they were loaded, for schema_set_reload() */
        vf_map *by_key; /* "kind/name" -> schema_resource* (borrowed) */
        struct schema_validators *validators; /* private: RelaxNG schemas, compiled on first use */
        struct schema_index *index; /* private: what reloads need to find without a full scan */
} schema_set;

/* "kind/name" for a resource, e.g. "domain/web1". The caller frees it. */
char *schema_key(vf_kind kind, const char *name);

/* True for file names the loader reads (*.yaml, *.yml, *.xml, not hidden, not editor leftovers). */
bool schema_file_is_candidate(const char *filename);

/*
 * Loads the paths as drop-in layers, the first one winning: a file name in an
 * earlier directory overrides the same name in later ones, the way systemd
 * resolves unit drop-ins. A directory contributes its candidate files (not
 * recursing); a path that is not a directory is a layer holding just that
 * file, under its last component, and is read whatever its name. With
 * options->default_dirs a missing path is an empty layer (listed in
 * set->dirs_missing); otherwise, and for a path that cannot be opened, it is
 * an error of its own, in set->path_errors, and contributes nothing. A
 * winning empty file or symlink to /dev/null masks its
 * (candidate) name: nothing is read for it, and that is not an error.
 *
 * Files are then read in name order; a key declared twice fails the file
 * whose name sorts later, and volumes made from one another (from.volume)
 * in a cycle fail the file whose name sorts last among theirs, at each of
 * its volumes on the cycle. Returns 0 when loading ran (problems are in
 * set->diags), or a negative errno when out of memory or a directory cannot
 * be listed.
 *
 * With options->check_trust, a directory that is not trusted still holds
 * its names, but each of its files fails (naming the directory) rather than
 * vanish: what they declared is held, not pruned, and no lower layer takes
 * over their names. An empty file masks only when it is trusted and not a
 * symlink. options may be NULL: no trust checks.
 */
int schema_load_with_options(char *const *paths, size_t n_paths, const schema_load_options *options,
                             schema_set **ret);
/*
 * schema_load_with_options(), reading only what changed since previous was
 * loaded (NULL: read everything). A file previous read without a diagnostic
 * is taken from it unread when the same path still names the same inode,
 * with the same size, mtime and ctime, last changed well before previous
 * read it, and (with trust checks) still trusted; it then goes through the
 * same checks against the files before it as a read would. The result is
 * what schema_load_with_options() gives. previous was loaded with the same
 * options, or it is not used; it is only read, and may be freed afterwards.
 */
int schema_load_reusing(char *const *paths, size_t n_paths, const schema_load_options *options,
                        const schema_set *previous, schema_set **ret);
/* schema_load_with_options() without trust checks. */
int schema_load(char *const *paths, size_t n_paths, schema_set **ret);


/*
 * Re-resolves one file name across set->dirs and reloads it: the resources
 * its previous winner declared leave the set, and what its winning file
 * declares now comes in (nothing when it is masked or gone). A path stands
 * for its last component. Diagnostics of the old file are replaced by the new
 * ones; files_ok, files_failed and sources are updated.
 *
 * When the name takes or gives up a key or PCI address that a later file also
 * declares, that file is reloaded too, as a full load would have judged it;
 * so is a later file whose volumes a change of the name's volumes closes
 * into a cycle, or whose cycle it opens. Only such files are read again.
 *
 * *changed (may be NULL) gets the sorted "kind/name" keys that appeared,
 * disappeared, changed hash or moved to another file, or NULL when none did.
 * The keys of a file that now fails are among them: they disappeared. The
 * result is what schema_load() of set->dirs would give now, except that a
 * path's kind (directory or file), and a directory's trust, are read again
 * only for this name: a change to a directory calls for a full load. A path
 * that cannot be read now and could when the set was loaded, or a default
 * directory that was there and is not, is such a change: it returns that
 * path's error (-ENOENT for a vanished directory), the set unchanged, rather
 * than take its files as gone; -EAGAIN when a path reads again or a default
 * directory appeared. Paths that failed at load and still fail do not stop
 * a reload: the set already holds nothing of them. On
 * -ENOMEM the set is consistent enough to free, no more: load it again.
 */
int schema_set_reload(schema_set *set, const char *name, char ***changed);

/* The source of a file name, or of the name of a path (e.g. a resource's file); NULL when unknown. */
const schema_source *schema_set_source(const schema_set *set, const char *path_or_name);

schema_set *schema_set_new(void);
void schema_set_free(schema_set *set);
DEFINE_POINTER_CLEANUP(schema_set, schema_set_free);

const schema_resource *schema_set_find(const schema_set *set, vf_kind kind, const char *name);

/* The diagnostics that are errors, not warnings: what fails files, and the paths that cannot be read. */
size_t schema_set_n_errors(const schema_set *set);

/* "FILE:LINE:COLUMN: error: MESSAGE" (or "FILE: error: MESSAGE" without a position); "warning" for warnings. */
char *schema_diag_format(const schema_diag *d);

/*
 * validate's check of a set as a whole: a warning, formatted as by
 * schema_diag_format() and at the resource, for each reference to a kind/name
 * no file of the set declares (a network libvirt has without virtform, a
 * Hostdev forgotten). *ret is NULL when there is none. A pass has no use for
 * them: such a resource waits as DependencyNotReady, and says why.
 */
int schema_set_undeclared_warnings(const schema_set *set, char ***ret);

/* Valid libvirt object name as virtform accepts it. */
bool schema_name_is_valid(const char *name);
