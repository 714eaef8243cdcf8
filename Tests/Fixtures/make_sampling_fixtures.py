#!/usr/bin/env python3
"""Sampling reference fixtures: torch CPU RNG, ComfyUI sigma schedules, end-to-end ComfyUI-rule runs on sdxl-tiny.

    python Tests/Fixtures/make_sampling_fixtures.py [--out Tests/Fixtures/sampling]

Writes sampling/manifest.json (facts + RNG + schedules), sampling/e2e.safetensors (tensors), PNGs.
Behavioural reference: ComfyUI (comfy/samplers.py, comfy/model_sampling.py, comfy/k_diffusion/sampling.py,
comfy/sample.py, nodes.py); each ported function below names the ComfyUI function it follows.
The RNG section also re-implements torch's CPU randn in numpy (MT19937 + avx_mathfun Box-Muller) and checks it
bit-for-bit against torch: that emulation is the spec for the Swift side.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)
f32 = np.float32


def fl(x):
    """float32 -> shortest decimal that round-trips to the same float32 (parse with Float(...))."""
    return [float(str(f32(v))) for v in np.asarray(x, dtype=np.float32).ravel()]


# ================================================================================================ RNG emulation
def mt19937_raw(seed, n):
    """torch CPUGeneratorImpl: at::mt19937(seed) initialises the state from seed & 0xffffffff
    (state[0] = seed32; state[i] = 1812433253 * (state[i-1] ^ (state[i-1] >> 30)) + i), standard MT19937 twist
    and tempering; random() = one 32-bit output. numpy's legacy seeding is the same init_genrand."""
    bg = np.random.MT19937()
    bg._legacy_seeding(seed & 0xFFFFFFFF)
    return bg.random_raw(n).astype(np.uint32)


def _fma(a, b, c):  # float32 fused multiply-add (product exact in float64; one rounding to float32 at the end)
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(f32)


def log256_ps(x):
    """avx_mathfun.h log256_ps (Cephes logf) as compiled in torch (GCC contracts a*b+c into FMA: see below)."""
    x = x.astype(f32)
    invalid = x <= 0
    x = np.maximum(x, np.array([0x00800000], np.int32).view(f32)[0])
    imm0 = (x.view(np.uint32) >> 23).astype(np.int32)
    x = ((x.view(np.int32) & np.int32(~0x7f800000)) | f32(0.5).view(np.int32)).view(f32)
    e = (imm0 - 0x7f).astype(f32) + f32(1)
    mask = x < f32(0.707106781186547524)
    tmp = np.where(mask, x, f32(0))
    x = x - f32(1)
    e = e - np.where(mask, f32(1), f32(0))
    x = x + tmp
    z = x * x
    P = [7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
         -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1]
    y = _fma(f32(P[0]), x, f32(P[1]))
    for p in P[2:]:
        y = _fma(y, x, f32(p))
    y = y * x
    y = _fma(y, z, e * f32(-2.12194440e-4))      # (y*z) + e*q1 : the y*z product is the fused one
    y = y - z * f32(0.5)
    x = x + y
    x = x + e * f32(0.693359375)
    return np.where(invalid, f32(np.nan), x)


def sincos256_ps(x):
    """avx_mathfun.h sincos256_ps (Cephes sinf/cosf), FMA-contracted as in torch's build."""
    x = x.astype(f32)
    sign_sin = np.signbit(x)
    x = np.abs(x)
    j = (x * f32(1.27323954473516)).astype(np.int32)   # cvttps: truncation
    j = (j + 1) & ~1
    y = j.astype(f32)
    swap_sin = (j & 4) != 0
    poly = (j & 2) == 0
    x = _fma(y, f32(-0.78515625), x)
    x = _fma(y, f32(-2.4187564849853515625e-4), x)
    x = _fma(y, f32(-3.77489497744594108e-8), x)
    sign_cos = ((~(j - 2)) & 4) != 0
    sign_sin = sign_sin ^ swap_sin
    z = x * x
    yc = _fma(f32(2.443315711809948E-005), z, f32(-1.388731625493765E-003))
    yc = _fma(yc, z, f32(4.166664568298827E-002))
    yc = yc * z
    yc = _fma(yc, z, -(z * f32(0.5)))
    yc = yc + f32(1)
    ys = _fma(f32(-1.9515295891E-4), z, f32(8.3321608736E-3))
    ys = _fma(ys, z, f32(-1.6666654611E-1))
    ys = ys * z
    ys = _fma(ys, x, x)
    s = np.where(poly, ys, yc)
    c = np.where(poly, yc, ys)
    return np.where(sign_sin, -s, s), np.where(sign_cos, -c, c)


def normal_fill_16_avx2(d):
    """DistributionTemplates.h normal_fill_16_AVX2 (mean 0, std 1: the final fmadd(n, 1, 0) is exact)."""
    r = np.sqrt(f32(-2) * log256_ps(f32(1) - d[:8])).astype(f32)
    s, c = sincos256_ps(f32(2.0 * np.pi) * d[8:16])
    d[:8] = r * c
    d[8:16] = r * s


