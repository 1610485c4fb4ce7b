// Attention forward of one (image, head) pair in one call, AVX-512 (CKernels.h: ck_attention_forward):
//   S = scale·q·kᵀ [+ bias];  P = softmax of each row of S;  out = P·v.
//
// Why: at the small sizes of the tiny presets (13–64 tokens, head width 16 or 32) the per-pair
// path of two ck_sgemm calls around Tensor's softmax ran at ~30 GFLOP/s on Zen 4, a third of what
// the same GEMMs reach alone: per call it packed kᵀ and v, and a quarter of the time went to the
// softmax's row passes and loop tails (perf, cpu-clock samples). Here kᵀ is packed once into a
// 16-column-padded panel, v is read in place, a block of query rows keeps S in registers, and the
// softmax runs on 16-lane vectors with masked tails.
//
// The arithmetic is the GEMM path's, operation for operation, so results are bit-identical to it
// (tested): S(i, j) is a fused multiply-add chain over d in order, then one multiply by scale;
// the bias is added after; softmax is SoftmaxOp.forwardRow (max; e = FastMath.exp(x − max) with the
// lanes of each 16-wide chunk summed lane-wise, then the lanes in order, then the tail in order;
// then each e times 1/sum); out(i, c) is a fused multiply-add chain over j in order.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "CKernels.h"
#include "sgemm_kernels.h"

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define INLINE __attribute__((always_inline)) inline
#define MAX_CHUNKS (CK_ATTENTION_MAX_KEYS / 16)

bool ck_attention_supported(int keys, int head_dim) {
    return ck_gemm_isa_supported(CK_GEMM_AVX512) && keys >= 1 && keys <= CK_ATTENTION_MAX_KEYS &&
           (head_dim == 16 || head_dim == 32);
}

void ck_prefetch_rows(const float *x, int rows, long ld, int width) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < width; c += 16) _mm_prefetch((const char *)(x + (size_t)r * ld + c), _MM_HINT_T0);
}

/// The first n of 16 lanes (all for n ≥ 16, none for n ≤ 0).
static AVX512 INLINE __mmask16 lanes_below(int n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }

/// FastMath.exp on 16 lanes, step for step (Tensor/Kernels/FastMath.swift): clamp to [−87, 88],
/// x = n·ln2 + r, a degree-7 Taylor polynomial in fused multiply-adds, 2^n in the exponent field.
static AVX512 INLINE __m512 fast_exp(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.0f), hi = _mm512_set1_ps(88.0f);
    x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), x, lo);
    x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), x, hi);
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 shifted = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), magic);
    __m512 n = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_sub_ps(_mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.69314575f))),
                             _mm512_mul_ps(n, _mm512_set1_ps(1.4286068e-6f)));
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000)), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

/// Row i of P from row i of S held in `s` (chunks of 16 keys, `keys` valid): SoftmaxOp.forwardRow.
static AVX512 INLINE void softmax_row(__m512 *s, int chunks, int keys, float *p) {
    const int full = keys / 16, tail = keys - 16 * full;
    // The maximum does not depend on the order it is taken in.
    __m512 m = _mm512_mask_blend_ps(lanes_below(keys), _mm512_set1_ps(-INFINITY), s[0]);
    for (int c = 1; c < chunks; c++) m = _mm512_mask_max_ps(m, lanes_below(keys - 16 * c), m, s[c]);
    const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    __m512 acc = _mm512_setzero_ps();
    float sum;
    for (int c = 0; c < chunks; c++) s[c] = fast_exp(_mm512_sub_ps(s[c], mv));
    for (int c = 0; c < full; c++) acc = _mm512_add_ps(acc, s[c]);
    // The lanes in order, as Vector.sumOfLanes; then the tail's terms in order.
    float lane[16] __attribute__((aligned(64)));
    _mm512_store_ps(lane, acc);
    sum = lane[0];
    for (int l = 1; l < 16; l++) sum += lane[l];
    if (tail) {
        _mm512_store_ps(lane, s[full]);
        for (int l = 0; l < tail; l++) sum += lane[l];
    }
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (int c = 0; c < chunks; c++) {
        s[c] = _mm512_mul_ps(s[c], inv);
        _mm512_mask_storeu_ps(p + 16 * c, lanes_below(keys - 16 * c), s[c]);
    }
}

