import Testing
@testable import Tensor

@Suite struct ConvInputTransformTests {
    /// fp32 conv2d with an input transform (GroupNorm's affine form, SiLU, nearest 2x upsampling)
    /// applied while the shifted 3x3 path fills its padded planes: the same bits as the convolution of
    /// the materialised transformed input, for outputs of at least 32x32 (the shifted path) and below
    /// (materialised), batch 2, f32 and f16 weights. A wrong channel's or image's coefficients, a wrong
    /// source row or a missing duplicate column changes the bits.
    @Test(arguments: [(2, 8, 32, 32, 6, true, true, false), (1, 5, 16, 16, 7, true, false, true),
                      (2, 6, 17, 20, 4, true, true, true), (1, 4, 33, 40, 3, false, false, true),
                      (1, 3, 8, 8, 5, true, true, false), (1, 3, 8, 8, 5, true, true, true)])
    func fp32TransformMatchesMaterialised(n: Int, c: Int, h: Int, w: Int, o: Int, affine: Bool, silu: Bool, up: Bool) throws {
        let x = bf16Random([n, c, h, w], seed: 51, scale: 3)
        let b = bf16Random([o], seed: 53)
        var t = ConvInputTransform(upsample2x: up)
        if affine {
            let a = try Ops.groupNormAffine(x, groups: c, weight: bf16Random([c], seed: 54), bias: bf16Random([c], seed: 55), eps: 1e-5)
            t = ConvInputTransform(affine: a, silu: silu, upsample2x: up)
        }
        for wt in [bf16Random([o, c, 3, 3], seed: 52, scale: 0.5), try bf16Random([o, c, 3, 3], seed: 52, scale: 0.5).converted(to: .f16)] {
            let want = try Ops.conv2d(Ops.applyConvInputTransform(x, t), weight: wt, bias: b, padding: Padding2D(1))
            let got = try Ops.conv2d(x, weight: wt, bias: b, padding: Padding2D(1), input: t)
            #expect(got.shape == want.shape)
            #expect(got.toFloats() == want.toFloats(), "fp32 conv with input transform \(n)x\(c)x\(h)x\(w) up \(up) \(wt.dtype)")
        }
        if let a = t.affine {
            let bad = ConvInputTransform(affine: (Array(a.scale.dropLast()), Array(a.shift.dropLast())), silu: silu, upsample2x: up)
            #expect(throws: TensorError.self) { try Ops.conv2d(x, weight: bf16Random([o, c, 3, 3], seed: 52), padding: Padding2D(1), input: bad) }
        }
    }
}
