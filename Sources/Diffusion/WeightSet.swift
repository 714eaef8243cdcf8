import Foundation
import Tensor

/// Named weights of one model component, in the names our models use (diffusers / transformers
/// naming), each remembering where it came from (file and key) for error messages. Tensors are views
/// into memory-mapped files, in their stored dtype.
public struct WeightSet: Sendable {
    public var component: String
    public var file: String
    public var tensors: [String: Tensor]
    /// Our name -> the key in the file (after any renaming or splitting).
    public var origin: [String: String]

    public init(component: String, file: String, tensors: [String: Tensor] = [:], origin: [String: String] = [:]) {
        self.component = component
        self.file = file
        self.tensors = tensors
        self.origin = origin
    }

    public mutating func add(_ name: String, _ t: Tensor, from key: String) {
        tensors[name] = t
        origin[name] = key
    }

    public var isEmpty: Bool { tensors.isEmpty }
    public var names: [String] { tensors.keys.sorted() }
}

/// Hands weights to a model being built, checking shapes, and at the end reports every missing,
/// unexpected or wrongly shaped key at once.
public final class WeightReader {
    let set: WeightSet
    private(set) var used = Set<String>()
    private var missing: [String] = []
    private var shapeErrors: [ModelError] = []
    /// LoRA patches by module name (our naming); the ones consumed are recorded.
    let patches: [String: [LoRAPatch]]
    private(set) var usedPatches = Set<String>()

    /// Layers built by this reader may compute in bf16 (UNet, ControlNet, text encoders; not the VAE).
    let lowPrecision: Bool

    public init(_ set: WeightSet, patches: [String: [LoRAPatch]] = [:], lowPrecision: Bool = true) {
        self.set = set
        self.patches = patches
        self.lowPrecision = lowPrecision
    }

    /// The tensor `name`; records a problem (and returns an empty placeholder) when missing or misshapen.
    public func take(_ name: String, shape: [Int]? = nil) -> Tensor {
        guard let t = set.tensors[name] else {
            missing.append(name)
            return Self.placeholder(shape ?? [0])
        }
        used.insert(name)
        if let shape, t.shape != shape {
            shapeErrors.append(.shapeMismatch(component: set.component, key: set.origin[name] ?? name, expected: shape,
                                              got: t.shape, file: set.file))
            return Self.placeholder(shape)
        }
        return t
    }

    public func has(_ name: String) -> Bool { set.tensors[name] != nil }

    public func optional(_ name: String, shape: [Int]? = nil) -> Tensor? {
        has(name) ? take(name, shape: shape) : nil
    }

    static func placeholder(_ shape: [Int]) -> Tensor {
        (try? Tensor.zeros(shape.map { max(0, min($0, 4096)) })) ?? (try! Tensor.zeros([0]))
    }

    public func linear(_ name: String, inFeatures: Int? = nil, outFeatures: Int? = nil, bias: Bool = true) -> Linear {
        let w = take("\(name).weight")
        if let i = inFeatures, let o = outFeatures, w.shape != [o, i] {
            shapeErrors.append(.shapeMismatch(component: set.component, key: set.origin["\(name).weight"] ?? name,
                                              expected: [o, i], got: w.shape, file: set.file))
        }
        let b = bias ? take("\(name).bias") : nil
        return Linear(weight: w, bias: b, loras: patch(name), lowPrecision: lowPrecision)
    }

    public func conv(_ name: String, stride: Int = 1, padding: Padding2D = Padding2D(1)) -> Conv2d {
        let w = take("\(name).weight")
        let b = take("\(name).bias")
        return Conv2d(weight: w, bias: b, stride: stride, padding: padding, loras: patch(name), lowPrecision: lowPrecision)
    }

    public func groupNorm(_ name: String, groups: Int, eps: Float) -> GroupNorm {
        GroupNorm(groups: groups, eps: eps, weight: take("\(name).weight"), bias: take("\(name).bias"))
    }

    public func layerNorm(_ name: String, eps: Float = 1e-5) -> LayerNorm {
        LayerNorm(eps: eps, weight: take("\(name).weight"), bias: take("\(name).bias"))
    }

    func patch(_ name: String) -> [LoRAPatch] {
        guard let p = patches[name] else { return [] }
        usedPatches.insert(name)
        return p
    }

    /// Throws if any key was missing, misshapen, or left unused.
    public func finish() throws {
        if !missing.isEmpty {
            throw ModelError.missingKeys(component: set.component, keys: missing.map { set.origin[$0] ?? $0 }, file: set.file)
        }
        if let e = shapeErrors.first { throw e }
        let unused = set.tensors.keys.filter { !used.contains($0) }.sorted()
        if !unused.isEmpty {
            throw ModelError.unexpectedKeys(component: set.component, keys: unused.map { set.origin[$0] ?? $0 }, file: set.file)
        }
    }
}

extension WeightSet {
    /// Drops this component's memory-mapped weight pages from the process (madvise DONTNEED): they stay
    /// in the page cache and fault back in when used again. Lets a pipeline hold only the stage it runs
    /// (text encoders, then UNet, then VAE) in its resident set.
    /// With `dropPackings` the component's bf16 packings are dropped as well (see `ModelMemory`).
    public func releaseResidentPages(dropPackings: Bool = false) {
        for t in tensors.values { releasePages(of: t) }
        if dropPackings { releasePackedWeights() }
    }

    /// Drops the bf16 packings made from this component's weights (they are made again on next use);
    /// returns how many were dropped.
    @discardableResult
    public func releasePackedWeights() -> Int {
        PackedWeightRegistry.release(weightsAt: Set(tensors.values.map { UInt(bitPattern: $0.rawPointer) }))
    }
}

extension UNet {
    /// See `WeightSet.releaseResidentPages`.
    public func releaseResidentPages(dropPackings: Bool = false) { weights.releaseResidentPages(dropPackings: dropPackings) }
    @discardableResult public func releasePackedWeights() -> Int { weights.releasePackedWeights() }
}

extension CLIPTextModel {
    public func releaseResidentPages(dropPackings: Bool = false) { weights.releaseResidentPages(dropPackings: dropPackings) }
    @discardableResult public func releasePackedWeights() -> Int { weights.releasePackedWeights() }
}

extension AutoencoderKL {
    public func releaseResidentPages(dropPackings: Bool = false) { weights.releaseResidentPages(dropPackings: dropPackings) }
    @discardableResult public func releasePackedWeights() -> Int { weights.releasePackedWeights() }
}

extension ControlNet {
    public func releaseResidentPages(dropPackings: Bool = false) { weights.releaseResidentPages(dropPackings: dropPackings) }
    @discardableResult public func releasePackedWeights() -> Int { weights.releasePackedWeights() }
}
