import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes safetensors files atomically: everything goes to a temporary file in the destination
/// folder, which is fsynced and renamed over the destination only when complete, so a reader never
/// sees a half-written file.
///
/// Layout produced: 8-byte little-endian header length, JSON header (entries in the given order,
/// `__metadata__` first when present) padded with spaces to a multiple of 8 bytes so every tensor's
/// data is 8-byte aligned, then the tensors back to back; `data_offsets` are relative to the data
/// start. This is what `safetensors.torch.save_file` writes and what `safetensors.torch.load_file`
/// reads.
public enum SafeTensorsWriter {
    /// Writes `tensors` (name, tensor) in order, with optional string metadata, to `url`.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], to url: URL) throws {
        let path = url.path
        var seen = Set<String>()
        for (name, _) in tensors {
            guard name != "__metadata__", seen.insert(name).inserted else {
                throw SafeTensorsError.invalidTensor(file: path, tensor: name, detail: "duplicate or reserved tensor name")
            }
        }
        let header = headerBytes(tensors, metadata: metadata)

        let dir = url.deletingLastPathComponent().path
        let tmp = (dir.isEmpty ? "." : dir) + "/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw SafeTensorsError.io(file: path, detail: "cannot create temporary file \(tmp): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            if !ok { close(fd); unlink(tmp) }
        }
        func put(_ p: UnsafeRawPointer, _ n: Int) throws {
            var done = 0
            while done < n {
                let w = Glibc.write(fd, p.advanced(by: done), min(n - done, 1 << 30))
                if w < 0 {
                    if errno == EINTR { continue }
                    throw SafeTensorsError.io(file: path, detail: "write failed: \(String(cString: strerror(errno)))")
                }
                done += w
            }
        }
        var len = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &len) { b in if let p = b.baseAddress { try put(p, 8) } }
        try header.withUnsafeBytes { b in if let p = b.baseAddress { try put(p, b.count) } }
        for (_, t) in tensors where t.byteCount > 0 {
            try put(t.rawPointer, t.byteCount)
        }
        if fsync(fd) != 0 { throw SafeTensorsError.io(file: path, detail: "fsync failed: \(String(cString: strerror(errno)))") }
        if close(fd) != 0 { unlink(tmp); ok = true; throw SafeTensorsError.io(file: path, detail: "close failed: \(String(cString: strerror(errno)))") }
        if rename(tmp, path) != 0 {
            let msg = String(cString: strerror(errno))
            unlink(tmp); ok = true
            throw SafeTensorsError.io(file: path, detail: "rename failed: \(msg)")
        }
        ok = true
    }

    /// Convenience: a dictionary, written in sorted name order.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        try write(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: metadata, to: url)
    }

    /// The padded JSON header for `tensors`.
    static func headerBytes(_ tensors: [(String, Tensor)], metadata: [String: String]) -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(m)}")
        }
        var offset = 0
        for (name, t) in tensors {
            let end = offset + t.byteCount
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(name)):{\"dtype\":\"\(t.dtype.safetensorsName)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var bytes = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// JSON string literal with the escapes RFC 8259 requires.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
