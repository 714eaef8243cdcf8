import Foundation
import Testing
@testable import Diffusion
import Tensor

/// bf16 compute (AMX or AVX512-BF16) against the fp32 path on the tiny fixtures. Bounds follow from
/// bf16's 8-bit mantissa: each product carries a relative rounding error up to 2^-9 per operand, and
/// through a network of a few layers the output error stays within a few percent of the output's
/// scale; we assert max |bf16 - fp32| <= 5% of max |fp32| and mean relative error (against the rms) <= 2%.
@Suite(.serialized) struct BF16ModelTests {
    func errors(_ a: Tensor, _ b: Tensor) -> (maxRel: Float, meanRel: Float) {
        let x = a.toFloats(), y = b.toFloats()
        let scale = y.map(abs).max() ?? 1
        let rms = (y.reduce(0) { $0 + $1 * $1 } / Float(max(1, y.count))).squareRoot()
        let diffs = zip(x, y).map { abs($0 - $1) }
        return (diffs.max()! / max(scale, 1e-12), diffs.reduce(0, +) / Float(max(1, diffs.count)) / max(rms, 1e-12))
    }

    func withPrecision<R>(_ p: ComputePrecision, _ body: () throws -> R) rethrows -> R {
        try ComputePrecision.with(p, body)
    }

    @Test func unetTextEncodersAndLatentWithinBF16Bounds() throws {
        guard BF16Backend.available else { return }   // no bf16 hardware: bf16 is fp32, nothing to compare
        let comps = try #require(try singleFile)
        let x = try ref("unet.in.x")
        let ts = try ref("unet.in.timesteps").toFloats()
        func unetOut() throws -> Tensor {
            try comps.unet(x, timesteps: ts, context: try comps.unet.prepare(context: try ref("unet.in.context")),
                           textEmbeds: try ref("unet.in.text_embeds"), timeIds: try timeIds())
        }
        let f32 = try withPrecision(.fp32) { try unetOut() }
        let b16 = try withPrecision(.bf16) { try unetOut() }
        let e = errors(b16, f32)
        print("bf16 vs fp32, tiny UNet: max rel \(e.maxRel), mean rel \(e.meanRel)")
        #expect(e.maxRel <= 0.05 && e.meanRel <= 0.02)
        #expect(e.maxRel > 0, "bf16 must actually run (identical outputs mean the fp32 path ran)")

        let ids = try ids("tokens.ids_te2")
        let g32 = try withPrecision(.fp32) { try comps.clipG(ids) }
        let g16 = try withPrecision(.bf16) { try comps.clipG(ids) }
        let eg = errors(g16.hidden, g32.hidden)
        print("bf16 vs fp32, tiny bigG hidden: max rel \(eg.maxRel), mean rel \(eg.meanRel)")
        #expect(eg.maxRel <= 0.05 && eg.meanRel <= 0.02)

        let vae = comps.vae
        let d32 = try withPrecision(.fp32) { try vae.decode(try ref("vae.in.z")) }
        let d16 = try withPrecision(.bf16) { try vae.decode(try ref("vae.in.z")) }
        let ev = errors(d16, d32)
        print("bf16 vs fp32, tiny VAE decode: max rel \(ev.maxRel), mean rel \(ev.meanRel)")
        #expect(ev.maxRel <= 0.05 && ev.meanRel <= 0.02)

        // A whole 4-step latent (euler, sgm_uniform): errors compound over steps, bound 10% / 3%.
        let enc = SDXLTextEncoder(clipL: comps.clipL, clipG: comps.clipG, tokenizer: try CLIPTokenizer.shared())
        func latent() throws -> Tensor {
            try KSampler.sample(unet: comps.unet, prediction: .eps, positive: try enc.encode("a red fox in snow"), negative: nil,
                                latent: try Tensor.zeros([1, 4, 8, 8]),
                                settings: SamplingSettings(seed: 42, steps: 4, cfg: 1, sampler: .euler, scheduler: .sgmUniform))
        }
        let l32 = try withPrecision(.fp32) { try latent() }
        let l16 = try withPrecision(.bf16) { try latent() }
        let el = errors(l16, l32)
        print("bf16 vs fp32, tiny 4-step latent: max rel \(el.maxRel), mean rel \(el.meanRel)")
        #expect(el.maxRel <= 0.10 && el.meanRel <= 0.03)
    }

    @Test func droppedPackingsArePackedAgainToTheSameResult() throws {
        guard BF16Backend.available else { return }
        let comps = try #require(try singleFile)
        let x = try ref("unet.in.x")
        let ts = try ref("unet.in.timesteps").toFloats()
        let ctx = try comps.unet.prepare(context: try ref("unet.in.context"))
        func run() throws -> [Float] {
            try withPrecision(.bf16) {
                try comps.unet(x, timesteps: ts, context: ctx, textEmbeds: try ref("unet.in.text_embeds"), timeIds: try timeIds()).toFloats()
            }
        }
        let a = try run()
        #expect(comps.unet.releasePackedWeights() > 0)
        #expect(comps.unet.releasePackedWeights() == 0, "a second release finds nothing packed")
        let b = try run()
        #expect(a == b, "packed again from the same weights: the same bits")
        // What a node does when done with the model, with the packings to be dropped.
        comps.unet.releaseResidentPages(dropPackings: true)
        #expect(comps.unet.releasePackedWeights() == 0)
        #expect(try run() == a)
        comps.unet.releaseResidentPages()
        #expect(comps.unet.releasePackedWeights() > 0, "without dropPackings the packings stay")
    }

    @Test func fp32ResultsAreUnaffected() throws {
        // Switching to bf16 and back leaves fp32 outputs bit-identical to the reference run.
        let comps = try #require(try singleFile)
        let x = try ref("unet.in.x")
        let ts = try ref("unet.in.timesteps").toFloats()
        let ctx = try comps.unet.prepare(context: try ref("unet.in.context"))
        let a = try withPrecision(.fp32) { try comps.unet(x, timesteps: ts, context: ctx, textEmbeds: try ref("unet.in.text_embeds"), timeIds: try timeIds()) }
        _ = try withPrecision(.bf16) { try comps.unet(x, timesteps: ts, context: ctx, textEmbeds: try ref("unet.in.text_embeds"), timeIds: try timeIds()) }
        let b = try withPrecision(.fp32) { try comps.unet(x, timesteps: ts, context: ctx, textEmbeds: try ref("unet.in.text_embeds"), timeIds: try timeIds()) }
        expectClose(a, try ref("unet.out.eps"), "fp32 eps")
        #expect(a.toFloats() == b.toFloats())
    }
}
