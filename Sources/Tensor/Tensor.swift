import CKernels

/// A dense, contiguous (row-major) n-dimensional array of one `DType`.
///
/// `Tensor` is a small value (shape, dtype, storage reference, byte offset). Copies and views share
/// storage; nothing is copied unless an operation says so. f16/bf16 data stays as stored (for
/// example memory-mapped from a checkpoint) and is widened to f32 by the kernels that read it.
public struct Tensor: Sendable {
    public let shape: [Int]
    public let dtype: DType
    public let storage: TensorStorage
    /// Offset of element 0 from `storage.base`, in bytes.
    public let byteOffset: Int

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var byteCount: Int { count * dtype.size }
    /// Pointer to element 0.
    public var rawPointer: UnsafeRawPointer { UnsafeRawPointer(storage.base.advanced(by: byteOffset)) }

    /// Wraps existing storage; checks that the view lies inside it.
    public init(storage: TensorStorage, byteOffset: Int = 0, shape: [Int], dtype: DType) throws {
        let n = try Shape.elementCount(shape, op: "Tensor(storage:)")
        let (bytes, o) = n.multipliedReportingOverflow(by: dtype.size)
        guard !o, byteOffset >= 0, byteOffset <= storage.byteCount, bytes <= storage.byteCount - byteOffset else {
            throw TensorError.shapeMismatch(op: "Tensor(storage:)",
                detail: "view \(shape) \(dtype) at byte \(byteOffset) does not fit storage of \(storage.byteCount) bytes")
        }
        self.storage = storage
        self.byteOffset = byteOffset
        self.shape = shape
        self.dtype = dtype
    }

    /// Internal unchecked init for kernels that just allocated matching storage.
    init(unchecked storage: TensorStorage, byteOffset: Int = 0, shape: [Int], dtype: DType) {
        self.storage = storage
        self.byteOffset = byteOffset
        self.shape = shape
        self.dtype = dtype
    }

    /// A zero-filled tensor.
    public static func zeros(_ shape: [Int], dtype: DType = .f32) throws -> Tensor {
        let bytes = try Shape.byteCount(shape, dtype: dtype, op: "Tensor.zeros")
        return Tensor(unchecked: TensorStorage(byteCount: bytes, zeroed: true), shape: shape, dtype: dtype)
    }

    /// An uninitialized tensor (contents undefined until written). For kernels and loaders.
    public static func uninitialized(_ shape: [Int], dtype: DType = .f32) throws -> Tensor {
        let bytes = try Shape.byteCount(shape, dtype: dtype, op: "Tensor.uninitialized")
        return Tensor(unchecked: TensorStorage(byteCount: bytes), shape: shape, dtype: dtype)
    }

    /// An f32 tensor holding `values` (count must equal the shape's element count).
    public init(shape: [Int], values: [Float]) throws {
        let n = try Shape.elementCount(shape, op: "Tensor(shape:values:)")
        guard n == values.count else {
            throw TensorError.shapeMismatch(op: "Tensor(shape:values:)", detail: "shape \(shape) has \(n) elements, got \(values.count) values")
        }
        let s = TensorStorage(byteCount: n * 4)
        values.withUnsafeBytes { b in if let p = b.baseAddress, b.count > 0 { s.base.copyMemory(from: p, byteCount: b.count) } }
        self.init(unchecked: s, shape: shape, dtype: .f32)
    }

    /// A tensor of any dtype from raw little-endian bytes (copied).
    public init(shape: [Int], dtype: DType, bytes: UnsafeRawBufferPointer) throws {
        let nb = try Shape.byteCount(shape, dtype: dtype, op: "Tensor(shape:dtype:bytes:)")
        guard nb == bytes.count else {
            throw TensorError.shapeMismatch(op: "Tensor(shape:dtype:bytes:)", detail: "shape \(shape) \(dtype) needs \(nb) bytes, got \(bytes.count)")
        }
        let s = TensorStorage(byteCount: nb)
        if nb > 0, let src = bytes.baseAddress { s.base.copyMemory(from: src, byteCount: nb) }
        self.init(unchecked: s, shape: shape, dtype: dtype)
    }

    /// Size of dimension `d` (negative counts from the end). Throws for an out-of-range dim.
    public func size(_ d: Int) throws -> Int { shape[try Shape.normalize(dim: d, rank: rank, op: "size")] }

    // MARK: views

