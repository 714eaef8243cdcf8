import Foundation
import Testing
import Tensor

// Tolerances. References are torch's own fp32 CPU outputs. Both sides round differently:
//  - GEMM-based kernels (linear, conv2d, attention) sum K products in a different order than
//    torch/MKL-DNN; fp32 reordering error grows like sqrt(K) * 2^-24 * |terms|, which for the K <= 1000
//    used here stays below 1e-5 of the output scale; 1e-4 leaves a 10x margin while still failing
//    for any indexing, padding or transposition bug (those give O(1) errors).
//  - Elementwise kernels use our own exp/erf polynomials (exp ~2 ulp, erf |err| <= 1.5e-7); 1e-5
//    of the scale covers them. Norms: two-pass fp32/double statistics vs torch's Welford: 1e-5.
// Errors are measured as max |ours - torch| / max(1, max |torch|).
let gemmTol: Float = 1e-4
let eltTol: Float = 1e-5

@Suite struct LinearTests {
    let file: SafeTensorsFile
    init() throws { file = try Fixtures.open("linear.safetensors") }

    @Test(arguments: ["f32_bias", "f16_bias", "bf16_nobias", "f32_m1"])
    func linearMatchesTorch(name: String) throws {
        let bias = file.contains("\(name).bias") ? try file.tensor("\(name).bias") : nil
        let y = try Ops.linear(try file.tensor("\(name).x"), weight: try file.tensor("\(name).weight"), bias: bias)
        expectClose(y, try file.tensor("\(name).y"), tol: gemmTol, "linear \(name)")
    }

    /// f16/bf16 weights are widened in bands of output rows; 16-row bands (3 bands, the last partial
    /// for 33 rows; 5 for 65) must match the single-band result and torch.
    @Test(arguments: ["f16_bias", "bf16_nobias"])
    func linearWeightBands(name: String) throws {
        let w = try file.tensor("\(name).weight")
        let bias = file.contains("\(name).bias") ? try file.tensor("\(name).bias") : nil
        let y = try Ops.linear(try file.tensor("\(name).x"), weight: w, bias: bias, weightBandFloats: 16 * w.shape[1])
        expectClose(y, try file.tensor("\(name).y"), tol: gemmTol, "linear \(name) 16-row bands")
    }

    /// Both f16-weight paths, few rows (`linearStreamMaxRows` or fewer: bands widened and multiplied
    /// per core) and many rows (each band widened on all cores, then one sgemm), with 16-row bands
    /// (the last one partial), against the definition summed in Double over the same f16 weights.
    @Test(arguments: [5, Ops.linearStreamMaxRows, Ops.linearStreamMaxRows + 44])
    func f16WeightPathsMatchDefinition(rows: Int) throws {
        let k = 40, n = 72
        var g = SystemRandomNumberGenerator()
        let xv = (0..<(rows * k)).map { _ in Float.random(in: -1...1, using: &g) }
        let wv = (0..<(n * k)).map { _ in Float.random(in: -0.5...0.5, using: &g) }
        let bv = (0..<n).map { _ in Float.random(in: -1...1, using: &g) }
        let x = try Tensor(shape: [rows, k], values: xv)
        let w16 = try Tensor(shape: [n, k], values: wv).converted(to: .f16)
        let b = try Tensor(shape: [n], values: bv)
        let y = try Ops.linear(x, weight: w16, bias: b, weightBandFloats: 16 * k).toFloats()
        let wr = w16.toFloats()
        var err = 0.0, scale = 1.0
        for i in 0..<rows {
            for j in 0..<n {
                var acc = Double(bv[j])
                for c in 0..<k { acc += Double(xv[i * k + c]) * Double(wr[j * k + c]) }
                err = max(err, abs(Double(y[i * n + j]) - acc))
                scale = max(scale, abs(acc))
            }
        }
        #expect(err <= Double(gemmTol) * scale, "linear f16 weight, \(rows) rows: max abs error \(err) (scale \(scale))")
    }

    @Test func linearShapeErrors() throws {
        let x = try Tensor.zeros([2, 5]), w = try Tensor.zeros([3, 4])
        #expect(throws: TensorError.self) { try Ops.linear(x, weight: w) }
        #expect(throws: TensorError.self) { try Ops.linear(try Tensor.zeros([2, 4]), weight: w, bias: try Tensor.zeros([4])) }
        #expect(throws: TensorError.self) { try Ops.linear(try Tensor.zeros([2, 4], dtype: .i32), weight: w) }
    }
}

@Suite struct ConvTests {
    let file: SafeTensorsFile
    let params: [String: [String: Any]]
    init() throws { file = try Fixtures.open("conv.safetensors"); params = try Fixtures.params(file) }

