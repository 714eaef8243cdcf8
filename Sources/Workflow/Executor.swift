import Foundation

public struct ExecutionOptions: Sendable {
    public var outputDirectory: URL
    /// Nodes running at once (light nodes); heavy nodes run one at a time regardless.
    public var maxConcurrent: Int
    public init(outputDirectory: URL, maxConcurrent: Int = max(2, ProcessInfo.processInfo.activeProcessorCount)) {
        self.outputDirectory = outputDirectory
        self.maxConcurrent = max(1, maxConcurrent)
    }
}

/// Runs validated graphs: computes signatures, takes what it can from the caches, and runs the rest
/// on Dispatch as soon as their inputs are ready.
public final class Executor: @unchecked Sendable {
    public let registry: NodeRegistry
    public let memory: MemoryCache
    public let disk: DiskCache?
    /// Settings outside the graph that change results (e.g. "precision=bf16 tier=2"), part of every
    /// signature so that results computed under other settings are never taken from a cache. Empty
    /// for the defaults (fp32), which keeps the signatures of earlier versions.
    public let salt: String

    public init(registry: NodeRegistry, memory: MemoryCache = MemoryCache(), disk: DiskCache? = nil, salt: String = "") {
        self.registry = registry
        self.memory = memory
        self.disk = disk
        self.salt = salt
    }

    /// Signature of every node: its type, literal inputs, the signatures of what it links to, the
    /// identity (path, size, modification time) of the files it reads, and `salt` when not empty.
    public static func signatures(_ graph: Graph, salt: String = "") -> [String: String] {
        var sigs: [String: String] = [:]
        for id in graph.order {
            let n = graph.nodes[id]!
            var h = SHA256()
            h.update("sdflow-signature-1\ntype=\(n.definition.name)\n")
            if !salt.isEmpty { h.update("salt=\(salt)\n") }
            for name in n.inputs.keys.sorted() {
                switch n.inputs[name]! {
                case .literal(let v): h.update("in \(name)=\(v.canonicalLiteral ?? "?")\n")
                case .link(let up, let idx): h.update("in \(name)=link:\(sigs[up] ?? "?")#\(idx)\n")
                }
                if let url = n.files[name] { h.update("file \(name)=\(fileIdentity(url))\n") }
            }
            sigs[id] = SHA256.hex(h.finalize())
        }
        return sigs
    }

