import Foundation
import Testing
@testable import Imaging

let pngDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures/png")

struct PNGCase: Decodable {
    var width: Int, height: Int, channels: Int, bit_depth: Int
    var samples: [Int]
    var text: [String: String]?
}

let pngCases: [String: PNGCase] = {
    guard let d = try? Data(contentsOf: pngDir.appendingPathComponent("expected.json")),
          let c = try? JSONDecoder().decode([String: PNGCase].self, from: d) else { return [:] }
    return c
}()

func scratch() -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("sdflow-png-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

@Suite struct PNGTests {
    @Test func fixturesPresent() { #expect(pngCases.count == 11) }

    /// Files written by Pillow / OpenCV in each colour type decode to exactly the samples they hold.
    @Test(arguments: ["gray8.png", "gray1.png", "gray16.png", "graya8.png", "rgb8.png", "rgba8.png", "rgb16.png",
                      "rgba16.png", "palette.png", "palette_trns.png", "text.png"])
    func readsEveryFormat(name: String) throws {
        let expected = try #require(pngCases[name])
        let png = try PNG.read(pngDir.appendingPathComponent(name))
        #expect(png.width == expected.width && png.height == expected.height)
        #expect(png.channels == expected.channels && png.bitDepth == expected.bit_depth)
        #expect(png.samples.map(Int.init) == expected.samples)
        for (k, v) in expected.text ?? [:] { #expect(png.text[k] == v) }
    }

    /// Our writer's files read back bit for bit, with their text chunks, in every channel count and depth.
    @Test(arguments: [(1, 8), (2, 8), (3, 8), (4, 8), (1, 16), (3, 16), (4, 16)])
    func roundTrip(channels: Int, depth: Int) throws {
        let w = 7, h = 3
        let maxV = depth == 16 ? 65535 : 255
        let samples = (0..<(w * h * channels)).map { UInt16(($0 * 7919 + 13) % (maxV + 1)) }
        let url = scratch().appendingPathComponent("rt.png")
        try PNG.write(url, width: w, height: h, channels: channels, bitDepth: depth, samples: samples,
                      text: [("prompt", "{\"a\": 1}"), ("workflow", "nodes:\n  x: {type: Y}\n")])
        let back = try PNG.read(url)
        #expect(back.samples == samples && back.channels == channels && back.bitDepth == depth)
        #expect(back.text["prompt"] == "{\"a\": 1}")
        #expect(back.text["workflow"] == "nodes:\n  x: {type: Y}\n")
    }

    @Test func loadImageConversion() throws {
        let png = try PNG.read(pngDir.appendingPathComponent("palette_trns.png"))
        let (img, mask) = ImageBatch.fromPNG(png)
        let e = pngCases["palette_trns.png"]!.samples
        #expect(img.channels == 3 && mask.channels == 1 && img.width == 5 && img.height == 4)
        for p in 0..<20 {
            #expect(img.pixels[3 * p] == Float(e[4 * p]) / 255)
            #expect(abs(mask.pixels[p] - (1 - Float(e[4 * p + 3]) / 255)) < 1e-7)
        }
        let g16 = ImageBatch.fromPNG(try PNG.read(pngDir.appendingPathComponent("gray16.png"))).image
        #expect(g16.pixels[1] == Float(pngCases["gray16.png"]!.samples[0]) / 65535)
    }

    @Test func saveTruncatesLikeComfyUI() {
        let img = ImageBatch(batch: 1, height: 1, width: 2, channels: 3, pixels: [0.999, 0.5, -1, 2, 0.00393, .nan])
        #expect(img.samples8(image: 0) == [254, 127, 0, 255, 1, 0])
    }

    @Test func badInputIsAClearError() throws {
        let dir = scratch()
        let notPNG = dir.appendingPathComponent("x.png")
        try Data("hello, not an image".utf8).write(to: notPNG)
        #expect { try PNG.read(notPNG) } throws: { "\($0)".contains("not a PNG file") && "\($0)".contains("x.png") }
        let full = try Data(contentsOf: pngDir.appendingPathComponent("rgb8.png"))
        let cut = dir.appendingPathComponent("cut.png")
        try full.prefix(full.count - 30).write(to: cut)
        #expect { try PNG.read(cut) } throws: { "\($0)".contains("cut.png") }
        // A header claiming 10^6 x 10^6 pixels is refused before allocating.
        var huge = Data(full.prefix(33))
        huge.replaceSubrange(16..<24, with: [0x00, 0x0F, 0x42, 0x40, 0x00, 0x0F, 0x42, 0x40])
        let crc = crc32(huge[12..<29])
        huge.replaceSubrange(29..<33, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 255), UInt8(crc >> 8 & 255), UInt8(crc & 255)])
        huge.append(full.suffix(from: 33))
        #expect { try PNG.decode(huge, name: "huge.png") } throws: { "\($0)".contains("1000000x1000000") }
        #expect(throws: ImagingError.self) { try PNG.read(dir.appendingPathComponent("missing.png")) }
        #expect(throws: ImagingError.self) {
            try PNG.write(URL(fileURLWithPath: "/nonexistent-dir/a.png"), width: 1, height: 1, channels: 3, samples: [0, 0, 0])
        }
    }
}

func crc32(_ data: Data) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in data {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return ~c
}
