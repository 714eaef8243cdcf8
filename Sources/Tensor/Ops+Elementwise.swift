import CKernels

extension Ops {
    /// `torch.add(a, b)` with NumPy/torch broadcasting. f32 result.
    public static func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try broadcast(a, b, "add", add: true) }
    /// `torch.mul(a, b)` with NumPy/torch broadcasting. f32 result.
    public static func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try broadcast(a, b, "mul", add: false) }

    /// a + s.
    public static func add(_ a: Tensor, scalar s: Float) throws -> Tensor { try elementwise(a, "add") { sdf_add_scalar($0, s, $1, $2) } }
    /// a * s.
    public static func mul(_ a: Tensor, scalar s: Float) throws -> Tensor { try elementwise(a, "mul") { sdf_mul_scalar($0, s, $1, $2) } }

    /// The broadcast result shape of two shapes (torch rules: align right, sizes equal or 1).
    public static func broadcastShape(_ a: [Int], _ b: [Int], op: String = "broadcast") throws -> [Int] {
        let r = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: r - a.count) + a, pb = [Int](repeating: 1, count: r - b.count) + b
        return try (0..<r).map { i in
            if pa[i] == pb[i] || pb[i] == 1 { return pa[i] }
            if pa[i] == 1 { return pb[i] }
            throw TensorError.shapeMismatch(op: op, detail: "shapes \(a) and \(b) are not broadcastable (dim \(i): \(pa[i]) vs \(pb[i]))")
        }
    }

    /// Broadcasting binary op. Dimensions are merged into runs where each operand is either fully
    /// present or fully broadcast; the innermost run is handed to a vector or vector-scalar C loop.
    static func broadcast(_ a: Tensor, _ b: Tensor, _ op: String, add: Bool) throws -> Tensor {
        let outShape = try broadcastShape(a.shape, b.shape, op: op)
        let af = try floatInput(a, op, "lhs"), bf = try floatInput(b, op, "rhs")
        let y = try Tensor.uninitialized(outShape, dtype: .f32)
        let n = y.count
        if n == 0 { return y }
        let ap = af.f32Pointer, bp = bf.f32Pointer, yp = y.f32MutablePointer
        if a.shape == b.shape {
            Parallel.chunks(n, minChunk: 1 << 15) { r in
                if add { sdf_add(ap + r.lowerBound, bp + r.lowerBound, yp + r.lowerBound, r.count) }
                else { sdf_mul(ap + r.lowerBound, bp + r.lowerBound, yp + r.lowerBound, r.count) }
            }
            return y
        }
        // Per-dim sizes and whether each operand is present (size > 1 in that operand).
        let r = outShape.count
        let pa = [Int](repeating: 1, count: r - a.rank) + a.shape, pb = [Int](repeating: 1, count: r - b.rank) + b.shape
        var dims: [(size: Int, inA: Bool, inB: Bool)] = []
        for i in 0..<r where outShape[i] != 1 {
            let e = (size: outShape[i], inA: pa[i] != 1, inB: pb[i] != 1)
            if let last = dims.last, last.inA == e.inA, last.inB == e.inB {
                dims[dims.count - 1].size *= e.size
            } else { dims.append(e) }
        }
        if dims.isEmpty { dims = [(1, true, true)] }
        var strideA = [Int](repeating: 0, count: dims.count), strideB = strideA
        var sa = 1, sb = 1
        for i in stride(from: dims.count - 1, through: 0, by: -1) {
            if dims[i].inA { strideA[i] = sa; sa *= dims[i].size }
            if dims[i].inB { strideB[i] = sb; sb *= dims[i].size }
        }
        let inner = dims[dims.count - 1]
        let outerDims = dims.dropLast().map { $0.size }
        let outerCount = n / inner.size
        Parallel.chunks(outerCount, minChunk: max(1, 16384 / inner.size)) { range in
            for o in range {
                var rem = o, offA = 0, offB = 0
                for k in stride(from: outerDims.count - 1, through: 0, by: -1) {
                    let idx = rem % outerDims[k]; rem /= outerDims[k]
                    offA += idx * strideA[k]; offB += idx * strideB[k]
                }
                let yo = yp + o * inner.size
                switch (inner.inA, inner.inB) {
                case (true, true):
                    if add { sdf_add(ap + offA, bp + offB, yo, inner.size) } else { sdf_mul(ap + offA, bp + offB, yo, inner.size) }
                case (true, false):
                    if add { sdf_add_scalar(ap + offA, bp[offB], yo, inner.size) } else { sdf_mul_scalar(ap + offA, bp[offB], yo, inner.size) }
                case (false, true):
                    if add { sdf_add_scalar(bp + offB, ap[offA], yo, inner.size) } else { sdf_mul_scalar(bp + offB, ap[offA], yo, inner.size) }
                case (false, false):
                    let v = add ? ap[offA] + bp[offB] : ap[offA] * bp[offB]
                    yo.update(repeating: v, count: inner.size)
                }
            }
        }
        return y
    }

    /// `torch.cat(tensors, dim)`. All inputs must share dtype and every dimension except `dim`; the
    /// result keeps that dtype.
    public static func concat(_ tensors: [Tensor], dim: Int) throws -> Tensor {
        let op = "concat"
        guard let first = tensors.first else { throw TensorError.invalidArgument(op: op, detail: "no tensors") }
        let d = try Shape.normalize(dim: dim, rank: first.rank, op: op)
        var total = 0
        for t in tensors {
            guard t.dtype == first.dtype else { throw TensorError.unsupportedDType(op: "\(op) (mixed with \(first.dtype))", dtype: t.dtype) }
            guard t.rank == first.rank, (0..<t.rank).allSatisfy({ $0 == d || t.shape[$0] == first.shape[$0] }) else {
                throw TensorError.shapeMismatch(op: op, detail: "\(t.shape) does not match \(first.shape) outside dim \(d)")
            }
            total += t.shape[d]
        }
        var s = first.shape; s[d] = total
        let y = try Tensor.uninitialized(s, dtype: first.dtype)
        let outer = s[..<d].reduce(1, *), inner = s[(d + 1)...].reduce(1, *) * first.dtype.size
        let dst = y.storage.base
        let rowOut = total * inner
        var offset = 0
        for t in tensors {
            let row = t.shape[d] * inner
            let src = t.rawPointer, off = offset
            if row > 0 {
                Parallel.chunks(outer, minChunk: max(1, (1 << 16) / row)) { r in
                    for o in r { dst.advanced(by: o * rowOut + off).copyMemory(from: src.advanced(by: o * row), byteCount: row) }
                }
            }
            offset += row
        }
        return y
    }

    /// `torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")` for [N, C, H, W].
    public static func upsampleNearest2x(_ x: Tensor) throws -> Tensor {
        let op = "upsampleNearest2x"
        guard x.rank == 4 else { throw TensorError.shapeMismatch(op: op, detail: "input must be [N, C, H, W], got \(x.shape)") }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let xf = try floatInput(x, op, "input")
        let y = try Tensor.uninitialized([n, c, 2 * h, 2 * w], dtype: .f32)
        let xp = xf.f32Pointer, yp = y.f32MutablePointer
        Parallel.chunks(n * c * h, minChunk: max(1, 8192 / max(w, 1))) { r in
            for row in r {
                let s = xp + row * w
                let d0 = yp + row * 4 * w
                for i in 0..<w { let v = s[i]; d0[2 * i] = v; d0[2 * i + 1] = v }
                (d0 + 2 * w).update(from: d0, count: 2 * w)
            }
        }
        return y
    }
}
