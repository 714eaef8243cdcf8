import Foundation
import Testing
@testable import Nodes
import Workflow

let shippedWorkflows = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Workflows")

@Suite struct ShippedWorkflowTests {
    static let names: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: shippedWorkflows.path)) ?? [])
        .filter { $0.hasSuffix(".yaml") }.sorted()

    @Test func thereAreWorkflows() { #expect(Self.names.count >= 10) }

    /// Every shipped workflow validates, given model files of the names it uses (empty stand-ins in a
    /// models folder: validation checks names, links, types and ranges, not weights).
    @Test(arguments: names)
    func validates(name: String) throws {
        let models = tempFolder()
        for sub in ["", "controlnet-canny-sdxl-1.0", "controlnet-depth-sdxl-1.0", "images"] {
            try FileManager.default.createDirectory(at: models.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        for f in ["sdxl_lightning_4step.safetensors", "sdxl_lightning_2step.safetensors", "sd_xl_base_1.0.safetensors",
                  "sdxl_lightning_1step_unet_x0.safetensors", "sdxl_lightning_4step_lora.safetensors",
                  "controlnet-canny-sdxl-1.0/diffusion_pytorch_model.fp16.safetensors",
                  "controlnet-depth-sdxl-1.0/diffusion_pytorch_model.fp16.safetensors", "images/astronaut-depth.png"] {
            try Data().write(to: models.appendingPathComponent(f))
        }
        let doc = try WorkflowDocument.load(path: shippedWorkflows.appendingPathComponent(name).path)
        let g = try Validator.validate(doc, registry: builtinRegistry(),
                                       files: FileSearch(baseDirectory: shippedWorkflows, modelDirectories: [models]))
        #expect(!g.outputs.isEmpty)
    }
}
