/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A full load reads its files ahead, on several threads at once.
 *
 * Opening, checking, parsing, validating and hashing a file depend on that
 * file alone, and are most of what a load costs. What depends on the files
 * before it in name order (a key or PCI address declared again, a volume made
 * from itself) is judged when the set takes the file, on the loading thread,
 * in name order as ever. A file read ahead is taken only if none of what it
 * declares is in the set already: then every judgement a read on the loading
 * thread would make comes out the same, to the order of its diagnostics. A
 * file that declares something the set holds (an error either way) is read
 * again on the loading thread, as if nothing had been read ahead.
 *
 * Each thread reads into a set of its own, empty, so that nothing it reads is
 * judged against what another thread is reading, and compiles its own RelaxNG
 * schemas. The threads stay at most READAHEAD_WINDOW files ahead of the set:
 * a file's leftovers are freed while the thread that allocated them still
 * reads, and memory it freed is used again (a thread's malloc arena is
 * reused by that thread alone). While the file the set needs next is still
 * being read, the loading thread reads one further on. No thread outlives
 * the load.
 */
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/xmlschemastypes.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "schema/schema-internal.h"

/* Automatic read-ahead gives each thread this many files at least: fewer cost more in threads than they save. */
#define READAHEAD_FILES_PER_JOB 8
#define READAHEAD_MAX_JOBS 8
#define READAHEAD_WINDOW 128

typedef struct ahead {
        char *path; /* NULL: masked, gone, or out of memory; the loading thread finds out for itself */
        const schema_layer *layer;
        schema_file file;
        int result; /* what the read returned: only -ENOMEM matters */
        bool read;
} ahead;

typedef struct reader {
        schema_readahead *ra;
        schema_set *scratch; /* empty: what this thread reads is judged against nothing */
        pthread_t thread;
        bool started;
} reader;

struct schema_readahead {
        const schema_layers *layers;
        char *const *names; /* sorted, as schema_layers_list() gives them */
        size_t n;
        ahead *files;
        reader *readers; /* [0] is the loading thread's */
        unsigned n_readers;
        pthread_mutex_t lock;
        pthread_cond_t changed;
        /* Under lock: */
        size_t next; /* the first file no thread has claimed */
        size_t needed; /* the file the set takes next; none before it is read any more */
        bool stop;
};

static void read_one(reader *w, size_t i) {
        schema_readahead *ra = w->ra;
        _cleanup_(schema_source_done) schema_source src = {};
        schema_entry entry = {};
        ahead *a = &ra->files[i];

        if (schema_layers_resolve(ra->layers, ra->names[i], &src, &entry) <= 0 || !src.path)
                return;
        a->path = TAKE_PTR(src.path);
        a->layer = entry.layer;
        a->file = (schema_file) {
                .set = w->scratch, .layers = ra->layers, .layer = entry.layer, .entry_st = &entry.st,
                .path = a->path, .name = ra->names[i],
        };
        a->result = schema_file_read(&a->file);
        /* Neither outlives this call: the entry is on the stack, the scratch set goes with the thread. */
        a->file.entry_st = NULL;
        a->file.set = NULL;
}

static bool may_claim(const schema_readahead *ra) {
        return !ra->stop && ra->next < ra->n && ra->next < ra->needed + READAHEAD_WINDOW;
}

/* Claims the next file, reads it without the lock, and says so. Called and returns with the lock held. */
static void read_next(reader *w) {
        schema_readahead *ra = w->ra;
        size_t i = ra->next++;

        pthread_mutex_unlock(&ra->lock);
        read_one(w, i);
        pthread_mutex_lock(&ra->lock);
        ra->files[i].read = true;
        pthread_cond_broadcast(&ra->changed);
}

static void *reader_main(void *userdata) {
        reader *w = userdata;
        schema_readahead *ra = w->ra;

        pthread_mutex_lock(&ra->lock);
        while (!ra->stop && ra->next < ra->n) {
                if (may_claim(ra))
                        read_next(w);
                else
                        pthread_cond_wait(&ra->changed, &ra->lock);
        }
        pthread_mutex_unlock(&ra->lock);
        return NULL;
}

static unsigned jobs_for(const schema_load_options *o, size_t n_files) {
        if (o->jobs > 0)
                return o->jobs > READAHEAD_MAX_JOBS ? READAHEAD_MAX_JOBS : o->jobs;
        size_t jobs = n_files / READAHEAD_FILES_PER_JOB;
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        if (online > 0 && jobs > (size_t) online)
                jobs = (size_t) online;
        if (jobs > READAHEAD_MAX_JOBS)
                jobs = READAHEAD_MAX_JOBS;
        return jobs > 1 ? (unsigned) jobs : 1;
}

