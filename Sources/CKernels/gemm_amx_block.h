// The AMX-BF16 block kernel, written once over six tile operations that the includer defines:
//   BLOCK_NAME, BLOCK_ATTR          the function's name and attributes
//   TILES_BEGIN / TILES_END         configure the tiles (palette 1, 8 tiles of 16 rows × 64 bytes) / release them
//   TILE_ZERO(t), TILE_LOAD(t, p, stride), TILE_DP(c, a, b), TILE_STORE(t, p, stride)
// gemm_amx.c includes it twice: with the AMX instructions, and with a C model of them, so the
// addressing below (which bytes each tile reads, where each result goes) is tested on any CPU.
//
// Tiles: C0..C3 (0–3) are a 32 × 32 block of Y in fp32 (2 row tiles × 2 column groups), kept across
// all of K; A0, A1 (4, 5) are 16 rows × 32 k of X in bf16; B0, B1 (6, 7) are 16 pairs of k × 16
// columns of the packed weight, one column group each (row stride 192 bytes: a group is a third of
// a panel row). Per 32 k: 4 tile loads, 4 tdpbf16ps (each 16 × 16 × 32 multiply-adds).

void BLOCK_NAME(const uint16_t *xb, long ldxb, int rows, int kp, const uint16_t *packed, int n, const float *bias,
                float *y, long ldy, int col_begin, int col_end, int add) BLOCK_ATTR;
void BLOCK_NAME(const uint16_t *xb, long ldxb, int rows, int kp, const uint16_t *packed, int n, const float *bias,
                float *y, long ldy, int col_begin, int col_end, int add) {
    TILES_BEGIN;
    float acc[4][16 * 16] __attribute__((aligned(64)));
    const long xstride = ldxb * 2, wstride = 2 * BF16_PANEL * 2;  // bytes between tile rows
    int groups = (n + BF16_PANEL - 1) / BF16_PANEL * BF16_GROUPS;  // column groups in the packed weight
    int g0 = col_begin / 16, g1 = (col_end + 15) / 16;
    for (int r0 = 0; r0 < rows; r0 += 32) {          // xb has the rows up to a multiple of 32 (zeros)
        for (int g = g0; g < g1; g += 2) {
            // An odd last group pairs with itself: valid memory, its second result is not stored.
            int h = g + 1 < groups ? g + 1 : g;
            TILE_ZERO(0); TILE_ZERO(1); TILE_ZERO(2); TILE_ZERO(3);
            for (int q = 0; q < kp / 2; q += 16) {
                TILE_LOAD(4, xb + r0 * ldxb + 2 * q, xstride);
                TILE_LOAD(5, xb + (r0 + 16) * ldxb + 2 * q, xstride);
                TILE_LOAD(6, bf16_group(packed, kp, g, q), wstride);
                TILE_LOAD(7, bf16_group(packed, kp, h, q), wstride);
                TILE_DP(0, 4, 6); TILE_DP(1, 4, 7);
                TILE_DP(2, 5, 6); TILE_DP(3, 5, 7);
            }
            TILE_STORE(0, acc[0], 64); TILE_STORE(1, acc[1], 64);
            TILE_STORE(2, acc[2], 64); TILE_STORE(3, acc[3], 64);
            for (int t = 0; t < 4; t++) {
                int top = r0 + 16 * (t / 2), group = (t % 2) ? g + 1 : g;
                if (top >= rows || group >= g1) continue;
                int c0 = group * 16;
                int lo = col_begin > c0 ? col_begin : c0, hi = col_end < c0 + 16 ? col_end : c0 + 16;
                int height = rows - top < 16 ? rows - top : 16;
                bf16_store_block(acc[t], height, c0, lo, hi, y + (size_t)top * ldy, ldy, bias, add);
            }
        }
    }
    TILES_END;
}
