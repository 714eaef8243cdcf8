import Tensor

/// A CLIP text transformer (transformers' `CLIPTextModel` / `CLIPTextModelWithProjection`), with
/// weights in transformers naming (`text_model.embeddings...`, `text_projection.weight`).
/// Causal self-attention over the 77 tokens, pre-norm layers, final layer norm.
public final class CLIPTextModel: @unchecked Sendable {
    public let config: CLIPTextConfig
    let weights: WeightSet
    /// LoRA patches applied to this model, by module name.
    public let patches: [String: [LoRAPatch]]
    let tokenEmbedding: Tensor
    let positionEmbedding: Tensor
    let layers: [Layer]
    let finalNorm: LayerNorm
    let projection: Linear?

    struct Layer {
        var norm1: LayerNorm, norm2: LayerNorm
        var q: Linear, k: Linear, v: Linear, out: Linear
        var fc1: Linear, fc2: Linear
    }

    public init(config: CLIPTextConfig, weights: WeightSet, patches: [String: [LoRAPatch]] = [:]) throws {
        self.config = config
        self.weights = weights
        self.patches = patches
        let r = WeightReader(weights, patches: patches)
        let h = config.hiddenSize, inter = config.intermediateSize
        tokenEmbedding = r.take("text_model.embeddings.token_embedding.weight", shape: [config.vocabSize, h])
        positionEmbedding = r.take("text_model.embeddings.position_embedding.weight", shape: [config.maxPositionEmbeddings, h])
        var ls: [Layer] = []
        for i in 0..<config.numHiddenLayers {
            let p = "text_model.encoder.layers.\(i)"
            ls.append(Layer(
                norm1: r.layerNorm("\(p).layer_norm1", eps: config.layerNormEps),
                norm2: r.layerNorm("\(p).layer_norm2", eps: config.layerNormEps),
                q: r.linear("\(p).self_attn.q_proj", inFeatures: h, outFeatures: h),
                k: r.linear("\(p).self_attn.k_proj", inFeatures: h, outFeatures: h),
                v: r.linear("\(p).self_attn.v_proj", inFeatures: h, outFeatures: h),
                out: r.linear("\(p).self_attn.out_proj", inFeatures: h, outFeatures: h),
                fc1: r.linear("\(p).mlp.fc1", inFeatures: h, outFeatures: inter),
                fc2: r.linear("\(p).mlp.fc2", inFeatures: inter, outFeatures: h)))
        }
        layers = ls
        finalNorm = r.layerNorm("text_model.final_layer_norm", eps: config.layerNormEps)
        // transformers configs carry a projection_dim even for the plain CLIPTextModel: the weights decide.
        if r.has("text_projection.weight") {
            projection = r.linear("text_projection", inFeatures: h, outFeatures: config.projectionDim ?? h, bias: false)
        } else {
            projection = nil
        }
        // transformers keeps a non-persistent position_ids buffer that some files carry.
        _ = r.optional("text_model.embeddings.position_ids")
        try r.finish()
        let unusedLoRA = Set(patches.keys).subtracting(r.usedPatches)
        if !unusedLoRA.isEmpty {
            throw ModelError.unexpectedKeys(component: "\(weights.component) LoRA", keys: unusedLoRA.sorted(), file: weights.file)
        }
    }

    /// A copy with LoRA patches applied (the same mapped weights; nothing is copied).
    /// A copy with more LoRA patches (added to the ones already applied); the mapped weights are shared.
    public func patched(_ more: [String: [LoRAPatch]]) throws -> CLIPTextModel {
        try CLIPTextModel(config: config, weights: weights, patches: patches.merging(more) { $0 + $1 })
    }

    public struct Output: Sendable {
        /// Hidden states after layer `numLayers - 1 - skip` ([B, L, hidden]); SDXL uses the penultimate (skip 1).
        public var hidden: Tensor
        /// Final-norm output at the first EOS token times the projection ([B, proj]) when the model has one,
        /// else the final-norm output at EOS ([B, hidden]).
        public var pooled: Tensor
    }

    /// Runs the encoder on token ids ([B][L]); `eosIndex` per sequence picks the pooled token
    /// (transformers: the first position of the EOS id, 49407).
    public func callAsFunction(_ ids: [[Int]], hiddenLayer: Int = -2, eosID: Int = 49407) throws -> Output {
        let b = ids.count
        guard b > 0, let l = ids.first?.count, l > 0, l <= config.maxPositionEmbeddings, ids.allSatisfy({ $0.count == l }) else {
            throw ModelError.invalidInput("CLIP: token batch must be non-empty, of equal lengths up to \(config.maxPositionEmbeddings)")
        }
        let h = config.hiddenSize
        // Embeddings: token rows gathered and widened (Ops.embedding), plus positions (broadcast over the batch).
        let flat = ids.flatMap { $0 }
        if let bad = flat.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ModelError.invalidInput("CLIP: token id \(bad) outside the vocabulary")
        }
        let tokens = try Ops.embedding(flat, weight: tokenEmbedding).reshaped([b, l, h])
        var x = try Ops.add(tokens, positionEmbedding.narrowed(dim: 0, start: 0, length: l).asF32().reshaped([1, l, h]))
        let n = layers.count
        let stopAfter = hiddenLayer < 0 ? n + 1 + hiddenLayer : hiddenLayer   // hidden_states[k] is after k layers (index -2: n - 1)
        var hidden: Tensor?
        if stopAfter == 0 { hidden = x }
        for (i, layer) in layers.enumerated() {
            let y = try layer.norm1(x)
            FlopCounter.add(4 * Double(b * l * l) * Double(h))
            let bf16 = layer.q.lowPrecision && ComputePrecision.useBF16
            let a = bf16 ? try Ops.attentionBF16(query: layer.q(y), key: layer.k(y), value: layer.v(y), heads: config.numAttentionHeads, causal: true)
                         : try Ops.attention(query: layer.q(y), key: layer.k(y), value: layer.v(y), heads: config.numAttentionHeads, causal: true)
            x = try Ops.add(x, layer.out(a))
            var m = try layer.fc1(layer.norm2(x))
            m = config.hiddenAct == .gelu ? try Ops.gelu(m) : try Ops.quickGELU(m)
            x = try Ops.add(x, layer.fc2(m))
            if i + 1 == stopAfter { hidden = x }
        }
        let normed = try finalNorm(x)
        // Pooled: the first EOS position of each sequence.
        var rows: [Float] = []
        for bi in 0..<b {
            let e = ids[bi].firstIndex(of: eosID) ?? (l - 1)
            rows += try normed.narrowed(dim: 0, start: bi, length: 1).narrowed(dim: 1, start: e, length: 1).asF32().toFloats()
        }
        var pooled = try Tensor(shape: [b, h], values: rows)
        if let projection { pooled = try projection(pooled) }
        return Output(hidden: hidden ?? normed, pooled: pooled)
    }
}
