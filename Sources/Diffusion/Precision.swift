import Foundation
import Tensor

/// What the GEMM-heavy layers compute in. `bf16` runs linears, convolutions and attention on bf16
/// inputs with fp32 accumulation (AMX tiles, else AVX512-BF16), with weights packed once on first use;
/// softmax, norms and everything else stay fp32. The VAE follows too (bf16 has fp32's exponent range,
/// unlike the fp16 that SDXL's VAE overflows in). Without bf16 hardware `bf16` falls back to fp32.
public enum ComputePrecision: String, CaseIterable, Sendable {
    case fp32, bf16

    nonisolated(unsafe) private static var selected: ComputePrecision = .fp32
    private static let lock = NSLock()

    /// The process-wide setting (the CLI's `--precision`), unless the calling thread overrides it.
    public static var current: ComputePrecision {
        get {
            if let raw = Thread.current.threadDictionary[threadKey] as? String, let p = ComputePrecision(rawValue: raw) { return p }
            return lock.withLock { selected }
        }
        set { lock.withLock { selected = newValue } }
    }

    static let threadKey = "sdflow.precision"

    /// Runs `body` with this thread computing in `p` (layers decide on the thread that calls them), leaving
    /// the process-wide setting and other threads alone.
    public static func with<R>(_ p: ComputePrecision, _ body: () throws -> R) rethrows -> R {
        let dict = Thread.current.threadDictionary
        let old = dict[threadKey]
        dict[threadKey] = p.rawValue
        defer { dict[threadKey] = old }
        return try body()
    }

    /// `auto`: bf16 where the CPU has AMX, fp32 elsewhere.
    public static var automatic: ComputePrecision { BF16Backend.detectedTier >= 2 ? .bf16 : .fp32 }

    public static func parse(_ s: String) -> ComputePrecision? {
        s == "auto" ? automatic : ComputePrecision(rawValue: s)
    }

    /// Whether a layer allowed to use bf16 should now.
    static var useBF16: Bool { current == .bf16 && BF16Backend.available }
}

/// A weight's bf16 packing, made on first use and then kept (until `release`, see
/// `ModelMemory.policy`); after packing, the mapped source pages leave the resident set (the packed
/// copy replaces them).
final class PackedWeightBox: @unchecked Sendable {
    private let lock = NSLock()
    private var packed: PackedBF16Weight?
    private let gegluInterleaved: Bool

    init(gegluInterleaved: Bool = false) { self.gegluInterleaved = gegluInterleaved }

    func get(_ weight: Tensor) throws -> PackedBF16Weight {
        if let p = lock.withLock({ packed }) { return p }
        let p = try PackedBF16Weight(weight, gegluInterleaved: gegluInterleaved)
        lock.withLock { packed = p }
        PackedWeightRegistry.note(self, weight: weight)
        releasePages(of: weight)
        return p
    }

    /// Drops the packing (a GEMM running with it keeps its own reference); the next `get` packs again.
    func release() { lock.withLock { packed = nil } }

    var isPacked: Bool { lock.withLock { packed != nil } }
}

/// The boxes holding a packing, by the address of the weight they packed, so that a model can drop
/// the packings of its own weights (`WeightSet.releasePackedWeights`). Weak: a model that goes away
/// takes its boxes with it.
enum PackedWeightRegistry {
    private final class Entry { weak var box: PackedWeightBox?; init(_ b: PackedWeightBox) { box = b } }
    private static let lock = NSLock()
    nonisolated(unsafe) private static var entries: [UInt: [Entry]] = [:]

    static func note(_ box: PackedWeightBox, weight: Tensor) {
        let key = UInt(bitPattern: weight.rawPointer)
        lock.withLock {
            var list = (entries[key] ?? []).filter { $0.box != nil && $0.box !== box }
            list.append(Entry(box))
            entries[key] = list
        }
    }

    /// Releases every packing made from a weight at one of these addresses; returns how many.
    @discardableResult
    static func release(weightsAt addresses: Set<UInt>) -> Int {
        let boxes: [PackedWeightBox] = lock.withLock {
            var out: [PackedWeightBox] = []
            for a in addresses {
                guard let list = entries.removeValue(forKey: a) else { continue }
                out += list.compactMap(\.box)
            }
            return out
        }
        for b in boxes { b.release() }
        return boxes.count
    }
}

/// When a model's bf16 weight packings (the packed copy bf16 GEMMs read; fp32 keeps none) are dropped
/// after a node that used the model is done. Mapped weight pages always leave the resident set then.
public enum ModelMemory {
    public enum Policy: Sendable {
        /// Kept for the process's lifetime (`watch`: a re-run reuses them).
        case keep
        /// Dropped when no other node of the run still takes the model (`run`: nothing else can use them).
        case afterLastUse
        /// Dropped after every use (`--low-memory`): one model's packings at a time; a model used again
        /// is packed again (seconds for the SDXL UNet).
        case afterEachUse
    }

    nonisolated(unsafe) private static var current = Policy.keep
    private static let lock = NSLock()

    public static var policy: Policy {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }

    /// Whether a node done with a model should drop its packings, given whether it was the model's last
    /// use in the run.
    public static func dropPackings(lastUse: Bool) -> Bool {
        switch policy {
        case .keep: return false
        case .afterLastUse: return lastUse
        case .afterEachUse: return true
        }
    }
}

/// madvise(DONTNEED) over a memory-mapped tensor's whole pages.
func releasePages(of t: Tensor) {
    guard !t.storage.isWritable else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = UInt(bitPattern: t.rawPointer)
    let lo = (start + UInt(page) - 1) / UInt(page) * UInt(page)
    let hi = (start + UInt(t.byteCount)) / UInt(page) * UInt(page)
    guard hi > lo, let p = UnsafeMutableRawPointer(bitPattern: lo) else { return }
    madvise(p, Int(hi - lo), MADV_DONTNEED)
}
