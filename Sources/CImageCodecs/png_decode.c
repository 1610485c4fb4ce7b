/* PNG decoding from memory with the classic libpng API. libpng reports errors by calling our
 * error function, which records the message and longjmps back into ic_png_decode. */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>

#include "internal.h"

typedef struct {
    jmp_buf jump;
    const uint8_t *data;
    size_t size;
    size_t position;
    int truncated;
    /* Owned allocations live here (not in locals) so they are still valid after a longjmp. */
    png_structp png;
    png_infop info;
    png_bytep *rows;
    char *message;
} png_context;

static void on_error(png_structp png, png_const_charp text) {
    png_context *context = png_get_error_ptr(png);
    ic_set_message(context->message, "%s", text);
    longjmp(context->jump, 1);
}

/* Warnings (e.g. "known incorrect sRGB profile") do not affect pixels: ignore them silently. */
static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void read_from_memory(png_structp png, png_bytep destination, size_t length) {
    png_context *context = png_get_io_ptr(png);
    if (length > context->size - context->position) {
        context->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(destination, context->data + context->position, length);
    context->position += length;
}

/* Asks libpng for 8-bit gray or 8-bit RGB whatever the stored format. */
static void request_8bit_gray_or_rgb(png_structp png, png_infop info) {
    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    if (bit_depth == 16) png_set_strip_16(png);  /* keeps the high byte, as PIL does */
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* Dropping alpha (no compositing) matches PIL's convert('RGB') / convert('L'). The palette
     * expansion above turns tRNS into an alpha channel, which this removes again. */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
}

ic_status ic_png_decode(const void *data, size_t size, uint64_t max_pixels, ic_image *out) {
    if (out == NULL) return IC_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    out->orientation = 1;
    if (data == NULL) return IC_INVALID_ARGUMENT;

    png_context context = {.data = data, .size = size, .message = out->message};
    context.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, on_error, on_warning);
    if (context.png == NULL) {
        ic_set_message(out->message, "out of memory creating the PNG decoder");
        return IC_NO_MEMORY;
    }
    context.info = png_create_info_struct(context.png);
    if (context.info == NULL) {
        png_destroy_read_struct(&context.png, NULL, NULL);
        ic_set_message(out->message, "out of memory creating the PNG decoder");
        return IC_NO_MEMORY;
    }

    if (setjmp(context.jump)) {
        png_destroy_read_struct(&context.png, &context.info, NULL);
        free(context.rows);
        free(out->pixels);
        out->pixels = NULL;
        return context.truncated ? IC_TRUNCATED : IC_CORRUPT;
    }

    png_set_read_fn(context.png, &context, read_from_memory);
    png_read_info(context.png, context.info);

    uint32_t width = png_get_image_width(context.png, context.info);
    uint32_t height = png_get_image_height(context.png, context.info);
    out->width = width;
    out->height = height;
    /* Refuse before any pixel memory is allocated: the header alone can claim gigapixels. */
    if ((uint64_t)width * height > max_pixels) {
        png_destroy_read_struct(&context.png, &context.info, NULL);
        ic_set_message(out->message, "PNG is %ux%u pixels, limit is %llu pixels", width, height,
                       (unsigned long long)max_pixels);
        return IC_TOO_LARGE;
    }

    png_bytep exif = NULL;
    png_uint_32 exif_size = 0;
    if (png_get_eXIf_1(context.png, context.info, &exif_size, &exif) != 0)
        out->orientation = ic_exif_orientation(exif, exif_size);

    request_8bit_gray_or_rgb(context.png, context.info);
    png_read_update_info(context.png, context.info);

    uint32_t channels = png_get_channels(context.png, context.info);
    size_t stride = (size_t)width * channels;
    if ((channels != 1 && channels != 3) || png_get_bit_depth(context.png, context.info) != 8 ||
        png_get_rowbytes(context.png, context.info) != stride) {
        png_error(context.png, "unexpected pixel layout after conversion to 8-bit gray/RGB");
    }
    out->channels = channels;

    out->pixels = malloc(stride * height);
    context.rows = malloc(sizeof(png_bytep) * height);
    if (out->pixels == NULL || context.rows == NULL) {
        png_destroy_read_struct(&context.png, &context.info, NULL);
        free(context.rows);
        free(out->pixels);
        out->pixels = NULL;
        ic_set_message(out->message, "out of memory for a %ux%u PNG", width, height);
        return IC_NO_MEMORY;
    }
    for (uint32_t y = 0; y < height; y++) context.rows[y] = out->pixels + y * stride;
    png_read_image(context.png, context.rows);
    /* Chunks after the image data (and a missing IEND) are not read: they cannot change pixels. */

    png_destroy_read_struct(&context.png, &context.info, NULL);
    free(context.rows);
    return IC_OK;
}
