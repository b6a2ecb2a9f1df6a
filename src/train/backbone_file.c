/* backbone_file.c: a checkpoint's backbone, whatever wrote the file (relate_backbone_from_file). */
#include <string.h>

#include "relate/checkpoint.h"
#include "relate/train.h"
#include "train/stage_common.h"

relate_status relate_stage_backbone_name(const relate_ckpt *c, const char *path, const char *backbone,
                                         const char **name, bool *from_file, relate_error *err)
{
    const char *stored = NULL;
    relate_error ignore = {0};
    relate_ckpt_get_str(c, "backbone_name", &stored, &ignore);
    const bool given = backbone && *backbone;
    if (given && stored && strcmp(stored, backbone) != 0)
        return relate_error_set(err, RELATE_ERR_ARG, "%s holds a %s backbone, but --backbone=%s: pass --backbone=%s "
                                                     "or leave --backbone out",
                                path, stored, backbone, stored);
    *name = given ? backbone : stored ? stored : "conv4";
    if (from_file)
        *from_file = !given && stored;
    return RELATE_OK;
}

relate_status relate_backbone_from_file(relate_backbone *bb, const char *path, const char *backbone,
                                        relate_error *err)
{
    relate_ckpt *c;
    if (relate_ckpt_open(&c, path, err) != RELATE_OK)
        return err->code;
    const char *name = NULL;
    relate_status st = relate_stage_backbone_name(c, path, backbone, &name, NULL, err);
    if (st == RELATE_OK)
        st = relate_backbone_create(bb, name, 0, err);
    if (st == RELATE_OK) {
        relate_error e = {0};
        st = relate_ckpt_load_state_dict(c, relate_ckpt_has(c, "backbone") ? "backbone" : NULL, &bb->params, &e);
        if (st != RELATE_OK) {
            relate_error_set(err, e.code, "cannot use %s as a %s backbone: %s", path, bb->name, e.msg);
            relate_backbone_free(bb);
        }
    }
    relate_ckpt_close(c);
    return st;
}
