// The training GEMM's driver (CKernels.h: ck_sgemm): C = alpha·op(A)·op(B) + beta·C.
//
// Why our own: OpenBLAS picks its kernels by a CPU list compiled into the library, and Debian's
// 0.3.21 does not know Sapphire-Rapids-class Xeons: it falls back to SSE3 ("Prescott") and the
// training step runs 2-3× slower (docs/PERFORMANCE.md). These kernels are picked by CPUID.
//
// Loop order (the inference kernel's, gemm.c, with op(B) packed per call):
//   column blocks of ≤ PACK_FLOATS / kc columns → K blocks of KC → pack op(B)'s block into
//   nr-wide k-major panels (sgemm_pack.c) → MC-row blocks of A → panels → tiles of mr rows (micro-kernel).
// Where op(B) of every K block fits PACK_FLOATS together, all are packed first and the K loop moves
// inside the MC-row loop (C's rows stay in cache between K blocks; same tiles, so same bits).
// A is not packed: a tile broadcasts op(A)(i, k) straight from A, row-major or transposed.
// The first K block applies beta and adds the bias (ck_sgemm's bias); later blocks add to C.
// Each tile's C rows are prefetched before its product runs (prefetch_tile_of_c).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"
#include "sgemm_kernels.h"
#include "gemm_prefetch.h"

#define KC 128                       // k per packed block: a 48-wide panel (24 KB) stays in L1
#define PACK_FLOATS (256 * 480)      // packed op(B) block: at most 480 KB, inside L2 on every target CPU
#define MC_TILES 8                   // rows per A block = 8 tiles (the inference kernel's 64 rows)
#define SMALL_PACK 4096              // floats of packed op(B) kept on the stack (16 KB)

bool ck_gemm_isa_supported(ck_gemm_isa isa) {
    const ck_cpu_features_t *f = ck_cpu_features();
    switch (isa) {
    case CK_GEMM_AVX512: return f->avx512f && f->avx512vl && f->avx512bw && f->avx512dq && f->fma;
    case CK_GEMM_AVX2: return f->avx2 && f->fma;
    case CK_GEMM_PORTABLE: return true;
    }
    return false;
}

ck_gemm_isa ck_gemm_best_isa(void) {
    if (ck_gemm_isa_supported(CK_GEMM_AVX512)) return CK_GEMM_AVX512;
    if (ck_gemm_isa_supported(CK_GEMM_AVX2)) return CK_GEMM_AVX2;
    return CK_GEMM_PORTABLE;
}

const char *ck_gemm_isa_name(ck_gemm_isa isa) {
    switch (isa) {
    case CK_GEMM_AVX512: return "avx512";
    case CK_GEMM_AVX2: return "avx2";
    case CK_GEMM_PORTABLE: return "portable";
    }
    return "unknown";
}

static int round_up(int x, int to) { return (x + to - 1) / to * to; }

static bool prefetch_c_enabled = true;
void ck_sgemm_set_prefetch_c(bool enabled) { prefetch_c_enabled = enabled; }
bool ck_sgemm_prefetch_c(void) { return prefetch_c_enabled; }
static bool k_resident_enabled = true;
void ck_sgemm_set_k_resident(bool enabled) { k_resident_enabled = enabled; }
bool ck_sgemm_k_resident(void) { return k_resident_enabled; }

// prefetch_tile_of_c (gemm_prefetch.h): in a training step C is mostly a fresh activation or
// gradient buffer (fc1's 3200×512 output, its input gradient) in DRAM; perf on Zen 4 put 20% of the
// 32-wide tile's samples outside its k loop before the prefetch, against 7% where C was in L2.

/// The micro-kernel that pads C's n columns least (narrow C: attention's 13-50 columns); on a tie
/// the wider one, which loads less per FMA.
static const ck_microkernel *choose_kernel(ck_gemm_isa isa, int n) {
    const ck_microkernel *list = isa == CK_GEMM_AVX512 ? ck_sgemm_avx512_kernels
                               : isa == CK_GEMM_AVX2   ? ck_sgemm_avx2_kernels
                                                       : ck_sgemm_portable_kernels;
    const ck_microkernel *best = list;
    for (const ck_microkernel *k = list + 1; k->nr > 0; k++)
        if (round_up(n, k->nr) < round_up(n, best->nr)) best = k;
    return best;
}

/// C = beta·C + bias (k = 0 or alpha = 0: the product adds nothing). beta = 0 does not read C.
static void scale_c(int m, int n, float beta, const float *bias, float *c, long ldc) {
    for (int i = 0; i < m; i++) {
        float *row = c + (size_t)i * ldc;
        if (bias) for (int j = 0; j < n; j++) row[j] = beta != 0 ? __builtin_fmaf(beta, row[j], bias[j]) : bias[j];
        else if (beta == 0) memset(row, 0, sizeof(float) * n);
        else for (int j = 0; j < n; j++) row[j] *= beta;
    }
}

