import Tensor

/// SDXL prompt encoding as ComfyUI does it: both tokenizations with weights and 77-token windows
/// (CLIP-L padded with EOS, bigG with 0), each encoder's penultimate hidden states, weighted tokens
/// pulled towards the empty prompt's encoding (z = (z - z_empty) * w + z_empty), windows joined along
/// the tokens, both encoders concatenated on features, pooled from bigG's first window.
public struct SDXLTextEncoder: Sendable {
    public var clipL: CLIPTextModel
    public var clipG: CLIPTextModel
    public var tokenizer: CLIPTokenizer

    public init(clipL: CLIPTextModel, clipG: CLIPTextModel, tokenizer: CLIPTokenizer) {
        self.clipL = clipL
        self.clipG = clipG
        self.tokenizer = tokenizer
    }

    public func encode(_ text: String) throws -> Conditioning {
        try encode(textG: text, textL: text)
    }

    /// Separate prompts for the two encoders (ComfyUI's CLIPTextEncodeSDXL): when their window counts
    /// differ, the shorter side is extended with windows of the empty prompt.
    public func encode(textG: String, textL: String) throws -> Conditioning {
        var windowsL = tokenizer.tokenizeWithWeights(textL, padWith: CLIPTokenizer.endToken)
        var windowsG = tokenizer.tokenizeWithWeights(textG, padWith: 0)
        if windowsL.count != windowsG.count {
            let emptyL = tokenizer.tokenizeWithWeights("", padWith: CLIPTokenizer.endToken)
            let emptyG = tokenizer.tokenizeWithWeights("", padWith: 0)
            while windowsL.count < windowsG.count { windowsL += emptyL }
            while windowsG.count < windowsL.count { windowsG += emptyG }
        }
        let (l, _) = try Self.encodeWindows(clipL, windowsL, pad: CLIPTokenizer.endToken)
        let (g, pooled) = try Self.encodeWindows(clipG, windowsG, pad: 0)
        let cut = min(l.shape[1], g.shape[1])
        let context = try Ops.concat([l.narrowed(dim: 1, start: 0, length: cut), g.narrowed(dim: 1, start: 0, length: cut)], dim: 2)
        return Conditioning(context: context, pooled: pooled)
    }

    /// ComfyUI `ClipTokenWeightEncoder.encode_token_weights` for one encoder: [1, 77 * windows, hidden]
    /// and the pooled output of the first window.
    static func encodeWindows(_ model: CLIPTextModel, _ windows: [[(id: Int, weight: Float)]], pad: Int) throws -> (Tensor, Tensor) {
        let hasWeights = windows.contains { $0.contains { $0.weight != 1 } }
        var batch = windows.map { $0.map(\.id) }
        let length = batch.map(\.count).max() ?? CLIPTokenizer.contextLength
        if hasWeights || batch.isEmpty {
            var empty = [CLIPTokenizer.startToken, CLIPTokenizer.endToken]
            empty += Array(repeating: pad, count: max(0, length - 2))
            batch.append(empty)
        }
        let out = try model(batch)
        let hidden = out.hidden.toFloats()
        let h = out.hidden.shape[2], l = out.hidden.shape[1]
        let pooled = try out.pooled.narrowed(dim: 0, start: 0, length: 1)
        if windows.isEmpty {
            return (try out.hidden.narrowed(dim: 0, start: batch.count - 1, length: 1), pooled)
        }
        var result: [Float] = []
        result.reserveCapacity(windows.count * l * h)
        let emptyBase = (batch.count - 1) * l * h
        for (k, window) in windows.enumerated() {
            for j in 0..<l {
                let w = j < window.count ? window[j].weight : 1
                for c in 0..<h {
                    let z = hidden[(k * l + j) * h + c]
                    if hasWeights && w != 1 {
                        let e = hidden[emptyBase + j * h + c]
                        result.append((z - e) * w + e)
                    } else {
                        result.append(z)
                    }
                }
            }
        }
        return (try Tensor(shape: [1, windows.count * l, h], values: result), pooled)
    }
}
