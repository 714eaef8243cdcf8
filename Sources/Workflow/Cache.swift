import Foundation

public enum CacheError: Error, CustomStringConvertible, Sendable {
    case damaged(String)
    public var description: String {
        switch self { case .damaged(let m): return "damaged cache entry: \(m)" }
    }
}

/// Node outputs by signature, least recently used first out, bounded by bytes. Lives as long as the
/// process (`watch`, the library), so an edited workflow only recomputes what changed.
public final class MemoryCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: (values: [Value], bytes: Int, tick: UInt64)] = [:]
    private var tick: UInt64 = 0
    private var total = 0
    public let capacityBytes: Int

    public init(capacityBytes: Int = 8 << 30) { self.capacityBytes = capacityBytes }

    public func get(_ key: String) -> [Value]? {
        lock.withLock {
            guard var e = entries[key] else { return nil }
            tick += 1
            e.tick = tick
            entries[key] = e
            return e.values
        }
    }

    public func put(_ key: String, _ values: [Value]) {
        let bytes = values.reduce(0) { $0 + $1.byteCount }
        lock.withLock {
            if let old = entries.removeValue(forKey: key) { total -= old.bytes }
            guard bytes <= capacityBytes else { return }
            tick += 1
            entries[key] = (values, bytes, tick)
            total += bytes
            while total > capacityBytes, let victim = entries.min(by: { $0.value.tick < $1.value.tick }) {
                total -= victim.value.bytes
                entries.removeValue(forKey: victim.key)
            }
        }
    }

    public var count: Int { lock.withLock { entries.count } }
    public var bytes: Int { lock.withLock { total } }
    public func removeAll() { lock.withLock { entries.removeAll(); total = 0 } }
}

/// Value outputs (images, latents, conditioning) on disk, one file per node signature:
/// magic, output count, (tag, length, bytes) per output, then a SHA-256 of all that. Written to a
/// temporary file and renamed; checked on read, and a damaged entry is deleted and recomputed.
public final class DiskCache: @unchecked Sendable {
    public let directory: URL
    public let capacityBytes: Int
    static let magic = Array("SDFCACH1".utf8)

    public init(directory: URL, capacityBytes: Int = 4 << 30) {
        self.directory = directory
        self.capacityBytes = capacityBytes
    }

    func url(for key: String) -> URL { directory.appendingPathComponent("\(key).sdfc") }

    public func contains(_ key: String) -> Bool { FileManager.default.fileExists(atPath: url(for: key).path) }

    /// Encodes the values if every one is persistable; nil otherwise.
    static func encode(_ values: [Value]) throws -> Data? {
        var body = Data(magic)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { body.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { body.append(contentsOf: $0) } }
        u32(UInt32(values.count))
        for v in values {
            let tag: String
            let bytes: Data
            switch v {
            case .object(let p):
                guard let pp = p as? any PersistablePayload, pp.isPersistable else { return nil }
                tag = type(of: pp).persistenceTag
                bytes = try pp.encoded()
            case .int, .float, .string, .bool:
                tag = "primitive"
                guard let lit = v.canonicalLiteral else { return nil }
                bytes = Data(lit.utf8)
            }
            u32(UInt32(tag.utf8.count))
            body.append(contentsOf: tag.utf8)
            u64(UInt64(bytes.count))
            body.append(bytes)
        }
        var h = SHA256()
        body.withUnsafeBytes { h.update($0) }
        body.append(contentsOf: h.finalize())
        return body
    }

    static func decode(_ data: Data, registry: NodeRegistry) throws -> [Value] {
        guard data.count >= magic.count + 4 + 32 else { throw CacheError.damaged("too short") }
        let body = data.prefix(data.count - 32)
        var h = SHA256()
        body.withUnsafeBytes { h.update($0) }
        guard Array(data.suffix(32)) == h.finalize() else { throw CacheError.damaged("checksum mismatch") }
        guard Array(body.prefix(magic.count)) == magic else { throw CacheError.damaged("bad magic") }
        var pos = body.startIndex + magic.count
        func take(_ n: Int) throws -> Data {
            guard n >= 0, body.endIndex - pos >= n else { throw CacheError.damaged("truncated") }
            defer { pos += n }
            return body[pos..<(pos + n)]
        }
        func u32() throws -> UInt32 { try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        func u64() throws -> UInt64 { try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        let n = try u32()
        guard n < 1024 else { throw CacheError.damaged("bad output count") }
        var out: [Value] = []
        for _ in 0..<n {
            let tl = try u32()
            guard tl < 256 else { throw CacheError.damaged("bad tag") }
            let tag = String(decoding: try take(Int(tl)), as: UTF8.self)
            let len = try u64()
            guard len <= UInt64(body.count) else { throw CacheError.damaged("bad length") }
            let bytes = Data(try take(Int(len)))
            if tag == "primitive" {
                out.append(try decodePrimitive(String(decoding: bytes, as: UTF8.self)))
            } else {
                out.append(.object(try registry.decode(tag: tag, data: bytes)))
            }
        }
        guard pos == body.endIndex else { throw CacheError.damaged("trailing bytes") }
        return out
    }

    static func decodePrimitive(_ s: String) throws -> Value {
        let parts = s.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw CacheError.damaged("bad primitive") }
        let rest = String(parts[1])
        switch parts[0] {
        case "i": if let v = Int(rest) { return .int(v) }
        case "f": if let v = UInt64(rest) { return .float(Double(bitPattern: v)) }
        case "b": return .bool(rest == "true")
        case "s":
            if let colon = rest.firstIndex(of: ":") { return .string(String(rest[rest.index(after: colon)...])) }
        default: break
        }
        throw CacheError.damaged("bad primitive")
    }

    /// Reads an entry: nil if absent; throws `CacheError.damaged` (after deleting it) if it fails its check.
    public func load(_ key: String, registry: NodeRegistry) throws -> [Value]? {
        let u = url(for: key)
        guard let data = FileManager.default.contents(atPath: u.path) else { return nil }
        do {
            let values = try Self.decode(data, registry: registry)
            // Touch, so pruning keeps recently used entries.
            try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: u.path)
            return values
        } catch {
            try? FileManager.default.removeItem(at: u)
            throw error
        }
    }

    /// Stores values if they are all persistable; returns whether it did. Never leaves a partial file.
    @discardableResult
    public func store(_ key: String, _ values: [Value]) throws -> Bool {
        guard let data = try Self.encode(values) else { return false }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let final = url(for: key)
        let tmp = directory.appendingPathComponent(".\(key).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try data.write(to: tmp)
            guard rename(tmp.path, final.path) == 0 else { throw CacheError.damaged("cannot rename into \(final.path)") }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw error
        }
        prune()
        return true
    }

    /// Deletes the least recently used entries beyond the capacity.
    func prune() {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else { return }
        var files: [(URL, Int, Date)] = []
        var total = 0
        for n in names where n.hasSuffix(".sdfc") {
            let u = directory.appendingPathComponent(n)
            guard let a = try? fm.attributesOfItem(atPath: u.path) else { continue }
            let size = (a[.size] as? NSNumber)?.intValue ?? 0
            files.append((u, size, (a[.modificationDate] as? Date) ?? .distantPast))
            total += size
        }
        guard total > capacityBytes else { return }
        for (u, size, _) in files.sorted(by: { $0.2 < $1.2 }) where total > capacityBytes {
            try? fm.removeItem(at: u)
            total -= size
        }
    }
}