def randn_emulated(seed, n):
    """torch.randn(n elements, float32, CPU generator seeded with seed)."""
    if n >= 16:   # normal_fill_AVX2
        raw = mt19937_raw(seed, n + (16 if n % 16 else 0))
        d = (raw[:n] & 0xFFFFFF).astype(f32) * f32(2.0 ** -24)        # uniform_real_distribution<float>
        for i in range(0, n - 15, 16):
            normal_fill_16_avx2(d[i:i + 16])
        if n % 16:
            t = d[n - 16:]
            t[:] = (raw[n:] & 0xFFFFFF).astype(f32) * f32(2.0 ** -24)
            normal_fill_16_avx2(t)
        return d
    # n < 16: normal_distribution<double>, Box-Muller with the second value cached in the generator
    raw = mt19937_raw(seed, 4 * ((n + 1) // 2)).astype(np.uint64)
    out, i = [], 0
    while len(out) < n:
        a = (int(raw[i]) << 32) | int(raw[i + 1])          # random64(): first 32-bit draw is the high half
        b = (int(raw[i + 2]) << 32) | int(raw[i + 3])
        i += 4
        u1 = (a & ((1 << 53) - 1)) * 2.0 ** -53
        u2 = (b & ((1 << 53) - 1)) * 2.0 ** -53
        r = math.sqrt(-2.0 * math.log1p(-u2))
        th = 2.0 * math.pi * u1
        out += [r * math.cos(th), r * math.sin(th)]
    return np.array(out[:n], dtype=np.float64).astype(f32)


def torch_randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


# ================================================================================================ ComfyUI schedule
class ModelSamplingDiscrete:
    """comfy/model_sampling.py ModelSamplingDiscrete (+ make_beta_schedule 'linear') for SDXL eps."""

    def __init__(self):
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def timestep(self, sigma):  # ModelSamplingDiscrete.timestep
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape)

    def sigma(self, timestep):  # ModelSamplingDiscrete.sigma
        t = torch.clamp(timestep.float(), min=0, max=(len(self.sigmas) - 1))
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp()


def simple_scheduler(s, steps):  # comfy/samplers.py simple_scheduler
    sigs = []
    ss = len(s.sigmas) / steps
    for x in range(steps):
        sigs += [float(s.sigmas[-(1 + int(x * ss))])]
    sigs += [0.0]
    return torch.FloatTensor(sigs)


def ddim_scheduler(s, steps):  # comfy/samplers.py ddim_scheduler
    x = 1
    if math.isclose(float(s.sigmas[x]), 0, abs_tol=0.00001):
        steps += 1
        sigs = []
    else:
        sigs = [0.0]
    ss = max(len(s.sigmas) // steps, 1)
    while x < len(s.sigmas):
        sigs += [float(s.sigmas[x])]
        x += ss
    sigs = sigs[::-1]
    return torch.FloatTensor(sigs)


def normal_scheduler(s, steps, sgm=False):  # comfy/samplers.py normal_scheduler
    start = s.timestep(s.sigma_max)
    end = s.timestep(s.sigma_min)
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(s.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)
    sigs = [float(s.sigma(timesteps[x])) for x in range(len(timesteps))]
    if append_zero:
        sigs += [0.0]
    return torch.FloatTensor(sigs)


def beta_scheduler(s, steps, alpha=0.6, beta=0.6):  # comfy/samplers.py beta_scheduler
    import scipy.stats
    total_timesteps = len(s.sigmas) - 1
    ts = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(scipy.stats.beta.ppf(ts, alpha, beta) * total_timesteps)
    sigs, last_t = [], -1
    for t in ts:
        if t != last_t:
            sigs += [float(s.sigmas[int(t)])]
        last_t = t
    sigs += [0.0]
    return torch.FloatTensor(sigs)


def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.):  # comfy/k_diffusion/sampling.py
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def get_sigmas_exponential(n, sigma_min, sigma_max):  # comfy/k_diffusion/sampling.py
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp()
    return torch.cat([sigmas, sigmas.new_zeros([1])])


SCHEDULERS = ["normal", "sgm_uniform", "simple", "karras", "exponential", "ddim_uniform", "beta"]


def calculate_sigmas(s, name, steps):  # comfy/samplers.py calculate_sigmas / SCHEDULER_HANDLERS
    if name == "karras":
        return get_sigmas_karras(n=steps, sigma_min=float(s.sigma_min), sigma_max=float(s.sigma_max))
    if name == "exponential":
        return get_sigmas_exponential(n=steps, sigma_min=float(s.sigma_min), sigma_max=float(s.sigma_max))
    if name == "normal":
        return normal_scheduler(s, steps)
    if name == "sgm_uniform":
        return normal_scheduler(s, steps, sgm=True)
    if name == "simple":
        return simple_scheduler(s, steps)
    if name == "ddim_uniform":
        return ddim_scheduler(s, steps)
    if name == "beta":
        return beta_scheduler(s, steps)
    raise ValueError(name)


def ksampler_sigmas(s, name, steps, denoise=1.0):  # comfy/samplers.py KSampler.set_steps (euler etc.: no discard)
    if denoise is None or denoise > 0.9999:
        return calculate_sigmas(s, name, steps)
    if denoise <= 0.0:
        return torch.FloatTensor([])
    new_steps = int(steps / denoise)
    return calculate_sigmas(s, name, new_steps)[-(steps + 1):]


# ================================================================================================ samplers
def to_d(x, sigma, denoised):  # k_diffusion to_d
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from, sigma_to, eta=1.):  # k_diffusion get_ancestral_step
    if not eta:
        return sigma_to, 0.
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def default_noise_sampler(x, seed, cpu_plus_one=True):
    """comfy/k_diffusion/sampling.py default_noise_sampler: current ComfyUI adds 1 to the seed when x is on the CPU
    (`if x.device == torch.device("cpu"): seed += 1`); older ComfyUI used the seed as is."""
    g = torch.Generator(device="cpu")
    g.manual_seed(seed + 1 if cpu_plus_one else seed)
    return lambda sigma, sigma_next: torch.randn(x.size(), dtype=x.dtype, layout=x.layout, device=x.device, generator=g)


