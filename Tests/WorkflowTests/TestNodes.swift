import Foundation
import Workflow

/// A persistable payload for disk-cache tests.
struct Blob: PersistablePayload, Equatable {
    static let persistenceTag = "test.blob"
    var numbers: [Int]
    var byteCount: Int { numbers.count * 8 }
    func encoded() throws -> Data { Data(numbers.map(String.init).joined(separator: ",").utf8) }
    static func decoded(from data: Data) throws -> Blob {
        Blob(numbers: String(decoding: data, as: UTF8.self).split(separator: ",").compactMap { Int($0) })
    }
}

/// Start/end times of node runs, for overlap checks.
final class Timeline: @unchecked Sendable {
    private let lock = NSLock()
    private var spans: [String: (Double, Double)] = [:]
    func record(_ id: String, _ start: Double, _ end: Double) { lock.withLock { spans[id] = (start, end) } }
    func span(_ id: String) -> (Double, Double)? { lock.withLock { spans[id] } }
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func makeRegistry(timeline: Timeline = Timeline()) -> NodeRegistry {
    let r = NodeRegistry()
    r.register(NodeDefinition(name: "Const", aliases: ["ConstantInt"], inputs: [.int("value", default: 0, min: -100, max: 100)],
                              outputs: [OutputSpec("value", .int)]) { ctx in [.int(try ctx.int("value"))] })
    r.register(NodeDefinition(name: "Add", inputs: [.link("a", .int), .link("b", .int)],
                              outputs: [OutputSpec("sum", .int)]) { ctx in [.int(try ctx.int("a") + ctx.int("b"))] })
    r.register(NodeDefinition(name: "Scale", inputs: [.link("x", .int), .float("factor", default: 1, min: 0, max: 10),
                                                     .choice("mode", ["floor", "round"], default: "floor")],
                              outputs: [OutputSpec("y", .float), OutputSpec("mode", .string)]) { ctx in
        let v = Double(try ctx.int("x")) * (try ctx.double("factor"))
        let m = try ctx.string("mode")
        return [.float(m == "floor" ? v.rounded(.down) : v.rounded()), .string(m)]
    })
    r.register(NodeDefinition(name: "Slow", inputs: [.link("value", .int), .int("millis", default: 300, min: 0, max: 10000)],
                              outputs: [OutputSpec("value", .int)]) { ctx in
        let start = now()
        usleep(UInt32(try ctx.int("millis")) * 1000)
        timeline.record(ctx.nodeID, start, now())
        return [.int(try ctx.int("value"))]
    })
    r.register(NodeDefinition(name: "Fail", inputs: [.link("value", .int)], outputs: [OutputSpec("value", .int)]) { _ in
        throw NodeError("deliberate failure")
    })
    r.register(NodeDefinition(name: "MakeBlob", inputs: [.link("n", .int)], outputs: [OutputSpec("blob", "BLOB")]) { ctx in
        let n = try ctx.int("n")
        return [.object(Blob(numbers: Array(0..<max(0, n))))]
    })
    r.register(NodeDefinition(name: "FileSize", inputs: [.file("path", folders: ["inputs"])],
                              outputs: [OutputSpec("size", .int)]) { ctx in
        let url = try ctx.file("path")
        let a = try FileManager.default.attributesOfItem(atPath: url.path)
        return [.int((a[.size] as? NSNumber)?.intValue ?? -1)]
    })
    r.register(NodeDefinition(name: "Sink", inputs: [.link("value", .int, optional: true), .link("blob", "BLOB", optional: true),
                                                    .link("real", .float, optional: true), .string("label", default: "")],
                              outputs: [], isOutput: true) { _ in [] })
    r.registerCodec(Blob.self)
    return r
}

func tempDir() -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("sdflow-test-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

func graph(_ yaml: String, registry: NodeRegistry, dir: URL = tempDir(), sets: [String] = []) throws -> Graph {
    var doc = try WorkflowDocument.parse(yaml: yaml, path: "wf.yaml")
    for s in sets { try doc.applyOverride(s) }
    return try Validator.validate(doc, registry: registry, files: FileSearch(baseDirectory: dir, modelDirectories: []))
}

func diagnostics(_ yaml: String, registry: NodeRegistry = makeRegistry(), dir: URL = tempDir()) -> [Diagnostic] {
    do {
        _ = try graph(yaml, registry: registry, dir: dir)
        return []
    } catch let f as ValidationFailure {
        return f.diagnostics
    } catch {
        return [Diagnostic(SourceLocation(file: "?", line: 0, column: 0), "unexpected \(error)")]
    }
}
