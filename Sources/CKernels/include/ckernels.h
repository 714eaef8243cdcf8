// Hot elementwise and row kernels for the Tensor module (fp32 compute).
// Each function is compiled in several versions (AVX-512, AVX2, baseline x86-64) and the best one
// for the running CPU is picked at load time (GNU ifunc via target_clones), so the binary runs on any
// x86-64 while using wide vectors where the hardware has them.
#ifndef SDF_CKERNELS_H
#define SDF_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Exact IEEE half -> float widening (subnormals, inf, nan preserved), n elements.
void sdf_widen_f16(const uint16_t *src, float *dst, size_t n);
/// Exact bfloat16 -> float widening, n elements.
void sdf_widen_bf16(const uint16_t *src, float *dst, size_t n);

/// y = x * sigmoid(x)  (torch.nn.functional.silu). In place allowed.
void sdf_silu(const float *x, float *y, size_t n);
/// y = 0.5 x (1 + erf(x / sqrt 2))  (torch gelu, approximate='none'). In place allowed.
void sdf_gelu(const float *x, float *y, size_t n);
/// y = x * sigmoid(1.702 x)  (CLIP quick_gelu). In place allowed.
void sdf_quick_gelu(const float *x, float *y, size_t n);
/// GEGLU over `rows` rows of width 2d: y[r, j] = x[r, j] * gelu(x[r, d + j]).
void sdf_geglu(const float *x, float *y, size_t rows, size_t d);
/// Row softmax of (scale * x) over n elements, out of place or in place. scale must be > 0.
void sdf_softmax_row(const float *x, float *y, size_t n, float scale);
/// Adds `delta` to this thread's counter and returns the new value (the BLAS gate's record of the
/// single-threaded sections the calling thread opened).
int sdf_thread_counter_add(int delta);
/// Sum of n elements (accumulated in 16 float lanes per 4096-block, blocks summed in double).
double sdf_sum(const float *x, size_t n);
/// Mean and biased variance of n elements in one pass over memory (chunks of 4096: chunk sum, then
/// squared deviations from the chunk mean while it is in L1; chunks combined in double).
void sdf_mean_var(const float *x, size_t n, double *mean, double *var);
/// Sum of (x - mean)^2 over n elements (same accumulation scheme as sdf_sum).
double sdf_sum_sq_dev(const float *x, size_t n, float mean);
/// y = x * a + b, optionally followed by SiLU (silu != 0). In place allowed.
void sdf_scale_shift(const float *x, float *y, size_t n, float a, float b, int silu);
/// Layer norm of one row: y = (x - mean) * rstd * gamma + beta; gamma/beta may be NULL.
void sdf_layer_norm_row(const float *x, float *y, size_t n, const float *gamma, const float *beta, float eps);
/// y = a + b / a * b elementwise (n elements).
void sdf_add(const float *a, const float *b, float *y, size_t n);
void sdf_mul(const float *a, const float *b, float *y, size_t n);
/// y = a + s / a * s (vector with broadcast scalar).
void sdf_add_scalar(const float *a, float s, float *y, size_t n);
void sdf_mul_scalar(const float *a, float s, float *y, size_t n);

#ifdef __cplusplus
}
#endif
#endif
