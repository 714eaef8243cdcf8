import Foundation
import Imaging
import Testing
@testable import Nodes
import Workflow

let workflowsDir = fixtures.appendingPathComponent("workflows")

func loadGraph(_ path: URL, sets: [String] = []) throws -> Graph {
    var doc = try WorkflowDocument.load(path: path.path)
    for s in sets { try doc.applyOverride(s) }
    return try Validator.validate(doc, registry: builtinRegistry(),
                                  files: FileSearch(baseDirectory: path.deletingLastPathComponent(), modelDirectories: []))
}

@Suite struct PipelineTests {
    /// The tiny text-to-image pipeline runs end to end from ComfyUI API JSON, and caching behaves:
    /// a new seed re-runs the sampler and what follows, nothing upstream.
    @Test func comfyAPIJSONRunsAndReRunsOnlyWhatChanged() throws {
        let g = try loadGraph(workflowsDir.appendingPathComponent("demo_api.json"))
        #expect(g.nodes["4"]?.definition.name == "CheckpointLoader")
        let out = tempFolder(), cache = tempFolder()
        let registry = builtinRegistry()
        let ex = Executor(registry: registry, disk: DiskCache(directory: cache))
        let r1 = ex.run(g, options: ExecutionOptions(outputDirectory: out))
        #expect(!r1.failed, "\(r1.records.compactMap(\.message))")
        #expect(r1.outputs.map(\.lastPathComponent) == ["ComfyUI_00001_.png"])
        let png = try PNG.read(r1.outputs[0])
        #expect(png.width == 64 && png.height == 64 && png.channels == 3)

        let g2 = try loadGraph(workflowsDir.appendingPathComponent("demo_api.json"), sets: ["3.seed=43"])
        let r2 = ex.run(g2, options: ExecutionOptions(outputDirectory: out))
        #expect(r2.executedIDs.sorted() == ["3", "8", "9"])
        // A new process (fresh memory) with the same disk cache: only the output node runs.
        let r3 = Executor(registry: registry, disk: DiskCache(directory: cache)).run(g2, options: ExecutionOptions(outputDirectory: out))
        #expect(r3.executedIDs == ["9"])
        // Different seeds give different images; the same seed the same image.
        let a = try PNG.read(r2.outputs[0]).samples, b = try PNG.read(r3.outputs[0]).samples
        #expect(a == b)
        #expect(a != png.samples)
    }

    @Test func convertPrintsEquivalentYAML() throws {
        let doc = try WorkflowDocument.load(path: workflowsDir.appendingPathComponent("demo_api.json").path)
        let yaml = doc.namingLinks(with: builtinRegistry()).yamlText()
        #expect(yaml.contains("model: $4.model"))
        #expect(yaml.contains("clip: $4.clip"))
        let back = try WorkflowDocument.parse(yaml: yaml, path: workflowsDir.appendingPathComponent("converted.yaml").path)
        let files = FileSearch(baseDirectory: workflowsDir, modelDirectories: [])
        let g1 = try Validator.validate(doc, registry: builtinRegistry(), files: files)
        let g2 = try Validator.validate(back, registry: builtinRegistry(), files: files)
        #expect(Executor.signatures(g1) == Executor.signatures(g2))
    }

