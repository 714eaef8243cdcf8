import Foundation

/// Text clean-up for ``CLIPTokenizer``, on Unicode scalars (Python's code points).
enum CLIPTextCleaner {
    enum Piece: Equatable {
        case text(String)
        case special(Int)
    }

    static let specialStrings: [(scalars: [Unicode.Scalar], id: Int)] = [
        (Array("<|startoftext|>".unicodeScalars), CLIPTokenizer.startToken),
        (Array("<|endoftext|>".unicodeScalars), CLIPTokenizer.endToken),
    ]

    /// open_clip: NFC (ftfy), html.unescape twice, strip + split on Python whitespace + join with " ", lower().
    static func openCLIP(_ text: String) -> [Unicode.Scalar] {
        var s = Array(nfc(text).unicodeScalars)
        s = HTMLUnescape.unescape(HTMLUnescape.unescape(s))
        var collapsed: [Unicode.Scalar] = []
        collapsed.reserveCapacity(s.count)
        var pendingSpace = false
        for c in s {
            if PythonText.isSpace(c) {
                pendingSpace = !collapsed.isEmpty
            } else {
                if pendingSpace { collapsed.append(" "); pendingSpace = false }
                collapsed.append(c)
            }
        }
        return PythonText.lower(collapsed)
    }

    /// transformers (tokenizers normalizer): NFC, `\s+` -> " ", per-character lower-case.
    static func transformers(_ text: String) -> [Unicode.Scalar] {
        let s = nfc(text).unicodeScalars
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var inSpace = false
        for c in s {
            if c.properties.isWhitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            appendLowercase(c, to: &out)
        }
        return out
    }

    /// Unicode NFC (ASCII text is already in NFC).
    static func nfc(_ text: String) -> String {
        text.utf8.allSatisfy { $0 < 0x80 } ? text : text.precomposedStringWithCanonicalMapping
    }

    /// Splits raw text at `<|startoftext|>` / `<|endoftext|>` (case-sensitive), as transformers' added tokens.
    static func splitSpecialTokens(_ text: String) -> [Piece] {
        let s = Array(text.unicodeScalars)
        guard s.contains("<") else { return [.text(text)] }
        var pieces: [Piece] = []
        var start = 0, i = 0
        scan: while i < s.count {
            if s[i] == "<" {
                for (pattern, id) in specialStrings where s.count - i >= pattern.count
                    && s[i..<(i + pattern.count)].elementsEqual(pattern) {
                    if start < i { pieces.append(.text(String(String.UnicodeScalarView(s[start..<i])))) }
                    pieces.append(.special(id))
                    i += pattern.count
                    start = i
                    continue scan
                }
            }
            i += 1
        }
        if start < s.count { pieces.append(.text(String(String.UnicodeScalarView(s[start...])))) }
        return pieces
    }

    @inline(__always)
    static func appendLowercase(_ c: Unicode.Scalar, to out: inout [Unicode.Scalar]) {
        if c.isASCII {
            out.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c)
        } else if c.properties.changesWhenLowercased {
            out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
        } else {
            out.append(c)
        }
    }
}

/// Python `str` behaviour the references rely on.
enum PythonText {
    static let whitespace: Set<UInt32> = Set(
        TokenizerHTMLEntities.pythonWhitespace.split(separator: ",").compactMap { UInt32($0, radix: 16) })

