import Dispatch
import Foundation
import Testing
@testable import Tensor

@Suite struct BLASGateTests {
    final class Results: @unchecked Sendable { var rows: [[Float]] = [] }

    /// OpenBLAS's bits depend on its thread count on some CPUs (0.3.21 on Zen 2: 2-28% of a GEMM's
    /// elements differ between 1 and 2 threads). A GEMM that splits across cores must give the same
    /// bits while another thread runs single-threaded sections (the few-row linear's per-core GEMMs
    /// here): without `BLAS`'s gate the section's thread count leaks into it (on Zen 2 this fails).
    @Test func splitGemmBitsIgnoreConcurrentSections() throws {
        let x = bf16Random([300, 640], seed: 1), w = bf16Random([320, 640], seed: 2)
        let ref = try Ops.linear(x, weight: w).toFloats()
        let xs = bf16Random([77, 768], seed: 3), ws = try bf16Random([2048, 768], seed: 4).converted(to: .f16)
        let refSmall = try Ops.linear(xs, weight: ws).toFloats()
        let big = Results(), small = Results()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            for _ in 0..<30 {
                if i == 0 { small.rows.append(try! Ops.linear(xs, weight: ws).toFloats()) }
                else { big.rows.append(try! Ops.linear(x, weight: w).toFloats()) }
            }
        }
        #expect(big.rows.count == 30 && small.rows.count == 30)
        #expect(big.rows.filter { $0 != ref }.count == 0, "split GEMMs that changed bits beside a section")
        #expect(small.rows.filter { $0 != refSmall }.count == 0, "sections that changed bits beside split GEMMs")
    }

    /// Sections nest (on the opening thread and on their workers), and a split GEMM called from the
    /// thread that opened a section runs single-threaded at once instead of waiting for the section
    /// to end (it would wait forever).
    @Test func nestedSectionsDoNotDeadlock() throws {
        let x = bf16Random([64, 96], seed: 5), w = bf16Random([80, 96], seed: 6)
        let y = try BLAS.withSingleThreadedBLAS {
            try BLAS.withSingleThreadedBLAS { try Ops.linear(x, weight: w) }
        }
        let inner = Results()
        BLAS.withSingleThreadedBLAS {
            Parallel.forEach(4) { _ in
                let r = BLAS.withSingleThreadedBLAS { try! Ops.linear(x, weight: w).toFloats() }
                _ = r
            }
            inner.rows = [try! Ops.linear(x, weight: w).toFloats()]
        }
        #expect(inner.rows == [y.toFloats()])
    }
}
