#!/usr/bin/env python3
"""Regenerates the Tensor-module fixtures in Tests/Fixtures/tensor/ from PyTorch.

Each kernel family gets one safetensors file holding inputs and torch's fp32 outputs for several
deliberately awkward cases (sizes that are not multiples of 16, 1x1 spatial, batch 2, f16/bf16
weights, asymmetric padding, cross-attention with 77 keys). Tensor names are `<case>.<role>`;
per-case parameters (groups, eps, stride, ...) go in `__metadata__` as JSON so the Swift tests read
everything from the file.

It also checks the reverse direction: `ours_written.safetensors` is produced by the Swift writer
(test `writerGolden` with SDFLOW_WRITE_GOLDEN=1) and must load in safetensors.torch with the exact
values the Swift test wrote.

Usage: python Tests/Fixtures/make_tensor_fixtures.py   (versions: requirements.txt)
"""
import json
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file, load_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tensor")
os.makedirs(OUT, exist_ok=True)
g = torch.Generator().manual_seed(1234)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float32) * scale


def save(name, tensors, params):
    tensors = {k: v.contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, name), metadata={"params": json.dumps(params, sort_keys=True)})


# ---------------------------------------------------------------- dtypes / exact widening
def dtypes():
    bits = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    f16 = bits.view(torch.float16).clone()
    bf16 = bits.view(torch.bfloat16).clone()
    narrow_src = torch.cat([randn(999, scale=3.0), torch.tensor([0.0, -0.0, 65504.0, 65520.0, 1e-8, 6e-8, -3e-5,
                                                               1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11, 3.0e38, -1e-40])])
    t = {
        "f16_all": f16,                 # every f16 bit pattern 0..65535
        "f16_all_as_f32": f16.float(),  # torch's exact widening
        "bf16_all": bf16,
        "bf16_all_as_f32": bf16.float(),
        "f32_arange": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5 - 3.0,
        "i64_big": torch.arange(-5, 5, dtype=torch.int64) * 10 ** 12,
        "i32_arange": torch.arange(-3, 4, dtype=torch.int32).reshape(7, 1),
        "u8_all": torch.arange(256, dtype=torch.int32).to(torch.uint8),
        "narrow_src": narrow_src,
        "narrow_f16": narrow_src.half(),
        "narrow_bf16": narrow_src.bfloat16(),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
    }
    save_file(t, os.path.join(OUT, "dtypes.safetensors"), metadata={"format": "pt", "note": "sdflow fixture"})


# ---------------------------------------------------------------- linear
def linear():
    t, p = {}, {}
    cases = [
        ("f32_bias", (2, 3, 37), 19, torch.float32, True),
        ("f16_bias", (5, 40), 33, torch.float16, True),
        ("bf16_nobias", (1, 1, 17), 65, torch.bfloat16, False),
        ("f32_m1", (1, 130), 7, torch.float32, True),
    ]
    for name, xs, out, wdt, has_bias in cases:
        x = randn(*xs)
        w = randn(out, xs[-1], scale=1 / math.sqrt(xs[-1])).to(wdt)
        b = randn(out) if has_bias else None
        y = F.linear(x, w.float(), b)
        t[f"{name}.x"], t[f"{name}.weight"], t[f"{name}.y"] = x, w, y
        if b is not None:
            t[f"{name}.bias"] = b
        p[name] = {}
    save("linear.safetensors", t, p)


