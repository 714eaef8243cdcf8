import Foundation
import Testing
@testable import Diffusion
import Tensor

@Suite struct TextEncoderTests {
    @Test(arguments: ["single file", "diffusers folder"])
    func bothEncodersMatchTransformers(source: String) throws {
        let c = try #require(source == "single file" ? try singleFile : try diffusersFolder)
        let l = try c.clipL(try ids("tokens.ids_te1"))
        expectClose(l.hidden, try ref("te1.penultimate"), "CLIP-L penultimate")
        let g = try c.clipG(try ids("tokens.ids_te2"))
        expectClose(g.hidden, try ref("te2.penultimate"), "bigG penultimate")
        expectClose(g.pooled, try ref("te2.pooled"), "bigG pooled")
        let context = try Ops.concat([l.hidden, g.hidden], dim: 2)
        expectClose(context, try ref("cond.context"), "context")
    }
}

@Suite struct UNetTests {
    func run(_ unet: UNet) throws -> Tensor {
        let x = try ref("unet.in.x")
        let ctx = try unet.prepare(context: try ref("unet.in.context"))
        return try unet(x, timesteps: try ref("unet.in.timesteps").toFloats(), context: ctx,
                        textEmbeds: try ref("unet.in.text_embeds"), timeIds: try timeIds())
    }

    @Test func embeddingsMatch() throws {
        let unet = try #require(try singleFile?.unet)
        let emb = try unet.embedding(timesteps: try ref("unet.in.timesteps").toFloats(),
                                     textEmbeds: try ref("unet.in.text_embeds"), timeIds: try timeIds())
        let want = try Ops.add(try ref("unet.act.time_embedding"), try ref("unet.act.add_embedding"))
        expectClose(emb, want, "time + added embedding")
    }

    @Test(arguments: ["single file", "diffusers folder", "UNet-only diffusers file"])
    func forwardMatchesDiffusers(source: String) throws {
        let unet: UNet
        switch source {
        case "single file": unet = try #require(try singleFile?.unet)
        case "diffusers folder": unet = try #require(try diffusersFolder?.unet)
        default: unet = try SDXLLoader.loadUNet(tinyDir.appendingPathComponent("unet_diffusers.safetensors"), config: tinyConfigs.unet)
        }
        expectClose(try run(unet), try ref("unet.out.eps"), "UNet eps (\(source))")
    }

    @Test(arguments: ["lora_sgm.safetensors", "lora_diffusers.safetensors"])
    func loraMatchesFusedReference(file: String) throws {
        let c = try #require(try singleFile)
        let p = try LoRALoader.load(tinyDir.appendingPathComponent(file), unet: c.unet, clipL: c.clipL, clipG: c.clipG,
                                    strengthModel: 0.8, strengthClip: 0.8)
        let unet = try c.unet.patched(p.unet)
        expectClose(try run(unet), try ref("unet_lora.out.eps"), "UNet with LoRA (\(file))")
        // Without the LoRA the output differs clearly, so the comparison above can fail.
        let plain = try run(c.unet).toFloats(), lora = try ref("unet_lora.out.eps").toFloats()
        #expect(zip(plain, lora).map { abs($0 - $1) }.max()! > 1e-3)
        let l = try c.clipL.patched(p.clipL)(try ids("tokens.ids_te1"))
        let g = try c.clipG.patched(p.clipG)(try ids("tokens.ids_te2"))
        expectClose(try Ops.concat([l.hidden, g.hidden], dim: 2), try ref("lora_te.cond.context"), "context with LoRA")
        expectClose(g.pooled, try ref("lora_te.te2.pooled"), "pooled with LoRA")
    }

    @Test func keyMapRoundTrips() throws {
        let unet = try #require(try singleFile?.unet)
        for name in unet.weightNames {
            let module = String(name.dropLast(name.hasSuffix(".weight") ? 7 : (name.hasSuffix(".bias") ? 5 : 0)))
            let sgm = try #require(KeyMaps.unetToSGM(module, config: unet.config), "\(module)")
            #expect(KeyMaps.unet(sgm + ".weight", config: unet.config) == module + ".weight")
        }
    }
}

@Suite struct VAETests {
    @Test(arguments: ["single file", "diffusers folder", "vae_sgm_fp32.safetensors"])
    func decodeAndEncodeMatchDiffusers(source: String) throws {
        let vae: AutoencoderKL
        switch source {
        case "single file": vae = try #require(try singleFile?.vae)
        case "diffusers folder": vae = try #require(try diffusersFolder?.vae)
        default: vae = try SDXLLoader.loadVAE(tinyDir.appendingPathComponent(source), config: tinyConfigs.vae)
        }
        expectClose(try vae.decode(try ref("vae.in.z")), try ref("vae.out.decoded"), "VAE decode (\(source))")
        expectClose(try vae.encode(try ref("vae.in.image")), try ref("vae.out.mean"), "VAE encode mean (\(source))")
    }

    @Test func bf16Weights() throws {
        let vae = try SDXLLoader.loadVAE(tinyDir.appendingPathComponent("vae_sgm_bf16.safetensors"), config: tinyConfigs.vae)
        expectClose(try vae.decode(try ref("vae.in.z")), try ref("vae_bf16.out.decoded"), "VAE decode bf16")
        expectClose(try vae.encode(try ref("vae.in.image")), try ref("vae_bf16.out.mean"), "VAE encode bf16")
    }
}

