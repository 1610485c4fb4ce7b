#ifndef CKERNELS_H
#define CKERNELS_H

/// Elementwise kernels that gain from AVX-512 (16 lanes), compiled twice — for x86-64-v4 and for
/// the build's baseline — with the variant picked when the library loads (glibc ifunc), so one
/// binary runs on AVX2-only CPUs too. The arithmetic is step for step that of the Swift kernels
/// (Tensor/Kernels/FastMath.swift, GELU.swift): same constants, same fused multiply-adds, no
/// other contraction (-ffp-contract=off), so both give identical results.

/// y[i] = GELU(x[i]) = x·Φ(x) (exact erf form); x and y must not overlap.
void ck_gelu_forward(const float *x, float *y, long n);

/// x[i] = GELU(x[i]), in place. (A separate entry point: with x and y possibly equal, the compiler
/// would guard the vector loop by an overlap test and run the scalar loop in place.)
void ck_gelu_in_place(float *x, long n);

/// y[i] = GELU(x[i]) and d[i] = GELU'(x[i]) = Φ(x) + x·φ(x), in one pass.
void ck_gelu_forward_derivative(const float *x, float *y, float *d, long n);


// MARK: Inference GEMM with packed weights (gemm.c)
//
// Y[m×n] = X[m×k]·Wᵀ + b, or with `accumulate` Y += X·Wᵀ + b; X row-major (leading dimension k),
// W (n, k) row-major as PyTorch stores a Linear weight, Y row-major (leading dimension n), b n
// floats or NULL. W is packed once into ck_gemm_packed_count(n, k) floats, 64-byte aligned.

#include <stdbool.h>
#include <stddef.h>

/// 1 when the CPU runs the kernel (AVX-512 F/VL/BW/DQ); call nothing else below otherwise.
int ck_gemm_available(void);
/// Columns per packed panel: splits of the columns at multiples of it do no duplicate work.
int ck_gemm_panel_width(void);
/// Floats of the packed form of an (n, k) weight.
size_t ck_gemm_packed_count(int n, int k);
/// Packs W (n, k) into `packed` (64-byte aligned, ck_gemm_packed_count(n, k) floats).
void ck_gemm_pack(const float *w, int n, int k, float *packed);
/// Start column of part i of `parts` (panel-aligned); part i covers [split(i), split(i + 1)).
int ck_gemm_split(int n, int parts, int i);
/// Computes columns [col_begin, col_end) of Y (any range is correct; threads take disjoint ones).
void ck_gemm_packed(const float *x, int m, int k, const float *packed, const float *bias, float *y, int n,
                    int col_begin, int col_end, int accumulate);
/// Whether the inference GEMMs (ck_gemm_packed and ck_gemm_bf16's AVX512-BF16 kernel) prefetch each
/// tile's rows of Y before computing it (default true). Same results either way; benchmarks switch
/// it between calls (`forward --compare-prefetch-y`).
void ck_gemm_set_prefetch_output(bool enabled);
bool ck_gemm_prefetch_output(void);



// MARK: CPU features (cpu_features.c)
//
// The one description of what this CPU runs, read once from CPUID and XGETBV. Kernels that
// dispatch by ISA (the training GEMM below, future bf16/AMX kernels) and the reports that print the
// machine (bench) all ask here. A flag is true only when the CPU has the feature *and* the OS saves
// its registers (XCR0). AMX needs one more step per process before use: Linux grants the tile data
// state on request (arch_prctl ARCH_REQ_XCOMP_PERM); `amx_*` only says the hardware and OS allow it.

#include <stdbool.h>

typedef struct {
    char vendor[13];       // "GenuineIntel", "AuthenticAMD"
    char model_name[49];   // the brand string, e.g. "AMD EPYC", "Intel(R) Xeon(R) Platinum 8480+"
    int family, model;     // display family and model
    bool sse3, ssse3, sse4_1, sse4_2;
    bool avx, avx2, fma, f16c;
    bool avx512f, avx512dq, avx512bw, avx512vl;
    bool avx512_vnni, avx512_bf16, avx512_fp16, avx_vnni;
    bool amx_tile, amx_bf16, amx_int8;
} ck_cpu_features_t;

/// This CPU's features (computed on the first call, thread-safe; the pointer stays valid).
const ck_cpu_features_t *ck_cpu_features(void);


