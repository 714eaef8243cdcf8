import Diffusion
import Foundation
import Imaging
import Tensor
import Workflow

/// CLIPEncode: a prompt -> SDXL conditioning (ComfyUI's weights `(word:1.2)` and long-prompt windows).
enum CLIPEncodeNode {
    static let definition = NodeDefinition(
        name: "CLIPEncode", aliases: ["CLIPTextEncode"], category: "conditioning",
        summary: "Encodes a prompt with both SDXL text encoders; size conditioning comes from the latent at sampling time.",
        inputs: [.link("clip", .clip), .string("text", default: "")],
        outputs: [OutputSpec("conditioning", .conditioning)], isHeavy: true
    ) { ctx in
        let clip = try ctx.object("clip", as: CLIPValue.self)
        let text = try ctx.string("text")
        do {
            let cond = try clip.encoder.encode(text)
            // Memory: the encoders' mapped pages leave the resident set once the prompt is encoded.
            let drop = ModelMemory.dropPackings(lastUse: ctx.isLastUse("clip"))
            clip.encoder.clipL.releaseResidentPages(dropPackings: drop)
            clip.encoder.clipG.releaseResidentPages(dropPackings: drop)
            return [.object(ConditioningValue(cond))]
        } catch { throw modelError(error, input: "text") }
    }
}

/// CLIPTextEncodeSDXL: separate prompts for bigG (text_g) and CLIP-L (text_l), with explicit size conditioning.
enum CLIPTextEncodeSDXLNode {
    static let definition = NodeDefinition(
        name: "CLIPTextEncodeSDXL", category: "conditioning",
        summary: "SDXL prompt with separate text for each encoder and explicit size/crop/target conditioning.",
        inputs: [.link("clip", .clip), .int("width", default: 1024, min: 0, max: 16384), .int("height", default: 1024, min: 0, max: 16384),
                 .int("crop_w", default: 0, min: 0, max: 16384), .int("crop_h", default: 0, min: 0, max: 16384),
                 .int("target_width", default: 1024, min: 0, max: 16384), .int("target_height", default: 1024, min: 0, max: 16384),
                 .string("text_g", default: ""), .string("text_l", default: "")],
        outputs: [OutputSpec("conditioning", .conditioning)], isHeavy: true
    ) { ctx in
        let clip = try ctx.object("clip", as: CLIPValue.self)
        do {
            var cond = try clip.encoder.encode(textG: try ctx.string("text_g"), textL: try ctx.string("text_l"))
            cond.size = SizeConditioning(width: try ctx.int("width"), height: try ctx.int("height"), cropW: try ctx.int("crop_w"),
                                         cropH: try ctx.int("crop_h"), targetWidth: try ctx.int("target_width"),
                                         targetHeight: try ctx.int("target_height"))
            let drop = ModelMemory.dropPackings(lastUse: ctx.isLastUse("clip"))
            clip.encoder.clipL.releaseResidentPages(dropPackings: drop)
            clip.encoder.clipG.releaseResidentPages(dropPackings: drop)
            return [.object(ConditioningValue(cond))]
        } catch { throw modelError(error, input: "text_g") }
    }
}

/// EmptyLatentImage: zeros [batch, 4, height/8, width/8].
enum EmptyLatentImageNode {
    static let definition = NodeDefinition(
        name: "EmptyLatentImage", category: "latent",
        summary: "An empty latent for an image of width x height (multiples of 8).",
        inputs: [.int("width", default: 1024, min: 16, max: 16384, multipleOf: 8), .int("height", default: 1024, min: 16, max: 16384, multipleOf: 8),
                 .int("batch_size", default: 1, min: 1, max: 4096)],
        outputs: [OutputSpec("latent", .latent)]
    ) { ctx in
        let w = try ctx.int("width"), h = try ctx.int("height"), b = try ctx.int("batch_size")
        guard b * h * w / 16 <= 1 << 28 else { throw NodeError("\(b) latents of \(w)x\(h) are too large", input: "batch_size") }
        return [.object(LatentValue(try Tensor.zeros([b, 4, h / 8, w / 8])))]
    }
}