    static func fileIdentity(_ url: URL) -> String {
        let a = (try? FileManager.default.attributesOfItem(atPath: url.path)) ?? [:]
        let size = (a[.size] as? NSNumber)?.int64Value ?? -1
        let mtime = (a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(url.path)|\(size)|\(String(format: "%.6f", mtime))"
    }

    public func run(_ graph: Graph, options: ExecutionOptions, observer: ExecutionObserver = SilentObserver(),
                    cancellation: CancellationToken = CancellationToken()) -> RunResult {
        let sigs = Self.signatures(graph, salt: salt)
        let state = RunState()

        // Plan top-down: a node whose result is cached needs nothing upstream of it.
        var toRun = Set<String>()
        var visited = Set<String>()
        var stack = graph.outputs
        while let id = stack.popLast() {
            guard visited.insert(id).inserted, let n = graph.nodes[id] else { continue }
            let sig = sigs[id]!
            if let v = memory.get(sig) {
                state.values[id] = v
                continue
            }
            if let disk, !n.definition.isOutput {
                do {
                    if let v = try disk.load(sig, registry: registry) {
                        memory.put(sig, v)
                        state.values[id] = v
                        continue
                    }
                } catch {
                    observer.event(.warning("node '\(id)': \(error); recomputing"))
                }
            }
            toRun.insert(id)
            stack.append(contentsOf: n.upstream)
        }
        for id in graph.order where !toRun.contains(id) {
            let n = graph.nodes[id]!
            state.records[id] = NodeRecord(id: id, type: n.definition.name, status: .cached, seconds: 0)
            if state.values[id] != nil { observer.event(.nodeCached(id: id, type: n.definition.name)) }
        }

        var deps: [String: [String]] = [:]
        for id in graph.order where toRun.contains(id) {
            let ups = graph.nodes[id]!.upstream.filter { toRun.contains($0) }
            state.pending[id] = ups.count
            for u in ups { deps[u, default: []].append(id) }
        }
        let dependents = deps
        // Who in this run takes each upstream output (node, index): for NodeContext.isLastUse.
        var takers: [String: Set<String>] = [:]
        for id in graph.order where toRun.contains(id) {
            for case .link(let up, let idx) in graph.nodes[id]!.inputs.values { takers["\(up)#\(idx)", default: []].insert(id) }
        }
        let consumers = takers

        let group = DispatchGroup()
        let slots = DispatchSemaphore(value: options.maxConcurrent)
        let heavy = DispatchSemaphore(value: 1)

        @Sendable func skip(_ id: String, reason: String) {
            // Caller holds the lock.
            guard state.records[id] == nil else { return }
            let type = graph.nodes[id]!.definition.name
            state.records[id] = NodeRecord(id: id, type: type, status: .skipped, seconds: 0, message: reason)
            observer.event(.nodeSkipped(id: id, type: type, reason: reason))
            for d in dependents[id] ?? [] { skip(d, reason: "input node '\(id)' did not run") }
        }

        @Sendable func submit(_ id: String) {
            group.enter()
            // One thread per running node: node bodies block for long stretches (they drive every core
            // through their own kernels), and Dispatch's worker pool is only as wide as the core count.
            let thread = Thread {
                defer { group.leave() }
                let node = graph.nodes[id]!
                let def = node.definition
                slots.wait()
                if def.isHeavy { heavy.wait() }
                defer {
                    if def.isHeavy { heavy.signal() }
                    slots.signal()
                }
                if cancellation.isCancelled {
                    state.lock.withLock { skip(id, reason: "cancelled") }
                    return
                }
                var inputs: [String: Value] = [:]
                state.lock.withLock {
                    for (name, b) in node.inputs {
                        switch b {
                        case .literal(let v): inputs[name] = v
                        case .link(let up, let idx): inputs[name] = state.values[up]?[idx]
                        }
                    }
                }
                let ctx = NodeContext(nodeID: id, definition: def, inputs: inputs, files: node.files,
                                      outputDirectory: options.outputDirectory, workflow: graph.source,
                                      cancellation: cancellation, observer: observer, lastUse: { name in
                    guard case .link(let up, let idx)? = node.inputs[name] else { return false }
                    let others = (consumers["\(up)#\(idx)"] ?? []).subtracting([id])
                    return state.lock.withLock { others.allSatisfy { state.records[$0] != nil } }
                })
                observer.event(.nodeStarted(id: id, type: def.name))
                let start = DispatchTime.now().uptimeNanoseconds
                var result: Result<[Value], Error>
                do {
                    let out = try def.run(ctx)
                    if out.count != def.outputs.count {
                        throw NodeError("returned \(out.count) values for \(def.outputs.count) outputs")
                    }
                    result = .success(out)
                } catch {
                    result = .failure(error)
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                if case .success(let out) = result {
                    self.memory.put(sigs[id]!, out)
                    if let disk = self.disk, !def.isOutput {
                        do { try disk.store(sigs[id]!, out) } catch {
                            observer.event(.warning("node '\(id)': could not write the disk cache: \(error)"))
                        }
                    }
                }
                state.lock.withLock {
                    state.outputs.append(contentsOf: ctx.writtenFiles)
                    switch result {
                    case .success(let out):
                        state.values[id] = out
                        state.records[id] = NodeRecord(id: id, type: def.name, status: .executed, seconds: seconds)
                        observer.event(.nodeFinished(id: id, type: def.name, seconds: seconds))
                        for d in dependents[id] ?? [] {
                            state.pending[d]! -= 1
                            if state.pending[d]! == 0 && state.records[d] == nil {
                                if cancellation.isCancelled { skip(d, reason: "cancelled") } else { submit(d) }
                            }
                        }
                    case .failure(let error):
                        let cancelled = error is CancelledError
                        let msg = cancelled ? "cancelled" : "\(error)"
                        state.records[id] = NodeRecord(id: id, type: def.name, status: cancelled ? .skipped : .failed,
                                                       seconds: seconds, message: msg)
                        if cancelled {
                            observer.event(.nodeSkipped(id: id, type: def.name, reason: "cancelled"))
                        } else {
                            observer.event(.nodeFailed(id: id, type: def.name, message: msg))
                        }
                        for d in dependents[id] ?? [] { skip(d, reason: "input node '\(id)' \(cancelled ? "was cancelled" : "failed")") }
                    }
                }
            }
            thread.stackSize = 16 << 20
            thread.start()
        }

        state.lock.withLock {
            for id in graph.order where toRun.contains(id) && state.pending[id] == 0 { submit(id) }
        }
        group.wait()
        state.lock.withLock {
            for id in graph.order where state.records[id] == nil { skip(id, reason: cancellation.isCancelled ? "cancelled" : "not reached") }
        }
        let records = graph.order.map { state.records[$0]! }
        return RunResult(records: records, outputs: state.outputs, cancelled: cancellation.isCancelled)
    }
}

final class RunState: @unchecked Sendable {
    let lock = NSRecursiveLock()
    var values: [String: [Value]] = [:]
    var records: [String: NodeRecord] = [:]
    var pending: [String: Int] = [:]
    var outputs: [URL] = []
}
