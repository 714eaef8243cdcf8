import CKernels

/// Element type conversions. Widening f16/bf16 -> f32 is exact (bit-for-bit what torch's `.float()`
/// gives); narrowing rounds to nearest, ties to even, like torch's `.to(torch.float16 / bfloat16)`.
public enum Convert {
    /// Widens `count` elements at `src` (of `dtype`) into f32 at `dst`. Parallel for large counts.
    public static func toF32(_ src: UnsafeRawPointer, dtype: DType, into dst: UnsafeMutablePointer<Float>, count: Int) {
        switch dtype {
        case .f32:
            dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16, .bf16:
            let s = src.assumingMemoryBound(to: UInt16.self)
            Parallel.chunks(count, minChunk: 1 << 16) { r in
                if dtype == .f16 { sdf_widen_f16(s + r.lowerBound, dst + r.lowerBound, r.count) }
                else { sdf_widen_bf16(s + r.lowerBound, dst + r.lowerBound, r.count) }
            }
        case .i64:
            let s = src.assumingMemoryBound(to: Int64.self)
            for i in 0..<count { dst[i] = Float(s[i]) }
        case .i32:
            let s = src.assumingMemoryBound(to: Int32.self)
            for i in 0..<count { dst[i] = Float(s[i]) }
        case .u8:
            let s = src.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { dst[i] = Float(s[i]) }
        }
    }

    /// Converts `count` f32 values into `dtype` at `dst`. Integer targets truncate toward zero and
    /// throw for values that do not fit.
    public static func fromF32(_ src: UnsafePointer<Float>, into dst: UnsafeMutableRawPointer, dtype: DType, count: Int) throws {
        switch dtype {
        case .f32:
            dst.assumingMemoryBound(to: Float.self).update(from: src, count: count)
        case .f16:
            let d = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { d[i] = Float16(src[i]).bitPattern }
        case .bf16:
            let d = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { d[i] = bf16Bits(src[i]) }
        case .i64, .i32, .u8:
            for i in 0..<count {
                let v = src[i]
                switch dtype {
                case .i64:
                    guard let x = Int64(exactly: v.rounded(.towardZero)) else { throw TensorError.invalidArgument(op: "convert", detail: "\(v) does not fit i64") }
                    dst.assumingMemoryBound(to: Int64.self)[i] = x
                case .i32:
                    guard let x = Int32(exactly: v.rounded(.towardZero)) else { throw TensorError.invalidArgument(op: "convert", detail: "\(v) does not fit i32") }
                    dst.assumingMemoryBound(to: Int32.self)[i] = x
                default:
                    guard let x = UInt8(exactly: v.rounded(.towardZero)) else { throw TensorError.invalidArgument(op: "convert", detail: "\(v) does not fit u8") }
                    dst.assumingMemoryBound(to: UInt8.self)[i] = x
                }
            }
        }
    }

    /// f32 -> bfloat16 bits, round to nearest even; NaN stays NaN (quiet).
    @inline(__always) public static func bf16Bits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (b >> 16) | 0x40) }
        let rounding = 0x7FFF + ((b >> 16) & 1)
        return UInt16(truncatingIfNeeded: (b &+ rounding) >> 16)
    }
}