def sample_euler(model, x, sigmas):  # k_diffusion sample_euler (s_churn 0)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        sigma_hat = sigmas[i]
        denoised = model(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        x = x + d * dt
    return x


def sample_euler_ancestral(model, x, sigmas, seed, cpu_plus_one=True, eta=1., s_noise=1.):
    noise_sampler = default_noise_sampler(x, seed, cpu_plus_one)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if sigma_down == 0:
            x = denoised
        else:
            d = to_d(x, sigmas[i], denoised)
            dt = sigma_down - sigmas[i]
            x = x + d * dt + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def sample_dpmpp_2m(model, x, sigmas):  # k_diffusion sample_dpmpp_2m
    s_in = x.new_ones([x.shape[0]])
    sigma_fn = lambda t: t.neg().exp()  # noqa: E731
    t_fn = lambda sigma: sigma.log().neg()  # noqa: E731
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def sample_lcm(model, x, sigmas, seed, cpu_plus_one=True):  # k_diffusion sample_lcm
    noise_sampler = default_noise_sampler(x, seed, cpu_plus_one)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        x = denoised
        if sigmas[i + 1] > 0:
            x = noise_scaling(sigmas[i + 1], noise_sampler(sigmas[i], sigmas[i + 1]), x)
    return x


def noise_scaling(sigma, noise, latent_image, max_denoise=False):  # comfy/model_sampling.py EPS.noise_scaling
    if max_denoise:
        noise = noise * torch.sqrt(1.0 + sigma ** 2.0)
    else:
        noise = noise * sigma
    noise += latent_image
    return noise


def max_denoise(ms, sigmas):  # comfy/samplers.py KSAMPLER.max_denoise
    max_sigma = float(ms.sigma_max)
    sigma = float(sigmas[0])
    return math.isclose(max_sigma, sigma, rel_tol=1e-05) or sigma > max_sigma


# ================================================================================================ RNG section
def rng_section(out_tensors):
    seeds = [0, 42, 2 ** 32 + 5, 0xFFFFFFFFFFFFFFFF]
    shapes = [[4], [15], [16], [17], [1, 4, 128, 128], [2, 4, 17, 23]]
    cases, all_ok = [], True
    for seed in seeds:
        for shp in shapes:
            t = torch_randn(shp, seed)
            n = t.numel()
            flat = t.numpy().ravel()
            emu = randn_emulated(seed, n)
            exact = bool(np.array_equal(flat.view(np.uint32), emu.view(np.uint32)))
            all_ok &= exact
            c = {"seed": str(seed), "seed_low32": seed & 0xFFFFFFFF, "shape": shp, "numel": n,
                 "path": "normal_fill_16 (AVX2 avx_mathfun)" if n >= 16 else "scalar normal_distribution<double>",
                 "numpy_emulation_bit_exact": exact,
                 "sum_f64": float(flat.astype(np.float64).sum()),
                 "sum_sq_f64": float((flat.astype(np.float64) ** 2).sum())}
            if n > 8192:
                c["first_4096"] = fl(flat[:4096])
                c["last_4096"] = fl(flat[-4096:])
            else:
                c["values"] = fl(flat)
            c["first_mt_outputs_u32"] = [int(v) for v in mt19937_raw(seed, 4)]
            cases.append(c)
    # batch_index (comfy/sample.py prepare_noise with noise_inds): one randn([1,...]) per index 0..max, same generator
    lat = torch.zeros(2, 4, 17, 23)
    gen = torch.manual_seed(42)
    per = [torch.randn([1, 4, 17, 23], dtype=torch.float32, generator=gen) for _ in range(3)]
    torch.manual_seed(0)   # leave global state tidy
    out_tensors["rng.batch_index_noise_seed42_inds_2_0"] = torch.cat([per[2], per[0]])
    out_tensors["rng.full_noise_seed42_2x4x17x23"] = torch_randn(list(lat.shape), 42)
    # other CPU kernel: what the non-AVX ('DEFAULT' capability) build would give: documented, not used
    return {"cases": cases, "all_bit_exact": all_ok}


RNG_FACTS = {
    "reference": "torch 2.15 CPU, torch.randn(shape, dtype=float32, generator=torch.Generator().manual_seed(seed)); "
                 "ComfyUI comfy/sample.py prepare_noise: generator = torch.manual_seed(seed); "
                 "torch.randn(latent.size(), dtype=latent.dtype (float32), layout, generator=generator, device='cpu'). "
                 "torch.manual_seed(seed) seeds the global default CPU generator and returns it: same stream as a "
                 "fresh Generator().manual_seed(seed).",
    "engine": "MT19937 (c10 at::mt19937 / CPUGeneratorImpl). Seeding: state[0] = seed & 0xFFFFFFFF (ONLY THE LOW 32 "
              "BITS of the 64-bit seed are used: seed 2**32+5 gives exactly the seed-5 stream, "
              "0xFFFFFFFFFFFFFFFF the 0xFFFFFFFF stream); state[i] = (1812433253 * (state[i-1] ^ (state[i-1] >> 30)) "
              "+ i) mod 2**32, i = 1..623; standard twist (MATRIX_A 0x9908b0df, UPPER 0x80000000, LOWER 0x7fffffff, "
              "M 397) on first use and every 624 outputs; tempering y ^= y>>11; y ^= (y<<7) & 0x9d2c5680; "
              "y ^= (y<<15) & 0xefc60000; y ^= y>>18. random() = one tempered 32-bit output. random64() = "
              "(first output << 32) | second output. manual_seed also clears the cached normal values. Verified: "
              "numpy MT19937 legacy seeding produces the identical stream (first_mt_outputs_u32 per case).",
    "uniform_float": "uniform_real_distribution<float>(0,1): x = (random() & 0xFFFFFF) * 2**-24 (24-bit mantissa "
                     "mask, in [0, 1)); uniform_real_distribution<double>: (random64() & (2**53-1)) * 2**-53.",
    "vector_path_numel_ge_16": "float32, contiguous, numel >= 16 (DistributionTemplates.h normal_fill_AVX2; on this "
                               "machine's AVX512 capability the same AVX2 kernel is used: results identical to "
                               "ATEN_CPU_CAPABILITY=avx2; the 'default' capability uses the scalar normal_fill "
                               "with std::log/cos/sin and differs in the last ulps). Algorithm: (1) data[i] = "
                               "uniform_float() for ALL i in order (numel 32-bit draws); (2) for i = 0,16,32,... "
                               "while i + 16 <= numel: normal_fill_16(data+i); (3) if numel % 16 != 0: re-draw 16 "
                               "NEW uniforms into data[numel-16 .. numel-1] (overwriting already-transformed "
                               "values of the last full block) and normal_fill_16 that window. Total draws: "
                               "numel + (16 if numel % 16 else 0).",
    "normal_fill_16": "for j in 0..7: u1 = 1 - data[j]; u2 = data[j+8]; radius = sqrt(-2 * log(u1)); theta = "
                      "(float)(2*pi) * u2; data[j] = radius * cos(theta); data[j+8] = radius * sin(theta) (then "
                      "fmadd(n, std=1, mean=0), exact). All float32. log/sin/cos are avx_mathfun.h log256_ps and "
                      "sincos256_ps (Cephes polynomials), NOT libm; and torch's binary is compiled with FMA "
                      "contraction: bit-exactness needs these fused multiply-adds (see log256_ps / sincos256_ps "
                      "in make_sampling_fixtures.py): log: Horner y = fma(y, x, p_k) from y = fma(p0, x, p1); "
                      "y = y*x; y = fma(y, z, e*q1); y = y - z*0.5; x = x + y; x = x + e*q2. sincos: j = "
                      "trunc(|x|*FOPI); j = (j+1) & ~1; x = fma(j, -DP1, x), fma(j, -DP2, x), fma(j, -DP3, x); "
                      "cos poly: yc = fma(c0, z, c1); yc = fma(yc, z, c2); yc = yc*z; yc = fma(yc, z, -(z*0.5)); "
                      "yc = yc + 1; sin poly: ys = fma(s0, z, s1); ys = fma(ys, z, s2); ys = ys*z; ys = fma(ys, x, x). "
                      "Without the FMAs ~1% of values differ by 1-2 ulp; with them the emulation is bit-exact on "
                      "every case here (numpy_emulation_bit_exact).",
    "scalar_path_numel_lt_16": "numel < 16 (or non-contiguous / non-float): cpu_serial_kernel in memory order, each "
                               "element = (float)normal_distribution<double>(0,1): if the generator holds a cached "
                               "double normal, return it (and clear it); else u1 = uniform_double(), u2 = "
                               "uniform_double() (two random64() = four 32-bit draws), r = sqrt(-2*log1p(-u2)) "
                               "(= log(1-u2)), theta = 2*pi*u1, cache r*sin(theta), return r*cos(theta). All "
                               "double (libm), cast to float at the end. So element 0 = r cos, element 1 = r sin, "
                               "element 2 from the next pair, ... Verified bit-exact with Python math.",
    "per_batch_noise": "ComfyUI prepare_noise(latent, seed, noise_inds): without batch_index the whole [B,C,H,W] is "
                       "ONE randn call (one vector fill over B*C*H*W). With latent['batch_index'] (e.g. after "
                       "LatentFromBatch / RepeatLatentBatch) it draws randn([1,C,H,W]) for i = 0..max(index) in "
                       "order from the same generator and picks noises[index]: a batch of 2 is then NOT the same as "
                       "one [2,C,H,W] call when C*H*W % 16 != 0 (tail re-draw). e2e: rng.batch_index_noise_seed42_"
                       "inds_2_0 (batch_index [2,0], latent [2,4,17,23]) vs rng.full_noise_seed42_2x4x17x23.",
}


# ================================================================================================ schedules section
def schedule_section():
    s = ModelSamplingDiscrete()
    scheds = {}
    for name in SCHEDULERS:
        scheds[name] = {"denoise_1.0": {str(n): fl(ksampler_sigmas(s, name, n, 1.0)) for n in range(1, 51)},
                        "denoise_0.6": {str(n): fl(ksampler_sigmas(s, name, n, 0.6)) for n in range(1, 51)}}
    t_in = [0.0, 0.5, 1.0, 249.5, 250.0, 499.25, 749.0, 998.5, 999.0, -3.0, 1200.0]
    sig_in = [14.614641189575195, 14.0, 4.086080551147461, 1.0, 0.5, 0.0291675, 0.029, 0.01, 20.0]
    conv = {
        "sigma_of_t": [{"t": t, "sigma": fl(s.sigma(torch.tensor(t)))[0]} for t in t_in],
        "timestep_of_sigma": [{"sigma": fl([v])[0], "t": int(s.timestep(torch.tensor(v, dtype=torch.float32)))}
                              for v in sig_in],
        "percent_to_sigma": [{"percent": p, "sigma": (999999999.9 if p <= 0 else 0.0 if p >= 1 else
                                                      fl(s.sigma(torch.tensor((1.0 - p) * 999.0)))[0])}
                             for p in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)],
    }
    table = {"sigmas_f32": fl(s.sigmas), "log_sigmas_f32": fl(s.log_sigmas),
             "alphas_cumprod_f64": [float(v) for v in s.alphas_cumprod],
             "sigma_min": fl([s.sigma_min])[0], "sigma_max": fl([s.sigma_max])[0]}
    return s, scheds, conv, table


