/* Helpers shared by the codec files; not part of the public header. */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "CImageCodecs.h"

/* Writes a formatted message into a fixed IC_MESSAGE_CAPACITY buffer (always NUL-terminated). */
static inline void ic_set_message(char *message, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(message, IC_MESSAGE_CAPACITY, format, args);
    va_end(args);
}
