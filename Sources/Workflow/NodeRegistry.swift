import Foundation

/// The node types a run can use, looked up by name or ComfyUI alias, and the codecs of payloads
/// that the disk cache can store.
public final class NodeRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var byName: [String: NodeDefinition] = [:]
    private var order: [String] = []
    private var codecs: [String: @Sendable (Data) throws -> any Payload] = [:]

    public init() {}

    /// Registers a node type. A name or alias already taken is a programming error in the caller.
    public func register(_ def: NodeDefinition) {
        lock.withLock {
            precondition(byName[def.name] == nil, "node type \(def.name) registered twice")
            byName[def.name] = def
            for a in def.aliases where a != def.name { byName[a] = def }
            order.append(def.name)
        }
    }

    public func registerCodec<T: PersistablePayload>(_ type: T.Type) {
        lock.withLock { codecs[T.persistenceTag] = { try T.decoded(from: $0) } }
    }

    public func definition(named name: String) -> NodeDefinition? { lock.withLock { byName[name] } }

    /// Every registered type in registration order.
    public var definitions: [NodeDefinition] { lock.withLock { order.compactMap { byName[$0] } } }

    func decode(tag: String, data: Data) throws -> any Payload {
        guard let codec = lock.withLock({ codecs[tag] }) else { throw CacheError.damaged("unknown payload tag '\(tag)'") }
        return try codec(data)
    }

    /// The closest known names to a misspelt type, for "did you mean".
    public func suggestion(for name: String) -> String? {
        let names = lock.withLock { Array(byName.keys) }
        let lower = name.lowercased()
        let scored = names.map { ($0, editDistance($0.lowercased(), lower)) }.min { $0.1 < $1.1 }
        guard let best = scored, best.1 <= max(2, name.count / 3) else { return nil }
        return best.0
    }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
