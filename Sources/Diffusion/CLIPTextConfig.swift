import Foundation

/// Hyper-parameters of a CLIP text transformer (transformers' `CLIPTextConfig` field names).
public struct CLIPTextConfig: Codable, Sendable, Equatable {
    public enum Activation: String, Codable, Sendable { case quickGELU = "quick_gelu", gelu }
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    public var hiddenAct: Activation
    public var layerNormEps: Float
    /// Output size of the pooled projection (bigG only).
    public var projectionDim: Int?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps", projectionDim = "projection_dim"
    }

    public init(vocabSize: Int = 49408, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                maxPositionEmbeddings: Int = 77, hiddenAct: Activation, layerNormEps: Float = 1e-5, projectionDim: Int? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.projectionDim = projectionDim
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? 49408
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 77
        hiddenAct = try c.decodeIfPresent(Activation.self, forKey: .hiddenAct) ?? .quickGELU
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-5
        projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim)
    }

    /// SDXL's first text encoder, OpenAI CLIP ViT-L/14's text tower.
    public static let sdxlCLIPL = CLIPTextConfig(hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12,
                                                 numAttentionHeads: 12, hiddenAct: .quickGELU)
    /// SDXL's second text encoder, OpenCLIP ViT-bigG/14's text tower with its projection.
    public static let sdxlBigG = CLIPTextConfig(hiddenSize: 1280, intermediateSize: 5120, numHiddenLayers: 32,
                                                numAttentionHeads: 20, hiddenAct: .gelu, projectionDim: 1280)
}
