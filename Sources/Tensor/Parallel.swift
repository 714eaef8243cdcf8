import Dispatch
import Foundation
import CBLAS
import CKernels

/// Threading for the kernels: Dispatch for our loops, OpenBLAS's own pool for sgemm.
public enum Parallel {
    /// Number of worker threads kernels use (active processor count).
    public static let cores: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs `body(i)` for i in 0..<n, concurrently when n > 1.
    @inline(__always) public static func forEach(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if n == 1 { body(0); return }
        run(n, body)
    }

    /// Runs `body(i)` for i in 0..<n concurrently and reports whether every call returned true (for C
    /// kernels that return 0 when they cannot allocate their scratch; the caller then takes a
    /// fallback path).
    public static func forEachAll(_ n: Int, _ body: (Int) -> Bool) -> Bool {
        if n <= 0 { return true }
        let ok = UnsafeMutablePointer<Bool>.allocate(capacity: n)
        ok.initialize(repeating: false, count: n)
        defer { ok.deallocate() }
        forEach(n) { i in ok[i] = body(i) }
        return (0..<n).allSatisfy { ok[$0] }
    }

    /// concurrentPerform with a non-Sendable body. Sound here because kernels only share read-only
    /// inputs and write disjoint output ranges; the call returns only after every iteration finished.
    private static func run(_ n: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escapable in
            let sendable = unsafeBitCast(escapable, to: (@Sendable (Int) -> Void).self)
            DispatchQueue.concurrentPerform(iterations: n, execute: sendable)
        }
    }

    /// Splits 0..<count into at most `cores * 2` contiguous ranges of at least `minChunk` elements and
    /// runs them concurrently.
    @inline(__always) public static func chunks(_ count: Int, minChunk: Int, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let pieces = max(1, min(cores * 2, count / max(minChunk, 1)))
        if pieces == 1 { body(0..<count); return }
        let step = (count + pieces - 1) / pieces
        run(pieces) { i in
            let lo = i * step, hi = min(count, lo + step)
            if lo < hi { body(lo..<hi) }
        }
    }
}

/// OpenBLAS set-up and the gate that keeps sgemm's results independent of what runs concurrently.
///
/// OpenBLAS has one process-wide thread count, and on some CPUs its sgemm's bits depend on it (and
/// on how a GEMM is split): OpenBLAS 0.3.21's Zen/Haswell kernels give different last bits for 1 and
/// 2 threads on 2-28% of the elements of six UNet-like shapes (the SkylakeX ones happened not to). Kernels that run many
/// small GEMMs, one per Dispatch worker, need one thread; everything else uses `Parallel.cores`. So
/// the count is switched only at a gate: GEMMs that split across cores (`sgemm` outside a section)
/// and single-threaded sections (`withSingleThreadedBLAS`) never overlap; each kind may overlap with
/// its own. A GEMM therefore always runs with the thread count its call site chose, and the same
/// inputs give the same bits whichever nodes run beside it (two CLIPEncodes run concurrently, say).
public enum BLAS {
    private static let configured: Bool = {
        openblas_set_num_threads(Int32(Parallel.cores))
        return true
    }()

    /// Ensures OpenBLAS uses `Parallel.cores` threads. Cheap after the first call.
    @inline(__always) public static func ensureConfigured() { _ = configured }

    /// Overrides the OpenBLAS thread count used outside `withSingleThreadedBLAS` (takes effect at the
    /// next multi-threaded GEMM; call it when no GEMM runs).
    public static func setThreads(_ n: Int) {
        ensureConfigured()
        gate.lock(); defer { gate.unlock() }
        threads = Int32(max(1, n))
        if holders == 0 || mode == .multi { openblas_set_num_threads(threads); mode = .multi }
    }

    private enum Mode { case multi, single }
    nonisolated(unsafe) private static var threads = Int32(Parallel.cores)
    nonisolated(unsafe) private static var mode = Mode.multi
    nonisolated(unsafe) private static var holders = 0
    nonisolated(unsafe) private static var singleWaiting = 0
    private static let gate = NSCondition()

