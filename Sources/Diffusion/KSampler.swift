import Foundation
import Tensor

/// The settings of one KSampler run (ComfyUI's inputs).
public struct SamplingSettings: Sendable {
    public var seed: UInt64
    public var steps: Int
    public var cfg: Double
    public var sampler: SamplerKind
    public var scheduler: Scheduler
    public var denoise: Double
    public init(seed: UInt64, steps: Int, cfg: Double, sampler: SamplerKind, scheduler: Scheduler, denoise: Double = 1) {
        self.seed = seed
        self.steps = steps
        self.cfg = cfg
        self.sampler = sampler
        self.scheduler = scheduler
        self.denoise = denoise
    }
}

/// ComfyUI's KSampler for SDXL: seeded torch noise, the scheduler's sigmas, the noise scaling at the
/// start, UNet calls on x / sqrt(sigma^2 + 1) at the nearest integer timestep, CFG on denoised (cfg 1
/// skips the unconditional pass), the sampler loop, and VAE-space latents in and out (x 0.13025).
public enum KSampler {
    public static let latentScale: Float = 0.13025

    /// - latent: [B, 4, h, w] in VAE space. Returns the sampled latent in VAE space.
    public static func sample(unet: UNet, prediction: Prediction, schedule: DiscreteSchedule = .sdxl,
                              positive: Conditioning, negative: Conditioning?, latent: Tensor,
                              settings: SamplingSettings,
                              progress: (_ step: Int, _ total: Int) throws -> Void = { _, _ in }) throws -> Tensor {
        guard latent.rank == 4, latent.shape[1] == unet.config.inChannels else {
            throw ModelError.invalidInput("latent \(latent.shape) does not fit the model (expected [B, \(unet.config.inChannels), h, w])")
        }
        let (b, h, w) = (latent.shape[0], latent.shape[2], latent.shape[3])
        let count = latent.count
        var gen = TorchGenerator(seed: settings.seed)
        let noise = gen.randn(count)
        let sigmas = settings.scheduler.sigmas(schedule, steps: settings.steps, denoise: settings.denoise)
        let latentIn = latent.toFloats().map { $0 * latentScale }   // process_in (zeros stay zeros)
        guard sigmas.count > 1 else { return latent }

        // Noise scaling at the start (ComfyUI EPS.noise_scaling; max_denoise when sigma_0 >= sigma_max).
        let s0 = sigmas[0]
        let maxDenoise = s0 >= schedule.sigmaMax || abs(s0 - schedule.sigmaMax) <= 1e-5 * max(abs(s0), abs(schedule.sigmaMax))
        let scale0 = maxDenoise ? (1 + s0 * s0).squareRoot() : s0
        let x0 = (0..<count).map { noise[$0] * scale0 + latentIn[$0] }

        // Text conditioning prepared once (cross-attention K/V reused at every step).
        let defaultSize = SizeConditioning(width: w * 8, height: h * 8)
        func batch(_ c: Conditioning) throws -> (PreparedContext, Tensor, [[Float]]) {
            let ctx = try repeatBatch(c.context, b)
            let pooled = try repeatBatch(c.pooled, b)
            let ids = Array(repeating: (c.size ?? defaultSize).timeIds, count: b)
            return (try unet.prepare(context: ctx), pooled, ids)
        }
        let pos = try batch(positive)
        let useCFG = abs(settings.cfg - 1) > 1e-9
        let neg: (PreparedContext, Tensor, [[Float]])?
        if useCFG {
            guard let negative else { throw ModelError.invalidInput("cfg \(settings.cfg) needs a negative conditioning (or set cfg to 1)") }
            neg = try batch(negative)
        } else {
            neg = nil
        }

        // Ancestral / LCM noise: a fresh generator seeded with seed + 1 (current ComfyUI on the CPU,
        // k_diffusion default_noise_sampler).
        var stepNoise = TorchGenerator(seed: settings.seed &+ 1)
        let shape = latent.shape
        let out = try Sampler.sample(settings.sampler, x: x0, sigmas: sigmas, denoise: { x, sigma, _ in
            let scale = 1 / (sigma * sigma + 1).squareRoot()
            let xin = try Tensor(shape: shape, values: x.map { $0 * scale })
            let t = schedule.timestep(sigma)
            func run(_ c: (PreparedContext, Tensor, [[Float]]), _ cond: Conditioning) throws -> [Float] {
                var control: ControlResiduals?
                for app in cond.controls where sigma <= app.sigmaStart && sigma >= app.sigmaEnd {
                    let r = try app.residuals(xin, sigma, t, cond, c.2)
                    let scaled = ControlResiduals(down: try r.down.map { try Ops.mul($0, scalar: app.strength) },
                                                  mid: try Ops.mul(r.mid, scalar: app.strength))
                    if let prev = control {
                        control = ControlResiduals(down: try zip(prev.down, scaled.down).map { try Ops.add($0, $1) },
                                                   mid: try Ops.add(prev.mid, scaled.mid))
                    } else {
                        control = scaled
                    }
                }
                let o = try unet(xin, timesteps: Array(repeating: t, count: b), context: c.0, textEmbeds: c.1, timeIds: c.2, control: control)
                return denoised(o.toFloats(), x: x, sigma: sigma, prediction: prediction)
            }
            let cond = try run(pos, positive)
            guard let neg, let negative else { return cond }
            let uncond = try run(neg, negative)
            let g = Float(settings.cfg)
            return (0..<cond.count).map { uncond[$0] + (cond[$0] - uncond[$0]) * g }
        }, noise: { stepNoise.randn(count) }, progress: progress)
        return try Tensor(shape: shape, values: out.map { $0 / latentScale })
    }

    /// ComfyUI `calculate_denoised`: eps x - out*sigma; v x/(sigma^2+1) - out*sigma/sqrt(sigma^2+1); x0 out.
    static func denoised(_ out: [Float], x: [Float], sigma: Float, prediction: Prediction) -> [Float] {
        switch prediction {
        case .eps: return (0..<out.count).map { x[$0] - out[$0] * sigma }
        case .v:
            let a = 1 / (sigma * sigma + 1), c = sigma / (sigma * sigma + 1).squareRoot()
            return (0..<out.count).map { x[$0] * a - out[$0] * c }
        case .x0: return out
        }
    }

    static func repeatBatch(_ t: Tensor, _ b: Int) throws -> Tensor {
        if t.shape[0] == b { return t }
        guard t.shape[0] == 1 else { throw ModelError.invalidInput("conditioning batch \(t.shape[0]) does not match the latent batch \(b)") }
        return b == 1 ? t : try Ops.concat(Array(repeating: t, count: b), dim: 0)
    }
}