@Suite struct LoaderErrorTests {
    @Test func wrongConfigNamesTheKey() {
        // The SDXL preset does not fit the tiny file: the error names a key and the file.
        #expect { try SDXLLoader.loadSingleFile(tinyDir.appendingPathComponent("sdxl_tiny.safetensors")) } throws: { e in
            let s = "\(e)"
            return s.contains("sdxl_tiny.safetensors") && (s.contains("key") || s.contains("shape"))
        }
    }

    @Test func unetFileIsNotACheckpoint() {
        #expect { try SDXLLoader.loadSingleFile(tinyDir.appendingPathComponent("unet_diffusers.safetensors"), configs: tinyConfigs) } throws: { e in
            "\(e)".contains("UNetLoader")
        }
    }

    @Test func sd15CheckpointIsRefusedInOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sdflow-sd15-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("sd15.safetensors")
        let t = try Tensor(shape: [2], values: [1, 2])
        try SafeTensorsWriter.write([("cond_stage_model.transformer.text_model.final_layer_norm.weight", t),
                                     ("model.diffusion_model.input_blocks.0.0.bias", t)], to: url)
        #expect { try SDXLLoader.loadSingleFile(url) } throws: { e in
            let s = "\(e)"
            return s.contains("Stable Diffusion 1.x") && !s.contains("\n")
        }
    }
}

@Suite struct RandomWeightTests {
    /// The shape tables used for full-size benchmarks agree exactly with real diffusers files.
    @Test func shapeTablesMatchDiffusersFiles() throws {
        for (sub, shapes) in [("unet", RandomWeights.unetShapes(tinyConfigs.unet)), ("vae", RandomWeights.vaeShapes(tinyConfigs.vae)),
                              ("text_encoder", RandomWeights.clipShapes(tinyConfigs.clipL)),
                              ("text_encoder_2", RandomWeights.clipShapes(tinyConfigs.clipG))] {
            let dir = tinyDir.appendingPathComponent("diffusers").appendingPathComponent(sub)
            let name = sub.hasPrefix("text") ? "model.safetensors" : "diffusion_pytorch_model.safetensors"
            let file = try SafeTensorsFile(url: dir.appendingPathComponent(name))
            var real: [String: [Int]] = [:]
            for k in file.names where !k.hasSuffix("position_ids") {
                let key = sub.hasPrefix("text") && !k.hasPrefix("text_model.") && !k.hasPrefix("text_projection") ? "text_model." + k : k
                real[key] = try file.entry(k).shape
            }
            let ours = Dictionary(shapes.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
            // CLIP-L has no projection in the file; the tiny config names one, which our table then adds.
            let extra = Set(ours.keys).subtracting(real.keys).filter { $0 != "text_projection.weight" || sub == "text_encoder_2" }
            #expect(extra.isEmpty, "\(sub): not in the file: \(extra.sorted().prefix(3))")
            #expect(Set(real.keys).subtracting(ours.keys).isEmpty, "\(sub): missing from the table: \(Set(real.keys).subtracting(ours.keys).sorted().prefix(3))")
            for (k, s) in real { #expect(ours[k] == s, "\(sub) \(k): \(ours[k] ?? []) vs \(s)") }
        }
    }

    @Test func randomModelsBuild() throws {
        _ = try UNet(config: tinyConfigs.unet, weights: try RandomWeights.weightSet(RandomWeights.unetShapes(tinyConfigs.unet), component: "UNet"))
        _ = try AutoencoderKL(config: tinyConfigs.vae, weights: try RandomWeights.weightSet(RandomWeights.vaeShapes(tinyConfigs.vae), component: "VAE"))
    }
}

@Suite struct TiledVAETests {
    /// Tiled decode/encode agree with the whole-image pass away from the seams' blending: with tiles as
    /// large as the image they are identical, and with overlapping tiles they stay close (the tiny VAE's
    /// receptive field spans the image, so the bound is loose: 0.5 of the output scale).
    @Test func tiledMatchesWhole() throws {
        let vae = try #require(try singleFile?.vae)
        let z = try ref("vae.in.z")
        let whole = try vae.decode(z)
        #expect(try vae.decodeTiled(z, tile: 8, overlap: 2).toFloats() == whole.toFloats())
        let tiled = try vae.decodeTiled(z, tile: 6, overlap: 2)
        #expect(tiled.shape == whole.shape)
        let img = try ref("vae.in.image")
        let mean = try vae.encode(img)
        #expect(try vae.encodeTiled(img, tile: 64, overlap: 16).toFloats() == mean.toFloats())
        let te = try vae.encodeTiled(img, tile: 48, overlap: 16)
        #expect(te.shape == mean.shape)
        let scale = mean.toFloats().map(abs).max()!
        let diff = zip(te.toFloats(), mean.toFloats()).map { abs($0 - $1) }.max()!
        #expect(diff <= 0.5 * scale, "tiled encode differs by \(diff) (scale \(scale))")
    }
}