# ---------------------------------------------------------------- conv2d
def conv():
    t, p = {}, {}
    # name, N, C, H, W, O, k, stride, pad(l, r, t, b), wdtype, bias
    cases = [
        ("k3_p1_b2", 2, 5, 9, 11, 7, 3, 1, (1, 1, 1, 1), torch.float32, True),
        ("k3_s2_asym_f16", 1, 6, 9, 10, 5, 3, 2, (0, 1, 0, 1), torch.float16, True),
        ("k1_plain", 2, 6, 5, 3, 4, 1, 1, (0, 0, 0, 0), torch.float32, True),
        ("k3_p1_1x1_bf16", 1, 4, 1, 1, 3, 3, 1, (1, 1, 1, 1), torch.bfloat16, False),
        ("k3_s2_p1", 1, 3, 8, 7, 17, 3, 2, (1, 1, 1, 1), torch.float32, True),
        ("k3_p0", 1, 19, 6, 5, 2, 3, 1, (0, 0, 0, 0), torch.float32, False),
        ("k1_s2", 1, 3, 5, 6, 4, 1, 2, (0, 0, 0, 0), torch.float32, True),
    ]
    for name, n, c, h, w_, o, k, s, pad, wdt, has_bias in cases:
        x = randn(n, c, h, w_)
        w = randn(o, c, k, k, scale=1 / math.sqrt(c * k * k)).to(wdt)
        b = randn(o) if has_bias else None
        y = F.conv2d(F.pad(x, pad), w.float(), b, stride=s)
        t[f"{name}.x"], t[f"{name}.weight"], t[f"{name}.y"] = x, w, y
        if b is not None:
            t[f"{name}.bias"] = b
        p[name] = {"stride": s, "left": pad[0], "right": pad[1], "top": pad[2], "bottom": pad[3]}
    save("conv.safetensors", t, p)


# ---------------------------------------------------------------- norms
def norms():
    t, p = {}, {}
    for name, shape, groups, eps, affine, silu in [
        ("gn_affine", (2, 12, 5, 7), 4, 1e-5, True, False),
        ("gn_silu", (2, 12, 5, 7), 3, 1e-5, True, True),
        ("gn_1x1", (1, 6, 1, 1), 3, 1e-6, True, False),
        ("gn_3d_noaffine", (2, 8, 10), 2, 1e-6, False, False),
        ("gn_offset", (1, 32, 9, 9), 32, 1e-5, True, True),
    ]:
        x = randn(*shape) * 3 + 5  # non-zero mean exercises the two-pass variance
        c = shape[1]
        w = randn(c) if affine else None
        b = randn(c) if affine else None
        y = F.group_norm(x, groups, w, b, eps)
        if silu:
            y = F.silu(y)
        t[f"{name}.x"], t[f"{name}.y"] = x, y
        if affine:
            t[f"{name}.weight"], t[f"{name}.bias"] = w, b
        p[name] = {"kind": "group", "groups": groups, "eps": eps, "silu": silu}
    for name, shape, eps, affine in [("ln_affine", (3, 5, 33), 1e-5, True), ("ln_plain", (4, 17), 1e-6, False)]:
        x = randn(*shape) * 2 + 1
        d = shape[-1]
        w = randn(d) if affine else None
        b = randn(d) if affine else None
        y = F.layer_norm(x, (d,), w, b, eps)
        t[f"{name}.x"], t[f"{name}.y"] = x, y
        if affine:
            t[f"{name}.weight"], t[f"{name}.bias"] = w, b
        p[name] = {"kind": "layer", "eps": eps}
    save("norm.safetensors", t, p)


# ---------------------------------------------------------------- activations and softmax
def activations():
    t, p = {}, {}
    x = torch.cat([torch.linspace(-12, 12, 997), randn(3000, scale=3.0),
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30, 80.0, -80.0, 100.0, -100.0, 1e4, -1e4])])
    t["act.x"] = x
    t["act.silu"] = F.silu(x)
    t["act.gelu"] = F.gelu(x)
    t["act.quick_gelu"] = x * torch.sigmoid(1.702 * x)
    gx = randn(2, 7, 2 * 19, scale=2.0)
    val, gate = gx.chunk(2, dim=-1)
    t["geglu.x"], t["geglu.y"] = gx, val * F.gelu(gate)
    sx = randn(4, 5, 37, scale=4.0)
    sx[0, 0, :] += 1000.0  # stability: large common offset
    t["softmax.x"], t["softmax.y"] = sx, torch.softmax(sx, dim=-1)
    t["softmax.y_scaled"] = torch.softmax(sx * 0.125, dim=-1)
    p["softmax"] = {"scale": 0.125}
    save("activation.safetensors", t, p)


