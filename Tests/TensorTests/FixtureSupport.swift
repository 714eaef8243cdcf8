import Foundation
import Testing
import Tensor

/// Locates Tests/Fixtures/tensor relative to this source file (no SwiftPM resources).
enum Fixtures {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()   // TensorTests
        .deletingLastPathComponent()   // Tests
        .appendingPathComponent("Fixtures/tensor", isDirectory: true)

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static func open(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(url: url(name)) }

    /// The per-case parameters stored as JSON under `__metadata__["params"]`.
    static func params(_ file: SafeTensorsFile) throws -> [String: [String: Any]] {
        guard let s = file.metadata["params"], let d = s.data(using: .utf8),
              let obj = try JSONSerialization.jsonObject(with: d) as? [String: [String: Any]] else {
            throw FixtureError("no params metadata in \(file.path)")
        }
        return obj
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ s: String) { description = s }
}

/// Max |got - want| and max |want|.
func maxErrors(_ got: Tensor, _ want: Tensor) -> (err: Float, scale: Float) {
    let g = got.toFloats(), w = want.toFloats()
    var err: Float = 0, scale: Float = 0
    for i in 0..<min(g.count, w.count) {
        let d = abs(g[i] - w[i])
        err = d.isNaN ? .infinity : max(err, d)
        scale = max(scale, abs(w[i]))
    }
    return (err, scale)
}

/// Expects equal shapes and max abs error <= tol * max(1, max |want|).
func expectClose(_ got: Tensor, _ want: Tensor, tol: Float, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.shape == want.shape, "\(what): shape \(got.shape) != expected \(want.shape)", sourceLocation: sourceLocation)
    guard got.shape == want.shape else { return }
    let (err, scale) = maxErrors(got, want)
    let bound = tol * max(1, scale)
    #expect(err <= bound, "\(what): max abs error \(err) > \(bound) (tol \(tol), scale \(scale))", sourceLocation: sourceLocation)
}