// MARK: General fp32 GEMM for training (sgemm.c, sgemm_avx512.c, sgemm_avx2.c)
//
// C[m×n] = alpha·op(A)·op(B) + beta·C, row-major like cblas_sgemm(CblasRowMajor, ...): op(A) is
// m×k (A itself k×m when trans_a), op(B) k×n (B itself n×k when trans_b), leading dimensions are
// row strides. beta = 0 never reads C (it may hold NaN). op(B) is packed per call into column
// panels (a block of k at a time); A is read in place. Single-threaded: callers split C's rows or
// columns over threads (Tensor's BLAS.gemm).

typedef enum {
    CK_GEMM_PORTABLE = 0,  // plain C, any CPU (the compiler vectorizes what it can)
    CK_GEMM_AVX2 = 1,      // AVX2 + FMA: 6×16 tiles
    CK_GEMM_AVX512 = 2,    // AVX-512 F/VL/BW/DQ: 8×48 tiles (narrower for narrow C)
} ck_gemm_isa;

/// Whether this CPU runs `isa` (ck_cpu_features).
bool ck_gemm_isa_supported(ck_gemm_isa isa);
/// The fastest kernel this CPU runs.
ck_gemm_isa ck_gemm_best_isa(void);
/// "avx512", "avx2", "portable".
const char *ck_gemm_isa_name(ck_gemm_isa isa);
/// The GEMM with the kernel of `isa`, which must be supported. Returns 0, or -1 when the packing
/// buffer could not be allocated (C is then unchanged). With `bias` (n floats; NULL for none) a bias
/// row joins in the store: C = alpha·op(A)·op(B) + (beta·C + bias[j]), the bracket rounded first (one
/// fma; beta = 0: bias[j] alone), so the result has exactly the bits of filling C with C + bias (or
/// bias) and multiplying with beta 1: the Linear layer's output costs no pass of its own.
int ck_sgemm(ck_gemm_isa isa, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
             const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
             const float *bias);
/// Whether ck_sgemm prefetches each tile's C before computing it (default true; see sgemm.c). Same
/// results either way; benchmarks switch it between calls (`train-step --compare-prefetch-c`).
void ck_sgemm_set_prefetch_c(bool enabled);
bool ck_sgemm_prefetch_c(void);
/// Whether ck_sgemm packs op(B) for all K blocks at once where it fits and runs each block of A's
/// rows through every K block (default true; see sgemm.c), or packs one K block at a time and
/// sweeps all of C per K block. Same results; `train-step --compare-k-order resident,sweep`.
void ck_sgemm_set_k_resident(bool enabled);
bool ck_sgemm_k_resident(void);

// MARK: Attention forward of one (image, head) pair, AVX-512 (attention_avx512.c)
//
// S = scale·q·kᵀ [+ bias], P = row softmax of S, out = P·v, with the arithmetic of the path it
// replaces (two ck_sgemm calls around Tensor's SoftmaxOp.forwardRow), so results are bit-identical.
// q: `queries` rows of head_dim floats (row stride ldq); k, v: `keys` rows (strides ldk, ldv);
// bias: queries × keys (row stride keys) or NULL; p receives P (queries × keys, row stride keys);
// out: `queries` rows of head_dim floats (row stride ldo).

/// The most keys the kernel takes (S of a block of query rows stays in registers).
#define CK_ATTENTION_MAX_KEYS 64
/// Whether this CPU has AVX-512 and the kernel takes this shape (head width 16 or 32, 1...64 keys).
bool ck_attention_supported(int keys, int head_dim);
/// Asks the CPU to fetch `rows` rows of `width` floats (row stride ld) into cache, all at once:
/// attention's per-pair rows are scattered, and misses taken one by one stall each product.
void ck_prefetch_rows(const float *x, int rows, long ld, int width);
/// Returns 0, or -1 (nothing written) where ck_attention_supported is false.
int ck_attention_forward(int queries, int keys, int head_dim, float scale, const float *q, long ldq, const float *k,
                         long ldk, const float *v, long ldv, const float *bias, float *p, float *out, long ldo);

// MARK: bf16 inference GEMM (CKernelsBF16.h)
#include "CKernelsBF16.h"

#endif