# ---------------------------------------------------------------- attention
def attention():
    t, p = {}, {}
    for name, b, lq, lk, heads, d, causal in [
        ("self_small", 2, 19, 19, 3, 8, False),
        ("cross_77", 1, 33, 77, 2, 64, False),
        ("causal", 1, 17, 17, 2, 16, True),
        ("cross_b2", 2, 21, 5, 4, 12, False),
    ]:
        q, k, v = randn(b, lq, heads * d), randn(b, lk, heads * d), randn(b, lk, heads * d)
        split = lambda z, l: z.view(b, l, heads, d).transpose(1, 2)
        o = F.scaled_dot_product_attention(split(q, lq), split(k, lk), split(v, lk), is_causal=causal)
        o = o.transpose(1, 2).reshape(b, lq, heads * d)
        t[f"{name}.q"], t[f"{name}.k"], t[f"{name}.v"], t[f"{name}.y"] = q, k, v, o
        p[name] = {"heads": heads, "causal": causal}
    save("attention.safetensors", t, p)


# ---------------------------------------------------------------- shape ops, broadcasting, embedding
def get_timestep_embedding(timesteps, dim, flip_sin_to_cos=True, downscale_freq_shift=0.0, max_period=10000):
    # The formula of diffusers.models.embeddings.get_timestep_embedding (scale=1), restated here.
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32)
    exponent = exponent / (half - downscale_freq_shift)
    emb = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def shapes():
    t, p = {}, {}
    x = randn(2, 3, 4, 5)
    t["up.x"], t["up.y"] = x, F.interpolate(x, scale_factor=2, mode="nearest")
    a, b, c = randn(2, 3, 4), randn(2, 5, 4), randn(2, 1, 4)
    t["cat.a"], t["cat.b"], t["cat.c"], t["cat.y1"] = a, b, c, torch.cat([a, b, c], dim=1)
    t["cat.y2"] = torch.cat([a, a], dim=-1)
    t["cat.y0"] = torch.cat([a, a, a], dim=0)
    pairs = [("bc_nchw", (2, 3, 4, 5), (2, 3, 1, 1)), ("bc_vec", (2, 6, 7), (7,)), ("bc_outer", (4, 1, 3), (1, 5, 1)),
             ("bc_col_row", (3, 1), (1, 4)), ("bc_same", (3, 17), (3, 17)), ("bc_scalar", (5, 2), (1,)),
             ("bc_left", (1, 3, 1), (2, 3, 6))]
    for name, sa, sb in pairs:
        u, v = randn(*sa), randn(*sb)
        t[f"{name}.a"], t[f"{name}.b"], t[f"{name}.add"], t[f"{name}.mul"] = u, v, u + v, u * v
    ts = torch.tensor([0.0, 1.0, 250.5, 999.0, 1024.0])
    for dim in (320, 256, 7):
        t[f"temb{dim}.t"], t[f"temb{dim}.y"] = ts, get_timestep_embedding(ts, dim)
    save("shape.safetensors", t, p)


def check_ours_written():
    path = os.path.join(OUT, "ours_written.safetensors")
    if not os.path.exists(path):
        print("ours_written.safetensors missing: run `SDFLOW_WRITE_GOLDEN=1 swift test --filter writerGolden` first")
        return
    from safetensors import safe_open
    d = load_file(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    assert meta == {"format": "pt", "writer": "sdflow"}, meta
    assert torch.equal(d["a.f32"], torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 0.5)
    assert torch.equal(d["b.f16"], torch.tensor([0.5, -2.0, 65504.0, 6e-8, 0.0], dtype=torch.float16))
    assert torch.equal(d["c.bf16"], torch.tensor([1.0, -3.5, 1e30], dtype=torch.bfloat16))
    assert torch.equal(d["d.i64"], torch.tensor([-(10 ** 12), 7], dtype=torch.int64))
    assert torch.equal(d["e.u8"], torch.tensor([0, 1, 128, 255], dtype=torch.uint8))
    assert d["f.empty"].shape == (0, 4) and d["f.empty"].dtype == torch.float32
    assert d["g.name \"quoted\"\n"].shape == (1,)
    print("ours_written.safetensors: torch reads it back exactly")


if __name__ == "__main__":
    torch.manual_seed(0)
    dtypes(); linear(); conv(); norms(); activations(); attention(); shapes()
    check_ours_written()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"fixtures written to {OUT}: {total / 1e6:.2f} MB")
