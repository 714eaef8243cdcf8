import Tensor

/// Single-head self-attention over pixels with a GroupNorm in front and a residual (the VAE mid-block's).
struct VAEAttention {
    var norm: GroupNorm
    var q: Linear, k: Linear, v: Linear, out: Linear

    init(_ r: WeightReader, _ p: String, groups: Int) {
        norm = r.groupNorm("\(p).group_norm", groups: groups, eps: 1e-6)
        q = SpatialTransformer.projection(r, "\(p).to_q")
        k = SpatialTransformer.projection(r, "\(p).to_k")
        v = SpatialTransformer.projection(r, "\(p).to_v")
        out = SpatialTransformer.projection(r, "\(p).to_out.0")
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let t = try norm(x).permuted([0, 2, 3, 1]).reshaped([b, h * w, c])
        FlopCounter.add(4 * Double(h * w) * Double(h * w) * Double(c) * Double(b))
        let bf16 = q.lowPrecision && ComputePrecision.useBF16
        let (qq, kk, vv) = (try q(t), try k(t), try v(t))
        let a = try out(Profiler.measure("attention-vae" + (bf16 ? " bf16" : "")) {
            bf16 ? try Ops.attentionBF16(query: qq, key: kk, value: vv, heads: 1)
                 : try Ops.attention(query: qq, key: kk, value: vv, heads: 1)
        })
        return try Profiler.measure("add") { try Ops.add(a.reshaped([b, h, w, c]).permuted([0, 3, 1, 2]), x) }
    }
}

/// diffusers `AutoencoderKL`: decoder (latent -> image in [-1, 1]) and encoder (image -> posterior mean).
/// Latents here are the VAE's own (not multiplied by the scaling factor). Its convolutions and
/// attention follow `ComputePrecision` (bf16 GEMMs in bf16 mode); everything else is fp32.
public final class AutoencoderKL: @unchecked Sendable {
    public let config: VAEConfig
    let weights: WeightSet

    // Decoder
    let postQuant: Conv2d, decIn: Conv2d
    let decMid: (ResnetBlock, VAEAttention, ResnetBlock)
    let decUp: [(resnets: [ResnetBlock], upsample: Conv2d?)]
    let decNorm: GroupNorm, decOut: Conv2d
    // Encoder
    let encIn: Conv2d
    let encDown: [(resnets: [ResnetBlock], downsample: Conv2d?)]
    let encMid: (ResnetBlock, VAEAttention, ResnetBlock)
    let encNorm: GroupNorm, encOut: Conv2d, quant: Conv2d

