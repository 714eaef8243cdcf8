// See include/camx.h. Loop nest per call (one thread, one block of C):
//   SDF_MB rows at a time (256): for each outer K slice (K split into equal slices of at most
//   SDF_KB = 2048, multiples of 32) the SDF_MB x slice block of A is converted to bf16 once into a
//   per-thread buffer (<= 1 MiB, L2); then for SDF_NC columns (256), each pair of 16-column B panels
//   (2 x 16 x slice bf16), all 32-row strips of the A block: the micro-kernel updates 32 x 32 outputs
//   (2 x 2 AMX tiles, or 4 x (8 x 32) AVX512-BF16 blocks) over the whole slice. B streams from memory:
//   the next pair is prefetched while the current one is used.
// Measured on the micro-kernel alone (one core): both operands in L1 ~100% of the bare tdpbf16ps rate;
// B in L1 and A from L2 60-70%; both from L2 ~30%, which is why B pairs are reused across strips.
// Inner K slices of 256 (B pair in L1, C tiles loaded and stored every 256 K values) measured ~4%
// slower than accumulating over the whole slice in an interleaved harness: the C round trips and
// the pipeline drain at each tile store cost more than B's L1 residency saves.
// C accumulates in a per-thread buffer of 32 x 32 fp32 blocks (4 KiB each, contiguous: a tile's 16
// rows never share L1 sets or pages with another's) and is written out with the bias, a residual,
// GEGLU, bf16 conversion or transposition (NCHW output) in that pass: per column block when K is one
// outer slice (the buffer is then 256 x 256 fp32, L2; a row-wide buffer for N = 10240 was 10 MiB and
// cost ~25% on the GEGLU projections), else once per row block. Writing a block's C out in slices
// between the next block's micro-kernel calls (to overlap its memory traffic) measured 10-15% slower.
// AVX work placed between micro-kernel calls does not overlap with the AMX work on this machine
// (single core, interleaved harness): prefetching C's destination lines for writing during the
// compute cut the store pass from ~10% to ~5% of the GEMM time but slowed the compute part by as
// much; a software-pipelined attention (the softmax of one 32-row strip between the QK^T / PV
// micro-kernel calls of the next) took 1.07-1.19x the time of the sequential one. Non-temporal C
// stores halve the store pass, but then the next layer reads its input from memory instead of L3,
// so they are not used. SDF_KB 512 / 1024 and SDF_MB 128 measured no better than 2048 / 256.
// Packed A rows are padded by one cache line: power-of-two row strides put a tile's 16 rows into 2 L1
// sets. The direct convolution (SDF_CONV_KC; 512, 1152 and the whole K measured the same) and the
// attention's P V keep inner K slices of 256.
// Measured on one core (2026-11-22, single-core harnesses; the AMX unit's rate alternated between
// ~0.9 and ~2.2 TFLOP/s within seconds, so only interleaved pairs count): amx_conv_block with all
// operands in L1 reaches 46-55% of the bare rate when called for 8 k-steps (C tiles loaded and stored
// per call) and 76-78% for 36; yet whole-K slices against 256 in the whole convolution were within the
// noise both ways (bench conv, 128-1280 channels). The direct convolution's store pass takes ~20% of
// its time (128 -> 128 channels; without it 1.2-1.3x faster) and that is data movement: a contiguous
// copy of the same bytes took as long as the stride-32 gathers, and 16 x 16 in-register transposes
// instead of the gathers were slower (0.8-1.0x). So computing C^T (weights as the A operand, NCHW
// tiles stored directly) would not remove it; only narrower (bf16) activations between layers would.
// In the attention the softmax is 33-42% of a 32-row strip's time at 4096 keys; a degree-5 exp2 with
// magic-number rounding made the softmax only 1.12x faster (and changes bits), so it is not used.
#include "camx.h"
#include "ckernels.h"
#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/mman.h>
#include <immintrin.h>
#include <math.h>

#ifndef SDF_KC
#define SDF_KC 256
#endif
#ifndef SDF_CONV_KC
#define SDF_CONV_KC 256
#endif
#ifndef SDF_KB
#define SDF_KB 2048
#endif
#ifndef SDF_MB
#define SDF_MB 256
#endif
#ifndef SDF_NC
#define SDF_NC 256
#endif

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16,avx512bw,avx512vl")))
#define AVX_TARGET __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))
#define F32_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int round_up(int a, int m) { return (a + m - 1) / m * m; }

// ---------------------------------------------------------------------------------------------
// Detection

static int g_hw_tier = -1, g_tier = -1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(void) {
    unsigned a, b, c, d;
    int hw = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27))) {          // OSXSAVE
        uint64_t xcr0 = xgetbv0();
        int os_avx512 = (xcr0 & 0xe6) == 0xe6;                          // SSE, AVX, opmask, ZMM
        int os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);             // XTILECFG, XTILEDATA
        unsigned b7 = 0, d7 = 0, a71 = 0;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) { b7 = b; d7 = d; }
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) a71 = a;
        int avx512f = (b7 >> 16) & 1, avx512bw = (b7 >> 30) & 1, avx512vl = (b7 >> 31) & 1;
        int avx512bf16 = (a71 >> 5) & 1;
        int amx_bf16 = (d7 >> 22) & 1, amx_tile = (d7 >> 24) & 1;
        if (os_avx512 && avx512f && avx512bw && avx512vl && avx512bf16) {
            hw = 1;
            if (os_amx && amx_tile && amx_bf16) {
                // ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 (process-wide permission).
                if (syscall(SYS_arch_prctl, 0x1023, 18) == 0) hw = 2;
            }
        }
    }
    g_hw_tier = hw;
    int t = hw;
    const char *e = getenv("SDFLOW_BF16_TIER");
    if (e) {
        int want = hw;
        if (!strcmp(e, "none") || !strcmp(e, "0")) want = 0;
        else if (!strcmp(e, "avx512") || !strcmp(e, "1")) want = 1;
        else if (!strcmp(e, "amx") || !strcmp(e, "2")) want = 2;
        t = want < hw ? want : hw;
    }
    g_tier = t;
}

int sdf_amx_init(void) { pthread_once(&g_once, detect); return g_tier; }
int sdf_bf16_hw_tier(void) { pthread_once(&g_once, detect); return g_hw_tier; }

// ---------------------------------------------------------------------------------------------
// Conversions

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-8f;
        memcpy(&u, &v, 4); u |= sign;
    } else if (e == 31) {
        u = sign | 0x7f800000u | (m << 13);
    } else {
        u = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f; memcpy(&f, &u, 4); return f;
}

