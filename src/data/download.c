/* download.c: dataset archives: resumable libcurl transfer to ARCHIVE.part, MD5 check
 * (OpenSSL's libcrypto), extraction with libarchive into a temporary folder renamed into place,
 * and a marker that makes a second run do nothing.
 * Not a reader of the extracted files (dataset.c and read_*.c). */
/* nftw() is XSI. */
#define _XOPEN_SOURCE 700
#include "relate/download.h"
#include "relate/data.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER ".relate-complete"

static const relate_download_spec specs[] = {
    {"cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
     "cifar-10-binary.tar.gz", "cifar-10-batches-bin"},
    {"cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
     "cifar-100-binary.tar.gz", "cifar-100-binary"},
    {"stl10", "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "91f7769df0f17e558f3565bffb0c7dfb",
     "stl10_binary.tar.gz", "stl10_binary"},
    {"tiny", "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de",
     "tiny-imagenet-200.zip", "tiny-imagenet-200"},
};
static const char *const spec_names[] = {"cifar10", "cifar100", "stl10", "tiny", NULL};

const char *const *relate_download_names(void) { return spec_names; }

const relate_download_spec *relate_download_find(const char *name)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (strcmp(specs[i].name, name) == 0)
            return &specs[i];
    return NULL;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

relate_status relate_md5_file(const char *path, char hex[33], relate_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return relate_error_set(err, RELATE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1;
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0)
        ok = EVP_DigestUpdate(ctx, buf, n) == 1;
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 16;
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (!ok)
        return relate_error_set(err, RELATE_ERR_IO, "cannot compute the MD5 of %s", path);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return RELATE_OK;
}

/* ------------------------------------------------------------------ transfer */
typedef struct {
    FILE *out;
    bool progress;
    curl_off_t resumed;
    double last_draw;
} transfer;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
    transfer *t = user;
    return fwrite(ptr, size, nmemb, t->out) * size;
}

static int on_progress(void *user, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un)
{
    transfer *t = user;
    (void)ut, (void)un;
    if (!t->progress || total <= 0)
        return 0;
    double frac = (double)(now + t->resumed) / (double)(total + t->resumed);
    if (frac - t->last_draw < 0.005 && now != total)
        return 0;
    t->last_draw = frac;
    int bar = (int)(frac * 40);
    fprintf(stderr, "\r  [%.*s%*s] %5.1f%% of %.1f MB", bar, "========================================", 40 - bar, "",
            100 * frac, (double)(total + t->resumed) / 1e6);
    if (now == total)
        fputc('\n', stderr);
    return 0;
}

static relate_status fetch(const relate_download_spec *s, const char *part, bool progress, relate_error *err)
{
    struct stat st;
    curl_off_t have = stat(part, &st) == 0 ? (curl_off_t)st.st_size : 0;
    transfer t = {.progress = progress, .resumed = have};
    t.out = fopen(part, have ? "ab" : "wb");
    if (!t.out)
        return relate_error_set(err, RELATE_ERR_IO, "cannot write %s: %s", part, strerror(errno));
    CURL *c = curl_easy_init();
    if (!c) {
        fclose(t.out);
        return relate_error_set(err, RELATE_ERR_IO, "cannot start libcurl");
    }
    char curl_msg[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled server (below 1 kB/s for a minute) fails instead of hanging forever. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    if (have)
        curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, have);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    int closed = fclose(t.out);
    if (rc == CURLE_RANGE_ERROR || (have && rc == CURLE_OK && code == 200)) {
        /* The server ignored the range: our bytes were appended to a full copy. Start over. */
        remove(part);
        return relate_error_set(err, RELATE_ERR_IO, "the server at %s cannot resume downloads; run the command again",
                                s->url);
    }
    if (rc != CURLE_OK || closed != 0)
        return relate_error_set(err, RELATE_ERR_IO, "%s", *curl_msg ? curl_msg : curl_easy_strerror(rc));
    return RELATE_OK;
}

/* ------------------------------------------------------------------ extraction */
/* A name is safe when it is relative and none of its components is "..": prefixed with the
 * extraction folder it then stays inside it. */
static bool safe_entry_name(const char *name)
{
    if (!name || !*name || name[0] == '/')
        return false;
    for (const char *c = name; *c;) {
        size_t len = strcspn(c, "/");
        if (len == 2 && c[0] == '.' && c[1] == '.')
            return false;
        c += len;
        while (*c == '/')
            c++;
    }
    return true;
}

