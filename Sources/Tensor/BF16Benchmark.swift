import Foundation
import CAMX

/// bf16 GEMM micro-benchmark for the SDXL UNet's shapes at 1024x1024: per kernel and tier (AMX,
/// AVX512-BF16), the median time and GFLOP/s, next to the fp32 rate of the same work (raw
/// `cblas_sgemm` for the linears; `Ops.conv2d` / `Ops.attention` for conv and attention) and the bare
/// register-only multiply-add rate of each tier on all cores (`sdf_bf16_peak`), all measured in this
/// run: `frac_tier_peak` / `frac_amx_peak` are medians of kernel rate / bare rate measured just
/// before each kernel run. Prints one JSON object per line. SDFLOW_BENCH_RUNS sets the run count.
public func runBF16Benchmarks(output: (String) -> Void) {
    let runs = Int(ProcessInfo.processInfo.environment["SDFLOW_BENCH_RUNS"] ?? "") ?? 5
    func median(_ body: () throws -> Void) rethrows -> Double {
        try body()
        var t: [Double] = []
        for _ in 0..<runs {
            let s = DispatchTime.now().uptimeNanoseconds
            try body()
            t.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9)
        }
        t.sort()
        return t[t.count / 2]
    }
    func random(_ shape: [Int], scale: Float = 1, seed: UInt64) -> Tensor {
        var state = seed &* 0x9E3779B97F4A7C15 | 1
        let n = shape.reduce(1, *)
        let s = TensorStorage(byteCount: n * 4)
        let p = s.base.assumingMemoryBound(to: Float.self)
        for i in 0..<n {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            p[i] = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
        return try! Tensor(storage: s, shape: shape, dtype: .f32)
    }
    func f(_ v: Double, _ d: Int = 2) -> String { String(format: "%.\(d)f", v) }

    let hw = BF16Backend.hardwareTier
    let tiers = hw >= 1 ? Array((1...hw).reversed()) : []
    BLAS.ensureConfigured()
    /// Bare register-only rate of `tier` on all cores at once, over ~`seconds`.
    func barePeak(_ tier: Int, seconds: Double) -> Double {
        let iters = max(1000, Int(seconds * (tier == 2 ? 4e7 : 4e8)))   // ~2 TFLOP/s, ~0.1 TFLOP/s per core
        var flops = [Double](repeating: 0, count: Parallel.cores)
        let s = DispatchTime.now().uptimeNanoseconds
        flops.withUnsafeMutableBufferPointer { fp in
            let p = fp.baseAddress!
            Parallel.forEach(Parallel.cores) { i in p[i] = sdf_bf16_peak(Int32(tier), iters) }
        }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9
        return flops.reduce(0, +) / dt / 1e9
    }
    func med(_ v: [Double]) -> Double { let t = v.sorted(); return t[t.count / 2] }
    var peak: [Int: Double] = [:]
    for t in tiers {
        let p = med((0..<5).map { _ in barePeak(t, seconds: 0.05) })
        peak[t] = p
        output("{\"kernel\":\"bare \(t == 2 ? "tdpbf16ps" : "vdpbf16ps") loop\",\"tier\":\"\(BF16Backend.name(ofTier: t))\",\"threads\":\(Parallel.cores),\"gflops\":\(f(p, 1))}")
    }

    // The machine may be shared: each timed kernel run is preceded by a short bare-loop run of the
    // same tier (and, with AMX, of the AMX loop), and the fractions are medians of the per-pair
    // ratios, so both sides see the same conditions.
    func report(_ kernel: String, flops: Double, fp32: Double, _ bf16: (Int) throws -> Void) throws {
        let tf = flops / fp32 / 1e9
        output("{\"kernel\":\"\(kernel)\",\"tier\":\"fp32\",\"median_s\":\(f(fp32, 6)),\"gflops\":\(f(tf, 1))}")
        for t in tiers {
            var times: [Double] = [], fracTier: [Double] = [], fracAMX: [Double] = []
            try BF16Backend.withTier(t) {
                try bf16(t)
                for _ in 0..<runs {
                    let pt = barePeak(t, seconds: 0.01)
                    let pa = hw == 2 ? (t == 2 ? pt : barePeak(2, seconds: 0.01)) : 0
                    let s = DispatchTime.now().uptimeNanoseconds
                    try bf16(t)
                    let dt = Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9
                    times.append(dt)
                    fracTier.append(flops / dt / 1e9 / pt)
                    if hw == 2 { fracAMX.append(flops / dt / 1e9 / pa) }
                }
            }
            let s = med(times), g = flops / s / 1e9
            var line = "{\"kernel\":\"\(kernel)\",\"tier\":\"\(BF16Backend.name(ofTier: t))\",\"median_s\":\(f(s, 6)),\"gflops\":\(f(g, 1))"
            line += ",\"x_fp32\":\(f(g / tf)),\"frac_tier_peak\":\(f(med(fracTier), 3))"
            if hw == 2 { line += ",\"frac_amx_peak\":\(f(med(fracAMX), 3))" }
            output(line + "}")
        }
    }

    /// Median time of the fp32 sgemm x [m, k] . w [n, k]^T (the fp32 column of a linear's report).
    func sgemmTime(_ x: Tensor, _ w: Tensor, m: Int, k: Int, n: Int) -> Double {
        let c = TensorStorage(byteCount: m * n * 4)
        return median {
            BLAS.sgemm(transB: true, m: m, n: n, k: k, a: x.f32Pointer, lda: k, b: w.f32Pointer, ldb: k,
                       c: c.base.assumingMemoryBound(to: Float.self), ldc: n)
        }
    }

    do {
        for (m, k, n) in [(4096, 640, 640), (1024, 1280, 10240), (1024, 5120, 1280)] {
            let x = random([m, k], seed: 1), w = random([n, k], scale: 0.03, seed: 2), b = random([n], seed: 3)
            let fp32 = sgemmTime(x, w, m: m, k: k, n: n)
            let packed = try PackedBF16Weight(w)
            try report("linear M=\(m) K=\(k) N=\(n)", flops: 2.0 * Double(m * k * n), fp32: fp32) { _ in
                _ = try Ops.linearBF16(x, weight: packed, bias: b)
            }
        }
        // As the UNet runs them in bf16 mode: the feed-forward input projection reads the bf16
        // LayerNorm output and writes bf16 value * gelu(gate); the output projection reads that.
        // (fp32 column: the plain sgemm of the same shape.)
        for (m, k, n, geglu) in [(1024, 1280, 10240, true), (1024, 5120, 1280, false)] {
            let x = try random([m, k], seed: 1).converted(to: .bf16)
            let w = random([n, k], scale: 0.03, seed: 2), b = random([n], seed: 3)
            let fp32 = sgemmTime(try x.converted(to: .f32), w, m: m, k: k, n: n)
            let packed = try PackedBF16Weight(w, gegluInterleaved: geglu)
            try report("\(geglu ? "linear+geglu" : "linear") M=\(m) K=\(k) N=\(n) bf16 input\(geglu ? ", bf16 output" : "")",
                       flops: 2.0 * Double(m * k * n), fp32: fp32) { _ in
                if geglu { _ = try Ops.linearGEGLUBF16(x, weight: packed, bias: b) }
                else { _ = try Ops.linearBF16(x, weight: packed, bias: b) }
            }
        }
        for (ch, hw) in [(320, 128), (1280, 32)] {
            let x = random([1, ch, hw, hw], seed: 4), w = random([ch, ch, 3, 3], scale: 0.02, seed: 5), b = random([ch], seed: 6)
            let fp32 = try median { _ = try Ops.conv2d(x, weight: w, bias: b, stride: 1, padding: 1) }
            let packed = try PackedBF16Weight(w)
            try report("conv3x3 \(ch)->\(ch) @\(hw)x\(hw)", flops: 2.0 * Double(ch) * Double(9 * ch) * Double(hw * hw), fp32: fp32) { _ in
                _ = try Ops.conv2dBF16(x, weight: packed, kernel: (3, 3), bias: b, stride: 1, padding: Padding2D(1))
            }
        }
        for (l, h) in [(4096, 10), (1024, 20)] {
            let d = 64
            let q = random([1, l, h * d], seed: 7), k = random([1, l, h * d], seed: 8), v = random([1, l, h * d], seed: 9)
            let fp32 = try median { _ = try Ops.attention(query: q, key: k, value: v, heads: h) }
            try report("attention \(l) tok x \(h) heads x \(d)", flops: 4.0 * Double(l) * Double(l) * Double(d) * Double(h), fp32: fp32) { _ in
                _ = try Ops.attentionBF16(query: q, key: k, value: v, heads: h)
            }
        }
    } catch {
        output("{\"error\":\"benchmark failed: \(error)\"}")
    }
}
