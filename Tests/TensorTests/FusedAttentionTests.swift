import CAMX
import Testing
@testable import Tensor

@Suite struct FusedAttentionTests {
    /// The fused fp32 attention (AVX-512 or AVX2 kernel, whichever this CPU runs) against the sgemm
    /// path on shapes that leave partial row groups (6 or 8), partial 32-key panels, partial 16/32-wide
    /// value panels and causal rows. Both are fp32 with different summation orders and exp
    /// approximations (relative error ~1e-7): max |diff| <= 2e-5 x max |v|; an indexing or padding
    /// error gives differences of the order of |v|.
    @Test(arguments: [(1, 37, 53, 3, 40, 24, false), (2, 100, 77, 2, 64, 64, false), (1, 64, 64, 1, 16, 48, true),
                      (1, 13, 300, 2, 8, 8, false), (1, 200, 1000, 1, 64, 64, false), (1, 7, 7, 4, 5, 3, true)])
    func fusedMatchesSgemmPath(b: Int, lq: Int, lk: Int, heads: Int, d: Int, dv: Int, causal: Bool) throws {
        guard sdf_f32_attention_kind() > 0 else { return }
        let q = bf16Random([b, lq, heads * d], seed: 31, scale: 2)
        let k = bf16Random([b, lk, heads * d], seed: 32, scale: 2)
        let v = bf16Random([b, lk, heads * dv], seed: 33)
        for chunk in [Ops.attentionScoreChunkFloats, 5 * lk] {
            let fused = try Ops.attention(query: q, key: k, value: v, heads: heads, causal: causal, scale: nil,
                                          maxScoreFloats: chunk, allowFused: true)
            let plain = try Ops.attention(query: q, key: k, value: v, heads: heads, causal: causal, scale: nil,
                                          maxScoreFloats: chunk, allowFused: false)
            #expect(fused.shape == plain.shape)
            let worst = zip(fused.toFloats(), plain.toFloats()).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 2e-5, "fused vs sgemm attention \(lq)x\(lk) h\(heads) d\(d) dv\(dv) chunk \(chunk): \(worst)")
        }
    }
}
