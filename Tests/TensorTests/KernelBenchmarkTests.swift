import Foundation
import Testing
import Tensor

/// Runs the kernel benchmark when SDFLOW_BENCH=1 (use a release build:
/// `SDFLOW_BENCH=1 swift test -c release --filter kernelBenchmark`); SDFLOW_BENCH_JSON=1 for JSON lines.
@Test(.enabled(if: ProcessInfo.processInfo.environment["SDFLOW_BENCH"] == "1"))
func kernelBenchmark() {
    let env = ProcessInfo.processInfo.environment
    var lines: [String] = []
    runKernelBenchmarks(json: env["SDFLOW_BENCH_JSON"] == "1", quick: env["SDFLOW_BENCH_QUICK"] == "1") { lines.append($0); print($0) }
    #expect(!lines.isEmpty)
    #expect(!lines.contains { $0.contains("benchmark failed") })
}
