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

#endif
