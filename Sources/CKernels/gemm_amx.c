// The AMX-BF16 kernel (gemm_amx_block.h) twice: on the tile instructions, dispatched only where
// ck_bf16_best_kernel() found AMX, and on a C model of them that runs on every CPU, so the tests
// check the tile addressing and the packed layout against an exact reference here too.
#include <string.h>
#include "CKernelsBF16.h"
#include "gemm_bf16_internal.h"

// MARK: The software model of the tile instructions

// Eight tiles of 16 rows × 64 bytes, as palette 1 configures them here.
typedef struct { uint8_t bytes[8][16][64]; } model_tiles;

static void model_load(model_tiles *s, int t, const void *p, long stride) {
    for (int r = 0; r < 16; r++) memcpy(s->bytes[t][r], (const uint8_t *)p + r * stride, 64);
}

static void model_store(const model_tiles *s, int t, void *p, long stride) {
    for (int r = 0; r < 16; r++) memcpy((uint8_t *)p + r * stride, s->bytes[t][r], 64);
}

// tdpbf16ps: C[m][n] += A[m][2k]·B[k][2n] + A[m][2k+1]·B[k][2n+1] over the 16 pairs k, in fp32 (the
// products of two bf16 are exact; the two adds round, as Intel's pseudocode orders them).
static void model_dp(model_tiles *s, int c, int a, int b) {
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float sum;
            memcpy(&sum, &s->bytes[c][m][4 * n], 4);
            for (int k = 0; k < 16; k++) {
                uint16_t a0, a1, b0, b1;
                memcpy(&a0, &s->bytes[a][m][4 * k], 2);
                memcpy(&a1, &s->bytes[a][m][4 * k + 2], 2);
                memcpy(&b0, &s->bytes[b][k][4 * n], 2);
                memcpy(&b1, &s->bytes[b][k][4 * n + 2], 2);
                sum += ck_bf16_to_float(a0) * ck_bf16_to_float(b0);
                sum += ck_bf16_to_float(a1) * ck_bf16_to_float(b1);
            }
            memcpy(&s->bytes[c][m][4 * n], &sum, 4);
        }
}

#define BLOCK_NAME bf16_amx_model_block
#define BLOCK_ATTR
#define TILES_BEGIN model_tiles tiles_
#define TILES_END (void)0
#define TILE_ZERO(t) memset(tiles_.bytes[t], 0, sizeof tiles_.bytes[t])
#define TILE_LOAD(t, p, stride) model_load(&tiles_, t, p, stride)
#define TILE_DP(c, a, b) model_dp(&tiles_, c, a, b)
#define TILE_STORE(t, p, stride) model_store(&tiles_, t, p, stride)
#include "gemm_amx_block.h"
#undef BLOCK_NAME
#undef BLOCK_ATTR
#undef TILES_BEGIN
#undef TILES_END
#undef TILE_ZERO
#undef TILE_LOAD
#undef TILE_DP
#undef TILE_STORE

// MARK: The tile instructions

#if defined(__x86_64__)
#include <immintrin.h>

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

#define AMX __attribute__((target("amx-tile,amx-bf16")))

static AMX void tiles_begin(void) {
    tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) { config.rows[t] = 16; config.colsb[t] = 64; }
    _tile_loadconfig(&config);
}

#define BLOCK_NAME bf16_amx_block
#define BLOCK_ATTR AMX
#define TILES_BEGIN tiles_begin()
#define TILES_END _tile_release()
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_LOAD(t, p, stride) _tile_loadd(t, p, stride)
#define TILE_DP(c, a, b) _tile_dpbf16ps(c, a, b)
#define TILE_STORE(t, p, stride) _tile_stored(t, p, stride)
#include "gemm_amx_block.h"
#else
#include <stdlib.h>
void bf16_amx_block(const uint16_t *xb, long ldxb, int rows, int kp, const uint16_t *packed, int n, const float *bias,
                    float *y, long ldy, int col_begin, int col_end, int add) {
    (void)xb; (void)ldxb; (void)rows; (void)kp; (void)packed; (void)n; (void)bias; (void)y; (void)ldy;
    (void)col_begin; (void)col_end; (void)add;
    abort();  // never dispatched off x86-64
}
#endif
