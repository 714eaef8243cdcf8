import CAMX
import CKernels

extension Ops {
    /// `torch.nn.functional.group_norm(x, groups, weight, bias, eps)`, optionally followed by
    /// `torch.nn.functional.silu` (fused, one pass over the output).
    ///
    /// - x: [N, C, *] (any trailing spatial dims, including none); weight/bias: [C] or nil.
    /// Statistics per (sample, group) with the biased variance, in one pass over memory
    /// (`sdf_mean_var`: per 4096-element chunk the mean and the squared deviations from it, chunks
    /// combined in double); y = x * a + b with
    /// a = weight * rstd, b = bias - mean * a. Parallel over (sample, group) pairs.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float,
                                 silu: Bool = false) throws -> Tensor {
        let y = try Tensor.uninitialized(x.shape, dtype: .f32)
        let yp = y.f32MutablePointer
        let useSilu: Int32 = silu ? 1 : 0
        try groupNormPlanes(x, groups: groups, weight: weight, bias: bias, eps: eps) { xp, plane, spatial, a, sh in
            sdf_scale_shift(xp + plane * spatial, yp + plane * spatial, spatial, a, sh, useSilu)
        }
        return y
    }

    /// The per (sample, channel) affine form of `groupNorm`: y[n, c, ...] = x * scale[n * C + c] +
    /// shift[n * C + c], with the same statistics and the same float expressions (so a kernel that
    /// applies them with `sdf_scale_shift` reproduces `groupNorm`'s output bit for bit).
    public static func groupNormAffine(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?,
                                       eps: Float) throws -> (scale: [Float], shift: [Float]) {
        let count = x.rank >= 2 ? x.shape[0] * x.shape[1] : 0
        var scale = [Float](repeating: 1, count: count), shift = [Float](repeating: 0, count: count)
        try scale.withUnsafeMutableBufferPointer { sc in
            try shift.withUnsafeMutableBufferPointer { sf in
                let scp = sc.baseAddress, sfp = sf.baseAddress
                try groupNormPlanes(x, groups: groups, weight: weight, bias: bias, eps: eps) { _, plane, _, a, sh in
                    scp![plane] = a
                    sfp![plane] = sh
                }
            }
        }
        return (scale, shift)
    }

    /// The part `groupNorm` and `groupNormAffine` share: checks the arguments, then per (sample, group)
    /// on all cores computes the statistics and calls `channel(xp, plane, spatial, a, shift)` for each
    /// of the group's channels (plane = sample * C + channel, starting at xp + plane * spatial), while
    /// the group is still in cache; not called when x is empty.
    private static func groupNormPlanes(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float,
                                        _ channel: (UnsafePointer<Float>, Int, Int, Float, Float) -> Void) throws {
        let op = "groupNorm"
        guard x.rank >= 2 else { throw TensorError.shapeMismatch(op: op, detail: "input must be [N, C, ...], got \(x.shape)") }
        let n = x.shape[0], c = x.shape[1]
        guard groups > 0, c % groups == 0 else {
            throw TensorError.invalidArgument(op: op, detail: "\(c) channels not divisible into \(groups) groups")
        }
        let g = try vector(weight, count: c, op, "weight"), b = try vector(bias, count: c, op, "bias")
        let xf = try floatInput(x, op, "input")
        if x.count == 0 { return }
        let spatial = x.count / max(n * c, 1)
        let cpg = c / groups
        let xp = xf.f32Pointer
        let gp = g?.f32Pointer, bp = b?.f32Pointer
        Parallel.forEach(n * groups) { task in
            let img = task / groups, grp = task % groups
            let base = (img * c + grp * cpg) * spatial
            var md = 0.0, vd = 0.0
            sdf_mean_var(xp + base, cpg * spatial, &md, &vd)
            let mean = Float(md), variance = Float(vd)
            let rstd = 1 / (variance + eps).squareRoot()
            for j in 0..<cpg {
                let ch = grp * cpg + j
                let a = (gp?[ch] ?? 1) * rstd
                channel(xp, img * c + ch, spatial, a, (bp?[ch] ?? 0) - mean * a)
            }
        }
        withExtendedLifetime((xf, g, b)) {}
    }

    /// `torch.nn.functional.layer_norm(x, [D], weight, bias, eps)` over the last dimension D.
    /// weight/bias: [D] or nil. Biased variance, two-pass per row.
    /// outputBF16: the result is bf16 (nearest even) instead of f32, for a bf16 GEMM that reads it
    /// next (it would round its input to bf16 anyway).
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, outputBF16: Bool = false) throws -> Tensor {
        let op = "layerNorm"
        guard x.rank >= 1 else { throw TensorError.shapeMismatch(op: op, detail: "input must have at least one dim") }
        let d = x.shape[x.rank - 1]
        let g = try vector(weight, count: d, op, "weight"), b = try vector(bias, count: d, op, "bias")
        if b != nil && g == nil {
            throw TensorError.invalidArgument(op: op, detail: "bias without weight is not supported")
        }
        let xf = try floatInput(x, op, "input")
        let y = try Tensor.uninitialized(x.shape, dtype: outputBF16 ? .bf16 : .f32)
        let rows = d == 0 ? 0 : x.count / d
        let xp = xf.f32Pointer
        let gp = g?.f32Pointer, bp = b?.f32Pointer
        if outputBF16 {
            let yb = UnsafeMutableRawPointer(mutating: y.rawPointer).assumingMemoryBound(to: UInt16.self)
            Parallel.chunks(rows, minChunk: max(1, 8192 / max(d, 1))) { r in
                let row = UnsafeMutablePointer<Float>.allocate(capacity: max(d, 1))
                defer { row.deallocate() }
                for i in r {
                    sdf_layer_norm_row(xp + i * d, row, d, gp, bp, eps)
                    sdf_f32_to_bf16(row, yb + i * d, d)
                }
            }
            return y
        }
        let yp = y.f32MutablePointer
        Parallel.chunks(rows, minChunk: max(1, 8192 / max(d, 1))) { r in
            for i in r { sdf_layer_norm_row(xp + i * d, yp + i * d, d, gp, bp, eps) }
        }
        return y
    }

    /// `torch.softmax(scale * x, dim=-1)` (scale > 0; default 1).
    public static func softmax(_ x: Tensor, scale: Float = 1) throws -> Tensor {
        let op = "softmax"
        guard x.rank >= 1 else { throw TensorError.shapeMismatch(op: op, detail: "input must have at least one dim") }
        guard scale > 0, scale.isFinite else { throw TensorError.invalidArgument(op: op, detail: "scale \(scale) must be positive") }
        let d = x.shape[x.rank - 1]
        let xf = try floatInput(x, op, "input")
        let y = try Tensor.uninitialized(x.shape, dtype: .f32)
        let rows = d == 0 ? 0 : x.count / d
        let xp = xf.f32Pointer, yp = y.f32MutablePointer
        Parallel.chunks(rows, minChunk: max(1, 8192 / max(d, 1))) { r in
            for i in r { sdf_softmax_row(xp + i * d, yp + i * d, d, scale) }
        }
        return y
    }
}
