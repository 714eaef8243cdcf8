import Foundation

/// Fully connected layer.
extension Ops {
    /// Size of the band of an f16/bf16 linear weight widened at a time (floats).
    public static let linearWeightBandFloats = 1 << 24
    /// Inputs of at most this many rows take the streaming path for f16/bf16 weights (bands widened
    /// per core into L2-sized scratch, `linearStreamBandFloats` floats each). `SDFLOW_LINEAR_STREAM=0`
    /// turns it off (kept for A/B measurements).
    public static let linearStreamMaxRows = ProcessInfo.processInfo.environment["SDFLOW_LINEAR_STREAM"] == "0" ? 0 : 256
    public static let linearStreamBandFloats = 1 << 18

    /// `torch.nn.functional.linear(x, weight, bias)`: y = x W^T + b.
    ///
    /// - x: [..., in] (f32/f16/bf16); weight: [out, in] in its stored dtype (f16/bf16 widened per call,
    ///   a band of `linearWeightBandFloats` at a time, into pooled scratch; for at most
    ///   `linearStreamMaxRows` rows, per core in bands of at most `linearStreamBandFloats` instead);
    ///   bias: [out] or nil.
    ///   Returns [..., out] f32.
    /// One `cblas_sgemm` with transB on the row-major weight (no pre-transposed copy); the bias is
    /// written first and accumulated with beta = 1.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil,
                              weightBandFloats: Int = linearWeightBandFloats) throws -> Tensor {
        let op = "linear"
        guard weight.rank == 2 else { throw TensorError.shapeMismatch(op: op, detail: "weight must be [out, in], got \(weight.shape)") }
        let outF = weight.shape[0], inF = weight.shape[1]
        guard x.rank >= 1, x.shape[x.rank - 1] == inF else {
            throw TensorError.shapeMismatch(op: op, detail: "input \(x.shape) last dim != weight in-features \(inF) (weight \(weight.shape))")
        }
        let b = try vector(bias, count: outF, op, "bias")
        let xf = try floatInput(x, op, "input")
        let m = x.count / max(inF, 1)
        try BLAS.checkDimensions(op, m, inF, outF)
        var outShape = x.shape; outShape[outShape.count - 1] = outF
        let y = try Tensor.uninitialized(outShape, dtype: .f32)
        if m == 0 || outF == 0 { return y }
        if inF == 0 {
            if let b { fillRows(y.f32MutablePointer, rows: m, width: outF, with: b.f32Pointer) }
            else { y.f32MutablePointer.update(repeating: 0, count: y.count) }
            return y
        }
        if let b { fillRows(y.f32MutablePointer, rows: m, width: outF, with: b.f32Pointer) }
        let beta: Float = b == nil ? 0 : 1
        if weight.dtype == .f32 {
            BLAS.sgemm(transB: true, m: m, n: outF, k: inF, a: xf.f32Pointer, lda: inF, b: weight.f32Pointer, ldb: inF,
                       beta: beta, c: y.f32MutablePointer, ldc: outF)
            return y
        }
        guard weight.dtype == .f16 || weight.dtype == .bf16 else { throw TensorError.unsupportedDType(op: op, dtype: weight.dtype) }
        if m <= linearStreamMaxRows {
            // Few rows (the text encoders' 77 tokens, embeddings): the GEMM reads each weight element
            // a few times only, so widening the whole weight to memory and reading that copy back
            // would triple its traffic. Instead every core takes bands of output features in turn,
            // widens one into a scratch that stays in its L2 and multiplies it at once (single-
            // threaded sgemm): the f16/bf16 weight is read from memory once and nothing else is.
            // Bands of at least 2m rows (unless the caller asks for smaller ones): each single-threaded
            // sgemm packs all of x again, which must stay small next to the band it multiplies.
            let bandFloats = min(max(linearStreamBandFloats, 2 * m * inF), weightBandFloats)
            let bandRows = max(16, min(outF, (bandFloats / inF) / 16 * 16))
            let bands = (outF + bandRows - 1) / bandRows
            let src = weight.rawPointer, es = weight.dtype.size, dt = weight.dtype
            let xp = xf.f32Pointer, yp = y.f32MutablePointer
            BLAS.withSingleThreadedBLAS {
                Parallel.forEach(bands) { band in
                    let n0 = band * bandRows, rows = min(bandRows, outF - n0)
                    ScratchPool.shared.withFloats(rows * inF) { wf in
                        Convert.toF32(src.advanced(by: n0 * inF * es), dtype: dt, into: wf, count: rows * inF)
                        BLAS.sgemm(transB: true, m: m, n: rows, k: inF, a: xp, lda: inF, b: wf, ldb: inF,
                                   beta: beta, c: yp + n0, ldc: outF, serial: true)
                    }
                }
            }
            withExtendedLifetime((xf, weight)) {}
            return y
        }
        // f16/bf16 weight: widen a band of output features at a time (<= `weightBandFloats`; the
        // default, 16 Mi floats, holds every SDXL linear in one band, so each linear is one sgemm
        // call) and compute y[:, band] = x . band^T.
        let bandRows = max(16, min(outF, (weightBandFloats / inF) / 16 * 16))
        ScratchPool.shared.withFloats(bandRows * inF) { wf in
            var n0 = 0
            while n0 < outF {
                let rows = min(bandRows, outF - n0)
                // Widened on every core: a single-threaded conversion would leave the other cores idle.
                let src = weight.rawPointer.advanced(by: n0 * inF * weight.dtype.size)
                let es = weight.dtype.size, dt = weight.dtype
                Parallel.chunks(rows * inF, minChunk: 1 << 16) { r in
                    Convert.toF32(src.advanced(by: r.lowerBound * es), dtype: dt, into: wf + r.lowerBound, count: r.count)
                }
                BLAS.sgemm(transB: true, m: m, n: rows, k: inF, a: xf.f32Pointer, lda: inF, b: wf, ldb: inF,
                           beta: beta, c: y.f32MutablePointer + n0, ldc: outF)
                n0 += rows
            }
        }
        return y
    }
}
