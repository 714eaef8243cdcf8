import Foundation
import Imaging
import Tensor
import Testing
@testable import Nodes
import Workflow

/// ControlNet workflows end to end (LoadImage -> ControlNetLoader -> ControlNet -> KSampler) against the
/// Python reference that follows ComfyUI's rules (gating inclusive at both ends, nearest-exact center
/// resize of the hint, chained ControlNets summed).
@Suite struct ControlNetWorkflowTests {
    static let e2e = try? SafeTensorsFile(url: fixtures.appendingPathComponent("controlnet-tiny/e2e.safetensors"))

    func run(_ yaml: String) throws -> (RunResult, Executor, Graph) {
        let doc = try WorkflowDocument.parse(yaml: yaml, path: fixtures.appendingPathComponent("workflows/cn.yaml").path)
        let g = try Validator.validate(doc, registry: builtinRegistry(), files: FileSearch(baseDirectory: fixtures.appendingPathComponent("workflows"), modelDirectories: []))
        let ex = Executor(registry: builtinRegistry())
        return (ex.run(g, options: ExecutionOptions(outputDirectory: tempFolder())), ex, g)
    }

    static let header = """
    nodes:
      ckpt: {type: CheckpointLoader, inputs: {ckpt_name: ../sdxl-tiny/sdxl_tiny.safetensors, config_name: ../sdxl-tiny/diffusers}}
      cnet: {type: ControlNetLoader, inputs: {control_net_name: ../controlnet-tiny/diffusers/diffusion_pytorch_model.safetensors}}
      pos: {type: CLIPEncode, inputs: {clip: $ckpt.clip, text: "a fish made out of dendrobium flowers, ultrarealistic"}}
      neg: {type: CLIPEncode, inputs: {clip: $ckpt.clip, text: ""}}
      hint: {type: LoadImage, inputs: {image: ../controlnet-tiny/hint.png}}
      hint_b: {type: LoadImage, inputs: {image: ../controlnet-tiny/hint_b.png}}
      latent: {type: EmptyLatentImage, inputs: {width: 64, height: 64}}
      sample: {type: KSampler, inputs: {model: $ckpt.model, positive: $c.positive, negative: $c.negative, latent_image: $latent.latent,
                                       seed: 42, steps: 4, cfg: 1, sampler_name: euler, scheduler: sgm_uniform}}
      out: {type: SaveLatent, inputs: {samples: $sample.latent}}

    """

    func latent(_ ex: Executor, _ g: Graph) throws -> Tensor {
        let sig = Executor.signatures(g)["sample"]!
        guard case .object(let p)? = ex.memory.get(sig)?.first, let l = p as? LatentValue else { throw NodeError("no latent") }
        return l.samples
    }

    func expectLatent(_ got: Tensor, _ name: String) throws {
        let want = try #require(try Self.e2e?.tensor(name)).toFloats()
        let a = got.toFloats()
        #expect(a.count == want.count)
        let maxRef = want.map(abs).max() ?? 1
        let maxDiff = zip(a, want).map { abs($0 - $1) }.max() ?? .infinity
        #expect(maxDiff <= 1e-4 * max(1, maxRef), "\(name): max |diff| \(maxDiff) (max |ref| \(maxRef))")
    }

    @Test func oneControlNetActiveInTheFirstHalf() throws {
        let (r, ex, g) = try run(Self.header + """
          c: {type: ControlNet, inputs: {positive: $pos.conditioning, negative: $neg.conditioning, control_net: $cnet.control_net,
                                        image: $hint.image, strength: 0.8, start_percent: 0.0, end_percent: 0.5}}
        """)
        #expect(!r.failed, "\(r.records.compactMap(\.message))")
        try expectLatent(try latent(ex, g), "cn1.latent")
    }

    @Test func twoChainedControlNetsSum() throws {
        let (r, ex, g) = try run(Self.header + """
          a: {type: ControlNet, inputs: {positive: $pos.conditioning, negative: $neg.conditioning, control_net: $cnet.control_net,
                                        image: $hint.image, strength: 0.5, start_percent: 0.0, end_percent: 1.0}}
          c: {type: ControlNetApplyAdvanced, inputs: {positive: $a.positive, negative: $a.negative, control_net: $cnet.control_net,
                                        image: $hint_b.image, strength: 0.3, start_percent: 0.25, end_percent: 0.75}}
        """)
        #expect(!r.failed, "\(r.records.compactMap(\.message))")
        try expectLatent(try latent(ex, g), "cn2.latent")
    }

    @Test func startAfterEndIsAnErrorNamingTheNode() throws {
        let (r, _, _) = try run(Self.header + """
          c: {type: ControlNet, inputs: {positive: $pos.conditioning, negative: $neg.conditioning, control_net: $cnet.control_net,
                                        image: $hint.image, strength: 0.8, start_percent: 0.7, end_percent: 0.2}}
        """)
        #expect(r.record("c")?.status == .failed)
        #expect(r.record("c")?.message?.contains("input 'end_percent'") == true)
        #expect(r.record("sample")?.status == .skipped)
    }
}
