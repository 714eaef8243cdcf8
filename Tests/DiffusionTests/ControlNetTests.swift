import Foundation
import Testing
@testable import Diffusion
import Tensor

let cnDir = tinyDir.deletingLastPathComponent().appendingPathComponent("controlnet-tiny")
let cnReference: SafeTensorsFile? = try? SafeTensorsFile(url: cnDir.appendingPathComponent("reference.safetensors"))

func cnRef(_ name: String) throws -> Tensor {
    guard let cnReference else { throw ModelError.invalidInput("controlnet-tiny/reference.safetensors missing") }
    return try cnReference.tensor(name)
}

@Suite struct ControlNetTests {
    /// Residuals of diffusers' ControlNetModel (tiny, zero convs re-initialised non-zero), from each file layout.
    @Test(arguments: ["diffusers/diffusion_pytorch_model.safetensors", "controlnet_fp32.safetensors", "controlnet_sgm.safetensors"])
    func residualsMatchDiffusers(file: String) throws {
        let net = try SDXLLoader.loadControlNet(cnDir.appendingPathComponent(file), config: tinyConfigs.unet)
        let ts = try cnRef("cn.in.timesteps").toFloats()
        let ids = try cnRef("cn.in.time_ids").toFloats()
        let timeIds = (0..<ts.count).map { Array(ids[($0 * 6)..<($0 * 6 + 6)]) }
        let emb = try net.embedHint(try cnRef("cn.in.hint"))
        expectClose(emb, try cnRef("cn.act.cond_embedding"), "hint embedding")
        let r = try net(try cnRef("cn.in.x"), timesteps: ts, context: try net.prepare(context: try cnRef("cn.in.context")),
                        textEmbeds: try cnRef("cn.in.text_embeds"), timeIds: timeIds, hintEmbedding: emb)
        #expect(r.down.count == 9)
        for i in 0..<9 { expectClose(r.down[i], try cnRef("cn.out.down.\(i)"), "\(file) residual \(i)") }
        expectClose(r.mid, try cnRef("cn.out.mid"), "\(file) mid residual")

        // The UNet with the residuals at conditioning scale 0.7.
        let unet = try #require(try singleFile?.unet)
        let scaled = ControlResiduals(down: try r.down.map { try Ops.mul($0, scalar: 0.7) }, mid: try Ops.mul(r.mid, scalar: 0.7))
        let eps = try unet(try cnRef("cn.in.x"), timesteps: ts, context: try unet.prepare(context: try cnRef("cn.in.context")),
                           textEmbeds: try cnRef("cn.in.text_embeds"), timeIds: timeIds, control: scaled)
        expectClose(eps, try cnRef("cn.unet_eps_scale0.7"), "UNet eps with residuals x 0.7")
        let plain = try cnRef("cn.unet_eps_nocontrol").toFloats()
        #expect(zip(plain, eps.toFloats()).map { abs($0 - $1) }.max()! > 1e-2, "the residuals must change the output")
    }

    @Test func sd15ControlNetIsRefused() throws {
        // A ControlNet without the SDXL text_time embedding: refused in one line naming the file.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sdflow-cn15-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("control_sd15_canny.safetensors")
        let t = try Tensor(shape: [2], values: [1, 2])
        try SafeTensorsWriter.write([("control_model.input_hint_block.0.weight", t), ("control_model.time_embed.0.weight", t)], to: url)
        #expect { try SDXLLoader.loadControlNet(url, config: tinyConfigs.unet) } throws: { e in
            let s = "\(e)"
            return s.contains("not an SDXL ControlNet") && s.contains("control_sd15_canny") && !s.contains("\n")
        }
    }

    @Test func percentToSigmaMatchesComfyUI() throws {
        let s = DiscreteSchedule.sdxl
        #expect(s.percentToSigma(0) == 999_999_999.9)
        #expect(s.percentToSigma(1) == 0)
        #expect(s.percentToSigma(0.5) == 1.6155803203582764)
        #expect(s.percentToSigma(0.25) == 4.086081027984619)
        #expect(s.percentToSigma(0.75) == 0.6951495409011841)
    }
}
