#!/usr/bin/env python3
"""fp32 GEMM library check: OpenBLAS `cblas_sgemm` (the system libopenblas sdflow links) against
PyTorch's `F.linear` on the SDXL UNet's linear shapes, interleaved in one process (each repetition
times both, so machine load affects both alike). Prints the median GFLOP/s of each and the median
per-repetition time ratio OpenBLAS / PyTorch. Run with OMP_WAIT_POLICY=PASSIVE so that PyTorch's
OpenMP threads do not spin on the cores while OpenBLAS runs.

    OMP_WAIT_POLICY=PASSIVE python3 Benchmarks/linear_blas_vs_torch.py [--threads 2] [--reps 11]
"""
import argparse, ctypes, statistics, time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=11)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ob = ctypes.CDLL("libopenblas.so.0")
    ob.openblas_set_num_threads(a.threads)
    ob.openblas_get_config.restype = ctypes.c_char_p
    print(ob.openblas_get_config().decode(), "| torch", torch.__version__)

    def sgemm(x, w, y):  # y[m, n] = x[m, k] w[n, k]^T, row-major
        m, k = x.shape
        n = w.shape[0]
        ob.cblas_sgemm(101, 111, 112, m, n, k, ctypes.c_float(1.0), ctypes.c_void_p(x.data_ptr()), k,
                       ctypes.c_void_p(w.data_ptr()), k, ctypes.c_float(0.0), ctypes.c_void_p(y.data_ptr()), n)

    shapes = [(1024, 1280, 1280), (1024, 1280, 10240), (1024, 5120, 1280), (4096, 640, 640),
              (4096, 640, 5120), (4096, 2560, 640), (256, 1280, 1280), (256, 1280, 10240)]
    for m, k, n in shapes:
        x, w, y = torch.randn(m, k), torch.randn(n, k) * 0.03, torch.empty(m, n)
        torch.nn.functional.linear(x, w); sgemm(x, w, y)
        tt, to = [], []
        for _ in range(a.reps):
            t = time.perf_counter(); torch.nn.functional.linear(x, w); tt.append(time.perf_counter() - t)
            t = time.perf_counter(); sgemm(x, w, y); to.append(time.perf_counter() - t)
        fl = 2.0 * m * n * k
        ratio = statistics.median(b / c for b, c in zip(to, tt))
        print(f"{m}x{k}x{n}: torch {fl / statistics.median(tt) / 1e9:6.0f} GFLOP/s  openblas "
              f"{fl / statistics.median(to) / 1e9:6.0f} GFLOP/s  time openblas/torch {ratio:.2f}")


if __name__ == "__main__":
    main()