// n fp32 -> bf16 (nearest even), AVX-512 BF16.
AVX_TARGET static void cvt_row_avx(const float *src, uint16_t *dst, int n) {
    int j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512 lo = _mm512_loadu_ps(src + j), hi = _mm512_loadu_ps(src + j + 16);
        _mm512_storeu_si512((void *)(dst + j), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    if (j < n) {
        int r = n - j;
        __mmask16 mlo = (__mmask16)(r >= 16 ? 0xffff : ((1u << r) - 1));
        __mmask16 mhi = (__mmask16)(r <= 16 ? 0 : ((1u << (r - 16)) - 1));
        __m512 lo = _mm512_maskz_loadu_ps(mlo, src + j), hi = _mm512_maskz_loadu_ps(mhi, src + j + 16);
        __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        _mm512_mask_storeu_epi16(dst + j, (__mmask32)(r >= 32 ? 0xffffffffu : ((1u << r) - 1)), v);
    }
}

// One row of a weight (dtype 0/1/2), n elements, to bf16.
static void cvt_row(const void *src, int dtype, uint16_t *dst, int n) {
    if (dtype == 2) { memcpy(dst, src, (size_t)n * 2); return; }
    if (dtype == 1) {
        const uint16_t *s = (const uint16_t *)src;
        for (int j = 0; j < n; j++) dst[j] = f32_to_bf16(f16_to_f32(s[j]));
        return;
    }
    if (sdf_bf16_hw_tier() >= 1) { cvt_row_avx((const float *)src, dst, n); return; }
    const float *s = (const float *)src;
    for (int j = 0; j < n; j++) dst[j] = f32_to_bf16(s[j]);
}

void sdf_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    if (sdf_bf16_hw_tier() >= 1) {
        while (n > 0) {
            const int c = n > (1u << 30) ? (1 << 30) : (int)n;
            cvt_row_avx(src, dst, c);
            src += c; dst += c; n -= (size_t)c;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}

static inline float load_any(const void *w, int dtype, size_t i) {
    if (dtype == 0) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    if (dtype == 1) return f16_to_f32(h);
    uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
}

// ---------------------------------------------------------------------------------------------
// Packing B

static int g_scalar_pack;   // sdf_bf16_set_scalar_pack: the portable loop even where AVX-512 exists

void sdf_bf16_set_scalar_pack(int on) { g_scalar_pack = on; }

size_t sdf_bf16_packed_size(int N, int K) {
    if (N <= 0 || K <= 0) return 0;
    return (size_t)round_up(N, 16) * (size_t)round_up(K, 32) * 2;
}

// One 16-row panel with AVX-512: rows [0, nv) of w (row stride ldw elements of `dtype`), K columns,
// into `out` (Kp * 16 bf16, the layout in camx.h); rows nv..15 and columns K..Kp-1 are zeros. Per
// 32-wide K chunk the 16 rows are converted to bf16 (f16 and bf16 exactly as the scalar path: f16 ->
// f32 is exact and never subnormal in f32; f32 by the same instruction as cvt_row_avx), kept as a
// 16 x 16 block of bf16 pairs, and written out transposed (pair r of row j -> output row r, slot j).
AVX_TARGET static void pack_panel_avx(const void *w, int dtype, int nv, int K, int Kp, size_t ldw, uint16_t *out) {
    const size_t es = dtype == 0 ? 4 : 2;
    uint32_t blk[16][16] __attribute__((aligned(64)));
    const __m512i gidx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(16));
    for (int k0 = 0; k0 < Kp; k0 += 32) {
        const int kv = imin(32, K - k0);
        const __mmask32 m32 = (__mmask32)(kv >= 32 ? 0xffffffffu : (kv <= 0 ? 0u : (1u << kv) - 1));
        const __mmask16 mlo = (__mmask16)(kv >= 16 ? 0xffff : (kv <= 0 ? 0 : (1u << kv) - 1));
        const __mmask16 mhi = (__mmask16)(kv >= 32 ? 0xffff : (kv <= 16 ? 0 : (1u << (kv - 16)) - 1));
        for (int j = 0; j < 16; j++) {
            __m512i v = _mm512_setzero_si512();
            if (j < nv && kv > 0) {
                const char *row = (const char *)w + ((size_t)j * ldw + (size_t)k0) * es;
                if (dtype == 2) {
                    v = _mm512_maskz_loadu_epi16(m32, row);
                } else if (dtype == 1) {
                    const __m512i h = _mm512_maskz_loadu_epi16(m32, row);
                    const __m512 lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
                    const __m512 hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
                    v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
                } else {
                    const __m512 lo = _mm512_maskz_loadu_ps(mlo, row), hi = _mm512_maskz_loadu_ps(mhi, row + 64);
                    v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
                }
            }
            _mm512_store_si512((void *)blk[j], v);
        }
        uint32_t *o = (uint32_t *)(out + (size_t)k0 * 16);
        for (int r = 0; r < 16; r++)
            _mm512_storeu_si512((void *)(o + r * 16), _mm512_i32gather_epi32(gidx, (const void *)&blk[0][r], 4));
    }
}

void sdf_bf16_pack_b(const void *w, int dtype, int N, int K, int ldw, uint16_t *packed) {
    if (N <= 0 || K <= 0) return;
    const int Kp = round_up(K, 32), Np = round_up(N, 16);
    const size_t es = dtype == 0 ? 4 : 2;
    if (sdf_bf16_hw_tier() >= 1 && !g_scalar_pack) {
        // Vectorized, the same bits as the scalar loop below: 0.8-0.9 vs 1.4-1.6 ns per element on a
        // 10240 x 1280 weight (one core; memory-bound there), 4-5x faster on small weights.
        for (int p = 0; p < Np / 16; p++)
            pack_panel_avx((const char *)w + (size_t)p * 16 * ldw * es, dtype, imin(16, N - p * 16), K, Kp,
                           (size_t)ldw, packed + (size_t)p * Kp * 16);
        return;
    }
    uint16_t *tmp = (uint16_t *)malloc((size_t)16 * Kp * 2);
    for (int p = 0; p < Np / 16; p++) {
        // the panel's 16 rows as bf16, [16][Kp] with zero padding
        for (int j = 0; j < 16; j++) {
            int n = p * 16 + j;
            uint16_t *t = tmp + (size_t)j * Kp;
            if (n < N) {
                cvt_row((const char *)w + (size_t)n * ldw * es, dtype, t, K);
                memset(t + K, 0, (size_t)(Kp - K) * 2);
            } else {
                memset(t, 0, (size_t)Kp * 2);
            }
        }
        // pair-transpose: out[r][j] (32-bit) = tmp[j][2r .. 2r+1]
        uint32_t *out = (uint32_t *)(packed + (size_t)p * Kp * 16);
        const uint32_t *t32 = (const uint32_t *)tmp;
        const int half = Kp / 2;
        for (int r = 0; r < half; r++)
            for (int j = 0; j < 16; j++) out[r * 16 + j] = t32[(size_t)j * half + r];
    }
    free(tmp);
}

// [K, N] f32 source: rows 2r and 2r+1, 16 columns, interleaved into one 64-byte panel row.
AVX_TARGET static void pack_bt_f32_avx(const float *w, int N, int K, int ldw, uint16_t *packed) {
    const int Kp = round_up(K, 32), Np = round_up(N, 16);
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int p = 0; p < Np / 16; p++) {
        int n0 = p * 16, nv = imin(16, N - n0);
        __mmask16 m = (__mmask16)(nv >= 16 ? 0xffff : ((1u << nv) - 1));
        uint16_t *out = packed + (size_t)p * Kp * 16;
        for (int r = 0; r < Kp / 2; r++) {
            int k0 = 2 * r, k1 = 2 * r + 1;
            __m512 lo = k0 < K ? _mm512_maskz_loadu_ps(m, w + (size_t)k0 * ldw + n0) : _mm512_setzero_ps();
            __m512 hi = k1 < K ? _mm512_maskz_loadu_ps(m, w + (size_t)k1 * ldw + n0) : _mm512_setzero_ps();
            __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);   // [lo0..lo15, hi0..hi15]
            _mm512_storeu_si512((void *)(out + r * 32), _mm512_permutexvar_epi16(idx, v));
        }
    }
}

void sdf_bf16_pack_bt(const void *w, int dtype, int N, int K, int ldw, uint16_t *packed) {
    if (N <= 0 || K <= 0) return;
    if (dtype == 0 && sdf_bf16_hw_tier() >= 1) { pack_bt_f32_avx((const float *)w, N, K, ldw, packed); return; }
    const int Kp = round_up(K, 32), Np = round_up(N, 16);
    for (int p = 0; p < Np / 16; p++) {
        uint16_t *out = packed + (size_t)p * Kp * 16;
        for (int k = 0; k < Kp; k++)
            for (int j = 0; j < 16; j++) {
                int n = p * 16 + j;
                uint16_t v = 0;
                if (n < N && k < K) {
                    if (dtype == 2) v = ((const uint16_t *)w)[(size_t)k * ldw + n];
                    else v = f32_to_bf16(load_any(w, dtype, (size_t)k * ldw + n));
                }
                out[(k / 2) * 32 + j * 2 + (k & 1)] = v;
            }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-thread buffers and tile configuration

static __thread uint16_t *tl_abuf;   // packed A block, MB x KC bf16 (grown on demand)
static __thread size_t tl_abuf_cap;
static __thread float *tl_cbuf;      // C block for edges, fp32 (grown on demand)
static __thread size_t tl_cbuf_cap;
static __thread int tl_tilecfg;

static void *grow(void *p, size_t *cap, size_t bytes) {
    if (bytes <= *cap && p) return p;
    free(p);
    // 2 MiB-aligned and MADV_HUGEPAGE from 2 MiB up: tile loads read rows kilobytes apart, and 4 KiB
    // pages made TLB misses cost 15-35% of the GEMM's speed.
    static int use_huge = -1;
    if (use_huge < 0) { const char *e = getenv("SDFLOW_HUGEPAGES"); use_huge = !(e && !strcmp(e, "0")); }
    const size_t huge = use_huge ? (size_t)2 << 20 : ((size_t)1 << 62);
    bytes = (bytes + 4095) & ~(size_t)4095;
    p = aligned_alloc(bytes >= huge ? huge : 4096, bytes >= huge ? (bytes + huge - 1) & ~(huge - 1) : bytes);
    if (p && bytes >= huge) madvise(p, (bytes + huge - 1) & ~(huge - 1), 14 /* MADV_HUGEPAGE */);
    *cap = p ? bytes : 0;
    return p;
}

typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) sdf_tilecfg;

AMX_TARGET static void amx_configure(void) {
    if (tl_tilecfg) return;
    sdf_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int i = 0; i < 8; i++) { cfg.colsb[i] = 64; cfg.rows[i] = 16; }
    _tile_loadconfig(&cfg);
    tl_tilecfg = 1;
}

// ---------------------------------------------------------------------------------------------
// A packing: rows [0, rows) of A (fp32, lda), columns [k0, k0 + kv), into abuf [rows_pad][kcp] bf16,
// zero-padded in k (up to kcp) and in rows (up to rows_pad).

AVX_TARGET static void pack_a(const float *A, int lda, int rows, int rows_pad, int k0, int kv, int kcp, int ldab,
                              uint16_t *abuf) {
    for (int r = 0; r < rows; r++) {
        uint16_t *d = abuf + (size_t)r * ldab;
        cvt_row_avx(A + (size_t)r * lda + k0, d, kv);
        for (int j = kv; j < kcp; j++) d[j] = 0;
    }
    if (rows_pad > rows) memset(abuf + (size_t)rows * ldab, 0, (size_t)(rows_pad - rows) * ldab * 2);
}

AVX_TARGET static void pack_a_bf16(const uint16_t *A, int lda, int rows, int rows_pad, int k0, int kv, int kcp, int ldab,
                                   uint16_t *abuf) {
    for (int r = 0; r < rows; r++) {
        uint16_t *d = abuf + (size_t)r * ldab;
        memcpy(d, A + (size_t)r * lda + k0, (size_t)kv * 2);
        for (int j = kv; j < kcp; j++) d[j] = 0;
    }
    if (rows_pad > rows) memset(abuf + (size_t)rows * ldab, 0, (size_t)(rows_pad - rows) * ldab * 2);
}

// Implicit im2col: A row p (an output pixel) is the channels-last patch of an NHWC image, K ordered
// (ky, kx, c): kh * kw runs of C contiguous floats (zeros outside the image).
typedef struct { const float *x; int H, W, C, kh, kw, stride, pt, pl, Wo; } conv_src;

AVX_TARGET static void pack_a_conv(const conv_src *cs, int p0, int rows, int rows_pad, int k0, int kv, int kcp,
                                   int ldab, uint16_t *abuf) {
    const int C = cs->C;
    for (int r = 0; r < rows; r++) {
        uint16_t *d = abuf + (size_t)r * ldab;
        const int p = p0 + r, oy = p / cs->Wo, ox = p % cs->Wo;
        int k = k0;
        while (k < k0 + kv) {
            const int seg = k / C, ci = k % C, len = imin(C - ci, k0 + kv - k);
            const int ky = seg / cs->kw, kx = seg % cs->kw;
            const int iy = oy * cs->stride - cs->pt + ky, ix = ox * cs->stride - cs->pl + kx;
            if (iy >= 0 && iy < cs->H && ix >= 0 && ix < cs->W)
                cvt_row_avx(cs->x + ((size_t)iy * cs->W + ix) * C + ci, d + (k - k0), len);
            else
                memset(d + (k - k0), 0, (size_t)len * 2);
            k += len;
        }
        for (int j = kv; j < kcp; j++) d[j] = 0;
    }
    if (rows_pad > rows) memset(abuf + (size_t)rows * ldab, 0, (size_t)(rows_pad - rows) * ldab * 2);
}

enum { INIT_LOAD = 0, INIT_ZERO = 1 };

// ---------------------------------------------------------------------------------------------
// AMX micro-kernels: 32 rows x 32 (or 16) columns. Tiles 0-3: C, 4-5: A, 6-7: B.

