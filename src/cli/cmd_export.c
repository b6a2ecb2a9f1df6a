/* cmd_export.c: `relate export`: a checkpoint's backbone as safetensors with the same state-dict
 * names, for tools outside PyTorch (safetensors.torch.load_file gives back the state dict).
 * Not a converter of whole training states: heads and optimizers stay in the checkpoint. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "relate/checkpoint.h"
#include "relate/nn.h"
#include "relate/safetensors.h"

int relate_cmd_export(int argc, char **argv);

/* The backbone whose state dict the file's `backbone` entry (or bare state dict) matches. */
static relate_status load_any_backbone(relate_backbone *bb, const relate_ckpt *c, const char *want,
                                       relate_error *err)
{
    const char *key = relate_ckpt_has(c, "backbone") ? "backbone" : NULL;
    for (const char *const *name = relate_backbone_names(); *name; name++) {
        if (*want && strcmp(want, *name) != 0)
            continue;
        relate_error e = {0};
        if (relate_backbone_create(bb, *name, 0, &e) != RELATE_OK)
            return relate_error_set(err, e.code, "%s", e.msg);
        if (relate_ckpt_load_state_dict(c, key, &bb->params, &e) == RELATE_OK)
            return RELATE_OK;
        relate_backbone_free(bb);
        if (*want)
            return relate_error_set(err, e.code, "%s", e.msg);
    }
    return relate_error_set(err, RELATE_ERR_FORMAT,
                            "its backbone matches none of conv4, resnet8, resnet32, resnet56, resnet34 (keys: %s)",
                            relate_ckpt_key_list(c));
}

int relate_cmd_export(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"checkpoint", RELATE_ARG_STR, "", "a checkpoint of any stage (relate's or PyTorch's)", NULL, 0, 0},
        {"format", RELATE_ARG_STR, "safetensors", "output format: safetensors", NULL, 0, 0},
        {"out", RELATE_ARG_STR, "", "output file", NULL, 0, 0},
        {"backbone", RELATE_ARG_STR, "", "the backbone to expect (default: detected from the file)", NULL, 0, 0},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("export", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("export", "Writes a checkpoint's backbone as safetensors with its state-dict names.", specs,
                          n);
        return 0;
    }
    const char *path = relate_args_get(specs, n, "checkpoint"), *out = relate_args_get(specs, n, "out");
    if (!*path || !*out) {
        fprintf(stderr, "relate export: --checkpoint and --out are required\n");
        return 2;
    }
    if (strcmp(relate_args_get(specs, n, "format"), "safetensors") != 0) {
        fprintf(stderr, "relate export: unknown --format '%s' (valid: safetensors)\n", relate_args_get(specs, n, "format"));
        return 2;
    }
    relate_error err = {0};
    relate_ckpt *c;
    if (relate_ckpt_open(&c, path, &err) != RELATE_OK) {
        fprintf(stderr, "relate export: %s\n", err.msg);
        return 1;
    }
    relate_backbone bb;
    if (load_any_backbone(&bb, c, relate_args_get(specs, n, "backbone"), &err) != RELATE_OK) {
        fprintf(stderr, "relate export: cannot export %s: %s\n", path, err.msg);
        relate_ckpt_close(c);
        return 1;
    }
    relate_ckpt_close(c);
    const relate_params *p = &bb.params;
    relate_st_entry entries[512];
    int count = 0;
    for (int i = 0; i < p->count && count < 512; i++) {
        const relate_param *e = p->items[i];
        entries[count++] = (relate_st_entry){.name = e->name,
                                             .dtype = e->kind == RELATE_BUFFER_I64 ? "I64" : "F32",
                                             .ndim = e->ndim,
                                             .shape = e->shape,
                                             .data = e->kind == RELATE_BUFFER_I64 ? (const void *)e->i64
                                                                                   : (const void *)e->data};
    }
    const char *meta[] = {"format", "pt", "backbone", bb.name};
    rc = 0;
    if (relate_safetensors_write(out, entries, count, meta, 2, &err) != RELATE_OK) {
        fprintf(stderr, "relate export: %s\n", err.msg);
        rc = 1;
    } else {
        printf("[INFO] %s backbone (%d tensors) written to %s\n", bb.name, count, out);
    }
    relate_backbone_free(&bb);
    return rc;
}
