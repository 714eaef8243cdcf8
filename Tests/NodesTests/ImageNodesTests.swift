import Foundation
import Imaging
import Testing
@testable import Nodes
import Workflow

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

func tempFolder() -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("sdflow-nodes-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

/// Validates and runs a workflow whose relative file names resolve in `dir`.
func runWorkflow(_ yaml: String, dir: URL, out: URL, executor: Executor? = nil) throws -> RunResult {
    let registry = builtinRegistry()
    let doc = try WorkflowDocument.parse(yaml: yaml, path: dir.appendingPathComponent("wf.yaml").path)
    let g = try Validator.validate(doc, registry: registry, files: FileSearch(baseDirectory: dir, modelDirectories: []))
    return (executor ?? Executor(registry: registry)).run(g, options: ExecutionOptions(outputDirectory: out))
}

@Suite struct ImageNodesTests {
    @Test func loadSaveRoundTripWithNamingAndMetadata() throws {
        let dir = tempFolder(), out = tempFolder()
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("png/rgb8.png"), to: dir.appendingPathComponent("in.png"))
        // An existing higher counter: the next file goes past it.
        try FileManager.default.createDirectory(at: out.appendingPathComponent("runs"), withIntermediateDirectories: true)
        try Data().write(to: out.appendingPathComponent("runs/pic_00007_.png"))
        let yaml = """
        nodes:
          load: {type: LoadImage, inputs: {image: in.png}}
          save: {type: SaveImage, inputs: {images: $load.image, filename_prefix: runs/pic}}
        """
        let r = try runWorkflow(yaml, dir: dir, out: out)
        #expect(!r.failed)
        let written = out.appendingPathComponent("runs/pic_00008_.png")
        #expect(r.outputs.map(\.lastPathComponent) == ["pic_00008_.png"])
        let back = try PNG.read(written)
        let orig = try PNG.read(fixtures.appendingPathComponent("png/rgb8.png"))
        #expect(back.samples == orig.samples)
        #expect(back.text["workflow"] == yaml)
        let prompt = try JSONSerialization.jsonObject(with: Data(try #require(back.text["prompt"]).utf8)) as? [String: Any]
        #expect((prompt?["save"] as? [String: Any])?["class_type"] as? String == "SaveImage")
        // No temporary files left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("runs").path)
        #expect(names.sorted() == ["pic_00007_.png", "pic_00008_.png"])
    }

    @Test func notAPNGFailsTheNodeNamingFileAndInput() throws {
        let dir = tempFolder(), out = tempFolder()
        try Data("GIF89a....".utf8).write(to: dir.appendingPathComponent("bad.png"))
        let r = try runWorkflow("""
        nodes:
          load: {type: LoadImage, inputs: {image: bad.png}}
          save: {type: SaveImage, inputs: {images: $load.image}}
        """, dir: dir, out: out)
        let rec = try #require(r.record("load"))
        #expect(rec.status == .failed)
        #expect(rec.message?.contains("input 'image'") == true && rec.message?.contains("bad.png") == true)
        #expect(r.record("save")?.status == .skipped)
    }

    @Test func unwritableOutputFolderIsAClearError() throws {
        let dir = tempFolder(), out = tempFolder()
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("png/rgb8.png"), to: dir.appendingPathComponent("in.png"))
        // A file where the sub-folder should be.
        try Data().write(to: out.appendingPathComponent("blocked"))
        let r = try runWorkflow("""
        nodes:
          load: {type: LoadImage, inputs: {image: in.png}}
          save: {type: SaveImage, inputs: {images: $load.image, filename_prefix: blocked/x}}
        """, dir: dir, out: out)
        #expect(r.record("save")?.status == .failed)
        #expect(r.record("save")?.message?.contains("filename_prefix") == true)
    }

    @Test func imagePayloadCodecRoundTrip() throws {
        let b = ImageBatch(batch: 2, height: 3, width: 1, channels: 3, pixels: (0..<18).map { Float($0) / 17 })
        let back = try ImageValue.decoded(from: ImageValue(b).encoded())
        #expect(back.batch == b)
        #expect(throws: (any Error).self) { try ImageValue.decoded(from: Data(ImageValue(b).encoded().dropLast(4))) }
    }
}