#define AMX_INIT_2(c, ldc_b, ldc, init, two)                                                  \
    do {                                                                                     \
        if (init == INIT_ZERO) {                                                             \
            _tile_zero(0); _tile_zero(2); if (two) { _tile_zero(1); _tile_zero(3); }         \
        } else {                                                                             \
            _tile_loadd(0, c, ldc_b); _tile_loadd(2, c + 16 * ldc, ldc_b);                   \
            if (two) { _tile_loadd(1, c + 16, ldc_b); _tile_loadd(3, c + 16 * ldc + 16, ldc_b); } \
        }                                                                                    \
    } while (0)

AMX_TARGET static void amx_block(const uint16_t *a, int lda, int kcp, const uint16_t *b0, const uint16_t *b1,
                                 float *c, int ldc, int init) {
    const long lda_b = (long)lda * 2, ldc_b = (long)ldc * 4;
    const int ksteps = kcp / 32;
    const uint16_t *a1 = a + 16 * (size_t)lda;
    if (b1) {
        AMX_INIT_2(c, ldc_b, ldc, init, 1);
        for (int s = 0; s < ksteps; s++) {
            _tile_loadd(4, a + 32 * s, lda_b);
            _tile_loadd(6, b0 + 512 * s, 64);
            _tile_loadd(7, b1 + 512 * s, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_loadd(5, a1 + 32 * s, lda_b);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(0, c, ldc_b); _tile_stored(1, c + 16, ldc_b);
        _tile_stored(2, c + 16 * ldc, ldc_b); _tile_stored(3, c + 16 * ldc + 16, ldc_b);
    } else {
        AMX_INIT_2(c, ldc_b, ldc, init, 0);
        for (int s = 0; s < ksteps; s++) {
            _tile_loadd(4, a + 32 * s, lda_b);
            _tile_loadd(5, a1 + 32 * s, lda_b);
            _tile_loadd(6, b0 + 512 * s, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(2, 5, 6);
        }
        _tile_stored(0, c, ldc_b); _tile_stored(2, c + 16 * ldc, ldc_b);
    }
}

// ---------------------------------------------------------------------------------------------
// AVX512-BF16 micro-kernel: 8 rows x 32 (or 16) columns, 16 zmm accumulators.

#define AVX_ROWS 8
static inline __attribute__((always_inline)) AVX_TARGET void avx_block_np(
        const int NP, const uint16_t *a, int lda, int kcp, const uint16_t *b0, const uint16_t *b1,
        float *c, int ldc, int init) {
    __m512 acc[AVX_ROWS][2];
    for (int i = 0; i < AVX_ROWS; i++)
        for (int q = 0; q < NP; q++) {
            if (init == INIT_ZERO) acc[i][q] = _mm512_setzero_ps();
            else acc[i][q] = _mm512_loadu_ps(c + (size_t)i * ldc + 16 * q);
        }
    const int pairs = kcp / 2;
    const uint32_t *a32 = (const uint32_t *)a;
    const int lda32 = lda / 2;
    for (int p = 0; p < pairs; p++) {
        __m512bh vb0 = (__m512bh)_mm512_loadu_si512((const void *)(b0 + 32 * p));
        __m512bh vb1 = NP > 1 ? (__m512bh)_mm512_loadu_si512((const void *)(b1 + 32 * p)) : vb0;
        for (int i = 0; i < AVX_ROWS; i++) {
            __m512bh va = (__m512bh)_mm512_set1_epi32((int)a32[(size_t)i * lda32 + p]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], va, vb0);
            if (NP > 1) acc[i][1] = _mm512_dpbf16_ps(acc[i][1], va, vb1);
        }
    }
    for (int i = 0; i < AVX_ROWS; i++)
        for (int q = 0; q < NP; q++) _mm512_storeu_ps(c + (size_t)i * ldc + 16 * q, acc[i][q]);
}

AVX_TARGET static void avx_block(const uint16_t *a, int lda, int kcp, const uint16_t *b0, const uint16_t *b1,
                                 float *c, int ldc, int init) {
    for (int r = 0; r < 32; r += AVX_ROWS) {
        if (b1) avx_block_np(2, a + (size_t)r * lda, lda, kcp, b0, b1, c + (size_t)r * ldc, ldc, init);
        else avx_block_np(1, a + (size_t)r * lda, lda, kcp, b0, b1, c + (size_t)r * ldc, ldc, init);
    }
}

// ---------------------------------------------------------------------------------------------
// Driver (tiers 1 and 2)

typedef void (*block_fn)(const uint16_t *, int, int, const uint16_t *, const uint16_t *, float *, int, int);

// 2^t for t <= 0 on 16 lanes: t = n + f, |f| <= 1/2, 2^f by its degree-7 Taylor polynomial (relative
// error < 1e-8 before rounding), scaled by 2^n; t below -125 counts as -125 (see below). Shared by the
// softmaxes (fp32 and bf16 attention) and GELU.
F32_TARGET static inline __m512 exp2_16(__m512 t) {
    // t is clamped at -125: results stay normal floats (~2^-125 instead of 0 or a subnormal), and a
    // subnormal result costs a microcode assist (~100+ cycles): a GEGLU store with many large |gate|
    // values ran 4x slower for it.
    t = _mm512_max_ps(t, _mm512_set1_ps(-125.0f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.5252733804e-5f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393e-4f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108665e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650696e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718056e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// max(s[0 .. valid)) on 16 lanes (valid >= 1).
F32_TARGET static inline float row_max16(const float *s, int valid) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 16 <= valid; j += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + j));
    if (j < valid) vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(vm, (__mmask16)((1u << (valid - j)) - 1), s + j));
    return _mm512_reduce_max_ps(vm);
}

// gelu(x) = x/2 (1 + erf(x / sqrt 2)) on 16 lanes, erf by Abramowitz & Stegun 7.1.26 (absolute error
// <= 1.5e-7, the formula of CKernels' fp32 GEGLU and of PyTorch's vectorized CPU erf).
AVX_TARGET static inline __m512 gelu16(__m512 x) {
    const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
    const __m512 a = _mm512_abs_ps(z);
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
    __m512 y = _mm512_set1_ps(1.061405429f);
    y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(-1.453152027f));
    y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(1.421413741f));
    y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(-0.284496736f));
    y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(0.254829592f));
    y = _mm512_mul_ps(y, t);
    const __m512 e = exp2_16(_mm512_mul_ps(_mm512_mul_ps(a, a), _mm512_set1_ps(-1.44269504088896341f)));
    __m512 erfa = _mm512_fnmadd_ps(y, e, _mm512_set1_ps(1.0f));                 // erf(|z|)
    const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    erfa = _mm512_mask_sub_ps(erfa, neg, _mm512_setzero_ps(), erfa);
    return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(erfa, _mm512_set1_ps(1.0f)));
}

// How a GEMM's fp32 results are written.
typedef struct {
    const float *bias;          // per output column (interleaved [value 16 | gate 16] order with geglu)
    const float *res; long ldr; // residual added element-wise, [m, n] row-major, or NULL
    int trans_out;              // C[n * ldc + m] (NCHW output planes; fp32; a residual has C's layout)
    int geglu;                  // column blocks of 32 are [value 16 | gate 16]: writes value * gelu(gate)
                                // to column n / 2 (16 columns per block)
    int c_bf16;                 // C is bf16 (nearest even)
} epi_t;

AVX_TARGET static inline void store16(void *C, int c_bf16, size_t idx, __mmask16 m, __m512 v) {
    if (c_bf16) _mm256_mask_storeu_epi16((uint16_t *)C + idx, m, (__m256i)_mm512_cvtneps_pbh(v));
    else _mm512_mask_storeu_ps((float *)C + idx, m, v);
}

// Writes a row block's blocked C (32 x 32 fp32 blocks, [strip][pair]) to C rows [mb, mb + mrows),
// columns [n0, n0 + ncols) with the epilogue `e`.
AVX_TARGET static void store_c(const float *cb, int npairs, int mrows, int ncols, void *Cv, int ldc, int mb, int n0,
                               const epi_t *e) {
    const float *bias = e->bias;
    if (e->trans_out) {
        // One output plane (column) at a time, its rows contiguous: 16 rows of a 32 x 32 block are a
        // stride-32 gather from the (L2-resident) C buffer.
        float *C = (float *)Cv;
        const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32(32));
        for (int j = 0; j < ncols; j++) {
            const __m512 vb = _mm512_set1_ps(bias ? bias[n0 + j] : 0.0f);
            float *dst = C + (size_t)(n0 + j) * ldc + mb;
            const float *rs = e->res ? e->res + (size_t)(n0 + j) * e->ldr + mb : NULL;
            const float *col = cb + (size_t)(j / 32) * 1024 + j % 32;
            for (int r = 0; r < mrows; r += 16) {
                const __mmask16 m = (__mmask16)(mrows - r >= 16 ? 0xffff : ((1u << (mrows - r)) - 1));
                const float *src = col + (size_t)(r / 32) * npairs * 1024 + (r % 32) * 32;
                __m512 v = _mm512_add_ps(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, src, 4), vb);
                if (rs) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, rs + r));
                _mm512_mask_storeu_ps(dst + r, m, v);
            }
        }
        return;
    }
    for (int r = 0; r < mrows; r++) {
        const float *src = cb + (size_t)(r / 32) * npairs * 1024 + (r % 32) * 32;
        if (e->geglu) {
            const size_t row = (size_t)(mb + r) * ldc;
            for (int j0 = 0; j0 < ncols; j0 += 32) {
                __m512 v = _mm512_loadu_ps(src + (size_t)(j0 / 32) * 1024), g = _mm512_loadu_ps(src + (size_t)(j0 / 32) * 1024 + 16);
                if (bias) {
                    v = _mm512_add_ps(v, _mm512_loadu_ps(bias + n0 + j0));
                    g = _mm512_add_ps(g, _mm512_loadu_ps(bias + n0 + j0 + 16));
                }
                store16(Cv, e->c_bf16, row + (size_t)(n0 + j0) / 2, 0xffff, _mm512_mul_ps(v, gelu16(g)));
            }
            continue;
        }
        const size_t row = (size_t)(mb + r) * ldc + n0;
        const float *res = e->res ? e->res + (size_t)(mb + r) * e->ldr + n0 : NULL;
        for (int j0 = 0; j0 < ncols; j0 += 16) {
            const __mmask16 m = (__mmask16)(ncols - j0 >= 16 ? 0xffff : ((1u << (ncols - j0)) - 1));
            __m512 v = _mm512_maskz_loadu_ps(m, src + (size_t)(j0 / 32) * 1024 + (j0 % 32));
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + n0 + j0));
            if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + j0));
            store16(Cv, e->c_bf16, row + j0, m, v);
        }
    }
}


