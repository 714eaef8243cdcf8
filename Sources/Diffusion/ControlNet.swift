import Foundation
import Tensor

/// An SDXL ControlNet (diffusers `ControlNetModel`): the UNet's encoder half and middle block with the
/// same time and text_time conditioning, a hint embedding (3x3 convs with SiLU, three of them stride 2,
/// from the image-resolution hint down to the latent size, then a conv to the first UNet width, added to
/// conv_in's output), and zero convs giving one residual per UNet skip connection plus one for the middle.
public final class ControlNet: @unchecked Sendable {
    public let config: UNetConfig
    let weights: WeightSet
    let convIn: Conv2d
    let time1: Linear, time2: Linear, add1: Linear, add2: Linear
    let hintIn: Conv2d
    let hintBlocks: [Conv2d]
    let hintOut: Conv2d
    let down: [UNet.DownLevel]
    let midRes1: ResnetBlock, midAttn: SpatialTransformer, midRes2: ResnetBlock
    let zeroConvs: [Conv2d]
    let midOut: Conv2d
    let crossCount: Int

    /// Pixels of hint per latent pixel (8 for SDXL: three stride-2 convs).
    public var hintDownscale: Int { 1 << hintBlocks.filter { $0.stride == 2 }.count }

    public init(config: UNetConfig, weights: WeightSet) throws {
        self.config = config
        self.weights = weights
        let r = WeightReader(weights)
        convIn = r.conv("conv_in")
        time1 = r.linear("time_embedding.linear_1")
        time2 = r.linear("time_embedding.linear_2")
        add1 = r.linear("add_embedding.linear_1", inFeatures: config.projectionClassEmbeddingsInputDim, outFeatures: config.timeEmbedDim)
        add2 = r.linear("add_embedding.linear_2")
        hintIn = r.conv("controlnet_cond_embedding.conv_in")
        var blocks: [Conv2d] = []
        var k = 0
        while r.has("controlnet_cond_embedding.blocks.\(k).weight") {
            // Pairs: a same-size conv, then a stride-2 conv to the next width.
            blocks.append(r.conv("controlnet_cond_embedding.blocks.\(k)", stride: k % 2 == 1 ? 2 : 1))
            k += 1
        }
        hintBlocks = blocks
        hintOut = r.conv("controlnet_cond_embedding.conv_out")
        var cross = 0
        (down, midRes1, midAttn, midRes2) = UNet.encoderHalf(r, config, crossCounter: &cross)
        let downs = down
        let residualCount = 1 + downs.reduce(0) { $0 + $1.resnets.count + ($1.downsample == nil ? 0 : 1) }
        zeroConvs = (0..<residualCount).map { r.conv("controlnet_down_blocks.\($0)", padding: .zero) }
        midOut = r.conv("controlnet_mid_block", padding: .zero)
        crossCount = cross
        try r.finish()
    }

    /// The hint embedding ([B, 3, 8h, 8w] in 0...1 -> [B, C0, h, w]); it does not depend on the step,
    /// so samplers compute it once.
    public func embedHint(_ hint: Tensor) throws -> Tensor {
        var h = try Ops.silu(hintIn(hint.asF32()))
        for b in hintBlocks { h = try Ops.silu(b(h)) }
        return try hintOut(h)
    }

    /// Every cross-attention K/V of a context, once per prompt.
    public func prepare(context: Tensor) throws -> PreparedContext {
        guard context.rank == 3, context.shape[2] == config.crossAttentionDim else {
            throw ModelError.invalidInput("ControlNet: context \(context.shape) does not end in its cross-attention width \(config.crossAttentionDim) (a ControlNet for another model family?)")
        }
        var kv = [(Tensor, Tensor)?](repeating: nil, count: crossCount)
        for t in down.flatMap(\.attentions) + [midAttn] { for (i, p) in try t.crossKV(context) { kv[i] = p } }
        return PreparedContext(context: context, kv: kv.compactMap { $0 })
    }

