import Foundation
import Testing
import Tensor

/// Reading torch-written files bit for bit, and exact dtype conversions.
@Suite struct DTypeTests {
    let file: SafeTensorsFile
    init() throws { file = try Fixtures.open("dtypes.safetensors") }

    @Test func metadataKept() {
        #expect(file.metadata == ["format": "pt", "note": "sdflow fixture"])
    }

    @Test func f16AllBitPatternsReadBackExactly() throws {
        let t = try file.tensor("f16_all")
        #expect(t.dtype == .f16 && t.shape == [65536])
        let bits = t.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        #expect(bits == (0..<65536).map { UInt16($0) })
    }

    @Test func bf16AllBitPatternsReadBackExactly() throws {
        let t = try file.tensor("bf16_all")
        #expect(t.dtype == .bf16 && t.shape == [65536])
        let bits = t.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        #expect(bits == (0..<65536).map { UInt16($0) })
    }

    /// Widening must be exact: every f16/bf16 bit pattern gives the same f32 bits as torch's .float()
    /// (NaNs compared as NaN, since payload propagation is not part of the contract).
    @Test(arguments: ["f16_all", "bf16_all"])
    func wideningIsExact(name: String) throws {
        let got = try file.tensor(name).toFloats()
        let want = try file.tensor(name + "_as_f32").toFloats()
        #expect(got.count == want.count)
        var mismatches = 0
        for i in 0..<got.count {
            if want[i].isNaN { if !got[i].isNaN { mismatches += 1 } }
            else if got[i].bitPattern != want[i].bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0, "\(mismatches) of \(got.count) \(name) patterns widen differently from torch")
        // The widened tensor path (asF32) agrees with toFloats.
        let t = try file.tensor(name).asF32()
        #expect(t.dtype == .f32 && t.shape == [65536])
    }

    /// Narrowing f32 -> f16/bf16 rounds like torch's .half() / .bfloat16() (nearest, ties to even).
    @Test(arguments: [("narrow_f16", DType.f16), ("narrow_bf16", DType.bf16)])
    func narrowingMatchesTorch(name: String, dtype: DType) throws {
        let src = try file.tensor("narrow_src")
        let ours = try src.converted(to: dtype)
        let theirs = try file.tensor(name)
        let a = ours.withUnsafeBytes { Array($0) }, b = theirs.withUnsafeBytes { Array($0) }
        #expect(a == b)
    }

    @Test func integerAndF32TensorsReadBack() throws {
        let f = try file.tensor("f32_arange")
        #expect(f.shape == [2, 3, 4] && f.dtype == .f32)
        #expect(f.toFloats() == (0..<24).map { Float($0) * 0.5 - 3 })
        let i64 = try file.tensor("i64_big")
        let v = i64.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        #expect(v == (-5..<5).map { Int64($0) * 1_000_000_000_000 })
        let i32 = try file.tensor("i32_arange")
        #expect(i32.shape == [7, 1] && i32.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) } == Array(-3...3))
        let u8 = try file.tensor("u8_all")
        #expect(u8.withUnsafeBytes { Array($0) } == (0..<256).map { UInt8($0) })
        let e = try file.tensor("empty")
        #expect(e.shape == [0, 3] && e.count == 0)
        let s = try file.tensor("scalar")
        #expect(s.shape == [] && s.toFloats() == [2.5])
    }

    @Test func mappedTensorsAreReadOnlyViews() throws {
        let t = try file.tensor("f32_arange")
        #expect(t.storage.isWritable == false)
        #expect(throws: TensorError.readOnly(op: "withMutableFloats")) { try t.withMutableFloats { _ in } }
        let r = try t.reshaped([6, -1])
        #expect(r.shape == [6, 4] && r.rawPointer == t.rawPointer)
        let s = try t.slice(1..<2)
        #expect(s.shape == [1, 3, 4] && s.toFloats() == (12..<24).map { Float($0) * 0.5 - 3 })
        let n = try t.narrowed(dim: 2, start: 1, length: 2)
        #expect(n.shape == [2, 3, 2] && n.toFloats() == [-2.5, -2, -0.5, 0, 1.5, 2, 3.5, 4, 5.5, 6, 7.5, 8])
        let p = try t.transposed(0, 2)
        #expect(p.shape == [4, 3, 2])
        #expect(p.toFloats()[0..<4] == [-3, 3, -1, 5])
        #expect(throws: TensorError.self) { try t.reshaped([5, 5]) }
        #expect(throws: TensorError.self) { try t.slice(0..<3) }
        #expect(throws: TensorError.self) { try t.chunked(5, dim: 1) }
    }
}
