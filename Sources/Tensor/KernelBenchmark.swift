import Foundation
import CBLAS

/// One benchmark result row.
public struct KernelBenchmarkResult: Sendable {
    public var kernel: String
    /// conv | linear | attention | norm | eltwise | memcpy
    public var kind: String
    public var medianSeconds: Double
    /// Achieved GFLOP/s (compute kernels).
    public var gflops: Double?
    /// GFLOP/s of raw `cblas_sgemm` on the equivalent GEMM(s), measured in the same run.
    public var sgemmGflops: Double?
    /// Achieved GB/s counting each input byte read once and each output byte written once.
    public var gbps: Double?
    /// GB/s of a multithreaded memcpy of the same traffic, alternated with this kernel's runs.
    public var memcpyGbps: Double?

    /// The JSON line `sdflow bench kernels --json` prints.
    public var jsonLine: String {
        var s = "{\"kernel\":\"\(kernel)\",\"kind\":\"\(kind)\",\"median_s\":\(fmt(medianSeconds, 6))"
        if let gflops { s += ",\"gflops\":\(fmt(gflops, 2))" }
        if let sgemmGflops { s += ",\"sgemm_gflops\":\(fmt(sgemmGflops, 2))" }
        if let gbps { s += ",\"gbps\":\(fmt(gbps, 2))" }
        return s + "}"
    }

    private func fmt(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }
}

/// Runs the SDXL-UNet-at-1024x1024 kernel shapes and reports, per kernel, the median time, GFLOP/s and
/// the raw sgemm GFLOP/s of the equivalent GEMM (compute kernels; measured alternately with the
/// kernel), or GB/s (memory-bound kernels; compared with a multithreaded memcpy of the same traffic,
/// also alternated with the kernel). A 64 MiB memcpy row gives the machine's copy bandwidth.
///
/// - json: one JSON object per line (`KernelBenchmarkResult.jsonLine`); otherwise an aligned table
///   with the ratios to sgemm and memcpy.
/// - quick: fewer repetitions (for smoke tests).
public func runKernelBenchmarks(json: Bool, quick: Bool, output: (String) -> Void) {
    let results = KernelBenchmarks(quick: quick).run(report: output)
    if json {
        for r in results { output(r.jsonLine) }
        return
    }
    let memcpy = results.first { $0.kind == "memcpy" }?.gbps
    func f1(_ v: Double?) -> String { if let v { return String(format: "%.1f", v) } else { return "" } }
    func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
        s.count >= n ? s : (left ? String(repeating: " ", count: n - s.count) + s : s + String(repeating: " ", count: n - s.count))
    }
    let header = pad("kernel", 36) + pad("kind", 10) + pad("median ms", 11, left: true) + pad("GFLOP/s", 10, left: true)
        + pad("sgemm", 10, left: true) + pad("x sgemm", 9, left: true) + pad("GB/s", 9, left: true) + pad("x memcpy", 10, left: true)
    output(header)
    output(String(repeating: "-", count: header.count))
    for r in results {
        var line = pad(r.kernel, 36) + pad(r.kind, 10) + pad(String(format: "%.3f", r.medianSeconds * 1000), 11, left: true)
        line += pad(f1(r.gflops), 10, left: true)
        line += pad(f1(r.sgemmGflops), 10, left: true)
        if let g = r.gflops, let s = r.sgemmGflops, s > 0 { line += pad(String(format: "%.2f", g / s), 9, left: true) } else { line += pad("", 9) }
        line += pad(f1(r.gbps), 9, left: true)
        if let b = r.gbps, let m = r.memcpyGbps ?? memcpy, m > 0, r.kind != "memcpy" { line += pad(String(format: "%.2f", b / m), 10, left: true) }
        output(line)
    }
    output("threads: \(Parallel.cores) (Dispatch) / \(openblas_get_num_threads()) (OpenBLAS)")
}

/// The benchmark cases. Inputs are deterministic pseudo-random values.
struct KernelBenchmarks {
    let quick: Bool
    var runs: Int { quick ? 3 : 7 }

