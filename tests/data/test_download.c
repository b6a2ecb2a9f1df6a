/* test_download.c: relate_download against file:// URLs of small archives the test builds:
 * fresh download + extraction, idempotence, resuming a partial file, checksum mismatch, a
 * missing source (no .part left), data already extracted without relate, unsafe archive entries
 * and an archive without the expected folder.
 * Not a network test: nothing leaves this machine. */
#define _POSIX_C_SOURCE 200809L
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relate/download.h"
#include "test_util.h"

static char dir[] = "/tmp/relate_dl_XXXXXX";

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* A .tar.gz with the given (name, content) entries. */
static void make_archive(const char *path, const char *const *names, const char *const *contents, int n)
{
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    archive_write_open_filename(a, path);
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_size(e, (la_int64_t)strlen(contents[i]));
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_write_header(a, e);
        archive_write_data(a, contents[i], strlen(contents[i]));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    char src[512], url[600], root[512], p[1024];
    snprintf(src, sizeof src, "%s/mini.tar.gz", dir);
    const char *names[] = {"mini-dataset/a.txt", "mini-dataset/sub/b.txt"};
    /* Long enough content that a 100-byte partial file is a real resume. */
    char big[3000];
    for (int i = 0; i < 2999; i++)
        big[i] = (char)('a' + (i * 7) % 26);
    big[2999] = 0;
    const char *contents[] = {"hello\n", big};
    make_archive(src, names, contents, 2);
    char md5[33];
    relate_error err = {0};
    CHECK(relate_md5_file(src, md5, &err) == RELATE_OK && strlen(md5) == 32);
    snprintf(url, sizeof url, "file://%s", src);
    relate_download_spec spec = {"mini", url, md5, "mini.tar.gz", "mini-dataset"};
    relate_download_options quiet = {.quiet = true};

    /* Fresh download. */
    snprintf(root, sizeof root, "%s/root1", dir);
    CHECK_MSG(relate_download(&spec, root, &quiet, &err) == RELATE_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/mini-dataset/a.txt", root);
    CHECK(slurp(p) && strcmp(slurp(p), "hello\n") == 0);
    snprintf(p, sizeof p, "%s/mini-dataset/sub/b.txt", root);
    CHECK(slurp(p) && strcmp(slurp(p), big) == 0);
    snprintf(p, sizeof p, "%s/mini-dataset/.relate-complete", root);
    CHECK(exists(p));
    snprintf(p, sizeof p, "%s/mini.tar.gz.part", root);
    CHECK(!exists(p));

    /* Idempotent: with the archive gone and the source gone, a second run still succeeds. */
    snprintf(p, sizeof p, "%s/mini.tar.gz", root);
    CHECK(remove(p) == 0);
    relate_download_spec gone = spec;
    gone.url = "file:///nonexistent/relate/mini.tar.gz";
    memset(&err, 0, sizeof err);
    CHECK(relate_download(&gone, root, &quiet, &err) == RELATE_OK);

    /* Resume: a partial file holding the first 100 bytes is completed, not restarted. */
    snprintf(root, sizeof root, "%s/root2", dir);
    mkdir(root, 0777);
    snprintf(p, sizeof p, "%s/mini.tar.gz.part", root);
    FILE *in = fopen(src, "rb"), *out = fopen(p, "wb");
    char head[100];
    CHECK(fread(head, 1, 100, in) == 100);
    fwrite(head, 1, 100, out);
    fclose(in);
    fclose(out);
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_download(&spec, root, &quiet, &err) == RELATE_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/mini-dataset/a.txt", root);
    CHECK(exists(p));

    /* Checksum mismatch: nothing extracted, the bytes kept as .bad, a message that says what to do. */
    snprintf(root, sizeof root, "%s/root3", dir);
    relate_download_spec wrong = spec;
    wrong.md5 = "00000000000000000000000000000000";
    memset(&err, 0, sizeof err);
    CHECK(relate_download(&wrong, root, &quiet, &err) == RELATE_ERR_IO);
    CHECK(strstr(err.msg, "checksum mismatch") && strstr(err.msg, "by hand"));
    snprintf(p, sizeof p, "%s/mini-dataset", root);
    CHECK(!exists(p));
    snprintf(p, sizeof p, "%s/mini.tar.gz.bad", root);
    CHECK(exists(p));

    /* Offline / missing source. */
    snprintf(root, sizeof root, "%s/root4", dir);
    memset(&err, 0, sizeof err);
    CHECK(relate_download(&gone, root, &quiet, &err) == RELATE_ERR_IO);
    CHECK(strstr(err.msg, "download failed") && strstr(err.msg, md5));
    /* ... leaves no .part behind, and its advice names the data root. */
    snprintf(p, sizeof p, "%s/mini.tar.gz.part", root);
    CHECK_MSG(!exists(p), "a failed download left %s", p);
    char want[600];
    snprintf(want, sizeof want, "relate download mini --data_root=%s", root);
    CHECK_MSG(strstr(err.msg, want) && strstr(err.msg, "--keep_partial=True"), "%s", err.msg);

    /* A dataset already extracted without relate (by hand, by torchvision) and readable is not
     * downloaded again: here a CIFAR-10 subset of 2 records per file, and an unreachable URL. */
    snprintf(root, sizeof root, "%s/root_cifar", dir);
    mkdir(root, 0777);
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin", root);
    mkdir(p, 0777);
    const char *batches[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                             "data_batch_5.bin", "test_batch.bin"};
    static unsigned char rec[2 * 3073];
    for (int r = 0; r < 2; r++) {
        rec[r * 3073] = (unsigned char)(r + 3);
        for (int i = 1; i < 3073; i++)
            rec[r * 3073 + i] = (unsigned char)(i * 13 + r);
    }
    for (int b = 0; b < 6; b++) {
        snprintf(p, sizeof p, "%s/cifar-10-batches-bin/%s", root, batches[b]);
        FILE *f = fopen(p, "wb");
        CHECK(f && fwrite(rec, 1, sizeof rec, f) == sizeof rec && fclose(f) == 0);
    }
    relate_download_spec cifar = *relate_download_find("cifar10");
    cifar.url = "file:///nonexistent/relate/cifar-10-binary.tar.gz";
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_download(&cifar, root, &quiet, &err) == RELATE_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/cifar-10-binary.tar.gz.part", root);
    CHECK(!exists(p));
    /* ... while a folder that does not read as the dataset (a file missing) is downloaded. */
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin/test_batch.bin", root);
    CHECK(remove(p) == 0);
    memset(&err, 0, sizeof err);
    CHECK(relate_download(&cifar, root, &quiet, &err) == RELATE_ERR_IO);
    CHECK_MSG(strstr(err.msg, "download failed"), "%s", err.msg);

    /* An entry that climbs out of the data root is refused and nothing lands outside. */
    char evil[512];
    snprintf(evil, sizeof evil, "%s/evil.tar.gz", dir);
    const char *evil_names[] = {"mini-dataset/ok.txt", "../escaped.txt"};
    const char *evil_contents[] = {"ok", "bad"};
    make_archive(evil, evil_names, evil_contents, 2);
    char evil_md5[33], evil_url[600];
    CHECK(relate_md5_file(evil, evil_md5, &err) == RELATE_OK);
    snprintf(evil_url, sizeof evil_url, "file://%s", evil);
    relate_download_spec es = {"evil", evil_url, evil_md5, "evil.tar.gz", "mini-dataset"};
    snprintf(root, sizeof root, "%s/root5", dir);
    memset(&err, 0, sizeof err);
    CHECK(relate_download(&es, root, &quiet, &err) == RELATE_ERR_FORMAT);
    CHECK(strstr(err.msg, "unsafe") != NULL);
    snprintf(p, sizeof p, "%s/escaped.txt", root);
    CHECK(!exists(p));
    snprintf(p, sizeof p, "%s/mini-dataset", root);
    CHECK(!exists(p));

    /* Link entries are refused whatever their names: a pax hard link that carries data would
     * overwrite its target (here an absolute path outside the data root), and a symbolic link
     * would redirect the entries after it. Nothing outside the root changes; the symbolic-link
     * case also runs the error path that once used a freed entry name (ASan build). */
    char victim[512];
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    FILE *vf = fopen(victim, "w");
    CHECK(vf && fputs("precious\n", vf) >= 0 && fclose(vf) == 0);
    for (int kind = 0; kind < 2; kind++) {
        char link_path[512], link_url[600], link_md5[33];
        snprintf(link_path, sizeof link_path, "%s/link%d.tar.gz", dir, kind);
        struct archive *a = archive_write_new();
        archive_write_add_filter_gzip(a);
        archive_write_set_format_pax(a);
        CHECK(archive_write_open_filename(a, link_path) == ARCHIVE_OK);
        struct archive_entry *le = archive_entry_new();
        archive_entry_set_pathname(le, "mini-dataset/link.txt");
        archive_entry_set_perm(le, 0644);
        if (kind == 0) {
            archive_entry_set_filetype(le, AE_IFREG);
            archive_entry_set_hardlink(le, victim);
            archive_entry_set_size(le, 9);
        } else {
            archive_entry_set_filetype(le, AE_IFLNK);
            archive_entry_set_symlink(le, victim);
            archive_entry_set_size(le, 0);
        }
        CHECK(archive_write_header(a, le) == ARCHIVE_OK);
        if (kind == 0)
            archive_write_data(a, "OVERWRIT\n", 9);
        archive_entry_free(le);
        archive_write_close(a);
        archive_write_free(a);
        CHECK(relate_md5_file(link_path, link_md5, &err) == RELATE_OK);
        snprintf(link_url, sizeof link_url, "file://%s", link_path);
        char link_archive[32];
        snprintf(link_archive, sizeof link_archive, "link%d.tar.gz", kind);
        relate_download_spec ls = {"link", link_url, link_md5, link_archive, "mini-dataset"};
        snprintf(root, sizeof root, "%s/root_link%d", dir, kind);
        memset(&err, 0, sizeof err);
        CHECK(relate_download(&ls, root, &quiet, &err) == RELATE_ERR_FORMAT);
        CHECK_MSG(strstr(err.msg, kind == 0 ? "hard-link" : "symbolic-link") && strstr(err.msg, "link.txt"), "%s",
                  err.msg);
        CHECK(slurp(victim) && strcmp(slurp(victim), "precious\n") == 0);
        snprintf(p, sizeof p, "%s/mini-dataset", root);
        CHECK(!exists(p));
        snprintf(p, sizeof p, "%s/.relate-extract-link", root);
        CHECK(!exists(p));
    }

    /* A data root whose name is shell syntax is only a name: no command runs while the temporary
     * extraction folder is removed (it once went through system("rm -rf '...'")). */
    char pwned[200];
    snprintf(pwned, sizeof pwned, "%s/pwned", dir);
    CHECK(chdir(dir) == 0); /* a command in the name would run here: the name holds no '/' */
    snprintf(root, sizeof root, "%s/q'$(touch pwned)'`touch pwned`", dir);
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_download(&spec, root, &quiet, &err) == RELATE_OK, "%s", err.msg);
    CHECK(!exists(pwned));
    snprintf(p, sizeof p, "%s/mini-dataset/sub/b.txt", root);
    CHECK(slurp(p) && strcmp(slurp(p), big) == 0);
    snprintf(p, sizeof p, "%s/.relate-extract-mini", root);
    CHECK(!exists(p));

    /* An archive that lacks the expected folder. */
    relate_download_spec other = spec;
    other.folder = "something-else";
    snprintf(root, sizeof root, "%s/root6", dir);
    memset(&err, 0, sizeof err);
    CHECK(relate_download(&other, root, &quiet, &err) == RELATE_ERR_FORMAT);

    CHECK(relate_download_find("cifar10") && strcmp(relate_download_find("cifar10")->md5, "c32a1d4ab5d03f1284b67883e8d87530") == 0);
    CHECK(relate_download_find("tiny") && relate_download_find("fashionmnist") == NULL);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return relate_test_finish();
}
