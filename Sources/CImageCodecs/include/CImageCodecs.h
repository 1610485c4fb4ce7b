/*
 * CImageCodecs: the only code that calls the classic libpng / libjpeg APIs.
 *
 * Both libraries report fatal errors by longjmp (libpng) or by calling exit() (libjpeg's default
 * handler), and Swift can neither call setjmp nor survive a longjmp through its frames. Every
 * function here owns its setjmp, never lets a longjmp or an exit escape, and returns a status code
 * plus a human-readable message instead. Nothing is printed to stdout or stderr.
 *
 * Pixel buffers returned here are allocated with malloc: release them with ic_free.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define IC_MESSAGE_CAPACITY 256

typedef enum {
    IC_OK = 0,
    IC_TRUNCATED,          /* data ends before the image does */
    IC_CORRUPT,            /* the decoder rejected the data (bad CRC, bad Huffman code, ...) */
    IC_TOO_LARGE,          /* width * height exceeds the caller's limit; nothing was decoded */
    IC_UNSUPPORTED,        /* a valid file this decoder does not handle (e.g. unusual colour space) */
    IC_NO_MEMORY,
    IC_INVALID_ARGUMENT,
} ic_status;

typedef enum {
    IC_FORMAT_UNKNOWN = 0,
    IC_FORMAT_PNG,
    IC_FORMAT_JPEG,
} ic_format;

/* A decoded 8-bit image, HWC row-major. On IC_TOO_LARGE width and height are filled in and
 * pixels is NULL. message is always a NUL-terminated string (empty on success). */
typedef struct {
    uint8_t *pixels;
    uint32_t width;
    uint32_t height;
    uint32_t channels;     /* 1 (gray) or 3 (RGB) */
    uint32_t orientation;  /* EXIF orientation 1...8; 1 when absent or invalid */
    char message[IC_MESSAGE_CAPACITY];
} ic_image;

/* An encoded file. */
typedef struct {
    uint8_t *data;
    size_t size;
    char message[IC_MESSAGE_CAPACITY];
} ic_buffer;

/* Identifies PNG (8-byte signature) and JPEG (FF D8 FF) by their first bytes. */
ic_format ic_sniff(const void *data, size_t size);

/* PNG, any bit depth and colour type. Output: gray (and gray+alpha) -> 1 channel, everything
 * else -> RGB; alpha is dropped, 16-bit samples keep their high byte, palettes are expanded. */
ic_status ic_png_decode(const void *data, size_t size, uint64_t max_pixels, ic_image *out);

/* JPEG, baseline or progressive. Output: grayscale -> 1 channel, YCbCr/RGB -> RGB. CMYK and YCCK
 * are refused. Any decoder warning (truncation, corrupt entropy data) is reported as an error. */
ic_status ic_jpeg_decode(const void *data, size_t size, uint64_t max_pixels, ic_image *out);

/* The same, decoded at 1/2, 1/4 or 1/8 of the size in the DCT domain when the shorter side still
 * holds at least min_side pixels (0: full size, as ic_jpeg_decode); width and height are the output's.
 * max_pixels applies to the file's own size. */
ic_status ic_jpeg_decode_scaled(const void *data, size_t size, uint64_t max_pixels, uint32_t min_side, ic_image *out);

/* Encodes 8-bit gray (channels 1) or RGB (channels 3) pixels, HWC row-major, as PNG. */
ic_status ic_png_encode(const void *pixels, uint32_t width, uint32_t height, uint32_t channels,
                        ic_buffer *out);

/* EXIF orientation (1...8) from a TIFF structure ("II*\0" or "MM\0*" header), as found after the
 * "Exif\0\0" prefix of a JPEG APP1 segment or in a PNG eXIf chunk. Returns 1 when absent/invalid. */
uint32_t ic_exif_orientation(const uint8_t *tiff, size_t size);

/* Releases memory returned by this library (ic_image.pixels, ic_buffer.data). */
void ic_free(void *pointer);