// The pair of B panels used after panels (pan0 + p, + 1) on K range [k0, k0 + kn): the next pair of the
// same K slice, else the first pair (pan0) of the next slice (slices of kstep end at k_end); NULL at the
// end. *nk: its K length.
static inline const uint16_t *next_pair(const uint16_t *B, int Kp, int pan0, int p, int npan, int k0, int kn, int k_end,
                                        int kstep, int *nk) {
    if (p + 2 < npan) { *nk = kn; return B + ((size_t)(pan0 + p + 2) * Kp + k0) * 16; }
    if (k0 + kn < k_end) { *nk = imin(kstep, k_end - k0 - kn); return B + ((size_t)pan0 * Kp + k0 + kn) * 16; }
    *nk = 0;
    return NULL;
}

// Prefetches into L1 row strip `strip`'s share (of `nstrips`) of a pair of B panels (nk K values at nx
// in the first panel, the second Kp * 16 elements further): B streams from memory, and a tile load
// that misses L1 stalls the multiplies, so the next pair is fetched while the current one is in use.
static inline void prefetch_pair_share(const uint16_t *nx, int nk, int Kp, int strip, int nstrips) {
    if (!nx) return;
    const int nlines = nk / 2, share = (2 * nlines + nstrips - 1) / nstrips;
    for (int l = strip * share, le = imin(2 * nlines, l + share); l < le; l++)
        _mm_prefetch((const char *)(l < nlines ? nx + (size_t)l * 32 : nx + (size_t)Kp * 16 + (size_t)(l - nlines) * 32),
                     _MM_HINT_T0);
}

// C (+)= A B^T on [m0, m1) x [n0, n1). A: fp32 rows (lda), or the implicit im2col `cs` when non-NULL.
// trans_out: C is stored transposed, element (m, n) at C[n * ldc + m] (NCHW output planes).
static void gemm_blocked(int tier, const void *A, int a_bf16, int lda, const conv_src *cs, const uint16_t *B, void *C,
                         int ldc, int K, const epi_t *e, int n0, int n1, int m0, int m1) {
    if (tier == 2) amx_configure();
    block_fn blk = tier == 2 ? amx_block : avx_block;
    const int Kp = round_up(K, 32);
    const int ncols = n1 - n0, npad = round_up(ncols, 16);
    // Outer K slices of equal size (multiples of 32) of at most SDF_KB: the packed A block
    // (SDF_MB x slice bf16, <= 1 MiB) stays in L2 while every column of the block is computed.
    const int nks = (Kp + SDF_KB - 1) / SDF_KB;
    const int kbs = round_up((Kp + nks - 1) / nks, 32);
    // Row stride of the packed A block: one cache line more than the slice, so that the 32 rows a
    // micro-kernel reads do not all fall into the same few L1 sets (power-of-two strides).
    const int ldab = kbs + 32;
    // With one K slice, each column block's C is finished (and written out) before the next one
    // starts, so the C buffer holds one column block (L2); with several, the whole row block.
    const int per_nc = nks == 1;
    const int npairs = per_nc ? (imin(SDF_NC, npad) + 31) / 32 : (npad + 31) / 32;
    for (int mb = m0; mb < m1; mb += SDF_MB) {
        const int mrows = imin(SDF_MB, m1 - mb);
        const int mpad = round_up(mrows, 32);
        tl_abuf = (uint16_t *)grow(tl_abuf, &tl_abuf_cap, (size_t)mpad * ldab * 2);
        // C in 32 x 32 fp32 blocks (4 KiB each, [strip][pair], row stride 32).
        tl_cbuf = (float *)grow(tl_cbuf, &tl_cbuf_cap, (size_t)mpad * npairs * 32 * 4);
        if (!tl_abuf || !tl_cbuf) return;
        float *cb = tl_cbuf;
        for (int kb = 0; kb < Kp; kb += kbs) {
            const int kbp = imin(kbs, Kp - kb);
            if (cs) pack_a_conv(cs, mb, mrows, mpad, kb, imin(kbp, K - kb), kbp, ldab, tl_abuf);
            else if (a_bf16) pack_a_bf16((const uint16_t *)A + (size_t)mb * lda, lda, mrows, mpad, kb, imin(kbp, K - kb), kbp, ldab, tl_abuf);
            else pack_a((const float *)A + (size_t)mb * lda, lda, mrows, mpad, kb, imin(kbp, K - kb), kbp, ldab, tl_abuf);
            // Column blocks of SDF_NC (that part of C, mpad x SDF_NC fp32, stays in L2); inside, one pair
            // of B panels is used for all the row strips of the A block (from L2) before the next pair,
            // each 32 x 32 C block accumulating in tiles over the whole slice.
            const int init = kb == 0 ? INIT_ZERO : INIT_LOAD;
            for (int nc = 0; nc < npad; nc += SDF_NC) {
                const int npan = imin(SDF_NC, npad - nc) / 16;
                for (int p = 0; p < npan; p += 2) {
                    const uint16_t *b0 = B + ((size_t)((n0 + nc) / 16 + p) * Kp + kb) * 16;
                    const uint16_t *b1 = p + 1 < npan ? b0 + (size_t)Kp * 16 : NULL;
                    float *c = cb + (size_t)(((per_nc ? 0 : nc) + p * 16) / 32) * 1024;
                    int nxk;
                    const uint16_t *nx = next_pair(B, Kp, (n0 + nc) / 16, p, npan, kb, kbp, kb + kbp, kbp, &nxk);
                    for (int r = 0; r < mpad; r += 32) {
                        prefetch_pair_share(nx, nxk, Kp, r / 32, mpad / 32);
                        blk(tl_abuf + (size_t)r * ldab, ldab, kbp, b0, b1, c + (size_t)(r / 32) * npairs * 1024, 32, init);
                    }
                }
                if (per_nc) store_c(cb, npairs, mrows, imin(SDF_NC, ncols - nc), C, ldc, mb, n0 + nc, e);
            }
        }
        if (!per_nc) store_c(cb, npairs, mrows, ncols, C, ldc, mb, n0, e);
    }
}

void sdf_bf16_gemm_ex(int tier, const void *A, int a_dtype, int lda, const uint16_t *packedB, void *C, int c_dtype,
                      int ldc, int M, int N, int K, const float *bias, const float *residual, int ldr, int geglu,
                      int n_begin, int n_end, int m_begin, int m_end) {
    const int hw = sdf_bf16_hw_tier();
    if (tier > hw) tier = hw;
    if (n_begin < 0) n_begin = 0;
    if (m_begin < 0) m_begin = 0;
    if (n_end > N) n_end = N;
    if (m_end > M) m_end = M;
    if (tier <= 0 || K <= 0 || n_begin >= n_end || m_begin >= m_end || (n_begin % 32) != 0) return;
    if (geglu && ((n_end - n_begin) % 32 != 0)) return;
    const epi_t e = { bias, geglu ? NULL : residual, ldr, 0, geglu, c_dtype == 2 };
    gemm_blocked(tier, A, a_dtype == 2, lda, NULL, packedB, C, ldc, K, &e, n_begin, n_end, m_begin, m_end);
}

void sdf_bf16_conv_gemm(int tier, const float *xt, int H, int W, int C, int kh, int kw, int stride,
                        int pad_top, int pad_left, int Ho, int Wo, const uint16_t *packedB, int O,
                        const float *bias, const float *res, float *y, int p_begin, int p_end, int n_begin, int n_end) {
    const int hw = sdf_bf16_hw_tier();
    if (tier > hw) tier = hw;
    const int P = Ho * Wo, K = C * kh * kw;
    if (p_begin < 0) p_begin = 0;
    if (n_begin < 0) n_begin = 0;
    if (p_end > P) p_end = P;
    if (n_end > O) n_end = O;
    if (p_begin >= p_end || n_begin >= n_end || tier <= 0 || K <= 0 || (n_begin % 16) != 0) return;
    conv_src cs = { xt, H, W, C, kh, kw, stride, pad_top, pad_left, Wo };
    const epi_t e = { bias, res, P, 1, 0, 0 };
    gemm_blocked(tier, NULL, 0, 0, &cs, packedB, y, P, K, &e, n_begin, n_end, p_begin, p_end);
}

// ---------------------------------------------------------------------------------------------
// Direct convolution (AMX, stride 1): A tiles are loaded straight from a zero-bordered NHWC bf16
// image, 16 consecutive output pixels of one row per tile (row stride C * 2 bytes), so there is no
// im2col and no A packing; K is ordered (ky, kx, c) in chunks of 32 channels.

