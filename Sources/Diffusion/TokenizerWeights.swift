/// ComfyUI's prompt syntax and long-prompt windows (comfy/sd1_clip.py: `parse_parentheses`, `token_weights`,
/// `escape_important`, `SDTokenizer.tokenize_with_weights`), reimplemented:
/// - `(text)` multiplies the enclosing weight by 1.1 (nested: 1.1 per level); `(text:1.3)` sets the weight to
///   1.3 (absolute, not multiplied); the number is whatever Python's `float()` accepts after the last `:`
///   (a colon at index 0 or an unparsable number leaves the ×1.1 weight and the text as is).
/// - `\(` and `\)` are literal parentheses. Unbalanced parentheses behave as in ComfyUI.
/// - Each weighted segment is tokenized on its own as one group. A window is `start`, up to 75 ids, `end`,
///   padding to 77. A group of fewer than 8 tokens that does not fit in the current window moves whole to a
///   new window (the current one is closed with `end` and padding); a group of 8 or more tokens is split at
///   the window boundary.
extension CLIPTokenizer {
    /// The list of 77-token windows, each `(id, weight)`; start/end/padding have weight 1. An empty prompt gives
    /// one window: start, end, then `padWith`.
    public func tokenizeWithWeights(_ text: String, padWith: Int, length: Int = 77) -> [[(id: Int, weight: Float)]] {
        precondition(length >= 10, "window too short")
        let maxWordLength = 8
        let start = (id: Self.startToken, weight: Float(1))
        let end = (id: Self.endToken, weight: Float(1))
        let pad = (id: padWith, weight: Float(1))

        var groups: [[(id: Int, weight: Float)]] = []
        for (segment, weight) in ComfyPromptParser.weightedSegments(text) where !segment.isEmpty {
            let w = Float(weight)
            groups.append(encode(String(String.UnicodeScalarView(segment))).map { (id: $0, weight: w) })
        }

        var windows: [[(id: Int, weight: Float)]] = []
        var batch: [(id: Int, weight: Float)] = [start]
        for group in groups {
            let isLarge = group.count >= maxWordLength
            var rest = group[...]
            while !rest.isEmpty {
                if rest.count + batch.count > length - 1 {
                    let remaining = length - batch.count - 1
                    if isLarge {
                        batch.append(contentsOf: rest.prefix(remaining))
                        batch.append(end)
                        rest = rest.dropFirst(remaining)
                    } else {
                        batch.append(end)
                        batch.append(contentsOf: repeatElement(pad, count: remaining))
                    }
                    windows.append(batch)
                    batch = [start]
                } else {
                    batch.append(contentsOf: rest)
                    rest = []
                }
            }
        }
        batch.append(end)
        if batch.count < length { batch.append(contentsOf: repeatElement(pad, count: length - batch.count)) }
        windows.append(batch)
        return windows
    }
}

/// The weight parser, on Unicode scalars (Python's code points). Weights are computed in Double, as in Python.
enum ComfyPromptParser {
    private static let escapedClose: [Unicode.Scalar] = ["\u{0}", "\u{1}"]
    private static let escapedOpen: [Unicode.Scalar] = ["\u{0}", "\u{2}"]

    static func weightedSegments(_ text: String) -> [([Unicode.Scalar], Double)] {
        var s = Array(text.unicodeScalars)
        s = replace(s, ["\\", ")"], escapedClose)
        s = replace(s, ["\\", "("], escapedOpen)
        return tokenWeights(s[...], 1.0).map { segment, weight in
            (replace(replace(segment, escapedClose, [")"]), escapedOpen, ["("]), weight)
        }
    }

    /// Python's `str.replace` (non-overlapping, left to right).
    static func replace(_ s: [Unicode.Scalar], _ old: [Unicode.Scalar], _ new: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if i + old.count <= s.count && s[i..<(i + old.count)].elementsEqual(old) {
                out.append(contentsOf: new)
                i += old.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    /// Top-level split into plain runs and `( ... )` groups (nesting counted; an unmatched `)` drives the level
    /// negative, exactly as ComfyUI's loop does).
    static func parseParentheses(_ s: ArraySlice<Unicode.Scalar>) -> [[Unicode.Scalar]] {
        var result: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        var nesting = 0
        for c in s {
            if c == "(" {
                if nesting == 0 {
                    if !current.isEmpty { result.append(current) }
                    current = ["("]
                } else {
                    current.append(c)
                }
                nesting += 1
            } else if c == ")" {
                nesting -= 1
                if nesting == 0 {
                    current.append(")")
                    result.append(current)
                    current = []
                } else {
                    current.append(c)
                }
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    static func tokenWeights(_ s: ArraySlice<Unicode.Scalar>, _ currentWeight: Double) -> [([Unicode.Scalar], Double)] {
        var out: [([Unicode.Scalar], Double)] = []
        for item in parseParentheses(s) {
            if item.count >= 2 && item.first == "(" && item.last == ")" {
                var inner = item[1..<(item.count - 1)]
                var weight = currentWeight * 1.1
                if let colon = inner.lastIndex(of: ":"), colon > inner.startIndex {
                    if let w = PythonText.parseFloat(inner[(colon + 1)...]) {
                        weight = w
                        inner = inner[..<colon]
                    }
                }
                out.append(contentsOf: tokenWeights(inner, weight))
            } else {
                out.append((item, currentWeight))
            }
        }
        return out
    }
}
