import Foundation

/// What the executor reports while it runs.
public enum ExecutionEvent: Sendable {
    case nodeStarted(id: String, type: String)
    case nodeFinished(id: String, type: String, seconds: Double)
    case nodeCached(id: String, type: String)
    case nodeFailed(id: String, type: String, message: String)
    case nodeSkipped(id: String, type: String, reason: String)
    case progress(nodeID: String, step: Int, total: Int)
    case warning(String)
}

public protocol ExecutionObserver: Sendable {
    func event(_ event: ExecutionEvent)
}

/// Discards everything.
public struct SilentObserver: ExecutionObserver {
    public init() {}
    public func event(_ event: ExecutionEvent) {}
}

/// Keeps every event (tests, the library).
public final class RecordingObserver: ExecutionObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [ExecutionEvent] = []
    public init() {}
    public func event(_ event: ExecutionEvent) { lock.withLock { stored.append(event) } }
    public var events: [ExecutionEvent] { lock.withLock { stored } }
}

/// What happened to one node in a run.
public struct NodeRecord: Sendable {
    public enum Status: String, Sendable { case executed, cached, failed, skipped }
    public var id: String
    public var type: String
    public var status: Status
    public var seconds: Double
    public var message: String?
}

public struct RunResult: Sendable {
    /// One record per node the outputs need, in topological order.
    public var records: [NodeRecord]
    /// Files written by output nodes.
    public var outputs: [URL]
    public var cancelled: Bool
    public var failed: Bool { records.contains { $0.status == .failed } }
    public func record(_ id: String) -> NodeRecord? { records.first { $0.id == id } }
    public var executedIDs: [String] { records.filter { $0.status == .executed }.map(\.id) }

    /// `--report` JSON: `{"nodes":[{"id","type","status","seconds"}],"outputs":[paths]}`.
    public func reportJSON() -> Data {
        let nodes: [[String: Any]] = records.map { r in
            var d: [String: Any] = ["id": r.id, "type": r.type, "status": r.status.rawValue,
                                    "seconds": (r.seconds * 1000).rounded() / 1000]
            if let m = r.message { d["error"] = m }
            return d
        }
        let obj: [String: Any] = ["nodes": nodes, "outputs": outputs.map(\.path)]
        return (try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
    }
}
