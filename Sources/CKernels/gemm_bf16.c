// bf16 inference GEMM: packing, the AVX512-BF16 kernel, and the driver every bf16 kernel shares
// (CKernelsBF16.h).
//
//   Y[M×N] (+)= X[M×K]·Wᵀ + b     W packed once in bf16 VNNI pairs; X rounded to bf16 per call.
//
// AVX512-BF16 micro-kernel: 8 rows × 48 columns of Y in 24 zmm fp32 accumulators, like the fp32
// kernel (gemm.c), but each step consumes a pair of k: one `vdpbf16ps` adds x[i][2q]·w[2q][j] +
// x[i][2q+1]·w[2q+1][j] into 16 lanes, so a step does twice the multiply-adds of an FMA from half
// the bytes. Per pair: 3 loads of the packed panel row, 8 broadcasts of an X pair (32 bits), 24 dot
// products. Products of two bf16 are exact in fp32; only the sums round.
//
// Driver: 64-row blocks of X are rounded to bf16 into a per-thread buffer (K zero-padded, rows
// zero-padded to 32 for the AMX tiles), then every panel in the column range runs over that block.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "CKernelsBF16.h"
#include "gemm_bf16_internal.h"
#include "gemm_prefetch.h"
#include "CKernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define MR 8                  // AVX-512 tile height
#define MC 64                 // rows per X block (a multiple of 32: two AMX row tiles)
#define LD_SKEW 32            // bf16 added to the X block's row stride: rows K apart would share L1 sets

size_t ck_gemm_bf16_packed_count(int n, int k) {
    return (size_t)((n + BF16_PANEL - 1) / BF16_PANEL) * (size_t)bf16_padded_k(k) * BF16_PANEL;
}

void ck_gemm_bf16_pack(const float *w, int n, int k, uint16_t *packed) {
    int kp = bf16_padded_k(k), panels = (n + BF16_PANEL - 1) / BF16_PANEL;
    for (int p = 0; p < panels; p++) {
        uint16_t *dst = packed + (size_t)p * kp * BF16_PANEL;
        for (int q = 0; q < kp / 2; q++)
            for (int j = 0; j < BF16_PANEL; j++)
                for (int r = 0; r < 2; r++) {
                    int row = p * BF16_PANEL + j, col = 2 * q + r;
                    dst[(size_t)q * 2 * BF16_PANEL + 2 * j + r] =
                        row < n && col < k ? ck_bf16_round(w[(size_t)row * k + col]) : 0;
                }
    }
}

// MARK: AVX512-BF16 kernel

#if defined(__x86_64__)
#define AVX512BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))
#define INLINE __attribute__((always_inline)) inline
#define NV BF16_GROUPS
#include "gemm_tile_store.h"

// One rows × (16·groups) tile over `pairs` pairs of k (groups ≤ 3: the panel's first 16-column
// groups; an edge panel whose valid columns fit one or two groups skips the others' dot products).
// x: row i at x + i·ldx (bf16); wp: the panel. Columns [lo, hi) of the panel (hi ≤ 16·groups) are
// written: y = (add ? y : 0) + acc + (bias ? bias : 0). Each column's sum is the same chain whatever
// `groups` is, so the edge tiles give the full tile's bits.
static AVX512BF16 INLINE void tile(const int rows, const int groups, const uint16_t *restrict x, long ldx,
                                   const uint16_t *restrict wp, int pairs, float *restrict y, long ldy,
                                   const float *restrict bias, int add, int lo, int hi) {
    __m512 acc[MR][NV];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    for (int q = 0; q < pairs; q++) {
        __m512bh w[NV];
        for (int v = 0; v < groups; v++) w[v] = (__m512bh)_mm512_load_si512((const void *)(wp + 32 * v));
        for (int i = 0; i < rows; i++) {
            int32_t pair;
            memcpy(&pair, x + i * ldx + 2 * q, 4);
            __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
            for (int v = 0; v < groups; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], a, w[v]);
        }
        wp += 2 * BF16_PANEL;
    }
    ck_store_tile(rows, acc, bias, y, ldy, add, lo, hi);   // lanes past hi are masked off
}

typedef void (*tile_fn)(const uint16_t *, long, const uint16_t *, int, float *, long, const float *, int, int, int);
#define TILE(R, G) \
    static AVX512BF16 void tile_##R##_##G(const uint16_t *x, long ldx, const uint16_t *wp, int pairs, float *y, long ldy, \
                                          const float *bias, int add, int lo, int hi) { \
        tile(R, G, x, ldx, wp, pairs, y, ldy, bias, add, lo, hi); \
    }
#define TILES(G) TILE(1, G) TILE(2, G) TILE(3, G) TILE(4, G) TILE(5, G) TILE(6, G) TILE(7, G) TILE(8, G)
#define TABLE(G) {0, tile_1_##G, tile_2_##G, tile_3_##G, tile_4_##G, tile_5_##G, tile_6_##G, tile_7_##G, tile_8_##G}
TILES(1) TILES(2) TILES(3)
/// [groups − 1][rows]
static const tile_fn tiles[NV][MR + 1] = {TABLE(1), TABLE(2), TABLE(3)};