    /// Residuals for one step (unscaled). x: the UNet's input [B, 4, h, w]; hintEmbedding from `embedHint`.
    public func callAsFunction(_ x: Tensor, timesteps: [Float], context: PreparedContext, textEmbeds: Tensor, timeIds: [[Float]],
                               hintEmbedding: Tensor) throws -> ControlResiduals {
        let b = x.shape[0]
        guard hintEmbedding.shape.count == 4, hintEmbedding.shape[2] == x.shape[2], hintEmbedding.shape[3] == x.shape[3] else {
            throw ModelError.invalidInput("ControlNet: hint embedding \(hintEmbedding.shape) does not match the latent \(x.shape)")
        }
        let t = try Ops.timestepEmbedding(timesteps, dim: config.blockOutChannels[0])
        var emb = try time2(Ops.silu(time1(t)))
        let sizeEmb = try Ops.timestepEmbedding(timeIds.flatMap { $0 }, dim: config.additionTimeEmbedDim).reshaped([b, 6 * config.additionTimeEmbedDim])
        emb = try Ops.add(emb, add2(Ops.silu(add1(Ops.concat([textEmbeds.asF32(), sizeEmb], dim: 1)))))
        let embSilu = try Ops.silu(emb)
        let hint = hintEmbedding.shape[0] == b ? hintEmbedding : try Ops.concat(Array(repeating: hintEmbedding, count: b), dim: 0)
        var h = try Ops.add(convIn(x), hint)
        let kv = context.kv.count == crossCount ? context.kv : nil
        var outs = [h]
        for lvl in down {
            for j in 0..<lvl.resnets.count {
                h = try lvl.resnets[j](h, embSilu)
                if !lvl.attentions.isEmpty { h = try lvl.attentions[j](h, context: context.context, kv: kv) }
                outs.append(h)
            }
            if let ds = lvl.downsample {
                h = try ds(h)
                outs.append(h)
            }
        }
        h = try midRes2(midAttn(midRes1(h, embSilu), context: context.context, kv: kv), embSilu)
        return ControlResiduals(down: try zip(zeroConvs, outs).map { try $0.0($0.1) }, mid: try midOut(h))
    }
}

extension SDXLLoader {
    /// An SDXL ControlNet file: diffusers layout (`controlnet_cond_embedding.*`, `controlnet_down_blocks.N`,
    /// `controlnet_mid_block`) or the original layout (`input_hint_block.*`, `zero_convs.N.0`,
    /// `middle_block_out.0`, UNet keys in SGM naming; optionally under `control_model.`).
    public static func loadControlNet(_ url: URL, config: UNetConfig = .sdxl) throws -> ControlNet {
        let file = try SafeTensorsFile(url: url)
        var set = WeightSet(component: "ControlNet", file: url.path)
        let names = file.names
        let diffusers = names.contains { $0.hasPrefix("controlnet_cond_embedding.") }
        var stray: [String] = []
        if !diffusers && !names.contains(where: { $0.contains("input_hint_block.") }) {
            throw ModelError.wrongFamily(file: url.path, detail: "not a ControlNet (no controlnet_cond_embedding.* or input_hint_block.* keys)")
        }
        for key in names {
            let t = try file.tensor(key)
            if diffusers {
                set.add(key, t, from: key)
                continue
            }
            var k = key
            if k.hasPrefix("control_model.") { k = String(k.dropFirst("control_model.".count)) }
            if let name = KeyMaps.controlNet(k, config: config) { set.add(name, t, from: key) } else { stray.append(key) }
        }
        if !stray.isEmpty { throw ModelError.unexpectedKeys(component: "ControlNet", keys: stray, file: url.path) }
        if let w = set.tensors["add_embedding.linear_1.weight"], w.shape.count == 2, w.shape[1] != config.projectionClassEmbeddingsInputDim {
            throw ModelError.wrongFamily(file: url.path, detail: "this ControlNet's size conditioning (\(w.shape[1]) features) does not fit the model (\(config.projectionClassEmbeddingsInputDim))")
        }
        if set.tensors["add_embedding.linear_1.weight"] == nil {
            throw ModelError.wrongFamily(file: url.path, detail: "this is not an SDXL ControlNet (no text_time embedding: an SD 1.x / 2.x ControlNet?)")
        }
        return try ControlNet(config: config, weights: set)
    }
}

extension KeyMaps {
    /// Original-layout ControlNet key -> diffusers name.
    static func controlNet(_ key: String, config: UNetConfig) -> String? {
        let parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 3 else { return nil }
        let rest = parts.dropFirst(2).joined(separator: ".")
        switch parts[0] {
        case "input_hint_block":
            guard let i = Int(parts[1]), i % 2 == 0 else { return nil }
            if i == 0 { return "controlnet_cond_embedding.conv_in.\(rest)" }
            if i == 14 { return "controlnet_cond_embedding.conv_out.\(rest)" }
            return "controlnet_cond_embedding.blocks.\(i / 2 - 1).\(rest)"
        case "zero_convs":
            guard let i = Int(parts[1]), parts[2] == "0", parts.count >= 4 else { return nil }
            return "controlnet_down_blocks.\(i).\(parts.dropFirst(3).joined(separator: "."))"
        case "middle_block_out":
            guard parts[1] == "0" else { return nil }
            return "controlnet_mid_block.\(rest)"
        default:
            return unet(key, config: config)
        }
    }
}
