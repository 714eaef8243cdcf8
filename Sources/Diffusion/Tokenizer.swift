import Foundation

/// Errors from loading the CLIP BPE data.
public enum CLIPTokenizerError: Error, CustomStringConvertible, Sendable {
    /// The merges file is not in the module's resource bundle.
    case resourceMissing(name: String)
    /// The merges file exists but could not be read as UTF-8 text.
    case unreadable(path: String, reason: String)
    /// A line of the merges file is not "left right" with both symbols already known.
    case malformed(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .resourceMissing(let name):
            return "CLIP tokenizer: resource '\(name)' is missing from the Diffusion resource bundle "
                + "(it ships as Sources/Diffusion/Resources/\(name); was the package built with its resources?)"
        case .unreadable(let path, let reason):
            return "CLIP tokenizer: cannot read BPE merges file \(path): \(reason)"
        case .malformed(let path, let line, let reason):
            return "CLIP tokenizer: \(path):\(line): \(reason)"
        }
    }
}

/// How text is cleaned before pre-tokenization. The two references agree on ordinary prompts; they differ on
/// HTML character references, on the Greek final sigma, and on special-token strings typed into a prompt.
public enum CLIPTextCleaning: Sendable, Hashable {
    /// open_clip's `SimpleTokenizer` (clean = "lower"): NFC, `html.unescape` twice, Python `str.split()`
    /// whitespace collapse, Python `str.lower()` (with the final-sigma rule). Of `ftfy.fix_text` only the NFC
    /// normalisation is reproduced; ftfy's other repairs (mojibake, curly quotes, ligatures, full-width forms)
    /// are not, so such text can tokenize differently from open_clip with ftfy installed.
    /// `<|startoftext|>` / `<|endoftext|>` in the text are the special tokens (the CLIP pattern's first alternatives).
    case openCLIP
    /// transformers' `CLIPTokenizer` (tokenizers backend; what ComfyUI calls): special-token strings are split out
    /// of the raw text first (case-sensitive), then NFC, runs of Unicode White_Space become one space,
    /// per-character lower-case (no final sigma), no HTML unescaping.
    case transformers
}

/// The CLIP byte-level BPE tokenizer used by both SDXL text encoders (CLIP ViT-L/14 and OpenCLIP ViT-bigG/14).
///
/// Matches open_clip's `SimpleTokenizer` / transformers' `CLIPTokenizer` (see ``CLIPTextCleaning`` for the
/// few places where those two differ): clean-up, the CLIP pre-tokenizer pattern
/// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`,
/// byte-to-unicode, BPE with `</w>` on the last symbol of each word, 48894 merges, vocabulary 49408.
/// Load once (``shared(cleaning:)``) and use from any thread; words already seen come from a locked cache.
public final class CLIPTokenizer: Sendable {
    public static let vocabularySize = 49408
    public static let startToken = 49406
    public static let endToken = 49407
    public static let contextLength = 77
    /// The resource name of the merges file in the Diffusion bundle.
    public static let mergesResourceName = "bpe_simple_vocab_16e6.txt"

    public let cleaning: CLIPTextCleaning
    let vocabulary: CLIPBPEVocabulary
    let cache: CLIPBPECache

    /// Loads the merges shipped with the package (`Bundle.module`).
    public convenience init(cleaning: CLIPTextCleaning = .openCLIP) throws {
        try self.init(mergesFile: CLIPTokenizer.bundledMergesURL(), cleaning: cleaning)
    }

    /// Loads an uncompressed `bpe_simple_vocab_16e6.txt` (header line + at least 48894 merge lines).
    public convenience init(mergesFile url: URL, cleaning: CLIPTextCleaning = .openCLIP) throws {
        self.init(vocabulary: try CLIPBPEVocabulary(contentsOf: url), cleaning: cleaning)
    }

    init(vocabulary: CLIPBPEVocabulary, cleaning: CLIPTextCleaning) {
        self.vocabulary = vocabulary
        self.cleaning = cleaning
        self.cache = CLIPBPECache()
    }

    /// The URL of the merges file in the module's resources.
    public static func bundledMergesURL() throws -> URL {
        guard let url = Bundle.module.url(forResource: "bpe_simple_vocab_16e6", withExtension: "txt") else {
            throw CLIPTokenizerError.resourceMissing(name: mergesResourceName)
        }
        return url
    }