    @Test func badModelInputsAreValidationErrors() throws {
        let yaml = """
        nodes:
          c: {type: CheckpointLoader, inputs: {ckpt_name: ../sdxl-tiny/sdxl_tiny.safetensors}}
          l: {type: EmptyLatentImage, inputs: {width: 100, height: 64}}
          p: {type: CLIPEncode, inputs: {clip: $c.clip, text: hi}}
          s: {type: KSampler, inputs: {model: $c.model, positive: $p.conditioning, latent_image: $l.latent, seed: 1, steps: 0,
                                       cfg: 1, sampler_name: heun, scheduler: fancy}}
          d: {type: VAEDecode, inputs: {samples: $s.latent, vae: $c.vae}}
          o: {type: SaveImage, inputs: {images: $d.image}}
        """
        let doc = try WorkflowDocument.parse(yaml: yaml, path: workflowsDir.appendingPathComponent("bad.yaml").path)
        #expect { try Validator.validate(doc, registry: builtinRegistry(), files: FileSearch(baseDirectory: workflowsDir, modelDirectories: [])) } throws: { e in
            let d = (e as? ValidationFailure)?.diagnostics ?? []
            return d.count == 4 && d.contains { $0.input == "width" && $0.message.contains("multiple of 8") }
                && d.contains { $0.input == "steps" && $0.message.contains("below the minimum 1") }
                && d.contains { $0.input == "sampler_name" && $0.message.contains("not one of") }
                && d.contains { $0.input == "scheduler" }
        }
    }

    @Test func wrongModelFileFailsTheLoaderNamingIt() throws {
        // The tiny checkpoint without its config: the SDXL preset does not fit, the error names key and node input.
        let yaml = """
        nodes:
          c: {type: CheckpointLoader, inputs: {ckpt_name: ../sdxl-tiny/sdxl_tiny.safetensors}}
          l: {type: EmptyLatentImage, inputs: {width: 64, height: 64}}
          s: {type: SaveLatent, inputs: {samples: $l.latent}}
          p: {type: CLIPEncode, inputs: {clip: $c.clip, text: hi}}
          k: {type: KSampler, inputs: {model: $c.model, positive: $p.conditioning, latent_image: $l.latent, cfg: 1}}
          o: {type: SaveLatent, inputs: {samples: $k.latent}}
        """
        let doc = try WorkflowDocument.parse(yaml: yaml, path: workflowsDir.appendingPathComponent("wrong.yaml").path)
        let g = try Validator.validate(doc, registry: builtinRegistry(), files: FileSearch(baseDirectory: workflowsDir, modelDirectories: []))
        let out = tempFolder()
        let r = Executor(registry: builtinRegistry()).run(g, options: ExecutionOptions(outputDirectory: out))
        #expect(r.record("c")?.status == .failed)
        #expect(r.record("c")?.message?.contains("input 'ckpt_name'") == true)
        #expect(r.record("c")?.message?.contains("sdxl_tiny.safetensors") == true)
        #expect(r.record("s")?.status == .executed)
        #expect(r.record("o")?.status == .skipped)
        // SaveLatent wrote a ComfyUI-style latent file.
        let latent = try #require(r.outputs.first)
        #expect(latent.lastPathComponent == "sdflow_00001_.latent")
        #expect(latent.deletingLastPathComponent().lastPathComponent == "latents")
    }
}

@Suite struct SizeConditioningTests {
    /// CLIPTextEncodeSDXL's explicit sizes reach the UNet: a different target size changes the result,
    /// and the latent-derived default equals explicit sizes of latent x 8.
    @Test func explicitSizesMatchTheDefaultAndMatter() throws {
        func yaml(_ cond: String) -> String {
            """
            nodes:
              c: {type: CheckpointLoader, inputs: {ckpt_name: ../sdxl-tiny/sdxl_tiny.safetensors, config_name: ../sdxl-tiny/diffusers}}
              p: \(cond)
              l: {type: EmptyLatentImage, inputs: {width: 64, height: 64}}
              k: {type: KSampler, inputs: {model: $c.model, positive: $p.conditioning, latent_image: $l.latent, seed: 3, steps: 2, cfg: 1,
                                           sampler_name: euler, scheduler: sgm_uniform}}
              o: {type: SaveLatent, inputs: {samples: $k.latent}}
            """
        }
        func latent(_ y: String) throws -> [Float] {
            let doc = try WorkflowDocument.parse(yaml: y, path: workflowsDir.appendingPathComponent("s.yaml").path)
            let g = try Validator.validate(doc, registry: builtinRegistry(), files: FileSearch(baseDirectory: workflowsDir, modelDirectories: []))
            let ex = Executor(registry: builtinRegistry())
            let r = ex.run(g, options: ExecutionOptions(outputDirectory: tempFolder()))
            #expect(!r.failed, "\(r.records.compactMap(\.message))")
            guard case .object(let p)? = ex.memory.get(Executor.signatures(g)["k"]!)?.first, let l = p as? LatentValue else { return [] }
            return l.samples.toFloats()
        }
        let plain = try latent(yaml("{type: CLIPEncode, inputs: {clip: $c.clip, text: a red fox}}"))
        let explicit = try latent(yaml("{type: CLIPTextEncodeSDXL, inputs: {clip: $c.clip, text_g: a red fox, text_l: a red fox, width: 64, height: 64, target_width: 64, target_height: 64}}"))
        let other = try latent(yaml("{type: CLIPTextEncodeSDXL, inputs: {clip: $c.clip, text_g: a red fox, text_l: a red fox, width: 1024, height: 1024, target_width: 64, target_height: 64}}"))
        #expect(!plain.isEmpty && plain == explicit)
        #expect(plain != other)
    }
}
