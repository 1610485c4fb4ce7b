// bf16 rounding (the software model and the hardware conversion) and the one place that decides
// which bf16 kernel this process runs (CKernelsBF16.h).
#include <stdatomic.h>
#include <string.h>
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <unistd.h>
#include <sys/syscall.h>
#endif

uint16_t ck_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t exponent = u & 0x7F800000u, mantissa = u & 0x007FFFFFu;
    if (exponent == 0x7F800000u && mantissa) return (uint16_t)((u >> 16) | 0x0040u);  // NaN: quiet, truncated
    if (exponent == 0) return (uint16_t)((u >> 16) & 0x8000u);                         // subnormal or zero: ±0
    // Adding 0x7FFF carries into bit 16 exactly when the dropped half is above one half, or at one
    // half when bit 16 is odd (the extra 1): ties go to even. Overflow rounds to ±Inf, as it must.
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float ck_bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#if defined(__x86_64__)
#define AVX512BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16")))

AVX512BF16 void ck_bf16_round_hardware(const float *x, uint16_t *out, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 tail = (__mmask16)((1u << (n - i)) - 1u);
        __m256i r = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, x + i));
        _mm256_mask_storeu_epi16(out + i, tail, r);
    }
}

// Linux hands a process the AMX tile state only on request; without it the first tile
// instruction raises SIGILL. The permission is process-wide, so one request suffices.
static int amx_permitted(void) {
#if defined(__linux__)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return 0;
#endif
}

// The CPU's features come from the one CPUID reader (cpu_features.c; flags there are set only when
// the OS saves the state too: zmm for AVX-512, the tile data for AMX).
static ck_bf16_kernel decide(void) {
    const ck_cpu_features_t *f = ck_cpu_features();
    int avx512 = f->avx512f && f->avx512vl && f->avx512bw && f->avx512dq;
    if (!(avx512 && f->avx512_bf16)) return CK_BF16_NONE;  // the AMX kernel's conversions use AVX512-BF16 too
    if (f->amx_tile && f->amx_bf16 && amx_permitted()) return CK_BF16_AMX;
    return CK_BF16_AVX512;
}
#else
void ck_bf16_round_hardware(const float *x, uint16_t *out, long n) {
    for (long i = 0; i < n; i++) out[i] = ck_bf16_round(x[i]);
}
static ck_bf16_kernel decide(void) { return CK_BF16_NONE; }
#endif

ck_bf16_kernel ck_bf16_best_kernel(void) {
    // Racing first calls both decide the same answer (the permission request is idempotent).
    static _Atomic int decided = -1;
    int kernel = atomic_load(&decided);
    if (kernel < 0) atomic_store(&decided, kernel = (int)decide());
    return (ck_bf16_kernel)kernel;
}

int ck_bf16_kernel_runs(ck_bf16_kernel kernel) {
    ck_bf16_kernel best = ck_bf16_best_kernel();
    switch (kernel) {
    case CK_BF16_AMX_MODEL: return 1;
    case CK_BF16_AMX: return best == CK_BF16_AMX;
    case CK_BF16_AVX512: return best == CK_BF16_AVX512 || best == CK_BF16_AMX;
    default: return 0;
    }
}
