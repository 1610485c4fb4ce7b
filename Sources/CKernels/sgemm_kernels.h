// The seam between the training GEMM's driver (sgemm.c: blocking, packing, edges) and its
// micro-kernels (one file per ISA). Private to CKernels.
#ifndef SGEMM_KERNELS_H
#define SGEMM_KERNELS_H

#include <stdbool.h>

#define CK_MAX_MR 8

/// One tile of C: rows × (up to) nr columns over kc steps of k.
///   a      op(A) at the tile's first row and the block's first k: element (i, kk) is a[i·lda + kk],
///          or a[kk·lda + i] for the transposed-A variant (tile[1][...]).
///   bp     the packed panel: kc rows of nr floats, 64-byte aligned, zero past the last column.
///   c      C at the tile's first row and the panel's first column; only `cols` columns are written:
///          c = alpha·acc + beta·c (beta = 0: c is not read).
///   bias   NULL, or the bias at the panel's first column: then c = alpha·acc + (beta·c + bias[j]),
///          the bracket rounded first (beta = 0: alpha·acc + bias[j]), so a bias added here rounds
///          exactly as one added to C before a beta-1 product.
typedef void (*ck_tile_fn)(const float *a, long lda, const float *bp, int kc, float *c, long ldc,
                           float alpha, float beta, const float *bias, int cols);

typedef struct {
    int mr, nr;                              // tile height (rows of C), panel width (columns)
    ck_tile_fn tile[2][CK_MAX_MR + 1];       // [A transposed][rows], rows 1...mr
} ck_microkernel;

/// Packs op(B)[k0 ..< k0+kc][j0 ..< j0+nc] into nr-wide k-major panels (sgemm_pack.c): panel p holds
/// kc rows of nr floats (columns j0 + p·nr ...), zero past column j0 + nc.
void ck_sgemm_pack_b(bool trans_b, const float *b, long ldb, int k0, int kc, int j0, int nc, int nr, float *dst);

/// Each ISA's micro-kernels, widest first, ending with one whose nr is 0.
extern const ck_microkernel ck_sgemm_avx512_kernels[];
extern const ck_microkernel ck_sgemm_avx2_kernels[];
extern const ck_microkernel ck_sgemm_portable_kernels[];

#endif
