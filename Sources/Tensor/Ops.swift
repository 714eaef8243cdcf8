/// CPU kernels on `Tensor`s. All compute is fp32; f16/bf16 inputs and weights are widened on the fly
/// (weights into reusable scratch per call, never kept as a full f32 copy). Outputs are new f32
/// tensors. Heavy products use OpenBLAS `cblas_sgemm` (threads = core count); the rest is
/// multithreaded with Dispatch over vectorized C loops (`CKernels`).
///
/// Each function's doc comment names the PyTorch function it matches; `Tests/TensorTests` checks
/// every one against outputs produced by that function.
public enum Ops {
    /// `t` as f32 (widened copy if stored as f16/bf16); throws for integer dtypes.
    static func floatInput(_ t: Tensor, _ op: String, _ what: String) throws -> Tensor {
        guard t.dtype.isFloatingPoint else {
            throw TensorError.unsupportedDType(op: "\(op) (\(what))", dtype: t.dtype)
        }
        return t.asF32()
    }

    /// A small parameter vector (bias, norm weight) of exactly `count` elements, as f32.
    static func vector(_ t: Tensor?, count: Int, _ op: String, _ what: String) throws -> Tensor? {
        guard let t else { return nil }
        guard t.count == count else {
            throw TensorError.shapeMismatch(op: op, detail: "\(what) has shape \(t.shape), expected \(count) elements")
        }
        return try floatInput(t, op, what)
    }

    /// Runs `body` with `t`'s data as f32: directly when stored as f32, otherwise widened into pooled
    /// scratch for the duration of the call (used for f16/bf16 weights).
    static func withWidened<R>(_ t: Tensor, _ op: String, _ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        switch t.dtype {
        case .f32: return try body(t.f32Pointer)
        case .f16, .bf16:
            return try ScratchPool.shared.withFloats(t.count) { p in
                Convert.toF32(t.rawPointer, dtype: t.dtype, into: p, count: t.count)
                return try body(UnsafePointer(p))
            }
        default: throw TensorError.unsupportedDType(op: op, dtype: t.dtype)
        }
    }

    /// Writes `bias[r % rowsPerBias ...]` patterns: fills `rows` rows of `width` with the bias vector
    /// (row-major [rows, width]).
    static func fillRows(_ y: UnsafeMutablePointer<Float>, rows: Int, width: Int, with bias: UnsafePointer<Float>) {
        Parallel.chunks(rows, minChunk: max(1, 16384 / max(width, 1))) { r in
            for i in r { (y + i * width).update(from: bias, count: width) }
        }
    }
}
