/* backbone_file.c: a checkpoint's backbone, whatever wrote the file (relate_backbone_from_file). */
#include <string.h>

#include "relate/checkpoint.h"
#include "relate/train.h"

relate_status relate_backbone_from_file(relate_backbone *bb, const char *path, const char *backbone,
                                        relate_error *err)
{
    relate_ckpt *c;
    if (relate_ckpt_open(&c, path, err) != RELATE_OK)
        return err->code;
    const char *stored = NULL;
    relate_error e = {0};
    relate_ckpt_get_str(c, "backbone_name", &stored, &e);
    const bool given = backbone && *backbone;
    relate_status st = RELATE_OK;
    if (given && stored && strcmp(stored, backbone) != 0)
        st = relate_error_set(err, RELATE_ERR_ARG, "%s holds a %s backbone, but --backbone=%s: pass --backbone=%s or "
                                                   "leave --backbone out",
                              path, stored, backbone, stored);
    if (st == RELATE_OK)
        st = relate_backbone_create(bb, given ? backbone : stored ? stored : "conv4", 0, err);
    if (st == RELATE_OK) {
        memset(&e, 0, sizeof e);
        st = relate_ckpt_load_state_dict(c, relate_ckpt_has(c, "backbone") ? "backbone" : NULL, &bb->params, &e);
        if (st != RELATE_OK) {
            relate_error_set(err, e.code, "cannot use %s as a %s backbone: %s", path, bb->name, e.msg);
            relate_backbone_free(bb);
        }
    }
    relate_ckpt_close(c);
    return st;
}