static void avx512_block(const uint16_t *xb, long ldxb, int rows, int k, int kp, const uint16_t *packed,
                         const float *bias, float *y, long ldy, int col_begin, int col_end, int add) {
    int p0 = col_begin / BF16_PANEL, p1 = (col_end + BF16_PANEL - 1) / BF16_PANEL;
    // All of K in one pass: a panel streams from L2 for every 8-row tile. Blocks of 128 or 192
    // pairs (a panel's block kept in L1) measured 2–5% slower at ViT-B shapes (thread CPU time).
    int pairs = (k + 1) / 2;  // the zero pairs of the K padding add nothing
    for (int p = p0; p < p1; p++) {
        int c = p * BF16_PANEL;
        int lo = col_begin > c ? col_begin - c : 0;
        int hi = col_end - c < BF16_PANEL ? col_end - c : BF16_PANEL;
        const uint16_t *wp = packed + (size_t)p * kp * BF16_PANEL;
        const int groups = (hi + 15) / 16;   // 3 inside; fewer at a narrow edge (attention's 197 keys, 64 widths)
        for (int r0 = 0; r0 < rows; r0 += MR) {
            int r = rows - r0 < MR ? rows - r0 : MR;
            float *tile_y = y + (size_t)r0 * ldy + c;
            // Y is mostly a fresh activation buffer (qkv, fc1's hidden) or the residual stream out of L2.
            if (ck_gemm_prefetch_output()) prefetch_tile_of_c(tile_y + lo, ldy, r, hi - lo);
            tiles[groups - 1][r](xb + r0 * ldxb, ldxb, wp, pairs, tile_y, ldy, bias ? bias + c : NULL, add, lo, hi);
        }
    }
}
#else
static void avx512_block(const uint16_t *xb, long ldxb, int rows, int k, int kp, const uint16_t *packed,
                         const float *bias, float *y, long ldy, int col_begin, int col_end, int add) {
    (void)xb; (void)ldxb; (void)rows; (void)k; (void)kp; (void)packed; (void)bias; (void)y; (void)ldy;
    (void)col_begin; (void)col_end; (void)add;
    abort();  // ck_bf16_kernel_runs(CK_BF16_AVX512) is false off x86-64
}
#endif

// MARK: Driver

// The X block in bf16, one buffer per thread, grown as needed and kept while the thread lives, so
// a forward pass allocates nothing after its first one; freed when the thread exits (Dispatch
// retires idle worker threads, and a _Thread_local pointer would leak its buffer then).
typedef struct { uint16_t *data; size_t count; } scratch_buffer_t;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    scratch_buffer_t *s = p;
    free(s->data);
    free(s);
}

static void scratch_key_create(void) {
    if (pthread_key_create(&scratch_key, scratch_free) != 0) abort();
}

static uint16_t *scratch_buffer(size_t count) {
    pthread_once(&scratch_once, scratch_key_create);
    scratch_buffer_t *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || pthread_setspecific(scratch_key, s) != 0) abort();
    }
    if (count > s->count) {
        free(s->data);
        size_t bytes = (count * sizeof(uint16_t) + 63) / 64 * 64;
        if (!(s->data = aligned_alloc(64, bytes))) abort();
        s->count = bytes / sizeof(uint16_t);
    }
    return s->data;
}

// Rows [0, rows) of x (row stride ldx, k used) to bf16 at xb (ld ldxb); the K padding and the rows
// up to `padded_rows` zero.
static void round_block(const float *x, long ldx, int rows, int k, uint16_t *xb, long ldxb, int padded_rows, int hardware) {
    for (int i = 0; i < rows; i++) {
        uint16_t *dst = xb + i * ldxb;
        if (hardware) ck_bf16_round_hardware(x + (size_t)i * ldx, dst, k);
        else for (int j = 0; j < k; j++) dst[j] = ck_bf16_round(x[(size_t)i * ldx + j]);
        memset(dst + k, 0, (size_t)(ldxb - k) * sizeof(uint16_t));
    }
    memset(xb + (size_t)rows * ldxb, 0, (size_t)(padded_rows - rows) * ldxb * sizeof(uint16_t));
}

void bf16_gemm_strided(ck_bf16_kernel kernel, const float *x, long ldx, int m, int k, const uint16_t *packed,
                       const float *bias, float *y, long ldy, int n, int col_begin, int col_end, int accumulate) {
    if (col_begin < 0) col_begin = 0;
    if (col_end > n) col_end = n;
    if (col_begin >= col_end || m <= 0 || k <= 0) return;
    if (!ck_bf16_kernel_runs(kernel)) abort();  // a caller's bug: the kernel would raise SIGILL
    int kp = bf16_padded_k(k);
    long ldxb = kp + LD_SKEW;
    uint16_t *xb = scratch_buffer((size_t)MC * ldxb);
    for (int i0 = 0; i0 < m; i0 += MC) {
        int rows = m - i0 < MC ? m - i0 : MC;
        int padded = (rows + 31) / 32 * 32;
        round_block(x + (size_t)i0 * ldx, ldx, rows, k, xb, ldxb, padded, kernel != CK_BF16_AMX_MODEL);
        float *yb = y + (size_t)i0 * ldy;
        switch (kernel) {
        case CK_BF16_AVX512: avx512_block(xb, ldxb, rows, k, kp, packed, bias, yb, ldy, col_begin, col_end, accumulate); break;
        case CK_BF16_AMX: bf16_amx_block(xb, ldxb, rows, kp, packed, n, bias, yb, ldy, col_begin, col_end, accumulate); break;
        case CK_BF16_AMX_MODEL:
            bf16_amx_model_block(xb, ldxb, rows, kp, packed, n, bias, yb, ldy, col_begin, col_end, accumulate);
            break;
        default: abort();
        }
    }
}

void ck_gemm_bf16(ck_bf16_kernel kernel, const float *x, int m, int k, const uint16_t *packed, const float *bias,
                  float *y, int n, int col_begin, int col_end, int accumulate) {
    bf16_gemm_strided(kernel, x, k, m, k, packed, bias, y, n, n, col_begin, col_end, accumulate);
}
