/* ckpt_damaged.c: files that must fail cleanly, and writes that must not tear: every truncation
 * of a zip checkpoint, flipped bytes (CRC) and corrupted bytes, foreign files (text, HTML,
 * safetensors, random bytes, empty, gzip, plain pickle, PYTORCH1, zips and tars), folders and
 * missing files; atomic writes (a write failing half-way leaves the old file and no temporary).
 * Not damaged legacy files (those are in ckpt_handbuilt.c). */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt_fixtures.h"
#include "io/zip_stored.h"
#include "relate/checkpoint.h"
#include "relate/safetensors.h"
#include "test_util.h"

/* ------------------------------------------------------------------ damaged and foreign files */
void test_truncated_and_corrupt_zip(void)
{
    relate_params p;
    relate_param *r[8];
    relate_param_group g[2];
    relate_adam o;
    adam_setup(&p, r, g, &o, 1e-3, 9);
    fake_grads(&p, 3);
    relate_adam_step(&o);
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &p) == RELATE_OK && relate_ckpt_put_adam(w, "optimizer", &o) == RELATE_OK &&
          relate_ckpt_put_int(w, "epoch", 3) == RELATE_OK);
    relate_error err = {0};
    const char *path = path_of("full.tar");
    CHECK_MSG(relate_ckpt_write(w, path, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_writer_free(w);
    size_t n = 0;
    uint8_t *full = slurp(path, &n);
    const char *cut = path_of("cut.tar");
    int accepted = 0, unexplained = 0;
    for (size_t k = 0; k < n; k += (k < 64 || k > n - 64) ? 1 : 7) {
        spit(cut, full, k);
        relate_ckpt *c = NULL;
        relate_error e = {0};
        relate_status s = relate_ckpt_open(&c, cut, &e);
        accepted += s == RELATE_OK;
        /* after the zip signature every cut loses the end record: "truncated" */
        if (s != RELATE_OK && (!strstr(e.msg, "cut.tar") || (k >= 4 && !strstr(e.msg, "truncated")) ||
                               (k == 0 && !strstr(e.msg, "empty")))) {
            if (unexplained++ < 3)
                fprintf(stderr, "cut at %zu of %zu: %s\n", k, n, e.msg);
        }
        relate_ckpt_close(c);
    }
    CHECK_MSG(accepted == 0 && unexplained == 0, "%d truncations accepted, %d badly explained", accepted, unexplained);

    /* a flipped byte in a tensor record or in data.pkl: the CRC says so */
    relate_zip_reader z;
    CHECK(relate_zip_reader_open(&z, full, n, &err) == RELATE_OK);
    const relate_zip_entry *d = relate_zip_reader_find(&z, "archive/data/3");
    const relate_zip_entry *pk = relate_zip_reader_find(&z, "archive/data.pkl");
    size_t at_data = d ? (size_t)d->data_offset + 1 : 0, at_pkl = pk ? (size_t)pk->data_offset + 40 : 0;
    relate_zip_reader_free(&z);
    full[at_data] ^= 1;
    spit(cut, full, n);
    expect_open_error(cut, RELATE_ERR_FORMAT, "CRC of archive/data/3");
    full[at_data] ^= 1;
    full[at_pkl] ^= 0x10;
    spit(cut, full, n);
    expect_open_error(cut, RELATE_ERR_FORMAT, "CRC of archive/data.pkl");
    full[at_pkl] ^= 0x10;
    /* every single corrupted byte: an error or a successful open, never a crash */
    relate_params q;
    make_store(&q, 1, NULL);
    for (size_t k = 0; k < n; k += 3) {
        full[k] ^= 0xa5;
        spit(cut, full, n);
        full[k] ^= 0xa5;
        relate_ckpt *c = NULL;
        relate_error e = {0};
        if (relate_ckpt_open(&c, cut, &e) == RELATE_OK) {
            relate_ckpt_load_state_dict(c, "backbone", &q, &e);
            relate_ckpt_close(c);
        }
    }
    relate_params_free(&q);
    free(full);
    relate_adam_free(&o);
    relate_params_free(&p);
}

void test_foreign_files(void)
{
    const char *t = path_of("notes.txt");
    const char *text = "epoch 50: loss 0.08\nacc 71.2\n";
    spit(t, text, strlen(text));
    expect_open_error(t, RELATE_ERR_FORMAT, "a text file");
    const char *h = path_of("page.tar");
    const char *html = "<!DOCTYPE html><html><body>404</body></html>\n";
    spit(h, html, strlen(html));
    expect_open_error(h, RELATE_ERR_FORMAT, "HTML");
    float x[4] = {1, 2, 3, 4};
    relate_st_entry e = {"w", "F32", 1, (int64_t[]){4}, x};
    relate_error err = {0};
    const char *s = path_of("model.safetensors");
    CHECK(relate_safetensors_write(s, &e, 1, NULL, 0, &err) == RELATE_OK);
    expect_open_error(s, RELATE_ERR_FORMAT, "safetensors");
    uint8_t rnd[300];
    uint64_t state = 88172645463325252ull;
    for (size_t k = 0; k < sizeof rnd; k++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        rnd[k] = (uint8_t)(state >> 24);
    }
    rnd[0] = 0x07;
    const char *r = path_of("random.bin");
    spit(r, rnd, sizeof rnd);
    expect_open_error(r, RELATE_ERR_FORMAT, "not a PyTorch checkpoint");
    const char *z = path_of("empty.tar");
    spit(z, "", 0);
    expect_open_error(z, RELATE_ERR_FORMAT, "empty");
    const char *gz = path_of("ckpt.tar.gz");
    spit(gz, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
    expect_open_error(gz, RELATE_ERR_FORMAT, "gzip");
    const char *pk = path_of("plain.pkl");
    spit(pk, "\x80\x02K\x01.", 5);
    expect_open_error(pk, RELATE_ERR_FORMAT, "pickle without PyTorch's magic");
    const char *pt1 = path_of("preview.pt");
    spit(pt1, "PYTORCH1........", 16);
    expect_open_error(pt1, RELATE_ERR_FORMAT, "PYTORCH1");
    blob top[1] = {{"hello.txt", "hi\n", 3}};
    write_zip(path_of("plain.zip"), top, 1);
    expect_open_error(path_of("plain.zip"), RELATE_ERR_FORMAT, "not inside a folder");
    blob nested[2] = {{"docs/hello.txt", "hi\n", 3}, {"docs/readme.md", "#\n", 2}};
    write_zip(path_of("docs.zip"), nested, 2);
    expect_open_error(path_of("docs.zip"), RELATE_ERR_FORMAT, "no entry docs/data.pkl (entries: docs/hello.txt, docs/readme.md)");
    char tar[1024];
    memset(tar, 0, sizeof tar);
    strcpy(tar, "checkpoint.tar");
    memcpy(tar + 257, "ustar", 5);
    spit(path_of("old.tar"), tar, sizeof tar);
    expect_open_error(path_of("old.tar"), RELATE_ERR_FORMAT, "tar archive");
    expect_open_error(dir, RELATE_ERR_IO, "folder");
    expect_open_error(path_of("does_not_exist.tar"), RELATE_ERR_IO, "No such file");
}

/* ------------------------------------------------------------------ atomic writes */
void test_atomic_writes(void)
{
    relate_params a;
    relate_params_init(&a);
    relate_params_add(&a, "big", RELATE_PARAM, 1, (int64_t[]){100000});
    relate_error err = {0};
    CHECK(relate_params_finalize(&a, &err) == RELATE_OK);
    relate_test_fill(a.items[0]->data, 100000, 1);
    CHECK(relate_ckpt_write_state_dict(&a, "/nonexistent_relate_dir/x.tar", &err) == RELATE_ERR_IO);
    CHECK_MSG(strstr(err.msg, "cannot write checkpoint") && strstr(err.msg, "writable"), "%s", err.msg);

    const char *path = path_of("keep.tar");
    spit(path, "previous checkpoint", 19);
    CHECK(count_tmp_files() == 0);
    /* a write that fails half-way (file size limit) leaves the old file and no temporary */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 50000, .rlim_max = RLIM_INFINITY};
        setrlimit(RLIMIT_FSIZE, &rl);
        relate_error e = {0};
        relate_status s = relate_ckpt_write_state_dict(&a, path, &e);
        _exit(s == RELATE_ERR_IO && strstr(e.msg, "unchanged") ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the failing write did not report an i/o error");
    size_t n = 0;
    uint8_t *kept = slurp(path, &n);
    CHECK(kept && n == 19 && memcmp(kept, "previous checkpoint", 19) == 0);
    free(kept);
    CHECK(count_tmp_files() == 0);
    /* a successful write replaces it and leaves no temporary */
    CHECK(relate_ckpt_write_state_dict(&a, path, &err) == RELATE_OK);
    CHECK(count_tmp_files() == 0);
    relate_ckpt *c = NULL;
    CHECK(relate_ckpt_open(&c, path, &err) == RELATE_OK);
    relate_ckpt_close(c);
    relate_params_free(&a);
}