void schema_readahead_free(schema_readahead *ra) {
        if (!ra)
                return;
        pthread_mutex_lock(&ra->lock);
        ra->stop = true;
        pthread_cond_broadcast(&ra->changed);
        pthread_mutex_unlock(&ra->lock);
        for (unsigned i = 0; i < ra->n_readers; i++) {
                if (ra->readers[i].started)
                        (void) pthread_join(ra->readers[i].thread, NULL);
                schema_set_free(ra->readers[i].scratch);
        }
        free(ra->readers);
        pthread_cond_destroy(&ra->changed);
        pthread_mutex_destroy(&ra->lock);
        for (size_t i = 0; ra->files && i < ra->n; i++) {
                schema_file_done(&ra->files[i].file);
                free(ra->files[i].path);
        }
        free(ra->files);
        free(ra);
}

static int new_readahead(const schema_layers *layers, char *const *names, size_t n, unsigned jobs,
                         schema_readahead **ret) {
        schema_readahead *ra = calloc(1, sizeof(schema_readahead));
        if (!ra)
                return -ENOMEM;
        *ra = (schema_readahead) { .layers = layers, .names = names, .n = n };
        pthread_mutex_init(&ra->lock, NULL);
        pthread_cond_init(&ra->changed, NULL);
        *ret = ra;
        ra->files = calloc(n, sizeof(ahead));
        ra->readers = calloc(jobs, sizeof(reader));
        if (!ra->files || !ra->readers)
                return -ENOMEM;
        for (; ra->n_readers < jobs; ra->n_readers++) {
                reader *w = &ra->readers[ra->n_readers];
                *w = (reader) { .ra = ra, .scratch = schema_set_new() };
                if (!w->scratch)
                        return -ENOMEM;
                w->scratch->options = layers->options;
        }
        return 0;
}

int schema_readahead_start(const schema_layers *layers, char *const *names, schema_readahead **ret) {
        size_t n = vf_strv_length((char **) names);
        unsigned jobs = jobs_for(&layers->options, n);
        _cleanup_(schema_readahead_freep) schema_readahead *ra = NULL;

        *ret = NULL;
        if (jobs < 2 || n == 0)
                return 0;
        int r = new_readahead(layers, names, n, jobs, &ra);
        if (r < 0)
                return r;
        /*
         * libxml2 sets up its global state, RelaxNG its type libraries, and XML Schema its datatypes
         * (which RelaxNG's schemas name) on the thread that asks first, without a lock: this one asks,
         * before any thread that would race it. Two threads filling the datatypes at once leave some
         * missing ("type 'unsignedInt' is not exported"): a schema that names one fails to compile, and
         * the load failed as if out of memory.
         */
        xmlInitParser();
        xmlSchemaInitTypes();
        if (xmlRelaxNGInitTypes() < 0)
                return -ENOMEM;
        /* A thread that cannot be made leaves its share to the others. */
        for (unsigned i = 1; i < jobs; i++)
                ra->readers[i].started = pthread_create(&ra->readers[i].thread, NULL, reader_main, &ra->readers[i]) == 0;
        *ret = TAKE_PTR(ra);
        return 0;
}

/* Waits for file pos, reading further files meanwhile. Called and returns with the lock held. */
static void wait_for(schema_readahead *ra, size_t pos) {
        while (!ra->files[pos].read) {
                if (may_claim(ra))
                        read_next(&ra->readers[0]);
                else
                        pthread_cond_wait(&ra->changed, &ra->lock);
        }
}

/*
 * Where the set is now: nothing before pos is read any more. A file no
 * thread has claimed yet is read by the caller; false then.
 */
static bool claimed(schema_readahead *ra, size_t pos) {
        bool by_a_thread = ra->next > pos;

        ra->needed = pos;
        if (!by_a_thread)
                ra->next = pos + 1;
        pthread_cond_broadcast(&ra->changed);
        if (by_a_thread)
                wait_for(ra, pos);
        return by_a_thread;
}

int schema_readahead_take(schema_readahead *ra, schema_file *f) {
        if (!ra || !f->name)
                return 0;
        size_t pos = schema_strv_pos(ra->names, ra->n, f->name);
        if (pos == ra->n || strcmp(ra->names[pos], f->name) != 0)
                return 0;
        pthread_mutex_lock(&ra->lock);
        bool was_claimed = pos >= ra->needed && claimed(ra, pos);
        pthread_mutex_unlock(&ra->lock);

        ahead *a = &ra->files[pos];
        bool taken = was_claimed && a->path && a->result != -ENOMEM && !a->file.oom && a->layer == f->layer &&
                     strcmp(a->path, f->path) == 0 && !schema_file_declares_taken(&a->file, f->set);
        if (taken)
                schema_file_take_read(f, &a->file);
        /*
         * Whatever was not taken goes now, while the thread that allocated it reads on. Taken once: a
         * name judged again (a full load judges each once) finds no path here, and is read.
         */
        if (was_claimed) {
                schema_file_done(&a->file);
                free(a->path);
                a->path = NULL;
        }
        return taken;
}
