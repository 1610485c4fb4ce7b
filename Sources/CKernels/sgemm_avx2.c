// AVX2 + FMA micro-kernels of the training GEMM (sgemm_kernels.h), for x86 CPUs without AVX-512.
//
// A tile is 6 rows of C × 8·NV columns: 6·NV ymm accumulators + NV panel vectors + one broadcast
// fit the 16 ymm registers (NV = 2: 12 accumulators, enough independent FMA chains for two pipes
// with 4-5 cycle latency). NV = 1 serves C narrower than 9 columns. Built for the baseline with
// target attributes; sgemm.c calls it only when ck_cpu_features() reports AVX2 and FMA.
#include <immintrin.h>
#include "sgemm_kernels.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE __attribute__((always_inline)) inline
#define MR 6

static AVX2 INLINE __m256i lanes(int cols, int v) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8 * v), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static AVX2 INLINE void tile(const int nv, const int rows, const int trans_a, const float *restrict a, long lda,
                             const float *restrict bp, int kc, float *restrict c, long ldc, float alpha, float beta,
                             const float *restrict bias, int cols) {
    __m256 acc[MR][2];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm256_setzero_ps();
#ifdef __clang__
#pragma clang loop unroll_count(2)
#endif
    for (int kk = 0; kk < kc; kk++) {
        __m256 b[2];
        for (int v = 0; v < nv; v++) b[v] = _mm256_load_ps(bp + 8 * v);
        for (int i = 0; i < rows; i++) {
            __m256 x = _mm256_broadcast_ss(trans_a ? a + i : a + i * lda);
            for (int v = 0; v < nv; v++) acc[i][v] = _mm256_fmadd_ps(x, b[v], acc[i][v]);
        }
        a += trans_a ? lda : 1;
        bp += 8 * nv;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int v = 0; v < nv; v++) {
        // Masked moves only at a ragged edge: AMD CPUs run vmaskmovps stores slowly (microcoded).
        int full = cols >= 8 * (v + 1);
        __m256i m = lanes(cols, v);
        if (bias) {
            __m256 bv = full ? _mm256_loadu_ps(bias + 8 * v) : _mm256_maskload_ps(bias + 8 * v, m);
            for (int i = 0; i < rows; i++) {
                float *out = c + i * ldc + 8 * v;
                __m256 t = bv;
                if (beta != 0) t = _mm256_fmadd_ps(vb, full ? _mm256_loadu_ps(out) : _mm256_maskload_ps(out, m), bv);
                __m256 r = _mm256_add_ps(_mm256_mul_ps(va, acc[i][v]), t);
                if (full) _mm256_storeu_ps(out, r); else _mm256_maskstore_ps(out, m, r);
            }
            continue;
        }
        for (int i = 0; i < rows; i++) {
            float *out = c + i * ldc + 8 * v;
            __m256 r = _mm256_mul_ps(va, acc[i][v]);
            if (full) {
                if (beta != 0) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(out), r);
                _mm256_storeu_ps(out, r);
            } else {
                if (beta != 0) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(out, m), r);
                _mm256_maskstore_ps(out, m, r);
            }
        }
    }
}

#define TILE(NV, T, R) \
    static AVX2 void tile_##NV##_##T##_##R(const float *a, long lda, const float *bp, int kc, float *c, long ldc, \
                                           float alpha, float beta, const float *bias, int cols) { \
        tile(NV, R, T, a, lda, bp, kc, c, ldc, alpha, beta, bias, cols); \
    }
#define HEIGHTS(NV, T) TILE(NV, T, 1) TILE(NV, T, 2) TILE(NV, T, 3) TILE(NV, T, 4) TILE(NV, T, 5) TILE(NV, T, 6)
#define TABLE(NV, T) \
    {0, tile_##NV##_##T##_1, tile_##NV##_##T##_2, tile_##NV##_##T##_3, tile_##NV##_##T##_4, \
     tile_##NV##_##T##_5, tile_##NV##_##T##_6, 0, 0}
#define KERNEL(NV) {MR, 8 * NV, {TABLE(NV, 0), TABLE(NV, 1)}}

HEIGHTS(2, 0) HEIGHTS(2, 1) HEIGHTS(1, 0) HEIGHTS(1, 1)

const ck_microkernel ck_sgemm_avx2_kernels[] = {KERNEL(2), KERNEL(1), {0, 0, {{0}}}};
