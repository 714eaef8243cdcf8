"""SDXL key maps and helpers shared by make_fixtures.py and make_fullsize_checkpoint.py.

diffusers -> original SGM ("single file") key names for the UNet, the VAE, CLIP-L and OpenCLIP bigG,
kohya LoRA module naming (both styles), the deterministic weight-perturbation rule, and a streaming
safetensors writer. Key maps learned from diffusers' loaders/single_file_utils.py
(convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_open_clip_checkpoint) and ComfyUI's
comfy/utils.py (unet_to_diffusers, transformers_convert, clip_text_transformers_convert) and
comfy/lora.py (model_lora_keys_unet / model_lora_keys_clip). Written independently here.
"""
import json
import math
import struct
import zlib

import torch

# ---------------------------------------------------------------------------------------------
# UNet


def _has_attn(block_type):
    return "CrossAttn" in block_type


def unet_module_map(cfg):
    """Module-prefix map diffusers -> SGM (without the 'model.diffusion_model.' prefix)."""
    m = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
        "mid_block.resnets.0": "middle_block.0",
        "mid_block.attentions.0": "middle_block.1",
        "mid_block.resnets.1": "middle_block.2",
    }
    n = cfg["layers_per_block"]
    levels = len(cfg["block_out_channels"])
    idx = 1
    for l in range(levels):
        for j in range(n):
            m[f"down_blocks.{l}.resnets.{j}"] = f"input_blocks.{idx}.0"
            if _has_attn(cfg["down_block_types"][l]):
                m[f"down_blocks.{l}.attentions.{j}"] = f"input_blocks.{idx}.1"
            idx += 1
        if l < levels - 1:
            m[f"down_blocks.{l}.downsamplers.0.conv"] = f"input_blocks.{idx}.0.op"
            idx += 1
    idx = 0
    for l in range(levels):
        attn = _has_attn(cfg["up_block_types"][l])
        for j in range(n + 1):
            m[f"up_blocks.{l}.resnets.{j}"] = f"output_blocks.{idx}.0"
            if attn:
                m[f"up_blocks.{l}.attentions.{j}"] = f"output_blocks.{idx}.1"
            if j == n and l < levels - 1:
                m[f"up_blocks.{l}.upsamplers.0.conv"] = f"output_blocks.{idx}.{2 if attn else 1}.conv"
            idx += 1
    return m


