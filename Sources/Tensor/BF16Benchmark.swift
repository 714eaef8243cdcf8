import Foundation
import CAMX

/// bf16 GEMM micro-benchmark for the SDXL UNet's shapes at 1024x1024: per kernel and tier (AMX,
/// AVX512-BF16), the median time and GFLOP/s, next to the fp32 rate of the same work (raw
/// `cblas_sgemm` for the linears; `Ops.conv2d` / `Ops.attention` for conv and attention) and the bare
/// register-only multiply-add rate of each tier on all cores (`sdf_bf16_peak`), all measured in this
/// run. Prints one JSON object per line.
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
    // Bare peaks: every core runs the register-only loop at once (best of 3).
    var peak: [Int: Double] = [:]
    for t in tiers {
        let iters = t == 2 ? 4_000_000 : 20_000_000
        var best = 0.0
        for _ in 0..<3 {
            let s = DispatchTime.now().uptimeNanoseconds
            var flops = [Double](repeating: 0, count: Parallel.cores)
            flops.withUnsafeMutableBufferPointer { fp in
                let p = fp.baseAddress!
                Parallel.forEach(Parallel.cores) { i in p[i] = sdf_bf16_peak(Int32(t), iters) }
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9
            best = max(best, flops.reduce(0, +) / dt / 1e9)
        }
        peak[t] = best
        output("{\"kernel\":\"bare \(t == 2 ? "tdpbf16ps" : "vdpbf16ps") loop\",\"tier\":\"\(BF16Backend.name(ofTier: t))\",\"threads\":\(Parallel.cores),\"gflops\":\(f(best, 1))}")
    }
    let amxPeak = peak[2]

    func report(_ kernel: String, flops: Double, fp32: Double, _ bf16: (Int) throws -> Void) throws {
        let tf = flops / fp32 / 1e9
        output("{\"kernel\":\"\(kernel)\",\"tier\":\"fp32\",\"median_s\":\(f(fp32, 6)),\"gflops\":\(f(tf, 1))}")
        for t in tiers {
            let s = try BF16Backend.withTier(t) { try median { try bf16(t) } }
            let g = flops / s / 1e9
            var line = "{\"kernel\":\"\(kernel)\",\"tier\":\"\(BF16Backend.name(ofTier: t))\",\"median_s\":\(f(s, 6)),\"gflops\":\(f(g, 1))"
            line += ",\"x_fp32\":\(f(g / tf))"
            if let pt = peak[t] { line += ",\"frac_tier_peak\":\(f(g / pt, 3))" }
            if let amxPeak { line += ",\"frac_amx_peak\":\(f(g / amxPeak, 3))" }
            output(line + "}")
        }
    }

    do {
        for (m, k, n) in [(4096, 640, 640), (1024, 1280, 10240), (1024, 5120, 1280)] {
            let x = random([m, k], seed: 1), w = random([n, k], scale: 0.03, seed: 2), b = random([n], seed: 3)
            let c = TensorStorage(byteCount: m * n * 4)
            let fp32 = median {
                BLAS.sgemm(transB: true, m: m, n: n, k: k, a: x.f32Pointer, lda: k, b: w.f32Pointer, ldb: k,
                           c: c.base.assumingMemoryBound(to: Float.self), ldc: n)
            }
            let packed = try PackedBF16Weight(w)
            try report("linear M=\(m) K=\(k) N=\(n)", flops: 2.0 * Double(m * k * n), fp32: fp32) { _ in
                _ = try Ops.linearBF16(x, weight: packed, bias: b)
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
        do {
            let l = 4096, h = 10, d = 64
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
