/* Reads the Orientation tag (0x0112) from IFD0 of an EXIF TIFF structure. Every offset read from
 * the file is checked against the buffer size: EXIF blocks are often malformed. */
#include "internal.h"

static uint32_t read16(const uint8_t *p, int little_endian) {
    return little_endian ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : (uint32_t)p[0] << 8 | (uint32_t)p[1];
}

static uint32_t read32(const uint8_t *p, int little_endian) {
    return little_endian ? read16(p, 1) | read16(p + 2, 1) << 16 : read16(p, 0) << 16 | read16(p + 2, 0);
}

uint32_t ic_exif_orientation(const uint8_t *tiff, size_t size) {
    if (tiff == NULL || size < 8) return 1;
    int little_endian;
    if (tiff[0] == 'I' && tiff[1] == 'I') little_endian = 1;
    else if (tiff[0] == 'M' && tiff[1] == 'M') little_endian = 0;
    else return 1;
    if (read16(tiff + 2, little_endian) != 42) return 1;

    size_t ifd = read32(tiff + 4, little_endian);
    if (ifd > size - 2) return 1;
    size_t count = read16(tiff + ifd, little_endian);
    for (size_t i = 0; i < count; i++) {
        size_t entry = ifd + 2 + 12 * i;
        if (entry + 12 > size) break;
        if (read16(tiff + entry, little_endian) != 0x0112) continue;
        uint32_t type = read16(tiff + entry + 2, little_endian);
        uint32_t n = read32(tiff + entry + 4, little_endian);
        if (type != 3 /* SHORT */ || n < 1) return 1;
        uint32_t value = read16(tiff + entry + 8, little_endian);  /* inline, left-justified */
        return (value >= 1 && value <= 8) ? value : 1;
    }
    return 1;
}
