import Tensor

/// Residuals a ControlNet adds to the UNet: one per skip connection (in the order the down path
/// produces them, conv_in first) and one for the middle block output.
public struct ControlResiduals: Sendable {
    public var down: [Tensor]
    public var mid: Tensor
    public init(down: [Tensor], mid: Tensor) {
        self.down = down
        self.mid = mid
    }
}

/// Text conditioning prepared for the UNet: the context, and every cross-attention's K and V of it,
/// computed once and reused at every sampling step.
public struct PreparedContext: @unchecked Sendable {
    public let context: Tensor
    let kv: [(Tensor, Tensor)]
}

/// The SDXL UNet (diffusers `UNet2DConditionModel` with `addition_embed_type: text_time`), built from
/// weights in diffusers naming and a config. Predicts whatever its training target was (eps for SDXL,
/// x0 for Lightning 1-step); samplers decide what the output means.
public final class UNet: @unchecked Sendable {
    public let config: UNetConfig
    let weights: WeightSet
    /// LoRA patches applied to this model, by module name.
    public let patches: [String: [LoRAPatch]]
    let convIn: Conv2d, convOut: Conv2d, normOut: GroupNorm
    let time1: Linear, time2: Linear, add1: Linear, add2: Linear
    let down: [DownLevel]
    let midRes1: ResnetBlock, midAttn: SpatialTransformer, midRes2: ResnetBlock
    let up: [UpLevel]
    let crossCount: Int

    struct DownLevel {
        var resnets: [ResnetBlock]
        var attentions: [SpatialTransformer]
        var downsample: Conv2d?
    }

    struct UpLevel {
        var resnets: [ResnetBlock]
        var attentions: [SpatialTransformer]
        var upsample: Conv2d?
    }

    public init(config: UNetConfig, weights: WeightSet, patches: [String: [LoRAPatch]] = [:]) throws {
        self.config = config
        self.weights = weights
        self.patches = patches
        let r = WeightReader(weights, patches: patches)
        let g = config.normNumGroups, eps = config.normEps
        let n = config.levels
        convIn = r.conv("conv_in")
        time1 = r.linear("time_embedding.linear_1")
        time2 = r.linear("time_embedding.linear_2")
        add1 = r.linear("add_embedding.linear_1", inFeatures: config.projectionClassEmbeddingsInputDim, outFeatures: config.timeEmbedDim)
        add2 = r.linear("add_embedding.linear_2")
        var cross = 0
        (down, midRes1, midAttn, midRes2) = UNet.encoderHalf(r, config, crossCounter: &cross)
        var ups: [UpLevel] = []
        for i in 0..<n {
            let level = n - 1 - i
            var lvl = UpLevel(resnets: [], attentions: [], upsample: nil)
            for j in 0...config.layersPerBlock {
                lvl.resnets.append(ResnetBlock(r, "up_blocks.\(i).resnets.\(j)", groups: g, eps: eps))
                if config.downBlockHasAttention[level] {
                    lvl.attentions.append(SpatialTransformer(r, "up_blocks.\(i).attentions.\(j)", depth: config.transformerLayersPerBlock[level],
                                                             heads: config.attentionHeads[level], groups: g, crossCounter: &cross))
                }
            }
            if i < n - 1 { lvl.upsample = r.conv("up_blocks.\(i).upsamplers.0.conv") }
            ups.append(lvl)
        }
        up = ups
        normOut = r.groupNorm("conv_norm_out", groups: g, eps: eps)
        convOut = r.conv("conv_out")
        crossCount = cross
        try r.finish()
        let unusedLoRA = Set(patches.keys).subtracting(r.usedPatches)
        if !unusedLoRA.isEmpty {
            throw ModelError.unexpectedKeys(component: "UNet LoRA", keys: unusedLoRA.sorted(), file: weights.file)
        }
    }

    /// A copy with LoRA patches applied (same mapped weights).
    /// The down path and middle block (shared with ControlNet, which is the UNet's encoder half).
    static func encoderHalf(_ r: WeightReader, _ config: UNetConfig, crossCounter cross: inout Int)
        -> ([DownLevel], ResnetBlock, SpatialTransformer, ResnetBlock) {
        let g = config.normNumGroups, eps = config.normEps, n = config.levels
        var downs: [DownLevel] = []
        for i in 0..<n {
            var lvl = DownLevel(resnets: [], attentions: [], downsample: nil)
            for j in 0..<config.layersPerBlock {
                lvl.resnets.append(ResnetBlock(r, "down_blocks.\(i).resnets.\(j)", groups: g, eps: eps))
                if config.downBlockHasAttention[i] {
                    lvl.attentions.append(SpatialTransformer(r, "down_blocks.\(i).attentions.\(j)", depth: config.transformerLayersPerBlock[i],
                                                             heads: config.attentionHeads[i], groups: g, crossCounter: &cross))
                }
            }
            if i < n - 1 { lvl.downsample = r.conv("down_blocks.\(i).downsamplers.0.conv", stride: 2) }
            downs.append(lvl)
        }
        let m1 = ResnetBlock(r, "mid_block.resnets.0", groups: g, eps: eps)
        let ma = SpatialTransformer(r, "mid_block.attentions.0", depth: config.transformerLayersPerBlock[n - 1],
                                    heads: config.attentionHeads[n - 1], groups: g, crossCounter: &cross)
        let m2 = ResnetBlock(r, "mid_block.resnets.1", groups: g, eps: eps)
        return (downs, m1, ma, m2)
    }

