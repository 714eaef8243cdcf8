#!/usr/bin/env python3
"""PyTorch peer of `sdflow bench kernels` (Sources/Tensor/KernelBenchmark.swift): the same
SDXL-UNet-at-1024x1024 kernel shapes on the CPU, printed as the same JSON lines, so ratios can be
quoted from one machine and one session. Uses torch's default CPU thread count unless --threads.

Usage: python Benchmarks/torch_kernels.py [--quick] [--threads N]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def median_time(fn, runs):
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    n = len(ts)
    return ts[n // 2] if n % 2 else (ts[n // 2 - 1] + ts[n // 2]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    runs = 3 if a.quick else 7
    out = []

    def emit(kernel, kind, t, flops=None, nbytes=None):
        d = {"kernel": kernel, "kind": kind, "median_s": round(t, 6)}
        if flops is not None:
            d["gflops"] = round(flops / t / 1e9, 2)
        if nbytes is not None:
            d["gbps"] = round(nbytes / t / 1e9, 2)
        out.append(d)
        print(json.dumps(d), flush=True)

    with torch.inference_mode():
        src = torch.randn(16 << 20)
        dst = torch.empty_like(src)
        emit("memcpy 64 MiB", "memcpy", median_time(lambda: dst.copy_(src), runs), nbytes=2 * src.numel() * 4)
        for m, k, n in [(4096, 640, 640), (1024, 1280, 10240)]:
            x, w, b = torch.randn(m, k), torch.randn(n, k) * 0.03, torch.randn(n)
            emit(f"linear {m}x{k}x{n}", "linear", median_time(lambda: F.linear(x, w, b), runs), flops=2.0 * m * k * n)
        for c, hw in [(320, 128), (640, 64), (1280, 32)]:
            x, w, b = torch.randn(1, c, hw, hw), torch.randn(c, c, 3, 3) * 0.02, torch.randn(c)
            emit(f"conv3x3 {c}->{c} @{hw}x{hw}", "conv", median_time(lambda: F.conv2d(x, w, b, padding=1), runs),
                 flops=2.0 * c * 9 * c * hw * hw)
        for l, h in [(4096, 10)] if a.quick else [(4096, 10), (1024, 20)]:
            d = 64
            q, k, v = (torch.randn(1, h, l, d) for _ in range(3))
            emit(f"attention {l} tok x {h} heads x {d}", "attention",
                 median_time(lambda: F.scaled_dot_product_attention(q, k, v), runs), flops=4.0 * l * l * d * h)
        x, g, b = torch.randn(1, 320, 128, 128), torch.randn(320), torch.randn(320)
        emit("groupnorm+silu 320x128x128 g32", "norm", median_time(lambda: F.silu(F.group_norm(x, 32, g, b, 1e-5)), runs),
             nbytes=2 * x.numel() * 4)
        emit("groupnorm 320x128x128 g32", "norm", median_time(lambda: F.group_norm(x, 32, g, b, 1e-5), runs), nbytes=2 * x.numel() * 4)
        x, g, b = torch.randn(4096, 640), torch.randn(640), torch.randn(640)
        emit("layernorm 4096x640", "norm", median_time(lambda: F.layer_norm(x, (640,), g, b, 1e-5), runs), nbytes=2 * x.numel() * 4)
        x = torch.randn(4096, 4096)
        emit("softmax 4096x4096", "eltwise", median_time(lambda: torch.softmax(x * 0.125, -1), runs), nbytes=2 * x.numel() * 4)
        x = torch.randn(4096, 5120)
        emit("gelu 4096x5120", "eltwise", median_time(lambda: F.gelu(x), runs), nbytes=2 * x.numel() * 4)
        emit("silu 4096x5120", "eltwise", median_time(lambda: F.silu(x), runs), nbytes=2 * x.numel() * 4)


if __name__ == "__main__":
    main()
