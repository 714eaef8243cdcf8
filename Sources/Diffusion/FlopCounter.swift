import Foundation

/// Counts the multiply-add work of GEMM-like layers (linear, conv, attention) while enabled, for
/// benchmarks' GFLOP/s. One FLOP = one multiply or one add (a multiply-add is 2).
public enum FlopCounter {
    nonisolated(unsafe) static var enabled = false
    nonisolated(unsafe) static var total: Double = 0
    static let lock = NSLock()

    public static func start() {
        lock.withLock {
            total = 0
            enabled = true
        }
    }

    /// Stops counting and returns the FLOPs since `start()`.
    @discardableResult
    public static func stop() -> Double {
        lock.withLock {
            enabled = false
            return total
        }
    }

    @inline(__always) static func add(_ flops: Double) {
        if enabled { lock.withLock { total += flops } }
    }
}

/// Wall time per kind of layer while enabled (`SDFLOW_PROFILE=1` on the benchmarks), to see where a
/// forward pass spends its time.
public enum Profiler {
    nonisolated(unsafe) public static var enabled = ProcessInfo.processInfo.environment["SDFLOW_PROFILE"] == "1"
    nonisolated(unsafe) static var seconds: [String: Double] = [:]
    static let lock = NSLock()

    @inline(__always) static func measure<T>(_ kind: String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer {
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            lock.withLock { seconds[kind, default: 0] += dt }
        }
        return try body()
    }

    /// Accumulated seconds by kind, largest first; resets.
    public static func take() -> [(String, Double)] {
        lock.withLock {
            defer { seconds = [:] }
            return seconds.sorted { $0.value > $1.value }
        }
    }
}