SCHEDULE_FACTS = {
    "table": "comfy/model_sampling.py ModelSamplingDiscrete._register_schedule with make_beta_schedule('linear'): "
             "betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, float64)**2; alphas_cumprod = cumprod(1-betas) "
             "(float64); sigmas = ((1-ac)/ac)**0.5 float64; stored sigmas = sigmas.float(); log_sigmas = "
             "sigmas.log().float() (log taken in float64, then rounded). sigma_min = sigmas[0], sigma_max = sigmas[999].",
    "timestep(sigma)": "ModelSamplingDiscrete.timestep: argmin_i |log(sigma) - log_sigmas[i]| (float32; first index "
                       "on ties), an integer; the UNet gets it as float (BaseModel._apply_model: "
                       "t = model_sampling.timestep(t).float()).",
    "sigma(t)": "ModelSamplingDiscrete.sigma: t clamped to [0, 999]; w = frac(t); exp((1-w)*log_sigmas[floor t] + "
                "w*log_sigmas[ceil t]) in float32.",
    "normal": "samplers.py normal_scheduler: start = timestep(sigma_max) = 999, end = timestep(sigma_min) = 0; "
              "timesteps = torch.linspace(999, 0, steps) (float32); sigma(t) each, then append 0. (The sigma(end)==0 "
              "branch never triggers for SDXL.)",
    "sgm_uniform": "normal_scheduler(sgm=True): timesteps = linspace(999, 0, steps+1)[:-1], sigma(t), append 0.",
    "simple": "simple_scheduler: ss = 1000/steps; sigmas[-(1 + int(x*ss))] for x in 0..steps-1, append 0.",
    "ddim_uniform": "ddim_scheduler: ss = max(1000 // steps, 1); sigmas[1], sigmas[1+ss], ... while < 1000, reversed, "
                    "then 0 at the end (it is the initial element before reversal).",
    "karras": "k_diffusion get_sigmas_karras(n=steps, sigma_min=float(sigmas[0]), sigma_max=float(sigmas[999]), "
              "rho=7): ramp = torch.linspace(0,1,n) float32; min_inv_rho, max_inv_rho python doubles; "
              "(max_inv_rho + ramp*(min_inv_rho - max_inv_rho))**7 in float32; append 0.",
    "exponential": "get_sigmas_exponential: torch.linspace(log(sigma_max), log(sigma_min), n).exp() float32, append 0.",
    "beta": "beta_scheduler(alpha=0.6, beta=0.6): ts = 1 - numpy.linspace(0,1,steps,endpoint=False); "
            "ts = rint(scipy.stats.beta.ppf(ts, 0.6, 0.6) * 999); sigmas[int(t)] skipping consecutive duplicates; "
            "append 0 (can return fewer than steps+1 values).",
    "denoise": "KSampler.set_steps: denoise > 0.9999 -> calculate_sigmas(steps); 0 < denoise <= 0.9999 -> "
               "new_steps = int(steps/denoise) (python float division, truncation), sigmas = "
               "calculate_sigmas(new_steps)[-(steps+1):]; denoise <= 0 -> empty. (dpm_2, dpm_2_ancestral, uni_pc, "
               "uni_pc_bh2 would compute steps+1 and drop the penultimate sigma; not used here.)",
    "values": "JSON floats are the shortest decimal that round-trips to the float32 value: parse as Float, compare "
              "bit-exactly (schedules are pure float32 torch ops; expect exact or 1 ulp where libm exp/log/pow "
              "differ).",
}


