// AVX-512 micro-kernels of the training GEMM (sgemm_kernels.h).
//
// A tile is 8 rows of C × 16·NV columns in 8·NV zmm accumulators: per k, NV aligned loads of the
// packed panel, one broadcast of op(A)(i, k) per row (from A in place), 8·NV FMAs. NV = 3 (24
// accumulators, as the inference kernel in gemm.c) keeps both FMA pipes busy; NV = 2 and 1 serve
// narrow C (attention's head width 32 and 16), where a 48-wide panel would be a third or two
// thirds zeros. Built for the baseline with target attributes; sgemm.c calls it only when
// ck_cpu_features() reports AVX-512.
#include <immintrin.h>
#include "sgemm_kernels.h"

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define INLINE __attribute__((always_inline)) inline
#define MR 8

static AVX512 INLINE __mmask16 lanes(int cols, int v) {
    int e = cols - 16 * v;
    e = e < 0 ? 0 : (e > 16 ? 16 : e);
    return (__mmask16)((1u << e) - 1u);
}

static AVX512 INLINE void tile(const int nv, const int rows, const int trans_a, const float *restrict a, long lda,
                               const float *restrict bp, int kc, float *restrict c, long ldc, float alpha, float beta,
                               const float *restrict bias, int cols) {
    __m512 acc[MR][3];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
#ifdef __clang__
#pragma clang loop unroll_count(2)
#endif
    for (int kk = 0; kk < kc; kk++) {
        __m512 b[3];
        for (int v = 0; v < nv; v++) b[v] = _mm512_load_ps(bp + 16 * v);
        for (int i = 0; i < rows; i++) {
            __m512 x = _mm512_set1_ps(trans_a ? a[i] : a[i * lda]);
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(x, b[v], acc[i][v]);
        }
        a += trans_a ? lda : 1;
        bp += 16 * nv;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int v = 0; v < nv; v++) {
        __mmask16 m = lanes(cols, v);
        if (bias) {
            __m512 bv = _mm512_maskz_loadu_ps(m, bias + 16 * v);
            for (int i = 0; i < rows; i++) {
                float *out = c + i * ldc + 16 * v;
                __m512 t = beta != 0 ? _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, out), bv) : bv;
                _mm512_mask_storeu_ps(out, m, _mm512_add_ps(_mm512_mul_ps(va, acc[i][v]), t));
            }
            continue;
        }
        for (int i = 0; i < rows; i++) {
            float *out = c + i * ldc + 16 * v;
            __m512 r = _mm512_mul_ps(va, acc[i][v]);
            if (beta != 0) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, out), r);
            _mm512_mask_storeu_ps(out, m, r);
        }
    }
}

// One function per (width, transposition, height), so each keeps its accumulators in registers.
#define TILE(NV, T, R) \
    static AVX512 void tile_##NV##_##T##_##R(const float *a, long lda, const float *bp, int kc, float *c, long ldc, \
                                             float alpha, float beta, const float *bias, int cols) { \
        tile(NV, R, T, a, lda, bp, kc, c, ldc, alpha, beta, bias, cols); \
    }
#define HEIGHTS(NV, T) \
    TILE(NV, T, 1) TILE(NV, T, 2) TILE(NV, T, 3) TILE(NV, T, 4) TILE(NV, T, 5) TILE(NV, T, 6) TILE(NV, T, 7) TILE(NV, T, 8)
#define TABLE(NV, T) \
    {0, tile_##NV##_##T##_1, tile_##NV##_##T##_2, tile_##NV##_##T##_3, tile_##NV##_##T##_4, \
     tile_##NV##_##T##_5, tile_##NV##_##T##_6, tile_##NV##_##T##_7, tile_##NV##_##T##_8}
#define KERNEL(NV) {MR, 16 * NV, {TABLE(NV, 0), TABLE(NV, 1)}}

HEIGHTS(3, 0) HEIGHTS(3, 1) HEIGHTS(2, 0) HEIGHTS(2, 1) HEIGHTS(1, 0) HEIGHTS(1, 1)

const ck_microkernel ck_sgemm_avx512_kernels[] = {KERNEL(3), KERNEL(2), KERNEL(1), {0, 0, {{0}}}};
