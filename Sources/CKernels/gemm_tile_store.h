// The store of one MR×(16·NV) tile of Y, shared by the fp32 (gemm.c) and bf16 (gemm_bf16.c)
// inference kernels: Y[i][lo, hi) = acc + bias, or Y += acc + bias with `add`. Lanes [lo, hi) of the
// panel: full vectors inside, masked ones at a ragged edge, so the store never touches a column
// outside the caller's range. Inlined into each kernel's tile function (its accumulators stay in
// registers); the includer defines NV, the zmm vectors per tile row.
#ifndef GEMM_TILE_STORE_H
#define GEMM_TILE_STORE_H
#include <immintrin.h>

__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), always_inline)) static inline void
ck_store_tile(const int rows, __m512 acc[][NV], const float *bias, float *y, long ldy, int add, int lo, int hi) {
    __mmask16 mask[NV];
    for (int v = 0; v < NV; v++) {
        int a = lo - 16 * v, e = hi - 16 * v;
        a = a < 0 ? 0 : (a > 16 ? 16 : a);
        e = e < 0 ? 0 : (e > 16 ? 16 : e);
        mask[v] = (__mmask16)(e > a ? ((1u << e) - 1u) & ~((1u << a) - 1u) : 0u);
    }
    __m512 b[NV];
    for (int v = 0; v < NV; v++) b[v] = bias ? _mm512_maskz_loadu_ps(mask[v], bias + 16 * v) : _mm512_setzero_ps();
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < NV; v++) {
            float *out = y + i * ldy + 16 * v;
            __m512 r = _mm512_add_ps(acc[i][v], b[v]);
            if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask[v], out));
            _mm512_mask_storeu_ps(out, mask[v], r);
        }
}
#endif