    public init(config: VAEConfig, weights: WeightSet) throws {
        self.config = config
        self.weights = weights
        // bf16 keeps fp32's exponent range, so the SDXL VAE (which overflows in fp16) is safe in bf16
        // (measured: BF16ModelTests, sdflow bench accuracy); fp32 unless --precision bf16.
        let r = WeightReader(weights, lowPrecision: true)
        let g = config.normNumGroups, eps: Float = 1e-6, n = config.blockOutChannels.count
        func mid(_ p: String) -> (ResnetBlock, VAEAttention, ResnetBlock) {
            (ResnetBlock(r, "\(p).resnets.0", groups: g, eps: eps, timeEmbedding: false),
             VAEAttention(r, "\(p).attentions.0", groups: g),
             ResnetBlock(r, "\(p).resnets.1", groups: g, eps: eps, timeEmbedding: false))
        }
        postQuant = r.conv("post_quant_conv", padding: .zero)
        decIn = r.conv("decoder.conv_in")
        decMid = mid("decoder.mid_block")
        var ups: [(resnets: [ResnetBlock], upsample: Conv2d?)] = []
        for i in 0..<n {
            let rs = (0...config.layersPerBlock).map { ResnetBlock(r, "decoder.up_blocks.\(i).resnets.\($0)", groups: g, eps: eps, timeEmbedding: false) }
            ups.append((rs, i < n - 1 ? r.conv("decoder.up_blocks.\(i).upsamplers.0.conv") : nil))
        }
        decUp = ups
        decNorm = r.groupNorm("decoder.conv_norm_out", groups: g, eps: eps)
        decOut = r.conv("decoder.conv_out")

        encIn = r.conv("encoder.conv_in")
        var downs: [(resnets: [ResnetBlock], downsample: Conv2d?)] = []
        for i in 0..<n {
            let rs = (0..<config.layersPerBlock).map { ResnetBlock(r, "encoder.down_blocks.\(i).resnets.\($0)", groups: g, eps: eps, timeEmbedding: false) }
            // diffusers pads (left 0, right 1, top 0, bottom 1) and convolves with stride 2, no padding.
            downs.append((rs, i < n - 1 ? r.conv("encoder.down_blocks.\(i).downsamplers.0.conv", stride: 2,
                                                 padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1)) : nil))
        }
        encDown = downs
        encMid = mid("encoder.mid_block")
        encNorm = r.groupNorm("encoder.conv_norm_out", groups: g, eps: eps)
        encOut = r.conv("encoder.conv_out")
        quant = r.conv("quant_conv", padding: .zero)
        try r.finish()
    }

    /// Latent [B, C, h, w] (VAE space) -> image [B, 3, 8h, 8w] in about [-1, 1] (not clamped).
    public func decode(_ z: Tensor) throws -> Tensor {
        guard z.rank == 4, z.shape[1] == config.latentChannels else {
            throw ModelError.invalidInput("VAE decode: latent \(z.shape) should be [B, \(config.latentChannels), h, w]")
        }
        var h = try decIn(postQuant(z.asF32()))
        h = try decMid.0(h, nil)
        h = try decMid.1(h)
        h = try decMid.2(h, nil)
        for lvl in decUp {
            for rb in lvl.resnets { h = try rb(h, nil) }
            if let us = lvl.upsample { h = try us(upsampling: h) }
        }
        return try decOut(h, normalizedBy: decNorm, silu: true)
    }

    /// Image [B, 3, H, W] in [-1, 1] -> posterior mean [B, C, H/8, W/8] (VAE space). H, W multiples of 8.
    public func encode(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.shape[1] == config.inChannels, x.shape[2] % config.downscale == 0, x.shape[3] % config.downscale == 0 else {
            throw ModelError.invalidInput("VAE encode: image \(x.shape) should be [B, \(config.inChannels), H, W] with H, W multiples of \(config.downscale)")
        }
        var h = try encIn(x.asF32())
        for lvl in encDown {
            for rb in lvl.resnets { h = try rb(h, nil) }
            if let ds = lvl.downsample { h = try ds(h) }
        }
        h = try encMid.0(h, nil)
        h = try encMid.1(h)
        h = try encMid.2(h, nil)
        let moments = try quant(encOut(h, normalizedBy: encNorm, silu: true))
        return try moments.narrowed(dim: 1, start: 0, length: config.latentChannels)
    }
}

extension AutoencoderKL {
    /// Decodes in overlapping latent tiles of `tile` x `tile` (overlap `overlap`), blending the seams with
    /// linear ramps, so memory is bounded by the tile size. Equal to `decode` up to seam blending.
    public func decodeTiled(_ z: Tensor, tile: Int, overlap: Int,
                            progress: (_ step: Int, _ total: Int) throws -> Void = { _, _ in }) throws -> Tensor {
        let (b, h, w) = (z.shape[0], z.shape[2], z.shape[3])
        if h <= tile && w <= tile { return try decode(z) }
        let f = config.downscale
        let ys = Self.tileStarts(h, tile: tile, overlap: overlap), xs = Self.tileStarts(w, tile: tile, overlap: overlap)
        let oh = h * f, ow = w * f
        var acc = [Float](repeating: 0, count: b * 3 * oh * ow)
        var weight = [Float](repeating: 0, count: oh * ow)
        let total = ys.count * xs.count * b
        var done = 0
        let zf = z.asF32()
        for bi in 0..<b {
            let zb = try zf.narrowed(dim: 0, start: bi, length: 1)
            for y0 in ys {
                for x0 in xs {
                    let th = min(tile, h - y0), tw = min(tile, w - x0)
                    let part = try zb.narrowed(dim: 2, start: y0, length: th).narrowed(dim: 3, start: x0, length: tw)
                    let img = try decode(part).toFloats()
                    let ph = th * f, pw = tw * f, ramp = overlap * f
                    for yy in 0..<ph {
                        let wy = Self.seamWeight(yy, ph, ramp: ramp)
                        for xx in 0..<pw {
                            let wx = Self.seamWeight(xx, pw, ramp: ramp)
                            let wgt = wy * wx
                            let oy = y0 * f + yy, ox = x0 * f + xx
                            if bi == 0 { weight[oy * ow + ox] += wgt }
                            for c in 0..<3 { acc[((bi * 3 + c) * oh + oy) * ow + ox] += img[(c * ph + yy) * pw + xx] * wgt }
                        }
                    }
                    done += 1
                    try progress(done, total)
                }
            }
        }
        for bi in 0..<b { for c in 0..<3 { for p in 0..<(oh * ow) { acc[(bi * 3 + c) * oh * ow + p] /= max(weight[p], 1e-8) } } }
        return try Tensor(shape: [b, 3, oh, ow], values: acc)
    }
}