static relate_status extract(const char *archive_path, const char *into, relate_error *err)
{
    struct archive *a = archive_read_new(), *w = archive_write_disk_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    /* Never write outside `into`. Entry names are checked here (relative, no ".." component),
     * then prefixed with `into` (libarchive's own NODOTDOT / NOABSOLUTEPATHS checks would reject
     * the prefix itself when the data root is given as "../x" or "/x"). Dataset archives hold
     * only files and folders, so every other kind of entry is refused: a hard link's target is a
     * second path the name check never sees (a pax hard link carrying data overwrites its target),
     * and a symbolic link would redirect later entries. SECURE_SYMLINKS also refuses to write
     * through a symbolic link that is already on disk. */
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    relate_status st = RELATE_OK;
    if (archive_read_open_filename(a, archive_path, 1 << 16) != ARCHIVE_OK)
        st = relate_error_set(err, RELATE_ERR_FORMAT, "cannot read the archive %s: %s", archive_path,
                              archive_error_string(a));
    struct archive_entry *e;
    while (st == RELATE_OK) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            st = relate_error_set(err, RELATE_ERR_FORMAT, "corrupt archive %s: %s", archive_path, archive_error_string(a));
            break;
        }
        /* Our own copy: archive_entry_set_pathname below frees the string the entry returned. */
        char name[4096];
        const char *entry_name = archive_entry_pathname(e);
        snprintf(name, sizeof name, "%s", entry_name ? entry_name : "");
        if (!entry_name || strlen(entry_name) >= sizeof name || !safe_entry_name(name)) {
            st = relate_error_set(err, RELATE_ERR_FORMAT, "archive %s has an unsafe entry '%.300s'; refusing to extract",
                                  archive_path, name);
            break;
        }
        mode_t type = archive_entry_filetype(e);
        if (archive_entry_hardlink(e) || archive_entry_symlink(e) || (type != AE_IFREG && type != AE_IFDIR)) {
            st = relate_error_set(err, RELATE_ERR_FORMAT,
                                  "archive %s has a %s entry '%.300s'; dataset archives hold only files and folders: "
                                  "refusing to extract",
                                  archive_path,
                                  archive_entry_hardlink(e)                         ? "hard-link"
                                  : archive_entry_symlink(e) || type == AE_IFLNK ? "symbolic-link"
                                                                                    : "special-file",
                                  name);
            break;
        }
        char dest[sizeof name + 4400]; /* into: at most 4300 bytes (relate_download) */
        snprintf(dest, sizeof dest, "%s/%s", into, name);
        archive_entry_set_pathname(e, dest);
        if (archive_write_header(w, e) != ARCHIVE_OK) {
            st = relate_error_set(err, RELATE_ERR_IO, "cannot extract %.300s: %s", name, archive_error_string(w));
            break;
        }
        const void *buf;
        size_t size;
        la_int64_t off;
        while ((r = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK)
            if (archive_write_data_block(w, buf, size, off) != ARCHIVE_OK) {
                r = ARCHIVE_FATAL;
                break;
            }
        if (r != ARCHIVE_EOF) {
            st = relate_error_set(err, RELATE_ERR_FORMAT, "corrupt archive %s while extracting %.300s: %s", archive_path,
                                  name, archive_error_string(a));
            break;
        }
        if (archive_write_finish_entry(w) != ARCHIVE_OK) {
            st = relate_error_set(err, RELATE_ERR_IO, "cannot extract %.300s: %s", name, archive_error_string(w));
            break;
        }
    }
    archive_read_free(a);
    archive_write_free(w);
    return st;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Removes a folder and everything under it, without following symbolic links (FTW_PHYS) and
 * without a shell: the path comes from --data_root and may hold any character. */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "relate: could not remove %s: %s\n", path, strerror(errno));
}

static relate_status by_hand(const relate_download_spec *s, const char *root, relate_error *err, const char *why)
{
    char msg[1024]; /* relate_error_set cuts it to fit */
    snprintf(msg, sizeof msg,
             "%.200s. To do it by hand: download %.100s, check that `md5sum %s` prints %s, put it in %.60s and "
             "run `relate download %s --data_root=%.60s` again (or extract it there yourself)",
             why, s->url, s->archive, s->md5, root, s->name, root);
    memset(err, 0, sizeof *err);
    return relate_error_set(err, RELATE_ERR_IO, "%s", msg);
}

