import Foundation

/// The type of a value flowing along a link or given as a literal. Open-ended (a new model family
/// adds its own types without touching the engine); the built-in ones follow ComfyUI's names.
public struct ValueType: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral value: String) { self.name = value }
    public var description: String { name }

    public static let int: ValueType = "INT"
    public static let float: ValueType = "FLOAT"
    public static let string: ValueType = "STRING"
    public static let boolean: ValueType = "BOOLEAN"
    public static let model: ValueType = "MODEL"
    public static let clip: ValueType = "CLIP"
    public static let vae: ValueType = "VAE"
    public static let conditioning: ValueType = "CONDITIONING"
    public static let latent: ValueType = "LATENT"
    public static let image: ValueType = "IMAGE"
    public static let mask: ValueType = "MASK"
    public static let controlNet: ValueType = "CONTROL_NET"

    /// Types that can be written as a literal in a workflow file.
    public var isPrimitive: Bool { self == .int || self == .float || self == .string || self == .boolean }
}

/// Anything a node produces that is not a primitive: images, latents, models, conditioning.
public protocol Payload: Sendable {
    /// Bytes of heap memory this value keeps alive (memory-mapped weights count as 0); bounds the cache.
    var byteCount: Int { get }
}

/// A payload that can be stored in the on-disk cache (images, latents, conditioning).
public protocol PersistablePayload: Payload {
    /// Identifies the codec in a cache file; change it when the encoding changes.
    static var persistenceTag: String { get }
    func encoded() throws -> Data
    static func decoded(from data: Data) throws -> Self
    /// False for values that hold something a file cannot (a ControlNet hook); they stay in memory.
    var isPersistable: Bool { get }
}

extension PersistablePayload {
    public var isPersistable: Bool { true }
}

/// A value at a node boundary.
public enum Value: Sendable {
    case int(Int)
    case float(Double)
    case string(String)
    case bool(Bool)
    case object(any Payload)

    public var byteCount: Int {
        switch self {
        case .int, .float, .bool: return 8
        case .string(let s): return s.utf8.count
        case .object(let p): return p.byteCount
        }
    }

    /// The canonical text of a primitive literal, used in signatures and in ComfyUI JSON.
    public var canonicalLiteral: String? {
        switch self {
        case .int(let v): return "i:\(v)"
        case .float(let v): return "f:\(v.bitPattern)"
        case .string(let v): return "s:\(v.utf8.count):\(v)"
        case .bool(let v): return "b:\(v)"
        case .object: return nil
        }
    }

    /// A JSON-compatible rendering of a primitive (for reports and PNG metadata).
    public var jsonObject: Any {
        switch self {
        case .int(let v): return v
        case .float(let v): return v
        case .string(let v): return v
        case .bool(let v): return v
        case .object(let p): return String(describing: type(of: p))
        }
    }
}
