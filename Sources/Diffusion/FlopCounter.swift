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
