// PNG and JPEG decoding for Kiln (see include/kiln_codecs.h). Errors from the libraries
// arrive through longjmp, which must not cross Swift frames, so it all happens here.
#include "kiln_codecs.h"

#include <stdio.h>  // before jpeglib.h, which uses FILE
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>

// ---------------------------------------------------------------- PNG

typedef struct {
    const uint8_t *data;
    size_t size, offset;
} png_source;

typedef struct {
    jmp_buf jump;
    char *error;
    size_t error_size;
} png_failure;

static void png_read_memory(png_structp png, png_bytep out, png_size_t n) {
    png_source *s = (png_source *)png_get_io_ptr(png);
    if (n > s->size - s->offset) png_error(png, "file is truncated");
    memcpy(out, s->data + s->offset, n);
    s->offset += n;
}

static void png_fail(png_structp png, png_const_charp message) {
    png_failure *f = (png_failure *)png_get_error_ptr(png);
    snprintf(f->error, f->error_size, "%s", message);
    longjmp(f->jump, 1);
}

static void png_warn(png_structp png, png_const_charp message) { (void)png; (void)message; }

int kiln_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, kiln_image *out, char *error, size_t error_size) {
    memset(out, 0, sizeof *out);
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(error, error_size, "not a PNG file (bad signature)");
        return 1;
    }
    png_failure failure = {.error = error, .error_size = error_size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, png_fail, png_warn);
    if (!png) { snprintf(error, error_size, "out of memory"); return 1; }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(error, error_size, "out of memory");
        return 1;
    }
    // Volatile: assigned after setjmp and read after a longjmp back to it.
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(failure.jump)) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    png_source source = {data, size, 0};
    png_set_read_fn(png, &source, png_read_memory);
    // Kiln checks sizes itself; libpng's own limit is 1,000,000 per side.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if ((uint64_t)width * height > max_pixels) {
        snprintf(error, error_size, "%ux%u pixels is more than the limit of %llu", width, height, (unsigned long long)max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    // Palette → RGB(A), grey below 8 bits → 8 bits, tRNS → alpha; 16-bit samples stay.
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth < 8 && color != PNG_COLOR_TYPE_GRAY) png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info), out_depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)width * channels * (out_depth / 8)) png_error(png, "unexpected row layout");
    pixels = (uint8_t *)malloc(rowbytes * height ? rowbytes * height : 1);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (height ? height : 1));
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->width = (int)width;
    out->height = (int)height;
    out->channels = channels;
    out->depth = out_depth;
    out->pixels = pixels;
    return 0;
}

// ---------------------------------------------------------------- JPEG

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *error;
    size_t error_size;
} jpeg_failure;

static void jpeg_fail(j_common_ptr cinfo) {
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    char message[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, message);
    snprintf(f->error, f->error_size, "%s", message);
    longjmp(f->jump, 1);
}

// Corrupt-data warnings ("premature end of data segment") make the file an error: a
// truncated JPEG would otherwise decode to grey rows.
static void jpeg_warning(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_fail(cinfo);
}

// The Orientation tag (0x0112) of an APP1 "Exif" segment's first IFD, or 1.
static int exif_orientation(const uint8_t *d, unsigned n) {
    if (n < 14 || memcmp(d, "Exif\0\0", 6) != 0) return 1;
    const uint8_t *t = d + 6;
    unsigned len = n - 6;
    int little = t[0] == 'I' && t[1] == 'I';
    if (!little && !(t[0] == 'M' && t[1] == 'M')) return 1;
#define U16(p) (little ? (unsigned)((p)[0] | (p)[1] << 8) : (unsigned)((p)[0] << 8 | (p)[1]))
#define U32(p) (little ? ((uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 | (uint32_t)(p)[2] << 16 | (uint32_t)(p)[3] << 24) \
                       : ((uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 | (uint32_t)(p)[3]))
    uint32_t ifd = U32(t + 4);
    if (ifd > len - 2) return 1;
    unsigned count = U16(t + ifd);
    for (unsigned i = 0; i < count; i++) {
        uint32_t e = ifd + 2 + 12 * i;
        if (e + 12 > len) return 1;
        if (U16(t + e) == 0x0112) {
            unsigned v = U16(t + e + 8);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
#undef U16
#undef U32
    return 1;
}

int kiln_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, kiln_image *out, char *error, size_t error_size) {
    memset(out, 0, sizeof *out);
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
        snprintf(error, error_size, "not a JPEG file (bad signature)");
        return 1;
    }
    struct jpeg_decompress_struct cinfo;
    jpeg_failure failure = {.error = error, .error_size = error_size};
    cinfo.err = jpeg_std_error(&failure.base);
    failure.base.error_exit = jpeg_fail;
    failure.base.emit_message = jpeg_warning;
    uint8_t *volatile pixels = NULL;
    if (setjmp(failure.jump)) {
        free(pixels);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    out->orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1) {
            int o = exif_orientation(m->data, m->data_length);
            if (o != 1) { out->orientation = o; break; }
        }
    }
    if ((uint64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
        snprintf(error, error_size, "%ux%u pixels is more than the limit of %llu", cinfo.image_width, cinfo.image_height,
                 (unsigned long long)max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cmyk) cinfo.out_color_space = JCS_CMYK;
    else if (cinfo.num_components == 1) cinfo.out_color_space = JCS_GRAYSCALE;
    else cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
    pixels = (uint8_t *)malloc(stride * cinfo.output_height ? stride * cinfo.output_height : 1);
    if (!pixels) {
        snprintf(error, error_size, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    out->inverted = cmyk && cinfo.saw_Adobe_marker;
    jpeg_finish_decompress(&cinfo);
    out->width = (int)cinfo.output_width;
    out->height = (int)cinfo.output_height;
    out->channels = cinfo.output_components;
    out->depth = 8;
    out->cmyk = cmyk;
    out->pixels = pixels;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
