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

/// Φ(x), and g = e^(−x²/2) through `gauss`, by Abramowitz & Stegun's 7.1.26 (Hastings' fit):
/// erfc(z) ≈ t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·e^(−z²), t = 1/(1 + p·z), z = |x|/√2,
/// |error| ≤ 1.5e-7 for z ≥ 0. e^(−z²) = e^(−x²/2) is also the normal density's exponential, so
/// GELU and its derivative together cost one exp.
static inline float normal_cdf(float x, float *gauss) {
    float z = __builtin_fabsf(x) * 0.70710677f;
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float p = 1.061405429f;
    p = __builtin_fmaf(p, t, -1.453152027f);
    p = __builtin_fmaf(p, t, 1.421413741f);
    p = __builtin_fmaf(p, t, -0.284496736f);
    p = __builtin_fmaf(p, t, 0.254829592f);
    float g = fast_exp(-0.5f * x * x);
    *gauss = g;
    float e = t * p * g;
    return x >= 0 ? 1 - 0.5f * e : 0.5f * e;
}

DISPATCHED
void ck_gelu_forward(const float *restrict x, float *restrict y, long n) {
    for (long i = 0; i < n; i++) {
        float g;
        y[i] = x[i] * normal_cdf(x[i], &g);
    }
}

DISPATCHED
void ck_gelu_in_place(float *x, long n) {
    for (long i = 0; i < n; i++) {
        float g;
        x[i] = x[i] * normal_cdf(x[i], &g);
    }
}

DISPATCHED
void ck_gelu_forward_derivative(const float *restrict x, float *restrict y, float *restrict d, long n) {
    for (long i = 0; i < n; i++) {
        float v = x[i], g, c = normal_cdf(v, &g);
        y[i] = v * c;
        d[i] = c + v * (0.39894228f * g);
    }
}