/// KSampler: ComfyUI's sampler node (seeded torch noise, schedulers, samplers, CFG, denoise).
enum KSamplerNode {
    static let definition = NodeDefinition(
        name: "KSampler", category: "sampling",
        summary: "Denoises a latent: euler, euler_ancestral, dpmpp_2m or lcm on ComfyUI's schedulers; cfg 1 skips the negative pass.",
        inputs: [.link("model", .model), .link("positive", .conditioning), .link("negative", .conditioning, optional: true),
                 .link("latent_image", .latent), .int("seed", default: 0, min: 0, max: Int.max),
                 .int("steps", default: 20, min: 1, max: 10000), .float("cfg", default: 8, min: 0, max: 100),
                 .choice("sampler_name", SamplerKind.allCases.map(\.rawValue), default: "euler"),
                 .choice("scheduler", Scheduler.allCases.map(\.rawValue), default: "normal"),
                 .float("denoise", default: 1, min: 0, max: 1)],
        outputs: [OutputSpec("latent", .latent)], isHeavy: true
    ) { ctx in
        let model = try ctx.object("model", as: ModelValue.self)
        let positive = try ctx.object("positive", as: ConditioningValue.self).cond
        let negative = try ctx.optionalObject("negative", as: ConditioningValue.self)?.cond
        let latent = try ctx.object("latent_image", as: LatentValue.self).samples
        let cfg = try ctx.double("cfg")
        if abs(cfg - 1) > 1e-9 && negative == nil {
            throw NodeError("cfg \(cfg) needs a negative conditioning (or set cfg to 1, as SDXL-Lightning uses)", input: "negative")
        }
        let settings = SamplingSettings(
            seed: UInt64(try ctx.int("seed")), steps: try ctx.int("steps"), cfg: cfg,
            sampler: SamplerKind(rawValue: try ctx.string("sampler_name")) ?? .euler,
            scheduler: Scheduler(rawValue: try ctx.string("scheduler")) ?? .normal, denoise: try ctx.double("denoise"))
        do {
            let out = try KSampler.sample(unet: model.unet, prediction: model.prediction, schedule: model.schedule,
                                          positive: positive, negative: negative, latent: latent, settings: settings) { step, total in
                try ctx.progress(step: step, total: total)
            }
            model.unet.releaseResidentPages(dropPackings: ModelMemory.dropPackings(lastUse: ctx.isLastUse("model")))
            return [.object(LatentValue(out))]
        } catch { throw modelError(error, input: "model") }
    }
}

/// Converts ComfyUI IMAGE [B, H, W, 3] in 0...1 to the VAE's [B, 3, H, W] in -1...1 (center-cropped to multiples of 8).
func vaeInput(_ img: ImageBatch) throws -> Tensor {
    let h8 = img.height / 8 * 8, w8 = img.width / 8 * 8
    guard h8 > 0, w8 > 0 else { throw NodeError("image \(img.width)x\(img.height) is smaller than 8x8", input: "pixels") }
    let oy = (img.height % 8) / 2, ox = (img.width % 8) / 2
    var out = [Float](repeating: 0, count: img.batch * 3 * h8 * w8)
    for b in 0..<img.batch {
        for c in 0..<3 {
            for y in 0..<h8 {
                for x in 0..<w8 {
                    let v = img[b, y + oy, x + ox, min(c, img.channels - 1)]
                    out[((b * 3 + c) * h8 + y) * w8 + x] = v * 2 - 1
                }
            }
        }
    }
    return try Tensor(shape: [img.batch, 3, h8, w8], values: out)
}

