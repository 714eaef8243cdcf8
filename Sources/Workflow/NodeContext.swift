import Foundation

/// Everything a running node sees: its resolved inputs, where to write, and how to report progress.
public final class NodeContext: @unchecked Sendable {
    public let nodeID: String
    public let definition: NodeDefinition
    /// Inputs after resolving links, literals and defaults. Optional inputs that were not given are absent.
    public let inputs: [String: Value]
    /// Resolved paths of file inputs.
    public let files: [String: URL]
    public let outputDirectory: URL
    public let workflow: WorkflowSource
    let cancellation: CancellationToken
    let observer: ExecutionObserver
    private let lock = NSLock()
    private var written: [URL] = []
    private let lastUse: @Sendable (String) -> Bool

    init(nodeID: String, definition: NodeDefinition, inputs: [String: Value], files: [String: URL],
         outputDirectory: URL, workflow: WorkflowSource, cancellation: CancellationToken, observer: ExecutionObserver,
         lastUse: @escaping @Sendable (String) -> Bool = { _ in false }) {
        self.lastUse = lastUse
        self.nodeID = nodeID
        self.definition = definition
        self.inputs = inputs
        self.files = files
        self.outputDirectory = outputDirectory
        self.workflow = workflow
        self.cancellation = cancellation
        self.observer = observer
    }

    /// Whether no other node of this run still needs the value linked to `input`: every other node that
    /// takes the same upstream output has already finished (or will not run). False for literal inputs
    /// and while another consumer may still run. Lets a node give back memory its input holds (e.g. a
    /// model's packed weights) once nothing else in the run will use it.
    public func isLastUse(_ input: String) -> Bool { lastUse(input) }

    /// Files this node wrote (reported in `--report`).
    public var writtenFiles: [URL] { lock.withLock { written } }

    // MARK: typed input access

    public func has(_ name: String) -> Bool { inputs[name] != nil }

    public func int(_ name: String) throws -> Int {
        switch inputs[name] {
        case .int(let v): return v
        case .float(let v) where v == v.rounded() && abs(v) < 9e15: return Int(v)
        default: throw NodeError("expected an INT", input: name)
        }
    }

    public func double(_ name: String) throws -> Double {
        switch inputs[name] {
        case .float(let v): return v
        case .int(let v): return Double(v)
        default: throw NodeError("expected a FLOAT", input: name)
        }
    }

    public func string(_ name: String) throws -> String {
        guard case .string(let v) = inputs[name] else { throw NodeError("expected a STRING", input: name) }
        return v
    }

    public func bool(_ name: String) throws -> Bool {
        guard case .bool(let v) = inputs[name] else { throw NodeError("expected a BOOLEAN", input: name) }
        return v
    }

    public func object<T: Payload>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard case .object(let p) = inputs[name] else { throw NodeError("missing value", input: name) }
        guard let v = p as? T else { throw NodeError("expected \(T.self), got \(Swift.type(of: p))", input: name) }
        return v
    }

    public func optionalObject<T: Payload>(_ name: String, as type: T.Type = T.self) throws -> T? {
        guard inputs[name] != nil else { return nil }
        return try object(name, as: type)
    }

    public func file(_ name: String) throws -> URL {
        guard let url = files[name] else { throw NodeError("no file resolved", input: name) }
        return url
    }

    // MARK: progress and cancellation

    /// Reports `step` of `total` (a sampler step, a tile); also a safe point for Ctrl-C.
    public func progress(step: Int, total: Int) throws {
        observer.event(.progress(nodeID: nodeID, step: step, total: total))
        try checkCancelled()
    }

    public func checkCancelled() throws {
        if cancellation.isCancelled { throw CancelledError() }
    }

    public func warn(_ message: String) {
        observer.event(.warning("node '\(nodeID)': \(message)"))
    }

    // MARK: writing files

    /// Writes `url` atomically: `body` writes to a temporary file in the same folder, which is renamed
    /// over `url` only if `body` succeeds and the run was not cancelled; otherwise it is removed.
    public func writeAtomically(to url: URL, _ body: (URL) throws -> Void) throws {
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try body(tmp)
            try checkCancelled()
            if rename(tmp.path, url.path) != 0 {
                throw NodeError("cannot rename into '\(url.path)': \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw error
        }
        lock.withLock { written.append(url) }
    }
}

/// Set once by Ctrl-C; read at every safe point.
public final class CancellationToken: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    public init() {}
    public var isCancelled: Bool { lock.withLock { flag } }
    public func cancel() { lock.withLock { flag = true } }
}