# ================================================================================================ e2e
PROMPT = "a fish made out of dendrobium flowers, ultrarealistic"
NEGATIVE = "blurry, low quality"
SEED = 42
LATENT_SCALE = 0.13025


def load_models(dd):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    te1 = CLIPTextModel.from_pretrained(os.path.join(dd, "text_encoder"), dtype=torch.float32).float().eval()
    te2 = CLIPTextModelWithProjection.from_pretrained(os.path.join(dd, "text_encoder_2"), dtype=torch.float32).float().eval()
    unet = UNet2DConditionModel.from_pretrained(dd, subfolder="unet", torch_dtype=torch.float32).float().eval()
    vae = AutoencoderKL.from_pretrained(dd, subfolder="vae", torch_dtype=torch.float32).float().eval()
    return te1, te2, unet, vae


def apply_lora(models, lora_path, manifest, strength_model, strength_clip):
    """ComfyUI comfy/lora.py calculate_weight ('lora'): W += (strength * alpha/rank) * (up.flatten(1) @
    down.flatten(1)).reshape(W.shape), computed in fp32 on fp32 weights (CPU unet dtype is fp32). Copies."""
    import copy
    from safetensors.torch import load_file
    te1, te2, unet, vae = [copy.deepcopy(m) for m in models]
    lora = load_file(lora_path)
    def hf_names(m):   # HF file names: 'text_model.' prefix even when transformers flattens CLIPTextModel
        return {(n if n.startswith("text_model.") else "text_model." + n): mm for n, mm in m.named_modules() if n}
    mods = {"unet": dict(unet.named_modules()), 1: hf_names(te1), 2: hf_names(te2)}
    applied = []
    for rec in manifest["lora"]["modules"]:
        if "diffusers_module" in rec:
            name, mod, strength = rec["kohya_sgm"], mods["unet"][rec["diffusers_module"]], strength_model
        else:
            which = 2 if rec["hf_module"].startswith("text_encoder_2.") else 1
            hf = rec["hf_module"].split(".", 1)[1]
            name, mod, strength = rec["kohya"], mods[which][hf], strength_clip
        down = lora[name + ".lora_down.weight"].float()
        up = lora[name + ".lora_up.weight"].float()
        alpha = float(lora[name + ".alpha"]) / down.shape[0] if (name + ".alpha") in lora else 1.0
        w = mod.weight.data
        diff = torch.mm(up.flatten(start_dim=1), down.flatten(start_dim=1)).reshape(w.shape)
        w += ((strength * alpha) * diff).type(w.dtype)
        applied.append(name)
    return (te1, te2, unet, vae), applied


def encode_text(te1, te2, prompt):
    from make_fixtures import tokenize
    ids1, ids2 = tokenize([prompt])
    with torch.no_grad():
        o1 = te1(ids1, output_hidden_states=True)
        o2 = te2(ids2, output_hidden_states=True)
    ctx = torch.cat([o1.hidden_states[-2], o2.hidden_states[-2]], -1)
    return ids1, ids2, ctx, o2.text_embeds


def make_denoiser(unet, conds, cfg, pred, ms, log):
    """comfy/samplers.py sampling_function + calc_cond_batch + cfg_function; BaseModel._apply_model;
    EPS/X0 calculate_input / calculate_denoised. conds: list of (context, pooled, time_ids) [cond, uncond]."""
    use_uncond = not math.isclose(cfg, 1.0) and len(conds) > 1

    def model(x, sigma):
        xs, cs, ps, tids = [], [], [], []
        chosen = [conds[1], conds[0]] if use_uncond else [conds[0]]   # calc_cond_batch batches [uncond, cond]
        for (c, p, tid) in chosen:
            xs.append(x), cs.append(c), ps.append(p), tids.append(tid)
        xin = torch.cat(xs)
        sig = torch.cat([sigma] * len(chosen))
        xc = xin / (sig.view(-1, 1, 1, 1) ** 2 + 1.0 ** 2) ** 0.5          # EPS.calculate_input
        t = ms.timestep(sig).float()
        with torch.no_grad():
            out = unet(xc, t, encoder_hidden_states=torch.cat(cs),
                       added_cond_kwargs={"text_embeds": torch.cat(ps), "time_ids": torch.cat(tids)}).sample.float()
        if pred == "x0":
            den = out                                                      # X0.calculate_denoised
        else:
            den = xin - out * sig.view(-1, 1, 1, 1)                        # EPS.calculate_denoised
        log["timesteps"].append(float(t[0]))
        log["sigmas_in"].append(float(sigma[0]))
        if use_uncond:
            uncond, cond = den.chunk(2)
            return uncond + (cond - uncond) * cfg
        return den
    return model


