// PNG and JPEG decoding through Debian's libpng and libjpeg-turbo, with their longjmp-based
// error handling kept on the C side. Written for Kiln.
#ifndef KILN_CODECS_H
#define KILN_CODECS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int width, height;
    // 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA; for JPEG: CMYK).
    int channels;
    // 8, or 16 for PNGs of 16 bits per sample (two bytes per sample, big-endian).
    int depth;
    // 1 when a JPEG's samples are CMYK (Adobe files store them inverted: see `inverted`).
    int cmyk;
    int inverted;
    // EXIF orientation of a JPEG (1–8; 1 when absent): how the stored pixels must be
    // rotated or mirrored for display.
    int orientation;
    // width × height × channels × depth/8 bytes, row-major, interleaved; free with free().
    uint8_t *pixels;
} kiln_image;

// Return 0 on success; otherwise a message is written to `error` (at most `error_size` bytes).
// Images with more than `max_pixels` pixels are refused before their pixels are decoded.
int kiln_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, kiln_image *out, char *error, size_t error_size);
int kiln_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, kiln_image *out, char *error, size_t error_size);

#endif
