import Foundation

/// Hyper-parameters of an `AutoencoderKL` (diffusers config names).
public struct VAEConfig: Codable, Sendable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var latentChannels: Int
    public var normNumGroups: Int
    public var scalingFactor: Float

    /// The SDXL VAE (scale 0.13025). Runs in fp32: it overflows fp16.
    public static let sdxl = VAEConfig(inChannels: 3, outChannels: 3, blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2,
                                       latentChannels: 4, normNumGroups: 32, scalingFactor: 0.13025)

    public init(inChannels: Int, outChannels: Int, blockOutChannels: [Int], layersPerBlock: Int, latentChannels: Int,
                normNumGroups: Int, scalingFactor: Float) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        self.latentChannels = latentChannels
        self.normNumGroups = normNumGroups
        self.scalingFactor = scalingFactor
    }

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block", latentChannels = "latent_channels", normNumGroups = "norm_num_groups"
        case scalingFactor = "scaling_factor"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 3
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? 3
        blockOutChannels = try c.decode([Int].self, forKey: .blockOutChannels)
        layersPerBlock = try c.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? 2
        latentChannels = try c.decodeIfPresent(Int.self, forKey: .latentChannels) ?? 4
        normNumGroups = try c.decodeIfPresent(Int.self, forKey: .normNumGroups) ?? 32
        scalingFactor = try c.decodeIfPresent(Float.self, forKey: .scalingFactor) ?? 0.13025
    }

    /// Pixels per latent pixel along each side.
    public var downscale: Int { 1 << (blockOutChannels.count - 1) }
}
