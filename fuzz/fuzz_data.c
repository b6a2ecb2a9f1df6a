/* fuzz_data.c: slots, seeds and the open-and-touch of the dataset-reader harnesses (see
 * fuzz_data.h). */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/readers.h"
#include "relate/data.h"

static void slot_write(fd_slot *t, const uint8_t *data, size_t n, bool gzip)
{
    if (gzip)
        fz_write_gz(t->path, data, n);
    else
        fz_write(t->path, data, n);
}

static void slot_reset(fd_slot *t)
{
    if (t->absent)
        unlink(t->path);
    else
        slot_write(t, t->def.p, t->def.n, t->gzip);
    t->dirty = false;
}

fd_slot *fd_add(fd_slots *s, const char *root, const char *rel, const void *def, size_t n, bool gzip)
{
    if (s->n == FD_MAX_SLOTS)
        abort();
    fd_slot *t = &s->slot[s->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s/%s", root, rel);
    t->absent = def == NULL;
    t->gzip = gzip;
    if (def)
        fz_put(&t->def, def, n);
    fz_mkdirs(t->path, 0);
    slot_reset(t);
    return t;
}

void fd_apply(fd_slots *s, int sel, const uint8_t *data, size_t size)
{
    for (int k = 0; k < s->n; k++)
        if (k != sel && s->slot[k].dirty)
            slot_reset(&s->slot[k]);
    fd_slot *t = &s->slot[sel];
    slot_write(t, data, size, t->gzip);
    t->dirty = true;
}

bool fd_open_touch(const char *name, const char *root)
{
    relate_dataset ds;
    relate_error err = {0};
    relate_data_opts o = {.allow_partial = true, .fashion_fallback = ""};
    if (relate_dataset_open_opts(&ds, name, root, &o, &err) != RELATE_OK) {
        fz_debug("open %s: error %d: %s", name, (int)err.code, err.msg);
        return false;
    }
    fz_debug("open %s: OK, train %lld, test %lld, unlabeled %lld, %d classes", name,
             (long long)ds.splits[0].count, (long long)ds.splits[1].count, (long long)ds.splits[2].count,
             ds.info.num_classes);
    for (int k = 0; k < RELATE_SPLIT_COUNT; k++) {
        const relate_split *sp = relate_dataset_split(&ds, (relate_split_kind)k);
        if (!sp)
            continue;
        if (sp->count < 0 || sp->width <= 0 || sp->height <= 0)
            abort(); /* an opened split has a size */
        for (int64_t i = 0; i < sp->count; i++) {
            relate_image img = relate_split_image(sp, i);
            fz_touch(img.pixels, (size_t)img.width * (size_t)img.height * 3);
        }
        if (sp->count > 0)
            fz_touch(sp->labels, (size_t)sp->count * sizeof *sp->labels);
    }
    for (int c = 0; c < ds.info.num_classes; c++)
        fz_touch(ds.info.class_names[c], strlen(ds.info.class_names[c]) + 1);
    relate_dataset_close(&ds);
    return true;
}

void fd_seed_sel(const char *dir, const char *name, int sel, const void *data, size_t n)
{
    fz_buf b = {0};
    fz_put_u8(&b, sel);
    fz_put(&b, data, n);
    fz_seed(dir, name, b.p, b.n);
    fz_free(&b);
}

void fd_seed_defaults(const char *dir, const fd_slots *s, const char *prefix)
{
    for (int k = 0; k < s->n; k++)
        if (!s->slot[k].absent)
            fd_seed_sel(dir, fz_path("%s_slot%d", prefix, k), k, s->slot[k].def.p, s->slot[k].def.n);
}

void fd_fixed(const char *root, const char *rel, const void *data, size_t n)
{
    fz_write(fz_path("%s/%s", root, rel), data, n);
}
