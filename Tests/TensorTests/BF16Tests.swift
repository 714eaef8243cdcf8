import Foundation
import Testing
import Tensor

// Tolerances for the bf16 kernels. Each operand is rounded to bf16 (8 significant bits, round to
// nearest even: relative error <= 2^-9 per value, uniform-ish), so each product a*b carries a
// relative error with standard deviation ~2^-9 * sqrt(2/3) ~= 1.6e-3; over K products with random
// signs the errors add like the terms, so |err| / rms(reference) has std ~1.6e-3 (independent of K).
// Bounds: mean |err| <= 4e-3 * rms(ref) (expected ~1.3e-3) and max |err| <= 2e-2 * rms(ref)
// (~12 sigma; an indexing, padding or transposition bug gives O(1) errors). Attention adds the
// rounding of the softmax probabilities (same 2^-9 relative) before PV; its output rows are convex
// combinations of V rows, so the error scales with |V| (rows that attend to few keys keep |V|'s size
// while the rms of the whole output can be much smaller): the same bounds relative to
// max(rms(ref), rms(V)).
// On inputs that are small integers (exact in bf16) the products and their sums (< 2^24) are exact
// in fp32, so the bf16 kernels must equal the fp32 kernels bit for bit.
let bf16MaxTol: Float = 2e-2
let bf16MeanTol: Float = 4e-3

/// The bf16 tiers this machine can run (2 = AMX, 1 = AVX512-BF16), highest first.
let bf16Tiers: [Int] = Array((1...max(1, BF16Backend.hardwareTier)).reversed()).filter { $0 <= BF16Backend.hardwareTier }

func bf16Random(_ shape: [Int], seed: UInt64, scale: Float = 1, integers: Bool = false) -> Tensor {
    var state = seed &* 0x9E3779B97F4A7C15 | 1
    let n = shape.reduce(1, *)
    var v = [Float](repeating: 0, count: n)
    for i in 0..<n {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        let u = Float(state >> 40) / Float(1 << 24)
        v[i] = integers ? Float(Int(u * 9) - 4) : (u * 2 - 1) * scale
    }
    return try! Tensor(shape: shape, values: v)
}

func expectBF16Close(_ got: Tensor, _ want: Tensor, _ what: String, scaleFloor: Float = 0, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.shape == want.shape, "\(what): shape \(got.shape) vs \(want.shape)", sourceLocation: sourceLocation)
    guard got.shape == want.shape else { return }
    let g = got.toFloats(), w = want.toFloats()
    var sq = 0.0, maxErr: Float = 0, sumErr = 0.0
    for i in w.indices {
        sq += Double(w[i]) * Double(w[i])
        let e = abs(g[i] - w[i])
        if !(e <= maxErr) { maxErr = e.isNaN ? .infinity : max(maxErr, e) }
        sumErr += Double(e)
    }
    let rms = max(scaleFloor, Float((sq / Double(max(1, w.count))).squareRoot()))
    let mean = Float(sumErr / Double(max(1, w.count)))
    #expect(maxErr <= bf16MaxTol * rms, "\(what): max |err| \(maxErr) > \(bf16MaxTol) * rms \(rms)", sourceLocation: sourceLocation)
    #expect(mean <= bf16MeanTol * rms, "\(what): mean |err| \(mean) > \(bf16MeanTol) * rms \(rms)", sourceLocation: sourceLocation)
}

func expectIdentical(_ got: Tensor, _ want: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.shape == want.shape, "\(what): shape", sourceLocation: sourceLocation)
    let g = got.toFloats(), w = want.toFloats()
    let diff = zip(g, w).filter { $0.0.bitPattern != $0.1.bitPattern }.count
    #expect(diff == 0, "\(what): \(diff) of \(w.count) values differ", sourceLocation: sourceLocation)
}

func rms(_ t: Tensor) -> Float {
    let v = t.toFloats()
    return Float((v.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, v.count))).squareRoot())
}

