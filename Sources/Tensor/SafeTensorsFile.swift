import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A safetensors file opened for reading: the file is memory-mapped (never read into memory), the
/// header is parsed and fully validated on open, and tensors are handed out as zero-copy views into
/// the mapping.
///
/// Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, N bytes
/// of JSON `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`,
/// then the data; offsets are relative to the start of the data. Validation: N within the file and at
/// most 100 MB; JSON object; each entry's dtype known, shape non-negative and not absurd, begin <= end
/// <= data size, end - begin == elements x dtype size, and no two entries overlapping. Gaps between
/// entries are tolerated.
public final class SafeTensorsFile: @unchecked Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        /// Byte range relative to the start of the data section.
        public var dataOffsets: Range<Int>
    }

    /// Largest header accepted (the reference implementation's limit).
    public static let maxHeaderLength = 100_000_000

    public let path: String
    /// The `__metadata__` string map (empty when absent).
    public let metadata: [String: String]
    /// Entries by tensor name.
    public let entries: [String: Entry]
    private let file: MappedFile
    private let dataStart: Int

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    public convenience init(url: URL) throws { try self.init(path: url.path) }

    /// Maps and validates `path`. Throws `SafeTensorsError` naming the file (and tensor) on bad input.
    public init(path: String) throws {
        self.path = path
        let file = try MappedFile(path: path)
        self.file = file
        guard file.size >= 8 else {
            throw SafeTensorsError.truncated(file: path, detail: "\(file.size) bytes, shorter than the 8-byte header length")
        }
        var raw: UInt64 = 0
        withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(start: file.base, count: 8)) }
        let headerLength = UInt64(littleEndian: raw)
        guard headerLength <= UInt64(file.size - 8) else {
            throw SafeTensorsError.truncated(file: path, detail: "header length \(headerLength) runs past the end of the \(file.size)-byte file")
        }
        guard headerLength <= UInt64(Self.maxHeaderLength) else {
            throw SafeTensorsError.invalidHeader(file: path, detail: "header length \(headerLength) exceeds \(Self.maxHeaderLength)")
        }
        let n = Int(headerLength)
        guard n >= 2 else { throw SafeTensorsError.invalidHeader(file: path, detail: "header of \(n) bytes is too short for a JSON object") }
        let dataStart = 8 + n
        self.dataStart = dataStart
        let dataSize = file.size - dataStart

        let headerData = Data(bytesNoCopy: file.base.advanced(by: 8), count: n, deallocator: .none)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData, options: [])
        } catch {
            throw SafeTensorsError.invalidHeader(file: path, detail: "not valid JSON (\(error.localizedDescription))")
        }
        guard let top = json as? [String: Any] else {
            throw SafeTensorsError.invalidHeader(file: path, detail: "top level is not a JSON object")
        }

        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (name, value) in top {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw SafeTensorsError.invalidHeader(file: path, detail: "__metadata__ is not an object")
                }
                for (k, v) in m {
                    guard let s = v as? String else {
                        throw SafeTensorsError.invalidHeader(file: path, detail: "__metadata__ value for '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            entries[name] = try Self.parseEntry(name: name, value: value, dataSize: dataSize, path: path)
        }

        // No overlaps: sort by begin, each begins at or after the previous end (empty tensors ignored).
        let sorted = entries.values.filter { !$0.dataOffsets.isEmpty }.sorted { $0.dataOffsets.lowerBound < $1.dataOffsets.lowerBound }
        if sorted.count > 1 {
            for i in 1..<sorted.count where sorted[i].dataOffsets.lowerBound < sorted[i - 1].dataOffsets.upperBound {
                throw SafeTensorsError.invalidTensor(file: path, tensor: sorted[i].name,
                    detail: "data_offsets \(sorted[i].dataOffsets) overlap tensor '\(sorted[i - 1].name)' at \(sorted[i - 1].dataOffsets)")
            }
        }
        self.metadata = metadata
        self.entries = entries
    }

    private static func parseEntry(name: String, value: Any, dataSize: Int, path: String) throws -> Entry {
        func bad(_ d: String) -> SafeTensorsError { .invalidTensor(file: path, tensor: name, detail: d) }
        guard let obj = value as? [String: Any] else { throw bad("entry is not an object") }
        guard let dt = obj["dtype"] as? String else { throw bad("missing or non-string dtype") }
        guard let dtype = DType(safetensorsName: dt) else { throw SafeTensorsError.unknownDType(file: path, tensor: name, dtype: dt) }
        guard let shapeAny = obj["shape"] as? [Any] else { throw bad("missing or non-array shape") }
        var shape: [Int] = []
        for s in shapeAny {
            guard let num = s as? NSNumber, let d = Int(exactly: num.doubleValue), d >= 0, Double(d) == num.doubleValue else {
                throw bad("shape \(shapeAny) has a non-integer or negative dimension")
            }
            shape.append(d)
        }
        guard let offAny = obj["data_offsets"] as? [Any], offAny.count == 2,
              let b0 = offAny[0] as? NSNumber, let e0 = offAny[1] as? NSNumber,
              let begin = Int(exactly: b0.doubleValue), let end = Int(exactly: e0.doubleValue) else {
            throw bad("data_offsets must be two integers")
        }
        guard begin >= 0, begin <= end else { throw bad("data_offsets [\(begin), \(end)] are reversed or negative") }
        guard end <= dataSize else { throw bad("data_offsets [\(begin), \(end)] run past the end of the data (\(dataSize) bytes)") }
        // Element count with overflow checks; a huge shape can never match a range inside the file.
        var elements = 1
        for d in shape {
            let (m, o) = elements.multipliedReportingOverflow(by: d)
            guard !o, m <= Shape.maxElements else { throw bad("shape \(shape) has too many elements (byte size cannot match \(end - begin) bytes)") }
            elements = m
        }
        let bytes = elements * dtype.size
        guard bytes == end - begin else {
            throw bad("shape \(shape) x \(dtype.safetensorsName) is \(bytes) bytes but data_offsets span \(end - begin)")
        }
        return Entry(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// The entry for `name`, or throws `tensorNotFound`.
    public func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw SafeTensorsError.tensorNotFound(file: path, tensor: name) }
        return e
    }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// A zero-copy, read-only view of tensor `name` in its stored dtype. Data whose address is not a
    /// multiple of the element size (possible in files whose header is not 8-byte padded) is copied
    /// into an aligned buffer instead.
    public func tensor(_ name: String) throws -> Tensor {
        let e = try entry(name)
        let offset = dataStart + e.dataOffsets.lowerBound
        let address = Int(bitPattern: file.base) + offset
        if address % e.dtype.size != 0 {
            return try Tensor(shape: e.shape, dtype: e.dtype,
                              bytes: UnsafeRawBufferPointer(start: file.base.advanced(by: offset), count: e.dataOffsets.count))
        }
        let storage = TensorStorage(mapping: file, offset: offset, byteCount: e.dataOffsets.count)
        return Tensor(unchecked: storage, shape: e.shape, dtype: e.dtype)
    }

    /// All tensors as views, by name.
    public func allTensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for n in entries.keys { out[n] = try tensor(n) }
        return out
    }
}
