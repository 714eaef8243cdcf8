import CAMX
import CKernels

/// bf16 GEMM kernels (AMX / AVX512-BF16, `Sources/CAMX`): operands rounded to bf16 (nearest even),
/// products accumulated in fp32, outputs f32. Each function falls back to its fp32 `Ops` peer
/// (bit-identical) when `BF16Backend.tier` is 0.
extension Ops {
    /// Splits an [M, N] GEMM over the cores: along M in 32-row blocks when every core gets at least
    /// 256 rows (the kernel's row block), otherwise along N in 32-column blocks when there are enough.
    /// `call(n0, n1, m0, m1)` runs one part. Along M each core converts only its own rows of A, and
    /// B is streamed once per row block either way: in an interleaved 2-thread harness the M split
    /// took 0.95-0.99x the time of the N split at M = 512-1024 (K 1280-5120, N 1280-10240).
    static func splitGemm(m: Int, n: Int, threads: Int = Parallel.cores, _ call: @escaping (Int, Int, Int, Int) -> Void) {
        if m == 0 || n == 0 { return }
        let nBlocks = (n + 31) / 32
        if threads <= 1 || (m < 64 && nBlocks < 2) { call(0, n, 0, m); return }
        if nBlocks >= threads && m < 256 * threads {
            let per = (nBlocks + threads - 1) / threads
            Parallel.forEach(threads) { i in
                let n0 = i * per * 32, n1 = min(n, (i + 1) * per * 32)
                if n0 < n1 { call(n0, n1, 0, m) }
            }
        } else {
            let mBlocks = (m + 31) / 32
            let per = (mBlocks + threads - 1) / threads
            Parallel.forEach(threads) { i in
                let m0 = i * per * 32, m1 = min(m, (i + 1) * per * 32)
                if m0 < m1 { call(0, n, m0, m1) }
            }
        }
    }

    /// `linear` with a pre-packed bf16 weight: y = bf16(x) bf16(W)^T + b (+ residual), fp32
    /// accumulation.
    /// - x: [..., K] f32 (rounded to bf16 as it is packed) or bf16 (used as is; f16 is widened first);
    ///   bias: [N] or nil; residual: nil or a tensor of the output's shape, added in the GEMM's store
    ///   (one pass instead of a separate `Ops.add`). Returns [..., N] f32.
    /// Tier 0: `Ops.linear(x, weight: weight.source, bias:)` (+ residual).
    public static func linearBF16(_ x: Tensor, weight: PackedBF16Weight, bias: Tensor?, residual: Tensor? = nil) throws -> Tensor {
        let op = "linearBF16"
        let outF = weight.n, inF = weight.k
        if let kern = weight.kernel, kern.kh * kern.kw != 1 {
            throw TensorError.shapeMismatch(op: op, detail: "weight is a \(kern.kh)x\(kern.kw) conv kernel")
        }
        guard !weight.gegluInterleaved else {
            throw TensorError.invalidArgument(op: op, detail: "weight is packed for linearGEGLUBF16")
        }
        var outShape = x.shape
        if !outShape.isEmpty { outShape[outShape.count - 1] = outF }
        if let residual, residual.shape != outShape {
            throw TensorError.shapeMismatch(op: op, detail: "residual \(residual.shape) != output \(outShape)")
        }
        let tier = BF16Backend.tier
        guard tier > 0, let packed = weight.packedPointer else {
            let w2 = weight.source.rank == 2 ? weight.source : try weight.source.reshaped([outF, inF])
            let y = try linear(x, weight: w2, bias: bias)
            return try residual.map { try add($0, y) } ?? y
        }
        guard x.rank >= 1, x.shape[x.rank - 1] == inF else {
            throw TensorError.shapeMismatch(op: op, detail: "input \(x.shape) last dim != weight in-features \(inF)")
        }
        let b = try vector(bias, count: outF, op, "bias")
        let xin = x.dtype == .bf16 ? x : try floatInput(x, op, "input")
        let rf = try residual.map { try floatInput($0, op, "residual") }
        let m = x.count / max(inF, 1)
        guard m <= Int(Int32.max) else { throw TensorError.tooLarge(op: op, detail: "\(m) rows") }
        let y = try Tensor.uninitialized(outShape, dtype: .f32)
        if m == 0 { return y }
        let t = Int32(tier), aType: Int32 = xin.dtype == .bf16 ? 2 : 0
        let ap = xin.rawPointer, cp = UnsafeMutableRawPointer(y.f32MutablePointer)
        let bp = b?.f32Pointer, rp = rf?.f32Pointer
        splitGemm(m: m, n: outF) { n0, n1, m0, m1 in
            sdf_bf16_gemm_ex(t, ap, aType, Int32(inF), packed, cp, 0, Int32(outF), Int32(m), Int32(outF), Int32(inF),
                             bp, rp, Int32(outF), 0, Int32(n0), Int32(n1), Int32(m0), Int32(m1))
        }
        withExtendedLifetime((xin, b, rf, weight)) {}
        return y
    }

