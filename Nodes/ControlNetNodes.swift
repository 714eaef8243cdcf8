import Diffusion
import Foundation
import Imaging
import Tensor
import Workflow

/// CONTROL_NET: an SDXL ControlNet.
public struct ControlNetValue: Payload {
    public var model: ControlNet
    public var byteCount: Int { 0 }
}

/// ControlNetLoader: a ControlNet file (diffusers or original layout, fp16/fp32). A `config.json` beside
/// the weights (a diffusers repo folder) supplies heads and sizes shapes cannot tell.
enum ControlNetLoaderNode {
    static let definition = NodeDefinition(
        name: "ControlNetLoader", category: "loaders",
        summary: "Opens an SDXL ControlNet (diffusers or original layout); reads config.json beside it when present.",
        inputs: [.file("control_net_name", folders: ["controlnet"])],
        outputs: [OutputSpec("control_net", .controlNet)]
    ) { ctx in
        let url = try ctx.file("control_net_name")
        let configURL = url.deletingLastPathComponent().appendingPathComponent("config.json")
        let hasConfig = FileManager.default.fileExists(atPath: configURL.path)
        do {
            let cn = try ModelFileCache.shared.get("controlnet:" + ModelFileCache.key(url, hasConfig ? configURL : nil)) { () -> ControlNet in
                var config = UNetConfig.sdxl
                if hasConfig, let data = FileManager.default.contents(atPath: configURL.path) {
                    do { config = try JSONDecoder().decode(ControlNetConfigFile.self, from: data).unetConfig } catch {
                        throw NodeError("\(configURL.path): \(error)", input: "control_net_name")
                    }
                }
                return try SDXLLoader.loadControlNet(url, config: config)
            }
            return [.object(ControlNetValue(model: cn))]
        } catch { throw modelError(error, input: "control_net_name") }
    }
}

/// A diffusers ControlNet config.json read as the UNet-shaped config it shares (plus `addition_embed_type`).
struct ControlNetConfigFile: Decodable {
    var unetConfig: UNetConfig
    init(from decoder: Decoder) throws {
        // ControlNet configs carry down_block_types and the same size fields as a UNet config.
        unetConfig = try UNetConfig(from: decoder)
    }
}

/// Per-run state of one applied ControlNet: the hint embedding (once per latent size) and the prepared
/// text contexts, cached across steps.
final class ControlHook: @unchecked Sendable {
    let net: ControlNet
    let hint: ImageBatch
    private let lock = NSLock()
    private var embedding: (key: [Int], value: Tensor)?
    private var contexts: [ObjectIdentifier: PreparedContext] = [:]

    init(net: ControlNet, hint: ImageBatch) {
        self.net = net
        self.hint = hint
    }

    func residuals(x: Tensor, timestep: Float, cond: Conditioning, timeIds: [[Float]]) throws -> ControlResiduals {
        let b = x.shape[0]
        let key = [x.shape[2], x.shape[3]]
        let emb: Tensor
        if let e = lock.withLock({ embedding }), e.key == key {
            emb = e.value
        } else {
            // ComfyUI: the hint is resized to the latent size x 8 with nearest-exact and a center crop.
            let f = net.hintDownscale
            let scaled = try scaleImage(hint, width: x.shape[3] * f, height: x.shape[2] * f, method: .nearestExact, crop: .center)
            let t = try Tensor(shape: [scaled.batch, scaled.height, scaled.width, scaled.channels], values: scaled.pixels).permuted([0, 3, 1, 2])
            emb = try net.embedHint(t)
            lock.withLock { embedding = (key, emb) }
        }
        let ctxKey = ObjectIdentifier(cond.context.storage)
        let prepared: PreparedContext
        if let p = lock.withLock({ contexts[ctxKey] }), p.context.shape[0] == b {
            prepared = p
        } else {
            let ctx = cond.context.shape[0] == b ? cond.context : try Ops.concat(Array(repeating: cond.context, count: b), dim: 0)
            prepared = try net.prepare(context: ctx)
            lock.withLock { contexts[ctxKey] = prepared }
        }
        let pooled = cond.pooled.shape[0] == b ? cond.pooled : try Ops.concat(Array(repeating: cond.pooled, count: b), dim: 0)
        var hintEmb = emb
        if emb.shape[0] != b {
            guard emb.shape[0] == 1 || b % emb.shape[0] == 0 else {
                throw ModelError.invalidInput("ControlNet: \(emb.shape[0]) hint images for a batch of \(b)")
            }
            hintEmb = try Ops.concat(Array(repeating: emb, count: b / emb.shape[0]), dim: 0)
        }
        return try net(x, timesteps: Array(repeating: timestep, count: b), context: prepared, textEmbeds: pooled, timeIds: timeIds,
                       hintEmbedding: hintEmb)
    }
}

/// ControlNet (ControlNetApplyAdvanced): hooks a ControlNet onto both conditionings, active while the
/// sampler's sigma lies between the sigmas of start_percent and end_percent (inclusive), residuals x strength.
enum ControlNetApplyNode {
    static let definition = NodeDefinition(
        name: "ControlNet", aliases: ["ControlNetApplyAdvanced"], category: "conditioning/controlnet",
        summary: "Applies a ControlNet with a hint image (0...1, resized to the latent x 8) to positive and negative conditioning.",
        inputs: [.link("positive", .conditioning), .link("negative", .conditioning), .link("control_net", .controlNet),
                 .link("image", .image), .float("strength", default: 1, min: 0, max: 10),
                 .float("start_percent", default: 0, min: 0, max: 1), .float("end_percent", default: 1, min: 0, max: 1)],
        outputs: [OutputSpec("positive", .conditioning), OutputSpec("negative", .conditioning)]
    ) { ctx in
        var pos = try ctx.object("positive", as: ConditioningValue.self)
        var neg = try ctx.object("negative", as: ConditioningValue.self)
        let strength = try ctx.double("strength")
        let start = try ctx.double("start_percent"), end = try ctx.double("end_percent")
        guard start <= end else { throw NodeError("start_percent \(start) is after end_percent \(end)", input: "end_percent") }
        if strength == 0 { return [.object(pos), .object(neg)] }
        let net = try ctx.object("control_net", as: ControlNetValue.self).model
        let hint = try ctx.object("image", as: ImageValue.self).batch
        for c in [pos.cond, neg.cond] where c.context.shape[2] != net.config.crossAttentionDim {
            throw NodeError("this ControlNet expects \(net.config.crossAttentionDim)-wide text conditioning, the prompt has \(c.context.shape[2]) (a ControlNet for another model family?)", input: "control_net")
        }
        let schedule = DiscreteSchedule.sdxl
        let hook = ControlHook(net: net, hint: hint)
        let app = ControlApplication(strength: Float(strength), sigmaStart: schedule.percentToSigma(start), sigmaEnd: schedule.percentToSigma(end)) {
            x, _, t, cond, ids in try hook.residuals(x: x, timestep: t, cond: cond, timeIds: ids)
        }
        pos.cond.controls.append(app)
        neg.cond.controls.append(app)
        return [.object(pos), .object(neg)]
    }
}
