import Foundation

/// What a model's output means (ComfyUI `ModelSamplingDiscrete` sampling types).
public enum Prediction: String, CaseIterable, Sendable {
    case eps
    case v = "v_prediction"
    case x0
}

/// ComfyUI's sampler names that sdflow implements. Each is a pure, stateless loop over the sigmas,
/// written after k-diffusion's functions as ComfyUI ships them (comfy/k_diffusion/sampling.py).
public enum SamplerKind: String, CaseIterable, Sendable {
    case euler
    case eulerAncestral = "euler_ancestral"
    case dpmpp2m = "dpmpp_2m"
    case lcm
}

/// Runs a sampler. `denoise(x, sigma, step)` returns the model's denoised estimate for the latent
/// `x` (model space, flat) at `sigma`; `noise()` gives fresh noise of the latent's size (ancestral and
/// LCM steps; ComfyUI seeds it with the KSampler seed). `progress(step, total)` after every step.
public enum Sampler {
    public static func sample(_ kind: SamplerKind, x start: [Float], sigmas: [Float],
                              denoise: (_ x: [Float], _ sigma: Float, _ step: Int) throws -> [Float],
                              noise: () -> [Float],
                              progress: (_ step: Int, _ total: Int) throws -> Void = { _, _ in }) throws -> [Float] {
        var x = start
        let steps = max(0, sigmas.count - 1)
        var oldDenoised: [Float]?
        for i in 0..<steps {
            let s = sigmas[i], sNext = sigmas[i + 1]
            let d = try denoise(x, s, i)
            switch kind {
            case .euler:
                // x + (x - denoised) / sigma * (sigma_next - sigma)
                let dt = sNext - s
                for j in 0..<x.count { x[j] = x[j] + ((x[j] - d[j]) / s) * dt }
            case .eulerAncestral:
                let (down, up) = ancestralStep(s, sNext)
                if down == 0 {
                    x = d
                    break
                }
                let dt = down - s
                for j in 0..<x.count { x[j] = x[j] + ((x[j] - d[j]) / s) * dt }
                if sNext > 0 {
                    let n = noise()
                    for j in 0..<x.count { x[j] = x[j] + n[j] * up }
                }
            case .dpmpp2m:
                let t = -logf(s), tNext = -logf(sNext)
                let h = tNext - t
                let ratio = expf(-tNext) / expf(-t)
                let coef = -expm1f(-h)   // x = ratio * x - expm1(-h) * D
                if let old = oldDenoised, sNext != 0 {
                    let hLast = t - (-logf(sigmas[i - 1]))
                    let r = hLast / h
                    let a = 1 + 1 / (2 * r), b = 1 / (2 * r)
                    for j in 0..<x.count { x[j] = ratio * x[j] + coef * (a * d[j] - b * old[j]) }
                } else {
                    for j in 0..<x.count { x[j] = ratio * x[j] + coef * d[j] }
                }
                oldDenoised = d
            case .lcm:
                x = d
                if sNext > 0 {
                    let n = noise()
                    for j in 0..<x.count { x[j] = x[j] + n[j] * sNext }
                }
            }
            try progress(i + 1, steps)
        }
        return x
    }

    /// k-diffusion `get_ancestral_step` with eta 1.
    static func ancestralStep(_ from: Float, _ to: Float) -> (down: Float, up: Float) {
        let up = min(to, (to * to * (from * from - to * to) / (from * from)).squareRoot())
        let down = (to * to - up * up).squareRoot()
        return (down, up)
    }
}