    /// GEGLU feed-forward input projection fused: h = x W^T + b, split [value | gate] in halves of H,
    /// returns value * gelu(gate) (erf form, `Ops.geglu`) as bf16 [..., H]: the GEMM's store applies
    /// the activation, so the [..., 2H] fp32 projection is never written. `weight` must be packed with
    /// `PackedBF16Weight(_, gegluInterleaved: true)` (H a multiple of 16). Tier 0 (or an unpacked
    /// weight): `Ops.geglu(Ops.linear(x, weight: weight.source, bias:))` (f32).
    public static func linearGEGLUBF16(_ x: Tensor, weight: PackedBF16Weight, bias: Tensor?) throws -> Tensor {
        let op = "linearGEGLUBF16"
        let n2 = weight.n, inF = weight.k, hidden = n2 / 2
        guard weight.gegluInterleaved, weight.kernel == nil else {
            throw TensorError.invalidArgument(op: op, detail: "weight must be packed with gegluInterleaved")
        }
        let tier = BF16Backend.tier
        guard tier > 0, let packed = weight.packedPointer else {
            let w2 = weight.source.rank == 2 ? weight.source : try weight.source.reshaped([n2, inF])
            return try geglu(linear(x, weight: w2, bias: bias))
        }
        guard x.rank >= 1, x.shape[x.rank - 1] == inF else {
            throw TensorError.shapeMismatch(op: op, detail: "input \(x.shape) last dim != weight in-features \(inF)")
        }
        let b = try vector(bias, count: n2, op, "bias")
        // The bias in the weight's interleaved column order.
        let bi = try b.map { bt -> Tensor in
            let t = try Tensor.uninitialized([n2], dtype: .f32)
            let src = bt.f32Pointer, dst = t.f32MutablePointer
            for blk in 0..<(hidden / 16) {
                for j in 0..<16 {
                    dst[blk * 32 + j] = src[blk * 16 + j]
                    dst[blk * 32 + 16 + j] = src[hidden + blk * 16 + j]
                }
            }
            return t
        }
        let xin = x.dtype == .bf16 ? x : try floatInput(x, op, "input")
        let m = x.count / max(inF, 1)
        guard m <= Int(Int32.max) else { throw TensorError.tooLarge(op: op, detail: "\(m) rows") }
        var outShape = x.shape; outShape[outShape.count - 1] = hidden
        let y = try Tensor.uninitialized(outShape, dtype: .bf16)
        if m == 0 { return y }
        let t = Int32(tier), aType: Int32 = xin.dtype == .bf16 ? 2 : 0
        let ap = xin.rawPointer, cp = UnsafeMutableRawPointer(mutating: y.rawPointer)
        let bp = bi?.f32Pointer
        splitGemm(m: m, n: n2) { n0, n1, m0, m1 in
            sdf_bf16_gemm_ex(t, ap, aType, Int32(inF), packed, cp, 2, Int32(hidden), Int32(m), Int32(n2), Int32(inF),
                             bp, nil, 0, 1, Int32(n0), Int32(n1), Int32(m0), Int32(m1))
        }
        withExtendedLifetime((xin, bi, weight)) {}
        return y
    }

    /// Largest band of `conv2dBF16` work, in pixels x K (no buffer of that size is allocated; the
    /// band only bounds how much one work item computes): 64 Mi.
    public static let bf16ConvChunkFloats = 64 << 20