/// The VAE's [B, 3, H, W] output -> IMAGE [B, H, W, 3], clamp((x + 1) / 2, 0, 1).
func imageOutput(_ t: Tensor) -> ImageBatch {
    let (b, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
    let v = t.toFloats()
    var out = [Float](repeating: 0, count: b * h * w * 3)
    for bi in 0..<b {
        for ci in 0..<min(c, 3) {
            for y in 0..<h {
                for x in 0..<w {
                    let s = (v[((bi * c + ci) * h + y) * w + x] + 1) / 2
                    out[((bi * h + y) * w + x) * 3 + ci] = min(max(s, 0), 1)
                }
            }
        }
    }
    return ImageBatch(batch: b, height: h, width: w, channels: 3, pixels: out)
}

enum VAEDecodeNode {
    static let definition = NodeDefinition(
        name: "VAEDecode", category: "latent",
        summary: "Decodes latents to images (fp32).",
        inputs: [.link("samples", .latent), .link("vae", .vae)],
        outputs: [OutputSpec("image", .image)], isHeavy: true
    ) { ctx in
        let vae = try ctx.object("vae", as: VAEValue.self).vae
        let z = try ctx.object("samples", as: LatentValue.self).samples
        do {
            var images: [Tensor] = []
            for b in 0..<z.shape[0] {
                images.append(try vae.decode(z.narrowed(dim: 0, start: b, length: 1)))
                try ctx.progress(step: b + 1, total: z.shape[0])
            }
            return [.object(ImageValue(imageOutput(try Ops.concat(images, dim: 0))))]
        } catch { throw modelError(error, input: "samples") }
    }
}

enum VAEDecodeTiledNode {
    static let definition = NodeDefinition(
        name: "VAEDecodeTiled", category: "latent",
        summary: "Decodes latents tile by tile (overlapping tiles, blended seams) to bound memory on large images.",
        inputs: [.link("samples", .latent), .link("vae", .vae), .int("tile_size", default: 512, min: 64, max: 4096, multipleOf: 8),
                 .int("overlap", default: 64, min: 0, max: 4096, multipleOf: 8)],
        outputs: [OutputSpec("image", .image)], isHeavy: true
    ) { ctx in
        let vae = try ctx.object("vae", as: VAEValue.self).vae
        let z = try ctx.object("samples", as: LatentValue.self).samples
        let tile = try ctx.int("tile_size"), overlap = try ctx.int("overlap")
        guard overlap * 2 < tile else { throw NodeError("overlap \(overlap) must be less than half the tile size \(tile)", input: "overlap") }
        do {
            let out = try vae.decodeTiled(z, tile: tile / vae.config.downscale, overlap: overlap / vae.config.downscale) { s, t in
                try ctx.progress(step: s, total: t)
            }
            return [.object(ImageValue(imageOutput(out)))]
        } catch { throw modelError(error, input: "samples") }
    }
}

enum VAEEncodeNode {
    static let definition = NodeDefinition(
        name: "VAEEncode", category: "latent",
        summary: "Encodes images to latents (the posterior mean), center-cropping to multiples of 8 as ComfyUI does.",
        inputs: [.link("pixels", .image), .link("vae", .vae)],
        outputs: [OutputSpec("latent", .latent)], isHeavy: true
    ) { ctx in
        let vae = try ctx.object("vae", as: VAEValue.self).vae
        let img = try ctx.object("pixels", as: ImageValue.self).batch
        do {
            let x = try vaeInput(img)
            var outs: [Tensor] = []
            for b in 0..<x.shape[0] {
                outs.append(try vae.encode(x.narrowed(dim: 0, start: b, length: 1)))
                try ctx.progress(step: b + 1, total: x.shape[0])
            }
            return [.object(LatentValue(try Ops.concat(outs, dim: 0)))]
        } catch { throw modelError(error, input: "pixels") }
    }
}

enum VAEEncodeTiledNode {
    static let definition = NodeDefinition(
        name: "VAEEncodeTiled", category: "latent",
        summary: "Encodes images tile by tile (overlapping tiles blended in latent space) to bound memory on large images.",
        inputs: [.link("pixels", .image), .link("vae", .vae), .int("tile_size", default: 512, min: 64, max: 4096, multipleOf: 8),
                 .int("overlap", default: 64, min: 0, max: 4096, multipleOf: 8)],
        outputs: [OutputSpec("latent", .latent)], isHeavy: true
    ) { ctx in
        let vae = try ctx.object("vae", as: VAEValue.self).vae
        let img = try ctx.object("pixels", as: ImageValue.self).batch
        let tile = try ctx.int("tile_size"), overlap = try ctx.int("overlap")
        guard overlap * 2 < tile else { throw NodeError("overlap \(overlap) must be less than half the tile size \(tile)", input: "overlap") }
        do {
            let out = try vae.encodeTiled(try vaeInput(img), tile: tile, overlap: overlap) { s, t in try ctx.progress(step: s, total: t) }
            return [.object(LatentValue(out))]
        } catch { throw modelError(error, input: "pixels") }
    }
}

/// SaveLatent: ComfyUI-compatible `.latent` safetensors (`latent_tensor` in VAE space).
enum SaveLatentNode {
    static let definition = NodeDefinition(
        name: "SaveLatent", category: "latent",
        summary: "Saves latents as prefix_00001_.latent (safetensors with latent_tensor, as ComfyUI writes them).",
        inputs: [.link("samples", .latent), .string("filename_prefix", default: "latents/sdflow")],
        outputs: [], isOutput: true
    ) { ctx in
        let z = try ctx.object("samples", as: LatentValue.self).samples
        let (dir, base) = try SaveImageNode.outputLocation(prefix: try ctx.string("filename_prefix"), root: ctx.outputDirectory)
        try SaveImageNode.saveLock.withLock {
            let counter = SaveImageNode.nextCounter(in: dir, base: base, suffix: "_.latent")
            let url = dir.appendingPathComponent("\(base)_\(String(format: "%05d", counter))_.latent")
            try ctx.writeAtomically(to: url) { tmp in
                let meta = ["prompt": ctx.workflow.apiJSON, "workflow": ctx.workflow.yaml]
                try SafeTensorsWriter.write([("latent_tensor", z.asF32()), ("latent_format_version_0", try Tensor.zeros([0]))],
                                            metadata: meta, to: tmp)
            }
        }
        return []
    }
}