    /// A copy with more LoRA patches (added to the ones already applied); the mapped weights are shared.
    public func patched(_ more: [String: [LoRAPatch]]) throws -> UNet {
        try UNet(config: config, weights: weights, patches: patches.merging(more) { $0 + $1 })
    }

    /// Every module name that LoRA can patch (our naming), for matching LoRA files.
    public var weightNames: [String] { weights.names }

    /// Computes every cross-attention K/V of `context` ([B, 77*k, crossAttentionDim]) once.
    public func prepare(context: Tensor) throws -> PreparedContext {
        guard context.rank == 3, context.shape[2] == config.crossAttentionDim else {
            throw ModelError.invalidInput("UNet: context \(context.shape) does not end in the cross-attention width \(config.crossAttentionDim)")
        }
        var kv = [(Tensor, Tensor)?](repeating: nil, count: crossCount)
        var all: [SpatialTransformer] = down.flatMap(\.attentions) + [midAttn] + up.flatMap(\.attentions)
        all.sort { ($0.blocks.first?.crossIndex ?? 0) < ($1.blocks.first?.crossIndex ?? 0) }
        for t in all { for (i, p) in try t.crossKV(context) { kv[i] = p } }
        return PreparedContext(context: context, kv: kv.compactMap { $0 })
    }

    /// One forward pass. x [B, 4, h, w]; timesteps [B]; context prepared from [B, L, 2048];
    /// textEmbeds (pooled) [B, 1280]; timeIds [B, 6] (orig_h, orig_w, crop_top, crop_left, target_h, target_w).
    public func callAsFunction(_ x: Tensor, timesteps: [Float], context: PreparedContext, textEmbeds: Tensor,
                               timeIds: [[Float]], control: ControlResiduals? = nil) throws -> Tensor {
        let b = x.shape[0]
        guard x.rank == 4, x.shape[1] == config.inChannels, timesteps.count == b, timeIds.count == b,
              context.context.shape[0] == b, textEmbeds.shape[0] == b else {
            throw ModelError.invalidInput("UNet: inconsistent batch: x \(x.shape), \(timesteps.count) timesteps, context \(context.context.shape), pooled \(textEmbeds.shape), \(timeIds.count) size conditionings")
        }
        let factor = 1 << (config.levels - 1)
        guard x.shape[2] % factor == 0, x.shape[3] % factor == 0 else {
            throw ModelError.invalidInput("UNet: latent size \(x.shape[2])x\(x.shape[3]) must be a multiple of \(factor)")
        }
        let emb = try embedding(timesteps: timesteps, textEmbeds: textEmbeds, timeIds: timeIds)
        let embSilu = try Ops.silu(emb)
        let ctx = context.context
        let kv = context.kv.count == crossCount ? context.kv : nil

        var h = try convIn(x)
        var skips = [h]
        for lvl in down {
            for j in 0..<lvl.resnets.count {
                h = try lvl.resnets[j](h, embSilu)
                if !lvl.attentions.isEmpty { h = try lvl.attentions[j](h, context: ctx, kv: kv) }
                skips.append(h)
            }
            if let ds = lvl.downsample {
                h = try ds(h)
                skips.append(h)
            }
        }
        h = try midRes1(h, embSilu)
        h = try midAttn(h, context: ctx, kv: kv)
        h = try midRes2(h, embSilu)
        if let control {
            guard control.down.count == skips.count else {
                throw ModelError.invalidInput("UNet: ControlNet gave \(control.down.count) residuals for \(skips.count) skip connections")
            }
            for i in 0..<skips.count { skips[i] = try Ops.add(skips[i], control.down[i]) }
            h = try Ops.add(h, control.mid)
        }
        for lvl in up {
            for j in 0..<lvl.resnets.count {
                guard let s = skips.popLast() else { throw ModelError.invalidInput("UNet: skip connections exhausted") }
                let cat = try Profiler.measure("concat") { try Ops.concat([h, s], dim: 1) }
                h = try lvl.resnets[j](cat, embSilu)
                if !lvl.attentions.isEmpty { h = try lvl.attentions[j](h, context: ctx, kv: kv) }
            }
            if let us = lvl.upsample { h = try us(upsampling: h) }
        }
        return try convOut(h, normalizedBy: normOut, silu: true)
    }

    /// Time embedding plus the SDXL added embedding (pooled text ++ six size sinusoids), [B, 4*C0].
    func embedding(timesteps: [Float], textEmbeds: Tensor, timeIds: [[Float]]) throws -> Tensor {
        let b = timesteps.count
        let t = try Ops.timestepEmbedding(timesteps, dim: config.blockOutChannels[0])
        var emb = try time2(Ops.silu(time1(t)))
        let ids = timeIds.flatMap { $0 }
        guard ids.count == b * 6 else { throw ModelError.invalidInput("UNet: size conditioning needs 6 numbers per image") }
        let sizeEmb = try Ops.timestepEmbedding(ids, dim: config.additionTimeEmbedDim).reshaped([b, 6 * config.additionTimeEmbedDim])
        let added = try Ops.concat([textEmbeds.asF32(), sizeEmb], dim: 1)
        guard added.shape[1] == config.projectionClassEmbeddingsInputDim else {
            throw ModelError.invalidInput("UNet: pooled \(textEmbeds.shape) + size embedding gives \(added.shape[1]) features, expected \(config.projectionClassEmbeddingsInputDim)")
        }
        emb = try Ops.add(emb, add2(Ops.silu(add1(added))))
        return emb
    }
}