    /// `conv2d` with a pre-packed bf16 weight (packed from [O, C, kh, kw]); NCHW in and out, f32 out.
    /// The GEMM runs transposed (rows = output pixels, K = kh*kw*C channels-last patches, N = O): the
    /// input is converted to NHWC once per image; `sdf_bf16_conv_gemm` gathers each band's patches
    /// straight into its bf16 A buffer (implicit im2col, no column matrix) and writes the [pixels, O]
    /// result transposed into the NCHW output planes. Bands of pixels run on all cores.
    /// Tier 0: `Ops.conv2d(x, weight: weight.source, ...)`.
    /// `input`: a transform of x applied first (GroupNorm affine form (+ SiLU), then 2x nearest
    /// upsampling; see `ConvInputTransform`). On the direct AMX path it is applied while the bf16 copy
    /// is made, so the transformed fp32 tensor is never written; elsewhere it is materialised first
    /// (`applyConvInputTransform`). Either way the result equals convolving the materialised input.
    /// `residual`: a tensor of the output's shape added in the GEMM's store ((conv + bias) + residual,
    /// the same sum as `Ops.add(residual, y)`), so no separate pass or output tensor.
    public static func conv2dBF16(_ x: Tensor, weight: PackedBF16Weight, kernel: (Int, Int), bias: Tensor?,
                                  stride: Int = 1, padding: Padding2D = .zero,
                                  maxColumnFloats: Int = bf16ConvChunkFloats,
                                  input: ConvInputTransform = .identity, residual: Tensor? = nil) throws -> Tensor {
        let op = "conv2dBF16"
        guard x.rank == 4 else { throw TensorError.shapeMismatch(op: op, detail: "input must be [N, C, H, W], got \(x.shape)") }
        let (kh, kw) = kernel
        let up = input.upsample2x ? 2 : 1
        // (h, w): the logical (transformed) input size; (sh, sw): x's own.
        let (nImg, c, sh, sw) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (h, w) = (sh * up, sw * up)
        let o = weight.n
        let wk = weight.kernel ?? (1, 1)
        guard wk.kh == kh, wk.kw == kw, weight.k == c * kh * kw else {
            throw TensorError.shapeMismatch(op: op, detail: "input \(x.shape) with kernel \(kh)x\(kw) does not fit packed weight [\(o), \(weight.k)] (kernel \(wk.kh)x\(wk.kw))")
        }
        if let a = input.affine, a.scale.count != nImg * c || a.shift.count != nImg * c {
            throw TensorError.shapeMismatch(op: op, detail: "input transform has \(a.scale.count) / \(a.shift.count) coefficients for \(nImg * c) (image, channel) pairs")
        }
        let (hp, wp, ho, wo) = try convOutputSize(op, h: h, w: w, kh: kh, kw: kw, stride: stride, padding: padding)
        if let residual {
            guard residual.shape == [nImg, o, ho, wo] else {
                throw TensorError.shapeMismatch(op: op, detail: "residual \(residual.shape) does not match the output [\(nImg), \(o), \(ho), \(wo)]")
            }
        }
        let tier = BF16Backend.tier
        if !input.isIdentity {
            if !(tier == 2 && weight.packedPointer != nil && stride == 1 && c % 32 == 0 && wo % 16 == 0 && ho > 0) {
                return try conv2dBF16(applyConvInputTransform(x, input), weight: weight, kernel: kernel, bias: bias,
                                      stride: stride, padding: padding, maxColumnFloats: maxColumnFloats, residual: residual)
            }
        }
        guard tier > 0, let packed = weight.packedPointer else {
            let w4 = weight.source.rank == 4 ? weight.source : try weight.source.reshaped([o, c, kh, kw])
            let y = try conv2d(x, weight: w4, bias: bias, stride: stride, padding: padding)
            return try residual.map { try add($0, y) } ?? y
        }
        let b = try vector(bias, count: o, op, "bias")
        let xf = try floatInput(x, op, "input")
        let y = try Tensor.uninitialized([nImg, o, ho, wo], dtype: .f32)
        if y.count == 0 { return y }
        let hwo = ho * wo, hw = sh * sw, ck = c * kh * kw
        guard hwo <= Int(Int32.max), ck <= Int(Int32.max) / 2 else { throw TensorError.tooLarge(op: op, detail: "\(x.shape)") }
        let yp = y.f32MutablePointer, xp = xf.f32Pointer, bp = b?.f32Pointer
        let rf = try residual.map { try floatInput($0, op, "residual") }
        let rp = rf?.f32Pointer
        // Work items: bands of output pixels of one image, `cores` per image or more when a band would
        // exceed maxColumnFloats / K pixels (tests use small values to exercise many bands).
        let cores = Parallel.cores
        var pix = (hwo + cores - 1) / cores
        pix = min(pix, max(1, maxColumnFloats / max(ck, 1)))
        if pix > 32 { pix = pix / 32 * 32 }
        let bandsPerImage = (hwo + pix - 1) / pix
        let t32 = Int32(tier)
        if tier == 2, stride == 1, c % 32 == 0, wo % 16 == 0 {
            // Direct convolution: one zero-bordered NHWC bf16 copy of each image, read by the AMX
            // tiles in place (no im2col, no A packing).
            let rowsPerBand = max(1, (hp + cores - 1) / cores)
            let bandPix = ((hwo + cores - 1) / cores + 31) / 32 * 32   // one band of pixels per core
            let nb = (hwo + bandPix - 1) / bandPix
            // A band fails only if the kernel cannot allocate its scratch: the im2col path below then
            // recomputes everything.
            var ok = true
            ScratchPool.shared.withFloats((hp * wp * c + 1) / 2) { buf in
                let xpad = UnsafeMutableRawPointer(buf).assumingMemoryBound(to: UInt16.self)
                for img in 0..<nImg where ok {
                    let xi = xp + img * c * hw
                    let converted = input.affine.map { aff in
                        aff.scale.withUnsafeBufferPointer { sp in
                            aff.shift.withUnsafeBufferPointer { bp in
                                convertBands(xi, c: c, sh: sh, sw: sw, up: up, scale: sp.baseAddress! + img * c,
                                             shift: bp.baseAddress! + img * c, silu: input.silu, padding: padding,
                                             hp: hp, wp: wp, rowsPerBand: rowsPerBand, into: xpad)
                            }
                        }
                    } ?? convertBands(xi, c: c, sh: sh, sw: sw, up: up, scale: nil, shift: nil, silu: false,
                                      padding: padding, hp: hp, wp: wp, rowsPerBand: rowsPerBand, into: xpad)
                    if !converted { ok = false; break }
                    let yi = yp + img * o * hwo, ri = rp.map { $0 + img * o * hwo }
                    ok = Parallel.forEachAll(nb) { band in
                        let p0 = band * bandPix, p1 = min(hwo, p0 + bandPix)
                        return sdf_bf16_conv_direct(xpad, Int32(wp), Int32(c), Int32(kh), Int32(kw), Int32(ho), Int32(wo),
                                                    packed, Int32(o), bp, ri, yi, Int32(p0), Int32(p1)) != 0
                    }
                }
            }
            if ok {
                withExtendedLifetime((xf, b, weight, rf)) {}
                return y
            }
            if !input.isIdentity {
                return try conv2dBF16(applyConvInputTransform(x, input), weight: weight, kernel: kernel, bias: bias,
                                      stride: stride, padding: padding, maxColumnFloats: maxColumnFloats, residual: residual)
            }
        }
        ScratchPool.shared.withFloats(hw * c) { xt in
            for img in 0..<nImg {
                // NHWC copy of this image: xt[p, c] = x[c, p].
                transposeBlocked(xp + img * c * hw, rows: c, cols: hw, ld: hw, into: xt, ldOut: c)
                let yi = yp + img * o * hwo, ri = rp.map { $0 + img * o * hwo }
                Parallel.forEach(bandsPerImage) { band in
                    let p0 = band * pix, p1 = min(hwo, p0 + pix)
                    sdf_bf16_conv_gemm(t32, xt, Int32(h), Int32(w), Int32(c), Int32(kh), Int32(kw), Int32(stride),
                                       Int32(padding.top), Int32(padding.left), Int32(ho), Int32(wo), packed, Int32(o),
                                       bp, ri, yi, Int32(p0), Int32(p1), 0, Int32(o))
                }
            }
        }
        withExtendedLifetime((xf, b, weight, rf)) {}
        return y
    }

