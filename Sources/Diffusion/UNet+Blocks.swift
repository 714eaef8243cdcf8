import Tensor

/// diffusers `ResnetBlock2D` as SDXL uses it: GroupNorm+SiLU, 3x3 conv, + time embedding projection,
/// GroupNorm+SiLU, 3x3 conv, + (1x1-projected) input.
struct ResnetBlock {
    var norm1: GroupNorm, conv1: Conv2d
    var timeProj: Linear?
    var norm2: GroupNorm, conv2: Conv2d
    var shortcut: Conv2d?

    init(_ r: WeightReader, _ p: String, groups: Int, eps: Float, timeEmbedding: Bool = true) {
        norm1 = r.groupNorm("\(p).norm1", groups: groups, eps: eps)
        conv1 = r.conv("\(p).conv1")
        timeProj = timeEmbedding ? r.linear("\(p).time_emb_proj") : nil
        norm2 = r.groupNorm("\(p).norm2", groups: groups, eps: eps)
        conv2 = r.conv("\(p).conv2")
        shortcut = r.has("\(p).conv_shortcut.weight") ? r.conv("\(p).conv_shortcut", padding: .zero) : nil
    }

    /// `embSilu`: SiLU(time embedding) [B, T], shared by every block.
    /// In bf16 mode conv2 adds the shortcut in its store, so the shortcut is computed first (before
    /// conv1's output exists, which keeps the peak where the separate add had it); in fp32 it is
    /// computed after conv2 and added by `Ops.add` as before.
    func callAsFunction(_ x: Tensor, _ embSilu: Tensor?) throws -> Tensor {
        let early = conv2.fusesResidual ? try shortcut.map { try $0(x) } ?? x : nil
        var h = try conv1(x, normalizedBy: norm1, silu: true)
        if let timeProj, let embSilu {
            let t = try timeProj(embSilu)
            h = try Profiler.measure("add") { try Ops.add(h, t.reshaped([t.shape[0], t.shape[1], 1, 1])) }
        }
        if let early { return try conv2(h, normalizedBy: norm2, silu: true, residual: early) }
        h = try conv2(h, normalizedBy: norm2, silu: true)
        let s = try shortcut.map { try $0(x) } ?? x
        return try Profiler.measure("add") { try Ops.add(s, h) }
    }
}

/// diffusers `Attention` (no bias on q/k/v, bias on the output projection).
struct AttentionLayer {
    var q: Linear, k: Linear, v: Linear, out: Linear
    var heads: Int

    init(_ r: WeightReader, _ p: String, heads: Int) {
        q = r.linear("\(p).to_q", bias: false)
        k = r.linear("\(p).to_k", bias: false)
        v = r.linear("\(p).to_v", bias: false)
        out = r.linear("\(p).to_out.0")
        self.heads = heads
    }

    /// residual: added to the output projection's result (fused into its GEMM in bf16 mode).
    func callAsFunction(_ x: Tensor, context: Tensor? = nil, kv: (Tensor, Tensor)? = nil, residual: Tensor? = nil) throws -> Tensor {
        let c = context ?? x
        let (kk, vv) = try kv ?? (k(c), v(c))
        let qq = try q(x)
        FlopCounter.add(4 * Double(qq.count) * Double(kk.shape[kk.rank - 2]))
        let bf16 = q.lowPrecision && ComputePrecision.useBF16
        let a = try Profiler.measure((context == nil ? "attention-self" : "attention-cross") + (bf16 ? " bf16" : "")) {
            bf16 ? try Ops.attentionBF16(query: qq, key: kk, value: vv, heads: heads) : try Ops.attention(query: qq, key: kk, value: vv, heads: heads)
        }
        return try out(a, residual: residual)
    }
}

/// diffusers `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward, each pre-LayerNorm
/// with a residual.
struct TransformerBlock {
    var norm1: LayerNorm, attn1: AttentionLayer
    var norm2: LayerNorm, attn2: AttentionLayer
    var norm3: LayerNorm, ffIn: Linear, ffOut: Linear
    /// Index of this block's cross-attention in the model (for precomputed text K/V).
    var crossIndex: Int

    init(_ r: WeightReader, _ p: String, heads: Int, crossIndex: Int) {
        norm1 = r.layerNorm("\(p).norm1")
        attn1 = AttentionLayer(r, "\(p).attn1", heads: heads)
        norm2 = r.layerNorm("\(p).norm2")
        attn2 = AttentionLayer(r, "\(p).attn2", heads: heads)
        norm3 = r.layerNorm("\(p).norm3")
        ffIn = r.linear("\(p).ff.net.0.proj")
        ffOut = r.linear("\(p).ff.net.2")
        self.crossIndex = crossIndex
    }

    func callAsFunction(_ x: Tensor, context: Tensor, kv: [(Tensor, Tensor)]?) throws -> Tensor {
        // In bf16 mode the normalised activations only feed bf16 GEMMs: store them as bf16.
        let lowp = attn1.q.lowPrecision && ComputePrecision.useBF16
        var h = x
        h = try attn1(norm1(h, bf16Output: lowp), residual: h)
        h = try attn2(norm2(h, bf16Output: lowp), context: context, kv: kv?[crossIndex], residual: h)
        let g = try ffIn.geglu(norm3(h, bf16Output: lowp))
        h = try ffOut(g, residual: h)
        return h
    }
}

/// diffusers `Transformer2DModel` with linear projections: GroupNorm (eps 1e-6), proj_in, blocks, proj_out, + input.
struct SpatialTransformer {
    var norm: GroupNorm
    var projIn: Linear, projOut: Linear
    var blocks: [TransformerBlock]

    init(_ r: WeightReader, _ p: String, depth: Int, heads: Int, groups: Int, crossCounter: inout Int) {
        norm = r.groupNorm("\(p).norm", groups: groups, eps: 1e-6)
        projIn = Self.projection(r, "\(p).proj_in")
        var bs: [TransformerBlock] = []
        for k in 0..<depth {
            bs.append(TransformerBlock(r, "\(p).transformer_blocks.\(k)", heads: heads, crossIndex: crossCounter))
            crossCounter += 1
        }
        blocks = bs
        projOut = Self.projection(r, "\(p).proj_out")
    }

    /// A linear projection, or a 1x1 conv (older layouts) used as the same linear map.
    static func projection(_ r: WeightReader, _ name: String) -> Linear {
        var l = r.linear(name)
        if l.weight.rank == 4, let w = try? l.weight.reshaped([l.weight.shape[0], l.weight.shape[1]]) { l.weight = w }
        return l
    }

    func callAsFunction(_ x: Tensor, context: Tensor, kv: [(Tensor, Tensor)]?) throws -> Tensor {
        let (b, c, hh, ww) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var h = try norm(x)
        h = try Profiler.measure("permute") { try h.permuted([0, 2, 3, 1]).reshaped([b, hh * ww, c]) }
        h = try projIn(h)
        for blk in blocks { h = try blk(h, context: context, kv: kv) }
        h = try projOut(h)
        h = try Profiler.measure("permute") { try h.reshaped([b, hh, ww, c]).permuted([0, 3, 1, 2]) }
        return try Profiler.measure("add") { try Ops.add(h, x) }
    }

    /// Every block's cross-attention K and V for a text context, in `crossIndex` order.
    func crossKV(_ context: Tensor) throws -> [(Int, (Tensor, Tensor))] {
        try blocks.map { ($0.crossIndex, (try $0.attn2.k(context), try $0.attn2.v(context))) }
    }
}
