import Foundation
import Testing
@testable import Diffusion
import Tensor

let samplingDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/sampling")

struct RNGCase: Decodable {
    var seed: String
    var shape: [Int]
    var numel: Int
    var values: [Float]?
    var first_values: [Float]?
    var last_values: [Float]?
    var sum_f64: Double
}

let rngCases: [RNGCase] = {
    guard let d = try? Data(contentsOf: samplingDir.appendingPathComponent("manifest.json")),
          let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
          let rng = o["rng"] as? [String: Any], let cases = rng["cases"],
          let cd = try? JSONSerialization.data(withJSONObject: cases) else { return [] }
    return (try? JSONDecoder().decode([RNGCase].self, from: cd)) ?? []
}()

let schedules: [String: Any] = {
    guard let d = try? Data(contentsOf: samplingDir.appendingPathComponent("schedules.json")),
          let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [:] }
    return o
}()

@Suite struct RNGTests {
    @Test func casesPresent() { #expect(rngCases.count == 24) }

    /// torch.randn bit for bit: every stored value equal, and the float64 sum of all values equal.
    @Test(arguments: rngCases.indices)
    func randnMatchesTorch(index: Int) throws {
        let c = rngCases[index]
        let seed = try #require(UInt64(c.seed))
        var g = TorchGenerator(seed: seed)
        let v = g.randn(c.numel)
        if let want = c.values {
            let same = zip(v, want).filter { $0.bitPattern == $1.bitPattern }.count
            #expect(same == want.count, "seed \(c.seed) shape \(c.shape): \(same)/\(want.count) bit-identical")
        }
        if let first = c.first_values, let last = c.last_values {
            #expect(Array(v.prefix(first.count)).map(\.bitPattern) == first.map(\.bitPattern), "seed \(c.seed) first values")
            #expect(Array(v.suffix(last.count)).map(\.bitPattern) == last.map(\.bitPattern), "seed \(c.seed) last values")
        }
        let sum = v.reduce(0.0) { $0 + Double($1) }
        #expect(abs(sum - c.sum_f64) <= 1e-9 * max(1, abs(c.sum_f64)), "seed \(c.seed) sum \(sum) vs \(c.sum_f64)")
    }
}

@Suite struct ScheduleTests {
    @Test func sigmaTableMatches() throws {
        let table = try #require(schedules["table"] as? [String: Any])
        let sigmas = try #require(table["sigmas_f32"] as? [Double]).map(Float.init)
        let logs = try #require(table["log_sigmas_f32"] as? [Double]).map(Float.init)
        #expect(DiscreteSchedule.sdxl.sigmas == sigmas)
        #expect(DiscreteSchedule.sdxl.logSigmas == logs)
    }