    /// out[j, i] = src[i, j] for an [rows, cols] matrix (row stride ld) into out (row stride ldOut),
    /// in 32 x 32 blocks.
    static func transposeBlocked(_ src: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int,
                                 into out: UnsafeMutablePointer<Float>, ldOut: Int) {
        let bs = 32
        var i0 = 0
        while i0 < rows {
            let i1 = min(rows, i0 + bs)
            var j0 = 0
            while j0 < cols {
                let j1 = min(cols, j0 + bs)
                for i in i0..<i1 {
                    let s = src + i * ld
                    for j in j0..<j1 { out[j * ldOut + i] = s[j] }
                }
                j0 = j1
            }
            i0 = i1
        }
    }

    /// Largest score block (queries x keys floats) per work item of `attentionBF16` (32 Ki floats;
    /// at least one 32-row strip is computed whatever the key count).
    public static let bf16AttentionScoreFloats = 1 << 15

    /// `attention` (same contract: [B, L, H*D] layout, causal, scale) with QK^T and PV as bf16 GEMMs
    /// (fp32 accumulation) and the softmax fused between them (`sdf_bf16_attention`: fp32 max and
    /// exponentials, probabilities rounded to bf16 unnormalised, output rows divided by the fp32 row
    /// sums). Each (batch, head)'s K and V are packed once per call (K as the [Lk, D] weight of QK^T,
    /// V transposed as the [Dv, Lk] weight of PV); work items are (batch, head, query block), one per
    /// core at a time. Tier 0: `Ops.attention`.
    public static func attentionBF16(query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool = false,
                                     scale: Float? = nil, maxScoreFloats: Int = bf16AttentionScoreFloats) throws -> Tensor {
        let tier = BF16Backend.tier
        if tier == 0 {
            return try attention(query: query, key: key, value: value, heads: heads, causal: causal, scale: scale)
        }
        let pr = try AttentionProblem("attentionBF16", query, key, value, heads: heads, scale: scale)
        let (bsz, lq, lk, d, dv, cq, cv, s) = (pr.bsz, pr.lq, pr.lk, pr.d, pr.dv, pr.cq, pr.cv, pr.scale)
        let (qf, kf, vf, out) = (pr.q, pr.k, pr.v, pr.out)
        guard lk <= Int(Int32.max) / 2 else {
            throw TensorError.tooLarge(op: "attentionBF16", detail: "query \(query.shape), key \(key.shape)")
        }
        if out.count == 0 { return out }
        if lk == 0 || d == 0 {
            if lk == 0 { out.f32MutablePointer.update(repeating: 0, count: out.count); return out }
            return try attention(query: query, key: key, value: value, heads: heads, causal: causal, scale: scale)
        }
        let qp = qf.f32Pointer, kp = kf.f32Pointer, vp = vf.f32Pointer, op_ = out.f32MutablePointer
        // Pack K_h ([lk, d] -> B of QK^T) and V_h ([lk, dv] read transposed -> B of PV) per (b, h).
        let kSize = sdf_bf16_packed_size(Int32(lk), Int32(d)) / 2
        let vSize = sdf_bf16_packed_size(Int32(dv), Int32(lk)) / 2
        let per = (kSize + vSize + 31) / 32 * 32
        let packs = TensorStorage(byteCount: max(1, bsz * heads * per * 2))
        let pk = packs.base.assumingMemoryBound(to: UInt16.self)
        Parallel.forEach(bsz * heads) { bh in
            let b = bh / heads, h = bh % heads
            sdf_bf16_pack_b(kp + b * lk * cq + h * d, 0, Int32(lk), Int32(d), Int32(cq), pk + bh * per)
            if dv > 0 {
                sdf_bf16_pack_bt(vp + b * lk * cv + h * dv, 0, Int32(dv), Int32(lk), Int32(cv), pk + bh * per + kSize)
            }
        }
        // Query blocks of at most min(maxScoreFloats, 32 Ki) scores, in practice one 32-row strip
        // for self-attention: the strip's scores and probabilities, with the head's packed K and V
        // (1.8 MiB at 4096 keys), stay in L2. Interleaved with the old 256 Ki block (2 threads):
        // 0.92-0.99x the time at 4096 keys (64 -> 32 rows), 0.78-0.88x at 1024 keys (256 -> 32).
        let blockFloats = max(1, min(maxScoreFloats, bf16AttentionScoreFloats))
        // At least 32 query rows (one AMX strip) unless the caller asks for smaller blocks.
        let minRows = maxScoreFloats >= bf16AttentionScoreFloats ? 32 : 1
        var block = max(min(lq, minRows), min(lq, blockFloats / lk), 1)
        if block > 32 { block = block / 32 * 32 }
        let blocksPerHead = (lq + block - 1) / block
        let tasks = bsz * heads * blocksPerHead
        let t32 = Int32(tier)
        let done = Parallel.forEachAll(tasks) { task in
            let i0 = (task % blocksPerHead) * block
            let h = (task / blocksPerHead) % heads
            let b = task / (blocksPerHead * heads)
            let rows = min(block, lq - i0)
            let qh = qp + b * lq * cq + h * d
            let oh = op_ + b * lq * cv + h * dv
            let packK = pk + (b * heads + h) * per, packV = packK + kSize
            return sdf_bf16_attention(t32, qh + i0 * cq, Int32(cq), Int32(rows), Int32(d), packK, Int32(lk),
                                      packV, Int32(dv), oh + i0 * cv, Int32(cv), s, causal ? Int32(i0) : -1) != 0
        }
        withExtendedLifetime((qf, kf, vf, packs)) {}
        // Scratch allocation failed somewhere: the fp32 kernel computes the whole call instead.
        return done ? out : try attention(query: query, key: key, value: value, heads: heads, causal: causal, scale: scale)
    }
}

