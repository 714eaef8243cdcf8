import Foundation
import Testing
@testable import Imaging

/// Golden data from Tests/Fixtures/make_imaging_fixtures.py: ComfyUI's common_upscale (torch 2.15
/// interpolate, Pillow 13 for lanczos) on a random float32 [2,13,17,3] image, raw little-endian float32.
private let fixtureDir = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/imaging")

private func loadFloats(_ file: String) throws -> [Float] {
    let data = try Data(contentsOf: fixtureDir.appendingPathComponent(file))
    try #require(data.count % 4 == 0)
    return data.withUnsafeBytes { raw in
        (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }
}

private func loadInput() throws -> ImageBatch {
    let pixels = try loadFloats("scale_input.bin")
    try #require(pixels.count == 2 * 13 * 17 * 3)
    return ImageBatch(batch: 2, height: 13, width: 17, channels: 3, pixels: pixels)
}

/// The targets of the fixture script: (width, height, crop).
private let targets: [(Int, Int, String)] = [
    (29, 7, "disabled"), (37, 29, "disabled"), (5, 4, "disabled"), (17, 13, "disabled"),
    (34, 26, "disabled"), (8, 6, "disabled"), (1, 1, "disabled"), (3, 40, "disabled"),
    (11, 3, "disabled"), (15, 5, "disabled"),
    (29, 7, "center"), (10, 20, "center"), (40, 10, "center"), (16, 16, "center"),
]

@Suite("ImageScale (ComfyUI common_upscale)")
struct ImageScaleTests {
    /// torch modes: 1e-5 absolute. Inputs are in [0, 1) and every output is a short weighted sum
    /// (at most 4 x 4 taps, or an area mean) computed in fp32 by both sides in the same order; what is
    /// left is FMA contraction, reordering and weight-formula differences in torch's vectorised kernels:
    /// observed at most 0 (nearest-exact), 1.2e-7 (area), 8e-7 (bilinear) and 1.3e-6 (bicubic) here,
    /// i.e. a few ulps of the weights. 1e-5 leaves ~10x headroom while any indexing or weight mistake
    /// shows up as > 1e-3.
    /// lanczos: Pillow's integer arithmetic is reproduced exactly, so the outputs (k/255) must be equal.
    @Test("matches the reference", arguments: ScaleMethod.allCases, targets.indices)
    func matchesReference(method: ScaleMethod, target: Int) throws {
        let (width, height, cropName) = targets[target]
        let crop = try #require(CropMode(rawValue: cropName))
        let input = try loadInput()
        let expected = try loadFloats("scale_\(method.rawValue)_\(width)x\(height)_\(cropName).bin")
        let out = try scaleImage(input, width: width, height: height, method: method, crop: crop)
        #expect(out.batch == 2 && out.height == height && out.width == width && out.channels == 3)
        try #require(out.pixels.count == expected.count)
        let maxErr = zip(out.pixels, expected).map { abs($0 - $1) }.max() ?? 0
        let tolerance: Float = method == .lanczos ? 0 : 1e-5
        print("ImageScale \(method.rawValue) 17x13 -> \(width)x\(height) \(cropName): max abs error \(maxErr)")
        #expect(maxErr <= tolerance, "\(method.rawValue) \(width)x\(height) \(cropName): max abs error \(maxErr)")
    }

    @Test("absurd sizes and empty inputs throw")
    func badSizes() throws {
        let img = ImageBatch(batch: 1, height: 4, width: 4, channels: 3, fill: 0.5)
        for (w, h) in [(0, 4), (4, 0), (-1, 4), (16385, 4), (4, 1 << 40), (Int.max, Int.max)] {
            #expect(throws: ImagingError.self) { try scaleImage(img, width: w, height: h, method: .bilinear, crop: .disabled) }
        }
        do {
            _ = try scaleImage(img, width: 20000, height: 10, method: .area, crop: .disabled)
            Issue.record("expected a throw")
        } catch {
            #expect("\(error)".contains("20000x10"))
        }
        // 16384 x 16384 x 2 images = 2^29 pixels: over the output limit.
        let two = ImageBatch(batch: 2, height: 1, width: 1, channels: 3)
        #expect(throws: ImagingError.self) { try scaleImage(two, width: 16384, height: 16384, method: .nearestExact, crop: .disabled) }
        let empty = ImageBatch(batch: 1, height: 0, width: 4, channels: 3)
        #expect(throws: ImagingError.self) { try scaleImage(empty, width: 4, height: 4, method: .bilinear, crop: .disabled) }
        // A center crop that would keep zero columns (16 wide to a 1:16384 aspect).
        let wide = ImageBatch(batch: 1, height: 1, width: 16, channels: 3)
        #expect(throws: ImagingError.self) { try scaleImage(wide, width: 1, height: 16384, method: .bilinear, crop: .center) }
    }

    @Test("same size is the identity for the torch modes")
    func identity() throws {
        let input = try loadInput()
        for method in [ScaleMethod.nearestExact, .bilinear, .bicubic, .area] {
            #expect(try scaleImage(input, width: 17, height: 13, method: method, crop: .disabled).pixels == input.pixels)
        }
    }

    @Test("ComfyUI's 0 = keep aspect ratio")
    func targetSize() {
        #expect(imageScaleTargetSize(sourceWidth: 600, sourceHeight: 400, width: 0, height: 0) == nil)
        #expect(imageScaleTargetSize(sourceWidth: 600, sourceHeight: 400, width: 0, height: 300)! == (450, 300))
        #expect(imageScaleTargetSize(sourceWidth: 600, sourceHeight: 400, width: 300, height: 0)! == (300, 200))
        // round half to even: 5 * 1 / 2 = 2.5 -> 2
        #expect(imageScaleTargetSize(sourceWidth: 2, sourceHeight: 5, width: 1, height: 0)! == (1, 2))
        #expect(imageScaleTargetSize(sourceWidth: 1000, sourceHeight: 1, width: 0, height: 1)! == (1000, 1))
        #expect(imageScaleTargetSize(sourceWidth: 1, sourceHeight: 1000, width: 0, height: 1)! == (1, 1))
    }

    @Test("center crop region follows common_upscale")
    func cropRegion() throws {
        // 17x13 to 29x7: old aspect 1.31 < 4.14 -> y = round((13 - 13 * 1.3077 / 4.1429) / 2) = round(4.45) = 4
        #expect(try imageScaleCropRegion(sourceWidth: 17, sourceHeight: 13, width: 29, height: 7, crop: .center)
                == ImageScaleRegion(x: 0, y: 4, width: 17, height: 5))
        #expect(try imageScaleCropRegion(sourceWidth: 17, sourceHeight: 13, width: 16, height: 16, crop: .center)
                == ImageScaleRegion(x: 2, y: 0, width: 13, height: 13))
        #expect(try imageScaleCropRegion(sourceWidth: 17, sourceHeight: 13, width: 16, height: 16, crop: .disabled)
                == ImageScaleRegion(x: 0, y: 0, width: 17, height: 13))
    }

    @Test("method names and order are ComfyUI's")
    func names() {
        #expect(ScaleMethod.allCases.map(\.rawValue) == ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"])
        #expect(CropMode.allCases.map(\.rawValue) == ["disabled", "center"])
    }
}
