import Foundation
import Workflow

/// Per-node start/finish lines on stderr; a progress bar with rate and ETA on a terminal, plain lines otherwise.
final class ConsoleReporter: ExecutionObserver, @unchecked Sendable {
    let quiet: Bool
    let tty = isatty(2) != 0
    private let lock = NSLock()
    private var barShown = false
    private var stepStart: [String: Double] = [:]
    private var lastPlain: [String: Double] = [:]

    init(quiet: Bool) { self.quiet = quiet }

    private func line(_ s: String) {
        if barShown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)); barShown = false }
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    func event(_ e: ExecutionEvent) {
        if quiet { if case .warning(let m) = e { lock.withLock { line("warning: \(m)") } }; return }
        lock.withLock {
            switch e {
            case .nodeStarted(let id, let type):
                line("▶ \(id) (\(type))")
                stepStart[id] = now()
            case .nodeFinished(let id, let type, let s):
                line("✓ \(id) (\(type)) \(String(format: "%.2f", s))s")
            case .nodeCached(let id, let type):
                line("· \(id) (\(type)) cached")
            case .nodeFailed(let id, let type, let m):
                line("✗ \(id) (\(type)) failed: \(m)")
            case .nodeSkipped(let id, let type, let reason):
                line("- \(id) (\(type)) skipped: \(reason)")
            case .warning(let m):
                line("warning: \(m)")
            case .progress(let id, let step, let total):
                let t0 = stepStart[id] ?? now()
                let elapsed = now() - t0
                let rate = step > 0 ? Double(step) / max(elapsed, 1e-9) : 0
                let eta = rate > 0 ? Double(total - step) / rate : 0
                if tty {
                    let width = 24
                    let filled = total > 0 ? min(width, width * step / total) : 0
                    let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
                    let rateText = rate >= 1 ? String(format: "%.2f it/s", rate) : String(format: "%.2f s/it", rate > 0 ? 1 / rate : 0)
                    let s = "\r\u{1B}[K  \(id) \(bar) \(step)/\(total) \(rateText) ETA \(fmtTime(eta))"
                    FileHandle.standardError.write(Data(s.utf8))
                    barShown = true
                } else if step == total || now() - (lastPlain[id] ?? 0) > 1 {
                    lastPlain[id] = now()
                    line("  \(id) step \(step)/\(total) (\(String(format: "%.1f", elapsed))s elapsed, ETA \(fmtTime(eta)))")
                }
            }
        }
    }

    func finish() { lock.withLock { if barShown { FileHandle.standardError.write(Data("\n".utf8)); barShown = false } } }
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func fmtTime(_ s: Double) -> String {
    if s < 60 { return String(format: "%.0fs", s) }
    return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60)
}
