import CKernels

extension Ops {
    /// Applies a C elementwise kernel over the tensor in parallel chunks.
    static func elementwise(_ x: Tensor, _ op: String,
                            _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) throws -> Tensor {
        let xf = try floatInput(x, op, "input")
        let y = try Tensor.uninitialized(x.shape, dtype: .f32)
        let xp = xf.f32Pointer, yp = y.f32MutablePointer
        Parallel.chunks(x.count, minChunk: 1 << 15) { r in
            kernel(xp + r.lowerBound, yp + r.lowerBound, r.count)
        }
        return y
    }

    /// `torch.nn.functional.silu(x)` = x * sigmoid(x).
    public static func silu(_ x: Tensor) throws -> Tensor { try elementwise(x, "silu") { sdf_silu($0, $1, $2) } }

    /// `torch.nn.functional.gelu(x)` (exact, approximate='none') = 0.5 x (1 + erf(x / sqrt 2)).
    /// erf uses Abramowitz-Stegun 7.1.26 (|error| <= 1.5e-7), like PyTorch's vectorized CPU erf.
    public static func gelu(_ x: Tensor) throws -> Tensor { try elementwise(x, "gelu") { sdf_gelu($0, $1, $2) } }

    /// CLIP's quick_gelu, x * torch.sigmoid(1.702 * x) (transformers `QuickGELUActivation`).
    public static func quickGELU(_ x: Tensor) throws -> Tensor { try elementwise(x, "quickGELU") { sdf_quick_gelu($0, $1, $2) } }

    /// diffusers `GEGLU` after its projection: input [..., 2d] = [value | gate] halves of the last dim,
    /// output [..., d] = value * gelu(gate) (`hidden, gate = proj(x).chunk(2, dim=-1); hidden * F.gelu(gate)`).
    public static func geglu(_ x: Tensor) throws -> Tensor {
        let op = "geglu"
        guard x.rank >= 1, x.shape[x.rank - 1] % 2 == 0 else {
            throw TensorError.shapeMismatch(op: op, detail: "last dim of \(x.shape) must be even ([value | gate])")
        }
        let d2 = x.shape[x.rank - 1], d = d2 / 2
        let xf = try floatInput(x, op, "input")
        var s = x.shape; s[s.count - 1] = d
        let y = try Tensor.uninitialized(s, dtype: .f32)
        let rows = d2 == 0 ? 0 : x.count / d2
        let xp = xf.f32Pointer, yp = y.f32MutablePointer
        Parallel.chunks(rows, minChunk: max(1, 16384 / max(d, 1))) { r in
            sdf_geglu(xp + r.lowerBound * d2, yp + r.lowerBound * d, r.count, d)
        }
        return y
    }
}