// cn (<= 16) channels of one source row (channel j at x + j * stride, W pixels) into NHWC bf16:
// pixel sx goes to dst[(sx * up + u) * ldp + j] for u < up. With 16 channels, 16 pixels at a time by
// an in-register transpose (channel pairs interleaved into 32-bit words, then 4 x 4 word transposes
// in each 128-bit lane); the rest by gathers.
AVX_TARGET static void nhwc_block_bf16(const float *x, int cn, int stride, int W, int up, int ldp, uint16_t *dst) {
    int sx = 0;
    if (cn == 16) {
        static const int base[4] = { 0, 8, 4, 12 };   // first pixel of 128-bit lane l of a pair word vector
        for (; sx + 16 <= W; sx += 16) {
            __m512i r[8];
            for (int k = 0; k < 8; k++) {
                const __m256i z0 = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + (size_t)(2 * k) * stride + sx));
                const __m256i z1 = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + (size_t)(2 * k + 1) * stride + sx));
                // lanes: pixels 0-3, 8-11 (lo), 4-7, 12-15 (hi); word = channel 2k | channel 2k+1 << 16
                r[k] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi16(z0, z1)), _mm256_unpackhi_epi16(z0, z1), 1);
            }
            __m512i u[8];
            for (int g = 0; g < 2; g++) {
                const __m512i *q = r + 4 * g;
                const __m512i t0 = _mm512_unpacklo_epi32(q[0], q[1]), t1 = _mm512_unpackhi_epi32(q[0], q[1]);
                const __m512i t2 = _mm512_unpacklo_epi32(q[2], q[3]), t3 = _mm512_unpackhi_epi32(q[2], q[3]);
                u[4 * g + 0] = _mm512_unpacklo_epi64(t0, t2); u[4 * g + 1] = _mm512_unpackhi_epi64(t0, t2);
                u[4 * g + 2] = _mm512_unpacklo_epi64(t1, t3); u[4 * g + 3] = _mm512_unpackhi_epi64(t1, t3);
            }
            // Lane l of u[i] (u[i + 4]): channels 0-7 (8-15) of pixel base[l] + i.
            for (int i = 0; i < 4; i++) {
                __m128i lo[4], hi[4];
                lo[0] = _mm512_castsi512_si128(u[i]); hi[0] = _mm512_castsi512_si128(u[i + 4]);
                lo[1] = _mm512_extracti32x4_epi32(u[i], 1); hi[1] = _mm512_extracti32x4_epi32(u[i + 4], 1);
                lo[2] = _mm512_extracti32x4_epi32(u[i], 2); hi[2] = _mm512_extracti32x4_epi32(u[i + 4], 2);
                lo[3] = _mm512_extracti32x4_epi32(u[i], 3); hi[3] = _mm512_extracti32x4_epi32(u[i + 4], 3);
                for (int l = 0; l < 4; l++) {
                    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo[l]), hi[l], 1);
                    uint16_t *d = dst + (size_t)(sx + base[l] + i) * up * ldp;
                    for (int uu = 0; uu < up; uu++) _mm256_storeu_si256((__m256i *)(d + (size_t)uu * ldp), v);
                }
            }
        }
    }
    const __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32(stride));
    const __mmask16 m = (__mmask16)(cn >= 16 ? 0xffff : ((1u << cn) - 1));
    for (; sx < W; sx++) {
        const __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, lanes, x + sx, 4));
        for (int u = 0; u < up; u++) _mm256_mask_storeu_epi16(dst + ((size_t)sx * up + u) * ldp, m, v);
    }
}

static __thread float *tl_rows;      // sdf_nchw_to_nhwc_bf16_pad_ex: 16 transformed source rows, fp32
static __thread size_t tl_rows_cap;

// Logical input L[c, iy, ix] = f(x[c, iy / up, ix / up]), f(v) = v, or (a != NULL) the values
// sdf_scale_shift(v, a[c], b[c], silu) writes: exactly what Ops.groupNorm(+SiLU) then
// Ops.upsampleNearest2x would hold in memory, so the bf16 copy is the same bit for bit.
int sdf_nchw_to_nhwc_bf16_pad_ex(const float *x, int C, int H, int W, int up, const float *a, const float *b, int silu,
                                 int pt, int pl, int Hp, int Wp, uint16_t *out, int row_begin, int row_end) {
    if (up < 1) return 0;
    if (row_end > Hp) row_end = Hp;
    const int Hl = H * up, Wl = W * up;
    // 16 source rows (transformed, or copied) are staged with a padded stride: they are read back 16
    // pixels at a time by nhwc_block_bf16, and power-of-two strides would put all 16 rows in one L1 set.
    const int ldt = W + 16;
    tl_rows = (float *)grow(tl_rows, &tl_rows_cap, (size_t)16 * ldt * 4);
    if (!tl_rows) return 0;
    const size_t rowElems = (size_t)Wp * C;
    for (int r = row_begin; r < row_end; r++) {
        uint16_t *o = out + (size_t)r * rowElems;
        const int iy = r - pt;
        if (iy < 0 || iy >= Hl) { memset(o, 0, rowElems * 2); continue; }
        // An upsampled row equal to the previous one (same source row, already written by this call).
        if (r > row_begin && iy >= 1 && (iy - 1) / up == iy / up) { memcpy(o, o - rowElems, rowElems * 2); continue; }
        memset(o, 0, (size_t)pl * C * 2);
        const int right = Wp - pl - Wl;
        if (right > 0) memset(o + (size_t)(pl + Wl) * C, 0, (size_t)right * C * 2);
        const float *src = x + (size_t)(iy / up) * W;
        for (int c0 = 0; c0 < C; c0 += 16) {
            const int cn = imin(16, C - c0);
            const float *s = src + (size_t)c0 * H * W;
            for (int j = 0; j < cn; j++) {
                if (a) sdf_scale_shift(s + (size_t)j * H * W, tl_rows + (size_t)j * ldt, (size_t)W, a[c0 + j], b[c0 + j], silu);
                else memcpy(tl_rows + (size_t)j * ldt, s + (size_t)j * H * W, (size_t)W * 4);
            }
            nhwc_block_bf16(tl_rows, cn, ldt, W, up, C, o + (size_t)pl * C + c0);
        }
    }
    return 1;
}

