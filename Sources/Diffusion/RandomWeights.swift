import Foundation
import Tensor

/// Random weights with the exact names and shapes of each SDXL component, built in memory (no file), for
/// full-size benchmarks. Values: uniform in +-1/sqrt(fan_in) (activations stay in range), norms 1, biases 0.
public enum RandomWeights {
    /// (name, shape) of every UNet weight for a config, in diffusers naming.
    public static func unetShapes(_ c: UNetConfig) -> [(String, [Int])] {
        var out: [(String, [Int])] = []
        let ch = c.blockOutChannels, n = ch.count, t = c.timeEmbedDim, l = c.layersPerBlock
        func conv(_ name: String, _ o: Int, _ i: Int, _ k: Int = 3) { out += [("\(name).weight", [o, i, k, k]), ("\(name).bias", [o])] }
        func linear(_ name: String, _ o: Int, _ i: Int, bias: Bool = true) {
            out.append(("\(name).weight", [o, i]))
            if bias { out.append(("\(name).bias", [o])) }
        }
        func norm(_ name: String, _ c: Int) { out += [("\(name).weight", [c]), ("\(name).bias", [c])] }
        func resnet(_ p: String, _ i: Int, _ o: Int) {
            norm("\(p).norm1", i); conv("\(p).conv1", o, i); linear("\(p).time_emb_proj", o, t)
            norm("\(p).norm2", o); conv("\(p).conv2", o, o)
            if i != o { conv("\(p).conv_shortcut", o, i, 1) }
        }
        func transformer(_ p: String, _ cc: Int, depth: Int) {
            norm("\(p).norm", cc); linear("\(p).proj_in", cc, cc)
            for k in 0..<depth {
                let b = "\(p).transformer_blocks.\(k)"
                norm("\(b).norm1", cc)
                for q in ["to_q", "to_k", "to_v"] { linear("\(b).attn1.\(q)", cc, cc, bias: false) }
                linear("\(b).attn1.to_out.0", cc, cc)
                norm("\(b).norm2", cc)
                linear("\(b).attn2.to_q", cc, cc, bias: false)
                linear("\(b).attn2.to_k", cc, c.crossAttentionDim, bias: false)
                linear("\(b).attn2.to_v", cc, c.crossAttentionDim, bias: false)
                linear("\(b).attn2.to_out.0", cc, cc)
                norm("\(b).norm3", cc)
                linear("\(b).ff.net.0.proj", cc * 8, cc)
                linear("\(b).ff.net.2", cc, cc * 4)
            }
            linear("\(p).proj_out", cc, cc)
        }
        conv("conv_in", ch[0], c.inChannels)
        linear("time_embedding.linear_1", t, ch[0]); linear("time_embedding.linear_2", t, t)
        linear("add_embedding.linear_1", t, c.projectionClassEmbeddingsInputDim); linear("add_embedding.linear_2", t, t)
        var prev = ch[0]
        for i in 0..<n {
            for j in 0..<l {
                resnet("down_blocks.\(i).resnets.\(j)", j == 0 ? prev : ch[i], ch[i])
                if c.downBlockHasAttention[i] { transformer("down_blocks.\(i).attentions.\(j)", ch[i], depth: c.transformerLayersPerBlock[i]) }
            }
            if i < n - 1 { conv("down_blocks.\(i).downsamplers.0.conv", ch[i], ch[i]) }
            prev = ch[i]
        }
        resnet("mid_block.resnets.0", ch[n - 1], ch[n - 1])
        transformer("mid_block.attentions.0", ch[n - 1], depth: c.transformerLayersPerBlock[n - 1])
        resnet("mid_block.resnets.1", ch[n - 1], ch[n - 1])
        let rc = Array(ch.reversed())
        var prevOut = rc[0]
        for i in 0..<n {
            let level = n - 1 - i
            let o = rc[i], inCh = rc[min(i + 1, n - 1)]
            for j in 0...l {
                let skip = j == l ? inCh : o
                resnet("up_blocks.\(i).resnets.\(j)", (j == 0 ? prevOut : o) + skip, o)
                if c.downBlockHasAttention[level] { transformer("up_blocks.\(i).attentions.\(j)", o, depth: c.transformerLayersPerBlock[level]) }
            }
            if i < n - 1 { conv("up_blocks.\(i).upsamplers.0.conv", o, o) }
            prevOut = o
        }
        norm("conv_norm_out", ch[0]); conv("conv_out", c.outChannels, ch[0])
        return out
    }

