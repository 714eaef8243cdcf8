import Foundation
import Tensor

/// LoRA patches for the three patchable SDXL models, keyed by our module names.
public struct LoRAPatches: Sendable {
    public var unet: [String: [LoRAPatch]] = [:]
    public var clipL: [String: [LoRAPatch]] = [:]
    public var clipG: [String: [LoRAPatch]] = [:]
}

/// Reads kohya-format LoRA files (`lora_unet_*` in SGM or diffusers naming, `lora_te1_*`, `lora_te2_*`;
/// `.lora_down.weight`, `.lora_up.weight`, optional `.alpha`; linear and conv, incl. 3x3 LoCon) and
/// matches every key to a module of the given models. Scale = strength * alpha / rank (alpha absent:
/// alpha = rank). Keys that match nothing are an error naming them.
public enum LoRALoader {
    public static func load(_ url: URL, unet: UNet?, clipL: CLIPTextModel?, clipG: CLIPTextModel?,
                            strengthModel: Float, strengthClip: Float) throws -> LoRAPatches {
        let file = try SafeTensorsFile(url: url)
        let path = url.path
        // Module tables: underscore form -> our module name.
        func modules(_ names: [String]) -> [String: String] {
            var m: [String: String] = [:]
            for n in names where n.hasSuffix(".weight") {
                let module = String(n.dropLast(".weight".count))
                m[module.replacingOccurrences(of: ".", with: "_")] = module
            }
            return m
        }
        var unetTable: [String: String] = [:]
        if let unet {
            let names = unet.weightNames
            unetTable = modules(names)
            for n in names where n.hasSuffix(".weight") {
                let module = String(n.dropLast(".weight".count))
                if let sgm = KeyMaps.unetToSGM(module, config: unet.config) {
                    unetTable[sgm.replacingOccurrences(of: ".", with: "_")] = module
                }
            }
        }
        let te1 = clipL.map { modules($0.weights.names) } ?? [:]
        let te2 = clipG.map { modules($0.weights.names) } ?? [:]

        var groups: [String: (down: Tensor?, up: Tensor?, alpha: Float?)] = [:]
        var unsupported: [String] = []
        for key in file.names {
            if key.hasSuffix(".lora_down.weight") {
                groups[String(key.dropLast(".lora_down.weight".count)), default: (nil, nil, nil)].down = try file.tensor(key)
            } else if key.hasSuffix(".lora_up.weight") {
                groups[String(key.dropLast(".lora_up.weight".count)), default: (nil, nil, nil)].up = try file.tensor(key)
            } else if key.hasSuffix(".alpha") {
                let a = try file.tensor(key).toFloats()
                groups[String(key.dropLast(".alpha".count)), default: (nil, nil, nil)].alpha = a.first
            } else {
                unsupported.append(key)
            }
        }
        if !unsupported.isEmpty {
            throw ModelError.unexpectedKeys(component: "LoRA (only kohya lora_down/lora_up/alpha LoRA is supported)", keys: unsupported, file: path)
        }
        var out = LoRAPatches()
        var unmatched: [String] = []
        for (base, g) in groups.sorted(by: { $0.key < $1.key }) {
            guard let down = g.down, let up = g.up else {
                throw ModelError.missingKeys(component: "LoRA", keys: [g.down == nil ? "\(base).lora_down.weight" : "\(base).lora_up.weight"], file: path)
            }
            let rank = down.shape[0]
            guard rank > 0, up.rank >= 2, up.shape[1] == rank else {
                throw ModelError.shapeMismatch(component: "LoRA", key: "\(base).lora_up.weight", expected: [up.shape.first ?? 0, rank], got: up.shape, file: path)
            }
            let alpha = g.alpha ?? Float(rank)
            func patch(_ strength: Float) -> LoRAPatch { LoRAPatch(down: down, up: up, scale: strength * alpha / Float(rank)) }
            if base.hasPrefix("lora_unet_"), let m = unetTable[String(base.dropFirst("lora_unet_".count))] {
                out.unet[m, default: []].append(patch(strengthModel))
            } else if base.hasPrefix("lora_te1_"), let m = te1[String(base.dropFirst("lora_te1_".count))] {
                out.clipL[m, default: []].append(patch(strengthClip))
            } else if base.hasPrefix("lora_te2_"), let m = te2[String(base.dropFirst("lora_te2_".count))] {
                out.clipG[m, default: []].append(patch(strengthClip))
            } else {
                unmatched.append(base)
            }
        }
        if !unmatched.isEmpty {
            throw ModelError.unexpectedKeys(component: "LoRA (no matching SDXL module)", keys: unmatched, file: path)
        }
        return out
    }
}
