// Portable micro-kernel of the training GEMM (sgemm_kernels.h): plain C, any CPU. A 4 × 8 tile in
// 32 scalar accumulators, which compilers keep in vector registers where the target has them. The
// reference the ISA kernels are tested beside, and the path of CPUs with neither AVX2 nor AVX-512.
#include "sgemm_kernels.h"

#define MR 4
#define NR 8

static inline __attribute__((always_inline)) void tile(const int rows, const int trans_a, const float *restrict a,
                                                       long lda, const float *restrict bp, int kc, float *restrict c,
                                                       long ldc, float alpha, float beta,
                                                       const float *restrict bias, int cols) {
    float acc[MR][NR] = {{0}};
    for (int kk = 0; kk < kc; kk++) {
        for (int i = 0; i < rows; i++) {
            float x = trans_a ? a[i] : a[i * lda];
            for (int j = 0; j < NR; j++) acc[i][j] += x * bp[j];
        }
        a += trans_a ? lda : 1;
        bp += NR;
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float *out = c + i * ldc + j;
            if (bias) {
                float t = beta != 0 ? __builtin_fmaf(beta, *out, bias[j]) : bias[j];
                *out = alpha * acc[i][j] + t;
            } else {
                *out = beta != 0 ? alpha * acc[i][j] + beta * *out : alpha * acc[i][j];
            }
        }
}

#define TILE(T, R) \
    static void tile_##T##_##R(const float *a, long lda, const float *bp, int kc, float *c, long ldc, float alpha, \
                               float beta, const float *bias, int cols) { \
        tile(R, T, a, lda, bp, kc, c, ldc, alpha, beta, bias, cols); \
    }
TILE(0, 1) TILE(0, 2) TILE(0, 3) TILE(0, 4) TILE(1, 1) TILE(1, 2) TILE(1, 3) TILE(1, 4)

const ck_microkernel ck_sgemm_portable_kernels[] = {
    {MR, NR, {{0, tile_0_1, tile_0_2, tile_0_3, tile_0_4}, {0, tile_1_1, tile_1_2, tile_1_3, tile_1_4}}},
    {0, 0, {{0}}},
};
