// bf16 GEMM with fp32 accumulation for x86-64: AMX tiles (tier 2) or AVX512-BF16 vdpbf16ps (tier 1).
// Only the functions that execute AMX / AVX512-BF16 instructions are compiled for those ISAs (per-function
// target attributes); everything else is baseline x86-64, and nothing here executes an instruction the
// CPU lacks: callers check `sdf_amx_init()` first (tier 0 = no bf16 hardware; use the fp32 path).
//
// Packed weight format (both tiers): B is the "weight" of C = A . B^T with B stored [N, K]. K is padded
// with zeros to Kp = roundup(K, 32), N to Np = roundup(N, 16). Panels of 16 output columns are stored one
// after another (panel p holds columns 16p..16p+15, Kp * 16 bf16); inside a panel, row r (r < Kp / 2)
// holds the 16 columns' pairs (k = 2r, 2r + 1): element (n, k) is at
//     p * Kp * 16 + (k / 2) * 32 + (n % 16) * 2 + (k % 2)
// which is AMX's VNNI layout for the B tile of `tdpbf16ps` (16 rows of 64 bytes = 32 k values) and the
// 64-byte operand of `vdpbf16ps`. Packing a 16-aligned range of rows [n0, n1) writes only the panels
// n0/16 ..< ceil(n1/16), at offset (n0 / 16) * Kp * 16 elements.
#ifndef SDF_CAMX_H
#define SDF_CAMX_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Detects the bf16 hardware once (CPUID + XCR0; for AMX also asks the kernel for the tile-data
/// state with arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)). Returns the tier in use:
/// 2 = AMX-BF16, 1 = AVX512-BF16, 0 = none. The environment variable SDFLOW_BF16_TIER=amx|avx512|none
/// (or 2|1|0) lowers the tier (never raises it above what the hardware has). Thread-safe.
int sdf_amx_init(void);
/// The tier the hardware supports, ignoring SDFLOW_BF16_TIER.
int sdf_bf16_hw_tier(void);

/// n fp32 values to bf16 (nearest even; NaN stays NaN), vectorized where AVX512-BF16 exists.
void sdf_f32_to_bf16(const float *src, uint16_t *dst, size_t n);

/// Bytes of the packed form of an [N, K] weight (Np * Kp * 2).
size_t sdf_bf16_packed_size(int N, int K);
/// Packs a row-major weight [N, K] (row stride ldw elements) of dtype 0 f32, 1 f16, 2 bf16 into
/// `packed` (sdf_bf16_packed_size bytes, 64-byte alignment recommended). f32 rounds to nearest even.
void sdf_bf16_pack_b(const void *w, int dtype, int N, int K, int ldw, uint16_t *packed);
/// Makes sdf_bf16_pack_b use its portable scalar loop (on != 0) instead of the AVX-512 one (the
/// default where AVX512-BF16 exists); both write the same bits. For tests and A/B measurements.
void sdf_bf16_set_scalar_pack(int on);
/// The same packed format from a weight stored transposed, [K, N] with row stride ldw
/// (element (n, k) at w[k * ldw + n]): e.g. attention's V, [keys, dv], for P . V.
void sdf_bf16_pack_bt(const void *w, int dtype, int N, int K, int ldw, uint16_t *packed);

/// C[m, n] = sum_k bf16(A[m, k]) * B[n, k] + bias[n] (+ residual[m * ldr + n] when residual != NULL)
/// for m in [m_begin, m_end), n in [n_begin, n_end), fp32 accumulation. A is fp32 (a_dtype 0, rounded
/// to bf16 as it is packed into a per-thread buffer) or bf16 (2, used as is), row-major (lda);
/// packedB from sdf_bf16_pack_b(N, K); C is fp32 (c_dtype 0) or bf16 (2, nearest even), row-major
/// (ldc); bias may be NULL. tier >= 1 only (clamped to the hardware's); n_begin a multiple of 32;
/// blocks given to different threads must not overlap. Runs on the calling thread (tile
/// configuration loaded once per thread). geglu = 1: B was packed with its
/// rows interleaved in blocks of 16 as [value 16 | gate 16] (N = 2 H, bias in the same order, n_end -
/// n_begin a multiple of 32); C is [M, H] (ldc >= H) and receives value * gelu(gate) (erf form) at
/// column n / 2 for each interleaved block (no residual).
void sdf_bf16_gemm_ex(int tier, const void *A, int a_dtype, int lda, const uint16_t *packedB, void *C, int c_dtype,
                      int ldc, int M, int N, int K, const float *bias, const float *residual, int ldr, int geglu,
                      int n_begin, int n_end, int m_begin, int m_end);

/// Convolution as an implicit GEMM on one NHWC image `xt` [H, W, C] with a weight packed with K ordered
/// (ky, kx, c) (N = O, K = kh * kw * C): for output pixels p in [p_begin, p_end) (p = oy * Wo + ox)
/// and output channels o in [n_begin, n_end) (n_begin a multiple of 16) writes
///     y[o * Ho * Wo + p] = bias[o] + sum_{ky, kx, c} bf16(x[oy*stride - pad_top + ky, ox*stride - pad_left + kx, c]) * W[o, ky, kx, c]
/// (zero outside the image), i.e. one image's NCHW output planes, plus res[o * Ho * Wo + p] when res is
/// not NULL (added last: (sum + bias) + res). The patches are gathered and
/// converted to bf16 straight into the per-thread A buffer (no im2col matrix). tier >= 1 only.
void sdf_bf16_conv_gemm(int tier, const float *xt, int H, int W, int C, int kh, int kw, int stride,
                        int pad_top, int pad_left, int Ho, int Wo, const uint16_t *packedB, int O,
                        const float *bias, const float *res, float *y, int p_begin, int p_end, int n_begin, int n_end);

