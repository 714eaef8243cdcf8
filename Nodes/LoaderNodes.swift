import Diffusion
import Foundation
import Workflow

/// Loads the shared CLIP tokenizer (bundled BPE data), naming the node input on failure.
func sharedTokenizer() throws -> CLIPTokenizer {
    do { return try CLIPTokenizer.shared(cleaning: .transformers) } catch { throw NodeError("cannot load the CLIP tokenizer: \(error)") }
}

func components(_ c: SDXLComponents) throws -> [Value] {
    [.object(ModelValue(unet: c.unet, prediction: .eps)),
     .object(CLIPValue(encoder: SDXLTextEncoder(clipL: c.clipL, clipG: c.clipG, tokenizer: try sharedTokenizer()))),
     .object(VAEValue(vae: c.vae))]
}

/// CheckpointLoader: a single-file SDXL checkpoint (original SGM layout) -> model, clip, vae.
enum CheckpointLoaderNode {
    static let definition = NodeDefinition(
        name: "CheckpointLoader", aliases: ["CheckpointLoaderSimple"], category: "loaders",
        summary: "Opens a single-file SDXL checkpoint (SGM layout, fp16/bf16/fp32; memory-mapped) as model, clip and vae.",
        inputs: [.file("ckpt_name", folders: ["checkpoints"]),
                 .file("config_name", folders: ["configs"], directory: true, optional: true,
                       help: "diffusers-style folder with unet/, text_encoder/, text_encoder_2/, vae/ config.json files")],
        outputs: [OutputSpec("model", .model), OutputSpec("clip", .clip), OutputSpec("vae", .vae)]
    ) { ctx in
        let url = try ctx.file("ckpt_name")
        let configURL = ctx.files["config_name"]
        let c: SDXLComponents
        do {
            c = try ModelFileCache.shared.get("ckpt:" + ModelFileCache.key(url, configURL)) {
                let configs = try configURL.map { try SDXLConfigs.fromFolder($0) } ?? .sdxl
                return try SDXLLoader.loadSingleFile(url, configs: configs)
            }
        } catch { throw modelError(error, input: "ckpt_name") }
        return try components(c)
    }
}

/// DiffusersLoader: a diffusers pipeline folder -> model, clip, vae.
enum DiffusersLoaderNode {
    static let definition = NodeDefinition(
        name: "DiffusersLoader", category: "loaders",
        summary: "Opens a diffusers SDXL pipeline folder (model_index.json, unet/, text_encoder/, text_encoder_2/, vae/).",
        inputs: [.file("model_path", folders: ["diffusers"], directory: true)],
        outputs: [OutputSpec("model", .model), OutputSpec("clip", .clip), OutputSpec("vae", .vae)]
    ) { ctx in
        let url = try ctx.file("model_path")
        let c: SDXLComponents
        do {
            c = try ModelFileCache.shared.get("folder:" + ModelFileCache.key(url.appendingPathComponent("unet"))) { try SDXLLoader.loadFolder(url) }
        } catch { throw modelError(error, input: "model_path") }
        return try components(c)
    }
}

/// UNetLoader: a UNet-only file (diffusers or SGM layout), e.g. sdxl_lightning_4step_unet.safetensors.
enum UNetLoaderNode {
    static let definition = NodeDefinition(
        name: "UNetLoader", aliases: ["UNETLoader"], category: "loaders",
        summary: "Opens a UNet-only file (diffusers or SGM layout); pair it with a base checkpoint's clip and vae.",
        inputs: [.file("unet_name", folders: ["unet", "diffusion_models"]),
                 .choice("weight_dtype", ["default"], default: "default", help: "weights stay in the file's dtype"),
                 .file("config_name", folders: ["configs"], directory: true, optional: true,
                       help: "a diffusers unet/config.json, or a folder holding one (directly or in unet/)")],
        outputs: [OutputSpec("model", .model)]
    ) { ctx in
        let url = try ctx.file("unet_name")
        let configURL = ctx.files["config_name"]
        let unet: UNet
        do {
            unet = try ModelFileCache.shared.get("unet:" + ModelFileCache.key(url, configURL)) {
                try SDXLLoader.loadUNet(url, config: try unetConfig(configURL))
            }
        } catch { throw modelError(error, input: "unet_name") }
        return [.object(ModelValue(unet: unet, prediction: .eps))]
    }

    static func unetConfig(_ url: URL?) throws -> UNetConfig {
        guard let url else { return .sdxl }
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
        if !isDir.boolValue {
            guard let data = FileManager.default.contents(atPath: url.path) else { throw NodeError("cannot read \(url.path)", input: "config_name") }
            do { return try JSONDecoder().decode(UNetConfig.self, from: data) } catch {
                throw NodeError("\(url.path): \(error)", input: "config_name")
            }
        }
        let direct = url.appendingPathComponent("config.json")
        if FileManager.default.fileExists(atPath: direct.path), !FileManager.default.fileExists(atPath: url.appendingPathComponent("unet").path) {
            return try unetConfig(direct)
        }
        return try SDXLConfigs.fromFolder(url).unet
    }
}

/// LoraLoader: a kohya LoRA on model and clip (low-rank paths; the base weights are not copied).
enum LoraLoaderNode {
    static let definition = NodeDefinition(
        name: "LoraLoader", category: "loaders",
        summary: "Applies a kohya LoRA (SGM or diffusers naming, linear and conv) to the model and both text encoders.",
        inputs: [.link("model", .model), .link("clip", .clip), .file("lora_name", folders: ["loras"]),
                 .float("strength_model", default: 1, min: -100, max: 100), .float("strength_clip", default: 1, min: -100, max: 100)],
        outputs: [OutputSpec("model", .model), OutputSpec("clip", .clip)]
    ) { ctx in
        var model = try ctx.object("model", as: ModelValue.self)
        var clip = try ctx.object("clip", as: CLIPValue.self)
        let url = try ctx.file("lora_name")
        do {
            let p = try LoRALoader.load(url, unet: model.unet, clipL: clip.encoder.clipL, clipG: clip.encoder.clipG,
                                        strengthModel: Float(try ctx.double("strength_model")), strengthClip: Float(try ctx.double("strength_clip")))
            if !p.unet.isEmpty { model.unet = try model.unet.patched(p.unet) }
            if !p.clipL.isEmpty { clip.encoder.clipL = try clip.encoder.clipL.patched(p.clipL) }
            if !p.clipG.isEmpty { clip.encoder.clipG = try clip.encoder.clipG.patched(p.clipG) }
        } catch { throw modelError(error, input: "lora_name") }
        return [.object(model), .object(clip)]
    }
}

/// ModelSamplingDiscrete: how the model's output is read (eps, v_prediction, x0 for Lightning 1-step).
enum ModelSamplingDiscreteNode {
    static let definition = NodeDefinition(
        name: "ModelSamplingDiscrete", category: "advanced/model",
        summary: "Sets the prediction type: eps (SDXL), v_prediction, or x0 (SDXL-Lightning 1-step).",
        inputs: [.link("model", .model), .choice("sampling", Prediction.allCases.map(\.rawValue), default: "eps"),
                 .bool("zsnr", default: false)],
        outputs: [OutputSpec("model", .model)]
    ) { ctx in
        var model = try ctx.object("model", as: ModelValue.self)
        guard let p = Prediction(rawValue: try ctx.string("sampling")) else { throw NodeError("unknown sampling", input: "sampling") }
        if try ctx.bool("zsnr") { throw NodeError("zero-terminal-SNR rescaling is not supported", input: "zsnr") }
        model.prediction = p
        return [.object(model)]
    }
}