relate_status relate_download(const relate_download_spec *s, const char *root, const relate_download_options *opts,
                              relate_error *err)
{
    relate_download_options o = opts ? *opts : (relate_download_options){0};
    char folder[4200], marker[4300], archive[4200], part[4300], bad[4300], tmp[4300];
    snprintf(folder, sizeof folder, "%s/%s", root, s->folder);
    snprintf(marker, sizeof marker, "%s/%s", folder, MARKER);
    snprintf(archive, sizeof archive, "%s/%s", root, s->archive);
    snprintf(part, sizeof part, "%s.part", archive);
    snprintf(bad, sizeof bad, "%s.bad", archive);
    snprintf(tmp, sizeof tmp, "%s/.relate-extract-%s", root, s->name);
    if (exists(marker)) {
        if (!o.quiet)
            printf("%s is already in %s: nothing to do\n", s->name, folder);
        return RELATE_OK;
    }
    /* Data extracted by hand or by torchvision (no marker of ours) that reads as the dataset is
     * used as it is: downloading 160 MB to replace it would help no one. */
    relate_dataset ds;
    relate_error ignore = {0};
    if (relate_dataset_open(&ds, s->name, root, &ignore) == RELATE_OK) {
        const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN);
        const relate_split *te = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
        if (!o.quiet)
            printf("%s is already in %s and reads as %lld training and %lld test images: nothing to download\n",
                   s->name, root, tr && tr->present ? (long long)tr->count : 0LL,
                   te && te->present ? (long long)te->count : 0LL);
        relate_dataset_close(&ds);
        return RELATE_OK;
    }
    if (mkdir(root, 0777) != 0 && errno != EEXIST)
        return relate_error_set(err, RELATE_ERR_IO, "cannot create the data root %s: %s", root, strerror(errno));
    relate_error e = {0};
    char md5[33];
    if (!exists(archive)) {
        if (!o.quiet)
            printf("downloading %s\n", s->url);
        if (fetch(s, part, o.progress, &e) != RELATE_OK) {
            /* A partial file is kept only when asked for (and when it holds something): a stray
             * .part looks like data to whoever lists the folder. */
            struct stat pst;
            const bool keep = o.keep_partial && stat(part, &pst) == 0 && pst.st_size > 0;
            if (!keep)
                remove(part);
            char why[600];
            if (keep)
                snprintf(why, sizeof why, "download failed (%.200s); the partial file %.150s is kept and resumed next "
                                          "time",
                         e.msg, part);
            else
                snprintf(why, sizeof why, "download failed (%.200s); nothing was kept (--keep_partial=True keeps the "
                                          "partial file and resumes it next time)",
                         e.msg);
            return by_hand(s, root, err, why);
        }
        if (relate_md5_file(part, md5, err) != RELATE_OK)
            return err->code;
        if (strcmp(md5, s->md5) != 0) {
            rename(part, bad);
            char why[600];
            snprintf(why, sizeof why, "checksum mismatch: the download has MD5 %s, expected %s (kept as %.150s)", md5, s->md5,
                     bad);
            return by_hand(s, root, err, why);
        }
        if (rename(part, archive) != 0)
            return relate_error_set(err, RELATE_ERR_IO, "cannot rename %s: %s", part, strerror(errno));
    } else {
        if (relate_md5_file(archive, md5, err) != RELATE_OK)
            return err->code;
        if (strcmp(md5, s->md5) != 0) {
            char why[600];
            snprintf(why, sizeof why, "%.200s has MD5 %s, expected %s: delete it", archive, md5, s->md5);
            return by_hand(s, root, err, why);
        }
    }
    if (!o.quiet)
        printf("MD5 %s ok; extracting into %s\n", md5, root);
    remove_tree(tmp);
    if (mkdir(tmp, 0777) != 0)
        return relate_error_set(err, RELATE_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    relate_status st = extract(archive, tmp, err);
    char inner[4400];
    snprintf(inner, sizeof inner, "%s/%s", tmp, s->folder);
    if (st == RELATE_OK && !exists(inner))
        st = relate_error_set(err, RELATE_ERR_FORMAT, "the archive %s does not contain the folder %s", archive, s->folder);
    if (st == RELATE_OK) {
        /* An older, incomplete extraction (no marker) is replaced as a whole. */
        if (exists(folder))
            remove_tree(folder);
        if (rename(inner, folder) != 0)
            st = relate_error_set(err, RELATE_ERR_IO, "cannot move %s to %s: %s", inner, folder, strerror(errno));
    }
    remove_tree(tmp);
    if (st != RELATE_OK)
        return st;
    FILE *m = fopen(marker, "w");
    if (!m || fprintf(m, "%s %s\n", s->md5, s->archive) < 0 || fclose(m) != 0)
        return relate_error_set(err, RELATE_ERR_IO, "cannot write %s", marker);
    if (!o.quiet)
        printf("%s ready in %s\n", s->name, folder);
    return RELATE_OK;
}