@Suite struct BF16Tests {
    @Test func backendReportsATier() {
        #expect((0...2).contains(BF16Backend.tier))
        #expect(BF16Backend.detectedTier <= BF16Backend.hardwareTier)
        BF16Backend.withTier(0) { #expect(BF16Backend.tier == 0 && !BF16Backend.available) }
        BF16Backend.withTier(7) { #expect(BF16Backend.tier == BF16Backend.hardwareTier) }
    }

    // (leading shape of x, K, N, bias, weight dtype)
    static let linearCases: [([Int], Int, Int, Bool, DType)] = [
        ([1], 1, 1, true, .f32), ([5], 7, 1, false, .f32), ([33], 31, 17, true, .f32),
        ([70], 100, 48, false, .f16), ([2, 37], 300, 65, true, .bf16), ([130], 513, 96, true, .f32),
        ([1030], 40, 33, false, .f32), ([3, 50], 1100, 250, true, .f16), ([64], 64, 64, true, .f32),
        ([40], 2100, 40, true, .f32), ([300], 32, 16, false, .bf16),
        // several 256-column blocks (written per block) with a partial last one; and with K in two slices
        ([300], 200, 600, true, .f32), ([70], 2200, 300, false, .f32),
    ]

    @Test(arguments: Array(0..<linearCases.count))
    func linearMatchesFP32(caseIndex: Int) throws {
        let (lead, k, n, hasBias, dt) = Self.linearCases[caseIndex]
        let x = bf16Random(lead + [k], seed: UInt64(caseIndex) + 1)
        let w = try bf16Random([n, k], seed: UInt64(caseIndex) + 100, scale: 0.5).converted(to: dt)
        let b = hasBias ? bf16Random([n], seed: 7) : nil
        let ref = try Ops.linear(x, weight: w, bias: b)
        let packed = try PackedBF16Weight(w)
        #expect(packed.n == n && packed.k == k)
        for tier in bf16Tiers {
            let y = try BF16Backend.withTier(tier) { try Ops.linearBF16(x, weight: packed, bias: b) }
            expectBF16Close(y, ref, "linear \(lead)x\(k)->\(n) \(dt) tier \(tier)")
        }
        // Tier 0 = Ops.linear bit for bit. Concurrent tests open single-threaded sections (attention),
        // and OpenBLAS's bits depend on its thread count on some CPUs (Zen): BLAS's gate keeps every
        // GEMM here at the thread count its call site chose, so this holds whatever runs beside it.
        do {
            let y0 = try BF16Backend.withTier(0) { try Ops.linearBF16(x, weight: packed, bias: b) }
            expectIdentical(y0, try Ops.linear(x, weight: w, bias: b), "linear tier 0 fallback")
        }
    }

    /// The fused epilogues: residual added in the store, bf16 input used as is, and GEGLU with the
    /// interleaved packing (bf16 output), against the fp32 ops.
    @Test(arguments: [(1, 64, 32, true), (70, 96, 64, false), (300, 640, 160, true), (33, 1280, 1024, true)])
    func fusedEpilogues(m: Int, k: Int, hidden: Int, hasBias: Bool) throws {
        let x = bf16Random([m, k], seed: 21)
        let w = bf16Random([2 * hidden, k], seed: 22, scale: 0.1)
        let b = hasBias ? bf16Random([2 * hidden], seed: 23) : nil
        let res = bf16Random([m, 2 * hidden], seed: 24)
        let ref = try Ops.add(res, Ops.linear(x, weight: w, bias: b))
        let refG = try Ops.geglu(Ops.linear(x, weight: w, bias: b))
        let packed = try PackedBF16Weight(w)
        let packedG = try PackedBF16Weight(w, gegluInterleaved: true)
        #expect(throws: TensorError.self) { try Ops.linearBF16(x, weight: packedG, bias: b) }
        for tier in bf16Tiers {
            let y = try BF16Backend.withTier(tier) { try Ops.linearBF16(x, weight: packed, bias: b, residual: res) }
            expectBF16Close(y, ref, "linear+residual \(m)x\(k) tier \(tier)")
            // A bf16 input is used as is: the same as the f32 input it was rounded from.
            let xb = try x.converted(to: .bf16)
            let yb = try BF16Backend.withTier(tier) { try Ops.linearBF16(xb, weight: packed, bias: b, residual: res) }
            expectIdentical(yb, y, "bf16 input tier \(tier)")
            let g = try BF16Backend.withTier(tier) { try Ops.linearGEGLUBF16(x, weight: packedG, bias: b) }
            #expect(g.dtype == .bf16 && g.shape == [m, hidden])
            // Against the unfused bf16 path: only the output's rounding to bf16 (2^-9 relative) and
            // float-order differences remain.
            let unfused = try BF16Backend.withTier(tier) { try Ops.geglu(Ops.linearBF16(x, weight: packed, bias: b)) }.toFloats()
            let gf = g.toFloats()
            let worst = zip(gf, unfused).map { abs($0 - $1) - (abs($1) * 0x1p-8 + 1e-5) }.max() ?? 0
            #expect(worst <= 0, "fused geglu vs unfused tier \(tier): excess \(worst)")
            // Against fp32: value * gelu(gate) multiplies the projection's bf16 error by up to |gate|,
            // so the bound is relative to rms(projection) * max |projection|.
            let pre = try Ops.linear(x, weight: w, bias: b)
            let preMax = pre.toFloats().map { abs($0) }.max() ?? 1
            expectBF16Close(g, refG, "linear+geglu \(m)x\(k)->\(hidden) tier \(tier)", scaleFloor: rms(pre) * max(1, preMax))
        }
        do {
            let g0 = try BF16Backend.withTier(0) { try Ops.linearGEGLUBF16(x, weight: packedG, bias: b) }
            expectIdentical(g0, refG, "geglu tier 0 fallback")
            let y0 = try BF16Backend.withTier(0) { try Ops.linearBF16(x, weight: packed, bias: b, residual: res) }
            expectIdentical(y0, ref, "residual tier 0 fallback")
        }
    }

    @Test func linearExactOnSmallIntegers() throws {
        for (m, k, n) in [(37, 45, 19), (64, 640, 64), (100, 1000, 50), (3, 5, 1)] {
            let x = bf16Random([m, k], seed: 3, integers: true), w = bf16Random([n, k], seed: 4, integers: true)
            let b = bf16Random([n], seed: 5, integers: true)
            let ref = try Ops.linear(x, weight: w, bias: b)
            let packed = try PackedBF16Weight(try w.converted(to: .bf16))
            for tier in bf16Tiers {
                let y = try BF16Backend.withTier(tier) { try Ops.linearBF16(x, weight: packed, bias: b) }
                expectIdentical(y, ref, "exact linear \(m)x\(k)x\(n) tier \(tier)")
            }
        }
    }

    // (N, C, H, W, O, kh, kw, stride, padding, bias, weight dtype)
    static let convCases: [(Int, Int, Int, Int, Int, Int, Int, Int, Padding2D, Bool, DType)] = [
        (2, 3, 9, 7, 5, 3, 3, 1, Padding2D(1), true, .f32),
        (1, 4, 10, 11, 17, 3, 3, 2, .vaeDownsample, true, .f16),
        (1, 16, 8, 8, 33, 1, 1, 1, .zero, false, .f32),
        (1, 5, 6, 6, 1, 1, 1, 2, .zero, true, .f32),
        (1, 40, 12, 12, 20, 3, 3, 1, Padding2D(1), true, .bf16),
        (2, 7, 5, 9, 3, 2, 3, 1, Padding2D(top: 1, bottom: 0, left: 2, right: 1), false, .f32),
        (1, 64, 20, 20, 48, 3, 3, 1, Padding2D(1), true, .f32),
        (1, 3, 4, 4, 2, 3, 3, 1, .zero, false, .f32),
        // Direct AMX convolution (stride 1, C % 32 == 0, output width % 16 == 0): full and partial
        // last 32-pixel strips, 1x1, asymmetric padding, two images.
        (1, 64, 16, 16, 48, 3, 3, 1, Padding2D(1), true, .f32),
        (2, 32, 5, 32, 40, 3, 3, 1, Padding2D(1), true, .f16),
        (1, 32, 7, 16, 20, 1, 1, 1, .zero, false, .f32),
        (1, 32, 6, 16, 17, 2, 2, 1, Padding2D(top: 1, bottom: 0, left: 1, right: 0), true, .bf16),
    ]

    @Test(arguments: Array(0..<convCases.count))
    func conv2dMatchesFP32(caseIndex: Int) throws {
        let (n, c, h, w, o, kh, kw, stride, pad, hasBias, dt) = Self.convCases[caseIndex]
        let x = bf16Random([n, c, h, w], seed: UInt64(caseIndex) + 10)
        let wt = try bf16Random([o, c, kh, kw], seed: UInt64(caseIndex) + 200, scale: 0.5).converted(to: dt)
        let b = hasBias ? bf16Random([o], seed: 9) : nil
        let ref = try Ops.conv2d(x, weight: wt, bias: b, stride: stride, padding: pad)
        let packed = try PackedBF16Weight(wt)
        #expect(packed.n == o && packed.k == c * kh * kw)
        for tier in bf16Tiers {
            let y = try BF16Backend.withTier(tier) {
                try Ops.conv2dBF16(x, weight: packed, kernel: (kh, kw), bias: b, stride: stride, padding: pad)
            }
            expectBF16Close(y, ref, "conv \(caseIndex) tier \(tier)")
            // Small bands (many work items, partial last band) give the same result.
            let y2 = try BF16Backend.withTier(tier) {
                try Ops.conv2dBF16(x, weight: packed, kernel: (kh, kw), bias: b, stride: stride, padding: pad,
                                   maxColumnFloats: 7 * c * kh * kw)
            }
            expectIdentical(y2, y, "conv \(caseIndex) tier \(tier) small bands")
        }
        do {
            let y0 = try BF16Backend.withTier(0) {
                try Ops.conv2dBF16(x, weight: packed, kernel: (kh, kw), bias: b, stride: stride, padding: pad)
            }
            expectIdentical(y0, try Ops.conv2d(x, weight: wt, bias: b, stride: stride, padding: pad), "conv tier 0 fallback")
        }
    }

    @Test func conv2dExactOnSmallIntegers() throws {
        let x = bf16Random([2, 24, 9, 10], seed: 11, integers: true)
        let w = bf16Random([18, 24, 3, 3], seed: 12, integers: true), b = bf16Random([18], seed: 13, integers: true)
        let pad = Padding2D(top: 1, bottom: 2, left: 0, right: 1)
        let ref = try Ops.conv2d(x, weight: w, bias: b, stride: 2, padding: pad)
        let packed = try PackedBF16Weight(w)
        for tier in bf16Tiers {
            let y = try BF16Backend.withTier(tier) { try Ops.conv2dBF16(x, weight: packed, kernel: (3, 3), bias: b, stride: 2, padding: pad) }
            expectIdentical(y, ref, "exact conv tier \(tier)")
        }
        // Stride 1 with 32 channels and 16-pixel rows: the direct AMX path.
        let x1 = bf16Random([1, 32, 5, 16], seed: 14, integers: true)
        let w1 = bf16Random([18, 32, 3, 3], seed: 15, integers: true)
        let ref1 = try Ops.conv2d(x1, weight: w1, bias: b, stride: 1, padding: Padding2D(1))
        let packed1 = try PackedBF16Weight(w1)
        for tier in bf16Tiers {
            let y = try BF16Backend.withTier(tier) { try Ops.conv2dBF16(x1, weight: packed1, kernel: (3, 3), bias: b, padding: Padding2D(1)) }
            expectIdentical(y, ref1, "exact direct conv tier \(tier)")
        }
    }

    // Input transforms (GroupNorm affine form + SiLU, 2x upsampling) applied while the direct conv
    // makes its bf16 copy: the same bits as convolving the materialised input, on the direct path
    // (C % 32 == 0, output width % 16 == 0), on the paths that materialise it (other shapes, tier 1,
    // tier 0), for two images (per-image coefficients) and in small bands (rows of an upsampled
    // band starting mid-pair).
    // (n, c, h, w, o, groups, silu, upsample)
    static let transformCases: [(Int, Int, Int, Int, Int, Int, Bool, Bool)] = [
        (1, 64, 9, 16, 40, 32, true, false), (2, 32, 6, 32, 17, 8, false, false),
        (1, 32, 5, 8, 24, 0, false, true), (2, 64, 4, 8, 33, 16, true, true),
        (1, 48, 6, 16, 20, 16, true, false), (1, 32, 5, 7, 16, 4, true, true),
    ]

    @Test(arguments: Array(0..<transformCases.count))
    func conv2dInputTransformMatchesMaterialised(caseIndex: Int) throws {
        let (n, c, h, w, o, groups, silu, up) = Self.transformCases[caseIndex]
        let x = bf16Random([n, c, h, w], seed: UInt64(caseIndex) + 300, scale: 3)
        let wt = bf16Random([o, c, 3, 3], seed: UInt64(caseIndex) + 400, scale: 0.5)
        let b = bf16Random([o], seed: 5)
        let packed = try PackedBF16Weight(wt)
        var t = ConvInputTransform(upsample2x: up)
        if groups > 0 {
            let gamma = bf16Random([c], seed: 6), beta = bf16Random([c], seed: 7)
            let affine = try Ops.groupNormAffine(x, groups: groups, weight: gamma, bias: beta, eps: 1e-5)
            t = ConvInputTransform(affine: affine, silu: silu, upsample2x: up)
            // The affine form reproduces groupNorm exactly.
            expectIdentical(try Ops.applyConvInputTransform(x, ConvInputTransform(affine: affine, silu: silu)),
                            try Ops.groupNorm(x, groups: groups, weight: gamma, bias: beta, eps: 1e-5, silu: silu),
                            "transform \(caseIndex): affine form vs groupNorm")
        }
        let xt = try Ops.applyConvInputTransform(x, t)
        #expect(xt.shape == [n, c, h * (up ? 2 : 1), w * (up ? 2 : 1)])
        // Independent reference: the fp32 convolution of the materialised input.
        let ref = try Ops.conv2d(xt, weight: wt, bias: b, padding: Padding2D(1))
        for tier in [0] + bf16Tiers {
            let want = try BF16Backend.withTier(tier) {
                try Ops.conv2dBF16(xt, weight: packed, kernel: (3, 3), bias: b, padding: Padding2D(1))
            }
            let got = try BF16Backend.withTier(tier) {
                try Ops.conv2dBF16(x, weight: packed, kernel: (3, 3), bias: b, padding: Padding2D(1), input: t)
            }
            expectIdentical(got, want, "transform \(caseIndex) tier \(tier)")
            expectBF16Close(got, ref, "transform \(caseIndex) tier \(tier) vs fp32")
        }
        // Not the identity: the transform changes the result.
        let plain = try Ops.conv2dBF16(x, weight: packed, kernel: (3, 3), bias: b, padding: Padding2D(1))
        let transformed = try Ops.conv2dBF16(xt, weight: packed, kernel: (3, 3), bias: b, padding: Padding2D(1))
        #expect(plain.shape != transformed.shape || plain.toFloats() != transformed.toFloats())
    }

    // A residual added in the conv's store: the same bits as Ops.add(residual, conv) on the direct
    // path, the implicit-GEMM path (stride 2, C % 32 != 0), with an input transform, and at tier 0.
    @Test func conv2dResidualMatchesSeparateAdd() throws {
        for (n, c, h, w, o, stride, up) in [(2, 32, 6, 16, 40, 1, false), (1, 20, 9, 11, 17, 2, false), (1, 32, 4, 8, 24, 1, true)] {
            let x = bf16Random([n, c, h, w], seed: 21, scale: 2)
            let packed = try PackedBF16Weight(bf16Random([o, c, 3, 3], seed: 22, scale: 0.5))
            let b = bf16Random([o], seed: 23)
            let t = ConvInputTransform(upsample2x: up)
            for tier in [0] + bf16Tiers {
                try BF16Backend.withTier(tier) {
                    let y = try Ops.conv2dBF16(x, weight: packed, kernel: (3, 3), bias: b, stride: stride, padding: Padding2D(1), input: t)
                    let r = bf16Random(y.shape, seed: 24, scale: 5)
                    let fused = try Ops.conv2dBF16(x, weight: packed, kernel: (3, 3), bias: b, stride: stride, padding: Padding2D(1),
                                                   input: t, residual: r)
                    expectIdentical(fused, try Ops.add(r, y), "residual \(c)x\(h)x\(w) stride \(stride) tier \(tier)")
                    #expect(throws: TensorError.self) {
                        try Ops.conv2dBF16(x, weight: packed, kernel: (3, 3), bias: b, stride: stride, padding: Padding2D(1),
                                           input: t, residual: try Tensor.zeros([n, o, 1, 1]))
                    }
                }
            }
        }
    }

    @Test func conv2dInputTransformRejectsWrongCoefficientCount() throws {
        let packed = try PackedBF16Weight(bf16Random([4, 32, 3, 3], seed: 1))
        let t = ConvInputTransform(affine: ([Float](repeating: 1, count: 31), [Float](repeating: 0, count: 31)))
        #expect(throws: TensorError.self) {
            try Ops.conv2dBF16(try Tensor.zeros([1, 32, 4, 16]), weight: packed, kernel: (3, 3), bias: nil, padding: Padding2D(1), input: t)
        }
    }