    public static func vaeShapes(_ c: VAEConfig) -> [(String, [Int])] {
        var out: [(String, [Int])] = []
        let ch = c.blockOutChannels, n = ch.count, lat = c.latentChannels
        func conv(_ name: String, _ o: Int, _ i: Int, _ k: Int = 3) { out += [("\(name).weight", [o, i, k, k]), ("\(name).bias", [o])] }
        func norm(_ name: String, _ cc: Int) { out += [("\(name).weight", [cc]), ("\(name).bias", [cc])] }
        func resnet(_ p: String, _ i: Int, _ o: Int) {
            norm("\(p).norm1", i); conv("\(p).conv1", o, i); norm("\(p).norm2", o); conv("\(p).conv2", o, o)
            if i != o { conv("\(p).conv_shortcut", o, i, 1) }
        }
        func mid(_ p: String, _ cc: Int) {
            resnet("\(p).resnets.0", cc, cc)
            norm("\(p).attentions.0.group_norm", cc)
            for q in ["to_q", "to_k", "to_v", "to_out.0"] { out += [("\(p).attentions.0.\(q).weight", [cc, cc]), ("\(p).attentions.0.\(q).bias", [cc])] }
            resnet("\(p).resnets.1", cc, cc)
        }
        conv("encoder.conv_in", ch[0], c.inChannels)
        var o = ch[0]
        for i in 0..<n {
            let inCh = o
            o = ch[i]
            for j in 0..<c.layersPerBlock { resnet("encoder.down_blocks.\(i).resnets.\(j)", j == 0 ? inCh : o, o) }
            if i < n - 1 { conv("encoder.down_blocks.\(i).downsamplers.0.conv", o, o) }
        }
        mid("encoder.mid_block", ch[n - 1])
        norm("encoder.conv_norm_out", ch[n - 1]); conv("encoder.conv_out", 2 * lat, ch[n - 1])
        conv("quant_conv", 2 * lat, 2 * lat, 1); conv("post_quant_conv", lat, lat, 1)
        conv("decoder.conv_in", ch[n - 1], lat)
        mid("decoder.mid_block", ch[n - 1])
        let rc = Array(ch.reversed())
        var prev = rc[0]
        for i in 0..<n {
            let oc = rc[i]
            for j in 0...c.layersPerBlock { resnet("decoder.up_blocks.\(i).resnets.\(j)", j == 0 ? prev : oc, oc) }
            if i < n - 1 { conv("decoder.up_blocks.\(i).upsamplers.0.conv", oc, oc) }
            prev = oc
        }
        norm("decoder.conv_norm_out", ch[0]); conv("decoder.conv_out", c.outChannels, ch[0])
        return out
    }

    public static func clipShapes(_ c: CLIPTextConfig) -> [(String, [Int])] {
        var out: [(String, [Int])] = [("text_model.embeddings.token_embedding.weight", [c.vocabSize, c.hiddenSize]),
                                      ("text_model.embeddings.position_embedding.weight", [c.maxPositionEmbeddings, c.hiddenSize])]
        let h = c.hiddenSize
        for i in 0..<c.numHiddenLayers {
            let p = "text_model.encoder.layers.\(i)"
            for nrm in ["layer_norm1", "layer_norm2"] { out += [("\(p).\(nrm).weight", [h]), ("\(p).\(nrm).bias", [h])] }
            for q in ["q_proj", "k_proj", "v_proj", "out_proj"] { out += [("\(p).self_attn.\(q).weight", [h, h]), ("\(p).self_attn.\(q).bias", [h])] }
            out += [("\(p).mlp.fc1.weight", [c.intermediateSize, h]), ("\(p).mlp.fc1.bias", [c.intermediateSize]),
                    ("\(p).mlp.fc2.weight", [h, c.intermediateSize]), ("\(p).mlp.fc2.bias", [h])]
        }
        out += [("text_model.final_layer_norm.weight", [h]), ("text_model.final_layer_norm.bias", [h])]
        if let p = c.projectionDim { out.append(("text_projection.weight", [p, h])) }
        return out
    }

    /// A weight set of random tensors in `dtype` for the given shapes.
    public static func weightSet(_ shapes: [(String, [Int])], component: String, dtype: DType = .f16, seed: UInt64 = 1) throws -> WeightSet {
        var set = WeightSet(component: component, file: "<random \(component)>")
        for (index, (name, shape)) in shapes.enumerated() {
            let t = try Tensor.uninitialized(shape, dtype: dtype)
            let n = t.count
            let isNorm = name.contains("norm") && shape.count == 1
            let isBias = name.hasSuffix(".bias")
            let fanIn = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : 1
            let scale = Float(1) / Float(max(1, fanIn)).squareRoot()
            let chunk = 1 << 16
            let dst = t.storage.base.advanced(by: t.byteOffset)
            Parallel.forEach((n + chunk - 1) / chunk) { c in
                let start = c * chunk, count = min(chunk, n - start)
                var buf = [Float](repeating: 0, count: count)
                var s = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xD1B5_4A32_D192_ED03 &+ UInt64(c) &+ 1
                for i in 0..<count {
                    if isNorm { buf[i] = 1; continue }
                    if isBias { buf[i] = 0; continue }
                    s ^= s << 13; s ^= s >> 7; s ^= s << 17
                    let u = Float(s >> 40) * Float(1.0 / 16_777_216.0)
                    buf[i] = (u * 2 - 1) * scale
                }
                buf.withUnsafeBufferPointer { p in
                    try? Convert.fromF32(p.baseAddress!, into: dst.advanced(by: start * dtype.size), dtype: dtype, count: count)
                }
            }
            set.add(name, t, from: name)
        }
        return set
    }
}
