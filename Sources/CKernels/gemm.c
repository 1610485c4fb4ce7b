// AVX-512 fp32 GEMM for inference Linear layers, with the weights packed once (CKernels.h).
//
//   Y[M×N] (+)= X[M×K]·Wᵀ + b        X row-major (ld K), W (N, K) as PyTorch stores it, Y ld N.
//
// Micro-kernel: 8 rows × 48 columns of Y in 24 zmm accumulators. Per k it loads one 48-wide row
// of the packed W panel (3 aligned loads), broadcasts X[i][k] for the 8 rows straight from
// row-major X (X is never packed: packing it cost 8–12% at tiny-ViT shapes), and issues 24 FMAs.
// Zen 4 needs ≥ 8 independent FMA chains to hide the 4-cycle latency; 24 keep both pipes busy.
// Eight rows (not 12–14) because rows of X one K apart fall into the same L1 sets at K = 3072.
//
// Loop order: 64-row blocks of X (they stay in L1/L2) → K blocks of 3072 (one block at every
// ViT shape) → 48-column W panels → 8-row tiles. Measured on Zen 4 (one thread): 113–117 GFLOP/s
// against OpenBLAS 0.3.21's 91–106 at ViT-B and tiny-ViT shapes.
//
// Every AVX-512 function carries a target attribute, so the file builds for the baseline and the
// kernel is only called after ck_gemm_available() said yes.
#include <immintrin.h>
#include <stdint.h>
#include <stddef.h>
#include "CKernels.h"
#include "gemm_prefetch.h"

#define NV 3                   // zmm vectors per tile row
#define NR (16 * NV)           // tile width: columns per packed panel
#define MR 8                   // tile height
#define KC 3072                // K block
#define MC (MR * 8)            // rows per X block

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define INLINE __attribute__((always_inline)) inline
#include "gemm_tile_store.h"

int ck_gemm_panel_width(void) { return NR; }

// Whether the inference kernels (this one and gemm_bf16.c's AVX512-BF16 kernel) prefetch each
// tile's rows of Y before its product (gemm_prefetch.h). Same results either way.
static bool prefetch_output_enabled = true;
void ck_gemm_set_prefetch_output(bool enabled) { prefetch_output_enabled = enabled; }
bool ck_gemm_prefetch_output(void) { return prefetch_output_enabled; }

int ck_gemm_available(void) {
    const ck_cpu_features_t *f = ck_cpu_features();
    return f->avx512f && f->avx512vl && f->avx512bw && f->avx512dq;
}

size_t ck_gemm_packed_count(int n, int k) {
    return (size_t)((n + NR - 1) / NR) * (size_t)k * NR;
}

// packed[p][k][j] = W[p·NR + j][k]; columns past N are zero.
void ck_gemm_pack(const float *w, int n, int k, float *packed) {
    int panels = (n + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * k * NR;
        const float *src = w + (size_t)p * NR * k;
        int width = n - p * NR < NR ? n - p * NR : NR;
        for (int k0 = 0; k0 < k; k0 += 64) {   // 64-wide strips: the NR source rows stay in L1
            int k1 = k0 + 64 < k ? k0 + 64 : k;
            for (int kk = k0; kk < k1; kk++) {
                float *d = dst + (size_t)kk * NR;
                for (int j = 0; j < width; j++) d[j] = src[(size_t)j * k + kk];
                for (int j = width; j < NR; j++) d[j] = 0.f;
            }
        }
    }
}

int ck_gemm_split(int n, int parts, int i) {
    if (i <= 0) return 0;
    if (i >= parts) return n;
    int panels = (n + NR - 1) / NR;
    int start = (int)(((long)panels * i + parts / 2) / parts) * NR;
    return start > n ? n : start;
}

// One rows × NR tile over kc steps of k. x: row i at x + i·ldx; wp: the panel at this K block.
// Columns [lo, hi) of the panel are written: y = (add ? y : 0) + acc + (bias ? bias : 0).
// y and bias point at the panel's column 0.
static AVX512 INLINE void tile(const int rows, const float *restrict x, long ldx, const float *restrict wp,
                               int kc, float *restrict y, long ldy, const float *restrict bias, int add,
                               int lo, int hi) {
    __m512 acc[MR][NV];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
#ifdef __clang__
#pragma clang loop unroll_count(2)
#endif
    for (int kk = 0; kk < kc; kk++) {
        __m512 w[NV];
        for (int v = 0; v < NV; v++) w[v] = _mm512_load_ps(wp + 16 * v);
        for (int i = 0; i < rows; i++) {
            __m512 a = _mm512_set1_ps(x[i * ldx]);
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(a, w[v], acc[i][v]);
        }
        x += 1;
        wp += NR;
    }
    ck_store_tile(rows, acc, bias, y, ldy, add, lo, hi);
}

typedef void (*tile_fn)(const float *, long, const float *, int, float *, long, const float *, int, int, int);

// One function per tile height, so each has its accumulators in registers.
#define TILE(R) \
    static AVX512 void tile_##R(const float *x, long ldx, const float *wp, int kc, float *y, long ldy, \
                                const float *bias, int add, int lo, int hi) { \
        tile(R, x, ldx, wp, kc, y, ldy, bias, add, lo, hi); \
    }
TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) TILE(7) TILE(8)
static const tile_fn tiles[MR + 1] = {0, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6, tile_7, tile_8};

void ck_gemm_packed(const float *x, int m, int k, const float *packed, const float *bias, float *y, int n,
                    int col_begin, int col_end, int accumulate) {
    if (col_begin < 0) col_begin = 0;
    if (col_end > n) col_end = n;
    if (col_begin >= col_end || m <= 0 || k <= 0) return;
    int p0 = col_begin / NR, p1 = (col_end + NR - 1) / NR;
    for (int i0 = 0; i0 < m; i0 += MC) {
        int mc = m - i0 < MC ? m - i0 : MC;
        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = k - k0 < KC ? k - k0 : KC;
            int first = k0 == 0;
            for (int p = p0; p < p1; p++) {
                int c = p * NR;
                int lo = col_begin > c ? col_begin - c : 0;
                int hi = col_end - c < NR ? col_end - c : NR;
                const float *wp = packed + ((size_t)p * k + k0) * NR;
                // The bias joins the first K block; later blocks (and accumulation) add to y.
                const float *bp = (first && bias) ? bias + c : NULL;
                int add = !first || accumulate;
                for (int r0 = 0; r0 < mc; r0 += MR) {
                    int rows = mc - r0 < MR ? mc - r0 : MR;
                    float *tile_y = y + (size_t)(i0 + r0) * n + c;
                    if (prefetch_output_enabled) prefetch_tile_of_c(tile_y + lo, n, rows, hi - lo);
                    tiles[rows](x + (size_t)(i0 + r0) * k + k0, k, wp, kc, tile_y, n, bp, add, lo, hi);
                }
            }
        }
    }
}