    private static func enter(_ m: Mode) {
        gate.lock()
        if m == .single {
            singleWaiting += 1
            while holders > 0 && mode != .single { gate.wait() }
            singleWaiting -= 1
        } else {
            // Sections waiting go first, so a stream of GEMMs cannot hold them off.
            while (holders > 0 && mode != .multi) || singleWaiting > 0 { gate.wait() }
        }
        if holders == 0 && mode != m {
            mode = m
            openblas_set_num_threads(m == .single ? 1 : threads)
        }
        holders += 1
        gate.unlock()
    }

    private static func leave() {
        gate.lock()
        holders -= 1
        if holders == 0 { gate.broadcast() }
        gate.unlock()
    }

    /// Runs `body` with OpenBLAS restricted to one thread, for kernels that parallelize over many
    /// small GEMMs themselves (one per Dispatch worker, calling `sgemm(serial: true)`) instead of
    /// splitting each GEMM across cores. Waits for multi-threaded GEMMs in flight, and they for it;
    /// nested and concurrent sections share the single-threaded state. Inside it, `sgemm` calls from
    /// the thread that opened it run single-threaded without waiting.
    public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        ensureConfigured()
        if sdf_thread_counter_add(0) > 0 { return try body() }
        enter(.single)
        _ = sdf_thread_counter_add(1)
        defer { _ = sdf_thread_counter_add(-1); leave() }
        return try body()
    }

    /// Throws unless every GEMM dimension / leading dimension fits OpenBLAS's 32-bit `blasint`.
    static func checkDimensions(_ op: String, _ dims: Int...) throws {
        for d in dims where d > Int(Int32.max) {
            throw TensorError.tooLarge(op: op, detail: "GEMM dimension \(d) exceeds OpenBLAS's 32-bit index range")
        }
    }

    /// Row-major C = alpha * op(A) * op(B) + beta * C. Callers check sizes with `checkDimensions`.
    /// `serial`: the caller runs inside a `withSingleThreadedBLAS` section (on one of its workers), so
    /// the GEMM runs single-threaded without passing the gate. Otherwise the GEMM splits across
    /// `Parallel.cores` threads, after any section in flight has ended (or single-threaded at once,
    /// when the calling thread itself opened a section).
    @inline(__always) static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                        b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
                                        c: UnsafeMutablePointer<Float>, ldc: Int, serial: Bool = false) {
        ensureConfigured()
        let gated = !serial && sdf_thread_counter_add(0) == 0
        if gated { enter(.multi) }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
        if gated { leave() }
    }
}

/// A small pool of reusable scratch buffers (im2col columns, widened weights, attention scores), so
/// kernels do not allocate and fault in fresh pages on every call. Thread-safe.
public final class ScratchPool: @unchecked Sendable {
    public static let shared = ScratchPool()
    private let lock = NSLock()
    private var free: [TensorStorage] = []
    private let keep = 6

    /// Lends a buffer of at least `count` floats for the duration of `body`.
    public func withFloats<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let bytes = max(count, 1) * 4
        lock.lock()
        var buf: TensorStorage? = nil
        if let i = free.indices.filter({ free[$0].byteCount >= bytes }).min(by: { free[$0].byteCount < free[$1].byteCount }) {
            buf = free.remove(at: i)
        }
        lock.unlock()
        let s = buf ?? TensorStorage(byteCount: bytes)
        defer {
            lock.lock()
            free.append(s)
            if free.count > keep {
                free.sort { $0.byteCount > $1.byteCount }
                free.removeLast(free.count - keep)
            }
            lock.unlock()
        }
        return try body(s.base.assumingMemoryBound(to: Float.self))
    }

    /// Drops all cached buffers.
    public func purge() { lock.lock(); free.removeAll(); lock.unlock() }
}
