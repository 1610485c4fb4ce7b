/* JPEG decoding from memory with the classic libjpeg API.
 *
 * libjpeg's default error manager prints to stderr and calls exit(). Ours records the message and
 * longjmps back into ic_jpeg_decode. Corrupt or truncated data is often only a *warning* to
 * libjpeg (it pads the image with gray and carries on), so warnings are counted and turned into
 * errors after decoding. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>
#include <jerror.h>

#include "internal.h"

typedef struct {
    struct jpeg_error_mgr manager;  /* first member: libjpeg hands us a pointer to it */
    jmp_buf jump;
    int warnings;
    int saw_end_of_file;            /* the "Premature end of JPEG file" warning */
    char first_warning[JMSG_LENGTH_MAX];
    char *message;
} error_context;

static void on_error_exit(j_common_ptr cinfo) {
    error_context *context = (error_context *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, text);
    if (context->warnings > 0)
        ic_set_message(context->message, "truncated or corrupt JPEG: %s (after: %s)", text,
                       context->first_warning);
    else
        ic_set_message(context->message, "corrupt JPEG: %s", text);
    longjmp(context->jump, 1);
}

/* Metadata-level warnings that leave the pixels intact. */
static int is_harmless(int code) { return code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM; }

static void on_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;  /* trace messages */
    error_context *context = (error_context *)cinfo->err;
    int code = cinfo->err->msg_code;
    if (is_harmless(code)) return;
    if (code == JWRN_JPEG_EOF) context->saw_end_of_file = 1;
    if (context->warnings++ == 0) cinfo->err->format_message(cinfo, context->first_warning);
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* The orientation from the first APP1 segment that holds EXIF data, or 1. */
static uint32_t exif_orientation(j_decompress_ptr cinfo) {
    static const uint8_t exif_prefix[6] = {'E', 'x', 'i', 'f', 0, 0};
    for (jpeg_saved_marker_ptr marker = cinfo->marker_list; marker != NULL; marker = marker->next) {
        if (marker->marker != JPEG_APP0 + 1 || marker->data_length < 6) continue;
        if (memcmp(marker->data, exif_prefix, 6) != 0) continue;
        return ic_exif_orientation(marker->data + 6, marker->data_length - 6);
    }
    return 1;
}

/* One CMYK scanline as libjpeg returns it to RGB, as Pillow does: Pillow reads CMYK JPEGs as
 * inverted (Adobe's convention, "CMYK;I"), then converts with r = (255 - k) - c·(255 - k)/255,
 * the product rounded as (t + (t >> 8)) >> 8 with t = a·b + 128. */
static void cmyk_row_to_rgb(const unsigned char *in, unsigned char *out, uint32_t width) {
    for (uint32_t x = 0; x < width; x++, in += 4, out += 3) {
        int not_k = in[3];  /* inverted k: 255 - k */
        for (int i = 0; i < 3; i++) {
            int t = (255 - in[i]) * not_k + 128;
            out[i] = (unsigned char)(not_k - (((t >> 8) + t) >> 8));
        }
    }
}

ic_status ic_jpeg_decode(const void *data, size_t size, uint64_t max_pixels, ic_image *out) {
    return ic_jpeg_decode_scaled(data, size, max_pixels, 0, out);
}

/* The DCT scale (1/1, 1/2, 1/4 or 1/8) with the smallest output whose shorter side still holds
 * min_side pixels (libjpeg's output side is ceil(side / denominator)). */
static unsigned scale_denominator(uint32_t width, uint32_t height, uint32_t min_side) {
    uint32_t shorter = width < height ? width : height;
    unsigned denominator = 1;
    while (min_side > 0 && denominator < 8 && (shorter + 2 * denominator - 1) / (2 * denominator) >= min_side) denominator *= 2;
    return denominator;
}

