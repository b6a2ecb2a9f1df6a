/* image_decode.h: JPEG (libjpeg-turbo) and PNG (libpng) files to 8-bit RGB exactly as
 * PIL's Image.open(path).convert("RGB") gives them, and a PNG writer for previews and tests.
 * Not a general image library: no resizing, no colour management, no other formats (BMP, TIFF,
 * WebP, PPM are refused by content, with a message that names the file).
 *
 *   relate_image img;
 *   if (relate_image_decode_file("cat.jpg", &img, &err) != RELATE_OK) ...;
 *   ... img.pixels: img.height * img.width * 3 bytes, HWC ...
 *   relate_image_free(&img);
 *   relate_png_write("preview.png", rgb, w, h, &err);   // atomic: temporary name + rename
 */
#ifndef RELATE_IO_IMAGE_DECODE_H
#define RELATE_IO_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "relate/data.h"
#include "relate/status.h"

/* PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS): larger images are refused. */
#define RELATE_IMAGE_MAX_PIXELS 178956970LL

/* Decodes by content (JPEG or PNG signature), whatever the file name says. out->pixels is
 * malloc'd; free it with relate_image_free. `what` names the source in error messages. */
relate_status relate_image_decode_mem(const uint8_t *data, size_t size, const char *what, relate_image *out,
                                      relate_error *err);
relate_status relate_image_decode_file(const char *path, relate_image *out, relate_error *err);
void relate_image_free(relate_image *img);

/* Writes 8-bit RGB (HWC) as a non-interlaced PNG through a temporary file and rename. */
relate_status relate_png_write(const char *path, const uint8_t *rgb, int w, int h, relate_error *err);

#endif