    /// Median wall time of `runs` calls after one warm-up call.
    func time(_ body: () throws -> Void) rethrows -> Double {
        try body()
        var t: [Double] = []
        for _ in 0..<runs {
            let s = DispatchTime.now().uptimeNanoseconds
            try body()
            t.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9)
        }
        t.sort()
        return t.count % 2 == 1 ? t[t.count / 2] : (t[t.count / 2 - 1] + t[t.count / 2]) / 2
    }

    func random(_ shape: [Int], scale: Float = 1, seed: UInt64 = 1) -> Tensor {
        var state = seed &* 0x9E3779B97F4A7C15 | 1
        let n = shape.reduce(1, *)
        let s = TensorStorage(byteCount: n * 4)
        let p = s.base.assumingMemoryBound(to: Float.self)
        for i in 0..<n {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            p[i] = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
        return Tensor(unchecked: s, shape: shape, dtype: .f32)
    }

    /// Medians of `ours` and `reference`, measured alternately (one warm-up each, then `runs` pairs)
    /// so that load from other processes affects both sides of a ratio alike.
    func timePair(_ ours: () throws -> Void, _ reference: () throws -> Void) rethrows -> (Double, Double) {
        try ours(); try reference()
        var a: [Double] = [], b: [Double] = []
        for _ in 0..<runs {
            var s = DispatchTime.now().uptimeNanoseconds
            try ours()
            a.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9)
            s = DispatchTime.now().uptimeNanoseconds
            try reference()
            b.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9)
        }
        func median(_ t: [Double]) -> Double {
            let t = t.sorted()
            return t.count % 2 == 1 ? t[t.count / 2] : (t[t.count / 2 - 1] + t[t.count / 2]) / 2
        }
        return (median(a), median(b))
    }

    /// A raw sgemm of C[m,n] = A[m,k] B (transB: B stored [n,k]) on fresh operands, as a closure.
    func sgemmCall(m: Int, n: Int, k: Int, transB: Bool) -> () -> Void {
        let a = random([m, k], seed: 11), b = random(transB ? [n, k] : [k, n], seed: 12)
        let c = TensorStorage(byteCount: m * n * 4)
        let cp = c.base.assumingMemoryBound(to: Float.self)
        return {
            BLAS.sgemm(transB: transB, m: m, n: n, k: k, a: a.f32Pointer, lda: k, b: b.f32Pointer,
                       ldb: transB ? k : n, c: cp, ldc: n)
            withExtendedLifetime((a, b, c)) {}
        }
    }

    func run(report: (String) -> Void) -> [KernelBenchmarkResult] {
        BLAS.ensureConfigured()
        var out: [KernelBenchmarkResult] = []
        func note(_ r: KernelBenchmarkResult) {
            out.append(r)
        }
        do {
            // memcpy reference bandwidth: 64 MiB, split over the cores like the kernels.
            let n = 16 << 20
            let src = random([n]), dst = TensorStorage(byteCount: n * 4)
            let t = time {
                let s = src.rawPointer, d = dst.base
                Parallel.chunks(n * 4, minChunk: 1 << 20) { r in
                    d.advanced(by: r.lowerBound).copyMemory(from: s.advanced(by: r.lowerBound), byteCount: r.count)
                }
            }
            note(.init(kernel: "memcpy 64 MiB", kind: "memcpy", medianSeconds: t, gbps: Double(2 * n * 4) / t / 1e9))

            // Linear layers (tokens x in -> out), f32 weights with bias.
            for (m, k, nOut, label) in [(4096, 640, 640, "linear 4096x640x640"), (1024, 1280, 10240, "linear 1024x1280x10240")] {
                let x = random([m, k]), w = random([nOut, k], scale: 0.03, seed: 2), b = random([nOut], seed: 3)
                let (t, raw) = try timePair({ _ = try Ops.linear(x, weight: w, bias: b) }, sgemmCall(m: m, n: nOut, k: k, transB: true))
                let flops = 2.0 * Double(m * k * nOut)
                note(.init(kernel: label, kind: "linear", medianSeconds: t, gflops: flops / t / 1e9, sgemmGflops: flops / raw / 1e9))
            }
            // The same linear with an f16 weight (widened per call).
            do {
                let x = random([1024, 1280]), w = try random([10240, 1280], scale: 0.03, seed: 2).converted(to: .f16)
                let (t, raw) = try timePair({ _ = try Ops.linear(x, weight: w) }, sgemmCall(m: 1024, n: 10240, k: 1280, transB: true))
                let flops = 2.0 * Double(1024 * 1280 * 10240)
                note(.init(kernel: "linear 1024x1280x10240 f16 weight", kind: "linear", medianSeconds: t, gflops: flops / t / 1e9, sgemmGflops: flops / raw / 1e9))
            }

            // 3x3 convolutions, padding 1, with bias. Equivalent GEMM: [O, 9C] x [9C, HW].
            let convs = quick ? [(320, 128), (1280, 32)] : [(320, 128), (640, 64), (1280, 32)]
            for (c, hw) in convs {
                let x = random([1, c, hw, hw]), w = random([c, c, 3, 3], scale: 0.02, seed: 4), b = random([c], seed: 5)
                let (t, raw) = try timePair({ _ = try Ops.conv2d(x, weight: w, bias: b, stride: 1, padding: 1) },
                                            sgemmCall(m: c, n: hw * hw, k: 9 * c, transB: false))
                let flops = 2.0 * Double(c) * Double(9 * c) * Double(hw * hw)
                note(.init(kernel: "conv3x3 \(c)->\(c) @\(hw)x\(hw)", kind: "conv", medianSeconds: t, gflops: flops / t / 1e9, sgemmGflops: flops / raw / 1e9))
            }

            // Self-attention at the UNet's two sizes at 1024x1024 (4096 tokens x 10 heads in the 64x64
            // blocks, 1024 tokens x 20 heads in the 32x32 ones, 60 of its 70 self-attentions), heads of 64.
            // Equivalent GEMMs per head: QK^T and PV.
            for (l, h) in quick ? [(4096, 10)] : [(4096, 10), (1024, 20)] {
                let d = 64
                let q = random([1, l, h * d], seed: 6), k = random([1, l, h * d], seed: 7), v = random([1, l, h * d], seed: 8)
                let flops = 4.0 * Double(l) * Double(l) * Double(d) * Double(h)
                let s = TensorStorage(byteCount: l * l * 4)
                let sp = s.base.assumingMemoryBound(to: Float.self)
                let o = TensorStorage(byteCount: l * h * d * 4)
                let (t, raw) = try timePair({ _ = try Ops.attention(query: q, key: k, value: v, heads: h) }) {
                    for head in 0..<h {
                        BLAS.sgemm(transB: true, m: l, n: l, k: d, a: q.f32Pointer + head * d, lda: h * d,
                                   b: k.f32Pointer + head * d, ldb: h * d, c: sp, ldc: l)
                        BLAS.sgemm(m: l, n: d, k: l, a: sp, lda: l, b: v.f32Pointer + head * d, ldb: h * d,
                                   c: o.base.assumingMemoryBound(to: Float.self) + head * d, ldc: h * d)
                    }
                }
                note(.init(kernel: "attention \(l) tok x \(h) heads x \(d)", kind: "attention", medianSeconds: t, gflops: flops / t / 1e9, sgemmGflops: flops / raw / 1e9))
            }

            // Memory-bound kernels: GB/s = (bytes read + bytes written) / time. Each is alternated
            // with a multithreaded memcpy moving the same number of bytes (read + write), whose GB/s
            // the table's "x memcpy" column divides by.
            func memoryBound(_ label: String, _ kind: String, bytesRead: Int, bytesWritten: Int, _ body: () throws -> Void) throws {
                let n = (bytesRead + bytesWritten) / 2
                let src = TensorStorage(byteCount: n, zeroed: true), dst = TensorStorage(byteCount: n, zeroed: true)
                let (t, tc) = try timePair(body) {
                    Parallel.chunks(n, minChunk: 1 << 20) { r in
                        dst.base.advanced(by: r.lowerBound).copyMemory(from: src.base.advanced(by: r.lowerBound), byteCount: r.count)
                    }
                }
                var r = KernelBenchmarkResult(kernel: label, kind: kind, medianSeconds: t, gbps: Double(bytesRead + bytesWritten) / t / 1e9)
                r.memcpyGbps = Double(2 * n) / tc / 1e9
                note(r)
            }
            do {
                let x = random([1, 320, 128, 128], scale: 2), g = random([320], seed: 9), b = random([320], seed: 10)
                try memoryBound("groupnorm+silu 320x128x128 g32", "norm", bytesRead: x.byteCount, bytesWritten: x.byteCount) {
                    _ = try Ops.groupNorm(x, groups: 32, weight: g, bias: b, eps: 1e-5, silu: true)
                }
                try memoryBound("groupnorm 320x128x128 g32", "norm", bytesRead: x.byteCount, bytesWritten: x.byteCount) {
                    _ = try Ops.groupNorm(x, groups: 32, weight: g, bias: b, eps: 1e-5)
                }
            }
            do {
                let x = random([4096, 640], scale: 2), g = random([640], seed: 9), b = random([640], seed: 10)
                try memoryBound("layernorm 4096x640", "norm", bytesRead: x.byteCount, bytesWritten: x.byteCount) {
                    _ = try Ops.layerNorm(x, weight: g, bias: b, eps: 1e-5)
                }
            }
            do {
                let x = random([4096, 4096], scale: 4)
                try memoryBound("softmax 4096x4096", "eltwise", bytesRead: x.byteCount, bytesWritten: x.byteCount) {
                    _ = try Ops.softmax(x, scale: 0.125)
                }
            }
            do {
                let x = random([4096, 5120], scale: 3)
                try memoryBound("gelu 4096x5120", "eltwise", bytesRead: x.byteCount, bytesWritten: x.byteCount) { _ = try Ops.gelu(x) }
                let xg = random([4096, 10240], scale: 3)
                try memoryBound("geglu 4096x10240->5120", "eltwise", bytesRead: xg.byteCount, bytesWritten: xg.byteCount / 2) { _ = try Ops.geglu(xg) }
                try memoryBound("silu 4096x5120", "eltwise", bytesRead: x.byteCount, bytesWritten: x.byteCount) { _ = try Ops.silu(x) }
            }
            do {
                let a = random([2, 640, 64, 64]), b = random([2, 640, 1, 1], seed: 3)
                try memoryBound("add bcast 2x640x64x64 + 2x640x1x1", "eltwise", bytesRead: a.byteCount, bytesWritten: a.byteCount) {
                    _ = try Ops.add(a, b)
                }
            }
        } catch {
            report("benchmark failed: \(error)")
        }
        return out
    }
}
