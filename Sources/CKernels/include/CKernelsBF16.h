#ifndef CKERNELS_BF16_H
#define CKERNELS_BF16_H

// bf16 inference GEMM (bf16.c, gemm_bf16.c, gemm_amx.c): Y[m×n] = X[m×k]·Wᵀ + b (or Y += … with
// `accumulate`), with W rounded to bf16 and packed once, X rounded to bf16 on every call, products
// summed in fp32. Same operands and leading dimensions as ck_gemm_packed (CKernels.h).
//
// Packed layout (shared by the AVX512-BF16 and AMX kernels): panels of CK_BF16_PANEL = 48 columns;
// K is zero-padded to a multiple of 32; inside a panel, row q (a pair of k) holds the 48 columns'
// two values side by side ("VNNI pairs"):
//     packed[p][q][2j + r] = bf16(W[48p + j][2q + r])          r ∈ {0, 1}, columns past n are zero
// A 16-column group of a panel over 16 consecutive q is exactly an AMX B tile (16 rows of 64 bytes,
// row stride 192 bytes), and one q row of a group is one `vdpbf16ps` operand.

#include <stddef.h>
#include <stdint.h>

/// Which bf16 kernel runs a GEMM.
typedef enum {
    CK_BF16_NONE = 0,      // no bf16 hardware: callers keep fp32
    CK_BF16_AVX512 = 1,    // AVX512-BF16 dot products (vdpbf16ps)
    CK_BF16_AMX = 2,       // AMX-BF16 tiles
    CK_BF16_AMX_MODEL = 3  // a software model of the AMX kernel (tile loads and tdpbf16ps in C): runs everywhere, for tests
} ck_bf16_kernel;

/// The fastest bf16 kernel this CPU and OS run, decided once per process from CPUID: AMX when the
/// CPU has AMX-TILE and AMX-BF16 and Linux grants the tile state (arch_prctl, asked here, once),
/// else AVX512-BF16, else CK_BF16_NONE. Never CK_BF16_AMX_MODEL.
ck_bf16_kernel ck_bf16_best_kernel(void);
/// Whether `kernel` can run here (the model always can; AMX only after the permission above).
int ck_bf16_kernel_runs(ck_bf16_kernel kernel);

/// fp32 → bf16 as the hardware does it (vcvtneps2bf16): round to nearest, ties to even; NaNs stay
/// NaN (made quiet, payload truncated); subnormal inputs become signed zero. The software model.
uint16_t ck_bf16_round(float x);
/// The fp32 value of a bf16 (exact).
float ck_bf16_to_float(uint16_t h);
/// ck_bf16_round over n floats with vcvtneps2bf16; only where ck_bf16_kernel_runs(CK_BF16_AVX512).
void ck_bf16_round_hardware(const float *x, uint16_t *out, long n);

/// Columns per packed panel (48: the same panels, and so the same splits, as ck_gemm_split).
#define CK_BF16_PANEL 48
/// bf16 values (uint16_t) of the packed form of an (n, k) weight.
size_t ck_gemm_bf16_packed_count(int n, int k);
/// Rounds W (n, k) to bf16 (ck_bf16_round) into `packed` (64-byte aligned, ck_gemm_bf16_packed_count values).
void ck_gemm_bf16_pack(const float *w, int n, int k, uint16_t *packed);
/// Computes columns [col_begin, col_end) of Y with `kernel` (any range is correct; threads take
/// disjoint ones). X is rounded to bf16 block by block in a per-thread scratch buffer.
void ck_gemm_bf16(ck_bf16_kernel kernel, const float *x, int m, int k, const uint16_t *packed, const float *bias,
                  float *y, int n, int col_begin, int col_end, int accumulate);

/// Attention's products for one (image, head) pair in bf16 (attention_bf16.c); the caller does the
/// softmax between them in fp32. `scratch`: ck_attention_bf16_scratch_count(keys, head_dim) values,
/// 64-byte aligned, for the packed kᵀ and then v. Return 0, or -1 (nothing written) when `kernel`
/// does not run here or keys or head_dim exceed CK_ATTENTION_BF16_MAX_WIDTH.
#define CK_ATTENTION_BF16_MAX_WIDTH 4096
size_t ck_attention_bf16_scratch_count(int keys, int head_dim);
/// s (queries × keys, dense) = scale·bf16(q)·bf16(k)ᵀ; q and k rows at strides ldq, ldk.
int ck_attention_bf16_logits(ck_bf16_kernel kernel, int queries, int keys, int head_dim, float scale, const float *q,
                             long ldq, const float *k, long ldk, uint16_t *scratch, float *s);
/// out (queries × head_dim, row stride ldo) = bf16(p)·bf16(v); p dense queries × keys, v rows at stride ldv.
int ck_attention_bf16_context(ck_bf16_kernel kernel, int queries, int keys, int head_dim, const float *p,
                              const float *v, long ldv, uint16_t *scratch, float *out, long ldo);

#endif