def run_case(key, spec, models, ms, ctx_cache, tensors, pngs_dir):
    te1, te2, unet, vae = models
    steps, sampler, sched, cfg, denoise = spec["steps"], spec["sampler"], spec["scheduler"], spec["cfg"], spec["denoise"]
    ids1, ids2, ctx, pooled = encode_text(te1, te2, PROMPT)
    H = W = 8
    time_ids = torch.tensor([[H * 8, W * 8, 0, 0, H * 8, W * 8]], dtype=torch.float32)  # SDXL.encode_adm defaults
    conds = [(ctx, pooled, time_ids)]
    if cfg != 1.0:
        nids1, nids2, nctx, npooled = encode_text(te1, te2, NEGATIVE)
        conds.append((nctx, npooled, time_ids))
        tensors[f"{key}.neg_context"] = nctx
        tensors[f"{key}.neg_pooled"] = npooled
        tensors[f"{key}.neg_ids_te1"] = nids1.int()
        tensors[f"{key}.neg_ids_te2"] = nids2.int()
    tensors[f"{key}.ids_te1"] = ids1.int()
    tensors[f"{key}.ids_te2"] = ids2.int()
    tensors[f"{key}.context"] = ctx
    tensors[f"{key}.pooled"] = pooled
    tensors[f"{key}.time_ids"] = time_ids
    sigmas = ksampler_sigmas(ms, sched, steps, denoise)
    # latent (LATENT dict value, VAE space)
    if spec.get("img2img"):
        from PIL import Image
        img = np.asarray(Image.open(spec["img2img"]).convert("RGB")).astype(np.float32) / 255.0   # LoadImage
        pix = torch.from_numpy(img)[None]                                                       # [1,H,W,3]
        tensors[f"{key}.input_image"] = pix
        with torch.no_grad():
            latent = vae.encode(pix.movedim(-1, 1) * 2.0 - 1.0).latent_dist.mode()               # VAEEncode (mean)
        tensors[f"{key}.input_latent"] = latent
    else:
        latent = torch.zeros(1, 4, H, W)                                                        # EmptyLatentImage
    noise = torch.randn(latent.size(), dtype=latent.dtype, layout=latent.layout,
                        generator=torch.manual_seed(SEED), device="cpu")                        # prepare_noise
    latent_in = latent * LATENT_SCALE if torch.count_nonzero(latent) > 0 else latent             # process_latent_in
    md = max_denoise(ms, sigmas)
    x = noise_scaling(sigmas[0], noise.clone(), latent_in, md)                                   # KSAMPLER.sample
    tensors[f"{key}.noise"] = noise
    tensors[f"{key}.x_start"] = x.clone()
    tensors[f"{key}.sigmas"] = sigmas
    log = {"timesteps": [], "sigmas_in": []}
    model = make_denoiser(unet, conds, cfg, spec.get("pred", "eps"), ms, log)
    plus1 = spec.get("noise_seed_plus_one", True)
    if sampler == "euler":
        samples = sample_euler(model, x, sigmas)
    elif sampler == "euler_ancestral":
        samples = sample_euler_ancestral(model, x, sigmas, SEED, plus1)
    elif sampler == "dpmpp_2m":
        samples = sample_dpmpp_2m(model, x, sigmas)
    elif sampler == "lcm":
        samples = sample_lcm(model, x, sigmas, SEED, plus1)
    else:
        raise ValueError(sampler)
    latent_out = samples.float() / LATENT_SCALE                                                  # process_latent_out
    with torch.no_grad():
        dec = vae.decode(latent_out).sample.float()
    image = torch.clamp((dec + 1.0) / 2.0, min=0.0, max=1.0).movedim(1, -1)                      # VAE.decode
    u8 = np.clip(255. * image[0].numpy(), 0, 255).astype(np.uint8)                              # SaveImage
    from PIL import Image
    Image.fromarray(u8).save(os.path.join(pngs_dir, f"{key}.png"))
    tensors[f"{key}.timesteps"] = torch.tensor(log["timesteps"], dtype=torch.float32)
    tensors[f"{key}.samples_scaled"] = samples.float()
    tensors[f"{key}.latent"] = latent_out
    tensors[f"{key}.decoded_raw"] = dec
    tensors[f"{key}.image"] = image
    tensors[f"{key}.image_u8"] = torch.from_numpy(u8.copy())
    return {"sigmas": fl(sigmas), "timesteps": log["timesteps"], "max_denoise": md,
            "unet_calls_per_step": 2 if (cfg != 1.0) else 1, "png": f"{key}.png",
            "latent_absmax": float(latent_out.abs().max()), "image_mean": float(image.mean())}


