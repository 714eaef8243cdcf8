// See include/ckernels.h. Loops are written so clang vectorizes them (no calls, no branches in the
// body, explicit 16-lane accumulators for reductions so the summation order is fixed).
#include "ckernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && !defined(SDF_NO_CLONES)
#define SDF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SDF_CLONES
#endif

// Elementwise loop safe for in-place use (y == x) that still vectorizes: each 16-element block is
// loaded into a local array before anything is stored, so the compiler needs no runtime alias check
// (which fails, and falls back to scalar code, exactly when y == x).
#define SDF_MAP16(x, y, n, EXPR)                                           \
    do {                                                                   \
        size_t i_ = 0;                                                     \
        for (; i_ + 16 <= (n); i_ += 16) {                                 \
            float t_[16];                                                  \
            for (int l_ = 0; l_ < 16; l_++) t_[l_] = (x)[i_ + l_];         \
            for (int l_ = 0; l_ < 16; l_++) { float v = t_[l_]; t_[l_] = (EXPR); } \
            for (int l_ = 0; l_ < 16; l_++) (y)[i_ + l_] = t_[l_];         \
        }                                                                  \
        for (; i_ < (n); i_++) { float v = (x)[i_]; (y)[i_] = (EXPR); }    \
    } while (0)

static inline float as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// exp(x) for float: range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial (Cephes expf
// coefficients), scaling by 2^n through the exponent bits. Relative error about 2 ulp. Inputs are
// clamped to [-87.3, 88.3]: below, the result is ~1e-38 instead of 0 (harmless for the sums and
// quotients it feeds here); above, 2^127-ish instead of inf.
static inline float sdf_expf(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    // Round to nearest by adding and subtracting 1.5 * 2^23 (|x * log2 e| < 2^22 after the clamp);
    // unlike rintf this vectorizes on baseline SSE2 too.
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = (int32_t)n + 127;
    return p * as_float((uint32_t)e << 23);
}

// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), the same formula PyTorch's
// vectorized CPU erf uses.
static inline float sdf_erff(float x) {
    float s = x < 0.0f ? -1.0f : 1.0f;
    float a = x * s;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float y = 1.061405429f;
    y = y * t - 1.453152027f;
    y = y * t + 1.421413741f;
    y = y * t - 0.284496736f;
    y = y * t + 0.254829592f;
    y = y * t;
    return s * (1.0f - y * sdf_expf(-a * a));
}

static inline float gelu1(float x) { return 0.5f * x * (1.0f + sdf_erff(x * 0.70710678118654752f)); }
static inline float silu1(float x) { return x / (1.0f + sdf_expf(-x)); }

SDF_CLONES void sdf_widen_f16(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t h = src[i];
        uint32_t sign = (h & 0x8000u) << 16;
        uint32_t e = (h >> 10) & 0x1fu;
        uint32_t m = h & 0x3ffu;
        uint32_t normal = sign | ((e + 112u) << 23) | (m << 13);
        uint32_t infnan = sign | 0x7f800000u | (m << 13);
        // subnormal (and zero): m * 2^-24 is exact in float
        float sub = (float)m * 5.9604644775390625e-8f;
        uint32_t subbits; memcpy(&subbits, &sub, 4);
        subbits |= sign;
        uint32_t bits = e == 0 ? subbits : (e == 31 ? infnan : normal);
        dst[i] = as_float(bits);
    }
}

SDF_CLONES void sdf_widen_bf16(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = as_float((uint32_t)src[i] << 16);
}

SDF_CLONES void sdf_silu(const float *x, float *y, size_t n) {
    SDF_MAP16(x, y, n, silu1(v));
}

SDF_CLONES void sdf_gelu(const float *x, float *y, size_t n) {
    SDF_MAP16(x, y, n, gelu1(v));
}

SDF_CLONES void sdf_quick_gelu(const float *x, float *y, size_t n) {
    SDF_MAP16(x, y, n, v / (1.0f + sdf_expf(-1.702f * v)));
}

SDF_CLONES void sdf_geglu(const float *x, float *y, size_t rows, size_t d) {
    for (size_t r = 0; r < rows; r++) {
        const float *v = x + r * 2 * d;
        const float *g = v + d;
        float *o = y + r * d;
        for (size_t j = 0; j < d; j++) o[j] = v[j] * gelu1(g[j]);
    }
}

SDF_CLONES void sdf_softmax_row(const float *x, float *y, size_t n, float scale) {
    float mx[16];
    for (int l = 0; l < 16; l++) mx[l] = -INFINITY;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) mx[l] = x[i + l] > mx[l] ? x[i + l] : mx[l];
    float m = -INFINITY;
    for (int l = 0; l < 16; l++) m = mx[l] > m ? mx[l] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    if (m == -INFINITY) m = 0.0f; // all -inf row (fully masked): produces 0/0 -> handled below
    float ms = m * scale;
    float acc[16] = {0};
    i = 0;
    for (; i + 16 <= n; i += 16) {
        float t[16];
        for (int l = 0; l < 16; l++) t[l] = x[i + l];
        for (int l = 0; l < 16; l++) { t[l] = sdf_expf(t[l] * scale - ms); acc[l] += t[l]; }
        for (int l = 0; l < 16; l++) y[i + l] = t[l];
    }
    float s = 0.0f;
    for (int l = 0; l < 16; l++) s += acc[l];
    for (; i < n; i++) { float e = sdf_expf(x[i] * scale - ms); y[i] = e; s += e; }
    float inv = 1.0f / s;
    for (i = 0; i < n; i++) y[i] *= inv;
}

