import Foundation

/// The Mersenne Twister (MT19937) as PyTorch's CPU generator uses it: seeded from the low 32 bits of
/// the 64-bit seed with the standard initialisation, 32-bit outputs, 64-bit draws as (first << 32 | second).
public struct MT19937: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    public init(seed: UInt64) {
        state[0] = UInt32(truncatingIfNeeded: seed)
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
        index = 624
    }

    public mutating func next() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    public mutating func next64() -> UInt64 {
        let hi = UInt64(next()), lo = UInt64(next())
        return hi << 32 | lo
    }

    private mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            var v = state[(i + 397) % 624] ^ (y >> 1)
            if y & 1 != 0 { v ^= 0x9908_B0DF }
            state[i] = v
        }
        index = 0
    }
}

/// torch's CPU `randn` (float32) for a seed, so a seed gives the same noise as ComfyUI and diffusers.
///
/// Matches ATen's CPU normal kernel: for 16 or more contiguous floats, every element first gets a
/// uniform float (24 random bits / 2^24), then blocks of 16 go through Box-Muller in place
/// (u1 = 1 - data[j], u2 = data[j + 8] for j in 0..<8; cos into j, sin into j + 8), and when the size
/// is not a multiple of 16 the last 16 elements are redrawn and transformed again. Below 16 elements
/// it is the scalar double-precision Box-Muller with 53-bit uniforms and a cached second value.
public struct TorchGenerator: Sendable {
    var engine: MT19937
    var cachedNormal: Double?

    public init(seed: UInt64) {
        engine = MT19937(seed: seed)
    }

    mutating func uniformFloat() -> Float {
        Float(engine.next() & ((1 << 24) - 1)) * Float(1.0 / 16_777_216.0)
    }

    mutating func uniformDouble() -> Double {
        Double(engine.next64() & ((1 << 53) - 1)) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `torch.randn(count)` on this generator.
    public mutating func randn(_ count: Int) -> [Float] {
        guard count > 0 else { return [] }
        if count >= 16 {
            var data = [Float](repeating: 0, count: count)
            for i in 0..<count { data[i] = uniformFloat() }
            data.withUnsafeMutableBufferPointer { p in
                var i = 0
                while i + 16 <= count {
                    Self.boxMuller16(p.baseAddress! + i)
                    i += 16
                }
                if count % 16 != 0 {
                    let tail = p.baseAddress! + (count - 16)
                    for j in 0..<16 { tail[j] = uniformFloat() }
                    Self.boxMuller16(tail)
                }
            }
            return data
        }
        var out: [Float] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(Float(normalDouble())) }
        return out
    }

    /// ATen's `normal_fill_16_AVX2` (mean 0, std 1): radius = sqrt(-2 log(1 - u)), theta = float(2 pi) * u',
    /// with log / sin / cos as avx_mathfun's Cephes polynomials, fused multiply-adds where torch's build
    /// contracts them (bit-exact with torch on x86-64; see Tests/Fixtures/sampling/manifest.json).
    static func boxMuller16(_ d: UnsafeMutablePointer<Float>) {
        let twoPi = Float(2.0 * Double.pi)
        for j in 0..<8 {
            let radius = (Float(-2) * cephesLog(1 - d[j])).squareRoot()
            let (s, c) = cephesSinCos(twoPi * d[j + 8])
            d[j] = radius * c
            d[j + 8] = radius * s
        }
    }

    /// avx_mathfun `log256_ps` for one lane (positive finite input).
    static func cephesLog(_ input: Float) -> Float {
        if !(input > 0) { return .nan }
        var x = max(input, Float(bitPattern: 0x0080_0000))
        let bits = x.bitPattern
        let imm0 = Int32(bitPattern: bits >> 23)
        x = Float(bitPattern: (bits & ~UInt32(0x7F80_0000)) | Float(0.5).bitPattern)
        var e = Float(imm0 - 0x7F) + 1
        let mask = x < Float(0.707106781186547524)
        let tmp: Float = mask ? x : 0
        x = x - 1
        e = e - (mask ? 1 : 0)
        x = x + tmp
        let z = x * x
        let p: [Float] = [7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
                          -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1]
        var y = p[1].addingProduct(p[0], x)
        for k in 2..<p.count { y = p[k].addingProduct(y, x) }
        y = y * x
        y = (e * Float(-2.12194440e-4)).addingProduct(y, z)
        y = y - z * 0.5
        x = x + y
        x = x + e * Float(0.693359375)
        return x
    }

    /// avx_mathfun `sincos256_ps` for one lane: (sin, cos).
    static func cephesSinCos(_ input: Float) -> (Float, Float) {
        var signSin = input.sign == .minus
        var x = abs(input)
        var j = Int32(x * Float(1.27323954473516))      // truncation, as cvttps
        j = (j + 1) & ~1
        let y = Float(j)
        let swapSin = (j & 4) != 0
        let poly = (j & 2) == 0
        x = x.addingProduct(y, Float(-0.78515625))
        x = x.addingProduct(y, Float(-2.4187564849853515625e-4))
        x = x.addingProduct(y, Float(-3.77489497744594108e-8))
        let signCos = ((~(j &- 2)) & 4) != 0
        signSin = signSin != swapSin
        let z = x * x
        var yc = Float(-1.388731625493765E-003).addingProduct(Float(2.443315711809948E-005), z)
        yc = Float(4.166664568298827E-002).addingProduct(yc, z)
        yc = yc * z
        yc = (-(z * 0.5)).addingProduct(yc, z)
        yc = yc + 1
        var ys = Float(8.3321608736E-3).addingProduct(Float(-1.9515295891E-4), z)
        ys = Float(-1.6666654611E-1).addingProduct(ys, z)
        ys = ys * z
        ys = x.addingProduct(ys, x)
        let s = poly ? ys : yc
        let c = poly ? yc : ys
        return (signSin ? -s : s, signCos ? -c : c)
    }

    mutating func normalDouble() -> Double {
        if let c = cachedNormal {
            cachedNormal = nil
            return c
        }
        let u1 = uniformDouble(), u2 = uniformDouble()
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return r * cos(theta)
    }
}
