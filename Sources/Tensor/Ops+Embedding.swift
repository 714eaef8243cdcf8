import Foundation

extension Ops {
    /// Sinusoidal timestep embedding as diffusers `get_timestep_embedding(timesteps, dim,
    /// flip_sin_to_cos=True, downscale_freq_shift=0)` (what the SDXL UNet's time_proj and
    /// add_time_proj use): half = dim / 2, freq_j = exp(-ln(maxPeriod) * j / half),
    /// out[i] = [cos(t_i * freq) | sin(t_i * freq)], zero-padded by one column when dim is odd.
    /// Computed in float32 in the same order as the reference. Returns [count, dim].
    public static func timestepEmbedding(_ timesteps: [Float], dim: Int, maxPeriod: Float = 10000,
                                         downscaleFreqShift: Float = 0) throws -> Tensor {
        let op = "timestepEmbedding"
        guard dim >= 2 else { throw TensorError.invalidArgument(op: op, detail: "dim \(dim) must be >= 2") }
        let half = dim / 2
        guard Float(half) - downscaleFreqShift > 0 else { throw TensorError.invalidArgument(op: op, detail: "half dim \(half) <= shift") }
        let y = try Tensor.zeros([timesteps.count, dim])
        let yp = y.f32MutablePointer
        let logMax = Float(-log(Double(maxPeriod)))
        var freqs = [Float](repeating: 0, count: half)
        for j in 0..<half {
            let e: Float = (logMax * Float(j)) / (Float(half) - downscaleFreqShift)
            freqs[j] = Foundation.exp(e)
        }
        for (i, t) in timesteps.enumerated() {
            let row = yp + i * dim
            for j in 0..<half {
                let a = t * freqs[j]
                row[j] = Foundation.cos(a)
                row[half + j] = Foundation.sin(a)
            }
        }
        return y
    }

    /// `torch.nn.functional.embedding(ids, weight)`: rows of `weight` [V, D] (any float dtype, widened)
    /// gathered into [ids.count, D] f32. Throws naming the first out-of-range id.
    public static func embedding(_ ids: [Int], weight: Tensor) throws -> Tensor {
        let op = "embedding"
        guard weight.rank == 2 else { throw TensorError.shapeMismatch(op: op, detail: "weight must be [vocab, dim], got \(weight.shape)") }
        guard weight.dtype.isFloatingPoint else { throw TensorError.unsupportedDType(op: op, dtype: weight.dtype) }
        let vocab = weight.shape[0], dim = weight.shape[1]
        if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= vocab }) {
            throw TensorError.invalidArgument(op: op, detail: "id \(ids[bad]) at position \(bad) outside vocabulary of \(vocab)")
        }
        let y = try Tensor.uninitialized([ids.count, dim])
        let yp = y.f32MutablePointer
        for (i, id) in ids.enumerated() {
            Convert.toF32(weight.rawPointer.advanced(by: id * dim * weight.dtype.size), dtype: weight.dtype,
                          into: yp + i * dim, count: dim)
        }
        return y
    }
}