    /// Every scheduler, 1...50 steps, denoise 1 and 0.6, equal to ComfyUI's float32 values to within 2 ulp
    /// (relative 2.5e-7): torch evaluates exp / pow with SLEEF's vector routines, glibc's differ in the last
    /// bit for about 1 value in 200. linspace, the sigma table, timesteps and the step structure are exact.
    @Test(arguments: Scheduler.allCases)
    func schedulerMatchesComfyUI(scheduler: Scheduler) throws {
        let all = try #require(schedules["schedulers"] as? [String: Any])
        let byDenoise = try #require(all[scheduler.rawValue] as? [String: Any])
        var mismatches: [String] = []
        var total = 0, exact = 0
        for (key, denoise) in [("denoise_1.0", 1.0), ("denoise_0.6", 0.6)] {
            let bySteps = try #require(byDenoise[key] as? [String: [Double]])
            #expect(bySteps.count == 50)
            for (steps, want) in bySteps {
                let got = scheduler.sigmas(.sdxl, steps: Int(steps)!, denoise: denoise)
                let w = want.map(Float.init)
                total += w.count
                exact += zip(got, w).filter { $0 == $1 }.count
                let close = got.count == w.count && zip(got, w).allSatisfy { abs($0 - $1) <= 2.5e-7 * abs($1) }
                if !close {
                    let i = (0..<min(got.count, w.count)).first { got[$0] != w[$0] } ?? min(got.count, w.count)
                    mismatches.append("\(key) steps \(steps) [\(i)]: \(i < got.count ? got[i] : .nan) vs \(i < w.count ? w[i] : .nan) (\(got.count) vs \(w.count) values)")
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, e.g. \(mismatches.sorted().prefix(3))")
        #expect(Double(exact) >= 0.9 * Double(total), "\(scheduler.rawValue): only \(exact)/\(total) sigmas bit-identical")
        print("schedule \(scheduler.rawValue): \(exact)/\(total) sigmas bit-identical to ComfyUI, all within 2 ulp")
    }

    @Test func timestepSigmaConversions() throws {
        let ts = try #require(schedules["timestep_sigma"] as? [String: Any])
        for e in try #require(ts["sigma_of_t"] as? [[String: Double]]) {
            #expect(DiscreteSchedule.sdxl.sigma(Float(e["t"]!)) == Float(e["sigma"]!), "sigma(\(e["t"]!))")
        }
        for e in try #require(ts["timestep_of_sigma"] as? [[String: Double]]) {
            #expect(DiscreteSchedule.sdxl.timestep(Float(e["sigma"]!)) == Float(e["t"]!), "timestep(\(e["sigma"]!))")
        }
    }
}

let e2e: SafeTensorsFile? = try? SafeTensorsFile(url: samplingDir.appendingPathComponent("e2e.safetensors"))

func e2eTensor(_ name: String) throws -> Tensor {
    guard let e2e else { throw ModelError.invalidInput("e2e.safetensors missing") }
    return try e2e.tensor(name)
}

/// End to end against the Python reference that runs the diffusers networks with ComfyUI's math.
@Suite struct EndToEndTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var sampler: SamplerKind
        var scheduler: Scheduler
        var steps: Int
        var cfg: Double
        var denoise: Double = 1
        var prediction: Prediction = .eps
        var lora = false
        var img2img = false
        var tolerance: Float = 1e-4
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "a", sampler: .euler, scheduler: .sgmUniform, steps: 4, cfg: 1),
        Case(name: "b", sampler: .euler, scheduler: .normal, steps: 6, cfg: 5, tolerance: 1e-3),
        Case(name: "c", sampler: .euler, scheduler: .sgmUniform, steps: 1, cfg: 1, prediction: .x0),
        Case(name: "d", sampler: .euler, scheduler: .sgmUniform, steps: 4, cfg: 1, lora: true),
        Case(name: "e", sampler: .euler, scheduler: .sgmUniform, steps: 4, cfg: 1, denoise: 0.6, img2img: true),
        Case(name: "f", sampler: .eulerAncestral, scheduler: .karras, steps: 5, cfg: 1, tolerance: 1e-3),
        Case(name: "g", sampler: .dpmpp2m, scheduler: .karras, steps: 6, cfg: 1),
        Case(name: "h", sampler: .lcm, scheduler: .sgmUniform, steps: 4, cfg: 1),
    ]

    @Test(arguments: cases)
    func latentAndImageMatchReference(c: Case) throws {
        var comps = try #require(try singleFile)
        var enc = SDXLTextEncoder(clipL: comps.clipL, clipG: comps.clipG, tokenizer: try CLIPTokenizer.shared(cleaning: .transformers))
        if c.lora {
            let p = try LoRALoader.load(tinyDir.appendingPathComponent("lora_sgm.safetensors"), unet: comps.unet, clipL: comps.clipL,
                                        clipG: comps.clipG, strengthModel: 0.8, strengthClip: 0.8)
            comps.unet = try comps.unet.patched(p.unet)
            enc.clipL = try enc.clipL.patched(p.clipL)
            enc.clipG = try enc.clipG.patched(p.clipG)
        }
        let positive = try enc.encode("a fish made out of dendrobium flowers, ultrarealistic")
        expectClose(positive.context, try e2eTensor("\(c.name).context").narrowed(dim: 0, start: 0, length: 1), "\(c.name) context")
        let negative = c.cfg != 1 ? try enc.encode("blurry, low quality") : nil
        var latent = try Tensor.zeros([1, 4, 8, 8])
        if c.img2img {
            // IMAGE [1, H, W, 3] in 0...1 -> [1, 3, H, W] in -1...1, then the posterior mean.
            let img = try e2eTensor("e.input_image").permuted([0, 3, 1, 2])
            latent = try comps.vae.encode(try Ops.add(try Ops.mul(img, scalar: 2), scalar: -1))
            expectClose(latent, try e2eTensor("e.input_latent"), "e input latent")
        }
        let sigmas = c.scheduler.sigmas(.sdxl, steps: c.steps, denoise: c.denoise)
        #expect(sigmas == (try e2eTensor("\(c.name).sigmas")).toFloats(), "\(c.name) sigmas")
        let out = try KSampler.sample(unet: comps.unet, prediction: c.prediction, positive: positive, negative: negative, latent: latent,
                                      settings: SamplingSettings(seed: 42, steps: c.steps, cfg: c.cfg, sampler: c.sampler,
                                                                 scheduler: c.scheduler, denoise: c.denoise))
        expectClose(out, try e2eTensor("\(c.name).latent"), "\(c.name) latent", tolerance: c.tolerance)
        let decoded = try comps.vae.decode(out)
        expectClose(decoded, try e2eTensor("\(c.name).decoded_raw"), "\(c.name) decoded", tolerance: c.tolerance)
    }
}
