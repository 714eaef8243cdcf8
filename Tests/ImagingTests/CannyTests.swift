import Foundation
import Testing
@testable import Imaging

/// Golden data from Tests/Fixtures/make_imaging_fixtures.py (OpenCV 5.0.0 `cv2.Canny` on
/// `cv2.cvtColor(rgb, COLOR_RGB2GRAY)`), read as raw bytes so these tests do not depend on PNG code.
private let fixtureDir = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/imaging")

private let photoSizes: [String: (height: Int, width: Int)] = ["astronaut": (256, 256), "coffee": (200, 300)]

/// The photo as a one-image batch, Float u8/255 like an image loaded from an 8-bit file.
private func loadPhoto(_ name: String) throws -> ImageBatch {
    let size = try #require(photoSizes[name])
    let bytes = try Data(contentsOf: fixtureDir.appendingPathComponent("\(name)_rgb.bin"))
    try #require(bytes.count == size.height * size.width * 3)
    return ImageBatch(batch: 1, height: size.height, width: size.width, channels: 3,
                      pixels: bytes.map { Float($0) / 255 })
}

private func loadEdges(_ name: String, _ low: Double, _ high: Double) throws -> [UInt8] {
    // Python's str() of the thresholds, as in the fixture file names.
    let file = "canny_\(name)_\(low)_\(high).bin"
    return [UInt8](try Data(contentsOf: fixtureDir.appendingPathComponent(file)))
}

@Suite("Canny (OpenCV-exact)")
struct CannyTests {
    @Test("agrees with cv2.Canny on photos", arguments: ["astronaut", "coffee"],
          [(0.4, 0.8), (0.1, 0.3), (0.2, 0.5), (0.05, 0.15)])
    func agreesWithOpenCV(photo: String, thresholds: (Double, Double)) throws {
        let image = try loadPhoto(photo)
        let expected = try loadEdges(photo, thresholds.0, thresholds.1)
        let out = try canny(image, low: Float(thresholds.0), high: Float(thresholds.1))
        #expect(out.batch == 1 && out.height == image.height && out.width == image.width && out.channels == 3)
        try #require(expected.count == image.height * image.width)
        var agree = 0, edges = 0
        for i in 0..<expected.count {
            let r = out.pixels[3 * i], g = out.pixels[3 * i + 1], b = out.pixels[3 * i + 2]
            #expect(r == g && g == b && (r == 0 || r == 1))
            if (r == 1) == (expected[i] == 255) { agree += 1 }
            if expected[i] == 255 { edges += 1 }
        }
        let fraction = Double(agree) / Double(expected.count)
        print("Canny \(photo) (\(thresholds.0), \(thresholds.1)): agreement \(String(format: "%.4f", fraction * 100))% (\(expected.count - agree) of \(expected.count) pixels differ, \(edges) reference edge pixels)")
        #expect(fraction >= 0.99)
    }

    @Test("gray conversion is OpenCV's RGB2GRAY (15-bit fixed point) after rounding to uint8")
    func grayConversion() {
        // Values checked with cv2.cvtColor(..., COLOR_RGB2GRAY), opencv-python 5.0.0.
        let rgb: [[UInt8]] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 0, 0], [128, 128, 0], [1, 1, 1]]
        let expected: [UInt8] = [76, 150, 29, 255, 3, 113, 1]
        let image = ImageBatch(batch: 1, height: 1, width: rgb.count, channels: 3,
                               pixels: rgb.flatMap { $0.map { Float($0) / 255 } })
        #expect(cannyGray(image, index: 0) == expected)
    }

    @Test("each image of a batch is processed; 1 and 4 channels accepted")
    func batchAndChannels() throws {
        let photo = try loadPhoto("coffee")
        let single = try canny(photo, low: 0.2, high: 0.5)
        let pair = ImageBatch(batch: 2, height: photo.height, width: photo.width, channels: 3,
                              pixels: photo.pixels + photo.pixels)
        let both = try canny(pair, low: 0.2, high: 0.5)
        #expect(both.batch == 2)
        #expect(Array(both.pixels[0..<single.pixels.count]) == single.pixels)
        #expect(Array(both.pixels[single.pixels.count...]) == single.pixels)
        // Swapped thresholds are swapped back, as in OpenCV.
        #expect(try canny(photo, low: 0.5, high: 0.2).pixels == single.pixels)

        var rgba = ImageBatch(batch: 1, height: photo.height, width: photo.width, channels: 4)
        for y in 0..<photo.height { for x in 0..<photo.width {
            for c in 0..<3 { rgba[0, y, x, c] = photo[0, y, x, c] }
            rgba[0, y, x, 3] = 0.5
        } }
        #expect(try canny(rgba, low: 0.2, high: 0.5).pixels == single.pixels)

        let grayPlane = cannyGray(photo, index: 0)
        let gray = ImageBatch(batch: 1, height: photo.height, width: photo.width, channels: 1,
                              pixels: grayPlane.map { Float($0) / 255 })
        #expect(try canny(gray, low: 0.2, high: 0.5).pixels == single.pixels)
    }

    @Test("bad input throws")
    func badInput() throws {
        let two = ImageBatch(batch: 1, height: 4, width: 4, channels: 2)
        #expect(throws: ImagingError.self) { try canny(two, low: 0.1, high: 0.2) }
        let ok = ImageBatch(batch: 1, height: 4, width: 4, channels: 3)
        #expect(throws: ImagingError.self) { try canny(ok, low: .nan, high: 0.2) }
        #expect(throws: ImagingError.self) { try canny(ok, low: 0.1, high: .infinity) }
        // Tiny and flat images work.
        #expect(try canny(ImageBatch(batch: 1, height: 1, width: 1, channels: 3, fill: 0.5), low: 0.1, high: 0.2).pixels == [0, 0, 0])
        #expect(try canny(ok, low: 0, high: 0).pixels.allSatisfy { $0 == 0 })
    }

    @Test("1024x1024 timing")
    func timing1024() throws {
        let photo = try loadPhoto("astronaut")
        // 4x nearest upscale of the 256x256 photo.
        var big = ImageBatch(batch: 1, height: 1024, width: 1024, channels: 3)
        for y in 0..<1024 { for x in 0..<1024 { for c in 0..<3 { big[0, y, x, c] = photo[0, y / 4, x / 4, c] } } }
        _ = try canny(big, low: 0.4, high: 0.8)
        let clock = ContinuousClock()
        let t = try clock.measure { _ = try canny(big, low: 0.4, high: 0.8) }
        print("Canny 1024x1024: \(t)")
        #if !DEBUG
        #expect(t < .seconds(1))
        #endif
    }
}
