import Foundation
import Imaging
import Workflow

/// SaveImage: writes each image of the batch as `prefix_00001_.png` (ComfyUI's naming, counter past the
/// highest existing one) with the workflow in tEXt chunks `prompt` (ComfyUI API JSON) and `workflow` (YAML).
enum SaveImageNode {
    static let definition = NodeDefinition(
        name: "SaveImage", category: "image",
        summary: "Saves images as PNG in the output folder, named prefix_00001_.png, with the workflow embedded.",
        inputs: [.link("images", .image), .string("filename_prefix", default: "sdflow", help: "may contain sub-folders: 'runs/fish'")],
        outputs: [], isOutput: true
    ) { ctx in
        let images = try ctx.object("images", as: ImageValue.self).batch
        let prefix = try ctx.string("filename_prefix")
        let (dir, base) = try outputLocation(prefix: prefix, root: ctx.outputDirectory)
        let meta = [("prompt", ctx.workflow.apiJSON), ("workflow", ctx.workflow.yaml)]
        try saveLock.withLock {
            var counter = nextCounter(in: dir, base: base)
            for i in 0..<images.batch {
                try ctx.checkCancelled()
                let url = dir.appendingPathComponent("\(base)_\(String(format: "%05d", counter))_.png")
                let samples = images.samples8(image: i)
                try ctx.writeAtomically(to: url) { tmp in
                    do {
                        try PNG.write(tmp, width: images.width, height: images.height, channels: images.channels,
                                      samples: samples, text: meta)
                    } catch let e as ImagingError { throw NodeError(e.message) }
                }
                counter += 1
            }
        }
        return []
    }

    static let saveLock = NSLock()

    /// Splits `sub/dir/name` into a folder under `root` (created) and a file-name base.
    static func outputLocation(prefix: String, root: URL) throws -> (URL, String) {
        let parts = prefix.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let base = parts.last, !parts.contains(".."), !prefix.hasPrefix("/") else {
            throw NodeError("'\(prefix)' must be a name, optionally under sub-folders of the output folder", input: "filename_prefix")
        }
        var dir = root
        for p in parts.dropLast() { dir.appendPathComponent(p) }
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw NodeError("cannot create output folder '\(dir.path)': \(error.localizedDescription)", input: "filename_prefix")
        }
        guard FileManager.default.isWritableFile(atPath: dir.path) else {
            throw NodeError("output folder '\(dir.path)' is not writable", input: "filename_prefix")
        }
        return (dir, base)
    }

    /// One past the highest `base_NNNNN_<ext>` counter in `dir` (1 when none); ext is "_.png", "_.latent".
    static func nextCounter(in dir: URL, base: String, suffix: String = "_.png") -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        var highest = 0
        for n in names where n.hasPrefix(base + "_") && n.hasSuffix(suffix) {
            let mid = n.dropFirst(base.count + 1).dropLast(suffix.count)
            if let v = Int(mid), v > highest { highest = v }
        }
        return highest + 1
    }
}
