import Imaging
import Workflow

/// Canny: edge map of each image (OpenCV's cv2.Canny on the 8-bit gray image, thresholds x 255, as
/// the ControlNet canny annotator uses it), as a 3-channel IMAGE.
enum CannyNode {
    static let definition = NodeDefinition(
        name: "Canny", category: "image/preprocessors",
        summary: "Edge map (OpenCV Canny on the 8-bit gray image; thresholds in 0...1, x255), for canny ControlNets.",
        inputs: [.link("image", .image), .float("low_threshold", default: 0.4, min: 0.01, max: 0.99),
                 .float("high_threshold", default: 0.8, min: 0.01, max: 0.99)],
        outputs: [OutputSpec("image", .image)]
    ) { ctx in
        let img = try ctx.object("image", as: ImageValue.self).batch
        do {
            return [.object(ImageValue(try canny(img, low: Float(try ctx.double("low_threshold")), high: Float(try ctx.double("high_threshold")))))]
        } catch let e as ImagingError { throw NodeError(e.message, input: "image") }
    }
}

/// ImageScale: resize to width x height (0 keeps the aspect ratio), ComfyUI's methods and center crop.
enum ImageScaleNode {
    static let definition = NodeDefinition(
        name: "ImageScale", category: "image/upscaling",
        summary: "Resizes images (nearest-exact, bilinear, area, bicubic, lanczos), optionally center-cropping to the new aspect ratio.",
        inputs: [.link("image", .image), .choice("upscale_method", ScaleMethod.allCases.map(\.rawValue), default: "nearest-exact"),
                 .int("width", default: 512, min: 0, max: ImageScaleLimits.maxSide),
                 .int("height", default: 512, min: 0, max: ImageScaleLimits.maxSide),
                 .choice("crop", CropMode.allCases.map(\.rawValue), default: "disabled")],
        outputs: [OutputSpec("image", .image)]
    ) { ctx in
        let img = try ctx.object("image", as: ImageValue.self).batch
        let method = ScaleMethod(rawValue: try ctx.string("upscale_method")) ?? .nearestExact
        let crop = CropMode(rawValue: try ctx.string("crop")) ?? .disabled
        guard let size = imageScaleTargetSize(sourceWidth: img.width, sourceHeight: img.height,
                                              width: try ctx.int("width"), height: try ctx.int("height")) else {
            return [.object(ImageValue(img))]
        }
        do {
            return [.object(ImageValue(try scaleImage(img, width: size.width, height: size.height, method: method, crop: crop)))]
        } catch let e as ImagingError { throw NodeError(e.message, input: "width") }
    }
}
