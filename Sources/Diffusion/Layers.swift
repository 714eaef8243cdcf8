import Foundation
import Tensor

/// A low-rank update W' = W + scale * up @ down, applied as an extra path (y += scale * up(down(x)))
/// so the base weights are never copied.
public struct LoRAPatch: Sendable {
    /// [rank, in] (linear) or [rank, in, kh, kw] (conv).
    public var down: Tensor
    /// [out, rank] (linear) or [out, rank, 1, 1] (conv).
    public var up: Tensor
    /// strength * alpha / rank.
    public var scale: Float
    public init(down: Tensor, up: Tensor, scale: Float) {
        self.down = down
        self.up = up
        self.scale = scale
    }
}

/// `torch.nn.Linear` on a stored [out, in] weight (f32/f16/bf16), plus LoRA paths.
public struct Linear: Sendable {
    public var weight: Tensor
    public var bias: Tensor?
    public var loras: [LoRAPatch] = []
    /// Whether this layer may compute in bf16 when `ComputePrecision.current` is bf16.
    var lowPrecision = false
    let packed = PackedWeightBox()

    public var inFeatures: Int { weight.shape.count == 2 ? weight.shape[1] : 0 }
    public var outFeatures: Int { weight.shape.count == 2 ? weight.shape[0] : 0 }

    let packedGEGLU = PackedWeightBox(gegluInterleaved: true)

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try callAsFunction(x, residual: nil) }

    /// y = x W^T + b (+ LoRA paths) (+ residual): in bf16 mode the residual is added in the GEMM's
    /// store; in fp32 by `Ops.add` (the same sum: y + residual).
    func callAsFunction(_ x: Tensor, residual: Tensor?) throws -> Tensor {
        FlopCounter.add(2 * Double(x.count) * Double(outFeatures))
        let bf16 = lowPrecision && ComputePrecision.useBF16
        var y = try Profiler.measure(Profiler.enabled ? "linear M=\(x.count / max(1, inFeatures)) K=\(inFeatures) N=\(outFeatures) \(bf16 ? "bf16" : "\(weight.dtype)")" : "linear") {
            bf16 ? try Ops.linearBF16(x, weight: packed.get(weight), bias: bias, residual: residual)
                 : try Ops.linear(x, weight: weight, bias: bias)
        }
        for p in loras {
            let down = p.down.rank == 4 ? try p.down.reshaped([p.down.shape[0], p.down.shape[1]]) : p.down
            let d = try Ops.linear(x, weight: down)
            let u = try Ops.linear(d, weight: p.up.rank == 4 ? p.up.reshaped([p.up.shape[0], p.up.shape[1]]) : p.up)
            y = try Ops.add(y, Ops.mul(u, scalar: p.scale))
        }
        if let residual, !bf16 { y = try Profiler.measure("add") { try Ops.add(residual, y) } }
        return y
    }

    /// GEGLU(x W^T + b) for a feed-forward input projection [2H, K]: in bf16 mode without LoRA paths
    /// (H a multiple of 16) one fused GEMM whose store applies the activation and writes bf16;
    /// otherwise the projection followed by `Ops.geglu`.
    func geglu(_ x: Tensor) throws -> Tensor {
        if lowPrecision && ComputePrecision.useBF16 && loras.isEmpty && weight.rank == 2 && outFeatures % 32 == 0 {
            FlopCounter.add(2 * Double(x.count) * Double(outFeatures))
            return try Profiler.measure(Profiler.enabled ? "linear+geglu M=\(x.count / max(1, inFeatures)) K=\(inFeatures) N=\(outFeatures) bf16" : "linear") {
                try Ops.linearGEGLUBF16(x, weight: packedGEGLU.get(weight), bias: bias)
            }
        }
        let h = try callAsFunction(x)
        return try Profiler.measure("geglu") { try Ops.geglu(h) }
    }
}