E2E_CASES = {
    "a": dict(sampler="euler", scheduler="sgm_uniform", steps=4, cfg=1.0, denoise=1.0),
    "b": dict(sampler="euler", scheduler="normal", steps=6, cfg=5.0, denoise=1.0, negative=NEGATIVE),
    "c": dict(sampler="euler", scheduler="sgm_uniform", steps=1, cfg=1.0, denoise=1.0, pred="x0"),
    "d": dict(sampler="euler", scheduler="sgm_uniform", steps=4, cfg=1.0, denoise=1.0, lora="lora_sgm.safetensors",
              strength_model=0.8, strength_clip=0.8),
    "e": dict(sampler="euler", scheduler="sgm_uniform", steps=4, cfg=1.0, denoise=0.6, img2img="img2img_input.png"),
    "f": dict(sampler="euler_ancestral", scheduler="karras", steps=5, cfg=1.0, denoise=1.0),
    "g": dict(sampler="dpmpp_2m", scheduler="karras", steps=6, cfg=1.0, denoise=1.0),
    "h": dict(sampler="lcm", scheduler="sgm_uniform", steps=4, cfg=1.0, denoise=1.0),
    "f_legacy": dict(sampler="euler_ancestral", scheduler="karras", steps=5, cfg=1.0, denoise=1.0,
                     noise_seed_plus_one=False),
    "h_legacy": dict(sampler="lcm", scheduler="sgm_uniform", steps=4, cfg=1.0, denoise=1.0, noise_seed_plus_one=False),
}


