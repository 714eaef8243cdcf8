import Foundation
import Tensor

/// The hyper-parameters of the four SDXL components.
public struct SDXLConfigs: Sendable, Equatable {
    public var unet: UNetConfig
    public var clipL: CLIPTextConfig
    public var clipG: CLIPTextConfig
    public var vae: VAEConfig

    public static let sdxl = SDXLConfigs(unet: .sdxl, clipL: .sdxlCLIPL, clipG: .sdxlBigG, vae: .sdxl)

    public init(unet: UNetConfig, clipL: CLIPTextConfig, clipG: CLIPTextConfig, vae: VAEConfig) {
        self.unet = unet
        self.clipL = clipL
        self.clipG = clipG
        self.vae = vae
    }

    /// Reads `unet/`, `text_encoder/`, `text_encoder_2/` and `vae/config.json` from a diffusers-style folder;
    /// a component without a config keeps the SDXL preset.
    public static func fromFolder(_ dir: URL) throws -> SDXLConfigs {
        var c = SDXLConfigs.sdxl
        func read<T: Decodable>(_ sub: String, _ type: T.Type) throws -> T? {
            let u = dir.appendingPathComponent(sub).appendingPathComponent("config.json")
            guard let data = FileManager.default.contents(atPath: u.path) else { return nil }
            do { return try JSONDecoder().decode(T.self, from: data) } catch {
                throw ModelError.badConfig(file: u.path, detail: configProblem(error))
            }
        }
        if let u = try read("unet", UNetConfig.self) { c.unet = u }
        if let t = try read("text_encoder", CLIPTextConfig.self) { c.clipL = t }
        if let t = try read("text_encoder_2", CLIPTextConfig.self) { c.clipG = t }
        if let v = try read("vae", VAEConfig.self) { c.vae = v }
        return c
    }
}

func configProblem(_ error: Error) -> String {
    switch error {
    case DecodingError.dataCorrupted(let ctx), DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
        return ctx.debugDescription
    case DecodingError.keyNotFound(let key, _): return "missing '\(key.stringValue)'"
    default: return "\(error)"
    }
}

/// The models of one SDXL checkpoint.
public struct SDXLComponents: Sendable {
    public var unet: UNet
    public var clipL: CLIPTextModel
    public var clipG: CLIPTextModel
    public var vae: AutoencoderKL
}

/// Opens the files users bring: single-file SGM checkpoints, UNet-only files (diffusers or SGM
/// layout), and diffusers pipeline folders. Weights stay memory-mapped in their stored dtype.
public enum SDXLLoader {
    static let sgmUNet = "model.diffusion_model."
    static let sgmCLIPL = "conditioner.embedders.0.transformer."
    static let sgmCLIPG = "conditioner.embedders.1.model."
    static let sgmVAE = "first_stage_model."
    /// Keys some checkpoints carry that no model uses.
    static let ignorable: Set<String> = ["conditioner.embedders.1.model.logit_scale",
                                         "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
                                         "conditioner.embedders.1.model.text_model.embeddings.position_ids"]

    /// Splits a single-file SGM checkpoint into UNet, both text encoders and the VAE.
    public static func loadSingleFile(_ url: URL, configs: SDXLConfigs = .sdxl) throws -> SDXLComponents {
        let file = try SafeTensorsFile(url: url)
        let path = url.path
        try checkFamily(file, path: path)
        var unet = WeightSet(component: "UNet", file: path)
        var clipL = WeightSet(component: "CLIP-L text encoder", file: path)
        var clipG = WeightSet(component: "OpenCLIP bigG text encoder", file: path)
        var vae = WeightSet(component: "VAE", file: path)
        var stray: [String] = []
        let vaeLevels = configs.vae.blockOutChannels.count
        for key in file.names {
            if ignorable.contains(key) { continue }
            let t = try file.tensor(key)
            if key.hasPrefix(sgmUNet) {
                let k = String(key.dropFirst(sgmUNet.count))
                if let name = KeyMaps.unet(k, config: configs.unet) { unet.add(name, t, from: key) } else { stray.append(key) }
            } else if key.hasPrefix(sgmCLIPL) {
                clipL.add(String(key.dropFirst(sgmCLIPL.count)), t, from: key)
            } else if key.hasPrefix(sgmCLIPG) {
                let k = String(key.dropFirst(sgmCLIPG.count))
                try addOpenCLIP(k, t, key: key, into: &clipG, stray: &stray)
            } else if key.hasPrefix(sgmVAE) {
                if let name = KeyMaps.vae(String(key.dropFirst(sgmVAE.count)), levels: vaeLevels) { vae.add(name, t, from: key) } else { stray.append(key) }
            } else {
                stray.append(key)
            }
        }
        if !stray.isEmpty { throw ModelError.unexpectedKeys(component: "SDXL checkpoint", keys: stray, file: path) }
        return SDXLComponents(
            unet: try UNet(config: configs.unet, weights: unet),
            clipL: try CLIPTextModel(config: configs.clipL, weights: clipL),
            clipG: try CLIPTextModel(config: configs.clipG, weights: clipG),
            vae: try AutoencoderKL(config: configs.vae, weights: vae))
    }

