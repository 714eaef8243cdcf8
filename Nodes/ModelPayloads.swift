import Diffusion
import Foundation
import Tensor
import Workflow

/// MODEL: a UNet with how its output is read and the noise schedule.
public struct ModelValue: Payload {
    public var unet: UNet
    public var prediction: Prediction
    public var schedule: DiscreteSchedule = .sdxl
    public var byteCount: Int { 0 }
}

/// CLIP: SDXL's two text encoders and the tokenizer.
public struct CLIPValue: Payload {
    public var encoder: SDXLTextEncoder
    public var byteCount: Int { 0 }
}

/// VAE: the autoencoder (always fp32 compute).
public struct VAEValue: Payload {
    public var vae: AutoencoderKL
    public var byteCount: Int { 0 }
}

/// CONDITIONING: SDXL text conditioning, plus any ControlNets applied to it.
public struct ConditioningValue: PersistablePayload {
    public static let persistenceTag = "sdflow.conditioning.sdxl.v1"
    public var cond: Conditioning
    public init(_ cond: Conditioning) { self.cond = cond }
    public var byteCount: Int { (cond.context.count + cond.pooled.count) * 4 }
    public var isPersistable: Bool { cond.controls.isEmpty }

    public func encoded() throws -> Data {
        var d = Data()
        let size = cond.size.map { [1, $0.width, $0.height, $0.cropW, $0.cropH, $0.targetWidth, $0.targetHeight] } ?? [0, 0, 0, 0, 0, 0, 0]
        appendTensor(&d, cond.context)
        appendTensor(&d, cond.pooled)
        for v in size { appendInt(&d, v) }
        return d
    }

    public static func decoded(from data: Data) throws -> ConditioningValue {
        var r = ByteReader(data)
        let context = try r.tensor()
        let pooled = try r.tensor()
        let s = try (0..<7).map { _ in try r.int() }
        var c = Conditioning(context: context, pooled: pooled)
        if s[0] == 1 { c.size = SizeConditioning(width: s[1], height: s[2], cropW: s[3], cropH: s[4], targetWidth: s[5], targetHeight: s[6]) }
        guard r.atEnd else { throw PayloadDecodeError(description: "trailing bytes in conditioning") }
        return ConditioningValue(c)
    }
}

/// LATENT: [B, 4, h, w] float32 in VAE space (ComfyUI's convention; SaveLatent files interoperate).
public struct LatentValue: PersistablePayload {
    public static let persistenceTag = "sdflow.latent.f32.v1"
    public var samples: Tensor
    public init(_ samples: Tensor) { self.samples = samples }
    public var byteCount: Int { samples.count * 4 }
    public func encoded() throws -> Data {
        var d = Data()
        appendTensor(&d, samples)
        return d
    }
    public static func decoded(from data: Data) throws -> LatentValue {
        var r = ByteReader(data)
        let t = try r.tensor()
        guard r.atEnd, t.rank == 4 else { throw PayloadDecodeError(description: "bad latent entry") }
        return LatentValue(t)
    }
}

func appendInt(_ d: inout Data, _ v: Int) { withUnsafeBytes(of: Int64(v).littleEndian) { d.append(contentsOf: $0) } }

/// rank, dims, then float32 values (little-endian).
func appendTensor(_ d: inout Data, _ t: Tensor) {
    appendInt(&d, t.rank)
    for s in t.shape { appendInt(&d, s) }
    t.toFloats().withUnsafeBytes { d.append(contentsOf: $0) }
}

struct ByteReader {
    let data: Data
    var pos: Int
    init(_ data: Data) {
        self.data = data
        pos = data.startIndex
    }
    var atEnd: Bool { pos == data.endIndex }
    mutating func int() throws -> Int {
        guard data.endIndex - pos >= 8 else { throw PayloadDecodeError(description: "truncated entry") }
        let v = data.subdata(in: pos..<(pos + 8)).withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
        pos += 8
        return Int(v)
    }
    mutating func tensor() throws -> Tensor {
        let rank = try int()
        guard (0...8).contains(rank) else { throw PayloadDecodeError(description: "bad tensor rank") }
        let shape = try (0..<rank).map { _ in try int() }
        guard shape.allSatisfy({ $0 >= 0 && $0 < 1 << 24 }) else { throw PayloadDecodeError(description: "bad tensor shape") }
        let n = shape.reduce(1, *)
        guard n < 1 << 30, data.endIndex - pos >= n * 4 else { throw PayloadDecodeError(description: "truncated tensor") }
        var vals = [Float](repeating: 0, count: n)
        vals.withUnsafeMutableBytes { data.copyBytes(to: $0, from: pos..<(pos + n * 4)) }
        pos += n * 4
        return try Tensor(shape: shape, values: vals)
    }
}

/// Process-wide cache of opened model files, so loading the same file twice reuses its mapping.
final class ModelFileCache: @unchecked Sendable {
    static let shared = ModelFileCache()
    private let lock = NSLock()
    private var entries: [String: Any] = [:]
    private var order: [String] = []

    func get<T>(_ key: String, _ make: () throws -> T) throws -> T {
        if let v = lock.withLock({ entries[key] as? T }) { return v }
        let v = try make()
        lock.withLock {
            entries[key] = v
            order.removeAll { $0 == key }
            order.append(key)
            while order.count > 8 { entries.removeValue(forKey: order.removeFirst()) }
        }
        return v
    }

    static func key(_ parts: URL?...) -> String {
        parts.map { u in
            guard let u else { return "-" }
            let a = try? FileManager.default.attributesOfItem(atPath: u.path)
            return "\(u.path)|\((a?[.size] as? NSNumber)?.intValue ?? -1)|\((a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        }.joined(separator: "+")
    }
}

/// Turns model-loading errors into node errors naming the input.
func modelError(_ error: Error, input: String) -> Error {
    if error is NodeError || error is CancelledError { return error }
    return NodeError("\(error)", input: input)
}