/// Rows [row_begin, row_end) of a zero-bordered NHWC bf16 copy of one transformed NCHW fp32 image
/// x [C, H, W]: out is [Hp, Wp, C] with the logical input [C, H * up, W * up] at rows pt.., columns
/// pl.. (everything else zero), L[c, iy, ix] = f(x[c, iy / up, ix / up]) (nearest-neighbour
/// upsampling by `up` >= 1), f the identity or, with `a` non-NULL, what sdf_scale_shift(v, a[c], b[c],
/// silu) computes (a GroupNorm's affine form, optionally followed by SiLU), bit for bit. pt / pl / Hp /
/// Wp refer to the logical size. Returns 0 if scratch could not be allocated or up < 1 (nothing is
/// then guaranteed written).
int sdf_nchw_to_nhwc_bf16_pad_ex(const float *x, int C, int H, int W, int up, const float *a, const float *b, int silu,
                                 int pt, int pl, int Hp, int Wp, uint16_t *out, int row_begin, int row_end);
/// Stride-1 convolution on AMX reading A tiles straight from `xpad` (from sdf_nchw_to_nhwc_bf16_pad_ex,
/// Wp columns, C channels): output pixels [p_begin, p_end) (p = oy * Wo + ox, p_begin a multiple of
/// 32), all O channels, written as NCHW planes y[o * Ho * Wo + p] (+ bias[o], then + res[o * Ho * Wo + p]
/// when res is not NULL). The weight is packed
/// with K ordered (ky, kx, c). Needs tier 2, C % 32 == 0 and Wo % 16 == 0: returns 0 (and does
/// nothing) otherwise, 1 when done.
int sdf_bf16_conv_direct(const uint16_t *xpad, int Wp, int C, int kh, int kw, int Ho, int Wo,
                         const uint16_t *packedB, int O, const float *bias, const float *res, float *y, int p_begin, int p_end);

/// One block of scaled dot-product attention for one (batch, head), fused: S = Q K^T (bf16 operands,
/// fp32 accumulation), P = exp(scale (S - rowmax)) rounded to bf16 (unnormalised), O = P V, then each
/// output row divided by its fp32 row sum. q: `rows` query rows of `d` floats (row stride ldq);
/// packedK: K [lk, d] packed with sdf_bf16_pack_b(N = lk, K = d); packedV: V packed with
/// sdf_bf16_pack_bt(N = dv, K = lk); out: rows x dv fp32 (row stride ldo). causal_i0 >= 0 masks key j
/// for query row i when j > causal_i0 + i (torch's is_causal with this block starting at query
/// causal_i0); -1 = no mask. Scores and probabilities live in per-thread buffers (rows x lk).
/// Runs on the calling thread. Returns 1 when done, 0 (output not written) for tier 0 or when the
/// scratch buffers cannot be allocated.
int sdf_bf16_attention(int tier, const float *q, int ldq, int rows, int d, const uint16_t *packedK, int lk,
                        const uint16_t *packedV, int dv, float *out, int ldo, float scale, int causal_i0);

/// Floats of one head's K and V packed for sdf_f32_attention.
size_t sdf_f32_attention_packed_floats(int lk, int d, int dv);

/// Packs one head's K (lk rows of d floats, row stride ldk) and V (lk rows of dv floats, row stride
/// ldv) for sdf_f32_attention: K transposed into contiguous 32-key panels (d x 32 floats each), then
/// V in contiguous 32-column panels (lk x 32 floats each), both zero-padded. Each panel a kernel
/// reads in its inner loop is contiguous: rows of K^T or V kilobytes apart put every step on another
/// 4 KiB page, and those TLB misses cost a third of the GEMM rate.
void sdf_f32_attention_pack(const float *k, int ldk, const float *v, int ldv, int lk, int d, int dv, float *packed);

/// Which sdf_f32_attention kernel this CPU runs: 2 AVX-512F (bf16 tier >= 1), 1 AVX2 + FMA, 0 none
/// (callers use the sgemm path). `SDFLOW_F32_ATTENTION=sgemm` forces 0, `=avx2` at most 1 (A/B runs).
int sdf_f32_attention_kind(void);

/// The fp32 twin of sdf_bf16_attention (AVX-512F, or AVX2 + FMA): S = Q K^T, P = exp(scale (S -
/// rowmax)) in place (fp32), O = P V, rows divided by their sums; K and V packed by
/// sdf_f32_attention_pack. Returns 0 when sdf_f32_attention_kind() is 0 or its scratch could not be
/// allocated (nothing done), 1 otherwise.
int sdf_f32_attention(const float *q, int ldq, int rows, int d, const float *packed, int lk, int dv,
                      float *out, int ldo, float scale, int causal_i0);

/// Bare multiply-accumulate loop on registers only (no memory traffic), on the calling thread:
/// tier 2: `iters` x 4 tdpbf16ps (2x2 tiles of 16x16 fp32, K = 32); tier 1: `iters` x 24 vdpbf16ps.
/// Returns the floating-point operations performed (2 per multiply-add), 0 if the tier is unavailable.
double sdf_bf16_peak(int tier, long iters);

#ifdef __cplusplus
}
#endif
#endif