// 32 pixels (two tiles of 16, A addresses a0 / a1, row stride lda_b bytes) x 32 (or 16) output
// channels over k-steps [s0, s1): koff[s] is k-step s's element offset from a pixel's base address.
AMX_TARGET static void amx_conv_block(const uint16_t *a0, const uint16_t *a1, long lda_b, const int *koff, int s0, int s1,
                                      const uint16_t *b0, const uint16_t *b1, float *c, int init) {
    const long ldc_b = 32 * 4;
    if (init == INIT_ZERO) { _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); }
    else { _tile_loadd(0, c, ldc_b); _tile_loadd(1, c + 16, ldc_b); _tile_loadd(2, c + 512, ldc_b); _tile_loadd(3, c + 528, ldc_b); }
    if (b1) {
        for (int s = s0; s < s1; s++) {
            const int o = koff[s];
            _tile_loadd(4, a0 + o, lda_b);
            _tile_loadd(6, b0 + 512 * (s - s0), 64);
            _tile_loadd(7, b1 + 512 * (s - s0), 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_loadd(5, a1 + o, lda_b);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    } else {
        for (int s = s0; s < s1; s++) {
            const int o = koff[s];
            _tile_loadd(4, a0 + o, lda_b);
            _tile_loadd(5, a1 + o, lda_b);
            _tile_loadd(6, b0 + 512 * (s - s0), 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(2, 5, 6);
        }
    }
    _tile_stored(0, c, ldc_b); _tile_stored(1, c + 16, ldc_b);
    _tile_stored(2, c + 512, ldc_b); _tile_stored(3, c + 528, ldc_b);
}

int sdf_bf16_conv_direct(const uint16_t *xpad, int Wp, int C, int kh, int kw, int Ho, int Wo,
                         const uint16_t *packedB, int O, const float *bias, const float *res, float *y, int p_begin, int p_end) {
    const int P = Ho * Wo, K = C * kh * kw;
    if (sdf_bf16_hw_tier() < 2 || C % 32 != 0 || Wo % 16 != 0 || K <= 0) return 0;
    if (p_begin < 0) p_begin = 0;
    if (p_end > P) p_end = P;
    if (p_begin >= p_end) return 1;
    amx_configure();
    const int ksteps = K / 32, Kp = K, npad = round_up(O, 16), npairs = (npad + 31) / 32;
    int *koff = (int *)malloc((size_t)ksteps * sizeof(int));
    if (!koff) return 0;
    for (int s = 0; s < ksteps; s++) {
        const int k = s * 32, seg = k / C, c0 = k % C;
        koff[s] = ((seg / kw) * Wp + seg % kw) * C + c0;
    }
    const long lda_b = (long)C * 2;
    for (int mb = p_begin; mb < p_end; mb += SDF_MB) {
        const int mrows = imin(SDF_MB, p_end - mb), mpad = round_up(mrows, 32);
        tl_cbuf = (float *)grow(tl_cbuf, &tl_cbuf_cap, (size_t)mpad * npairs * 32 * 4);
        if (!tl_cbuf) { free(koff); return 0; }
        float *cb = tl_cbuf;
        for (int nc = 0; nc < npad; nc += SDF_NC) {
            const int npan = imin(SDF_NC, npad - nc) / 16;
            for (int kc = 0; kc < ksteps; kc += SDF_CONV_KC / 32) {
                const int ke = imin(ksteps, kc + SDF_CONV_KC / 32);
                const int init = kc == 0 ? INIT_ZERO : INIT_LOAD;
                for (int p = 0; p < npan; p += 2) {
                    const uint16_t *b0 = packedB + ((size_t)(nc / 16 + p) * Kp + (size_t)kc * 32) * 16;
                    const uint16_t *b1 = p + 1 < npan ? b0 + (size_t)Kp * 16 : NULL;
                    float *c = cb + (size_t)((nc + p * 16) / 32) * 1024;
                    int nxk;
                    const uint16_t *nx = next_pair(packedB, Kp, nc / 16, p, npan, kc * 32, (ke - kc) * 32, ksteps * 32, SDF_CONV_KC, &nxk);
                    for (int r = 0; r < mpad; r += 32) {
                        prefetch_pair_share(nx, nxk, Kp, r / 32, mpad / 32);
                        const int pa = mb + r, pb = pa + 16 < p_end ? pa + 16 : pa;   // a lone last tile repeats
                        const uint16_t *a0 = xpad + ((size_t)(pa / Wo) * Wp + pa % Wo) * C;
                        const uint16_t *a1 = xpad + ((size_t)(pb / Wo) * Wp + pb % Wo) * C;
                        amx_conv_block(a0, a1, lda_b, koff, kc, ke, b0, b1, c + (size_t)(r / 32) * npairs * 1024, init);
                    }
                }
            }
        }
        const epi_t e = { bias, res, P, 1, 0, 0 };
        store_c(cb, npairs, mrows, O, y, P, mb, 0, &e);
    }
    free(koff);
    return 1;
}

// ---------------------------------------------------------------------------------------------
// Fused attention block

static __thread float *tl_sbuf;      // scores, rows_pad x lk fp32
static __thread size_t tl_sbuf_cap;
static __thread uint16_t *tl_pbuf;   // probabilities, rows_pad x ldp bf16 (the A operand of P . V)
static __thread size_t tl_pbuf_cap;
static __thread float *tl_obuf;      // rows_pad x dv_pad fp32
static __thread size_t tl_obuf_cap;

// p[j] = bf16(exp(scale * (s[j] - max))) for j < valid, 0 for valid <= j < kp; returns the sum of the
// fp32 exponentials.
AVX_TARGET static float softmax_row_bf16(const float *s, int valid, int kp, float scale, uint16_t *p) {
    const float m = row_max16(s, valid);
    const float sl = scale * 1.44269504088896341f;
    const __m512 vs = _mm512_set1_ps(sl), vms = _mm512_set1_ps(-m * sl);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int j = 0;
    for (; j + 32 <= valid; j += 32) {
        __m512 lo = exp2_16(_mm512_fmadd_ps(_mm512_loadu_ps(s + j), vs, vms));
        __m512 hi = exp2_16(_mm512_fmadd_ps(_mm512_loadu_ps(s + j + 16), vs, vms));
        acc0 = _mm512_add_ps(acc0, lo); acc1 = _mm512_add_ps(acc1, hi);
        _mm512_storeu_si512((void *)(p + j), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    for (; j < kp; j += 32) {
        int r = valid - j;
        __mmask16 mlo = (__mmask16)(r >= 16 ? 0xffff : (r <= 0 ? 0 : ((1u << r) - 1)));
        __mmask16 mhi = (__mmask16)(r >= 32 ? 0xffff : (r <= 16 ? 0 : ((1u << (r - 16)) - 1)));
        __m512 lo = _mm512_maskz_mov_ps(mlo, exp2_16(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(mlo, s + j), vs, vms)));
        __m512 hi = _mm512_maskz_mov_ps(mhi, exp2_16(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(mhi, s + j + 16), vs, vms)));
        acc0 = _mm512_add_ps(acc0, lo); acc1 = _mm512_add_ps(acc1, hi);
        _mm512_storeu_si512((void *)(p + j), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

int sdf_bf16_attention(int tier, const float *q, int ldq, int rows, int d, const uint16_t *packedK, int lk,
                        const uint16_t *packedV, int dv, float *out, int ldo, float scale, int causal_i0) {
    const int hw = sdf_bf16_hw_tier();
    if (tier > hw) tier = hw;
    if (tier <= 0) return 0;
    if (rows <= 0 || lk <= 0 || d <= 0 || dv <= 0) return 1;
    const int rows_pad = round_up(rows, 32), lkp = round_up(lk, 16), kp = round_up(lk, 32);
    // Row strides padded by one cache line (power-of-two strides put a tile's 16 rows into one L1 set).
    const int ldp = kp + 32, dvp = round_up(dv, 32), lds = lkp + 16;
    tl_sbuf = (float *)grow(tl_sbuf, &tl_sbuf_cap, (size_t)rows * lds * 4);
    const int dp = round_up(d, 32), ldqa = dp + 32;
    tl_pbuf = (uint16_t *)grow(tl_pbuf, &tl_pbuf_cap, (size_t)rows_pad * (ldp > ldqa ? ldp : ldqa) * 2);
    tl_obuf = (float *)grow(tl_obuf, &tl_obuf_cap, (size_t)rows_pad * round_up(dvp, 32) * 4);
    if (!tl_sbuf || !tl_pbuf || !tl_obuf) return 0;
    float *S = tl_sbuf, *O = tl_obuf;
    uint16_t *P = tl_pbuf;
    if (tier == 2) amx_configure();
    block_fn blk = tier == 2 ? amx_block : avx_block;
    // Q block to bf16 (the A operand of S = Q K^T), in the probability buffer (free until the softmax).
    pack_a(q, ldq, rows, rows_pad, 0, d, dp, ldqa, P);
    // S = Q K^T straight into S rows (lkp columns): each pair of K panels (32 keys x d) stays in L1
    // for all row strips.
    float *Sfull = S;
    const int kpan = lkp / 16;
    float *Sx = NULL;
    if (rows_pad > rows) {   // the last strip is partial: compute it into a padded copy
        tl_obuf = (float *)grow(tl_obuf, &tl_obuf_cap, (size_t)rows_pad * dvp * 4 + (size_t)32 * lds * 4);
        if (!tl_obuf) return 0;
        O = tl_obuf;
        Sx = tl_obuf + (size_t)rows_pad * dvp;
    }
    for (int pp = 0; pp < kpan; pp += 2) {
        const uint16_t *b0 = packedK + (size_t)pp * dp * 16;
        const uint16_t *b1 = pp + 1 < kpan ? b0 + (size_t)dp * 16 : NULL;
        for (int r = 0; r < rows_pad; r += 32) {
            float *c = r + 32 <= rows ? Sfull + (size_t)r * lds + pp * 16 : Sx + pp * 16;
            blk(P + (size_t)r * ldqa, ldqa, dp, b0, b1, c, lds, INIT_ZERO);
        }
    }
    if (Sx) {
        const int r0 = rows_pad - 32;
        memcpy(Sfull + (size_t)r0 * lds, Sx, (size_t)(rows - r0) * lds * 4);
    }
    // P = exp(scale (S - rowmax)) in bf16, row sums in fp32
    float sums[rows_pad];
    for (int i = 0; i < rows; i++) {
        int valid = causal_i0 >= 0 ? imin(lk, causal_i0 + i + 1) : lk;
        sums[i] = softmax_row_bf16(S + (size_t)i * lds, valid, kp, scale, P + (size_t)i * ldp);
    }
    if (rows_pad > rows) memset(P + (size_t)rows * ldp, 0, (size_t)(rows_pad - rows) * ldp * 2);
    // O = P V: K slices of SDF_KC, one pair of V panels (L1) for all row strips; O in 32 x 32 blocks
    // ([strip][pair], row stride 32).
    const int npan = round_up(dv, 16) / 16, npairs = (npan + 1) / 2;   // the panels packedV has
    for (int kc = 0; kc < kp; kc += SDF_KC) {
        const int kcp = imin(SDF_KC, kp - kc);
        const int init = kc == 0 ? INIT_ZERO : INIT_LOAD;
        for (int pp = 0; pp < npan; pp += 2) {
            const uint16_t *b0 = packedV + ((size_t)pp * kp + kc) * 16;
            const uint16_t *b1 = pp + 1 < npan ? b0 + (size_t)kp * 16 : NULL;
            for (int r = 0; r < rows_pad; r += 32)
                blk(P + (size_t)r * ldp + kc, ldp, kcp, b0, b1, O + ((size_t)(r / 32) * npairs + pp / 2) * 1024, 32, init);
        }
    }
    for (int i = 0; i < rows; i++) {
        const float inv = 1.0f / sums[i];
        const float *o = O + (size_t)(i / 32) * npairs * 1024 + (i % 32) * 32;
        float *dst = out + (size_t)i * ldo;
        for (int j = 0; j < dv; j++) dst[j] = o[(j / 32) * 1024 + (j % 32)] * inv;
    }
    return 1;
}

// ---------------------------------------------------------------------------------------------
// fp32 attention block (AVX-512F): the same fusion in fp32 with register-blocked FMA kernels.


// S[i, j0 .. j0 + 32) = sum_t q[i, t] kt[t, j0 ..] for 8 rows (row pointers; rows past the end
// repeat the last one and store into a scratch row).
F32_TARGET static inline void f32_qk_8x32(const float *const *q, int d, const float *kt, long ldk, float *const *S) {
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00,
           a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3], *q4 = q[4], *q5 = q[5], *q6 = q[6], *q7 = q[7];
    for (int t = 0; t < d; t++) {
        const __m512 k0 = _mm512_loadu_ps(kt + (size_t)t * ldk), k1 = _mm512_loadu_ps(kt + (size_t)t * ldk + 16);
        __m512 b;
        b = _mm512_set1_ps(q0[t]); a00 = _mm512_fmadd_ps(b, k0, a00); a01 = _mm512_fmadd_ps(b, k1, a01);
        b = _mm512_set1_ps(q1[t]); a10 = _mm512_fmadd_ps(b, k0, a10); a11 = _mm512_fmadd_ps(b, k1, a11);
        b = _mm512_set1_ps(q2[t]); a20 = _mm512_fmadd_ps(b, k0, a20); a21 = _mm512_fmadd_ps(b, k1, a21);
        b = _mm512_set1_ps(q3[t]); a30 = _mm512_fmadd_ps(b, k0, a30); a31 = _mm512_fmadd_ps(b, k1, a31);
        b = _mm512_set1_ps(q4[t]); a40 = _mm512_fmadd_ps(b, k0, a40); a41 = _mm512_fmadd_ps(b, k1, a41);
        b = _mm512_set1_ps(q5[t]); a50 = _mm512_fmadd_ps(b, k0, a50); a51 = _mm512_fmadd_ps(b, k1, a51);
        b = _mm512_set1_ps(q6[t]); a60 = _mm512_fmadd_ps(b, k0, a60); a61 = _mm512_fmadd_ps(b, k1, a61);
        b = _mm512_set1_ps(q7[t]); a70 = _mm512_fmadd_ps(b, k0, a70); a71 = _mm512_fmadd_ps(b, k1, a71);
    }
    _mm512_storeu_ps(S[0], a00); _mm512_storeu_ps(S[0] + 16, a01);
    _mm512_storeu_ps(S[1], a10); _mm512_storeu_ps(S[1] + 16, a11);
    _mm512_storeu_ps(S[2], a20); _mm512_storeu_ps(S[2] + 16, a21);
    _mm512_storeu_ps(S[3], a30); _mm512_storeu_ps(S[3] + 16, a31);
    _mm512_storeu_ps(S[4], a40); _mm512_storeu_ps(S[4] + 16, a41);
    _mm512_storeu_ps(S[5], a50); _mm512_storeu_ps(S[5] + 16, a51);
    _mm512_storeu_ps(S[6], a60); _mm512_storeu_ps(S[6] + 16, a61);
    _mm512_storeu_ps(S[7], a70); _mm512_storeu_ps(S[7] + 16, a71);
}

// O[i, 0 .. 32) (+)= sum_{j in [j0, j1)} P[i, j] v[j, 0 .. 32) for 8 rows (row pointers as above);
// v: a zero-padded 32-column panel.
F32_TARGET static inline void f32_pv_8x32(const float *const *P, int j0, int j1, const float *v, long ldv,
                                          float *const *O, int init) {
    __m512 a[8][2];
#define PV_INIT(i) do { if (init) { a[i][0] = _mm512_setzero_ps(); a[i][1] = _mm512_setzero_ps(); } \
                        else { a[i][0] = _mm512_loadu_ps(O[i]); a[i][1] = _mm512_loadu_ps(O[i] + 16); } } while (0)
    PV_INIT(0); PV_INIT(1); PV_INIT(2); PV_INIT(3); PV_INIT(4); PV_INIT(5); PV_INIT(6); PV_INIT(7);
#undef PV_INIT
    const float *p0 = P[0], *p1 = P[1], *p2 = P[2], *p3 = P[3], *p4 = P[4], *p5 = P[5], *p6 = P[6], *p7 = P[7];
    for (int j = j0; j < j1; j++) {
        const __m512 v0 = _mm512_loadu_ps(v + (size_t)j * ldv), v1 = _mm512_loadu_ps(v + (size_t)j * ldv + 16);
        __m512 b;
        b = _mm512_set1_ps(p0[j]); a[0][0] = _mm512_fmadd_ps(b, v0, a[0][0]); a[0][1] = _mm512_fmadd_ps(b, v1, a[0][1]);
        b = _mm512_set1_ps(p1[j]); a[1][0] = _mm512_fmadd_ps(b, v0, a[1][0]); a[1][1] = _mm512_fmadd_ps(b, v1, a[1][1]);
        b = _mm512_set1_ps(p2[j]); a[2][0] = _mm512_fmadd_ps(b, v0, a[2][0]); a[2][1] = _mm512_fmadd_ps(b, v1, a[2][1]);
        b = _mm512_set1_ps(p3[j]); a[3][0] = _mm512_fmadd_ps(b, v0, a[3][0]); a[3][1] = _mm512_fmadd_ps(b, v1, a[3][1]);
        b = _mm512_set1_ps(p4[j]); a[4][0] = _mm512_fmadd_ps(b, v0, a[4][0]); a[4][1] = _mm512_fmadd_ps(b, v1, a[4][1]);
        b = _mm512_set1_ps(p5[j]); a[5][0] = _mm512_fmadd_ps(b, v0, a[5][0]); a[5][1] = _mm512_fmadd_ps(b, v1, a[5][1]);
        b = _mm512_set1_ps(p6[j]); a[6][0] = _mm512_fmadd_ps(b, v0, a[6][0]); a[6][1] = _mm512_fmadd_ps(b, v1, a[6][1]);
        b = _mm512_set1_ps(p7[j]); a[7][0] = _mm512_fmadd_ps(b, v0, a[7][0]); a[7][1] = _mm512_fmadd_ps(b, v1, a[7][1]);
    }
    for (int i = 0; i < 8; i++) { _mm512_storeu_ps(O[i], a[i][0]); _mm512_storeu_ps(O[i] + 16, a[i][1]); }
}

// In place: s[j] = exp(scale (s[j] - max)) for j < valid, 0 for valid <= j < n; returns the sum.
F32_TARGET static float softmax_row_f32(float *s, int valid, int n, float scale) {
    const float mx = row_max16(s, valid);
    const float sl = scale * 1.44269504088896341f;
    const __m512 vs = _mm512_set1_ps(sl), vms = _mm512_set1_ps(-mx * sl);
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        const int r = valid - j;
        const __mmask16 m = (__mmask16)(r >= 16 ? 0xffff : (r <= 0 ? 0 : ((1u << r) - 1)));
        const __mmask16 mw = (__mmask16)(n - j >= 16 ? 0xffff : ((1u << (n - j)) - 1));
        __m512 e = _mm512_maskz_mov_ps(m, exp2_16(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, s + j), vs, vms)));
        acc = _mm512_add_ps(acc, e);
        _mm512_mask_storeu_ps(s + j, mw, e);
    }
    return _mm512_reduce_add_ps(acc);
}

