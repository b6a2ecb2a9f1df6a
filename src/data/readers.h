/* readers.h: the per-format dataset readers behind relate_dataset_open (dataset.c), the helpers
 * they share, and the options tests use to feed them small files.
 * Not public API: the CLI and the training stages go through relate/data.h only.
 *
 * Record counts: a CIFAR batch file may hold any positive whole number of records, as torchvision
 * reads it: users make subsets by cutting the files. The reader then puts a line in info.note
 * ("CIFAR-10 subset: 10,000 of 50,000 training images ..."), which the stages print, so a
 * download cut at a record boundary does not pass unnoticed either. STL-10 insists on its
 * canonical sizes (5,000 train images, ...). Tests open the readers with allow_partial, under
 * which STL-10 files too may hold any positive whole number of records (the label file's size).
 * IDX files (Fashion-MNIST, MNIST) declare their counts in their header and are checked against
 * it in both modes. */
#ifndef RELATE_DATA_READERS_H
#define RELATE_DATA_READERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relate/data.h"

typedef struct relate_data_opts {
    bool allow_partial;           /* any whole number of records instead of the canonical count */
    const char *fashion_fallback; /* NULL: /usr/share/datasets/fashion-mnist; "": no fallback */
    relate_dataset_options folder; /* folder:PATH only (relate/data.h) */
} relate_data_opts;

#define RELATE_FASHION_MNIST_SYSTEM_DIR "/usr/share/datasets/fashion-mnist"

relate_status relate_dataset_open_opts(relate_dataset *ds, const char *name, const char *data_root,
                                       const relate_data_opts *opts, relate_error *err);

/* Readers: fill ds->splits and ds->info.num_classes / class_names; dataset.c sets the constants
 * of spec 4.2 and checks every label against num_classes afterwards. */
relate_status relate_read_cifar(relate_dataset *ds, const char *name, const char *root, const relate_data_opts *o,
                                relate_error *err);
relate_status relate_read_stl10(relate_dataset *ds, const char *root, const relate_data_opts *o, relate_error *err);
relate_status relate_read_idx_dataset(relate_dataset *ds, const char *name, const char *root,
                                      const relate_data_opts *o, relate_error *err);
relate_status relate_read_tiny(relate_dataset *ds, const char *root, relate_error *err);
relate_status relate_read_slim(relate_dataset *ds, const char *root, relate_error *err);
/* folder:PATH[@S]: side is S; images of another size are resized with PIL's bilinear filter.
 * Labelled (PATH[/train]/CLASS/...) images go to the train (and test) splits; a folder of images
 * without class sub-folders, and PATH/unlabeled/, to the unlabeled split, which stage 1 then
 * trains on (info.unsupervised_split). */
relate_status relate_read_folder(relate_dataset *ds, const char *path, int side, const relate_dataset_options *o,
                                 relate_error *err);

/* ------------------------------------------------------------------ shared helpers (dataset.c) */
/* (Re)sizes a split to count images of w x h, keeping the first images; labels are kept too. */
relate_status relate_split_resize(relate_split *s, int64_t count, int w, int h, relate_error *err);
/* Copies n names into info->class_names (replacing any). */
relate_status relate_info_set_classes(relate_dataset_info *info, const char *const *names, int n, relate_error *err);
/* Reads a text file of names, one per non-empty line (trailing spaces and CR stripped). */
relate_status relate_read_names_file(const char *path, char ***names, int *n, relate_error *err);
void relate_free_names(char **names, int n);
/* Reads a whole file of at most max bytes. */
relate_status relate_file_read_all(const char *path, size_t max, uint8_t **buf, size_t *size, relate_error *err);
/* Size of a regular file, or -1 if it does not exist / is not a file. */
int64_t relate_file_size(const char *path);
bool relate_is_dir(const char *path);
/* snprintf into out, failing with RELATE_ERR_ARG when the path does not fit. */
relate_status relate_path_fmt(char *out, size_t n, relate_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