    @Test func conv2dRejectsMismatchedWeight() throws {
        let packed = try PackedBF16Weight(bf16Random([4, 3, 3, 3], seed: 1))
        #expect(throws: TensorError.self) {
            try Ops.conv2dBF16(try Tensor.zeros([1, 2, 5, 5]), weight: packed, kernel: (3, 3), bias: nil)
        }
        #expect(throws: TensorError.self) {
            try Ops.conv2dBF16(try Tensor.zeros([1, 3, 5, 5]), weight: packed, kernel: (1, 1), bias: nil)
        }
    }

    // (B, Lq, Lk, heads, D, Dv, causal)
    static let attentionCases: [(Int, Int, Int, Int, Int, Int, Bool)] = [
        (2, 37, 53, 2, 24, 24, false), (1, 77, 77, 3, 64, 64, true), (1, 100, 77, 2, 40, 24, false),
        (1, 300, 300, 1, 8, 8, true), (2, 1, 5, 4, 16, 16, false), (1, 64, 1, 2, 32, 32, false),
    ]

    @Test(arguments: Array(0..<attentionCases.count))
    func attentionMatchesFP32(caseIndex: Int) throws {
        let (b, lq, lk, h, d, dv, causal) = Self.attentionCases[caseIndex]
        let q = bf16Random([b, lq, h * d], seed: UInt64(caseIndex) + 20, scale: 2)
        let k = bf16Random([b, lk, h * d], seed: UInt64(caseIndex) + 30, scale: 2)
        let v = bf16Random([b, lk, h * dv], seed: UInt64(caseIndex) + 40)
        let ref = try Ops.attention(query: q, key: k, value: v, heads: h, causal: causal)
        for tier in bf16Tiers {
            let y = try BF16Backend.withTier(tier) { try Ops.attentionBF16(query: q, key: k, value: v, heads: h, causal: causal) }
            expectBF16Close(y, ref, "attention \(caseIndex) tier \(tier)", scaleFloor: rms(v))
            let y2 = try BF16Backend.withTier(tier) {
                try Ops.attentionBF16(query: q, key: k, value: v, heads: h, causal: causal, maxScoreFloats: 40 * lk)
            }
            expectIdentical(y2, y, "attention \(caseIndex) tier \(tier) small query blocks")
        }
        do {
            let y0 = try BF16Backend.withTier(0) { try Ops.attentionBF16(query: q, key: k, value: v, heads: h, causal: causal) }
            expectIdentical(y0, try Ops.attention(query: q, key: k, value: v, heads: h, causal: causal), "attention tier 0 fallback")
        }
    }

    /// Runs the bf16 micro-benchmark when SDFLOW_BENCH=1 (release build:
    /// `SDFLOW_BENCH=1 swift test -c release --filter bf16Benchmark`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SDFLOW_BENCH"] == "1"))
    func bf16Benchmark() {
        var lines: [String] = []
        runBF16Benchmarks { lines.append($0); print($0) }
        #expect(!lines.isEmpty)
        #expect(!lines.contains { $0.contains("failed") })
    }
}
