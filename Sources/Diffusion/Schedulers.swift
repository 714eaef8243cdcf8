import Foundation

/// ComfyUI's scheduler names; each turns a step count into sigmas (descending, ending in 0).
/// Pure functions of the discrete schedule, matching comfy/samplers.py and k-diffusion to float32.
public enum Scheduler: String, CaseIterable, Sendable {
    case normal, karras, exponential
    case sgmUniform = "sgm_uniform"
    case simple
    case ddimUniform = "ddim_uniform"
    case beta

    public func sigmas(_ s: DiscreteSchedule, steps: Int) -> [Float] {
        guard steps > 0 else { return [] }
        switch self {
        case .normal: return Self.normal(s, steps: steps, sgm: false)
        case .sgmUniform: return Self.normal(s, steps: steps, sgm: true)
        case .karras:
            let rho = 7.0
            let minInv = pow(Double(s.sigmaMin), 1 / rho), maxInv = pow(Double(s.sigmaMax), 1 / rho)
            let ramp = torchLinspace(Float(0), Float(1), steps)
            // float32 tensor arithmetic with Python-float scalars (ComfyUI/k-diffusion get_sigmas_karras).
            // The Python-float difference is rounded once to float32, as a scalar operand of tensor math.
            let mx = Float(maxInv), diff = Float(minInv - maxInv)
            return ramp.map { r in powf(mx + r * diff, Float(rho)) } + [0]
        case .exponential:
            let l = torchLinspace(Float(log(Double(s.sigmaMax))), Float(log(Double(s.sigmaMin))), steps)
            return l.map { expf($0) } + [0]
        case .simple:
            let ss = Double(s.sigmas.count) / Double(steps)
            var out: [Float] = []
            for x in 0..<steps { out.append(s.sigmas[s.sigmas.count - 1 - Int(Double(x) * ss)]) }
            return out + [0]
        case .ddimUniform:
            var n = steps
            var sigs: [Float]
            var x = 1
            if abs(s.sigmas[x]) <= 0.00001 {
                n += 1
                sigs = []
            } else {
                sigs = [0]
            }
            let ss = max(s.sigmas.count / n, 1)
            while x < s.sigmas.count {
                sigs.append(s.sigmas[x])
                x += ss
            }
            return sigs.reversed()
        case .beta:
            let total = Double(s.sigmas.count - 1)
            var out: [Float] = []
            var last = -1.0
            for i in 0..<steps {
                let ts = 1 - Double(i) * (1.0 / Double(steps))   // numpy linspace(0, 1, steps, endpoint=False)
                let t = (BetaDistribution.ppf(ts, a: 0.6, b: 0.6) * total).rounded(.toNearestOrEven)
                if t != last {
                    out.append(s.sigmas[Int(t)])
                    last = t
                }
            }
            return out + [0]
        }
    }

    /// comfy `normal_scheduler`: timesteps linspace(t(sigma_max), t(sigma_min)) (sgm: steps + 1 points
    /// without the last), sigma at each, then a final 0.
    static func normal(_ s: DiscreteSchedule, steps: Int, sgm: Bool) -> [Float] {
        let start = s.timestep(s.sigmaMax), end = s.timestep(s.sigmaMin)
        var appendZero = true
        let ts: [Float]
        if sgm {
            ts = Array(torchLinspace(start, end, steps + 1).dropLast())
        } else {
            var n = steps
            if abs(s.sigma(end)) <= 0.00001 {
                n += 1
                appendZero = false
            }
            ts = torchLinspace(start, end, n)
        }
        var out = ts.map { s.sigma($0) }
        if appendZero { out.append(0) }
        return out
    }

    /// ComfyUI KSampler's `denoise`: below 1, build the schedule for int(steps / denoise) steps and keep
    /// its last steps + 1 sigmas.
    public func sigmas(_ s: DiscreteSchedule, steps: Int, denoise: Double) -> [Float] {
        if denoise > 0.9999 { return sigmas(s, steps: steps) }
        if denoise <= 0 { return [] }
        let total = Int(Double(steps) / denoise)
        let all = sigmas(s, steps: total)
        return Array(all.suffix(steps + 1))
    }
}

/// The beta distribution's quantile function (scipy.stats.beta.ppf), by bisection on the regularized
/// incomplete beta function (Lentz continued fraction); accurate to ~1e-12, which is what rounding the
/// `beta` scheduler's timesteps needs.
enum BetaDistribution {
    static func ppf(_ p: Double, a: Double, b: Double) -> Double {
        if p <= 0 { return 0 }
        if p >= 1 { return 1 }
        if a == b && p == 0.5 { return 0.5 }   // exact by symmetry (scipy returns exactly 0.5)
        var lo = 0.0, hi = 1.0
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if cdf(mid, a: a, b: b) < p { lo = mid } else { hi = mid }
            if hi - lo < 1e-15 { break }
        }
        return (lo + hi) / 2
    }

    static func cdf(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lbeta = lgamma(a) + lgamma(b) - lgamma(a + b)
        let front = exp(log(x) * a + log(1 - x) * b - lbeta)
        if x < (a + 1) / (a + b + 2) { return front * continuedFraction(x, a: a, b: b) / a }
        return 1 - front * continuedFraction(1 - x, a: b, b: a) / b
    }

    static func continuedFraction(_ x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        var f = 1.0, c = 1.0, d = 0.0
        for i in 0...400 {
            let m = Double(i / 2)
            var num: Double
            if i == 0 { num = 1 }
            else if i % 2 == 0 { num = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)) }
            else { num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1)) }
            d = 1 + num * d
            if abs(d) < tiny { d = tiny }
            d = 1 / d
            c = 1 + num / c
            if abs(c) < tiny { c = tiny }
            let cd = c * d
            f *= cd
            if abs(1 - cd) < 1e-15 { break }
        }
        return f - 1
    }
}
