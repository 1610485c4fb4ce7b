// Packing op(B) for the training GEMM (sgemm.c): a block of kc rows × nc columns of op(B) becomes
// nr-wide k-major panels, panel p holding kc rows of nr floats (columns j0 + p·nr ...), zero past
// the last column. Packing only copies floats, so how it copies never changes a result.
//
// Why not a loop of memcpy calls (the first version): a panel row is 32–192 bytes, and a library
// call per row cost about as much as the copy; and a transposed B was packed one float at a time
// with strided stores. Together that was ~10% of the BootMAE training step's CPU time on Zen 4
// (perf, cpu-clock samples), mostly in the backward dW = dYᵀ·X products and in attention's per-head
// products, whose op(B) is used for only 13–50 rows of A. Full panel rows are now copied with
// fixed-size copies the compiler turns into vector moves, and a transposed B in 8 × 8 blocks.
#include <immintrin.h>
#include <string.h>
#include "CKernels.h"
#include "sgemm_kernels.h"

#define AVX2 __attribute__((target("avx2")))

/// dst[kk·nr + x] = src[kk·ld + x] for x < W, kk < kc: W a constant, so each row is a few vector moves.
#define COPY_ROWS(W)                                                                           \
    for (int kk = 0; kk < kc; kk++) memcpy(dst + (size_t)kk * nr, src + (size_t)kk * ld, sizeof(float) * (W))

/// Rows of a non-transposed B into one panel: `width` ≤ nr columns from `src` (row stride `ld`).
static void pack_rows(const float *src, long ld, int kc, int width, int nr, float *dst) {
    if (width == nr) {
        switch (nr) {
        case 8: COPY_ROWS(8); return;
        case 16: COPY_ROWS(16); return;
        case 32: COPY_ROWS(32); return;
        case 48: COPY_ROWS(48); return;
        default: break;
        }
    }
    for (int kk = 0; kk < kc; kk++) {
        float *row = dst + (size_t)kk * nr;
        const float *from = src + (size_t)kk * ld;
        for (int x = 0; x < width; x++) row[x] = from[x];
        for (int x = width; x < nr; x++) row[x] = 0;
    }
}

/// dst[c·nr + r] = src[r·ld + c] for r, c < 8: eight rows of B become eight rows of the panel.
static AVX2 inline void transpose_8x8(const float *src, long ld, float *dst, int nr) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld), r2 = _mm256_loadu_ps(src + 2 * ld),
           r3 = _mm256_loadu_ps(src + 3 * ld), r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld),
           r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
    // Interleave pairs of rows, then pairs of pairs, then swap 128-bit halves.
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * nr, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * nr, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * nr, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * nr, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * nr, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * nr, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * nr, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * nr, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/// The whole 8-column groups of `pack_columns` (8 columns of the panel × 8 steps of k at a time);
/// returns the number of columns packed.
static AVX2 int pack_column_groups(const float *src, long ld, int kc, int width, int nr, float *dst) {
    const int k8 = kc / 8 * 8;
    int x0 = 0;
    for (; x0 + 8 <= width; x0 += 8) {
        for (int kk = 0; kk < k8; kk += 8) transpose_8x8(src + (size_t)x0 * ld + kk, ld, dst + (size_t)kk * nr + x0, nr);
        for (int kk = k8; kk < kc; kk++)
            for (int x = x0; x < x0 + 8; x++) dst[(size_t)kk * nr + x] = src[(size_t)x * ld + kk];
    }
    return x0;
}

/// Columns of op(B) = rows of a transposed B into one panel: panel column x is B's row x from
/// `src` (row stride `ld`), read along k.
static void pack_columns(const float *src, long ld, int kc, int width, int nr, float *dst) {
    // AVX2 is checked at run time, so debug builds (baseline ISA) test the same code.
    int x0 = ck_cpu_features()->avx2 ? pack_column_groups(src, ld, kc, width, nr, dst) : 0;
    for (int x = x0; x < width; x++) {
        const float *from = src + (size_t)x * ld;
        for (int kk = 0; kk < kc; kk++) dst[(size_t)kk * nr + x] = from[kk];
    }
    if (width < nr)
        for (int kk = 0; kk < kc; kk++) memset(dst + (size_t)kk * nr + width, 0, sizeof(float) * (nr - width));
}

void ck_sgemm_pack_b(bool trans_b, const float *b, long ldb, int k0, int kc, int j0, int nc, int nr, float *dst) {
    for (int p = 0; p * nr < nc; p++, dst += (size_t)kc * nr) {
        int j = j0 + p * nr, width = nc - p * nr < nr ? nc - p * nr : nr;
        if (trans_b) pack_columns(b + (size_t)j * ldb + k0, ldb, kc, width, nr, dst);   // B is (n, k)
        else pack_rows(b + (size_t)k0 * ldb + j, ldb, kc, width, nr, dst);              // B is (k, n)
    }
}