def e2e_section(out, tensors, ms):
    tiny = os.path.join(HERE, "sdxl-tiny")
    with open(os.path.join(tiny, "manifest.json")) as f:
        tiny_manifest = json.load(f)
    base = load_models(os.path.join(tiny, "diffusers"))
    # img2img input: smooth RGB gradient
    from PIL import Image
    yy, xx = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    rgb = np.stack([xx * 4, yy * 4, 255 - (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(os.path.join(out, "img2img_input.png"))
    res, lora_applied = {}, None
    for key, spec in E2E_CASES.items():
        spec = dict(spec)
        models = base
        if spec.get("lora"):
            models, lora_applied = apply_lora(base, os.path.join(tiny, spec["lora"]), tiny_manifest,
                                              spec["strength_model"], spec["strength_clip"])
        if spec.get("img2img"):
            spec["img2img"] = os.path.join(out, spec["img2img"])
        r = run_case(key, spec, models, ms, None, tensors, out)
        if "img2img" in E2E_CASES[key]:
            spec["img2img"] = E2E_CASES[key]["img2img"]
        r["spec"] = spec
        res[key] = r
        print(key, r["sigmas"], r["timesteps"], r["latent_absmax"], flush=True)
    return res, lora_applied


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "sampling"))
    ap.add_argument("--skip-e2e", action="store_true")
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    tensors = {}
    rng = rng_section(tensors)
    print("rng bit-exact emulation:", rng["all_bit_exact"], flush=True)
    ms, scheds, conv, table = schedule_section()
    with open(os.path.join(out, "schedules.json"), "w") as f:
        json.dump({"schedulers": scheds, "timestep_sigma": conv, "table": table}, f, separators=(",", ":"))
    e2e, lora_applied = ({}, None) if args.skip_e2e else e2e_section(out, tensors, ms)
    tensors = {k: v.detach().contiguous() for k, v in sorted(tensors.items())}
    save_file(tensors, os.path.join(out, "e2e.safetensors"))
    import diffusers
    import transformers
    import scipy
    manifest = {
        "generator": "Tests/Fixtures/make_sampling_fixtures.py",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "files": {"manifest.json": "this file", "schedules.json": "sigmas per scheduler x steps 1..50 x denoise "
                  "{1.0, 0.6}; timestep<->sigma samples; the 1000-entry sigma/log-sigma tables",
                  "e2e.safetensors": "tensors (F32, token ids I32, image_u8 U8): see e2e.tensors",
                  "img2img_input.png": "case e input (64x64 RGB gradient, R = 4x, G = 4y, B = 255 - 2(x+y))",
                  "<case>.png": "uint8 image SaveImage would write for each case"},
        "rng": {"facts": RNG_FACTS, **rng},
        "schedules": {"facts": SCHEDULE_FACTS, "file": "schedules.json",
                      "layout": "schedulers[name]['denoise_1.0' | 'denoise_0.6'][str(steps)] = float32 list "
                                "(steps+1 values ending in 0, beta may be shorter)",
                      "sigma_min": table["sigma_min"], "sigma_max": table["sigma_max"]},
        "e2e": {"facts": E2E_FACTS, "model": "Tests/Fixtures/sdxl-tiny/diffusers (fp16 weights, fp32 compute)",
                "prompt": PROMPT, "negative": NEGATIVE, "seed": SEED, "latent_hw": [8, 8], "image_hw": [64, 64],
                "lora_modules_applied": lora_applied, "cases": e2e,
                "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                            for k, v in tensors.items()},
                "tensor_names": E2E_TENSOR_DOC,
                "tolerances": "latent/image: the UNet/VAE are fp32 on both sides but sum order differs: compare "
                              "max|a-b| <= 1e-4 * max(1, max|ref|) per step-chain (multi-step samplers amplify; "
                              "allow 1e-3 for b (cfg 5) and f (ancestral)); image_u8: allow off-by-one where the "
                              "float image is within 1e-4 of a k/255 boundary; sigmas, timesteps, noise: exact."},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print("done")


E2E_TENSOR_DOC = {
    "<k>.ids_te1 / ids_te2": "[1,77] open_clip token ids, CLIP-L padded with 49407, bigG padded with 0",
    "<k>.context": "[1,77,48] concat(CLIP-L penultimate, bigG penultimate)",
    "<k>.pooled": "[1,16] bigG pooled (ln_final at first EOS @ text_projection)",
    "<k>.neg_*": "same for the negative prompt (case b only)",
    "<k>.time_ids": "[1,6] (height, width, crop_h, crop_w, target_height, target_width) = (64,64,0,0,64,64)",
    "<k>.sigmas": "KSampler sigmas (float32)",
    "<k>.timesteps": "timestep fed to the UNet at each model call (float of the integer index)",
    "<k>.noise": "prepare_noise(latent, 42): torch.randn([1,4,8,8]) with torch.manual_seed(42)",
    "<k>.x_start": "noise_scaling(sigmas[0], noise, process_latent_in(latent), max_denoise) = sampler input",
    "<k>.samples_scaled": "sampler output (model space, x 0.13025)",
    "<k>.latent": "LATENT after KSampler = samples / 0.13025 (VAE space) [1,4,8,8]",
    "<k>.decoded_raw": "VAE decoder output [1,3,64,64] before (x+1)/2",
    "<k>.image": "IMAGE [1,64,64,3] = clamp((decoded+1)/2, 0, 1)",
    "<k>.image_u8": "[64,64,3] uint8 = clip(255*image, 0, 255).astype(uint8) (truncation) = <k>.png",
    "e.input_image / e.input_latent": "LoadImage float [1,64,64,3] (uint8/255) and VAEEncode posterior mean [1,4,8,8]",
    "rng.*": "batch_index noise example (see rng.facts.per_batch_noise)",
}

E2E_FACTS = {
    "conditioning": "CLIPTextEncode: SDXL clip = CLIP-L (layer -2, no final norm) ++ bigG (layer -2) on the last "
                    "axis; pooled from bigG. adm (comfy/model_base.py SDXL.encode_adm): width/height default to the "
                    "values samplers.py encode_model_conds fills in = latent W*8, H*8 (noise.shape[3]*8, "
                    "noise.shape[2]*8); crop_w = crop_h = 0; target_width/height = width/height. Order of the six "
                    "256-d (here 8-d) embeddings: height, width, crop_h, crop_w, target_height, target_width.",
    "noise": "comfy/sample.py prepare_noise: torch.manual_seed(seed) then torch.randn(latent.size(), float32, cpu).",
    "start": "comfy/samplers.py KSAMPLER.sample: x = model_sampling.noise_scaling(sigmas[0], noise, latent_image, "
             "max_denoise) where max_denoise = isclose(sigma_max, sigmas[0], rel_tol=1e-5) or sigmas[0] > sigma_max; "
             "EPS.noise_scaling: max_denoise -> noise*sqrt(1+sigma0^2) + latent, else noise*sigma0 + latent. "
             "latent_image = process_latent_in(latent) = latent*0.13025, applied only if "
             "torch.count_nonzero(latent) > 0 (CFGGuider.inner_sample; empty latents stay 0). So full denoise "
             "(normal/sgm_uniform/karras/... first sigma = sigma_max) uses sqrt(1+sigma^2); denoise < 1 (case e: "
             "first sigma below sigma_max) uses latent*0.13025 + noise*sigma0.",
    "model_call": "BaseModel._apply_model: xc = x / (sigma^2 + 1)^0.5 (EPS.calculate_input, sigma_data 1); t = "
                  "model_sampling.timestep(sigma).float(); out = unet(xc, t, ...).float(); denoised = x - out*sigma "
                  "(EPS) or out (X0, case c; ModelSamplingDiscrete with sampling='x0' in ModelSamplingDiscrete node)",
    "cfg": "sampling_function: if math.isclose(cfg, 1.0): uncond = None (one UNet pass); else denoised = uncond + "
           "(cond - uncond)*cfg (on denoised, cfg_function); cond and uncond are batched into one UNet call.",
    "euler": "k_diffusion sample_euler (s_churn 0): d = (x - denoised)/sigma_i; x = x + d*(sigma_{i+1} - sigma_i).",
    "euler_ancestral": "sample_euler_ancestral (eta 1, s_noise 1): sigma_up = min(s_next, sqrt(s_next^2 (s^2 - "
                       "s_next^2)/s^2)), sigma_down = sqrt(s_next^2 - sigma_up^2) (python floats of 0-dim tensors: "
                       "float32 tensor math); if sigma_down == 0: x = denoised; else x = x + d*(sigma_down - s) + "
                       "noise_sampler()*sigma_up.",
    "ancestral_noise": "default_noise_sampler(x, seed=extra_args['seed']) (the KSampler seed): a NEW "
                       "torch.Generator(device=x.device) seeded with seed, PLUS ONE WHEN x IS ON THE CPU in current "
                       "ComfyUI (comfy/k_diffusion/sampling.py default_noise_sampler: `if x.device == "
                       "torch.device('cpu'): seed += 1`); each call = torch.randn(x.size(), generator) continuing "
                       "that stream (one draw per step that adds noise; none on the last step). Older ComfyUI had "
                       "no +1, so the first ancestral draw equalled the initial noise: cases f_legacy / h_legacy. "
                       "Cases f, h follow current ComfyUI on CPU (seed 43 stream).",
    "dpmpp_2m": "sample_dpmpp_2m: t = -log(sigma); h = t_next - t; first step or sigma_next == 0: x = "
                "(sigma_next/sigma)*x - expm1(-h)*denoised (at sigma_next = 0: exactly denoised); else r = h_last/h, "
                "D = (1 + 1/(2r))*denoised - (1/(2r))*old_denoised, x = (sigma_next/sigma)*x - expm1(-h)*D; "
                "sigma_fn(t) = exp(-t) computed from t (not the sigma itself).",
    "lcm": "sample_lcm: x = denoised; if sigma_next > 0: x = noise_scaling(sigma_next, noise_sampler(), x) = x + "
           "noise*sigma_next (max_denoise False). Noise from default_noise_sampler as above.",
    "lora": "comfy/lora.py: W += (strength * alpha/rank) * (up.flatten(1) @ down.flatten(1)).reshape(W.shape) "
            "(alpha absent -> 1.0), fp32, on fp32 weights (ComfyUI's CPU UNet dtype); strength_clip for "
            "lora_te1_/lora_te2_ modules. Case d fuses every module listed in sdxl-tiny manifest lora.modules.",
    "output": "CFGGuider.inner_sample: process_latent_out(samples) = samples/0.13025 -> LATENT (VAE space). "
              "inverse_noise_scaling is the identity for EPS. VAEDecode: clamp((decode(latent)+1)/2, 0, 1), "
              "movedim to [B,H,W,C]. SaveImage: np.clip(255*image, 0, 255).astype(uint8) (truncation).",
    "vae_encode": "LoadImage: RGB uint8/255 -> float; VAEEncode: encode(image*2-1) -> posterior mode (= mean).",
}

if __name__ == "__main__":
    main()
