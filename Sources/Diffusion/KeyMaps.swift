/// Key renaming between the original SGM ("single file") layout and the diffusers / transformers names
/// our models use. Facts from the SGM and diffusers layouts; the tables are ours.
enum KeyMaps {
    /// SGM UNet key (after `model.diffusion_model.`) -> diffusers name, or nil if it is not a UNet key.
    static func unet(_ key: String, config: UNetConfig) -> String? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2 else { return nil }
        let rest = { (n: Int) in parts.dropFirst(n).joined(separator: ".") }
        let l = config.layersPerBlock, n = config.levels
        switch parts[0] {
        case "time_embed":
            switch parts[1] { case "0": return "time_embedding.linear_1.\(rest(2))"; case "2": return "time_embedding.linear_2.\(rest(2))"; default: return nil }
        case "label_emb":
            guard parts.count >= 4, parts[1] == "0" else { return nil }
            switch parts[2] { case "0": return "add_embedding.linear_1.\(rest(3))"; case "2": return "add_embedding.linear_2.\(rest(3))"; default: return nil }
        case "out":
            switch parts[1] { case "0": return "conv_norm_out.\(rest(2))"; case "2": return "conv_out.\(rest(2))"; default: return nil }
        case "input_blocks":
            guard parts.count >= 4, let k = Int(parts[1]) else { return nil }
            if k == 0 { return parts[2] == "0" ? "conv_in.\(rest(3))" : nil }
            let level = (k - 1) / (l + 1), j = (k - 1) % (l + 1)
            guard level < n else { return nil }
            if j == l {
                // Downsampler: input_blocks.K.0.op.* -> down_blocks.level.downsamplers.0.conv.*
                guard parts[2] == "0", parts.count >= 5, parts[3] == "op" else { return nil }
                return "down_blocks.\(level).downsamplers.0.conv.\(rest(4))"
            }
            switch parts[2] {
            case "0": return resnet("down_blocks.\(level).resnets.\(j)", rest(3))
            case "1": return "down_blocks.\(level).attentions.\(j).\(rest(3))"
            default: return nil
            }
        case "middle_block":
            switch parts[1] {
            case "0": return resnet("mid_block.resnets.0", rest(2))
            case "1": return "mid_block.attentions.0.\(rest(2))"
            case "2": return resnet("mid_block.resnets.1", rest(2))
            default: return nil
            }
        case "output_blocks":
            guard parts.count >= 4, let k = Int(parts[1]) else { return nil }
            let level = k / (l + 1), j = k % (l + 1)
            guard level < n else { return nil }
            let hasAttention = config.downBlockHasAttention[n - 1 - level]
            switch parts[2] {
            case "0": return resnet("up_blocks.\(level).resnets.\(j)", rest(3))
            case "1" where hasAttention: return "up_blocks.\(level).attentions.\(j).\(rest(3))"
            case "1", "2":
                // Upsampler: output_blocks.K.{1|2}.conv.* on the level's last block.
                guard j == l, parts[3] == "conv" else { return nil }
                return "up_blocks.\(level).upsamplers.0.conv.\(rest(4))"
            default: return nil
            }
        default:
            return nil
        }
    }

    static func resnet(_ prefix: String, _ rest: String) -> String? {
        let table = [("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
                     ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut.")]
        for (from, to) in table where rest.hasPrefix(from) { return "\(prefix).\(to)\(rest.dropFirst(from.count))" }
        return nil
    }

    /// SGM VAE key (after `first_stage_model.`) -> diffusers name.
    static func vae(_ key: String, levels n: Int) -> String? {
        let parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 2 else { return nil }
        let rest = { (k: Int) in parts.dropFirst(k).joined(separator: ".") }
        if parts[0] == "quant_conv" || parts[0] == "post_quant_conv" { return key }
        guard parts[0] == "encoder" || parts[0] == "decoder" else { return nil }
        let side = parts[0]
        func block(_ p: String, _ r: String) -> String { "\(p).\(r.replacingOccurrences(of: "nin_shortcut", with: "conv_shortcut"))" }
        switch parts[1] {
        case "conv_in", "conv_out": return key
        case "norm_out": return "\(side).conv_norm_out.\(rest(2))"
        case "mid":
            guard parts.count >= 4 else { return nil }
            switch parts[2] {
            case "block_1": return block("\(side).mid_block.resnets.0", rest(3))
            case "block_2": return block("\(side).mid_block.resnets.1", rest(3))
            case "attn_1":
                let map = ["norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"]
                guard let m = map[parts[3]] else { return nil }
                return "\(side).mid_block.attentions.0.\(m).\(rest(4))"
            default: return nil
            }
        case "down", "up":
            guard parts.count >= 5, let i = Int(parts[2]) else { return nil }
            let level = parts[1] == "up" ? n - 1 - i : i
            let blocks = parts[1] == "up" ? "up_blocks" : "down_blocks"
            switch parts[3] {
            case "block":
                guard let j = Int(parts[4]) else { return nil }
                return block("\(side).\(blocks).\(level).resnets.\(j)", rest(5))
            case "downsample": return "\(side).down_blocks.\(level).downsamplers.0.\(rest(4))"
            case "upsample": return "\(side).up_blocks.\(level).upsamplers.0.\(rest(4))"
            default: return nil
            }
        default: return nil
        }
    }

    /// OpenCLIP text-tower key (after `conditioner.embedders.1.model.`) -> transformers name; the fused
    /// `in_proj` and the transposed `text_projection` are handled by the loader.
    static func openCLIP(_ key: String) -> String? {
        switch key {
        case "token_embedding.weight": return "text_model.embeddings.token_embedding.weight"
        case "positional_embedding": return "text_model.embeddings.position_embedding.weight"
        case "ln_final.weight": return "text_model.final_layer_norm.weight"
        case "ln_final.bias": return "text_model.final_layer_norm.bias"
        default: break
        }
        let parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 5, parts[0] == "transformer", parts[1] == "resblocks", let i = Int(parts[2]) else { return nil }
        let p = "text_model.encoder.layers.\(i)"
        let sub = parts.dropFirst(3).joined(separator: ".")
        let table = [("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.out_proj.", "self_attn.out_proj."),
                     ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")]
        for (from, to) in table where sub.hasPrefix(from) { return "\(p).\(to)\(sub.dropFirst(from.count))" }
        return nil
    }
}

extension KeyMaps {
    /// diffusers UNet module name -> SGM module name (the inverse of `unet`), for kohya LoRA keys in SGM naming.
    static func unetToSGM(_ name: String, config: UNetConfig) -> String? {
        let parts = name.split(separator: ".").map(String.init)
        let rest = { (n: Int) in parts.dropFirst(n).joined(separator: ".") }
        let l = config.layersPerBlock, n = config.levels
        func resnetInner(_ r: String) -> String? {
            let table = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
                         ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]
            for (from, to) in table where r == from || r.hasPrefix(from + ".") { return to + r.dropFirst(from.count) }
            return nil
        }
        func join(_ a: String, _ b: String) -> String { b.isEmpty ? a : "\(a).\(b)" }
        guard let first = parts.first else { return nil }
        switch first {
        case "conv_in": return join("input_blocks.0.0", rest(1))
        case "conv_norm_out": return join("out.0", rest(1))
        case "conv_out": return join("out.2", rest(1))
        case "time_embedding", "add_embedding":
            guard parts.count >= 2 else { return nil }
            let base = first == "time_embedding" ? "time_embed" : "label_emb.0"
            switch parts[1] { case "linear_1": return join("\(base).0", rest(2)); case "linear_2": return join("\(base).2", rest(2)); default: return nil }
        case "down_blocks":
            guard parts.count >= 4, let i = Int(parts[1]), let j = Int(parts[3]) else { return nil }
            switch parts[2] {
            case "resnets": return resnetInner(rest(4)).map { "input_blocks.\(1 + i * (l + 1) + j).0.\($0)" }
            case "attentions": return join("input_blocks.\(1 + i * (l + 1) + j).1", rest(4))
            case "downsamplers":
                guard parts.count >= 5, parts[4] == "conv" else { return nil }
                return join("input_blocks.\((i + 1) * (l + 1)).0.op", rest(5))
            default: return nil
            }
        case "mid_block":
            guard parts.count >= 3, let j = Int(parts[2]) else { return nil }
            switch parts[1] {
            case "resnets": return resnetInner(rest(3)).map { "middle_block.\(j == 0 ? 0 : 2).\($0)" }
            case "attentions": return join("middle_block.1", rest(3))
            default: return nil
            }
        case "up_blocks":
            guard parts.count >= 4, let i = Int(parts[1]), let j = Int(parts[3]), i < n else { return nil }
            switch parts[2] {
            case "resnets": return resnetInner(rest(4)).map { "output_blocks.\(i * (l + 1) + j).0.\($0)" }
            case "attentions": return join("output_blocks.\(i * (l + 1) + j).1", rest(4))
            case "upsamplers":
                guard parts.count >= 5, parts[4] == "conv" else { return nil }
                let idx = config.downBlockHasAttention[n - 1 - i] ? 2 : 1
                return join("output_blocks.\(i * (l + 1) + l).\(idx).conv", rest(5))
            default: return nil
            }
        default: return nil
        }
    }
}
