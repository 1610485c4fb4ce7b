// Prefetching a tile's output before its product runs, shared by the GEMM drivers (sgemm.c for
// training, gemm.c and gemm_bf16.c for inference).
//
// Why: a GEMM's output is often a fresh activation buffer out of every cache (fc1's hidden
// activations, the qkv buffer), and a tile's stores at the end of its k loop then miss all at
// once: the store queue fills and the next tile stalls. Asked for before the tile runs, the misses
// overlap its thousands of multiply-adds. A prefetch never changes a result.
#ifndef GEMM_PREFETCH_H
#define GEMM_PREFETCH_H
#include <stddef.h>

/// Asks for every cache line of `rows` rows of `cols` floats at c (row stride ldc), for writing.
static inline void prefetch_tile_of_c(const float *c, long ldc, int rows, int cols) {
    for (int i = 0; i < rows; i++) {
        const char *row = (const char *)(c + (size_t)i * ldc), *last = (const char *)(c + (size_t)i * ldc + cols - 1);
        for (const char *line = row; line <= last; line += 64) __builtin_prefetch(line, 1, 3);
        __builtin_prefetch(last, 1, 3);   // the row's last line when `row` is not 64-byte aligned
    }
}
#endif
