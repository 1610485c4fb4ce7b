/* PNG encoding into a growing memory buffer with the classic libpng API (setjmp-protected). */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>

#include "internal.h"

typedef struct {
    jmp_buf jump;
    png_structp png;
    png_infop info;
    uint8_t *data;
    size_t size;
    size_t capacity;
    int out_of_memory;
    char *message;
} encode_context;

static void on_error(png_structp png, png_const_charp text) {
    encode_context *context = png_get_error_ptr(png);
    ic_set_message(context->message, "%s", text);
    longjmp(context->jump, 1);
}

static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void write_to_memory(png_structp png, png_bytep source, size_t length) {
    encode_context *context = png_get_io_ptr(png);
    if (length > context->capacity - context->size) {
        size_t capacity = context->capacity * 2;
        if (capacity < context->size + length) capacity = context->size + length;
        uint8_t *grown = realloc(context->data, capacity);
        if (grown == NULL) {
            context->out_of_memory = 1;
            png_error(png, "out of memory for the encoded PNG");
        }
        context->data = grown;
        context->capacity = capacity;
    }
    memcpy(context->data + context->size, source, length);
    context->size += length;
}

static void flush_nothing(png_structp png) { (void)png; }

ic_status ic_png_encode(const void *pixels, uint32_t width, uint32_t height, uint32_t channels,
                        ic_buffer *out) {
    if (out == NULL) return IC_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (pixels == NULL || width == 0 || height == 0 || (channels != 1 && channels != 3)) {
        ic_set_message(out->message, "need a non-empty 8-bit gray or RGB image, got %ux%u with %u channels",
                       width, height, channels);
        return IC_INVALID_ARGUMENT;
    }

    encode_context context = {.message = out->message};
    context.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, on_error, on_warning);
    if (context.png != NULL) context.info = png_create_info_struct(context.png);
    if (context.info == NULL) {
        png_destroy_write_struct(&context.png, NULL);
        ic_set_message(out->message, "out of memory creating the PNG encoder");
        return IC_NO_MEMORY;
    }

    if (setjmp(context.jump)) {
        png_destroy_write_struct(&context.png, &context.info);
        free(context.data);
        return context.out_of_memory ? IC_NO_MEMORY : IC_INVALID_ARGUMENT;
    }

    png_set_write_fn(context.png, &context, write_to_memory, flush_nothing);
    png_set_IHDR(context.png, context.info, width, height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(context.png, context.info);
    size_t stride = (size_t)width * channels;
    for (uint32_t y = 0; y < height; y++) png_write_row(context.png, (const uint8_t *)pixels + y * stride);
    png_write_end(context.png, NULL);
    png_destroy_write_struct(&context.png, &context.info);

    out->data = context.data;
    out->size = context.size;
    return IC_OK;
}
