/// Fully connected layer.
extension Ops {
    /// `torch.nn.functional.linear(x, weight, bias)`: y = x W^T + b.
    ///
    /// - x: [..., in] (f32/f16/bf16); weight: [out, in] in its stored dtype (f16/bf16 widened per call
    ///   into pooled scratch); bias: [out] or nil. Returns [..., out] f32.
    /// One `cblas_sgemm` with transB on the row-major weight (no pre-transposed copy); the bias is
    /// written first and accumulated with beta = 1.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        let op = "linear"
        guard weight.rank == 2 else { throw TensorError.shapeMismatch(op: op, detail: "weight must be [out, in], got \(weight.shape)") }
        let outF = weight.shape[0], inF = weight.shape[1]
        guard x.rank >= 1, x.shape[x.rank - 1] == inF else {
            throw TensorError.shapeMismatch(op: op, detail: "input \(x.shape) last dim != weight in-features \(inF) (weight \(weight.shape))")
        }
        let b = try vector(bias, count: outF, op, "bias")
        let xf = try floatInput(x, op, "input")
        let m = x.count / max(inF, 1)
        var outShape = x.shape; outShape[outShape.count - 1] = outF
        let y = try Tensor.uninitialized(outShape, dtype: .f32)
        if m == 0 || outF == 0 { return y }
        if inF == 0 {
            if let b { fillRows(y.f32MutablePointer, rows: m, width: outF, with: b.f32Pointer) }
            else { y.f32MutablePointer.update(repeating: 0, count: y.count) }
            return y
        }
        if let b { fillRows(y.f32MutablePointer, rows: m, width: outF, with: b.f32Pointer) }
        try withWidened(weight, op) { w in
            BLAS.sgemm(transB: true, m: m, n: outF, k: inF, a: xf.f32Pointer, lda: inF, b: w, ldb: inF,
                       beta: b == nil ? 0 : 1, c: y.f32MutablePointer, ldc: outF)
        }
        return y
    }
}