/// `rows` query rows (≤ 8) with `chunks` 16-key chunks and head width 16·hv.
static AVX512 INLINE void block(const int chunks, const int rows, const int hv, int keys, int head_dim, float scale,
                                const float *q, long ldq, const float *kt, const float *v, long ldv,
                                const float *bias, float *p, float *out, long ldo) {
    __m512 s[8][MAX_CHUNKS];
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < chunks; c++) s[r][c] = _mm512_setzero_ps();
    // S: as the GEMM tile, one fused multiply-add per d in order, then times scale.
    for (int d = 0; d < head_dim; d++) {
        __m512 b[MAX_CHUNKS];
        for (int c = 0; c < chunks; c++) b[c] = _mm512_load_ps(kt + (size_t)d * 16 * chunks + 16 * c);
        for (int r = 0; r < rows; r++) {
            __m512 x = _mm512_set1_ps(q[r * ldq + d]);
            for (int c = 0; c < chunks; c++) s[r][c] = _mm512_fmadd_ps(x, b[c], s[r][c]);
        }
    }
    const __m512 vs = _mm512_set1_ps(scale);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < chunks; c++) {
            s[r][c] = _mm512_mul_ps(vs, s[r][c]);
            if (bias) s[r][c] = _mm512_add_ps(s[r][c], _mm512_maskz_loadu_ps(lanes_below(keys - 16 * c), bias + (size_t)r * keys + 16 * c));
        }
        softmax_row(s[r], chunks, keys, p + (size_t)r * keys);
    }
    // out = P·v: one fused multiply-add per key in order (v read in place, its rows are contiguous).
    __m512 o[8][2];
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < hv; h++) o[r][h] = _mm512_setzero_ps();
    for (int j = 0; j < keys; j++) {
        __m512 w[2];
        for (int h = 0; h < hv; h++) w[h] = _mm512_loadu_ps(v + (size_t)j * ldv + 16 * h);
        for (int r = 0; r < rows; r++) {
            __m512 x = _mm512_set1_ps(p[(size_t)r * keys + j]);
            for (int h = 0; h < hv; h++) o[r][h] = _mm512_fmadd_ps(x, w[h], o[r][h]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < hv; h++) _mm512_storeu_ps(out + r * ldo + 16 * h, o[r][h]);
}

// One function per (chunks, head width, rows) keeps each block's registers in registers; a block
// has as many rows as keep S within 24 registers (8 rows at most), and the rows of a pair are split
// into blocks of near-equal height (50 rows with 4 chunks: 6, 6, ..., 5), never a run of 1-row blocks.
#define BLOCK(C, H, R) \
    static AVX512 void block_##C##_##H##_##R(int keys, int head_dim, float scale, const float *q, long ldq, const float *kt, \
                                             const float *v, long ldv, const float *bias, float *p, float *out, long ldo) { \
        block(C, R, H, keys, head_dim, scale, q, ldq, kt, v, ldv, bias, p, out, ldo); \
    }
#define BLOCKS6(C, H) BLOCK(C, H, 1) BLOCK(C, H, 2) BLOCK(C, H, 3) BLOCK(C, H, 4) BLOCK(C, H, 5) BLOCK(C, H, 6)
#define BLOCKS8(C, H) BLOCKS6(C, H) BLOCK(C, H, 7) BLOCK(C, H, 8)
#define TABLE6(C, H) {0, block_##C##_##H##_1, block_##C##_##H##_2, block_##C##_##H##_3, block_##C##_##H##_4, \
                      block_##C##_##H##_5, block_##C##_##H##_6}
#define TABLE8(C, H) {0, block_##C##_##H##_1, block_##C##_##H##_2, block_##C##_##H##_3, block_##C##_##H##_4, \
                      block_##C##_##H##_5, block_##C##_##H##_6, block_##C##_##H##_7, block_##C##_##H##_8}
BLOCKS8(1, 1) BLOCKS8(2, 1) BLOCKS8(3, 1) BLOCKS6(4, 1)
BLOCKS8(1, 2) BLOCKS8(2, 2) BLOCKS8(3, 2) BLOCKS6(4, 2)

typedef void (*block_fn)(int, int, float, const float *, long, const float *, const float *, long, const float *, float *,
                         float *, long);
/// [head width / 16 − 1][chunks − 1]: the tallest block and the function for each height.
static const struct { int rows; block_fn of_height[9]; } blocks[2][MAX_CHUNKS] = {
    {{8, TABLE8(1, 1)}, {8, TABLE8(2, 1)}, {8, TABLE8(3, 1)}, {6, TABLE6(4, 1)}},
    {{8, TABLE8(1, 2)}, {8, TABLE8(2, 2)}, {8, TABLE8(3, 2)}, {6, TABLE6(4, 2)}},
};

int ck_attention_forward(int queries, int keys, int head_dim, float scale, const float *q, long ldq, const float *k,
                         long ldk, const float *v, long ldv, const float *bias, float *p, float *out, long ldo) {
    if (!ck_attention_supported(keys, head_dim)) return -1;
    const int chunks = (keys + 15) / 16;
    // The pair's rows of q, k and v are scattered (one token's q|k|v row is 3·heads·head_dim wide)
    // and usually not in cache: ask for all of them at once, so their misses overlap instead of
    // stalling the packing of kᵀ and each block one by one.
    ck_prefetch_rows(k, keys, ldk, head_dim);
    ck_prefetch_rows(v, keys, ldv, head_dim);
    ck_prefetch_rows(q, queries, ldq, head_dim);
    // kᵀ as one panel of 16·chunks columns (zero past `keys`), as ck_sgemm packs op(B).
    float kt[32 * CK_ATTENTION_MAX_KEYS] __attribute__((aligned(64)));
    ck_sgemm_pack_b(true, k, ldk, 0, head_dim, 0, keys, 16 * chunks, kt);
    const int h = head_dim / 16 - 1, tallest = blocks[h][chunks - 1].rows;
    const int count = (queries + tallest - 1) / tallest;
    for (int b = 0, i = 0; b < count; b++) {
        const int rows = (queries - i) / (count - b);   // near-equal heights, all ≤ tallest
        blocks[h][chunks - 1].of_height[rows](keys, head_dim, scale, q + (size_t)i * ldq, ldq, kt, v, ldv,
                                              bias ? bias + (size_t)i * keys : 0, p + (size_t)i * keys,
                                              out + (size_t)i * ldo, ldo);
        i += rows;
    }
    return 0;
}
