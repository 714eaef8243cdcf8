import Foundation
import Testing
import CAMX
@testable import Tensor

/// The packed bf16 weight layout bit for bit (see camx.h): element (n, k) of the [N, K] matrix is the
/// source value rounded to bf16 (nearest even) at p * Kp * 16 + (k / 2) * 32 + (n % 16) * 2 + k % 2
/// (p = n / 16, Kp = K rounded up to 32), and the padding is zero. A conv weight [O, C, kh, kw] has K
/// ordered (ky, kx, c); a GEGLU weight [2H, K] has its rows interleaved [value 16 | gate 16]. Checked
/// for the AVX-512 packing loop and the portable one (both must write the same bits).
@Suite(.serialized) struct BF16PackingTests {
    static let cases: [(shape: [Int], dtype: DType, geglu: Bool)] = [
        ([37, 45], .f32, false), ([50, 100], .f16, false), ([33, 64], .bf16, false), ([1, 1], .f16, false),
        ([20, 7, 3, 3], .f16, false), ([16, 32, 3, 3], .f32, false), ([24, 5, 1, 1], .bf16, false),
        ([64, 40], .f16, true), ([96, 70], .f32, true),
    ]

    static func bf16Bits(_ v: Float) -> UInt16 {
        let u = v.bitPattern
        if v.isNaN { return UInt16(truncatingIfNeeded: u >> 16) | 0x40 }
        return UInt16(truncatingIfNeeded: (u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16)
    }

    @Test(arguments: [false, true], Array(0..<cases.count))
    func packedLayoutIsExact(scalar: Bool, caseIndex: Int) throws {
        guard BF16Backend.hardwareTier >= 1 else { return }
        let (shape, dtype, geglu) = Self.cases[caseIndex]
        let w = try bf16Random(shape, seed: UInt64(caseIndex) + 11, scale: 3).converted(to: dtype)
        sdf_bf16_set_scalar_pack(scalar ? 1 : 0)
        let packed = try PackedBF16Weight(w, gegluInterleaved: geglu)
        sdf_bf16_set_scalar_pack(0)
        let src = w.toFloats()
        let n = shape[0], k = w.count / n, kp = (k + 31) / 32 * 32, np = (n + 15) / 16 * 16
        let khw = shape.count == 4 ? shape[2] * shape[3] : 1, c = k / khw
        let out = try #require(packed.packedPointer)
        var mismatches = 0, first = ""
        for row in 0..<np {
            for kk in 0..<kp {
                var want: UInt16 = 0
                if row < n && kk < k {
                    let srcRow = geglu ? (row % 32 < 16 ? (row / 32) * 16 + row % 32 : n / 2 + (row / 32) * 16 + row % 32 - 16) : row
                    let srcCol = khw > 1 ? (kk % c) * khw + kk / c : kk
                    want = Self.bf16Bits(src[srcRow * k + srcCol])
                }
                let got = out[(row / 16) * kp * 16 + (kk / 2) * 32 + (row % 16) * 2 + kk % 2]
                if got != want {
                    if mismatches == 0 { first = "(n \(row), k \(kk)): got \(got), want \(want)" }
                    mismatches += 1
                }
            }
        }
        #expect(mismatches == 0, "\(shape) \(dtype)\(geglu ? " geglu" : "") \(scalar ? "scalar" : "AVX-512"): \(mismatches) wrong, first \(first)")
    }
}
