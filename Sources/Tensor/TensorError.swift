/// Errors from tensor construction and kernels. Each names the operation and the offending shapes.
public enum TensorError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Shapes do not fit the operation (e.g. linear input width != weight in-features).
    case shapeMismatch(op: String, detail: String)
    /// The operation does not accept this dtype.
    case unsupportedDType(op: String, dtype: DType)
    /// A parameter is out of range (negative padding, zero groups, bad dim index, ...).
    case invalidArgument(op: String, detail: String)
    /// An element count or byte size overflows or exceeds what can be allocated.
    case tooLarge(op: String, detail: String)
    /// Attempt to write into read-only (memory-mapped) storage.
    case readOnly(op: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, d): return "\(op): shape mismatch: \(d)"
        case let .unsupportedDType(op, t): return "\(op): unsupported dtype \(t)"
        case let .invalidArgument(op, d): return "\(op): invalid argument: \(d)"
        case let .tooLarge(op, d): return "\(op): too large: \(d)"
        case let .readOnly(op): return "\(op): tensor storage is read-only (memory-mapped file)"
        }
    }
}

/// Errors from reading or writing safetensors files. Every case names the file, and the tensor when
/// one is concerned.
public enum SafeTensorsError: Error, CustomStringConvertible, Sendable, Equatable {
    /// open/stat/mmap/write failed.
    case io(file: String, detail: String)
    /// The file is shorter than its header says (or than the 8-byte length prefix).
    case truncated(file: String, detail: String)
    /// The header is not valid JSON, not an object, too long, or malformed.
    case invalidHeader(file: String, detail: String)
    /// A tensor entry is inconsistent (offsets, overlap, byte size vs shape x dtype, bad shape).
    case invalidTensor(file: String, tensor: String, detail: String)
    /// A tensor entry has a dtype this module does not read.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// No tensor of this name in the file.
    case tensorNotFound(file: String, tensor: String)

    public var description: String {
        switch self {
        case let .io(f, d): return "\(f): \(d)"
        case let .truncated(f, d): return "\(f): truncated file: \(d)"
        case let .invalidHeader(f, d): return "\(f): invalid safetensors header: \(d)"
        case let .invalidTensor(f, t, d): return "\(f): tensor '\(t)': \(d)"
        case let .unknownDType(f, t, d): return "\(f): tensor '\(t)': unknown dtype '\(d)'"
        case let .tensorNotFound(f, t): return "\(f): no tensor named '\(t)'"
        }
    }
}
