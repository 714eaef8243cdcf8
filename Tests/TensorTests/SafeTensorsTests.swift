import Foundation
import Testing
import Tensor

/// Writer format and round trip, plus every class of malformed file the reader must reject cleanly.
@Suite struct SafeTensorsTests {
    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("sdflow-tensor-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// The fixed tensor set of the writer golden file (checked from torch by make_tensor_fixtures.py).
    static func goldenTensors() throws -> [(String, Tensor)] {
        let f16: [Float] = [0.5, -2.0, 65504.0, 6e-8, 0.0]
        let bf16: [Float] = [1.0, -3.5, 1e30]
        var i64: [Int64] = [-1_000_000_000_000, 7]
        let u8: [UInt8] = [0, 1, 128, 255]
        return [
            ("a.f32", try Tensor(shape: [2, 3], values: (0..<6).map { Float($0) * 0.25 - 0.5 })),
            ("b.f16", try Tensor(shape: [5], values: f16).converted(to: .f16)),
            ("c.bf16", try Tensor(shape: [3], values: bf16).converted(to: .bf16)),
            ("d.i64", try i64.withUnsafeMutableBytes { try Tensor(shape: [2], dtype: .i64, bytes: UnsafeRawBufferPointer($0)) }),
            ("e.u8", try u8.withUnsafeBytes { try Tensor(shape: [4], dtype: .u8, bytes: $0) }),
            ("f.empty", try Tensor.zeros([0, 4])),
            ("g.name \"quoted\"\n", try Tensor(shape: [1], values: [42])),
        ]
    }

    @Test func writerRoundTripAndFormat() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("rt.safetensors")
        let tensors = try Self.goldenTensors()
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt", "writer": "sdflow"], to: url)
        // No temporary file left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["rt.safetensors"])
        // Format: 8-byte LE length, header padded with spaces to a multiple of 8, data offsets relative
        // to the data start and back to back.
        let bytes = try Data(contentsOf: url)
        let n = bytes.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        #expect(n % 8 == 0)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        #expect(header.hasPrefix("{") && header.trimmingCharacters(in: .whitespaces).hasSuffix("}"))
        let dataSize = tensors.reduce(0) { $0 + $1.1.byteCount }
        #expect(bytes.count == 8 + n + dataSize)
        // Read back: same dtype, shape and bytes.
        let f = try SafeTensorsFile(url: url)
        #expect(f.metadata == ["format": "pt", "writer": "sdflow"])
        #expect(Set(f.names) == Set(tensors.map { $0.0 }))
        for (name, t) in tensors {
            let r = try f.tensor(name)
            #expect(r.dtype == t.dtype && r.shape == t.shape, "\(name)")
            #expect(r.withUnsafeBytes { Array($0) } == t.withUnsafeBytes { Array($0) }, "\(name)")
        }
        // Overwrite in place (atomic rename over an existing file) works.
        try SafeTensorsWriter.write([("x", try Tensor(shape: [1], values: [1]))], to: url)
        #expect(try SafeTensorsFile(url: url).names == ["x"])
    }

    /// Our writer's bytes equal the committed golden file, which make_tensor_fixtures.py loads with
    /// safetensors.torch and checks value by value. SDFLOW_WRITE_GOLDEN=1 regenerates it.
    @Test func writerGolden() throws {
        let golden = Fixtures.url("ours_written.safetensors")
        let meta = ["format": "pt", "writer": "sdflow"]
        if ProcessInfo.processInfo.environment["SDFLOW_WRITE_GOLDEN"] == "1" {
            try SafeTensorsWriter.write(try Self.goldenTensors(), metadata: meta, to: golden)
        }
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("g.safetensors")
        try SafeTensorsWriter.write(try Self.goldenTensors(), metadata: meta, to: url)
        #expect(try Data(contentsOf: url) == Data(contentsOf: golden))
    }

    // MARK: malformed input

