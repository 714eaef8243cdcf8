import Foundation
import Imaging
import Workflow

/// LoadImage: a PNG file -> IMAGE (RGB) and MASK (1 - alpha; zeros without alpha), as ComfyUI's node.
enum LoadImageNode {
    static let definition = NodeDefinition(
        name: "LoadImage", category: "image",
        summary: "Loads a PNG (8/16-bit, gray/RGB/RGBA/palette) as an IMAGE and its alpha as a MASK (1 - alpha).",
        inputs: [.file("image", folders: ["input"], help: "PNG path: absolute, relative to the workflow, or under --models DIR/input")],
        outputs: [OutputSpec("image", .image), OutputSpec("mask", .mask)]
    ) { ctx in
        let url = try ctx.file("image")
        let png: DecodedPNG
        do { png = try PNG.read(url) } catch let e as ImagingError { throw NodeError(e.message, input: "image") }
        let (image, mask) = ImageBatch.fromPNG(png)
        return [.object(ImageValue(image)), .object(MaskValue(mask))]
    }
}