UNET_RESNET_RENAME = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _split_prefix(key, prefixes):
    """Longest module prefix of `key` (dotted, whole components) found in `prefixes`."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        p = ".".join(parts[:i])
        if p in prefixes:
            return p, ".".join(parts[i:])
    raise KeyError(f"no SGM mapping for key {key}")


def unet_diffusers_to_sgm_key(key, modmap):
    p, rest = _split_prefix(key, modmap)
    if ".resnets." in p:
        first, _, tail = rest.partition(".")
        rest = UNET_RESNET_RENAME[first] + "." + tail
    return modmap[p] + "." + rest


def unet_to_sgm(sd, cfg, prefix="model.diffusion_model."):
    modmap = unet_module_map(cfg)
    return {prefix + unet_diffusers_to_sgm_key(k, modmap): v for k, v in sd.items()}


# ---------------------------------------------------------------------------------------------
# VAE


def vae_module_map(cfg):
    m = {
        "encoder.conv_in": "encoder.conv_in",
        "encoder.conv_out": "encoder.conv_out",
        "encoder.conv_norm_out": "encoder.norm_out",
        "decoder.conv_in": "decoder.conv_in",
        "decoder.conv_out": "decoder.conv_out",
        "decoder.conv_norm_out": "decoder.norm_out",
        "quant_conv": "quant_conv",
        "post_quant_conv": "post_quant_conv",
    }
    L = len(cfg["block_out_channels"])
    for side in ("encoder", "decoder"):
        m[f"{side}.mid_block.resnets.0"] = f"{side}.mid.block_1"
        m[f"{side}.mid_block.resnets.1"] = f"{side}.mid.block_2"
        m[f"{side}.mid_block.attentions.0"] = f"{side}.mid.attn_1"
    for i in range(L):
        for j in range(cfg["layers_per_block"]):
            m[f"encoder.down_blocks.{i}.resnets.{j}"] = f"encoder.down.{i}.block.{j}"
        m[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = f"encoder.down.{i}.downsample.conv"
        for j in range(cfg["layers_per_block"] + 1):
            m[f"decoder.up_blocks.{i}.resnets.{j}"] = f"decoder.up.{L - 1 - i}.block.{j}"
        m[f"decoder.up_blocks.{i}.upsamplers.0.conv"] = f"decoder.up.{L - 1 - i}.upsample.conv"
    return m


VAE_ATTN_RENAME = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_sgm(sd, cfg, prefix="first_stage_model."):
    modmap = vae_module_map(cfg)
    out = {}
    for k, v in sd.items():
        p, rest = _split_prefix(k, modmap)
        if ".resnets." in p:
            rest = rest.replace("conv_shortcut", "nin_shortcut")
        if ".attentions." in p:
            for a, b in VAE_ATTN_RENAME.items():
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
                    break
            if v.dim() == 2:  # linear in diffusers, 1x1 conv in the original checkpoints
                v = v[:, :, None, None]
        out[prefix + modmap[p] + "." + rest] = v
    return out


# ---------------------------------------------------------------------------------------------
# Text encoders


def hf_clip_keys(sd):
    """transformers >= 5.6 saves CLIPTextModel without the 'text_model.' wrapper; real files have it."""
    return {(k if k.startswith("text_model.") or k.startswith("text_projection") else "text_model." + k): v
            for k, v in sd.items()}


def clip_l_to_sgm(sd, prefix="conditioner.embedders.0.transformer."):
    return {prefix + k: v for k, v in hf_clip_keys(sd).items()}


OPENCLIP_LAYER_RENAME = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def clip_g_to_sgm(sd, prefix="conditioner.embedders.1.model.", logit_scale=True):
    """HF CLIPTextModelWithProjection state dict -> OpenCLIP names as in sd_xl_base_1.0.safetensors."""
    sd = hf_clip_keys(sd)
    out = {}
    layers = sorted({int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layers.")})
    for k, v in sd.items():
        if k == "text_model.embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = v
        elif k == "text_model.embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = v
        elif k.startswith("text_model.final_layer_norm."):
            out[prefix + "ln_final." + k.rsplit(".", 1)[1]] = v
        elif k == "text_projection.weight":
            out[prefix + "text_projection"] = v.t().contiguous()  # [width, proj]: pooled = x @ text_projection
        elif k.startswith("text_model.encoder.layers."):
            n = int(k.split(".")[3])
            rest = ".".join(k.split(".")[4:])
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                continue  # fused below
            mod, _, wb = rest.rpartition(".")
            out[f"{prefix}transformer.resblocks.{n}.{OPENCLIP_LAYER_RENAME[mod]}.{wb}"] = v
        else:
            raise KeyError(k)
    for n in layers:
        base = f"text_model.encoder.layers.{n}.self_attn."
        for wb in ("weight", "bias"):
            out[f"{prefix}transformer.resblocks.{n}.attn.in_proj_{wb}"] = torch.cat(
                [sd[base + f"{p}_proj.{wb}"] for p in ("q", "k", "v")], 0)
    if logit_scale:
        # present in sd_xl_base_1.0.safetensors; unused for SDXL text conditioning (loaders ignore it)
        dt = next(iter(sd.values())).dtype
        out[prefix + "logit_scale"] = torch.tensor(math.log(100.0), dtype=dt)  # trained value ln(100)
    return out


# ---------------------------------------------------------------------------------------------
# kohya LoRA naming


def kohya_unet_name(module_key):
    """'down_blocks.1.attentions.0.proj_in' or 'input_blocks.4.1.proj_in' -> 'lora_unet_..._proj_in'."""
    return "lora_unet_" + module_key.replace(".", "_")


def kohya_te_name(which, hf_module_key):
    """which 1|2; 'text_model.encoder.layers.0.self_attn.q_proj' -> 'lora_te1_text_model_encoder_layers_0_self_attn_q_proj'."""
    return f"lora_te{which}_" + hf_module_key.replace(".", "_")


# ---------------------------------------------------------------------------------------------
# deterministic random weights


def perturb_value(name, shape, seed, dtype=torch.float32):
    """Deterministic per-key random value (independent of creation order).

    ndim >= 2: normal / sqrt(fan_in)   (fan_in = prod(shape[1:]))
    1-D '...norm...weight' (GroupNorm / LayerNorm scale): 1 + 0.1 * normal
    other 1-D (biases): 0.05 * normal
    """
    g = torch.Generator().manual_seed((seed * 1000003 + zlib.crc32(name.encode())) % (2**63))
    x = torch.randn(shape, generator=g, dtype=torch.float32)
    if len(shape) >= 2:
        x = x / math.sqrt(math.prod(shape[1:]))
    elif name.endswith("weight") and "norm" in name:
        x = 1.0 + 0.1 * x
    else:
        x = 0.05 * x
    return x.to(dtype)


@torch.no_grad()
def perturb_module(model, seed):
    for name, p in model.named_parameters():
        p.copy_(perturb_value(name, tuple(p.shape), seed))


# ---------------------------------------------------------------------------------------------
# streaming safetensors writer (one tensor in memory at a time)

_ST_DTYPE = {torch.float16: ("F16", 2), torch.bfloat16: ("BF16", 2), torch.float32: ("F32", 4),
             torch.int32: ("I32", 4), torch.int64: ("I64", 8)}


def write_safetensors_streaming(path, specs, produce, metadata=None):
    """specs: list of (name, shape, torch dtype) in file order; produce(name) -> tensor of that shape/dtype."""
    header, off = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, shape, dt in specs:
        code, size = _ST_DTYPE[dt]
        n = math.prod(shape) * size
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape, dt in specs:
            t = produce(name)
            assert tuple(t.shape) == tuple(shape) and t.dtype == dt, name
            f.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
