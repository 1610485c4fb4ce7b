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


// MARK: bf16 inference GEMM (CKernelsBF16.h)
#include "CKernelsBF16.h"

#endif
