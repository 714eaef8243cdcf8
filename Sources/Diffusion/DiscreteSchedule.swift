import Foundation

/// torch.linspace (float32) as torch's CPU kernel computes it (checked against torch 2.15 for 2...80
/// points): the first half counts up from `start`, the second half down from `end`, each element one
/// fused multiply-add (the kernel's scalar expression, contracted by the compiler).
func torchLinspace(_ start: Float, _ end: Float, _ steps: Int) -> [Float] {
    guard steps > 1 else { return steps == 1 ? [start] : [] }
    let step = (end - start) / Float(steps - 1)
    let half = steps / 2
    return (0..<steps).map { i in
        i < half ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(steps - i - 1))
    }
}

func torchLinspace(_ start: Double, _ end: Double, _ steps: Int) -> [Double] {
    guard steps > 1 else { return steps == 1 ? [start] : [] }
    let step = (end - start) / Double(steps - 1)
    let half = steps / 2
    return (0..<steps).map { i in i < half ? start + step * Double(i) : end - step * Double(steps - i - 1) }
}

/// The discrete noise schedule of SDXL as ComfyUI's `ModelSamplingDiscrete` builds it: betas =
/// linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 in float64, alphas_cumprod = cumprod(1 - betas),
/// sigma_t = sqrt((1 - abar) / abar), stored as float32; log-sigmas in float32.
public struct DiscreteSchedule: Sendable {
    public let sigmas: [Float]
    public let logSigmas: [Float]

    public static let sdxl = DiscreteSchedule(linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000)

    public init(linearStart: Double, linearEnd: Double, timesteps: Int) {
        let betas = torchLinspace(linearStart.squareRoot(), linearEnd.squareRoot(), timesteps).map { $0 * $0 }
        var cum = 1.0
        var s: [Float] = []
        var ls: [Float] = []
        for b in betas {
            cum *= 1 - b
            let sigma = ((1 - cum) / cum).squareRoot()
            s.append(Float(sigma))
            ls.append(Float(log(sigma)))   // log of the float64 sigma, then rounded (as ComfyUI)
        }
        sigmas = s
        logSigmas = ls
    }

    public var sigmaMin: Float { sigmas[0] }
    public var sigmaMax: Float { sigmas[sigmas.count - 1] }

    /// ComfyUI `ModelSamplingDiscrete.timestep`: the integer step whose log-sigma is nearest (first on ties).
    public func timestep(_ sigma: Float) -> Float {
        let l = logf(sigma)
        var best = 0
        var bestDist = Float.infinity
        for (i, ls) in logSigmas.enumerated() {
            let d = abs(l - ls)
            if d < bestDist {
                bestDist = d
                best = i
            }
        }
        return Float(best)
    }

    /// ComfyUI `ModelSamplingDiscrete.sigma`: log-sigma interpolated linearly at a fractional timestep.
    public func sigma(_ t: Float) -> Float {
        let tc = min(max(t, 0), Float(sigmas.count - 1))
        let lo = Int(tc.rounded(.down)), hi = Int(tc.rounded(.up))
        let w = tc - tc.rounded(.down)
        let ls = (1 - w) * logSigmas[lo] + w * logSigmas[hi]
        return expf(ls)
    }

    /// The sigma at which a percent of sampling is reached (ComfyUI `percent_to_sigma`, used by
    /// ControlNet start/end): 1 - percent as a fraction of the 999 steps.
    public func percentToSigma(_ percent: Double) -> Float {
        if percent <= 0 { return 999_999_999.9 }
        if percent >= 1 { return 0 }
        return sigma(Float((1 - percent) * 999))
    }
}
