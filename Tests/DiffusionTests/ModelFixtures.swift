import Foundation
import Testing
@testable import Diffusion
import Tensor

let tinyDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/sdxl-tiny")

/// Reference tensors written by Tests/Fixtures/make_fixtures.py (diffusers / transformers, fp32).
let reference: SafeTensorsFile? = try? SafeTensorsFile(url: tinyDir.appendingPathComponent("reference.safetensors"))

func ref(_ name: String) throws -> Tensor {
    guard let reference else { throw ModelError.invalidInput("reference.safetensors missing") }
    return try reference.tensor(name)
}

let tinyConfigs: SDXLConfigs = (try? SDXLConfigs.fromFolder(tinyDir.appendingPathComponent("diffusers"))) ?? .sdxl

/// Tolerance from the fixture manifest: fp32 vs fp32 with reordered sums,
/// max |a - b| <= 1e-4 * max(1, max |ref|).
func expectClose(_ got: Tensor, _ want: Tensor, _ what: String, tolerance: Float = 1e-4,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.shape == want.shape, "\(what): shape \(got.shape) vs \(want.shape)", sourceLocation: sourceLocation)
    guard got.shape == want.shape else { return }
    let a = got.toFloats(), b = want.toFloats()
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0..<a.count {
        maxDiff = max(maxDiff, abs(a[i] - b[i]))
        maxRef = max(maxRef, abs(b[i]))
    }
    let bound = tolerance * max(1, maxRef)
    #expect(maxDiff <= bound, "\(what): max |diff| \(maxDiff) > \(bound) (max |ref| \(maxRef))", sourceLocation: sourceLocation)
}

func ids(_ name: String) throws -> [[Int]] {
    let t = try ref(name)
    let v = t.toFloats().map { Int($0) }
    let l = t.shape[1]
    return (0..<t.shape[0]).map { Array(v[($0 * l)..<(($0 + 1) * l)]) }
}

func timeIds() throws -> [[Float]] {
    let t = try ref("unet.in.time_ids")
    let v = t.toFloats()
    return (0..<t.shape[0]).map { Array(v[($0 * 6)..<(($0 + 1) * 6)]) }
}

/// Shared loads (they are memory-mapped views, cheap, but keep the tests short).
let singleFileResult = Result { try SDXLLoader.loadSingleFile(tinyDir.appendingPathComponent("sdxl_tiny.safetensors"), configs: tinyConfigs) }
let diffusersFolderResult = Result { try SDXLLoader.loadFolder(tinyDir.appendingPathComponent("diffusers")) }
var singleFile: SDXLComponents? { get throws { try singleFileResult.get() } }
var diffusersFolder: SDXLComponents? { get throws { try diffusersFolderResult.get() } }
