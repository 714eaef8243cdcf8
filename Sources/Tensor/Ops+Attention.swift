import Foundation
import CAMX
import CKernels

extension Ops {
    /// Default largest score block (queries x keys floats) one attention step materializes: 4 Mi
    /// floats (16 MiB), well under the ~64 MB budget, so a 16384-token VAE mid-block never needs 1 GiB.
    public static let attentionScoreChunkFloats = 4 << 20
    /// Score block per work item in the per-core attention schedule (2 Mi floats, 8 MiB).
    static let perCoreScoreFloats = 2 << 20

    /// `torch.nn.functional.scaled_dot_product_attention` for multi-head attention in the
    /// "tokens x (heads * headDim)" layout that the projections produce (diffusers `Attention` before
    /// its head split / after its head merge):
    ///
    ///     out[b, i, h*D:(h+1)*D] = softmax(scale * q_h[b, i] . k_h[b, :]^T (+ causal mask)) @ v_h[b]
    ///
    /// - query [B, Lq, H*D], key [B, Lk, H*D], value [B, Lk, H*Dv]; 2-D [L, H*D] inputs are treated as
    ///   batch 1. Lq and Lk may differ (cross-attention on 77 text tokens).
    /// - scale defaults to 1/sqrt(D). `causal` masks key j > query i (torch's `is_causal=True`,
    ///   top-left aligned `tril`).
    /// - Returns [B, Lq, H*Dv] f32.
    /// Heads are read in place with strided sgemm (no transposes). Queries are processed in blocks so
    /// that a block's score matrix holds at most min(`maxScoreFloats`, 2 Mi) floats (at least one
    /// row); the softmax (with the scale folded in) runs on that block between the two GEMMs. Blocks
    /// of all heads run concurrently, one per core, each with single-threaded sgemm.
    public static func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool = false,
                                 scale: Float? = nil, maxScoreFloats: Int = attentionScoreChunkFloats) throws -> Tensor {
        try attention(query: query, key: key, value: value, heads: heads, causal: causal, scale: scale,
                      maxScoreFloats: maxScoreFloats, allowFused: true)
    }

    /// `allowFused: false` takes the sgemm path on every CPU (tests compare the two).
    static func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool, scale: Float?,
                          maxScoreFloats: Int, allowFused: Bool) throws -> Tensor {
        let pr = try AttentionProblem("attention", query, key, value, heads: heads, scale: scale)
        let (bsz, lq, lk, d, dv, cq, cv, s) = (pr.bsz, pr.lq, pr.lk, pr.d, pr.dv, pr.cq, pr.cv, pr.scale)
        let (qf, kf, vf, out) = (pr.q, pr.k, pr.v, pr.out)
        if out.count == 0 { return out }
        if lk == 0 { out.f32MutablePointer.update(repeating: 0, count: out.count); return out }
        let qp = qf.f32Pointer, kp = kf.f32Pointer, vp = vf.f32Pointer, op_ = out.f32MutablePointer
        let fusedKind = allowFused ? sdf_f32_attention_kind() : 0
        if d > 0 && (fusedKind == 2 || (fusedKind == 1 && d <= fusedAVX2MaxHeadSize)),
           fusedF32(qp, kp, vp, op_, bsz: bsz, lq: lq, lk: lk, heads: heads, d: d, dv: dv, scale: s, causal: causal,
                    maxScoreFloats: maxScoreFloats, kind: fusedKind) {
            withExtendedLifetime((qf, kf, vf)) {}
            return out
        }
        // Work items are (batch, head, query block). Each runs QK^T -> softmax -> PV on one core with
        // single-threaded sgemm, so its score block stays with that core and no barrier separates the
        // three steps. Blocks hold at most min(`maxScoreFloats`, 2 Mi floats = 8 MiB) scores: large
        // enough that OpenBLAS repacks K and V rarely, small enough for every core to have one.
        let blockFloats = max(1, min(maxScoreFloats, perCoreScoreFloats))
        let block = max(1, min(lq, blockFloats / lk))
        let blocksPerHead = (lq + block - 1) / block
        let tasks = bsz * heads * blocksPerHead
        func run(_ task: Int, _ scores: UnsafeMutablePointer<Float>, serial: Bool) {
            let i0 = (task % blocksPerHead) * block
            let h = (task / blocksPerHead) % heads
            let b = task / (blocksPerHead * heads)
            let rows = min(block, lq - i0)
            let qh = qp + b * lq * cq + h * d
            let kh = kp + b * lk * cq + h * d
            let vh = vp + b * lk * cv + h * dv
            let oh = op_ + b * lq * cv + h * dv
            // scores[rows, lk] = q_block . k^T
            BLAS.sgemm(transB: true, m: rows, n: lk, k: d, a: qh + i0 * cq, lda: cq, b: kh, ldb: cq,
                       c: scores, ldc: lk, serial: serial)
            for i in 0..<rows {
                let row = scores + i * lk
                if causal {
                    let valid = min(lk, i0 + i + 1)
                    sdf_softmax_row(row, row, valid, s)
                    if valid < lk { (row + valid).update(repeating: 0, count: lk - valid) }
                } else {
                    sdf_softmax_row(row, row, lk, s)
                }
            }
            // out_block[rows, dv] = P . v
            BLAS.sgemm(m: rows, n: dv, k: lk, a: scores, lda: lk, b: vh, ldb: cv,
                       c: oh + i0 * cv, ldc: cv, serial: serial)
        }
        if tasks < Parallel.cores {
            // Too few items to give every core one: let OpenBLAS split each GEMM instead.
            ScratchPool.shared.withFloats(block * lk) { scores in
                for task in 0..<tasks { run(task, scores, serial: false) }
            }
        } else {
            BLAS.withSingleThreadedBLAS {
                Parallel.forEach(tasks) { task in
                    ScratchPool.shared.withFloats(block * lk) { scores in run(task, scores, serial: true) }
                }
            }
        }
        return out
    }

    /// Largest score block (queries x keys floats) per work item of the AVX-512 fused fp32 path: 256 Ki
    /// (1 MiB, L2-sized on the CPUs that have it).
    static let fusedScoreFloats = 1 << 18
    /// Query rows per work item of the AVX2 fused path: each block streams all of the head's packed K
    /// and V once, so fewer rows make it memory-bound (one core, 4096 keys x 64: 4 rows 38-42, 16
    /// rows 54-67, 48 rows 59-72, 192 rows 58-60 GFLOP/s). `SDFLOW_F32_ATTENTION_ROWS` overrides it.
    static let fusedAVX2Rows: Int = {
        if let e = ProcessInfo.processInfo.environment["SDFLOW_F32_ATTENTION_ROWS"], let v = Int(e), v > 0 { return v }
        return 48
    }()
    /// Largest head size the AVX2 fused path takes: its 32-key panels of K^T (d x 32 floats) stay in
    /// L1/L2 for the UNet's 64; the VAE's single 512-wide head ran at 19-76 GFLOP/s in it, and the
    /// sgemm path suits it better.
    static let fusedAVX2MaxHeadSize = 128

    /// The fused path (`sdf_f32_attention`, AVX-512 or AVX2): per (batch, head) K (transposed) and V are
    /// packed once into contiguous 32-wide panels; work items are (batch, head, query block), each
    /// QK^T -> exp -> PV on one core with its score block (<= 1 MiB) in L2, probabilities
    /// unnormalised and output rows divided by the row sums. Returns false (the caller falls back) if a block's scratch could not be allocated.
    private static func fusedF32(_ qp: UnsafePointer<Float>, _ kp: UnsafePointer<Float>, _ vp: UnsafePointer<Float>,
                                 _ op_: UnsafeMutablePointer<Float>, bsz: Int, lq: Int, lk: Int, heads: Int, d: Int, dv: Int,
                                 scale s: Float, causal: Bool, maxScoreFloats: Int, kind: Int32) -> Bool {
        let cq = heads * d, cv = heads * dv
        // Per (batch, head): K^T in 32-key panels and V in 32-column panels (`sdf_f32_attention_pack`).
        let per = sdf_f32_attention_packed_floats(Int32(lk), Int32(d), Int32(dv))
        let packs = TensorStorage(byteCount: max(1, bsz * heads * per * 4))
        let pp = packs.base.assumingMemoryBound(to: Float.self)
        Parallel.forEach(bsz * heads) { bh in
            let b = bh / heads, h = bh % heads
            sdf_f32_attention_pack(kp + b * lk * cq + h * d, Int32(cq), vp + b * lk * cv + h * dv, Int32(cv),
                                   Int32(lk), Int32(d), Int32(dv), pp + bh * per)
        }
        let kindFloats = kind == 1 ? fusedAVX2Rows * max(lk, 1) : fusedScoreFloats
        let blockFloats = max(1, min(maxScoreFloats, kindFloats))
        var block = max(1, min(lq, blockFloats / max(lk, 1)))
        let group = kind == 1 ? 6 : 8   // the kernel's row group
        if block > group { block = block / group * group }
        let blocksPerHead = (lq + block - 1) / block
        let done = Parallel.forEachAll(bsz * heads * blocksPerHead) { task in
            let i0 = (task % blocksPerHead) * block
            let h = (task / blocksPerHead) % heads
            let b = task / (blocksPerHead * heads)
            let rows = min(block, lq - i0)
            return sdf_f32_attention(qp + (b * lq + i0) * cq + h * d, Int32(cq), Int32(rows), Int32(d),
                                     pp + (b * heads + h) * per, Int32(lk), Int32(dv),
                                     op_ + (b * lq + i0) * cv + h * dv, Int32(cv), s, causal ? Int32(i0) : -1) != 0
        }
        withExtendedLifetime(packs) {}
        return done
    }
}