/// A transform of a convolution's input that `Ops.conv2dBF16` applies while making its bf16 copy of
/// the input: per (image, channel) y = x * scale + shift (a GroupNorm in affine form, from
/// `Ops.groupNormAffine`), optionally followed by SiLU, then nearest-neighbour 2x upsampling.
public struct ConvInputTransform: Sendable {
    /// [N * C] scales and shifts, image-major; nil: no affine step (and no SiLU).
    public var affine: (scale: [Float], shift: [Float])?
    public var silu: Bool
    public var upsample2x: Bool

    public init(affine: (scale: [Float], shift: [Float])? = nil, silu: Bool = false, upsample2x: Bool = false) {
        self.affine = affine
        self.silu = silu
        self.upsample2x = upsample2x
    }

    public static let identity = ConvInputTransform()
    public var isIdentity: Bool { affine == nil && !upsample2x }
}

extension Ops {
    /// The direct conv's bf16 NHWC copy of one image, rows in bands on all cores; false if a band could
    /// not allocate its scratch.
    static func convertBands(_ xi: UnsafePointer<Float>, c: Int, sh: Int, sw: Int, up: Int, scale: UnsafePointer<Float>?,
                             shift: UnsafePointer<Float>?, silu: Bool, padding: Padding2D, hp: Int, wp: Int,
                             rowsPerBand: Int, into xpad: UnsafeMutablePointer<UInt16>) -> Bool {
        Parallel.forEachAll((hp + rowsPerBand - 1) / rowsPerBand) { band in
            let r0 = band * rowsPerBand, r1 = min(hp, r0 + rowsPerBand)
            return sdf_nchw_to_nhwc_bf16_pad_ex(xi, Int32(c), Int32(sh), Int32(sw), Int32(up), scale, shift, silu ? 1 : 0,
                                                Int32(padding.top), Int32(padding.left), Int32(hp), Int32(wp), xpad,
                                                Int32(r0), Int32(r1)) != 0
        }
    }

