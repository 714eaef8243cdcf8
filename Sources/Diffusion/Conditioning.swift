import Tensor

/// SDXL text conditioning: the concatenated penultimate hidden states of both encoders
/// ([1, 77*k, 2048]), bigG's pooled projection ([1, 1280]), and optional size conditioning
/// (when absent, ComfyUI's rule applies at sampling time: the latent's size x 8, no crop).
public struct Conditioning: Sendable {
    public var context: Tensor
    public var pooled: Tensor
    public var size: SizeConditioning?
    /// ControlNets applied to this conditioning, in order.
    public var controls: [ControlApplication] = []

    public init(context: Tensor, pooled: Tensor, size: SizeConditioning? = nil) {
        self.context = context
        self.pooled = pooled
        self.size = size
    }
}

/// SDXL's six size numbers (ComfyUI CLIPTextEncodeSDXL's width/height/crop/target).
public struct SizeConditioning: Sendable, Equatable {
    public var width: Int, height: Int, cropW: Int, cropH: Int, targetWidth: Int, targetHeight: Int
    public init(width: Int, height: Int, cropW: Int = 0, cropH: Int = 0, targetWidth: Int? = nil, targetHeight: Int? = nil) {
        self.width = width
        self.height = height
        self.cropW = cropW
        self.cropH = cropH
        self.targetWidth = targetWidth ?? width
        self.targetHeight = targetHeight ?? height
    }

    /// In the UNet's order: (orig_h, orig_w, crop_top, crop_left, target_h, target_w).
    public var timeIds: [Float] { [height, width, cropH, cropW, targetHeight, targetWidth].map(Float.init) }
}

/// A ControlNet hooked onto a conditioning: active while start >= sigma >= end (sigmas from ComfyUI's
/// start/end percents), residuals scaled by strength.
public struct ControlApplication: @unchecked Sendable {
    public var strength: Float
    public var sigmaStart: Float
    public var sigmaEnd: Float
    /// Computes the residuals for a model-space input at a sigma / timestep with the given context.
    public var residuals: (_ x: Tensor, _ sigma: Float, _ timestep: Float, _ cond: Conditioning, _ timeIds: [[Float]]) throws -> ControlResiduals
    public init(strength: Float, sigmaStart: Float, sigmaEnd: Float,
                residuals: @escaping (_ x: Tensor, _ sigma: Float, _ timestep: Float, _ cond: Conditioning, _ timeIds: [[Float]]) throws -> ControlResiduals) {
        self.strength = strength
        self.sigmaStart = sigmaStart
        self.sigmaEnd = sigmaEnd
        self.residuals = residuals
    }
}