    @Test(arguments: ["k3_p1_b2", "k3_s2_asym_f16", "k1_plain", "k3_p1_1x1_bf16", "k3_s2_p1", "k3_p0", "k1_s2"])
    func conv2dMatchesTorch(name: String) throws {
        let p = try #require(params[name])
        let pad = Padding2D(top: p["top"] as! Int, bottom: p["bottom"] as! Int, left: p["left"] as! Int, right: p["right"] as! Int)
        let bias = file.contains("\(name).bias") ? try file.tensor("\(name).bias") : nil
        let y = try Ops.conv2d(try file.tensor("\(name).x"), weight: try file.tensor("\(name).weight"), bias: bias,
                               stride: p["stride"] as! Int, padding: pad)
        expectClose(y, try file.tensor("\(name).y"), tol: gemmTol, "conv2d \(name)")
    }

    /// Small im2col chunks (one output row per band) must give the same result as one band.
    @Test func conv2dChunkingIsInvisible() throws {
        let x = try file.tensor("k3_p1_b2.x"), w = try file.tensor("k3_p1_b2.weight"), b = try file.tensor("k3_p1_b2.bias")
        let ref = try file.tensor("k3_p1_b2.y")
        let y = try Ops.conv2d(x, weight: w, bias: b, stride: 1, padding: Padding2D(1), maxColumnFloats: 5 * 9 * 11)
        expectClose(y, ref, tol: gemmTol, "conv2d one-row bands")
    }

    /// The banded shifted-GEMM 3x3 path (stride 1, padding 1, H * W >= 1024) against the definition
    /// summed in Double: odd sizes (bands of unequal height), two images, f16 and f32 weights, with and
    /// without bias. A band, tap or padding bug gives O(1) errors.
    @Test(arguments: [(3, 5, 33, 37, true, DType.f16), (4, 2, 32, 40, false, DType.f32), (2, 3, 67, 31, true, DType.bf16)])
    func conv3x3BandsMatchDefinition(c: Int, o: Int, h: Int, w: Int, withBias: Bool, dtype: DType) throws {
        var rng = SystemRandomNumberGenerator()
        let n = 2
        let xs = (0..<(n * c * h * w)).map { _ in Float.random(in: -1...1, using: &rng) }
        let ws = (0..<(o * c * 9)).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
        let bs = (0..<o).map { _ in Float.random(in: -1...1, using: &rng) }
        let weight = try Tensor(shape: [o, c, 3, 3], values: ws).converted(to: dtype)
        let wq: [Float] = weight.toFloats()   // the weights as the kernel sees them (rounded to dtype)
        let y = try Ops.conv2d(try Tensor(shape: [n, c, h, w], values: xs), weight: weight,
                               bias: withBias ? try Tensor(shape: [o], values: bs) : nil, stride: 1, padding: Padding2D(1))
        var ref = [Float](repeating: 0, count: n * o * h * w)
        for img in 0..<n { for oi in 0..<o { for yy in 0..<h { for xx in 0..<w {
            var acc: Double = withBias ? Double(bs[oi]) : 0
            for ci in 0..<c { for dy in 0..<3 { for dx in 0..<3 {
                let sy = yy + dy - 1, sx = xx + dx - 1
                if sy < 0 || sy >= h || sx < 0 || sx >= w { continue }
                let xi: Int = ((img * c + ci) * h + sy) * w + sx
                let wi: Int = (oi * c + ci) * 9 + dy * 3 + dx
                let xv = Double(xs[xi]), wv = Double(wq[wi])
                acc += xv * wv
            } } }
            ref[((img * o + oi) * h + yy) * w + xx] = Float(acc)
        } } } }
        expectClose(y, try Tensor(shape: [n, o, h, w], values: ref), tol: gemmTol, "conv3x3 \(c)->\(o) @\(h)x\(w) \(dtype)")
    }

    @Test func conv2dShapeErrors() throws {
        let x = try Tensor.zeros([1, 3, 4, 4])
        #expect(throws: TensorError.self) { try Ops.conv2d(x, weight: try Tensor.zeros([2, 4, 3, 3])) }
        #expect(throws: TensorError.self) { try Ops.conv2d(x, weight: try Tensor.zeros([2, 3, 5, 5])) }
        #expect(throws: TensorError.self) { try Ops.conv2d(try Tensor.zeros([3, 4, 4]), weight: try Tensor.zeros([2, 3, 3, 3])) }
        #expect(throws: TensorError.self) { try Ops.conv2d(x, weight: try Tensor.zeros([2, 3, 3, 3]), stride: 0, padding: 1) }
    }
}

@Suite struct NormTests {
    let file: SafeTensorsFile
    let params: [String: [String: Any]]
    init() throws { file = try Fixtures.open("norm.safetensors"); params = try Fixtures.params(file) }