static __thread float *tl_f32s;
static __thread size_t tl_f32s_cap;

// Row pointers of the 8-row group starting at i0 (of `rows`): inputs from `in` (row stride ldi; rows
// past the end repeat the last one), outputs into `out` (row stride ldo; rows past the end write to
// `scratch`).
static inline void row_group8(const float *in, int ldi, float *out, int ldo, float *scratch, int i0, int rows,
                              const float **ir, float **orow) {
    for (int i = 0; i < 8; i++) {
        const int r = i0 + i < rows ? i0 + i : rows - 1;
        ir[i] = in + (size_t)r * ldi;
        orow[i] = i0 + i < rows ? out + (size_t)(i0 + i) * ldo : scratch;
    }
}

size_t sdf_f32_attention_packed_floats(int lk, int d, int dv) {
    if (lk <= 0 || d < 0 || dv < 0) return 0;
    return (size_t)round_up(lk, 32) * d + (size_t)round_up(dv, 32) * lk;
}

void sdf_f32_attention_pack(const float *k, int ldk, const float *v, int ldv, int lk, int d, int dv, float *packed) {
    if (lk <= 0) return;
    float *kp = packed;
    for (int j0 = 0; j0 < lk; j0 += 32) {
        float *panel = kp + (size_t)(j0 / 32) * d * 32;
        const int cn = imin(32, lk - j0);
        for (int c = 0; c < cn; c++) {
            const float *row = k + (size_t)(j0 + c) * ldk;
            for (int t = 0; t < d; t++) panel[t * 32 + c] = row[t];
        }
        for (int c = cn; c < 32; c++)
            for (int t = 0; t < d; t++) panel[t * 32 + c] = 0.0f;
    }
    float *vp = kp + (size_t)round_up(lk, 32) * d;
    for (int c0 = 0; c0 < dv; c0 += 32) {
        float *panel = vp + (size_t)(c0 / 32) * lk * 32;
        const int cn = imin(32, dv - c0);
        for (int j = 0; j < lk; j++) {
            memcpy(panel + (size_t)j * 32, v + (size_t)j * ldv + c0, (size_t)cn * 4);
            if (cn < 32) memset(panel + (size_t)j * 32 + cn, 0, (size_t)(32 - cn) * 4);
        }
    }
}

static int f32_attention_avx2(const float *q, int ldq, int rows, int d, const float *packed, int lk, int dv,
                              float *out, int ldo, float scale, int causal_i0);

int sdf_f32_attention(const float *q, int ldq, int rows, int d, const float *packed, int lk, int dv,
                      float *out, int ldo, float scale, int causal_i0) {
    const int kind = sdf_f32_attention_kind();
    if (kind == 0) return 0;
    if (rows <= 0 || lk <= 0 || dv <= 0) return 1;
    if (kind == 1) return f32_attention_avx2(q, ldq, rows, d, packed, lk, dv, out, ldo, scale, causal_i0);
    const int lds = round_up(lk, 32) + 16, dvp = round_up(dv, 32);
    // scores (rows x lds), outputs (rows x dvp), one scratch row for the padding rows of a group
    tl_f32s = (float *)grow(tl_f32s, &tl_f32s_cap, ((size_t)rows * lds + (size_t)rows * dvp + (size_t)lds) * 4);
    if (!tl_f32s) return 0;
    float *S = tl_f32s, *O = tl_f32s + (size_t)rows * lds, *scratch = O + (size_t)rows * dvp;
    // S = Q K^T: one contiguous 32-key panel of K^T (d x 32, L1) for all row groups.
    for (int j0 = 0; j0 < lk; j0 += 32) {
        const float *kp = packed + (size_t)(j0 / 32) * d * 32;
        for (int i0 = 0; i0 < rows; i0 += 8) {
            const float *qr[8]; float *sr[8];
            row_group8(q, ldq, S + j0, lds, scratch, i0, rows, qr, sr);
            f32_qk_8x32(qr, d, kp, 32, sr);
        }
    }
    float sums[rows];
    for (int i = 0; i < rows; i++) {
        const int valid = causal_i0 >= 0 ? imin(lk, causal_i0 + i + 1) : lk;
        sums[i] = softmax_row_f32(S + (size_t)i * lds, valid, lk, scale);
    }
    // O = P V: key chunks of 128 of one 32-column V panel (16 KiB, L1).
    const float *vpack = packed + (size_t)round_up(lk, 32) * d;
    for (int jc = 0; jc < lk; jc += 128) {
        const int je = imin(lk, jc + 128);
        for (int c0 = 0; c0 < dv; c0 += 32) {
            const float *vp = vpack + (size_t)(c0 / 32) * lk * 32;
            for (int i0 = 0; i0 < rows; i0 += 8) {
                const float *pr[8]; float *orow[8];
                row_group8(S, lds, O + c0, dvp, scratch, i0, rows, pr, orow);
                f32_pv_8x32(pr, jc, je, vp, 32, orow, jc == 0);
            }
        }
    }
    for (int i = 0; i < rows; i++) {
        const float inv = 1.0f / sums[i];
        const float *o = O + (size_t)i * dvp;
        float *dst = out + (size_t)i * ldo;
        for (int j = 0; j < dv; j++) dst[j] = o[j] * inv;
    }
    return 1;
}

// ---------------------------------------------------------------------------------------------
// fp32 attention block on AVX2 + FMA (CPUs without AVX-512, e.g. AMD Zen 2): the same packing and
// fusion as above with 6 x 16 register blocks (12 ymm accumulators), two per 32-wide panel.

#define A2_TARGET __attribute__((target("avx2,fma")))

// 2^t on 8 lanes for t <= ~0: the polynomial of exp2_16, 2^n by the exponent bits (t >= -125).
A2_TARGET static inline __m256 exp2_8(__m256 t) {
    t = _mm256_max_ps(t, _mm256_set1_ps(-125.0f));
    const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(t, n);
    __m256 p = _mm256_set1_ps(1.5252733804e-5f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393e-4f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108665e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650696e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718056e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

A2_TARGET static inline float hsum8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

// S[i, 0 .. 16) = sum_t q[i, t] kt[t, 0 .. 16) for 6 rows (row pointers as in row_groups).
A2_TARGET static inline void f32_qk_6x16(const float *const *q, int d, const float *kt, long ldk, float *const *S) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
           a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3], *q4 = q[4], *q5 = q[5];
    for (int t = 0; t < d; t++) {
        const __m256 k0 = _mm256_loadu_ps(kt + (size_t)t * ldk), k1 = _mm256_loadu_ps(kt + (size_t)t * ldk + 8);
        __m256 b;
        b = _mm256_broadcast_ss(q0 + t); a00 = _mm256_fmadd_ps(b, k0, a00); a01 = _mm256_fmadd_ps(b, k1, a01);
        b = _mm256_broadcast_ss(q1 + t); a10 = _mm256_fmadd_ps(b, k0, a10); a11 = _mm256_fmadd_ps(b, k1, a11);
        b = _mm256_broadcast_ss(q2 + t); a20 = _mm256_fmadd_ps(b, k0, a20); a21 = _mm256_fmadd_ps(b, k1, a21);
        b = _mm256_broadcast_ss(q3 + t); a30 = _mm256_fmadd_ps(b, k0, a30); a31 = _mm256_fmadd_ps(b, k1, a31);
        b = _mm256_broadcast_ss(q4 + t); a40 = _mm256_fmadd_ps(b, k0, a40); a41 = _mm256_fmadd_ps(b, k1, a41);
        b = _mm256_broadcast_ss(q5 + t); a50 = _mm256_fmadd_ps(b, k0, a50); a51 = _mm256_fmadd_ps(b, k1, a51);
    }
    _mm256_storeu_ps(S[0], a00); _mm256_storeu_ps(S[0] + 8, a01);
    _mm256_storeu_ps(S[1], a10); _mm256_storeu_ps(S[1] + 8, a11);
    _mm256_storeu_ps(S[2], a20); _mm256_storeu_ps(S[2] + 8, a21);
    _mm256_storeu_ps(S[3], a30); _mm256_storeu_ps(S[3] + 8, a31);
    _mm256_storeu_ps(S[4], a40); _mm256_storeu_ps(S[4] + 8, a41);
    _mm256_storeu_ps(S[5], a50); _mm256_storeu_ps(S[5] + 8, a51);
}