    private static let sharedVocabulary: Result<CLIPBPEVocabulary, CLIPTokenizerError> = {
        do {
            return .success(try CLIPBPEVocabulary(contentsOf: try bundledMergesURL()))
        } catch let error as CLIPTokenizerError {
            return .failure(error)
        } catch {
            return .failure(.unreadable(path: mergesResourceName, reason: "\(error)"))
        }
    }()
    private static let sharedOpenCLIP = sharedVocabulary.map { CLIPTokenizer(vocabulary: $0, cleaning: .openCLIP) }
    private static let sharedTransformers = sharedVocabulary.map { CLIPTokenizer(vocabulary: $0, cleaning: .transformers) }

    /// The process-wide tokenizer over the bundled merges, loaded on first use.
    public static func shared(cleaning: CLIPTextCleaning = .openCLIP) throws -> CLIPTokenizer {
        switch cleaning {
        case .openCLIP: return try sharedOpenCLIP.get()
        case .transformers: return try sharedTransformers.get()
        }
    }

    /// Token ids of `text`, without start/end tokens and without truncation.
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        switch cleaning {
        case .openCLIP:
            let cleaned = CLIPTextCleaner.openCLIP(text)
            appendWords(of: cleaned, specialsAsTokens: true, to: &ids)
        case .transformers:
            for piece in CLIPTextCleaner.splitSpecialTokens(text) {
                switch piece {
                case .special(let id): ids.append(id)
                case .text(let t):
                    appendWords(of: CLIPTextCleaner.transformers(t), specialsAsTokens: false, to: &ids)
                }
            }
        }
        return ids
    }

    /// `startToken`, the ids of `text`, `endToken`, padded with `padWith` to `length` (49407 for CLIP-L, 0 for
    /// OpenCLIP bigG, as ComfyUI pads). Longer texts keep their first `length - 2` ids and end with `endToken`;
    /// `truncatedCount` says how many ids were dropped.
    public func tokenize(_ text: String, padWith: Int, length: Int = 77) -> (ids: [Int], truncatedCount: Int) {
        precondition(length >= 2, "a CLIP context holds at least the start and end tokens")
        let body = encode(text)
        let keep = min(body.count, length - 2)
        var ids = [Int]()
        ids.reserveCapacity(length)
        ids.append(Self.startToken)
        ids.append(contentsOf: body[..<keep])
        ids.append(Self.endToken)
        ids.append(contentsOf: repeatElement(padWith, count: length - ids.count))
        return (ids, body.count - keep)
    }

    /// The vocabulary entry of an id (byte-level symbols, `</w>` marks a word end), for debugging.
    public func token(for id: Int) -> String? {
        vocabulary.tokens.indices.contains(id) ? vocabulary.tokens[id] : nil
    }

    private func appendWords(of scalars: [Unicode.Scalar], specialsAsTokens: Bool, to ids: inout [Int]) {
        CLIPPreTokenizer.forEachWord(in: scalars) { word, special in
            if special != nil {
                if specialsAsTokens {
                    ids.append(special!)
                } else {
                    // transformers: a special string that only appears after lower-casing is re-split by the
                    // byte-level pre-tokenizer's GPT-2 pattern into "<|", the name, "|>".
                    let s = word.startIndex, e = word.endIndex
                    appendBPE(of: word[s..<(s + 2)], to: &ids)
                    appendBPE(of: word[(s + 2)..<(e - 2)], to: &ids)
                    appendBPE(of: word[(e - 2)..<e], to: &ids)
                }
                return
            }
            appendBPE(of: word, to: &ids)
        }
    }

    private func appendBPE(of word: ArraySlice<Unicode.Scalar>, to ids: inout [Int]) {
        let key = String(String.UnicodeScalarView(word))
        if let hit = cache.get(key) {
            ids.append(contentsOf: hit)
            return
        }
        let result = vocabulary.bpe(Array(key.utf8))
        cache.put(key, result)
        ids.append(contentsOf: result)
    }
}

/// The word -> ids cache, shared by all threads using one tokenizer (bounded; cleared when full).
final class CLIPBPECache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: [Int]] = [:]
    private let limit = 65_536

    func get(_ key: String) -> [Int]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    func put(_ key: String, _ value: [Int]) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= limit { entries.removeAll(keepingCapacity: true) }
        entries[key] = value
    }
}
