import CPNG
import Foundation

/// A decoded PNG: samples as stored (8 or 16 bits), palette expanded, transparency as an alpha channel.
public struct DecodedPNG: Sendable {
    public var width: Int
    public var height: Int
    /// 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
    public var channels: Int
    public var bitDepth: Int
    /// Samples in 0...65535 (16-bit) or 0...255 (8-bit), row-major, channels innermost.
    public var samples: [UInt16]
    /// tEXt / zTXt / iTXt chunks.
    public var text: [String: String]

    public var maxSample: Float { bitDepth == 16 ? 65535 : 255 }
    public var hasAlpha: Bool { channels == 2 || channels == 4 }
}

/// PNG reading and writing through libpng.
public enum PNG {
    /// Images larger than this are refused before any pixel memory is allocated.
    public static let maxPixels: UInt64 = 1 << 28

    public static func read(_ url: URL) throws -> DecodedPNG {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw ImagingError("cannot read '\(url.path)': \(error.localizedDescription)")
        }
        return try decode(data, name: url.path)
    }

    public static func decode(_ data: Data, name: String = "<memory>") throws -> DecodedPNG {
        var img = sdf_png_image()
        var err = [CChar](repeating: 0, count: 512)
        let rc = data.withUnsafeBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return 1 }
            return sdf_png_read(base.assumingMemoryBound(to: UInt8.self), raw.count, maxPixels, &img, &err, err.count)
        }
        defer { sdf_png_free(&img) }
        if rc != 0 {
            let msg = String(cString: err)
            throw ImagingError("'\(name)' is not a readable PNG: \(msg.isEmpty ? "unknown libpng error" : msg)")
        }
        let w = Int(img.width), h = Int(img.height), c = Int(img.channels), depth = Int(img.bit_depth)
        let n = w * h * c
        var samples = [UInt16](repeating: 0, count: n)
        if depth == 16 {
            img.pixels.withMemoryRebound(to: UInt16.self, capacity: n) { p in
                samples.withUnsafeMutableBufferPointer { dst in for i in 0..<n { dst[i] = p[i] } }
            }
        } else {
            samples.withUnsafeMutableBufferPointer { dst in for i in 0..<n { dst[i] = UInt16(img.pixels[i]) } }
        }
        var text: [String: String] = [:]
        for i in 0..<Int(img.n_text) {
            if let k = img.text_keys[i], let v = img.text_values[i] { text[String(cString: k)] = String(cString: v) }
        }
        return DecodedPNG(width: w, height: h, channels: c, bitDepth: depth, samples: samples, text: text)
    }

    /// Writes samples (8-bit in 0...255 or 16-bit) with tEXt chunks, directly to `url`.
    /// Callers that need atomicity write to a temporary path and rename.
    public static func write(_ url: URL, width: Int, height: Int, channels: Int, bitDepth: Int = 8,
                             samples: [UInt16], text: [(String, String)] = []) throws {
        guard width > 0, height > 0, (1...4).contains(channels), bitDepth == 8 || bitDepth == 16,
              samples.count == width * height * channels else {
            throw ImagingError("cannot write '\(url.path)': bad image shape \(width)x\(height)x\(channels)")
        }
        var err = [CChar](repeating: 0, count: 512)
        let keys = text.map { strdup($0.0) }
        let values = text.map { strdup($0.1) }
        defer { keys.forEach { free($0) }; values.forEach { free($0) } }
        let rc: Int32
        if bitDepth == 8 {
            let bytes = samples.map { UInt8(truncatingIfNeeded: $0) }
            rc = bytes.withUnsafeBufferPointer { px in
                withCStrings(keys, values) { k, v in
                    sdf_png_write(url.path, px.baseAddress, UInt32(width), UInt32(height), Int32(channels), 8, k, v, text.count, &err, err.count)
                }
            }
        } else {
            rc = samples.withUnsafeBytes { raw in
                withCStrings(keys, values) { k, v in
                    sdf_png_write(url.path, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(width), UInt32(height),
                                  Int32(channels), 16, k, v, text.count, &err, err.count)
                }
            }
        }
        if rc != 0 { throw ImagingError("cannot write '\(url.path)': \(String(cString: err))") }
    }

    private static func withCStrings<R>(_ keys: [UnsafeMutablePointer<CChar>?], _ values: [UnsafeMutablePointer<CChar>?],
                                        _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        let k = keys.map { UnsafePointer($0) }
        let v = values.map { UnsafePointer($0) }
        return k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in body(kp.baseAddress, vp.baseAddress) } }
    }
}

extension ImageBatch {
    /// ComfyUI's LoadImage conversion: RGB in 0...1 (gray replicated) and a mask = 1 - alpha
    /// (zeros when the file has no alpha), each a batch of one.
    public static func fromPNG(_ png: DecodedPNG) -> (image: ImageBatch, mask: ImageBatch) {
        let w = png.width, h = png.height, c = png.channels
        var rgb = [Float](repeating: 0, count: w * h * 3)
        var mask = [Float](repeating: 0, count: w * h)
        let scale = 1 / png.maxSample
        png.samples.withUnsafeBufferPointer { s in
            for p in 0..<(w * h) {
                let base = p * c
                if c <= 2 {
                    let g = Float(s[base]) * scale
                    rgb[3 * p] = g; rgb[3 * p + 1] = g; rgb[3 * p + 2] = g
                } else {
                    rgb[3 * p] = Float(s[base]) * scale
                    rgb[3 * p + 1] = Float(s[base + 1]) * scale
                    rgb[3 * p + 2] = Float(s[base + 2]) * scale
                }
                if png.hasAlpha { mask[p] = 1 - Float(s[base + c - 1]) * scale }
            }
        }
        return (ImageBatch(batch: 1, height: h, width: w, channels: 3, pixels: rgb),
                ImageBatch(batch: 1, height: h, width: w, channels: 1, pixels: mask))
    }

    /// 8-bit samples of image `index` as ComfyUI's SaveImage makes them: clip(255 * x, 0, 255) truncated.
    public func samples8(image index: Int) -> [UInt16] {
        let n = pixelsPerImage
        let start = index * n
        var out = [UInt16](repeating: 0, count: n)
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<n {
                let v = p[start + i] * 255
                out[i] = v.isNaN ? 0 : UInt16(Swift.min(255, Swift.max(0, v)))
            }
        }
        return out
    }
}
