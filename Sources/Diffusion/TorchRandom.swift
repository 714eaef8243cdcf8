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

    static func boxMuller16(_ d: UnsafeMutablePointer<Float>) {
        for j in 0..<8 {
            let u1: Float = 1 - d[j]
            let u2: Float = d[j + 8]
            let radius: Float = (-2 * logf(u1)).squareRoot()
            let theta = Float(2.0 * Double.pi * Double(u2))
            d[j] = radius * cosf(theta)
            d[j + 8] = radius * sinf(theta)
        }
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
