import CAMX

/// The bf16 matrix-multiply hardware this process uses (see `Sources/CAMX`):
/// 2 = AMX-BF16 tiles, 1 = AVX512-BF16 (`vdpbf16ps`), 0 = none (the `Ops.*BF16` functions then run
/// the fp32 `Ops` kernels). Detected once; `SDFLOW_BF16_TIER=amx|avx512|none` lowers it.
public enum BF16Backend {
    /// The tier the CPU (and kernel) support, ignoring `SDFLOW_BF16_TIER`.
    public static let hardwareTier: Int = Int(sdf_bf16_hw_tier())
    /// The detected tier after `SDFLOW_BF16_TIER` (requests the AMX tile permission on first use).
    public static let detectedTier: Int = Int(sdf_amx_init())

    @TaskLocal static var override: Int? = nil

    /// The tier the `Ops.*BF16` functions use now: `detectedTier`, or the value of an enclosing
    /// `withTier`.
    public static var tier: Int { override ?? detectedTier }
    /// True when bf16 hardware is in use (tier >= 1).
    public static var available: Bool { tier >= 1 }

    /// Runs `body` with the `Ops.*BF16` functions using `tier` (clamped to `0...hardwareTier`), for
    /// tests and benchmarks that compare the tiers on one machine. Scoped to the current task (and
    /// the work it runs synchronously), so concurrent callers do not see each other's choice.
    public static func withTier<R>(_ tier: Int, _ body: () throws -> R) rethrows -> R {
        try $override.withValue(max(0, min(tier, hardwareTier))) { try body() }
    }

    static let tierNames = ["none", "avx512bf16", "amx"]
    /// "amx", "avx512bf16" or "none".
    public static func name(ofTier t: Int) -> String { tierNames[max(0, min(2, t))] }
}

/// A weight packed once (at load time) into the bf16 tile layout the CAMX GEMM reads: the B operand
/// of y = x W^T, N = output features, K = input features (for a conv weight [O, C, kh, kw]: N = O,
/// K = C * kh * kw, packed with K ordered (ky, kx, c), i.e. channels-last patches, the order
/// `Ops.conv2dBF16`'s im2col produces). Rounded to bf16 (nearest even) from any float dtype.
///
/// The original tensor is kept (a reference, not a copy: for an mmap'd checkpoint it costs no
/// memory) so that tier 0 can run the fp32 `Ops` kernels bit for bit. When the machine has no bf16
/// hardware nothing is packed.
public final class PackedBF16Weight: @unchecked Sendable {
    /// Output features (rows of the weight).
    public let n: Int
    /// Input features per output (C * kh * kw for conv weights).
    public let k: Int
    /// (kh, kw) for a 4-D conv weight, nil for a 2-D linear weight.
    public let kernel: (kh: Int, kw: Int)?
    /// The weight as given.
    public let source: Tensor
    /// Packed bf16 data (`sdf_bf16_packed_size(n, k)` bytes); nil without bf16 hardware.
    let packed: TensorStorage?
    /// Rows packed as [value 16 | gate 16] blocks (`Ops.linearGEGLUBF16`): row r < N/2 is a value row,
    /// r >= N/2 the matching gate row.
    public let gegluInterleaved: Bool

    /// Packs `weight`: [N, K] (linear) or [O, C, kh, kw] (conv), f32/f16/bf16. Parallel over the
    /// cores (16-row panels are independent).
    /// gegluInterleaved: pack the rows of a GEGLU projection [2H, K] (H a multiple of 16) in the
    /// interleaved order `Ops.linearGEGLUBF16` reads.
    public init(_ weight: Tensor, gegluInterleaved: Bool = false) throws {
        let op = "PackedBF16Weight"
        self.gegluInterleaved = gegluInterleaved
        if gegluInterleaved {
            guard weight.rank == 2, weight.shape[0] % 32 == 0 else {
                throw TensorError.shapeMismatch(op: op, detail: "GEGLU weight must be [2H, K] with H a multiple of 16, got \(weight.shape)")
            }
        }
        guard weight.dtype == .f32 || weight.dtype == .f16 || weight.dtype == .bf16 else {
            throw TensorError.unsupportedDType(op: op, dtype: weight.dtype)
        }
        guard weight.rank == 2 || weight.rank == 4 else {
            throw TensorError.shapeMismatch(op: op, detail: "weight must be [N, K] or [O, C, kh, kw], got \(weight.shape)")
        }
        source = weight
        n = weight.shape[0]
        k = weight.count / max(weight.shape[0], 1)
        kernel = weight.rank == 4 ? (weight.shape[2], weight.shape[3]) : nil
        guard n <= Int(Int32.max) / 2, k <= Int(Int32.max) / 2 else {
            throw TensorError.tooLarge(op: op, detail: "weight \(weight.shape) exceeds the 32-bit GEMM index range")
        }
        if BF16Backend.hardwareTier == 0 || n == 0 || k == 0 { packed = nil; return }
        // Panels of 16 packed rows are independent: each core packs whole panels. A conv weight's K is
        // reordered from (c, ky, kx) to (ky, kx, c) per panel through a small per-core scratch (no
        // full-size reordered copy); a GEGLU weight's panels alternate between value rows [16b, 16b + 16)
        // and gate rows [H + 16b, ...) of the source, read in place.
        let bytes = sdf_bf16_packed_size(Int32(n), Int32(k))
        let storage = TensorStorage(byteCount: bytes)
        let kp = (k + 31) / 32 * 32
        let dt: Int32 = weight.dtype == .f32 ? 0 : (weight.dtype == .f16 ? 1 : 2)
        let es = weight.dtype.size, src = weight.rawPointer, rowBytes = k * es
        let dst = storage.base.assumingMemoryBound(to: UInt16.self)
        let panels = (n + 15) / 16, kk = k, nn = n, hidden = n / 2
        let khw = weight.rank == 4 ? weight.shape[2] * weight.shape[3] : 1
        let channels = k / khw
        Parallel.chunks(panels, minChunk: 4) { r in
            ScratchPool.shared.withFloats(khw > 1 ? (16 * rowBytes + 3) / 4 : 1) { scratch in
                let tmp = UnsafeMutableRawPointer(scratch)
                for p in r {
                    let rows = min(16, nn - p * 16)
                    let row0 = gegluInterleaved ? (p % 2 == 0 ? (p / 2) * 16 : hidden + (p / 2) * 16) : p * 16
                    var panelSource = src.advanced(by: row0 * rowBytes)
                    if khw > 1 {
                        func reorder<E>(_: E.Type) {
                            let s = panelSource.assumingMemoryBound(to: E.self), d = tmp.assumingMemoryBound(to: E.self)
                            for j in 0..<rows {
                                let so = s + j * kk, dO = d + j * kk
                                for ci in 0..<channels {
                                    for t in 0..<khw { dO[t * channels + ci] = so[ci * khw + t] }
                                }
                            }
                        }
                        if es == 2 { reorder(UInt16.self) } else { reorder(UInt32.self) }
                        panelSource = UnsafeRawPointer(tmp)
                    }
                    sdf_bf16_pack_b(panelSource, dt, Int32(rows), Int32(kk), Int32(kk), dst + p * 16 * kp)
                }
            }
        }
        withExtendedLifetime(weight) {}
        packed = storage
    }

    var packedPointer: UnsafePointer<UInt16>? {
        packed.map { UnsafePointer($0.base.assumingMemoryBound(to: UInt16.self)) }
    }
}
