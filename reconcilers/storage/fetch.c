/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A download handed to its sink chunk by chunk as libcurl receives it:
 * nothing of it is kept here, so an image of any size costs the same memory.
 */
#define VF_STORAGE_INTERNAL
#include "reconcilers/storage/storage-internal.h"

#include <curl/curl.h>

/* A connection that takes longer, or a transfer that stalls longer, fails: the retry is the scheduler's. */
#define CONNECT_TIMEOUT_SEC 30L
#define STALL_SEC 60L
#define MAX_REDIRECTS 5L

typedef struct transfer {
        const rc_context *ctx;
        const rc_fetch_sink *sink;
        CURL *curl;
        bool begun;
        int error; /* the sink's, or -EINTR */
} transfer;

static int begin_once(transfer *t) {
        curl_off_t length = -1;

        if (t->begun)
                return 0;
        t->begun = true;
        if (curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) != CURLE_OK)
                length = -1;
        return t->sink->begin(t->sink->userdata, length);
}

static size_t on_data(char *data, size_t size, size_t n, void *userdata) {
        transfer *t = userdata;
        int r = rc_interrupted(t->ctx) ? -EINTR : begin_once(t);

        if (r >= 0)
                r = t->sink->chunk(t->sink->userdata, data, size * n);
        if (r < 0) {
                t->error = r;
                return CURL_WRITEFUNC_ERROR;
        }
        return size * n;
}

/* Called about once a second even while nothing arrives: SIGTERM stops a stalled download too. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        transfer *t = userdata;

        if (!rc_interrupted(t->ctx))
                return 0;
        t->error = -EINTR;
        return 1;
}

static void curl_easy_cleanupp(CURL **c) {
        if (*c)
                curl_easy_cleanup(*c);
}

int rc_fetch(const rc_context *ctx, const char *url, const rc_fetch_sink *sink, char **errmsg) {
        _cleanup_(curl_easy_cleanupp) CURL *curl = curl_easy_init();
        char error[CURL_ERROR_SIZE] = "";
        transfer t = { .ctx = ctx, .sink = sink, .curl = curl };
        long status = 0;

        if (!curl)
                return -ENOMEM;
        /* Only the web: a file:// or other scheme, in a URL or a redirect, could read what it should not. */
        if (curl_easy_setopt(curl, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_MAXREDIRS, MAX_REDIRECTS) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SEC) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, STALL_SEC) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, (long) RC_UPLOAD_CHUNK_SIZE) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK)
                return vf_error(errmsg, -EIO, "cannot set up the download of %s: libcurl lacks an option it needs",
                                url);
        CURLcode code = curl_easy_perform(curl);
        if (t.error < 0)
                return t.error;
        if (code != CURLE_OK)
                return vf_error(errmsg, -EIO, "downloading %s failed: %s", url,
                                error[0] ? error : curl_easy_strerror(code));
        (void) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (!t.begun)
                return vf_error(errmsg, -EIO, "downloading %s: the server sent no data (HTTP %ld)", url, status);
        return 0;
}
