// Attention's two products for one (image, head) pair with bf16 operands (CKernelsBF16.h):
//   S = scale·(q·kᵀ)            q, k rounded to bf16, sums in fp32
//   out = P·v                   P (the caller's softmax of S) and v rounded to bf16, sums in fp32
// on the bf16 inference GEMM (gemm_bf16.c): kᵀ and v are packed per pair into the weight layout
// (48-column panels of VNNI pairs) and q, P are rounded by the GEMM's driver, as a Linear's input is.
//
// Why: at ViT-B's 197 tokens and head width 64 the fp32 path (two ck_sgemm calls per pair) was ~12%
// of a bf16 ViT-B/16 forward on Zen 4 whose Linear GEMMs run at the vdpbf16ps rate; these products
// are 4% of its FLOPs. PyTorch's bf16 autocast rounds the same operands.
#include <string.h>
#include "CKernelsBF16.h"
#include "gemm_bf16_internal.h"

#define PANEL BF16_PANEL
#define MAX_WIDTH CK_ATTENTION_BF16_MAX_WIDTH   // a row of k or two rows of v rounded on the stack

#define AHEAD 8           // rows of k or v asked for ahead of their rounding

static int panels_of(int n) { return (n + PANEL - 1) / PANEL; }

/// One head's row of k or v lies in a different qkv row (3·width floats apart), mostly out of L2:
/// asked for AHEAD rows early, its misses overlap the rounding of the rows before it.
static inline void prefetch_row(const float *x, int width) {
    for (int c = 0; c < width; c += 16) __builtin_prefetch(x + c, 0, 3);
    __builtin_prefetch(x + width - 1, 0, 3);
}

size_t ck_attention_bf16_scratch_count(int keys, int head_dim) {
    size_t key_panel = ck_gemm_bf16_packed_count(keys, head_dim), value_panel = ck_gemm_bf16_packed_count(head_dim, keys);
    return key_panel > value_panel ? key_panel : value_panel;
}

/// Rounds one row of n floats to bf16 with the kernel's conversion (the AMX model runs everywhere,
/// so it uses the software rounding, which gives the same bits).
static void round_row(ck_bf16_kernel kernel, const float *x, int n, uint16_t *out) {
    if (kernel == CK_BF16_AMX_MODEL) for (int j = 0; j < n; j++) out[j] = ck_bf16_round(x[j]);
    else ck_bf16_round_hardware(x, out, n);
}

/// packed ← the weight layout of W = k (keys × head_dim, row stride ldk): panel p, pair row q,
/// column j holds the 32-bit pair (k[48p + j][2q], k[48p + j][2q + 1]), so one key's rounded row is
/// scattered down its column, one pair per row q.
static void pack_keys(ck_bf16_kernel kernel, const float *k, long ldk, int keys, int head_dim, uint16_t *packed) {
    const int kp = bf16_padded_k(head_dim), pairs = kp / 2;
    uint32_t *dst = (uint32_t *)packed;
    uint16_t row[MAX_WIDTH + 32] __attribute__((aligned(64)));
    memset(row, 0, sizeof(uint16_t) * (size_t)kp);
    for (int j = 0; j < panels_of(keys) * PANEL; j++) {
        uint32_t *column = dst + (size_t)(j / PANEL) * pairs * PANEL + j % PANEL;
        if (j + AHEAD < keys) prefetch_row(k + (size_t)(j + AHEAD) * ldk, head_dim);
        if (j < keys) round_row(kernel, k + (size_t)j * ldk, head_dim, row);
        else memset(row, 0, sizeof(uint16_t) * (size_t)head_dim);
        for (int q = 0; q < pairs; q++) {
            uint32_t pair;
            memcpy(&pair, row + 2 * q, 4);
            column[(size_t)q * PANEL] = pair;
        }
    }
}

/// packed ← the weight layout of W = vᵀ (head_dim × keys; v is keys × head_dim, row stride ldv):
/// pair row q of panel p interleaves v's rows 2q and 2q + 1 over columns 48p … 48p + 47.
static void pack_values(ck_bf16_kernel kernel, const float *v, long ldv, int keys, int head_dim, uint16_t *packed) {
    const int kp = bf16_padded_k(keys), pairs = kp / 2, width = panels_of(head_dim) * PANEL;
    uint16_t even[MAX_WIDTH + PANEL] __attribute__((aligned(64))), odd[MAX_WIDTH + PANEL] __attribute__((aligned(64)));
    memset(even + head_dim, 0, sizeof(uint16_t) * (size_t)(width - head_dim));
    memset(odd + head_dim, 0, sizeof(uint16_t) * (size_t)(width - head_dim));
    for (int q = 0; q < pairs; q++) {
        for (int r = 2 * q + AHEAD; r < 2 * q + AHEAD + 2 && r < keys; r++) prefetch_row(v + (size_t)r * ldv, head_dim);
        if (2 * q < keys) round_row(kernel, v + (size_t)(2 * q) * ldv, head_dim, even);
        else memset(even, 0, sizeof(uint16_t) * (size_t)head_dim);
        if (2 * q + 1 < keys) round_row(kernel, v + (size_t)(2 * q + 1) * ldv, head_dim, odd);
        else memset(odd, 0, sizeof(uint16_t) * (size_t)head_dim);
        for (int c0 = 0; c0 < width; c0 += PANEL) {
            uint32_t *dst = (uint32_t *)packed + ((size_t)(c0 / PANEL) * pairs + q) * PANEL;
            for (int j = 0; j < PANEL; j++) dst[j] = (uint32_t)even[c0 + j] | (uint32_t)odd[c0 + j] << 16;  // little-endian pair
        }
    }
}

int ck_attention_bf16_logits(ck_bf16_kernel kernel, int queries, int keys, int head_dim, float scale, const float *q,
                             long ldq, const float *k, long ldk, uint16_t *scratch, float *s) {
    if (keys > MAX_WIDTH || head_dim > MAX_WIDTH || !ck_bf16_kernel_runs(kernel)) return -1;
    pack_keys(kernel, k, ldk, keys, head_dim, scratch);
    bf16_gemm_strided(kernel, q, ldq, queries, head_dim, scratch, NULL, s, keys, keys, 0, keys, 0);
    // The scale after the sum, as the fp32 path's alpha (a power of two at head widths 16, 64, 256: exact).
    for (size_t i = 0; i < (size_t)queries * keys; i++) s[i] *= scale;
    return 0;
}

int ck_attention_bf16_context(ck_bf16_kernel kernel, int queries, int keys, int head_dim, const float *p,
                              const float *v, long ldv, uint16_t *scratch, float *out, long ldo) {
    if (keys > MAX_WIDTH || head_dim > MAX_WIDTH || !ck_bf16_kernel_runs(kernel)) return -1;
    pack_values(kernel, v, ldv, keys, head_dim, scratch);
    bf16_gemm_strided(kernel, p, keys, queries, keys, scratch, NULL, out, ldo, head_dim, 0, head_dim, 0);
    return 0;
}
