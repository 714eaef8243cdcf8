import Foundation

/// The CLIP BPE tables: ids 0..<256 are the byte symbols (in GPT-2 byte-to-unicode order), 256..<512 the same
/// symbols ending a word (`</w>`), 512..<49406 one per merge (merged symbol of merge line r is id 512 + r),
/// 49406/49407 the start/end tokens. BPE runs on ids: a merge is a pair of ids with a rank.
final class CLIPBPEVocabulary: Sendable {
    static let mergeCount = 49152 - 256 - 2  // 48894, as open_clip: lines[1 : 49152-256-2+1]

    /// Byte value -> id of its symbol (add 256 for the word-final form).
    let byteToID: [Int32]
    /// (left << 32 | right) -> rank; the merged id is `mergedIDs[rank]`.
    let ranks: [UInt64: Int32]
    let mergedIDs: [Int32]
    /// id -> vocabulary string.
    let tokens: [String]

    /// The GPT-2 byte-to-unicode table: printable Latin-1 bytes map to themselves, the others to U+0100 upwards.
    /// Returned in vocabulary order: (byte, scalar value).
    static func byteSymbols() -> [(byte: UInt8, scalar: UInt32)] {
        var printable: [Int] = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var scalars = printable.map(UInt32.init)
        let isPrintable = Set(printable)
        var next: UInt32 = 256
        for b in 0..<256 where !isPrintable.contains(b) {
            printable.append(b)
            scalars.append(next)
            next += 1
        }
        return zip(printable, scalars).map { (UInt8($0), $1) }
    }

    convenience init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw CLIPTokenizerError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIPTokenizerError.unreadable(path: url.path, reason: "not UTF-8")
        }
        try self.init(text: text, path: url.path)
    }

    init(text: String, path: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= Self.mergeCount + 1 else {
            throw CLIPTokenizerError.malformed(path: path, line: lines.count,
                reason: "expected a header line and \(Self.mergeCount) merges, found \(max(0, lines.count - 1)) lines after the header")
        }
        var byteToID = [Int32](repeating: 0, count: 256)
        var tokens: [String] = []
        tokens.reserveCapacity(CLIPTokenizer.vocabularySize)
        let symbols = Self.byteSymbols()
        for (i, s) in symbols.enumerated() {
            byteToID[Int(s.byte)] = Int32(i)
            tokens.append(String(Character(Unicode.Scalar(s.scalar)!)))
        }
        for i in 0..<256 { tokens.append(tokens[i] + "</w>") }

        var pairs: [(Substring, Substring)] = []
        pairs.reserveCapacity(Self.mergeCount)
        for n in 1...Self.mergeCount {
            let parts = lines[n].split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2 else {
                throw CLIPTokenizerError.malformed(path: path, line: n + 1, reason: "a merge line must hold two symbols")
            }
            pairs.append((parts[0], parts[1]))
            tokens.append(String(parts[0]) + String(parts[1]))
        }
        tokens.append("<|startoftext|>")
        tokens.append("<|endoftext|>")
        assert(tokens.count == CLIPTokenizer.vocabularySize)

        // string -> id, the last occurrence winning (as Python's dict(zip(vocab, range(len(vocab))))).
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() { ids[t] = Int32(i) }

        var ranks: [UInt64: Int32] = [:]
        ranks.reserveCapacity(pairs.count)
        var merged = [Int32]()
        merged.reserveCapacity(pairs.count)
        for (rank, (l, r)) in pairs.enumerated() {
            guard let left = ids[String(l)], let right = ids[String(r)] else {
                throw CLIPTokenizerError.malformed(path: path, line: rank + 2,
                    reason: "merge '\(l) \(r)' uses a symbol that is not in the vocabulary")
            }
            ranks[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))] = Int32(rank)
            merged.append(ids[tokens[512 + rank]] ?? Int32(512 + rank))
        }
        self.byteToID = byteToID
        self.ranks = ranks
        self.mergedIDs = merged
        self.tokens = tokens
    }

    /// BPE of one pre-tokenized word given as UTF-8 bytes: repeatedly merge every occurrence of the
    /// lowest-ranked adjacent pair (left to right, non-overlapping) until no pair has a rank.
    func bpe(_ bytes: [UInt8]) -> [Int] {
        guard !bytes.isEmpty else { return [] }
        var word = bytes.map { byteToID[Int($0)] }
        word[word.count - 1] += 256
        var scratch: [Int32] = []
        scratch.reserveCapacity(word.count)
        while word.count > 1 {
            var best = Int32.max
            var at = 0
            var prev = word[0]
            for i in 1..<word.count {
                let cur = word[i]
                if let r = ranks[UInt64(UInt32(prev)) << 32 | UInt64(UInt32(cur))], r < best { best = r; at = i }
                prev = cur
            }
            if best == Int32.max { break }
            let first = word[at - 1], second = word[at]
            let m = mergedIDs[Int(best)]
            scratch.removeAll(keepingCapacity: true)
            var i = 0
            while i < word.count {
                if i + 1 < word.count && word[i] == first && word[i + 1] == second {
                    scratch.append(m)
                    i += 2
                } else {
                    scratch.append(word[i])
                    i += 1
                }
            }
            swap(&word, &scratch)
        }
        return word.map(Int.init)
    }
}