    /// `str.isspace()`.
    @inline(__always)
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c == " " || (c.value >= 0x09 && c.value <= 0x0D) || (c.value >= 0x1C && c.value <= 0x1F) }
        return whitespace.contains(c.value)
    }

    /// `str.lower()`: full lower-case mappings, and U+03A3 becomes final sigma U+03C2 in the Final_Sigma context
    /// (preceded by a cased letter and not followed by one, case-ignorable characters skipped).
    static func lower(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        for (i, c) in s.enumerated() {
            if c.value == 0x3A3 {
                out.append(isFinalSigma(s, at: i) ? "\u{3C2}" : "\u{3C3}")
            } else {
                CLIPTextCleaner.appendLowercase(c, to: &out)
            }
        }
        return out
    }

    private static func isFinalSigma(_ s: [Unicode.Scalar], at i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && s[j].properties.isCased else { return false }
        j = i + 1
        while j < s.count && s[j].properties.isCaseIgnorable { j += 1 }
        return j == s.count || !s[j].properties.isCased
    }

    /// `float(s)` for a str: optional Python whitespace around `[sign] (number [exponent] | inf | infinity | nan)`,
    /// digits may be any Unicode decimal digits and may be grouped with single underscores. nil where Python raises.
    static func parseFloat<C: Collection>(_ input: C) -> Double? where C.Element == Unicode.Scalar {
        var s = Array(input)
        while let f = s.first, isSpace(f) { s.removeFirst() }
        while let l = s.last, isSpace(l) { s.removeLast() }
        var ascii = ""
        var i = 0
        if i < s.count && (s[i] == "+" || s[i] == "-") { ascii.unicodeScalars.append(s[i]); i += 1 }
        let rest = String(String.UnicodeScalarView(s[i...])).lowercased()
        if rest == "inf" || rest == "infinity" { return Double(ascii + "inf") }
        if rest == "nan" { return Double.nan }

        func digit(_ c: Unicode.Scalar) -> Int? {
            if c.isASCII { return c.value >= 0x30 && c.value <= 0x39 ? Int(c.value - 0x30) : nil }
            guard c.properties.numericType == .decimal, let v = c.properties.numericValue else { return nil }
            return Int(v)
        }
        // digitpart: digit (["_"] digit)*; returns false when malformed (dangling underscore).
        func digitPart() -> (count: Int, ok: Bool) {
            var n = 0
            while i < s.count {
                if let d = digit(s[i]) {
                    ascii += String(d); n += 1; i += 1
                } else if s[i] == "_" && n > 0 && i + 1 < s.count && digit(s[i + 1]) != nil {
                    i += 1
                } else {
                    break
                }
            }
            return (n, true)
        }
        let intPart = digitPart().count
        var fracPart = 0
        if i < s.count && s[i] == "." {
            ascii += "."; i += 1
            fracPart = digitPart().count
        }
        guard intPart + fracPart > 0 else { return nil }
        if i < s.count && (s[i] == "e" || s[i] == "E") {
            ascii += "e"; i += 1
            if i < s.count && (s[i] == "+" || s[i] == "-") { ascii.unicodeScalars.append(s[i]); i += 1 }
            guard digitPart().count > 0 else { return nil }
        }
        guard i == s.count else { return nil }
        return Double(ascii)
    }
}

/// The CLIP pre-tokenizer pattern, by hand:
/// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
/// (findall semantics: at each position the first alternative that matches wins; unmatched whitespace is skipped).
enum CLIPPreTokenizer {
    @inline(__always)
    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return (c.value | 0x20) >= 0x61 && (c.value | 0x20) <= 0x7A }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    @inline(__always)
    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c.value >= 0x30 && c.value <= 0x39 }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    @inline(__always)
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c == " " || (c.value >= 0x09 && c.value <= 0x0D) }
        return c.properties.isWhitespace
    }

    /// Calls `body(word, specialID)` for each match; `specialID` is set for the two special-token strings.
    static func forEachWord(in s: [Unicode.Scalar], _ body: (ArraySlice<Unicode.Scalar>, Int?) -> Void) {
        let n = s.count
        var i = 0
        while i < n {
            let c = s[i]
            if c == "<" {
                var matched = false
                for (pattern, id) in CLIPTextCleaner.specialStrings where n - i >= pattern.count
                    && s[i..<(i + pattern.count)].elementsEqual(pattern) {
                    body(s[i..<(i + pattern.count)], id)
                    i += pattern.count
                    matched = true
                    break
                }
                if matched { continue }
            }
            if c == "'" && i + 1 < n {
                let a = s[i + 1]
                if a == "s" || a == "t" || a == "m" || a == "d" {
                    body(s[i..<(i + 2)], nil); i += 2; continue
                }
                if i + 2 < n {
                    let b = s[i + 2]
                    if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") {
                        body(s[i..<(i + 3)], nil); i += 3; continue
                    }
                }
            }
            if isLetter(c) {
                var j = i + 1
                while j < n && isLetter(s[j]) { j += 1 }
                body(s[i..<j], nil); i = j; continue
            }
            if isNumber(c) {
                body(s[i..<(i + 1)], nil); i += 1; continue
            }
            if isSpace(c) { i += 1; continue }
            var j = i + 1
            while j < n && !isSpace(s[j]) && !isLetter(s[j]) && !isNumber(s[j]) { j += 1 }
            body(s[i..<j], nil); i = j
        }
    }
}

