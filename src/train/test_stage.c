/* test_stage.c: stage 3 (spec 5.3): a stage-2 checkpoint's backbone and classifier on the test
 * split, printed in the reference's block. */
#include <string.h>

#include "base/pyformat.h"
#include "relate/checkpoint.h"
#include "relate/stage2.h"
#include "relate/train.h"
#include "train/stage_common.h"

relate_test_options relate_test_defaults(void)
{
    return (relate_test_options){.backbone = "",
                                 .dataset = "cifar10",
                                 .data_root = "./data",
                                 .checkpoint = "./",
                                 .seed_text = "1",
                                 .data_size = 256,
                                 .out = stdout};
}

relate_status relate_test(relate_test_options *o, relate_error *err)
{
    FILE *out = o->out ? o->out : stdout;
    relate_dataset ds;
    relate_dataset_options dopts = o->data; /* stage 3 reads the test split only */
    dopts.skip_splits |= 1u << RELATE_SPLIT_TRAIN | 1u << RELATE_SPLIT_UNLABELED;
    if (relate_dataset_open_with(&ds, o->dataset, o->data_root, &dopts, err) != RELATE_OK)
        return err->code;
    relate_dataset_report(&ds.info, out, stderr);
    relate_status st;
    const relate_split *test = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
    relate_backbone bb;
    relate_classifier_model cm;
    memset(&cm, 0, sizeof cm);
    bool bb_made = false;
    relate_ckpt *c = NULL;
    if ((st = relate_dataset_need_labels(&ds, false, true, "The test stage", err)) != RELATE_OK)
        goto done;
    fprintf(out, "[INFO] Loading checkpoint...\n");
    if ((st = relate_ckpt_open(&c, o->checkpoint, err)) != RELATE_OK)
        goto done;
    const char *backbone = NULL, *trained_on = NULL;
    relate_error ignore = {0};
    if ((st = relate_stage_backbone_name(c, o->checkpoint, o->backbone, &backbone, NULL, err)) != RELATE_OK)
        goto done;
    if (relate_ckpt_get_str(c, "dataset", &trained_on, &ignore) == RELATE_OK && strcmp(trained_on, o->dataset) != 0)
        fprintf(stderr, "[WARN] %s's classifier was trained on %s; testing on %s\n", o->checkpoint, trained_on,
                o->dataset);
    if ((st = relate_backbone_create(&bb, backbone, 0, err)) != RELATE_OK)
        goto done;
    bb_made = true;
    if ((st = relate_classifier_model_init(&cm, &bb, ds.info.num_classes, 0, err)) != RELATE_OK)
        goto done;
    relate_error e = {0};
    if ((st = relate_classifier_model_load(&cm, c, true, &e)) != RELATE_OK) {
        relate_error_set(err, e.code, "cannot test %s with --backbone=%s --dataset=%s: %s", o->checkpoint, backbone,
                         o->dataset, e.msg);
        goto done;
    }
    fprintf(out, "[INFO] Loading checkpoint: done!\nTesting...\n");
    if ((st = relate_evaluate(&bb, &cm.linear, test, &ds.info, o->data_size, &o->loss, &o->accuracy, err)) !=
        RELATE_OK)
        goto done;
    char l[40], a[40];
    /* The reference prints the loss with a percent sign (spec 7 A22); a loss is not a percentage. */
    fprintf(out, "===========================\nSeed: %s\nTest loss: %s\nTest accuracy: %s%%\n"
                 "===========================\n",
            o->seed_text, relate_pyfloat(l, sizeof l, o->loss), relate_pyfloat(a, sizeof a, o->accuracy));
done:
    relate_ckpt_close(c);
    relate_classifier_model_free(&cm);
    if (bb_made)
        relate_backbone_free(&bb);
    relate_dataset_close(&ds);
    return st;
}
