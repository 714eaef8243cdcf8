import Foundation

/// Hyper-parameters of an SDXL-style UNet (diffusers `UNet2DConditionModel` config names), for what
/// tensor shapes cannot tell: heads per level, transformer depth per level, norm groups.
public struct UNetConfig: Codable, Sendable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    /// Per down level: whether it has cross-attention transformers (CrossAttnDownBlock2D).
    public var downBlockHasAttention: [Bool]
    public var transformerLayersPerBlock: [Int]
    /// Attention heads per down level (diffusers `num_attention_heads`, or `attention_head_dim` in
    /// SDXL configs, which store the head count there).
    public var attentionHeads: [Int]
    public var crossAttentionDim: Int
    public var additionTimeEmbedDim: Int
    public var projectionClassEmbeddingsInputDim: Int
    public var normNumGroups: Int
    public var normEps: Float
    public var useLinearProjection: Bool

    public var levels: Int { blockOutChannels.count }
    public var timeEmbedDim: Int { blockOutChannels[0] * 4 }

    /// The real SDXL base / SDXL-Lightning UNet.
    public static let sdxl = UNetConfig(
        inChannels: 4, outChannels: 4, blockOutChannels: [320, 640, 1280], layersPerBlock: 2,
        downBlockHasAttention: [false, true, true], transformerLayersPerBlock: [1, 2, 10], attentionHeads: [5, 10, 20],
        crossAttentionDim: 2048, additionTimeEmbedDim: 256, projectionClassEmbeddingsInputDim: 2816,
        normNumGroups: 32, normEps: 1e-5, useLinearProjection: true)

    public init(inChannels: Int, outChannels: Int, blockOutChannels: [Int], layersPerBlock: Int, downBlockHasAttention: [Bool],
                transformerLayersPerBlock: [Int], attentionHeads: [Int], crossAttentionDim: Int, additionTimeEmbedDim: Int,
                projectionClassEmbeddingsInputDim: Int, normNumGroups: Int, normEps: Float, useLinearProjection: Bool) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        self.downBlockHasAttention = downBlockHasAttention
        self.transformerLayersPerBlock = transformerLayersPerBlock
        self.attentionHeads = attentionHeads
        self.crossAttentionDim = crossAttentionDim
        self.additionTimeEmbedDim = additionTimeEmbedDim
        self.projectionClassEmbeddingsInputDim = projectionClassEmbeddingsInputDim
        self.normNumGroups = normNumGroups
        self.normEps = normEps
        self.useLinearProjection = useLinearProjection
    }

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block", downBlockTypes = "down_block_types"
        case transformerLayersPerBlock = "transformer_layers_per_block", attentionHeadDim = "attention_head_dim"
        case numAttentionHeads = "num_attention_heads", crossAttentionDim = "cross_attention_dim"
        case additionTimeEmbedDim = "addition_time_embed_dim", projectionClassEmbeddingsInputDim = "projection_class_embeddings_input_dim"
        case normNumGroups = "norm_num_groups", normEps = "norm_eps", useLinearProjection = "use_linear_projection"
        case addition_embed_type
    }

    /// Reads a diffusers `unet/config.json`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 4
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? 4
        blockOutChannels = try c.decode([Int].self, forKey: .blockOutChannels)
        layersPerBlock = try c.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? 2
        let types = try c.decode([String].self, forKey: .downBlockTypes)
        downBlockHasAttention = types.map { $0.hasPrefix("CrossAttn") }
        let n = blockOutChannels.count
        func intOrList(_ k: CodingKeys, default d: Int?) throws -> [Int]? {
            if let v = try? c.decode(Int.self, forKey: k) { return Array(repeating: v, count: n) }
            if let v = try? c.decode([Int].self, forKey: k) { return v }
            return d.map { Array(repeating: $0, count: n) }
        }
        transformerLayersPerBlock = try intOrList(.transformerLayersPerBlock, default: 1) ?? []
        attentionHeads = try intOrList(.numAttentionHeads, default: nil) ?? intOrList(.attentionHeadDim, default: 8) ?? []
        crossAttentionDim = try c.decode(Int.self, forKey: .crossAttentionDim)
        additionTimeEmbedDim = try c.decodeIfPresent(Int.self, forKey: .additionTimeEmbedDim) ?? 256
        projectionClassEmbeddingsInputDim = try c.decodeIfPresent(Int.self, forKey: .projectionClassEmbeddingsInputDim) ?? 2816
        normNumGroups = try c.decodeIfPresent(Int.self, forKey: .normNumGroups) ?? 32
        normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? 1e-5
        useLinearProjection = try c.decodeIfPresent(Bool.self, forKey: .useLinearProjection) ?? true
        let addType = try c.decodeIfPresent(String.self, forKey: .addition_embed_type)
        guard addType == "text_time" else {
            throw DecodingError.dataCorruptedError(forKey: .addition_embed_type, in: c,
                debugDescription: "not an SDXL UNet: addition_embed_type is \(addType ?? "absent"), expected text_time")
        }
        guard downBlockHasAttention.count == n, transformerLayersPerBlock.count == n, attentionHeads.count == n else {
            throw DecodingError.dataCorruptedError(forKey: .blockOutChannels, in: c, debugDescription: "per-level lists disagree in length")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(inChannels, forKey: .inChannels)
        try c.encode(outChannels, forKey: .outChannels)
        try c.encode(blockOutChannels, forKey: .blockOutChannels)
        try c.encode(layersPerBlock, forKey: .layersPerBlock)
        try c.encode(downBlockHasAttention.map { $0 ? "CrossAttnDownBlock2D" : "DownBlock2D" }, forKey: .downBlockTypes)
        try c.encode(transformerLayersPerBlock, forKey: .transformerLayersPerBlock)
        try c.encode(attentionHeads, forKey: .numAttentionHeads)
        try c.encode(crossAttentionDim, forKey: .crossAttentionDim)
        try c.encode(additionTimeEmbedDim, forKey: .additionTimeEmbedDim)
        try c.encode(projectionClassEmbeddingsInputDim, forKey: .projectionClassEmbeddingsInputDim)
        try c.encode(normNumGroups, forKey: .normNumGroups)
        try c.encode(normEps, forKey: .normEps)
        try c.encode(useLinearProjection, forKey: .useLinearProjection)
        try c.encode("text_time", forKey: .addition_embed_type)
    }
}
