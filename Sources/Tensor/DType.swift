/// Element types a `Tensor` can hold. Floating types are the compute-relevant ones; the integer types
/// exist so small integer tensors in checkpoints (position ids, step counters) can be read and written.
public enum DType: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    case f32, f16, bf16, i64, i32, u8

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .i64: return 8
        case .u8: return 1
        }
    }

    /// True for f32/f16/bf16, the types kernels accept (f16/bf16 are widened to f32).
    public var isFloatingPoint: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// The dtype name used in safetensors headers ("F32", "F16", "BF16", "I64", "I32", "U8").
    public var safetensorsName: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .i64: return "I64"
        case .i32: return "I32"
        case .u8: return "U8"
        }
    }

    /// Parses a safetensors dtype name; nil for names this module does not support.
    public init?(safetensorsName: String) {
        switch safetensorsName {
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        case "I64": self = .i64
        case "I32": self = .i32
        case "U8": self = .u8
        default: return nil
        }
    }

    public var description: String { rawValue }
}
