/// A batch of images in ComfyUI's IMAGE convention: `[batch, height, width, channels]`, Float 0...1,
/// row-major, channels innermost (3 for RGB; 1 for masks / gray).
public struct ImageBatch: Sendable, Equatable {
    public var batch: Int
    public var height: Int
    public var width: Int
    public var channels: Int
    public var pixels: [Float]

    public init(batch: Int, height: Int, width: Int, channels: Int, pixels: [Float]) {
        precondition(pixels.count == batch * height * width * channels, "ImageBatch: pixel count does not match shape")
        self.batch = batch
        self.height = height
        self.width = width
        self.channels = channels
        self.pixels = pixels
    }

    public init(batch: Int, height: Int, width: Int, channels: Int, fill: Float = 0) {
        self.init(batch: batch, height: height, width: width, channels: channels,
                  pixels: [Float](repeating: fill, count: batch * height * width * channels))
    }

    public var pixelsPerImage: Int { height * width * channels }
    public var byteCount: Int { pixels.count * MemoryLayout<Float>.stride }

    @inlinable public subscript(b: Int, y: Int, x: Int, c: Int) -> Float {
        get { pixels[((b * height + y) * width + x) * channels + c] }
        set { pixels[((b * height + y) * width + x) * channels + c] = newValue }
    }
}

/// Errors from image reading, writing and processing, each naming what it is about.
public struct ImagingError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
