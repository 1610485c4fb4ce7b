#include <stdlib.h>

#include "internal.h"

ic_format ic_sniff(const void *bytes, size_t size) {
    static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    const uint8_t *data = bytes;
    if (data == NULL) return IC_FORMAT_UNKNOWN;
    if (size >= 8 && memcmp(data, png_signature, 8) == 0) return IC_FORMAT_PNG;
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return IC_FORMAT_JPEG;
    return IC_FORMAT_UNKNOWN;
}

void ic_free(void *pointer) { free(pointer); }