extension AutoencoderKL {
    /// Encodes in overlapping pixel tiles (`tile` x `tile`, overlap `overlap`, both multiples of 8) and blends
    /// the tiles' posterior means in latent space with linear ramps, bounding memory by the tile size.
    public func encodeTiled(_ x: Tensor, tile: Int, overlap: Int,
                            progress: (_ step: Int, _ total: Int) throws -> Void = { _, _ in }) throws -> Tensor {
        let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let f = config.downscale
        guard tile % f == 0, overlap % f == 0, overlap * 2 < tile, h % f == 0, w % f == 0 else {
            throw ModelError.invalidInput("VAE tiled encode: tile \(tile), overlap \(overlap) and the image \(w)x\(h) must be multiples of \(f), overlap under half the tile")
        }
        if h <= tile && w <= tile { return try encode(x) }
        let ys = Self.tileStarts(h, tile: tile, overlap: overlap), xs = Self.tileStarts(w, tile: tile, overlap: overlap)
        let lc = config.latentChannels, lh = h / f, lw = w / f
        var acc = [Float](repeating: 0, count: b * lc * lh * lw)
        var weight = [Float](repeating: 0, count: lh * lw)
        let ramp = overlap / f
        var done = 0
        let xf = x.asF32()
        for bi in 0..<b {
            let xb = try xf.narrowed(dim: 0, start: bi, length: 1)
            for y0 in ys {
                for x0 in xs {
                    let th = min(tile, h - y0), tw = min(tile, w - x0)
                    let part = try xb.narrowed(dim: 2, start: y0, length: th).narrowed(dim: 3, start: x0, length: tw)
                    let z = try encode(part).toFloats()
                    let ph = th / f, pw = tw / f
                    for yy in 0..<ph {
                        let wy = Self.seamWeight(yy, ph, ramp: ramp)
                        for xx in 0..<pw {
                            let wx = Self.seamWeight(xx, pw, ramp: ramp)
                            let oy = y0 / f + yy, ox = x0 / f + xx
                            if bi == 0 { weight[oy * lw + ox] += wy * wx }
                            for c in 0..<lc { acc[((bi * lc + c) * lh + oy) * lw + ox] += z[(c * ph + yy) * pw + xx] * wy * wx }
                        }
                    }
                    done += 1
                    try progress(done, ys.count * xs.count * b)
                }
            }
        }
        for bi in 0..<b { for c in 0..<lc { for p in 0..<(lh * lw) { acc[(bi * lc + c) * lh * lw + p] /= max(weight[p], 1e-8) } } }
        return try Tensor(shape: [b, lc, lh, lw], values: acc)
    }
}

extension AutoencoderKL {
    /// Tile origins along a side of n: every `tile - overlap`, the last tile flush with the end.
    static func tileStarts(_ n: Int, tile: Int, overlap: Int) -> [Int] {
        if n <= tile { return [0] }
        var s = Array(stride(from: 0, to: n - tile, by: max(1, tile - overlap)))
        s.append(n - tile)
        return s
    }

    /// Blend weight of position i in a tile of size n: a linear ramp over `ramp` positions at both edges.
    static func seamWeight(_ i: Int, _ n: Int, ramp: Int) -> Float {
        ramp > 0 ? min(1, Float(min(i + 1, n - i)) / Float(ramp)) : 1
    }
}
