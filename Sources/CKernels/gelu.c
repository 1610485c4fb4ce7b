#include <string.h>
#include "CKernels.h"

// Runtime dispatch needs ifunc (ELF, glibc); elsewhere the baseline build alone is compiled.
#if defined(__x86_64__) && defined(__linux__)
#define DISPATCHED __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define DISPATCHED
#endif

/// FastMath.exp: e^x, relative error below 2e-7 on [-87, 88], inputs outside clamped.
static inline float fast_exp(float x) {
    const float lo = -87.0f, hi = 88.0f, magic = 12582912.0f;  // 1.5 · 2^23
    float xc = x < lo ? lo : (x > hi ? hi : x);
    float shifted = xc * 1.44269504f + magic;
    float n = shifted - magic;
    float r = (xc - n * 0.69314575f) - n * 1.4286068e-6f;
    float p = 1.0f / 5040;
    p = __builtin_fmaf(p, r, 1.0f / 720);
    p = __builtin_fmaf(p, r, 1.0f / 120);
    p = __builtin_fmaf(p, r, 1.0f / 24);
    p = __builtin_fmaf(p, r, 1.0f / 6);
    p = __builtin_fmaf(p, r, 0.5f);
    p = __builtin_fmaf(p, r, 1.0f);
    p = __builtin_fmaf(p, r, 1.0f);
    unsigned shiftedBits, magicBits, bits;
    memcpy(&shiftedBits, &shifted, 4);
    memcpy(&magicBits, &magic, 4);
    bits = (shiftedBits - magicBits + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/// GELUOp.cdf: Φ(x) through FastMath.erfcNonNegative (Numerical Recipes' Chebyshev fit).
static inline float normal_cdf(float x) {
    float z = __builtin_fabsf(x) * 0.70710677f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = __builtin_fmaf(p, t, -0.82215223f);
    p = __builtin_fmaf(p, t, 1.48851587f);
    p = __builtin_fmaf(p, t, -1.13520398f);
    p = __builtin_fmaf(p, t, 0.27886807f);
    p = __builtin_fmaf(p, t, -0.18628806f);
    p = __builtin_fmaf(p, t, 0.09678418f);
    p = __builtin_fmaf(p, t, 0.37409196f);
    p = __builtin_fmaf(p, t, 1.00002368f);
    p = __builtin_fmaf(p, t, -1.26551223f);
    float e = t * fast_exp(-z * z + p);
    return x >= 0 ? 1 - 0.5f * e : 0.5f * e;
}

DISPATCHED
void ck_gelu_forward(const float *restrict x, float *restrict y, long n) {
    for (long i = 0; i < n; i++) y[i] = x[i] * normal_cdf(x[i]);
}

DISPATCHED
void ck_gelu_in_place(float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = x[i] * normal_cdf(x[i]);
}

DISPATCHED
void ck_gelu_forward_derivative(const float *restrict x, float *restrict y, float *restrict d, long n) {
    for (long i = 0; i < n; i++) {
        float v = x[i], c = normal_cdf(v);
        y[i] = v * c;
        d[i] = c + v * (0.39894228f * fast_exp(-0.5f * v * v));
    }
}