/// `torch.nn.Conv2d` (NCHW) with its stride and padding, plus LoRA paths (down: same geometry, up: 1x1).
public struct Conv2d: Sendable {
    public var weight: Tensor
    public var bias: Tensor?
    public var stride: Int
    public var padding: Padding2D
    public var loras: [LoRAPatch] = []
    var lowPrecision = false
    let packed = PackedWeightBox()

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try run(x, .identity) }

    /// self(norm(x, silu: silu)). Without LoRA paths the normalisation (+ SiLU) is applied while the
    /// convolution makes its copy of the input (bf16: its bf16 NHWC copy; fp32: the shifted 3x3
    /// convolution's padded planes), so the normalised fp32 tensor is never written (the same values
    /// either way).
    /// `residual`: added to the result (`Ops.add(residual, y)`); in bf16 mode without LoRA paths, in
    /// the convolution's store.
    func callAsFunction(_ x: Tensor, normalizedBy norm: GroupNorm, silu: Bool, residual: Tensor? = nil) throws -> Tensor {
        guard fusesInput else { return try run(norm(x, silu: silu), .identity, residual: residual) }
        let affine = try Profiler.measure("groupnorm") {
            try Ops.groupNormAffine(x, groups: norm.groups, weight: norm.weight, bias: norm.bias, eps: norm.eps)
        }
        return try run(x, ConvInputTransform(affine: affine, silu: silu), residual: residual)
    }

    /// self(upsampleNearest2x(x)); without LoRA paths the upsampled tensor is never written (see above).
    func callAsFunction(upsampling x: Tensor) throws -> Tensor {
        guard fusesInput else { return try self(Profiler.measure("upsample") { try Ops.upsampleNearest2x(x) }) }
        return try run(x, ConvInputTransform(upsample2x: true))
    }

    /// Whether input transforms passed to `callAsFunction(_:normalizedBy:silu:residual:)` are applied
    /// inside the convolution (no LoRA paths) rather than by separate ops; a residual is added in the
    /// store of bf16 convolutions only.
    var fusesInput: Bool {
        Conv2d.inputFusion && weight.rank == 4 && loras.isEmpty
    }

    /// Whether a residual passed with an input transform is added in the convolution's store (bf16).
    var fusesResidual: Bool { fusesInput && lowPrecision && ComputePrecision.useBF16 }

    /// Off with `SDFLOW_FUSE_CONV_INPUT=0` (kept for A/B measurements).
    static let inputFusion = ProcessInfo.processInfo.environment["SDFLOW_FUSE_CONV_INPUT"] != "0"

    private func run(_ x: Tensor, _ transform: ConvInputTransform, residual: Tensor? = nil) throws -> Tensor {
        let bf16 = lowPrecision && ComputePrecision.useBF16 && weight.rank == 4
        let fusedResidual = fusesResidual ? residual : nil
        var key = "conv"
        if Profiler.enabled {   // e.g. "conv3x3 bf16 128->128 @1024x1024 up2x"
            key = (weight.rank == 4 && weight.shape[2] == 1 ? "conv1x1" : "conv3x3") + (bf16 ? " bf16" : "")
            if x.rank == 4, weight.rank == 4 {
                key += " \(x.shape[1])->\(weight.shape[0]) @\(x.shape[2])x\(x.shape[3])" + (transform.upsample2x ? " up2x" : "")
            }
        }
        var y = try Profiler.measure(key) {
            bf16 ? try Ops.conv2dBF16(x, weight: packed.get(weight), kernel: (weight.shape[2], weight.shape[3]), bias: bias,
                                      stride: stride, padding: padding, input: transform, residual: fusedResidual)
                 : try Ops.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, input: transform)
        }
        FlopCounter.add(2 * Double(y.count) * Double(weight.count / max(1, weight.shape[0])))
        for p in loras {
            let down = p.down.rank == 2 ? try p.down.reshaped(p.down.shape + [1, 1]) : p.down
            let d = try Ops.conv2d(x, weight: down, stride: stride, padding: down.shape[2] == 1 ? .zero : padding)
            let up = p.up.rank == 2 ? try p.up.reshaped(p.up.shape + [1, 1]) : p.up
            let u = try Ops.conv2d(d, weight: up)
            y = try Ops.add(y, Ops.mul(u, scalar: p.scale))
        }
        if let residual, fusedResidual == nil { y = try Profiler.measure("add") { try Ops.add(residual, y) } }
        return y
    }
}

public struct GroupNorm: Sendable {
    public var groups: Int
    public var eps: Float
    public var weight: Tensor
    public var bias: Tensor

    public func callAsFunction(_ x: Tensor, silu: Bool = false) throws -> Tensor {
        try Profiler.measure("groupnorm") { try Ops.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: silu) }
    }
}

public struct LayerNorm: Sendable {
    public var eps: Float
    public var weight: Tensor
    public var bias: Tensor

    public func callAsFunction(_ x: Tensor, bf16Output: Bool = false) throws -> Tensor {
        try Profiler.measure("layernorm") { try Ops.layerNorm(x, weight: weight, bias: bias, eps: eps, outputBF16: bf16Output) }
    }
}