    /// Writes `header` (raw, with the given declared length or its real one) followed by `data`.
    static func makeFile(_ dir: URL, _ name: String, header: String, declaredLength: UInt64? = nil, data: Int) throws -> URL {
        var bytes = Data()
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var len = (declaredLength ?? UInt64(h.count)).littleEndian
        withUnsafeBytes(of: &len) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: h)
        bytes.append(contentsOf: [UInt8](repeating: 7, count: data))
        let url = dir.appendingPathComponent(name)
        try bytes.write(to: url)
        return url
    }

    enum Expected { case truncated, header, tensor(String), dtype(String), io }

    static let badCases: [(String, String, UInt64?, Int, Expected)] = [
        ("header_past_end", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 1_000_000, 4, .truncated),
        ("not_json", #"{"a": not json at all"#, nil, 16, .header),
        ("not_object", #"[1, 2, 3]"#, nil, 16, .header),
        ("overlap", #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#, nil, 24, .tensor("b")),
        ("past_end", #"{"w":{"dtype":"F32","shape":[250],"data_offsets":[0,1000]}}"#, nil, 16, .tensor("w")),
        ("size_mismatch", #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#, nil, 16, .tensor("w")),
        ("unknown_dtype", #"{"w":{"dtype":"Q7","shape":[4],"data_offsets":[0,4]}}"#, nil, 16, .dtype("w")),
        ("huge_shape", #"{"big":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,16]}}"#, nil, 16, .tensor("big")),
        ("overflow_shape", #"{"big":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#, nil, 16, .tensor("big")),
        ("negative_dim", #"{"n":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#, nil, 16, .tensor("n")),
        ("reversed_offsets", #"{"r":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, nil, 16, .tensor("r")),
        ("bad_metadata", #"{"__metadata__":{"k":5}}"#, nil, 0, .header),
    ]

    @Test(arguments: badCases.indices)
    func malformedFilesAreRejectedWithContext(index: Int) throws {
        let (name, header, declared, data, expected) = Self.badCases[index]
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try Self.makeFile(dir, name + ".safetensors", header: header, declaredLength: declared, data: data)
        do {
            _ = try SafeTensorsFile(url: url)
            Issue.record("\(name): accepted a malformed file")
        } catch let e as SafeTensorsError {
            #expect(e.description.contains(url.path), "\(name): error does not name the file: \(e)")
            switch (expected, e) {
            case (.truncated, .truncated), (.header, .invalidHeader), (.io, .io): break
            case let (.tensor(t), .invalidTensor(_, tensor, _)):
                #expect(tensor == t, "\(name): names tensor \(tensor), expected \(t)")
                #expect(e.description.contains("'\(t)'"))
            case let (.dtype(t), .unknownDType(_, tensor, _)):
                #expect(tensor == t)
            default: Issue.record("\(name): unexpected error kind \(e)")
            }
        }
    }

    @Test func truncatedAndEmptyFiles() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, bytes) in [("empty", [UInt8]()), ("five", [1, 2, 3, 4, 5])] {
            let url = dir.appendingPathComponent(name)
            try Data(bytes).write(to: url)
            #expect(throws: SafeTensorsError.truncated(file: url.path, detail: "\(bytes.count) bytes, shorter than the 8-byte header length")) {
                try SafeTensorsFile(url: url)
            }
        }
        // A valid file cut short in the data section: offsets now run past the end.
        let good = dir.appendingPathComponent("good.safetensors")
        try SafeTensorsWriter.write([("w", try Tensor(shape: [64], values: [Float](repeating: 1, count: 64)))], to: good)
        let full = try Data(contentsOf: good)
        let cut = dir.appendingPathComponent("cut.safetensors")
        try full.prefix(full.count - 10).write(to: cut)
        #expect {
            try SafeTensorsFile(url: cut)
        } throws: { e in
            guard case let SafeTensorsError.invalidTensor(file, tensor, _) = e else { return false }
            return file == cut.path && tensor == "w"
        }
        // Cut inside the header.
        let cut2 = dir.appendingPathComponent("cut2.safetensors")
        try full.prefix(20).write(to: cut2)
        #expect { try SafeTensorsFile(url: cut2) } throws: { e in
            if case SafeTensorsError.truncated = e { return true } else { return false }
        }
    }

    @Test func missingFileAndMissingTensor() throws {
        #expect { try SafeTensorsFile(path: "/nonexistent/x.safetensors") } throws: { e in
            if case let SafeTensorsError.io(file, _) = e { return file == "/nonexistent/x.safetensors" } else { return false }
        }
        let f = try Fixtures.open("dtypes.safetensors")
        #expect(throws: SafeTensorsError.tensorNotFound(file: f.path, tensor: "nope")) { try f.tensor("nope") }
    }

    /// A 4 GiB tensor in a sparse file: opening and viewing it must not read it into memory (the
    /// test would take seconds and 4 GiB of RAM otherwise); elements are read lazily from the mapping.
    @Test func largeFileIsMappedLazily() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let count = 1 << 31  // f16 elements: 4 GiB
        let url = try Self.makeFile(dir, "big.safetensors",
            header: #"{"big":{"dtype":"F16","shape":[\#(count)],"data_offsets":[0,\#(2 * count)]},"__metadata__":{"k":"v"}}"#, data: 16)
        let fh = try FileHandle(forWritingTo: url)
        let headerEnd = try fh.seekToEnd() - 16
        try fh.truncate(atOffset: headerEnd + UInt64(2 * count))
        try fh.close()
        let start = Date()
        let f = try SafeTensorsFile(url: url)
        let t = try f.tensor("big")
        #expect(t.shape == [count] && t.dtype == .f16 && f.metadata == ["k": "v"])
        let tail = try t.slice((count - 4)..<count).toFloats()   // a view near the end: touches one page
        #expect(tail == [0, 0, 0, 0])
        #expect(try t.slice(0..<2).toFloats() == [Float(Float16(bitPattern: 0x0707)), Float(Float16(bitPattern: 0x0707))])
        #expect(Date().timeIntervalSince(start) < 2, "opening a 4 GiB file took too long: not lazy?")
    }

    /// A file whose header length is not a multiple of 8 yields misaligned data; the reader copies
    /// into aligned storage rather than handing out a misaligned Float pointer.
    @Test func unalignedDataIsCopied() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let header = Array(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.utf8)  // 55 bytes
        var bytes = Data()
        var len = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &len) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: header)
        for v: Float in [1.5, -2] { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        let url = dir.appendingPathComponent("u.safetensors")
        try bytes.write(to: url)
        let t = try SafeTensorsFile(url: url).tensor("w")
        #expect(Int(bitPattern: t.rawPointer) % 4 == 0)
        #expect(t.toFloats() == [1.5, -2])
    }
}