SDF_CLONES double sdf_sum(const float *x, size_t n) {
    double total = 0.0;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > 4096 ? i + 4096 : n;
        float acc[16] = {0};
        for (; i + 16 <= end; i += 16)
            for (int l = 0; l < 16; l++) acc[l] += x[i + l];
        float s = 0.0f;
        for (; i < end; i++) s += x[i];
        for (int l = 0; l < 16; l++) s += acc[l];
        total += s;
    }
    return total;
}

SDF_CLONES double sdf_sum_sq_dev(const float *x, size_t n, float mean) {
    double total = 0.0;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > 4096 ? i + 4096 : n;
        float acc[16] = {0};
        for (; i + 16 <= end; i += 16)
            for (int l = 0; l < 16; l++) { float d = x[i + l] - mean; acc[l] += d * d; }
        float s = 0.0f;
        for (; i < end; i++) { float d = x[i] - mean; s += d * d; }
        for (int l = 0; l < 16; l++) s += acc[l];
        total += s;
    }
    return total;
}

SDF_CLONES void sdf_mean_var(const float *x, size_t n, double *mean_out, double *var_out) {
    // Chunks of 4096 (16 KiB, still in L1 for the second look): chunk mean, then the chunk's sum of
    // squared deviations from it; chunks combined with Chan et al.'s pairwise update in double. One
    // pass over memory, as robust as the two-pass formula.
    double mean = 0.0, m2 = 0.0, count = 0.0;
    size_t i = 0;
    while (i < n) {
        const size_t end = n - i > 4096 ? i + 4096 : n, len = end - i;
        float acc[16] = {0};
        size_t j = i;
        for (; j + 16 <= end; j += 16)
            for (int l = 0; l < 16; l++) acc[l] += x[j + l];
        float s = 0.0f;
        for (; j < end; j++) s += x[j];
        for (int l = 0; l < 16; l++) s += acc[l];
        const float cm = s / (float)len;
        float dq[16] = {0};
        j = i;
        for (; j + 16 <= end; j += 16)
            for (int l = 0; l < 16; l++) { float d = x[j + l] - cm; dq[l] += d * d; }
        float q = 0.0f;
        for (; j < end; j++) { float d = x[j] - cm; q += d * d; }
        for (int l = 0; l < 16; l++) q += dq[l];
        // Exact chunk mean in double from the float sum; the deviation sum was taken from the float mean
        // cm: correct it to the double mean (q + len * (cm - mean_c)^2 is the same sum around mean_c).
        const double mc = (double)s / (double)len, dc = (double)cm - mc;
        const double m2c = (double)q - (double)len * dc * dc;
        const double tot = count + (double)len, delta = mc - mean;
        mean += delta * (double)len / tot;
        m2 += m2c + delta * delta * count * (double)len / tot;
        count = tot;
        i = end;
    }
    *mean_out = mean;
    *var_out = count > 0 ? (m2 > 0 ? m2 : 0) / count : 0;
}

SDF_CLONES void sdf_scale_shift(const float *x, float *y, size_t n, float a, float b, int silu) {
    if (silu) {
        SDF_MAP16(x, y, n, silu1(v * a + b));
    } else {
        SDF_MAP16(x, y, n, v * a + b);
    }
}

SDF_CLONES void sdf_layer_norm_row(const float *x, float *y, size_t n, const float *gamma, const float *beta, float eps) {
    float mean = (float)(sdf_sum(x, n) / (double)n);
    float var = (float)(sdf_sum_sq_dev(x, n, mean) / (double)n);
    float rstd = 1.0f / __builtin_sqrtf(var + eps);
    if (gamma && beta) {
        for (size_t i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
    } else if (gamma) {
        for (size_t i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd * gamma[i];
    } else {
        for (size_t i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd;
    }
}

SDF_CLONES void sdf_add(const float *a, const float *b, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
SDF_CLONES void sdf_mul(const float *a, const float *b, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}
SDF_CLONES void sdf_add_scalar(const float *a, float s, float *y, size_t n) {
    SDF_MAP16(a, y, n, v + s);
}
SDF_CLONES void sdf_mul_scalar(const float *a, float s, float *y, size_t n) {
    SDF_MAP16(a, y, n, v * s);
}

static _Thread_local int sdf_thread_counter;

int sdf_thread_counter_add(int delta) {
    sdf_thread_counter += delta;
    return sdf_thread_counter;
}
