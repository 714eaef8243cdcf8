#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes behind one or more tensors: either an owned, 64-byte aligned heap allocation, or a
/// read-only view into a memory-mapped file (kept alive by a reference to the mapping).
///
/// Storage is a reference type; `Tensor` values are cheap to copy and views share storage. Tensors are
/// treated as immutable once published; kernels write only into storage they just allocated. That
/// discipline is what makes the `@unchecked Sendable` sound.
public final class TensorStorage: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let byteCount: Int
    public let isWritable: Bool
    private let mapping: MappedFile?

    /// Allocates `byteCount` bytes (64-byte aligned), zero-filled when `zeroed`.
    public init(byteCount: Int, zeroed: Bool = false) {
        let n = max(byteCount, 1)
        self.base = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
        if zeroed { memset(base, 0, n) }
        self.byteCount = byteCount
        self.isWritable = true
        self.mapping = nil
    }

    /// A read-only window into a mapping.
    init(mapping: MappedFile, offset: Int, byteCount: Int) {
        self.base = mapping.base.advanced(by: offset)
        self.byteCount = byteCount
        self.isWritable = false
        self.mapping = mapping
    }

    deinit {
        if mapping == nil { base.deallocate() }
    }
}

/// A whole file mapped read-only (MAP_PRIVATE). Unmapped when the last tensor view goes away.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeMutableRawPointer
    public let size: Int

    /// Maps `path`. Throws `SafeTensorsError.io` naming the file on failure.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw SafeTensorsError.io(file: path, detail: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw SafeTensorsError.io(file: path, detail: "cannot stat: \(String(cString: strerror(errno)))") }
        if (st.st_mode & S_IFMT) != S_IFREG { throw SafeTensorsError.io(file: path, detail: "not a regular file") }
        let size = Int(st.st_size)
        self.size = size
        if size == 0 {
            // mmap of length 0 fails; keep a valid dummy pointer, every read is bounds-checked anyway.
            self.base = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 64)
            self.isMapped = false
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SafeTensorsError.io(file: path, detail: "mmap failed: \(String(cString: strerror(errno)))")
        }
        self.base = p
        self.isMapped = true
    }

    private let isMapped: Bool

    deinit {
        if isMapped { munmap(base, size) } else { base.deallocate() }
    }
}
