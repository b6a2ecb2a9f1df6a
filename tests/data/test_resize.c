/* test_resize.c: relate_resize_bilinear against Pillow's Image.resize(BILINEAR), pixel for pixel,
 * on up-, down- and one-axis resizes (tests/golden/resize.safetensors).
 * Not a test of the crop/jitter transforms. */
#include <stdlib.h>
#include <string.h>

#include "data/transforms_internal.h"
#include "test_util.h"

int main(void)
{
    relate_safetensors st;
    relate_test_open_golden(&st, "resize.safetensors");
    const char *ncases = relate_safetensors_meta(&st, "cases");
    CHECK(ncases != NULL);
    int n = ncases ? atoi(ncases) : 0;
    CHECK(n >= 8);
    for (int i = 0; i < n; i++) {
        char key[32], in_name[32], out_name[32];
        snprintf(key, sizeof key, "case%d", i);
        snprintf(in_name, sizeof in_name, "case%d.in", i);
        snprintf(out_name, sizeof out_name, "case%d.out", i);
        int sw, sh, dw, dh;
        const char *m = relate_safetensors_meta(&st, key);
        CHECK(m && sscanf(m, "%d %d %d %d", &sw, &sh, &dw, &dh) == 4);
        const relate_st_tensor *in = relate_safetensors_find(&st, in_name), *want = relate_safetensors_find(&st, out_name);
        CHECK(in && want && in->numel == (int64_t)sw * sh * 3 && want->numel == (int64_t)dw * dh * 3);
        if (!in || !want)
            continue;
        relate_image src = {sw, sh, (uint8_t *)in->data};
        relate_image dst = {dw, dh, malloc((size_t)dw * dh * 3)};
        uint8_t *scratch = malloc(relate_resize_scratch_bytes(sw, sh, dw, dh));
        relate_resize_bilinear(&src, &dst, scratch);
        int diff = 0;
        for (int64_t p = 0; p < want->numel; p++)
            diff += dst.pixels[p] != ((const uint8_t *)want->data)[p];
        CHECK_MSG(diff == 0, "%dx%d -> %dx%d: %d bytes differ from Pillow", sw, sh, dw, dh, diff);
        free(dst.pixels);
        free(scratch);
    }
    relate_safetensors_close(&st);
    return relate_test_finish();
}
