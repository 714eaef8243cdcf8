import Foundation
import Imaging
import Workflow

/// IMAGE values: ComfyUI's [batch, height, width, 3] float 0...1.
public struct ImageValue: PersistablePayload {
    public static let persistenceTag = "sdflow.image.f32.v1"
    public var batch: ImageBatch
    public init(_ batch: ImageBatch) { self.batch = batch }
    public var byteCount: Int { batch.byteCount }
    public func encoded() throws -> Data { encodeBatch(batch) }
    public static func decoded(from data: Data) throws -> ImageValue { ImageValue(try decodeBatch(data)) }
}

/// MASK values: [batch, height, width] float 0...1 (stored with one channel).
public struct MaskValue: PersistablePayload {
    public static let persistenceTag = "sdflow.mask.f32.v1"
    public var batch: ImageBatch
    public init(_ batch: ImageBatch) { self.batch = batch }
    public var byteCount: Int { batch.byteCount }
    public func encoded() throws -> Data { encodeBatch(batch) }
    public static func decoded(from data: Data) throws -> MaskValue { MaskValue(try decodeBatch(data)) }
}

struct PayloadDecodeError: Error, CustomStringConvertible {
    var description: String
}

/// Four little-endian Int64 dimensions, then the float32 samples little-endian.
func encodeBatch(_ b: ImageBatch) -> Data {
    var d = Data(capacity: 32 + b.pixels.count * 4)
    for v in [b.batch, b.height, b.width, b.channels] { withUnsafeBytes(of: Int64(v).littleEndian) { d.append(contentsOf: $0) } }
    b.pixels.withUnsafeBytes { d.append(contentsOf: $0) }
    return d
}

func decodeBatch(_ d: Data) throws -> ImageBatch {
    guard d.count >= 32 else { throw PayloadDecodeError(description: "image entry too short") }
    let dims: [Int] = (0..<4).map { i in
        d.subdata(in: (d.startIndex + 8 * i)..<(d.startIndex + 8 * i + 8)).withUnsafeBytes { Int(Int64(littleEndian: $0.loadUnaligned(as: Int64.self))) }
    }
    guard dims.allSatisfy({ $0 >= 0 && $0 < 1 << 20 }) else { throw PayloadDecodeError(description: "bad image shape") }
    let n = dims.reduce(1, *)
    guard d.count == 32 + n * 4 else { throw PayloadDecodeError(description: "image entry size does not match its shape") }
    var px = [Float](repeating: 0, count: n)
    px.withUnsafeMutableBytes { dst in d.copyBytes(to: dst, from: (d.startIndex + 32)..<d.endIndex) }
    return ImageBatch(batch: dims[0], height: dims[1], width: dims[2], channels: dims[3], pixels: px)
}