ic_status ic_jpeg_decode_scaled(const void *data, size_t size, uint64_t max_pixels, uint32_t min_side, ic_image *out) {
    if (out == NULL) return IC_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    out->orientation = 1;
    if (data == NULL || size == 0) return IC_INVALID_ARGUMENT;

    struct jpeg_decompress_struct cinfo;
    error_context errors = {.message = out->message};
    /* A CMYK scanline before conversion; volatile: it must survive a longjmp to be freed. */
    unsigned char *volatile cmyk_row = NULL;
    cinfo.err = jpeg_std_error(&errors.manager);
    errors.manager.error_exit = on_error_exit;
    errors.manager.emit_message = on_emit_message;
    errors.manager.output_message = on_output_message;

    if (setjmp(errors.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(cmyk_row);
        free(out->pixels);
        out->pixels = NULL;
        return errors.saw_end_of_file ? IC_TRUNCATED : IC_CORRUPT;
    }

    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);

    out->width = cinfo.image_width;
    out->height = cinfo.image_height;
    out->orientation = exif_orientation(&cinfo);

    ic_status refusal = IC_OK;
    int cmyk = 0;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        out->channels = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        out->channels = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        /* Print files: libjpeg turns YCCK into CMYK, converted to RGB row by row below. */
        cinfo.out_color_space = JCS_CMYK;
        out->channels = 3;
        cmyk = 1;
        break;
    default:
        refusal = IC_UNSUPPORTED;
        ic_set_message(out->message, "JPEG has an unrecognised colour space with %d components",
                       cinfo.num_components);
        break;
    }
    /* Refuse before jpeg_start_decompress, which allocates the decoder's buffers. */
    if (refusal == IC_OK && (uint64_t)out->width * out->height > max_pixels) {
        refusal = IC_TOO_LARGE;
        ic_set_message(out->message, "JPEG is %ux%u pixels, limit is %llu pixels", out->width,
                       out->height, (unsigned long long)max_pixels);
    }
    if (refusal != IC_OK) {
        jpeg_destroy_decompress(&cinfo);
        return refusal;
    }

    /* Scaled in the DCT domain: most of the work of a large file's decode and resize is skipped. */
    cinfo.scale_num = 1;
    cinfo.scale_denom = scale_denominator(out->width, out->height, min_side);
    jpeg_calc_output_dimensions(&cinfo);
    out->width = cinfo.output_width;
    out->height = cinfo.output_height;

    jpeg_start_decompress(&cinfo);
    if ((uint32_t)cinfo.output_components != (cmyk ? 4 : out->channels) || cinfo.output_width != out->width ||
        cinfo.output_height != out->height) {
        jpeg_destroy_decompress(&cinfo);
        ic_set_message(out->message, "unexpected JPEG output layout");
        return IC_UNSUPPORTED;
    }
    size_t stride = (size_t)out->width * out->channels;
    out->pixels = malloc(stride * out->height);
    if (cmyk) cmyk_row = malloc((size_t)out->width * 4);
    if (out->pixels == NULL || (cmyk && cmyk_row == NULL)) {
        free(cmyk_row);
        free(out->pixels);
        out->pixels = NULL;
        jpeg_destroy_decompress(&cinfo);
        ic_set_message(out->message, "out of memory for a %ux%u JPEG", out->width, out->height);
        return IC_NO_MEMORY;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out->pixels + (size_t)cinfo.output_scanline * stride;
        if (cmyk) {
            JSAMPROW source = cmyk_row;
            jpeg_read_scanlines(&cinfo, &source, 1);
            cmyk_row_to_rgb(cmyk_row, row, out->width);
        } else {
            jpeg_read_scanlines(&cinfo, &row, 1);
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);

    if (errors.warnings > 0) {
        free(out->pixels);
        out->pixels = NULL;
        ic_set_message(out->message, "truncated or corrupt JPEG: %s (%d warning%s)", errors.first_warning,
                       errors.warnings, errors.warnings == 1 ? "" : "s");
        return errors.saw_end_of_file ? IC_TRUNCATED : IC_CORRUPT;
    }
    return IC_OK;
}