    /// Same data, new shape (no copy). One entry may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var s = newShape
        let unknown = s.indices.filter { s[$0] == -1 }
        guard unknown.count <= 1 else { throw TensorError.invalidArgument(op: "reshape", detail: "more than one -1 in \(newShape)") }
        if let u = unknown.first {
            var rest = s; rest[u] = 1
            let known = try Shape.elementCount(rest, op: "reshape")
            guard known > 0, count % known == 0 else {
                throw TensorError.shapeMismatch(op: "reshape", detail: "cannot reshape \(shape) to \(newShape)")
            }
            s[u] = count / known
        }
        let n = try Shape.elementCount(s, op: "reshape")
        guard n == count else { throw TensorError.shapeMismatch(op: "reshape", detail: "cannot reshape \(shape) (\(count) elements) to \(newShape)") }
        return Tensor(unchecked: storage, byteOffset: byteOffset, shape: s, dtype: dtype)
    }

    /// Elements `range` along dimension 0 (no copy).
    public func slice(_ range: Range<Int>) throws -> Tensor {
        guard rank >= 1, range.lowerBound >= 0, range.upperBound <= shape[0] else {
            throw TensorError.invalidArgument(op: "slice", detail: "range \(range) outside dim 0 of \(shape)")
        }
        let inner = shape.dropFirst().reduce(1, *)
        var s = shape; s[0] = range.count
        return Tensor(unchecked: storage, byteOffset: byteOffset + range.lowerBound * inner * dtype.size, shape: s, dtype: dtype)
    }

    /// `length` elements from `start` along `dim`. A view when every dimension before `dim` has size 1
    /// (the slice is then contiguous), otherwise a contiguous copy. Matches `torch.narrow(...).contiguous()`.
    public func narrowed(dim: Int, start: Int, length: Int) throws -> Tensor {
        let d = try Shape.normalize(dim: dim, rank: rank, op: "narrow")
        guard start >= 0, length >= 0, start + length <= shape[d] else {
            throw TensorError.invalidArgument(op: "narrow", detail: "start \(start) length \(length) outside dim \(d) of \(shape)")
        }
        let outer = shape[..<d].reduce(1, *)
        let inner = shape[(d + 1)...].reduce(1, *)
        var s = shape; s[d] = length
        if outer == 1 {
            return Tensor(unchecked: storage, byteOffset: byteOffset + start * inner * dtype.size, shape: s, dtype: dtype)
        }
        let out = try Tensor.uninitialized(s, dtype: dtype)
        let es = dtype.size
        let src = rawPointer, dst = out.storage.base
        let rowIn = shape[d] * inner * es, rowOut = length * inner * es
        for o in 0..<outer {
            dst.advanced(by: o * rowOut).copyMemory(from: src.advanced(by: o * rowIn + start * inner * es), byteCount: rowOut)
        }
        return out
    }

    /// Splits `dim` into `parts` equal chunks (like `torch.chunk` with equal sizes).
    public func chunked(_ parts: Int, dim: Int) throws -> [Tensor] {
        let d = try Shape.normalize(dim: dim, rank: rank, op: "chunk")
        guard parts > 0, shape[d] % parts == 0 else {
            throw TensorError.invalidArgument(op: "chunk", detail: "dim \(d) of \(shape) is not divisible into \(parts) parts")
        }
        let len = shape[d] / parts
        return try (0..<parts).map { try narrowed(dim: d, start: $0 * len, length: len) }
    }

    // MARK: element access

    /// All elements widened to f32 (copy). Integer dtypes are converted with `Float(_:)`.
    public func toFloats() -> [Float] {
        let n = count
        return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
            if n > 0, let p = buf.baseAddress { Convert.toF32(rawPointer, dtype: dtype, into: p, count: n) }
            initialized = n
        }
    }

    /// This tensor as f32: itself when already f32, else a widened copy.
    public func asF32() -> Tensor {
        if dtype == .f32 { return self }
        let n = count
        let s = TensorStorage(byteCount: n * 4)
        Convert.toF32(rawPointer, dtype: dtype, into: s.base.assumingMemoryBound(to: Float.self), count: n)
        return Tensor(unchecked: s, shape: shape, dtype: .f32)
    }

    /// A copy converted to `dtype` (f32 -> f16/bf16 rounds to nearest even, as torch's `.to()`).
    public func converted(to target: DType) throws -> Tensor {
        if target == dtype { return self }
        let n = count
        let out = try Tensor.uninitialized(shape, dtype: target)
        let f = asF32()
        let src = f.rawPointer.assumingMemoryBound(to: Float.self)
        try Convert.fromF32(src, into: out.storage.base, dtype: target, count: n)
        return out
    }

    /// Calls `body` with the elements as f32; widens into a temporary when stored as f16/bf16.
    public func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard dtype.isFloatingPoint else { throw TensorError.unsupportedDType(op: "withFloats", dtype: dtype) }
        let f = asF32()
        return try body(UnsafeBufferPointer(start: f.rawPointer.assumingMemoryBound(to: Float.self), count: count))
    }

    /// Mutable f32 access to a writable f32 tensor (one the caller just created).
    public func withMutableFloats<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R {
        guard dtype == .f32 else { throw TensorError.unsupportedDType(op: "withMutableFloats", dtype: dtype) }
        guard storage.isWritable else { throw TensorError.readOnly(op: "withMutableFloats") }
        return try body(UnsafeMutableBufferPointer(start: storage.base.advanced(by: byteOffset).assumingMemoryBound(to: Float.self), count: count))
    }

    /// f32 pointer for kernels; caller guarantees dtype == .f32.
    var f32Pointer: UnsafePointer<Float> { rawPointer.assumingMemoryBound(to: Float.self) }
    /// Mutable f32 pointer for kernels writing into storage they allocated.
    var f32MutablePointer: UnsafeMutablePointer<Float> { storage.base.advanced(by: byteOffset).assumingMemoryBound(to: Float.self) }

    /// Raw bytes (for writers and exact comparisons).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: rawPointer, count: byteCount))
    }

    /// A contiguous copy with dimensions permuted (`torch.permute(...).contiguous()`).
    public func permuted(_ perm: [Int]) throws -> Tensor {
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw TensorError.invalidArgument(op: "permute", detail: "\(perm) is not a permutation of 0..<\(rank)")
        }
        if perm == Array(0..<rank) { return self }
        let outShape = perm.map { shape[$0] }
        let out = try Tensor.uninitialized(outShape, dtype: dtype)
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let srcStrides = perm.map { inStrides[$0] }
        let es = dtype.size
        let src = rawPointer, dst = out.storage.base
        let inner = outShape.last ?? 1
        let innerStride = srcStrides.last ?? 1
        let outerCount = count / max(inner, 1)
        let outerShape = Array(outShape.dropLast()), outerStrides = Array(srcStrides.dropLast())
        Parallel.chunks(outerCount, minChunk: 64) { range in
            for o in range {
                var rem = o, srcOff = 0
                for k in stride(from: outerShape.count - 1, through: 0, by: -1) {
                    srcOff += (rem % outerShape[k]) * outerStrides[k]; rem /= outerShape[k]
                }
                let d = dst.advanced(by: o * inner * es)
                if es == 4 {
                    let s4 = src.assumingMemoryBound(to: UInt32.self) + srcOff, d4 = d.assumingMemoryBound(to: UInt32.self)
                    for i in 0..<inner { d4[i] = s4[i * innerStride] }
                } else {
                    for i in 0..<inner { d.advanced(by: i * es).copyMemory(from: src.advanced(by: (srcOff + i * innerStride) * es), byteCount: es) }
                }
            }
        }
        return out
    }

    /// Swaps two dimensions (contiguous copy), `torch.transpose(a, b).contiguous()`.
    public func transposed(_ a: Int, _ b: Int) throws -> Tensor {
        let x = try Shape.normalize(dim: a, rank: rank, op: "transpose"), y = try Shape.normalize(dim: b, rank: rank, op: "transpose")
        var p = Array(0..<rank); p.swapAt(x, y)
        return try permuted(p)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(\(shape), \(dtype))" }
}

/// Shape arithmetic with overflow and sanity checks.
public enum Shape {
    /// Largest element count any tensor may have (2^40, 4 TiB of f32): far above real models, far
    /// below Int overflow, so absurd shapes from files fail cleanly instead of wrapping.
    public static let maxElements = 1 << 40

    public static func elementCount(_ shape: [Int], op: String) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw TensorError.invalidArgument(op: op, detail: "negative dimension in \(shape)") }
            let (m, o) = n.multipliedReportingOverflow(by: d)
            guard !o, m <= maxElements else { throw TensorError.tooLarge(op: op, detail: "shape \(shape) has too many elements") }
            n = m
        }
        return n
    }

    public static func byteCount(_ shape: [Int], dtype: DType, op: String) throws -> Int {
        try elementCount(shape, op: op) * dtype.size
    }

    public static func normalize(dim: Int, rank: Int, op: String) throws -> Int {
        let d = dim < 0 ? dim + rank : dim
        guard d >= 0, d < rank else { throw TensorError.invalidArgument(op: op, detail: "dim \(dim) out of range for rank \(rank)") }
        return d
    }
}
