/* relate/download.h: fetch a dataset archive (libcurl: resumable, progress bar), check its MD5,
 * and extract it (libarchive) under the data root, idempotently.
 * Not a dataset reader: relate_dataset_open reads what this leaves on disk.
 *
 *   const relate_download_spec *s = relate_download_find("cifar10");
 *   if (relate_download(s, "./data", NULL, &err) != RELATE_OK) fprintf(stderr, "%s\n", err.msg);
 */
#ifndef RELATE_DOWNLOAD_H
#define RELATE_DOWNLOAD_H

#include <stdbool.h>

#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct relate_download_spec {
    const char *name;     /* the --dataset name */
    const char *url;      /* http(s):// or file:// */
    const char *md5;      /* 32 lowercase hex digits of the whole archive */
    const char *archive;  /* file name under the data root */
    const char *folder;   /* the folder the archive extracts to (its single top-level entry) */
} relate_download_spec;

/* The archives of spec section 9 (cifar10, cifar100, stl10, tiny), or NULL. */
const relate_download_spec *relate_download_find(const char *name);
/* NULL-terminated list of names relate_download_find knows. */
const char *const *relate_download_names(void);

typedef struct relate_download_options {
    bool progress;        /* draw a progress bar on stderr */
    bool quiet;           /* no status lines */
    bool keep_partial;    /* keep ARCHIVE.part after a failed transfer, to resume it next time
                           * (a .part already there is always resumed) */
} relate_download_options;

/* Downloads (resuming a previous .part file), verifies the MD5, extracts into a temporary
 * folder and renames it into place, then writes a completion marker. Does nothing when the
 * marker is already there, or when the data root already holds the dataset in a form relate
 * reads (extracted by hand or by torchvision). On a checksum mismatch the download is kept as ARCHIVE.bad and
 * nothing is extracted; offline or on any failure the message says how to do it by hand. */
relate_status relate_download(const relate_download_spec *spec, const char *data_root,
                              const relate_download_options *opts, relate_error *err);
/* MD5 of a file as 32 lowercase hex digits (hex must hold 33 bytes). */
relate_status relate_md5_file(const char *path, char hex[33], relate_error *err);

#ifdef __cplusplus
}
#endif
#endif