    /// The transformed input as an fp32 tensor: the same values `conv2dBF16` converts on its direct
    /// path (the affine step and SiLU by the kernel `groupNorm` uses, then `upsampleNearest2x`).
    public static func applyConvInputTransform(_ x: Tensor, _ t: ConvInputTransform) throws -> Tensor {
        let op = "applyConvInputTransform"
        guard x.rank == 4 else { throw TensorError.shapeMismatch(op: op, detail: "input must be [N, C, H, W], got \(x.shape)") }
        var y = x
        if let a = t.affine {
            let (n, c) = (x.shape[0], x.shape[1])
            guard a.scale.count == n * c, a.shift.count == n * c else {
                throw TensorError.shapeMismatch(op: op, detail: "\(a.scale.count) / \(a.shift.count) coefficients for \(n * c) (image, channel) pairs")
            }
            let xf = try floatInput(x, op, "input")
            let out = try Tensor.uninitialized(x.shape, dtype: .f32)
            let plane = x.count / max(n * c, 1)
            let xp = xf.f32Pointer, yp = out.f32MutablePointer, silu: Int32 = t.silu ? 1 : 0
            Parallel.chunks(n * c, minChunk: max(1, 16384 / max(plane, 1))) { r in
                for i in r { sdf_scale_shift(xp + i * plane, yp + i * plane, plane, a.scale[i], a.shift[i], silu) }
            }
            y = out
        }
        if t.upsample2x { y = try upsampleNearest2x(y) }
        return y
    }
}