/// CPython's `html.unescape`: `&name;`, legacy names without `;` (longest known prefix), `&#NNN;`, `&#xHHH;`.
enum HTMLUnescape {
    static let named: [String: [Unicode.Scalar]] = {
        var table: [String: [Unicode.Scalar]] = [:]
        for line in TokenizerHTMLEntities.named.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let value = line[line.index(after: eq)...].split(separator: ",")
                .compactMap { UInt32($0, radix: 16).flatMap(Unicode.Scalar.init) }
            table[String(line[..<eq])] = value
        }
        return table
    }()
    static let invalidCharrefs: [UInt32: Unicode.Scalar] = {
        var t: [UInt32: Unicode.Scalar] = [:]
        for item in TokenizerHTMLEntities.invalidCharrefs.split(separator: ",") {
            let kv = item.split(separator: "=")
            if kv.count == 2, let k = UInt32(kv[0], radix: 16), let v = UInt32(kv[1], radix: 16).flatMap(Unicode.Scalar.init) {
                t[k] = v
            }
        }
        return t
    }()
    static let invalidCodepoints: Set<UInt32> = Set(
        TokenizerHTMLEntities.invalidCodepoints.split(separator: ",").compactMap { UInt32($0, radix: 16) })

    static func unescape(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard s.contains("&") else { return s }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        let n = s.count
        var i = 0
        while i < n {
            guard s[i] == "&", i + 1 < n else { out.append(s[i]); i += 1; continue }
            let j = i + 1
            if s[j] == "#" {
                // #[0-9]+;?  |  #[xX][0-9a-fA-F]+;?
                var k = j + 1
                var value: UInt64 = 0
                var digits = 0
                if k < n, let d = asciiDigit(s[k], radix: 10) {
                    _ = d
                    while k < n, let d = asciiDigit(s[k], radix: 10) {
                        value = min(value * 10 + UInt64(d), 0x1_0000_0000); k += 1; digits += 1
                    }
                } else if k + 1 < n, s[k] == "x" || s[k] == "X", asciiDigit(s[k + 1], radix: 16) != nil {
                    k += 1
                    while k < n, let d = asciiDigit(s[k], radix: 16) {
                        value = min(value * 16 + UInt64(d), 0x1_0000_0000); k += 1; digits += 1
                    }
                }
                guard digits > 0 else { out.append("&"); i += 1; continue }
                if k < n && s[k] == ";" { k += 1 }
                out.append(contentsOf: numericReplacement(value))
                i = k
                continue
            }
            // [^\t\n\f <&#;]{1,32};?
            var k = j
            while k < n && k - j < 32 && !isNameStop(s[k]) { k += 1 }
            guard k > j else { out.append("&"); i += 1; continue }
            var name = Array(s[j..<k])
            if k < n && s[k] == ";" { name.append(";"); k += 1 }
            i = k
            if let v = named[String(String.UnicodeScalarView(name))] {
                out.append(contentsOf: v)
                continue
            }
            var replaced = false
            var x = name.count - 1
            while x > 1 {
                if let v = named[String(String.UnicodeScalarView(name[..<x]))] {
                    out.append(contentsOf: v)
                    out.append(contentsOf: name[x...])
                    replaced = true
                    break
                }
                x -= 1
            }
            if !replaced {
                out.append("&")
                out.append(contentsOf: name)
            }
        }
        return out
    }

    private static func isNameStop(_ c: Unicode.Scalar) -> Bool {
        c == "\t" || c == "\n" || c == "\u{0C}" || c == " " || c == "<" || c == "&" || c == "#" || c == ";"
    }

    private static func asciiDigit(_ c: Unicode.Scalar, radix: UInt32) -> UInt32? {
        let v = c.value
        if v >= 0x30 && v <= 0x39 { return v - 0x30 }
        if radix == 16 {
            if v >= 0x41 && v <= 0x46 { return v - 0x41 + 10 }
            if v >= 0x61 && v <= 0x66 { return v - 0x61 + 10 }
        }
        return nil
    }

    private static func numericReplacement(_ value: UInt64) -> [Unicode.Scalar] {
        if value <= UInt64(UInt32.max), let r = invalidCharrefs[UInt32(value)] { return [r] }
        if (0xD800...0xDFFF).contains(value) || value > 0x10FFFF { return ["\u{FFFD}"] }
        if invalidCodepoints.contains(UInt32(value)) { return [] }
        return Unicode.Scalar(UInt32(value)).map { [$0] } ?? ["\u{FFFD}"]
    }
}