/// What every block of one ck_sgemm call shares.
typedef struct {
    const ck_tile_fn *tiles;
    int mr, nr;
    bool trans_a;
    const float *a;
    long lda;
    float alpha, beta;
    const float *bias;
    float *c;
    long ldc;
} gemm_call;

/// Rows [i0, i0 + mc) × columns [j0, j0 + nc) of C over the K block [k0, k0 + kc), whose op(B)
/// is packed at `packed` (nr-wide panels of kc rows): panels → tiles of mr rows.
static void multiply_block(const gemm_call *g, int i0, int mc, int j0, int nc, int k0, int kc, const float *packed) {
    const int mr = g->mr, nr = g->nr;
    float block_beta = k0 == 0 ? g->beta : 1.0f;
    const float *block_bias = k0 == 0 && g->bias ? g->bias + j0 : NULL;
    for (int p = 0; p * nr < nc; p++) {
        int cols = nc - p * nr < nr ? nc - p * nr : nr;
        const float *panel = packed + (size_t)p * kc * nr;
        for (int r0 = i0; r0 < i0 + mc; r0 += mr) {
            int rows = i0 + mc - r0 < mr ? i0 + mc - r0 : mr;
            const float *tile_a = g->trans_a ? g->a + (size_t)k0 * g->lda + r0 : g->a + (size_t)r0 * g->lda + k0;
            float *tile_c = g->c + (size_t)r0 * g->ldc + j0 + p * nr;
            if (prefetch_c_enabled) prefetch_tile_of_c(tile_c, g->ldc, rows, cols);
            g->tiles[rows](tile_a, g->lda, panel, kc, tile_c, g->ldc, g->alpha, block_beta,
                           block_bias ? block_bias + p * nr : NULL, cols);
        }
    }
}

int ck_sgemm(ck_gemm_isa isa, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
             const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
             const float *bias) {
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0 || alpha == 0) { scale_c(m, n, beta, bias, c, ldc); return 0; }
    const ck_microkernel *kernel = choose_kernel(isa, n);
    const int mr = kernel->mr, nr = kernel->nr, mc_rows = mr * MC_TILES;
    const int kc_max = k < KC ? k : KC;
    // Column block: as many whole panels as fit PACK_FLOATS at this kc, split evenly over n.
    int panels_fit = PACK_FLOATS / kc_max / nr;
    if (panels_fit < 1) panels_fit = 1;
    int panels = (n + nr - 1) / nr, blocks = (panels + panels_fit - 1) / panels_fit;
    int nc_max = (panels + blocks - 1) / blocks * nr;
    // Several K blocks whose packed op(B) fits the buffer together (fc2's K = 512 at n = 128, the
    // input gradient of fc1): pack them all, then take each block of A's rows through every K
    // block, so its rows of C stay in L1/L2 between K blocks instead of being read back from L3
    // (or DRAM) once per K block. Same tiles with the same arguments, in another order: same bits.
    const bool whole_k = k > KC && k_resident_enabled && (size_t)k * nc_max <= PACK_FLOATS;
    // Small products (attention's per-head GEMMs, thousands per step) pack on the stack: malloc
    // and free cost as much as a 13×13×32 product.
    size_t floats = (size_t)round_up((whole_k ? k : kc_max) * nc_max, 16);
    float small[SMALL_PACK] __attribute__((aligned(64)));
    float *packed = floats <= SMALL_PACK ? small : aligned_alloc(64, floats * sizeof(float));
    if (!packed) return -1;
    const gemm_call g = {kernel->tile[trans_a ? 1 : 0], mr, nr, trans_a, a, lda, alpha, beta, bias, c, ldc};

    for (int j0 = 0; j0 < n; j0 += nc_max) {
        int nc = n - j0 < nc_max ? n - j0 : nc_max;
        if (whole_k) {
            const size_t block_floats = (size_t)round_up(nc, nr);   // per row of k: the block's panels side by side
            for (int k0 = 0; k0 < k; k0 += KC)
                ck_sgemm_pack_b(trans_b, b, ldb, k0, k - k0 < KC ? k - k0 : KC, j0, nc, nr, packed + k0 * block_floats);
            for (int i0 = 0; i0 < m; i0 += mc_rows)
                for (int k0 = 0; k0 < k; k0 += KC)
                    multiply_block(&g, i0, m - i0 < mc_rows ? m - i0 : mc_rows, j0, nc, k0, k - k0 < KC ? k - k0 : KC,
                                   packed + k0 * block_floats);
            continue;
        }
        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = k - k0 < KC ? k - k0 : KC;
            ck_sgemm_pack_b(trans_b, b, ldb, k0, kc, j0, nc, nr, packed);
            for (int i0 = 0; i0 < m; i0 += mc_rows)
                multiply_block(&g, i0, m - i0 < mc_rows ? m - i0 : mc_rows, j0, nc, k0, kc, packed);
        }
    }
    if (packed != small) free(packed);
    return 0;
}