    @Test(arguments: ["gn_affine", "gn_silu", "gn_1x1", "gn_3d_noaffine", "gn_offset"])
    func groupNormMatchesTorch(name: String) throws {
        let p = try #require(params[name])
        let w = file.contains("\(name).weight") ? try file.tensor("\(name).weight") : nil
        let b = file.contains("\(name).bias") ? try file.tensor("\(name).bias") : nil
        let y = try Ops.groupNorm(try file.tensor("\(name).x"), groups: p["groups"] as! Int, weight: w, bias: b,
                                  eps: Float(p["eps"] as! Double), silu: p["silu"] as! Bool)
        expectClose(y, try file.tensor("\(name).y"), tol: eltTol, "groupNorm \(name)")
    }

    @Test(arguments: ["ln_affine", "ln_plain"])
    func layerNormMatchesTorch(name: String) throws {
        let p = try #require(params[name])
        let w = file.contains("\(name).weight") ? try file.tensor("\(name).weight") : nil
        let b = file.contains("\(name).bias") ? try file.tensor("\(name).bias") : nil
        let y = try Ops.layerNorm(try file.tensor("\(name).x"), weight: w, bias: b, eps: Float(p["eps"] as! Double))
        expectClose(y, try file.tensor("\(name).y"), tol: eltTol, "layerNorm \(name)")
    }

    @Test func groupNormErrors() throws {
        #expect(throws: TensorError.self) { try Ops.groupNorm(try Tensor.zeros([1, 6, 2, 2]), groups: 4, weight: nil, bias: nil, eps: 1e-5) }
        #expect(throws: TensorError.self) {
            try Ops.groupNorm(try Tensor.zeros([1, 6, 2, 2]), groups: 3, weight: try Tensor.zeros([5]), bias: nil, eps: 1e-5)
        }
    }
}

@Suite struct ActivationTests {
    let file: SafeTensorsFile
    init() throws { file = try Fixtures.open("activation.safetensors") }

    @Test(arguments: ["silu", "gelu", "quick_gelu"])
    func activationMatchesTorch(name: String) throws {
        let x = try file.tensor("act.x")
        let y: Tensor
        switch name {
        case "silu": y = try Ops.silu(x)
        case "gelu": y = try Ops.gelu(x)
        default: y = try Ops.quickGELU(x)
        }
        // Inputs reach |x| = 1e4, so the relative-to-scale bound would be loose; check absolute
        // error on values where torch's output is O(1) and relative error elsewhere.
        let got = y.toFloats(), want = try file.tensor("act.\(name)").toFloats()
        #expect(got.count == want.count)
        var worst: Float = 0
        for i in 0..<got.count {
            let e = abs(got[i] - want[i]) / max(1, abs(want[i]))
            worst = max(worst, e.isNaN ? .infinity : e)
        }
        #expect(worst <= eltTol, "\(name): max error \(worst)")
    }

    @Test func gegluMatchesTorch() throws {
        expectClose(try Ops.geglu(try file.tensor("geglu.x")), try file.tensor("geglu.y"), tol: eltTol, "geglu")
        #expect(throws: TensorError.self) { try Ops.geglu(try Tensor.zeros([2, 5])) }
    }

    @Test func softmaxMatchesTorch() throws {
        let x = try file.tensor("softmax.x")
        expectClose(try Ops.softmax(x), try file.tensor("softmax.y"), tol: eltTol, "softmax")
        expectClose(try Ops.softmax(x, scale: 0.125), try file.tensor("softmax.y_scaled"), tol: eltTol, "softmax scaled")
    }
}

@Suite struct AttentionTests {
    let file: SafeTensorsFile
    let params: [String: [String: Any]]
    init() throws { file = try Fixtures.open("attention.safetensors"); params = try Fixtures.params(file) }

    @Test(arguments: ["self_small", "cross_77", "causal", "cross_b2"], [Ops.attentionScoreChunkFloats, 77 * 3])
    func attentionMatchesTorch(name: String, chunk: Int) throws {
        let p = try #require(params[name])
        let y = try Ops.attention(query: try file.tensor("\(name).q"), key: try file.tensor("\(name).k"),
                                  value: try file.tensor("\(name).v"), heads: p["heads"] as! Int,
                                  causal: p["causal"] as! Bool, maxScoreFloats: chunk)
        expectClose(y, try file.tensor("\(name).y"), tol: gemmTol, "attention \(name) chunk \(chunk)")
    }

    @Test func attentionShapeErrors() throws {
        let q = try Tensor.zeros([1, 4, 16])
        #expect(throws: TensorError.self) { try Ops.attention(query: q, key: try Tensor.zeros([1, 4, 8]), value: q, heads: 2) }
        #expect(throws: TensorError.self) { try Ops.attention(query: q, key: q, value: q, heads: 3) }
        #expect(throws: TensorError.self) { try Ops.attention(query: q, key: q, value: try Tensor.zeros([1, 5, 16]), heads: 2) }
    }
}