/// A validated multi-head attention call, shared by `Ops.attention` and `Ops.attentionBF16`: inputs
/// as f32 [B, L, H*D] (2-D inputs are batch 1), sizes, the scale (default 1/sqrt(D)) and the
/// uninitialised [.., Lq, H*Dv] output.
struct AttentionProblem {
    let q: Tensor, k: Tensor, v: Tensor, out: Tensor
    let bsz: Int, lq: Int, lk: Int, d: Int, dv: Int, cq: Int, cv: Int
    let scale: Float

    init(_ op: String, _ query: Tensor, _ key: Tensor, _ value: Tensor, heads: Int, scale: Float?) throws {
        func as3(_ t: Tensor, _ what: String) throws -> Tensor {
            if t.rank == 2 { return try t.reshaped([1] + t.shape) }
            guard t.rank == 3 else { throw TensorError.shapeMismatch(op: op, detail: "\(what) must be [B, L, H*D], got \(t.shape)") }
            return t
        }
        let q = try as3(query, "query"), k = try as3(key, "key"), v = try as3(value, "value")
        bsz = q.shape[0]; lq = q.shape[1]; lk = k.shape[1]
        guard heads > 0, q.shape[2] % heads == 0, k.shape[2] == q.shape[2], v.shape[2] % heads == 0 else {
            throw TensorError.shapeMismatch(op: op, detail: "query \(q.shape), key \(k.shape), value \(v.shape) do not split into \(heads) heads with equal q/k head size")
        }
        guard k.shape[0] == bsz, v.shape[0] == bsz, v.shape[1] == lk else {
            throw TensorError.shapeMismatch(op: op, detail: "batch/length mismatch: query \(q.shape), key \(k.shape), value \(v.shape)")
        }
        d = q.shape[2] / heads; dv = v.shape[2] / heads
        cq = q.shape[2]; cv = v.shape[2]
        try BLAS.checkDimensions(op, lq, lk, cq, cv)
        let s = scale ?? 1 / Float(d).squareRoot()
        guard s > 0, s.isFinite else { throw TensorError.invalidArgument(op: op, detail: "scale \(s) must be positive") }
        self.scale = s
        self.q = try Ops.floatInput(q, op, "query")
        self.k = try Ops.floatInput(k, op, "key")
        self.v = try Ops.floatInput(v, op, "value")
        var outShape = query.shape; outShape[outShape.count - 1] = cv
        out = try Tensor.uninitialized(outShape, dtype: .f32)
    }
}
