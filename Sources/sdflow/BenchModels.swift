import Diffusion
import Foundation
import Tensor

/// Full-size SDXL components with random weights built in memory (no file), timed against the clock.
enum ModelBench {
    struct Result {
        var component: String
        var width: Int, height: Int
        var times: [Double]
        var flops: Double
        var extra: [String: Any] = [:]
    }

    static func peakRSSMB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }

    static func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) throws -> Tensor {
        var g = TorchGenerator(seed: seed)
        return try Tensor(shape: shape, values: g.randn(shape.reduce(1, *)).map { $0 * scale })
    }

    /// One untimed warm-up run (first-touch page faults, bf16 weight packing, buffer caches), as the
    /// PyTorch peer also warms up; then `runs` timed runs.
    static func timed(_ runs: Int, _ body: () throws -> Void) rethrows -> ([Double], Double) {
        try body()
        _ = Profiler.take()
        var times: [Double] = []
        var flops = 0.0
        for r in 0..<runs {
            FlopCounter.start()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            let f = FlopCounter.stop()
            if r == 0 { flops = f }
            if Profiler.enabled {
                let parts = Profiler.take()
                let total = parts.reduce(0) { $0 + $1.1 }
                FileHandle.standardError.write(Data(("profile: " + parts.map { String(format: "%@ %.2fs", $0.0 as NSString, $0.1) }.joined(separator: ", ")
                    + String(format: " (layers %.2fs of %.2fs)\n", total, times.last!)).utf8))
            }
        }
        return (times, flops)
    }

    static func unet(width: Int, height: Int, runs: Int, log: (String) -> Void) throws -> Result {
        log("building the SDXL UNet with random fp16 weights...")
        let unet = try UNet(config: .sdxl, weights: try RandomWeights.weightSet(RandomWeights.unetShapes(.sdxl), component: "UNet"))
        let x = try randomTensor([1, 4, height / 8, width / 8], seed: 1)
        let ctx = try unet.prepare(context: try randomTensor([1, 77, 2048], seed: 2))
        let pooled = try randomTensor([1, 1280], seed: 3)
        let ids: [[Float]] = [[Float(height), Float(width), 0, 0, Float(height), Float(width)]]
        log("timing UNet steps at \(width)x\(height)...")
        let (times, flops) = try timed(runs) { _ = try unet(x, timesteps: [999], context: ctx, textEmbeds: pooled, timeIds: ids) }
        return Result(component: "unet", width: width, height: height, times: times, flops: flops)
    }

    static func vae(width: Int, height: Int, runs: Int, log: (String) -> Void) throws -> Result {
        log("building the SDXL VAE with random weights...")
        let vae = try AutoencoderKL(config: .sdxl, weights: try RandomWeights.weightSet(RandomWeights.vaeShapes(.sdxl), component: "VAE", dtype: .f32))
        let z = try randomTensor([1, 4, height / 8, width / 8], seed: 4)
        log("timing VAE decodes at \(width)x\(height)...")
        let (times, flops) = try timed(runs) { _ = try vae.decode(z) }
        return Result(component: "vae", width: width, height: height, times: times, flops: flops)
    }

    static func clip(runs: Int, log: (String) -> Void) throws -> Result {
        log("building both SDXL text encoders with random fp16 weights...")
        let l = try CLIPTextModel(config: .sdxlCLIPL, weights: try RandomWeights.weightSet(RandomWeights.clipShapes(.sdxlCLIPL), component: "CLIP-L"))
        let g = try CLIPTextModel(config: .sdxlBigG, weights: try RandomWeights.weightSet(RandomWeights.clipShapes(.sdxlBigG), component: "bigG"))
        let ids = [[49406] + Array(repeating: 320, count: 20) + [49407] + Array(repeating: 49407, count: 55)]
        let (times, flops) = try timed(runs) {
            _ = try l(ids)
            _ = try g(ids)
        }
        return Result(component: "clip", width: 0, height: 0, times: times, flops: flops)
    }

    /// A 4-step Lightning-style generation: both text encoders, 4 UNet steps (euler, sgm_uniform, cfg 1), VAE decode.
    static func pipeline(width: Int, height: Int, runs: Int, log: (String) -> Void) throws -> Result {
        log("building the full SDXL pipeline with random weights...")
        let unet = try UNet(config: .sdxl, weights: try RandomWeights.weightSet(RandomWeights.unetShapes(.sdxl), component: "UNet"))
        let vae = try AutoencoderKL(config: .sdxl, weights: try RandomWeights.weightSet(RandomWeights.vaeShapes(.sdxl), component: "VAE", dtype: .f32))
        let l = try CLIPTextModel(config: .sdxlCLIPL, weights: try RandomWeights.weightSet(RandomWeights.clipShapes(.sdxlCLIPL), component: "CLIP-L"))
        let g = try CLIPTextModel(config: .sdxlBigG, weights: try RandomWeights.weightSet(RandomWeights.clipShapes(.sdxlBigG), component: "bigG"))
        let encoder = SDXLTextEncoder(clipL: l, clipG: g, tokenizer: try CLIPTokenizer.shared())
        log("timing 4-step generations at \(width)x\(height)...")
        let (times, flops) = try timed(runs) {
            let cond = try encoder.encode("a fish made out of dendrobium flowers, ultrarealistic, highly detailed, 8k")
            let latent = try KSampler.sample(unet: unet, prediction: .eps, positive: cond, negative: nil,
                                             latent: try Tensor.zeros([1, 4, height / 8, width / 8]),
                                             settings: SamplingSettings(seed: 1, steps: 4, cfg: 1, sampler: .euler, scheduler: .sgmUniform))
            _ = try vae.decode(latent)
        }
        return Result(component: "pipeline", width: width, height: height, times: times, flops: flops)
    }

    /// Opens a single-file checkpoint (memory-mapped, every key checked): seconds and resident memory.
    static func load(file: String, json: Bool) throws -> String {
        let before = currentRSSMB()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let c = try SDXLLoader.loadSingleFile(URL(fileURLWithPath: file))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let after = currentRSSMB()
        let size = ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.doubleValue ?? 0) / 1e6
        _ = c
        if json {
            let o: [String: Any] = ["component": "load", "file_mb": size.rounded(), "seconds": seconds, "rss_before_mb": before.rounded(),
                                    "rss_after_mb": after.rounded(), "peak_rss_mb": peakRSSMB().rounded()]
            return String(decoding: (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
        }
        return String(format: "load  %.0f MB file in %.2fs; resident %.0f MB before, %.0f MB after, peak %.0f MB", size, seconds, before, after, peakRSSMB())
    }

    static func currentRSSMB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Double($0) }.first ?? 0) / 1024
        }
        return 0
    }

    /// bf16 against fp32 on full-size random weights: the UNet output at one step, both text encoders'
    /// hidden states, and a whole 4-step latent.
    static func bf16Accuracy(width: Int, height: Int, json: Bool, log: (String) -> Void) throws -> String {
        func err(_ a: Tensor, _ b: Tensor) -> (Double, Double) {
            let x = a.toFloats(), y = b.toFloats()
            let scale = Double(y.map(abs).max() ?? 1)
            let rms = (y.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, y.count))).squareRoot()
            var maxd = 0.0, sum = 0.0
            for i in 0..<x.count { let d = Double(abs(x[i] - y[i])); maxd = max(maxd, d); sum += d }
            return (maxd / scale, sum / Double(max(1, x.count)) / rms)
        }
        log("building the SDXL UNet and text encoders with random weights...")
        let unet = try UNet(config: .sdxl, weights: try RandomWeights.weightSet(RandomWeights.unetShapes(.sdxl), component: "UNet"))
        let l = try CLIPTextModel(config: .sdxlCLIPL, weights: try RandomWeights.weightSet(RandomWeights.clipShapes(.sdxlCLIPL), component: "CLIP-L"))
        let g = try CLIPTextModel(config: .sdxlBigG, weights: try RandomWeights.weightSet(RandomWeights.clipShapes(.sdxlBigG), component: "bigG"))
        var lines: [String] = []
        func line(_ name: String, _ e: (Double, Double)) {
            lines.append(json ? "{\"component\":\"\(name)\",\"max_rel\":\(e.0),\"mean_rel\":\(e.1)}"
                              : String(format: "%-12@ bf16 vs fp32: max |diff| / max |fp32| = %.4f, mean |diff| / rms = %.4f", name as NSString, e.0, e.1))
        }
        let ids = [[49406] + Array(repeating: 320, count: 20) + [49407] + Array(repeating: 49407, count: 55)]
        line("clip-l", err(try ComputePrecision.with(.bf16) { try l(ids).hidden }, try ComputePrecision.with(.fp32) { try l(ids).hidden }))
        line("clip-g", err(try ComputePrecision.with(.bf16) { try g(ids).hidden }, try ComputePrecision.with(.fp32) { try g(ids).hidden }))
        let x = try randomTensor([1, 4, height / 8, width / 8], seed: 1)
        let ctx = try unet.prepare(context: try randomTensor([1, 77, 2048], seed: 2))
        let pooled = try randomTensor([1, 1280], seed: 3)
        let tid: [[Float]] = [[Float(height), Float(width), 0, 0, Float(height), Float(width)]]
        log("UNet step at \(width)x\(height) in both precisions...")
        let u32 = try ComputePrecision.with(.fp32) { try unet(x, timesteps: [999], context: ctx, textEmbeds: pooled, timeIds: tid) }
        let u16 = try ComputePrecision.with(.bf16) { try unet(x, timesteps: [999], context: try unet.prepare(context: ctx.context), textEmbeds: pooled, timeIds: tid) }
        line("unet", err(u16, u32))
        log("4-step latents in both precisions...")
        let enc = SDXLTextEncoder(clipL: l, clipG: g, tokenizer: try CLIPTokenizer.shared())
        func latent() throws -> Tensor {
            try KSampler.sample(unet: unet, prediction: .eps, positive: try enc.encode("a fish made out of dendrobium flowers"), negative: nil,
                                latent: try Tensor.zeros([1, 4, height / 8, width / 8]),
                                settings: SamplingSettings(seed: 1, steps: 4, cfg: 1, sampler: .euler, scheduler: .sgmUniform))
        }
        line("4-step latent", err(try ComputePrecision.with(.bf16) { try latent() }, try ComputePrecision.with(.fp32) { try latent() }))
        log("VAE decode at \(width)x\(height) in both precisions...")
        let vae = try AutoencoderKL(config: .sdxl, weights: try RandomWeights.weightSet(RandomWeights.vaeShapes(.sdxl), component: "VAE", dtype: .f32))
        let z = try randomTensor([1, 4, height / 8, width / 8], seed: 4)
        line("vae decode", err(try ComputePrecision.with(.bf16) { try vae.decode(z) }, try ComputePrecision.with(.fp32) { try vae.decode(z) }))
        return lines.joined(separator: "\n")
    }

    static func report(_ r: Result, json: Bool, threads: Int, precision: String) -> String {
        let sorted = r.times.sorted()
        let median = sorted[sorted.count / 2]
        let gflops = r.flops / median / 1e9
        if json {
            var o: [String: Any] = ["component": r.component, "width": r.width, "height": r.height, "precision": precision, "threads": threads,
                                    "median_s": median, "min_s": sorted.first!, "max_s": sorted.last!, "gflops": gflops.rounded(),
                                    "tflop": r.flops / 1e12, "peak_rss_mb": peakRSSMB().rounded()]
            for (k, v) in r.extra { o[k] = v }
            let d = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data()
            return String(decoding: d, as: UTF8.self)
        }
        let size = r.width > 0 ? "\(r.width)x\(r.height)" : "77 tokens"
        return String(format: "%-9@ %-10@ %@  median %8.3fs  min %8.3fs  max %8.3fs  %7.1f GFLOP/s  (%.2f TFLOP)  peak RSS %6.0f MB",
                      r.component as NSString, size as NSString, precision as NSString, median, sorted.first!, sorted.last!, gflops, r.flops / 1e12, peakRSSMB())
    }
}
