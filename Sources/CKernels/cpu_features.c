// What this CPU can run, read once from CPUID and XGETBV (CKernels.h: ck_cpu_features).
//
// A feature counts only when the CPU has it *and* the operating system saves its registers on a
// context switch (XCR0): a hypervisor may hide AVX-512 state even when CPUID lists the instructions.
#include <pthread.h>
#include <string.h>
#include "CKernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static int bit(unsigned reg, int n) { return (reg >> n) & 1; }

static void detect(ck_cpu_features_t *f) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned max_leaf = a;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);

    __get_cpuid(1, &a, &b, &c, &d);
    f->family = (int)((a >> 8) & 0xf) + (((a >> 8) & 0xf) == 0xf ? (int)((a >> 20) & 0xff) : 0);
    f->model = (int)((a >> 4) & 0xf) | (int)(((a >> 16) & 0xf) << 4);
    f->sse3 = bit(c, 0);
    f->ssse3 = bit(c, 9);
    f->sse4_1 = bit(c, 19);
    f->sse4_2 = bit(c, 20);
    int osxsave = bit(c, 27), cpu_avx = bit(c, 28), cpu_fma = bit(c, 12), cpu_f16c = bit(c, 29);

    // XCR0: bits 1-2 SSE/AVX state, 5-7 AVX-512 state, 17-18 AMX tile config and data.
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    int os_amx = (xcr0 & 0x60000) == 0x60000;

    f->avx = cpu_avx && os_avx;
    f->fma = cpu_fma && os_avx;
    f->f16c = cpu_f16c && os_avx;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f->avx2 = bit(b, 5) && os_avx;
        f->avx512f = bit(b, 16) && os_avx512;
        f->avx512dq = bit(b, 17) && os_avx512;
        f->avx512bw = bit(b, 30) && os_avx512;
        f->avx512vl = bit(b, 31) && os_avx512;
        f->avx512_vnni = bit(c, 11) && os_avx512;
        f->avx512_fp16 = bit(d, 23) && os_avx512;
        f->amx_bf16 = bit(d, 22) && os_amx;
        f->amx_tile = bit(d, 24) && os_amx;
        f->amx_int8 = bit(d, 25) && os_amx;
        __cpuid_count(7, 1, a, b, c, d);
        f->avx_vnni = bit(a, 4) && os_avx;
        f->avx512_bf16 = bit(a, 5) && os_avx512;
    }

    // Brand string: leaves 0x80000002-4, 16 bytes each, leading spaces trimmed.
    char brand[49] = {0};
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned leaf = 0; leaf < 3; leaf++) {
            __get_cpuid(0x80000002 + leaf, &a, &b, &c, &d);
            unsigned regs[4] = {a, b, c, d};
            memcpy(brand + 16 * leaf, regs, 16);
        }
    }
    const char *start = brand;
    while (*start == ' ') start++;
    strncpy(f->model_name, start, sizeof f->model_name - 1);
}
#else
static void detect(ck_cpu_features_t *f) { (void)f; }
#endif

static ck_cpu_features_t features;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void detect_once(void) { detect(&features); }

const ck_cpu_features_t *ck_cpu_features(void) {
    pthread_once(&once, detect_once);
    return &features;
}