    /// OpenCLIP's fused attention input projection splits into q, k, v; its text projection is stored
    /// [width, projection] and becomes a [projection, width] linear weight.
    static func addOpenCLIP(_ k: String, _ t: Tensor, key: String, into set: inout WeightSet, stray: inout [String]) throws {
        if k == "text_projection" {
            set.add("text_projection.weight", try t.transposed(0, 1), from: key)
            return
        }
        if k.hasSuffix(".attn.in_proj_weight") || k.hasSuffix(".attn.in_proj_bias") {
            let parts = k.split(separator: ".")
            guard parts.count >= 3, let i = Int(parts[2]), t.shape[0] % 3 == 0 else { stray.append(key); return }
            let w = t.shape[0] / 3
            let suffix = k.hasSuffix("weight") ? "weight" : "bias"
            for (j, name) in ["q_proj", "k_proj", "v_proj"].enumerated() {
                set.add("text_model.encoder.layers.\(i).self_attn.\(name).\(suffix)", try t.narrowed(dim: 0, start: j * w, length: w), from: key)
            }
            return
        }
        if let name = KeyMaps.openCLIP(k) { set.add(name, t, from: key) } else { stray.append(key) }
    }

    /// One-line refusals for checkpoints of other families.
    static func checkFamily(_ file: SafeTensorsFile, path: String) throws {
        let names = file.names
        let hasSGMUNet = names.contains { $0.hasPrefix(sgmUNet) }
        if names.contains(where: { $0.hasPrefix("cond_stage_model.model.") }) {
            throw ModelError.wrongFamily(file: path, detail: "this is a Stable Diffusion 2.x checkpoint (OpenCLIP-H text encoder); sdflow expects SDXL")
        }
        if names.contains(where: { $0.hasPrefix("cond_stage_model.transformer.") }) {
            throw ModelError.wrongFamily(file: path, detail: "this is a Stable Diffusion 1.x checkpoint (CLIP-L text encoder only); sdflow expects SDXL")
        }
        if names.contains(where: { $0.hasPrefix("conditioner.embedders.0.model.") }) && !names.contains(where: { $0.hasPrefix(sgmCLIPL) }) {
            throw ModelError.wrongFamily(file: path, detail: "this is an SDXL refiner checkpoint; sdflow expects an SDXL base-type checkpoint")
        }
        if names.contains(where: { $0.hasPrefix("down_blocks.") || $0.hasPrefix("conv_in.") }) && !hasSGMUNet {
            throw ModelError.wrongFamily(file: path, detail: "this is a UNet-only file in diffusers layout; load it with UNetLoader")
        }
        guard hasSGMUNet, names.contains(where: { $0.hasPrefix(sgmCLIPG) }), names.contains(where: { $0.hasPrefix(sgmVAE) }) else {
            throw ModelError.wrongFamily(file: path, detail: "not an SDXL single-file checkpoint (expected model.diffusion_model.*, conditioner.embedders.{0,1}.*, first_stage_model.* keys)")
        }
    }

