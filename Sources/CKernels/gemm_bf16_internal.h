// What gemm_bf16.c and gemm_amx.c share (not part of the module's interface).
#ifndef GEMM_BF16_INTERNAL_H
#define GEMM_BF16_INTERNAL_H
#include <stdint.h>
#include "CKernelsBF16.h"

#define BF16_PANEL CK_BF16_PANEL
#define BF16_GROUPS (BF16_PANEL / 16)  // 16-column groups per panel (one zmm, one AMX B tile)
#define BF16_K_ALIGN 32                // K padding: one AMX A tile row (64 bytes of bf16)

static inline int bf16_padded_k(int k) { return (k + BF16_K_ALIGN - 1) / BF16_K_ALIGN * BF16_K_ALIGN; }

/// Pairs-row q of 16-column group g (counted over all panels) in the packed weight, whose K is padded to kp.
static inline const uint16_t *bf16_group(const uint16_t *packed, int kp, int g, int q) {
    return packed + ((size_t)(g / BF16_GROUPS) * (kp / 2) + (size_t)q) * (2 * BF16_PANEL) + 32 * (g % BF16_GROUPS);
}

/// y[i][c] = (add ? y[i][c] : 0) + acc[i][c - c0] + (bias ? bias[c] : 0) for rows [0, rows), columns
/// [lo, hi) of a 16-column block starting at column c0; acc has 16 floats per row. Plain C (the AMX
/// model must run on any CPU).
static inline void bf16_store_block(const float *acc, int rows, int c0, int lo, int hi, float *y, long ldy,
                                    const float *bias, int add) {
    for (int i = 0; i < rows; i++)
        for (int c = lo; c < hi; c++) {
            float v = acc[i * 16 + (c - c0)] + (bias ? bias[c] : 0.f);
            y[i * ldy + c] = add ? y[i * ldy + c] + v : v;
        }
}

/// ck_gemm_bf16 with row strides of its own for x (ldx ≥ k) and y (ldy ≥ n): attention's operands
/// are one head's columns of the qkv rows (gemm_bf16.c).
void bf16_gemm_strided(ck_bf16_kernel kernel, const float *x, long ldx, int m, int k, const uint16_t *packed,
                       const float *bias, float *y, long ldy, int n, int col_begin, int col_end, int accumulate);

/// The AMX kernel over one block of X already in bf16: xb holds `rows` rows rounded up to 32 (the
/// extra rows zero) with leading dimension ldxb and K padded to kp (zeros). gemm_amx.c.
void bf16_amx_block(const uint16_t *xb, long ldxb, int rows, int kp, const uint16_t *packed, int n, const float *bias,
                    float *y, long ldy, int col_begin, int col_end, int add);
/// The same arithmetic with every tile instruction done in C (the software model).
void bf16_amx_model_block(const uint16_t *xb, long ldxb, int rows, int kp, const uint16_t *packed, int n,
                          const float *bias, float *y, long ldy, int col_begin, int col_end, int add);
#endif