// O[i, 0 .. 16) (+)= sum_{j in [j0, j1)} P[i, j] v[j, 0 .. 16) for 6 rows.
A2_TARGET static inline void f32_pv_6x16(const float *const *P, int j0, int j1, const float *v, long ldv,
                                         float *const *O, int init) {
    __m256 a[6][2];
    for (int i = 0; i < 6; i++) {
        a[i][0] = init ? _mm256_setzero_ps() : _mm256_loadu_ps(O[i]);
        a[i][1] = init ? _mm256_setzero_ps() : _mm256_loadu_ps(O[i] + 8);
    }
    const float *p0 = P[0], *p1 = P[1], *p2 = P[2], *p3 = P[3], *p4 = P[4], *p5 = P[5];
    for (int j = j0; j < j1; j++) {
        const __m256 v0 = _mm256_loadu_ps(v + (size_t)j * ldv), v1 = _mm256_loadu_ps(v + (size_t)j * ldv + 8);
        __m256 b;
        b = _mm256_broadcast_ss(p0 + j); a[0][0] = _mm256_fmadd_ps(b, v0, a[0][0]); a[0][1] = _mm256_fmadd_ps(b, v1, a[0][1]);
        b = _mm256_broadcast_ss(p1 + j); a[1][0] = _mm256_fmadd_ps(b, v0, a[1][0]); a[1][1] = _mm256_fmadd_ps(b, v1, a[1][1]);
        b = _mm256_broadcast_ss(p2 + j); a[2][0] = _mm256_fmadd_ps(b, v0, a[2][0]); a[2][1] = _mm256_fmadd_ps(b, v1, a[2][1]);
        b = _mm256_broadcast_ss(p3 + j); a[3][0] = _mm256_fmadd_ps(b, v0, a[3][0]); a[3][1] = _mm256_fmadd_ps(b, v1, a[3][1]);
        b = _mm256_broadcast_ss(p4 + j); a[4][0] = _mm256_fmadd_ps(b, v0, a[4][0]); a[4][1] = _mm256_fmadd_ps(b, v1, a[4][1]);
        b = _mm256_broadcast_ss(p5 + j); a[5][0] = _mm256_fmadd_ps(b, v0, a[5][0]); a[5][1] = _mm256_fmadd_ps(b, v1, a[5][1]);
    }
    for (int i = 0; i < 6; i++) { _mm256_storeu_ps(O[i], a[i][0]); _mm256_storeu_ps(O[i] + 8, a[i][1]); }
}

// In place: s[j] = exp(scale (s[j] - max)) for j < valid, 0 for valid <= j < n; returns the sum.
A2_TARGET static float softmax_row_avx2(float *s, int valid, int n, float scale) {
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= valid; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + j));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float mx = _mm_cvtss_f32(m4);
    for (; j < valid; j++) mx = s[j] > mx ? s[j] : mx;
    const float sl = scale * 1.44269504088896341f;
    const __m256 vs = _mm256_set1_ps(sl), vms = _mm256_set1_ps(-mx * sl);
    __m256 acc = _mm256_setzero_ps();
    for (j = 0; j + 8 <= valid; j += 8) {
        const __m256 e = exp2_8(_mm256_fmadd_ps(_mm256_loadu_ps(s + j), vs, vms));
        acc = _mm256_add_ps(acc, e);
        _mm256_storeu_ps(s + j, e);
    }
    if (j < valid) {
        float t[8];
        for (int l = 0; l < 8; l++) t[l] = j + l < valid ? s[j + l] : mx;
        _mm256_storeu_ps(t, exp2_8(_mm256_fmadd_ps(_mm256_loadu_ps(t), vs, vms)));
        for (int l = 0; l < 8 && j + l < n; l++) s[j + l] = j + l < valid ? t[l] : 0.0f;
        float tail = 0.0f;
        for (int l = 0; j + l < valid; l++) tail += t[l];
        acc = _mm256_add_ps(acc, _mm256_setr_ps(tail, 0, 0, 0, 0, 0, 0, 0));
        j += 8;
    }
    for (; j < n; j++) s[j] = 0.0f;
    return hsum8(acc);
}

// Row pointers of the 6-row group starting at i0 (see row_group8).
static inline void row_group6(const float *in, int ldi, float *out, int ldo, float *scratch, int i0, int rows,
                              const float **ir, float **orow) {
    for (int i = 0; i < 6; i++) {
        const int r = i0 + i < rows ? i0 + i : rows - 1;
        ir[i] = in + (size_t)r * ldi;
        orow[i] = i0 + i < rows ? out + (size_t)(i0 + i) * ldo : scratch;
    }
}

A2_TARGET static int f32_attention_avx2(const float *q, int ldq, int rows, int d, const float *packed, int lk, int dv,
                                        float *out, int ldo, float scale, int causal_i0) {
    const int lds = round_up(lk, 32) + 16, dvp = round_up(dv, 32);
    tl_f32s = (float *)grow(tl_f32s, &tl_f32s_cap, ((size_t)rows * lds + (size_t)rows * dvp + (size_t)lds) * 4);
    if (!tl_f32s) return 0;
    float *S = tl_f32s, *O = tl_f32s + (size_t)rows * lds, *scratch = O + (size_t)rows * dvp;
    for (int j0 = 0; j0 < lk; j0 += 32) {
        const float *kp = packed + (size_t)(j0 / 32) * d * 32;
        for (int c = 0; c < 32; c += 16) {
            for (int i0 = 0; i0 < rows; i0 += 6) {
                const float *qr[6]; float *sr[6];
                row_group6(q, ldq, S + j0 + c, lds, scratch, i0, rows, qr, sr);
                f32_qk_6x16(qr, d, kp + c, 32, sr);
            }
        }
    }
    float sums[rows];
    for (int i = 0; i < rows; i++) {
        const int valid = causal_i0 >= 0 ? imin(lk, causal_i0 + i + 1) : lk;
        sums[i] = softmax_row_avx2(S + (size_t)i * lds, valid, lk, scale);
    }
    const float *vpack = packed + (size_t)round_up(lk, 32) * d;
    for (int jc = 0; jc < lk; jc += 128) {
        const int je = imin(lk, jc + 128);
        for (int c0 = 0; c0 < dv; c0 += 32) {
            const float *vp = vpack + (size_t)(c0 / 32) * lk * 32;
            for (int c = 0; c < 32; c += 16) {
                for (int i0 = 0; i0 < rows; i0 += 6) {
                    const float *pr[6]; float *orow[6];
                    row_group6(S, lds, O + c0 + c, dvp, scratch, i0, rows, pr, orow);
                    f32_pv_6x16(pr, jc, je, vp + c, 32, orow, jc == 0);
                }
            }
        }
    }
    for (int i = 0; i < rows; i++) {
        const float inv = 1.0f / sums[i];
        const float *o = O + (size_t)i * dvp;
        float *dst = out + (size_t)i * ldo;
        for (int j = 0; j < dv; j++) dst[j] = o[j] * inv;
    }
    return 1;
}

static int g_f32_attention = -1;   // 0: none (sgemm path), 1: AVX2 + FMA, 2: AVX-512

static void detect_f32_attention(void) {
    int k = 0;
    if (sdf_bf16_hw_tier() >= 1) k = 2;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) k = 1;
    const char *e = getenv("SDFLOW_F32_ATTENTION");
    if (e && (!strcmp(e, "sgemm") || !strcmp(e, "0"))) k = 0;
    else if (e && !strcmp(e, "avx2") && k >= 1) k = 1;
    g_f32_attention = k;
}
static pthread_once_t g_f32_attention_once = PTHREAD_ONCE_INIT;

int sdf_f32_attention_kind(void) {
    pthread_once(&g_f32_attention_once, detect_f32_attention);
    return g_f32_attention;
}

// ---------------------------------------------------------------------------------------------
// Peak loops

static volatile float g_sink;

AMX_TARGET static double amx_peak(long iters) {
    amx_configure();
    static __thread uint16_t src[16 * 32] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 32; i++) src[i] = f32_to_bf16(0.001f * (float)((i * 37) % 101 - 50));
    _tile_loadd(4, src, 64); _tile_loadd(5, src, 64); _tile_loadd(6, src, 64); _tile_loadd(7, src, 64);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    for (long i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    float out[16 * 16] __attribute__((aligned(64)));
    _tile_stored(0, out, 64);
    g_sink = out[0];
    return (double)iters * 4 * 16 * 16 * 32 * 2;
}

AVX_TARGET static double avx_peak(long iters) {
    __m512 acc[24];
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i * 1e-3f);
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3c003c00), b = (__m512bh)_mm512_set1_epi32(0x3b803b80);
    for (long it = 0; it < iters; it++) {
        for (int i = 0; i < 24; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a));
    }
    __m512 s = acc[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, acc[i]);
    g_sink = _mm512_reduce_add_ps(s);
    return (double)iters * 24 * 16 * 2 * 2;
}

double sdf_bf16_peak(int tier, long iters) {
    int hw = sdf_bf16_hw_tier();
    if (tier > hw || tier <= 0) return 0;
    return tier == 2 ? amx_peak(iters) : avx_peak(iters);
}