    /// A UNet-only file: diffusers layout (`down_blocks.*`, e.g. sdxl_lightning_4step_unet.safetensors)
    /// or SGM layout (with or without the `model.diffusion_model.` prefix).
    public static func loadUNet(_ url: URL, config: UNetConfig = .sdxl) throws -> UNet {
        let file = try SafeTensorsFile(url: url)
        var set = WeightSet(component: "UNet", file: url.path)
        let names = file.names
        let diffusers = names.contains { $0.hasPrefix("down_blocks.") || $0.hasPrefix("conv_in.") }
        let prefixed = names.contains { $0.hasPrefix(sgmUNet) }
        var stray: [String] = []
        for key in names {
            let t = try file.tensor(key)
            if diffusers {
                set.add(key, t, from: key)
            } else {
                var k = key
                if prefixed {
                    guard key.hasPrefix(sgmUNet) else { stray.append(key); continue }
                    k = String(key.dropFirst(sgmUNet.count))
                }
                if let name = KeyMaps.unet(k, config: config) { set.add(name, t, from: key) } else { stray.append(key) }
            }
        }
        if !stray.isEmpty { throw ModelError.unexpectedKeys(component: "UNet", keys: stray, file: url.path) }
        if let w = set.tensors["conv_in.weight"], w.shape.count == 4, w.shape[0] != config.blockOutChannels[0] {
            throw ModelError.wrongFamily(file: url.path, detail: "UNet width \(w.shape[0]) does not match the configuration (\(config.blockOutChannels[0])); is this an SDXL UNet?")
        }
        return try UNet(config: config, weights: set)
    }

    /// A diffusers pipeline folder (`model_index.json`, `unet/`, `text_encoder/`, `text_encoder_2/`, `vae/`).
    public static func loadFolder(_ dir: URL) throws -> SDXLComponents {
        let configs = try SDXLConfigs.fromFolder(dir)
        func weights(_ sub: String, _ component: String) throws -> WeightSet {
            let folder = dir.appendingPathComponent(sub)
            let candidates = ["diffusion_pytorch_model.safetensors", "model.safetensors",
                              "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors"]
            guard let name = candidates.first(where: { FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }) else {
                throw ModelError.badConfig(file: folder.path, detail: "no safetensors weights (looked for \(candidates.joined(separator: ", ")))")
            }
            let url = folder.appendingPathComponent(name)
            let file = try SafeTensorsFile(url: url)
            var set = WeightSet(component: component, file: url.path)
            for key in file.names where !key.hasSuffix("position_ids") {
                // transformers 5 saves CLIP text models without the `text_model.` prefix.
                var name = key
                if sub.hasPrefix("text_encoder"), ["embeddings.", "encoder.", "final_layer_norm."].contains(where: { key.hasPrefix($0) }) {
                    name = "text_model." + key
                }
                set.add(name, try file.tensor(key), from: key)
            }
            return set
        }
        return SDXLComponents(
            unet: try UNet(config: configs.unet, weights: try weights("unet", "UNet")),
            clipL: try CLIPTextModel(config: configs.clipL, weights: try weights("text_encoder", "CLIP-L text encoder")),
            clipG: try CLIPTextModel(config: configs.clipG, weights: try weights("text_encoder_2", "OpenCLIP bigG text encoder")),
            vae: try AutoencoderKL(config: configs.vae, weights: try weights("vae", "VAE")))
    }
}

extension SDXLLoader {
    /// A standalone VAE file: SGM naming with or without `first_stage_model.` (e.g. sdxl_vae.safetensors
    /// from the original repo) or diffusers naming (`encoder.down_blocks.*`).
    public static func loadVAE(_ url: URL, config: VAEConfig = .sdxl) throws -> AutoencoderKL {
        let file = try SafeTensorsFile(url: url)
        var set = WeightSet(component: "VAE", file: url.path)
        let names = file.names
        let diffusers = names.contains { $0.hasPrefix("encoder.down_blocks.") || $0.hasPrefix("decoder.up_blocks.") }
        var stray: [String] = []
        for key in names {
            let t = try file.tensor(key)
            if diffusers {
                set.add(key, t, from: key)
                continue
            }
            let k = key.hasPrefix(sgmVAE) ? String(key.dropFirst(sgmVAE.count)) : key
            if let name = KeyMaps.vae(k, levels: config.blockOutChannels.count) { set.add(name, t, from: key) } else { stray.append(key) }
        }
        if !stray.isEmpty { throw ModelError.unexpectedKeys(component: "VAE", keys: stray, file: url.path) }
        return try AutoencoderKL(config: config, weights: set)
    }
}