@Suite struct ShapeOpTests {
    let file: SafeTensorsFile
    init() throws { file = try Fixtures.open("shape.safetensors") }

    @Test func upsampleMatchesTorch() throws {
        let y = try Ops.upsampleNearest2x(try file.tensor("up.x"))
        let want = try file.tensor("up.y").toFloats()
        #expect(y.toFloats() == want)
        #expect(y.shape == [2, 3, 8, 10])
    }

    @Test func concatMatchesTorch() throws {
        let a = try file.tensor("cat.a"), b = try file.tensor("cat.b"), c = try file.tensor("cat.c")
        let y1 = try Ops.concat([a, b, c], dim: 1)
        let w1 = try file.tensor("cat.y1").toFloats(), w2 = try file.tensor("cat.y2").toFloats(), w0 = try file.tensor("cat.y0").toFloats()
        #expect(y1.shape == [2, 9, 4] && y1.toFloats() == w1)
        let y2 = try Ops.concat([a, a], dim: -1)
        #expect(y2.shape == [2, 3, 8] && y2.toFloats() == w2)
        let y0 = try Ops.concat([a, a, a], dim: 0)
        #expect(y0.shape == [6, 3, 4] && y0.toFloats() == w0)
        #expect(throws: TensorError.self) { try Ops.concat([a, b], dim: 2) }
        #expect(throws: TensorError.self) { try Ops.concat([a, try a.converted(to: .f16)], dim: 0) }
    }

    @Test(arguments: ["bc_nchw", "bc_vec", "bc_outer", "bc_col_row", "bc_same", "bc_scalar", "bc_left"])
    func broadcastMatchesTorch(name: String) throws {
        let a = try file.tensor("\(name).a"), b = try file.tensor("\(name).b")
        let add = try Ops.add(a, b), mul = try Ops.mul(a, b)
        let wantAdd = try file.tensor("\(name).add"), wantMul = try file.tensor("\(name).mul")
        // Single fp32 operations: results must be bit-identical.
        #expect(add.shape == wantAdd.shape && add.toFloats() == wantAdd.toFloats(), "add \(name)")
        #expect(mul.shape == wantMul.shape && mul.toFloats() == wantMul.toFloats(), "mul \(name)")
        // Commuted operands give the same result.
        let commuted = try Ops.add(b, a).toFloats()
        #expect(commuted == wantAdd.toFloats(), "add commuted \(name)")
    }

    @Test func broadcastErrors() throws {
        #expect(throws: TensorError.self) { try Ops.add(try Tensor.zeros([2, 3]), try Tensor.zeros([4, 3])) }
    }

    @Test(arguments: [320, 256, 7])
    func timestepEmbeddingMatchesDiffusersFormula(dim: Int) throws {
        let t = try file.tensor("temb\(dim).t").toFloats()
        let y = try Ops.timestepEmbedding(t, dim: dim)
        // The formula is evaluated in fp32 like the reference, but torch's vectorized exp is not
        // always correctly rounded (2 of the 160 frequencies for dim 320 are 1 ulp off glibc's expf),
        // and the argument t * freq multiplies that ulp (<= 1.2e-7) by t <= 1024: up to 1.2e-4 in
        // the sin/cos argument and so in the output. Hence 2e-4 absolute; an index or cos/sin order
        // bug gives O(1) errors.
        expectClose(y, try file.tensor("temb\(dim).y"), tol: 2e-4, "timestep embedding \(dim)")
        // Cos-first layout check, independent of rounding: t = 0 gives [1...1 | 0...0].
        let row0 = Array(y.toFloats()[0..<dim])
        #expect(row0[0..<(dim / 2)].allSatisfy { $0 == 1 } && row0[(dim / 2)...].allSatisfy { $0 == 0 })
    }
}

@Suite struct EmbeddingTests {
    /// Gathering rows from an f16 table equals torch's exact widening of those rows.
    @Test func embeddingGathersWidenedRows() throws {
        let file = try Fixtures.open("linear.safetensors")
        let table = try file.tensor("f16_bias.weight")          // [33, 40] f16
        let ids = [0, 32, 5, 5, 17]
        let y = try Ops.embedding(ids, weight: table)
        #expect(y.shape == [5, 40])
        let all = table.toFloats(), got = y.toFloats()
        for (i, id) in ids.enumerated() {
            #expect(Array(got[(i * 40)..<((i + 1) * 40)]) == Array(all[(id * 40)..<((id + 1) * 40)]))
        }
        #expect(throws: TensorError.self) { try Ops.embedding([0, 33], weight: table) }
        #expect(throws: TensorError.self) { try Ops.embedding([-1], weight: table) }
    }
}
