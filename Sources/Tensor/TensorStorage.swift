import Foundation
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

    /// Allocates `byteCount` bytes (64-byte aligned), zero-filled when `zeroed`. Large blocks come
    /// from `BufferCache` (already-touched memory, so no page faults on reuse).
    public init(byteCount: Int, zeroed: Bool = false) {
        let (p, cap) = BufferCache.shared.allocate(max(byteCount, 1))
        self.base = p
        self.capacity = cap
        if zeroed { memset(base, 0, max(byteCount, 1)) }
        self.byteCount = byteCount
        self.isWritable = true
        self.mapping = nil
    }

    private var capacity: Int = 0

    /// A read-only window into a mapping.
    init(mapping: MappedFile, offset: Int, byteCount: Int) {
        self.base = mapping.base.advanced(by: offset)
        self.byteCount = byteCount
        self.isWritable = false
        self.mapping = mapping
    }

    deinit {
        if mapping == nil { BufferCache.shared.release(base, capacity: capacity) }
    }
}

/// A bounded cache of large freed tensor buffers, reused by later allocations of the same size class.
///
/// Why: glibc serves big allocations with fresh mmap'd pages, so every kernel output (tens of MB at
/// SDXL sizes) would pay a page fault per 4 KiB on first touch - measured here as the dominant cost of
/// memory-bound kernels. Buffers >= 256 KiB are rounded up to a size class (1/8 steps between powers
/// of two, <= 6.25% slack) and, when freed, kept for reuse up to `limitBytes` in total; when full,
/// the least recently released buffers are freed to make room.
public final class BufferCache: @unchecked Sendable {
    public static let shared = BufferCache()
    /// Maximum bytes kept in the cache (default 1 GiB; SDFLOW_BUFFER_CACHE_MB overrides).
    public let limitBytes: Int
    private let lock = NSLock()
    /// Cached buffers, oldest release first.
    private var order: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
    private var cachedBytes = 0
    static let minCached = 256 << 10

    init() {
        if let s = ProcessInfo.processInfo.environment["SDFLOW_BUFFER_CACHE_MB"], let mb = Int(s), mb >= 0 {
            limitBytes = mb << 20
        } else {
            limitBytes = 1 << 30
        }
    }

    /// The size class of a request.
    static func sizeClass(_ n: Int) -> Int {
        if n < minCached { return n }
        let top = Int.bitWidth - (n - 1).leadingZeroBitCount   // 2^top >= n
        let step = (1 << top) / 16
        return (n + step - 1) / step * step
    }

    func allocate(_ n: Int) -> (UnsafeMutableRawPointer, Int) {
        let cls = Self.sizeClass(n)
        if cls >= Self.minCached {
            lock.lock()
            if let i = order.lastIndex(where: { $0.size == cls }) {
                let p = order.remove(at: i).pointer
                cachedBytes -= cls
                lock.unlock()
                return (p, cls)
            }
            lock.unlock()
        }
        return (Self.rawAllocate(cls), cls)
    }

    /// Blocks of 2 MiB and more start on a 2 MiB boundary and are marked MADV_HUGEPAGE: the GEMM
    /// kernels read tiles whose rows are kilobytes apart, and with 4 KiB pages the TLB misses cost
    /// 15-35% of their speed (measured on the bf16 GEMM). Smaller blocks: 64-byte aligned.
    /// SDFLOW_HUGEPAGES=0 turns this off (for comparisons).
    static let hugePage = 2 << 20
    static let useHugePages = ProcessInfo.processInfo.environment["SDFLOW_HUGEPAGES"] != "0"
    static func rawAllocate(_ n: Int) -> UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer? = nil
        let huge = useHugePages && n >= hugePage
        if posix_memalign(&p, huge ? hugePage : 64, n) != 0 || p == nil {
            fatalError("out of memory allocating \(n) bytes")
        }
        if huge { madvise(p, n / hugePage * hugePage, 14 /* MADV_HUGEPAGE */) }
        return p!
    }

    func release(_ p: UnsafeMutableRawPointer, capacity: Int) {
        guard capacity >= Self.minCached, capacity <= limitBytes else { free(p); return }
        var evicted: [UnsafeMutableRawPointer] = []
        lock.lock()
        // Least recently released buffers make room for this one.
        while cachedBytes + capacity > limitBytes, !order.isEmpty {
            let old = order.removeFirst()
            cachedBytes -= old.size
            evicted.append(old.pointer)
        }
        order.append((capacity, p))
        cachedBytes += capacity
        lock.unlock()
        for e in evicted { free(e) }
    }

    /// Frees every cached buffer.
    public func purge() {
        lock.lock()
        let all = order.map { $0.pointer }
        order.removeAll(); cachedBytes = 0
        lock.unlock()
        for p in all { free(p) }
    }

    /// Bytes currently held for reuse.
    public var heldBytes: Int { lock.lock(); defer { lock.unlock() }; return cachedBytes }
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
