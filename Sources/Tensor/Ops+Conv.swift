/// Zero padding of a 2-D convolution input, per side.
public struct Padding2D: Sendable, Hashable {
    public var top, bottom, left, right: Int
    public init(top: Int, bottom: Int, left: Int, right: Int) {
        self.top = top; self.bottom = bottom; self.left = left; self.right = right
    }
    /// The same padding on every side (`padding=p` in torch's Conv2d).
    public init(_ p: Int) { self.init(top: p, bottom: p, left: p, right: p) }
    public static let zero = Padding2D(0)
    /// (left 0, right 1, top 0, bottom 1): the SDXL VAE encoder's Downsample, which calls
    /// `F.pad(x, (0, 1, 0, 1))` before a stride-2, padding-0 3x3 convolution.
    public static let vaeDownsample = Padding2D(top: 0, bottom: 1, left: 0, right: 1)
}

extension Ops {
    /// Target im2col scratch per band (floats): 8 Mi floats = 32 MiB, raised to what ~1024 output
    /// positions need for very deep layers (1280 channels: 11.8 Mi floats).
    public static let im2colChunkFloats = 8 << 20

    /// `torch.nn.functional.conv2d(x, weight, bias, stride, padding)` (groups 1, dilation 1), with
    /// asymmetric zero padding allowed (equivalent to `F.pad` then conv with padding 0).
    ///
    /// - x: [N, C, H, W]; weight: [O, C, kh, kw] (f32, or f16/bf16 widened per call); bias: [O] or nil.
    /// - Returns [N, O, Ho, Wo] f32, Ho = (H + top + bottom - kh) / stride + 1.
    /// 1x1 / stride 1 / no padding is one GEMM per image. Otherwise the input is unfolded (im2col) a
    /// band of output rows at a time into scratch of about `maxColumnFloats` (at least one row), and each band is one
    /// sgemm (weight [O, C*kh*kw] x columns) writing straight into the NCHW output (ldc = Ho*Wo).
    /// `input`: the convolution of `applyConvInputTransform(x, input)`; the shifted 3x3 path applies it
    /// while filling its padded planes (the transformed tensor is never written), the others make it.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1,
                              padding: Padding2D = .zero, maxColumnFloats: Int = im2colChunkFloats,
                              input: ConvInputTransform = .identity) throws -> Tensor {
        let op = "conv2d"
        guard x.rank == 4 else { throw TensorError.shapeMismatch(op: op, detail: "input must be [N, C, H, W], got \(x.shape)") }
        guard weight.rank == 4 else { throw TensorError.shapeMismatch(op: op, detail: "weight must be [O, C, kh, kw], got \(weight.shape)") }
        let up = input.upsample2x ? 2 : 1
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2] * up, x.shape[3] * up)
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        guard weight.shape[1] == c else {
            throw TensorError.shapeMismatch(op: op, detail: "input \(x.shape) has \(c) channels, weight \(weight.shape) expects \(weight.shape[1])")
        }
        // Measured here: the shifted form wins from 32x32 up (up to 2x at 512x512), im2col below (2x at 16x16).
        let shifted = shiftedConv3x3 && kh == 3 && kw == 3 && stride == 1 && padding == Padding2D(1) && c > 0 && h * w >= 1024
            && (weight.dtype == .f32 || weight.dtype == .f16 || weight.dtype == .bf16)
        if !input.isIdentity && !shifted {
            return try conv2d(applyConvInputTransform(x, input), weight: weight, bias: bias, stride: stride, padding: padding,
                              maxColumnFloats: maxColumnFloats)
        }
        if let a = input.affine, a.scale.count != n * c || a.shift.count != n * c {
            throw TensorError.shapeMismatch(op: op, detail: "\(a.scale.count) / \(a.shift.count) input coefficients for \(n * c) (image, channel) pairs")
        }
        let (_, _, ho, wo) = try convOutputSize(op, h: h, w: w, kh: kh, kw: kw, stride: stride, padding: padding)
        let b = try vector(bias, count: o, op, "bias")
        let xf = try floatInput(x, op, "input")
        let y = try Tensor.uninitialized([n, o, ho, wo], dtype: .f32)
        let hwo = ho * wo, hw = h * w
        if y.count == 0 { return y }
        let yp = y.f32MutablePointer, xp = xf.f32Pointer
        let beta: Float = b == nil ? 0 : 1
        let ck = c * kh * kw
        try BLAS.checkDimensions(op, o, ck, hwo, hw)
        if shifted {
            conv3x3Shifted(xp, n: n, c: c, h: h, w: w, weight: weight, o: o, bias: b?.f32Pointer, into: yp, input: input)
            return y
        }
        if let b {
            let bp = b.f32Pointer
            Parallel.chunks(n * o, minChunk: max(1, 16384 / hwo)) { r in
                for i in r { (yp + i * hwo).update(repeating: bp[i % o], count: hwo) }
            }
        }
        if c == 0 {
            if b == nil { yp.update(repeating: 0, count: y.count) }
            return y
        }

        try withWidened(weight, op) { wptr in
            if kh == 1, kw == 1, stride == 1, padding == .zero {
                for img in 0..<n {
                    BLAS.sgemm(m: o, n: hw, k: c, a: wptr, lda: c, b: xp + img * c * hw, ldb: hw,
                               beta: beta, c: yp + img * o * hwo, ldc: hwo)
                }
                return
            }
            // Bands of at least ~1024 output positions keep the GEMM wide enough to run at full rate
            // (1280-channel layers would otherwise get bands of ~700 columns); explicit small
            // `maxColumnFloats` values (tests) are honoured.
            let minCols = maxColumnFloats >= im2colChunkFloats ? 1024 : 1
            let rowsPerChunk = max(1, min(ho, max(maxColumnFloats / max(ck * wo, 1), (minCols + wo - 1) / wo)))
            ScratchPool.shared.withFloats(ck * rowsPerChunk * wo) { col in
                for img in 0..<n {
                    let xi = xp + img * c * hw
                    var oy0 = 0
                    while oy0 < ho {
                        let rows = min(rowsPerChunk, ho - oy0)
                        let cols = rows * wo
                        im2col(xi, h: h, w: w, kh: kh, kw: kw, stride: stride, padding: padding,
                               oy0: oy0, rows: rows, wo: wo, ck: ck, into: col)
                        BLAS.sgemm(m: o, n: cols, k: ck, a: wptr, lda: ck, b: col, ldb: cols,
                                   beta: beta, c: yp + img * o * hwo + oy0 * wo, ldc: hwo)
                        oy0 += rows
                    }
                }
            }
        }
        return y
    }

    /// Convenience with symmetric padding.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int) throws -> Tensor {
        try conv2d(x, weight: weight, bias: bias, stride: stride, padding: Padding2D(padding))
    }

    /// Unfolds output rows [oy0, oy0 + rows) of one image into col[ck][rows * wo], row k = (c, ky, kx).
    static func im2col(_ x: UnsafePointer<Float>, h: Int, w: Int, kh: Int, kw: Int, stride: Int, padding: Padding2D,
                       oy0: Int, rows: Int, wo: Int, ck: Int, into col: UnsafeMutablePointer<Float>) {
        let cols = rows * wo
        Parallel.chunks(ck, minChunk: 8) { kr in
            for k in kr {
                let kx = k % kw, ky = (k / kw) % kh, ch = k / (kw * kh)
                let src = x + ch * h * w
                let dstRow = col + k * cols
                // Output columns whose input x lies inside [0, w): ix = ox*stride - left + kx.
                let oxLo = min(wo, max(0, (padding.left - kx + stride - 1) / stride))
                let lastNum = w - 1 + padding.left - kx   // last valid ox = floor(lastNum / stride)
                let oxHi = lastNum < 0 ? oxLo : max(oxLo, min(wo, lastNum / stride + 1))
                for r in 0..<rows {
                    let iy = (oy0 + r) * stride - padding.top + ky
                    let d = dstRow + r * wo
                    if iy < 0 || iy >= h {
                        d.update(repeating: 0, count: wo)
                        continue
                    }
                    let s = src + iy * w
                    if oxLo > 0 { d.update(repeating: 0, count: oxLo) }
                    if stride == 1 {
                        let ix0 = oxLo - padding.left + kx
                        (d + oxLo).update(from: s + ix0, count: oxHi - oxLo)
                    } else {
                        var ix = oxLo * stride - padding.left + kx
                        for ox in oxLo..<oxHi { d[ox] = s[ix]; ix += stride }
                    }
                    if oxHi < wo { (d + oxHi).update(repeating: 0, count: wo - oxHi) }
                }
            }
        }
    }

    /// Checks a convolution's geometry and returns the padded input size and the output size:
    /// stride and kernel >= 1, paddings >= 0, padded input at least the kernel.
    static func convOutputSize(_ op: String, h: Int, w: Int, kh: Int, kw: Int, stride: Int,
                               padding: Padding2D) throws -> (hp: Int, wp: Int, ho: Int, wo: Int) {
        guard stride >= 1, padding.top >= 0, padding.bottom >= 0, padding.left >= 0, padding.right >= 0, kh >= 1, kw >= 1 else {
            throw TensorError.invalidArgument(op: op, detail: "stride \(stride), padding \(padding), kernel \(kh)x\(kw)")
        }
        let hp = h + padding.top + padding.bottom, wp = w + padding.left + padding.right
        guard hp >= kh, wp >= kw else {
            throw TensorError.shapeMismatch(op: op, detail: "padded input \(hp)x\(wp) smaller than kernel \(kh)x\(kw)")
        }
        return (hp, wp, (hp - kh) / stride + 1, (wp - kw) / stride + 1)
    }
}
