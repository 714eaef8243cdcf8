#!/usr/bin/env python3
"""Build tiny random-weight SDXL components (real architectures, real file formats) and reference outputs.

    python Tests/Fixtures/make_fixtures.py [--out Tests/Fixtures/sdxl-tiny] [--seed 1234]

Everything is CPU, offline, deterministic. See Tests/Fixtures/README.md and sdxl-tiny/manifest.json.
"""
import argparse
import copy
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdxl_keymap as km  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

# ---------------------------------------------------------------------------------------------- configs
TE1_CFG = dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
               max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=49406,
               eos_token_id=49407, pad_token_id=1, projection_dim=768)
TE2_CFG = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
               max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, bos_token_id=49406,
               eos_token_id=49407, pad_token_id=1, projection_dim=16)
UNET_CFG = dict(sample_size=8, in_channels=4, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                block_out_channels=(16, 32, 32), layers_per_block=2, transformer_layers_per_block=(1, 1, 2),
                attention_head_dim=(2, 4, 4), use_linear_projection=True, cross_attention_dim=48,
                addition_embed_type="text_time", addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=16 + 6 * 8, norm_num_groups=8, act_fn="silu",
                flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-5, upcast_attention=False)
VAE_CFG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 32, 32), layers_per_block=2,
               latent_channels=4, norm_num_groups=8, sample_size=64, scaling_factor=0.13025, force_upcast=True,
               act_fn="silu")
SCHED_CFG = {"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
             "steps_offset": 1, "timestep_spacing": "leading", "interpolation_type": "linear",
             "use_karras_sigmas": False, "clip_sample": False, "sample_max_value": 1.0, "set_alpha_to_one": False,
             "skip_prk_steps": True}

PROMPTS = ["a photo of an astronaut riding a horse on mars", "A fish made of 2 flowers!!  ultrarealistic, 8k"]
LORA_STRENGTH = 0.8
LORA_CLIP_STRENGTH = 0.8

# LoRA targets: (diffusers module, rank, alpha or None); alpha None = no .alpha key (scale 1)
UNET_LORA_TARGETS = [
    ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", 4, 2.0),
    ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k", 4, 4.0),
    ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_v", 4, 8.0),
    ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0", 4, 1.0),
    ("down_blocks.1.attentions.0.proj_in", 4, 4.0),
    ("down_blocks.1.attentions.0.proj_out", 4, None),
    ("down_blocks.2.attentions.1.transformer_blocks.1.ff.net.0.proj", 4, 2.0),
    ("down_blocks.2.attentions.1.transformer_blocks.1.ff.net.2", 4, 2.0),
    ("mid_block.attentions.0.transformer_blocks.0.attn2.to_k", 2, 1.0),
    ("up_blocks.0.attentions.2.transformer_blocks.1.attn2.to_v", 4, 3.0),
    ("down_blocks.1.resnets.0.conv1", 2, 1.0),      # 3x3 conv LoRA (kohya LoCon)
    ("up_blocks.2.resnets.1.conv2", 3, 1.5),        # 3x3 conv LoRA (kohya LoCon)
]
TE1_LORA_TARGETS = [
    ("text_model.encoder.layers.0.self_attn.q_proj", 4, 4.0),
    ("text_model.encoder.layers.1.mlp.fc1", 4, 2.0),
]
TE2_LORA_TARGETS = [
    ("text_model.encoder.layers.0.self_attn.k_proj", 4, 4.0),   # lands in a slice of attn.in_proj_weight
    ("text_model.encoder.layers.1.self_attn.v_proj", 4, 2.0),
    ("text_model.encoder.layers.1.self_attn.out_proj", 4, None),
    ("text_model.encoder.layers.0.mlp.fc2", 4, 8.0),
]


def rel(out, *parts):
    return os.path.join(out, *parts)


def st_save(tensors, path, metadata=None):
    if metadata and len(metadata) > 1:  # safetensors' Rust writer orders metadata keys randomly; keep bytes stable
        specs = [(k, tuple(v.shape), v.dtype) for k, v in tensors.items()]
        km.write_safetensors_streaming(path, specs, lambda k: tensors[k], metadata)
        return
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata or {"format": "pt"})


def fp16_round(model):
    """Round every parameter to fp16 and back: the reference runs fp32 compute on fp16-stored weights."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def half_sd(model):
    return {k: v.detach().half() for k, v in model.state_dict().items()}


def tokenize(prompts):
    from open_clip.tokenizer import SimpleTokenizer
    tok = SimpleTokenizer()
    ids2 = tok(prompts, context_length=77).long()           # open_clip: pads with 0 (encoder 2 convention)
    ids1 = ids2.clone()
    for b in range(ids1.shape[0]):
        eos = int((ids1[b] == 49407).nonzero()[0])
        ids1[b, eos + 1:] = 49407                              # ComfyUI CLIP-L: pads with EOS
    return ids1, ids2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdxl-tiny"))
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    seed = args.seed

    import diffusers
    import open_clip
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    # ------------------------------------------------------------------------------------------ models
    te1 = CLIPTextModel(CLIPTextConfig(**TE1_CFG)).eval()
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**TE2_CFG)).eval()
    unet = UNet2DConditionModel(**UNET_CFG).eval()
    vae = AutoencoderKL(**VAE_CFG).eval()
    for i, m in enumerate([te1, te2, unet, vae]):
        km.perturb_module(m, seed + i)
        fp16_round(m)

    # ------------------------------------------------------------------------------------------ diffusers folder
    dd = rel(out, "diffusers")
    for sub in ("unet", "vae", "text_encoder", "text_encoder_2", "scheduler"):
        os.makedirs(rel(dd, sub), exist_ok=True)
    unet.save_config(rel(dd, "unet"))
    vae.save_config(rel(dd, "vae"))
    te1.config.save_pretrained(rel(dd, "text_encoder"))
    te2.config.save_pretrained(rel(dd, "text_encoder_2"))
    with open(rel(dd, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(dict(SCHED_CFG, _diffusers_version=diffusers.__version__), f, indent=2)
    model_index = {
        "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": diffusers.__version__,
        "force_zeros_for_empty_prompt": True, "add_watermarker": None,
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": [None, None], "tokenizer_2": [None, None],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }
    with open(rel(dd, "model_index.json"), "w") as f:
        json.dump(model_index, f, indent=2)
    unet_h, vae_h = half_sd(unet), half_sd(vae)
    te1_h, te2_h = km.hf_clip_keys(half_sd(te1)), km.hf_clip_keys(half_sd(te2))
    st_save(unet_h, rel(dd, "unet", "diffusion_pytorch_model.safetensors"))
    st_save(vae_h, rel(dd, "vae", "diffusion_pytorch_model.safetensors"))
    st_save(te1_h, rel(dd, "text_encoder", "model.safetensors"))
    st_save(te2_h, rel(dd, "text_encoder_2", "model.safetensors"))
    # Lightning-style UNet-only file: the very same bytes, committed as a relative symlink to save space
    link = rel(out, "unet_diffusers.safetensors")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join("diffusers", "unet", "diffusion_pytorch_model.safetensors"), link)

    # ------------------------------------------------------------------------------------------ SGM single file
    ucfg, vcfg = dict(unet.config), dict(vae.config)
    sgm = {}
    sgm.update(km.clip_l_to_sgm(te1_h))
    sgm.update(km.clip_g_to_sgm(te2_h))
    sgm.update(km.unet_to_sgm(unet_h, ucfg))
    sgm.update(km.vae_to_sgm(vae_h, vcfg))
    sgm = dict(sorted(sgm.items()))
    st_save(sgm, rel(out, "sdxl_tiny.safetensors"))
    # dtype variants (size budget: not whole checkpoints): standalone VAE files in SGM naming without the
    # 'first_stage_model.' prefix, like stabilityai's sdxl_vae.safetensors (which is F32)
    sgm_vae = {k[len("first_stage_model."):]: v for k, v in sgm.items() if k.startswith("first_stage_model.")}
    st_save({k: v.float() for k, v in sgm_vae.items()}, rel(out, "vae_sgm_fp32.safetensors"))
    st_save({k: v.float().bfloat16() for k, v in sgm_vae.items()}, rel(out, "vae_sgm_bf16.safetensors"))
    for stale in ("sdxl_tiny_unet_fp32.safetensors", "sdxl_tiny_unet_bf16.safetensors"):
        if os.path.exists(rel(out, stale)):
            os.remove(rel(out, stale))

    verification = verify_single_file(out, dd, unet_h, vae_h, te1_h, te2_h, sgm)

    # ------------------------------------------------------------------------------------------ LoRA
    g = torch.Generator().manual_seed(seed + 100)
    unet_mods = dict(unet.named_modules())
    modmap = km.unet_module_map(ucfg)
    lora_sgm, lora_dif = {}, {}
    fused_unet, lora_records = {}, []

    def make_lora(mod, rank, alpha):
        w = mod.weight
        if w.dim() == 4:   # LoCon: down = conv(in->rank, kxk), up = conv(rank->out, 1x1)
            down = torch.randn(rank, w.shape[1], w.shape[2], w.shape[3], generator=g) / (w[0].numel() ** 0.5)
            up = torch.randn(w.shape[0], rank, 1, 1, generator=g) / rank ** 0.5
        else:
            down = torch.randn(rank, w.shape[1], generator=g) / w.shape[1] ** 0.5
            up = torch.randn(w.shape[0], rank, generator=g) / rank ** 0.5
        down, up = down.half(), up.half()
        scale = (alpha / rank) if alpha is not None else 1.0
        delta = (up.float().flatten(1) @ down.float().flatten(1)).reshape(w.shape)
        return down, up, scale, delta

    def put(d, name, down, up, alpha):
        d[name + ".lora_down.weight"] = down
        d[name + ".lora_up.weight"] = up
        if alpha is not None:
            d[name + ".alpha"] = torch.tensor(alpha, dtype=torch.float16)

    for mkey, rank, alpha in UNET_LORA_TARGETS:
        mod = unet_mods[mkey]
        down, up, scale, delta = make_lora(mod, rank, alpha)
        sgm_mod = km.unet_diffusers_to_sgm_key(mkey + ".weight", modmap)[:-len(".weight")]
        put(lora_dif, km.kohya_unet_name(mkey), down, up, alpha)
        put(lora_sgm, km.kohya_unet_name(sgm_mod), down, up, alpha)
        fused = mod.weight.detach() + LORA_STRENGTH * scale * delta
        fused_unet[mkey] = fused
        lora_records.append({"diffusers_module": mkey, "sgm_module": "model.diffusion_model." + sgm_mod,
                             "kohya_sgm": km.kohya_unet_name(sgm_mod), "kohya_diffusers": km.kohya_unet_name(mkey),
                             "rank": rank, "alpha": alpha, "scale_alpha_over_rank": scale,
                             "weight_shape": list(mod.weight.shape),
                             "down_shape": list(down.shape), "up_shape": list(up.shape),
                             "reference_fused": "lora_fused.unet." + mkey})
    fused_te = {1: {}, 2: {}}
    for which, model, targets in ((1, te1, TE1_LORA_TARGETS), (2, te2, TE2_LORA_TARGETS)):
        mods = dict(km_named_modules_hf(model))
        for mkey, rank, alpha in targets:
            mod = mods[mkey]
            down, up, scale, delta = make_lora(mod, rank, alpha)
            name = km.kohya_te_name(which, mkey)
            put(lora_dif, name, down, up, alpha)
            put(lora_sgm, name, down, up, alpha)
            fused_te[which][mkey] = mod.weight.detach() + LORA_CLIP_STRENGTH * scale * delta
            lora_records.append({"hf_module": f"text_encoder{'' if which == 1 else '_2'}." + mkey, "kohya": name,
                                 "rank": rank, "alpha": alpha, "scale_alpha_over_rank": scale,
                                 "weight_shape": list(mod.weight.shape), "down_shape": list(down.shape),
                                 "up_shape": list(up.shape),
                                 "reference_fused": f"lora_fused.te{which}." + mkey})
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "4.0",
            "ss_base_model_version": "sdxl_base_v1-0", "format": "pt"}
    st_save(dict(sorted(lora_sgm.items())), rel(out, "lora_sgm.safetensors"), meta)
    st_save(dict(sorted(lora_dif.items())), rel(out, "lora_diffusers.safetensors"), meta)
    verification["lora"] = verify_lora(out, dd)

    # ------------------------------------------------------------------------------------------ references
    ref, desc = {}, {}

    def R(name, t, d):
        ref[name] = t.detach().clone().contiguous()
        desc[name] = d

    ids1, ids2 = tokenize(PROMPTS)
    R("tokens.ids_te1", ids1.int(), "open_clip token ids of PROMPTS for encoder 1 (CLIP-L): BOS ... EOS, padded with 49407 (ComfyUI)")
    R("tokens.ids_te2", ids2.int(), "same tokens for encoder 2 (bigG): padded with 0 (open_clip / ComfyUI)")
    R("tokens.eos_index", (ids2 == 49407).int().argmax(-1).int(), "index of the first EOS (49407) per prompt")

    def encode(te1m, te2m):
        with torch.no_grad():
            o1 = te1m(ids1, output_hidden_states=True)
            o2 = te2m(ids2, output_hidden_states=True)
        return o1, o2

    o1, o2 = encode(te1, te2)
    ctx = torch.cat([o1.hidden_states[-2], o2.hidden_states[-2]], -1)
    R("te1.hidden_embeddings", o1.hidden_states[0], "CLIP-L token+position embeddings (hidden_states[0])")
    R("te1.penultimate", o1.hidden_states[-2], "CLIP-L hidden_states[-2] (output of layer n-2, no final norm)")
    R("te1.last_hidden_state", o1.last_hidden_state, "CLIP-L final layer + final_layer_norm (not used by SDXL; debugging)")
    R("te2.hidden_embeddings", o2.hidden_states[0], "bigG token+position embeddings")
    R("te2.penultimate", o2.hidden_states[-2], "bigG hidden_states[-2] (no final norm)")
    R("te2.last_hidden_state", o2.last_hidden_state, "bigG final layer + ln_final, all tokens")
    R("te2.pooled", o2.text_embeds, "bigG ln_final output at the first EOS index @ text_projection (HF text_projection.weight^T = SGM text_projection)")
    R("cond.context", ctx, "concat(te1.penultimate, te2.penultimate) on the last axis = UNet encoder_hidden_states")

    # UNet
    gx = torch.Generator().manual_seed(seed + 7)
    x = torch.randn(2, 4, 8, 8, generator=gx)
    t = torch.tensor([999.0, 250.0])
    time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0], [48.0, 56.0, 8.0, 4.0, 64.0, 64.0]])
    text_embeds = o2.text_embeds
    R("unet.in.x", x, "UNet input sample (already scaled input; torch.randn seed+7)")
    R("unet.in.timesteps", t, "timesteps (float) per batch item")
    R("unet.in.context", ctx, "encoder_hidden_states = cond.context")
    R("unet.in.text_embeds", text_embeds, "added cond: pooled text embeds = te2.pooled")
    R("unet.in.time_ids", time_ids, "added cond: (orig_h, orig_w, crop_top, crop_left, target_h, target_w)")

    def run_unet(m, prefix):
        acts, hooks = {}, []

        def hook(name, take0=False):
            def f(_m, _i, o):
                acts[name] = (o[0] if take0 and isinstance(o, tuple) else o).detach().clone()
            return f
        hooks.append(m.time_proj.register_forward_hook(hook("time_proj")))
        hooks.append(m.time_embedding.register_forward_hook(hook("time_embedding")))
        hooks.append(m.add_time_proj.register_forward_hook(hook("add_time_proj")))
        hooks.append(m.add_embedding.register_forward_hook(hook("add_embedding")))
        hooks.append(m.conv_in.register_forward_hook(hook("conv_in")))
        for i, b in enumerate(m.down_blocks):
            hooks.append(b.register_forward_hook(hook(f"down_blocks.{i}", True)))
        hooks.append(m.mid_block.register_forward_hook(hook("mid_block")))
        for i, b in enumerate(m.up_blocks):
            hooks.append(b.register_forward_hook(hook(f"up_blocks.{i}")))
        with torch.no_grad():
            eps = m(x, t, encoder_hidden_states=ctx,
                    added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
        for h in hooks:
            h.remove()
        return eps, acts

    eps, acts = run_unet(unet, "unet")
    R("unet.out.eps", eps, "UNet output (epsilon prediction), fp32 compute on fp16-rounded weights")
    act_desc = {
        "time_proj": "sinusoidal timestep embedding [B, block_out_channels[0]] (flip_sin_to_cos: cos first, shift 0)",
        "time_embedding": "time_embed MLP output (linear_1, SiLU, linear_2) [B, 4*C0]",
        "add_time_proj": "sinusoid of each time_id, flattened [B*6, addition_time_embed_dim] (reshape to [B, 6*8])",
        "add_embedding": "label_emb MLP output on concat(text_embeds, time_ids sinusoids) [B, 4*C0]; emb = time_embedding + add_embedding",
        "conv_in": "conv_in output (input_blocks.0.0)",
        "down_blocks.0": "hidden state after down block 0 (input_blocks.1..3, incl. downsampler)",
        "down_blocks.1": "hidden state after down block 1 (input_blocks.4..6)",
        "down_blocks.2": "hidden state after down block 2 (input_blocks.7..8, no downsampler)",
        "mid_block": "middle_block output",
        "up_blocks.0": "after up block 0 (output_blocks.0..2 incl. upsampler)",
        "up_blocks.1": "after up block 1 (output_blocks.3..5 incl. upsampler)",
        "up_blocks.2": "after up block 2 (output_blocks.6..8), before out.0/out.2",
    }
    for k, v in acts.items():
        R("unet.act." + k, v, act_desc[k])

    # UNet + LoRA
    unet_l = copy.deepcopy(unet)
    lm = dict(unet_l.named_modules())
    with torch.no_grad():
        for mkey, fw in fused_unet.items():
            lm[mkey].weight.copy_(fw)
    eps_l, _ = run_unet(unet_l, "unet_lora")
    R("unet_lora.out.eps", eps_l, f"UNet output with the LoRA fused at strength_model {LORA_STRENGTH} (same inputs as unet.in.*)")
    for mkey, fw in fused_unet.items():
        R("lora_fused.unet." + mkey, fw, "W + strength*(alpha/rank)*up@down (conv: up[out,r,1,1] x down[r,in,3,3] flattened), fp32")

    # text encoders + LoRA
    te1_l, te2_l = copy.deepcopy(te1), copy.deepcopy(te2)
    with torch.no_grad():
        for which, m in ((1, te1_l), (2, te2_l)):
            mods = dict(km_named_modules_hf(m))
            for mkey, fw in fused_te[which].items():
                mods[mkey].weight.copy_(fw)
                R(f"lora_fused.te{which}." + mkey, fw, "W + strength_clip*(alpha/rank)*up@down, fp32")
    o1l, o2l = encode(te1_l, te2_l)
    R("lora_te.cond.context", torch.cat([o1l.hidden_states[-2], o2l.hidden_states[-2]], -1),
      f"cond.context with the LoRA's text-encoder parts fused at strength_clip {LORA_CLIP_STRENGTH}")
    R("lora_te.te2.pooled", o2l.text_embeds, f"te2.pooled with the LoRA at strength_clip {LORA_CLIP_STRENGTH}")

    # VAE
    gv = torch.Generator().manual_seed(seed + 11)
    z = torch.randn(1, 4, 8, 8, generator=gv)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    img = torch.stack([torch.sin(3 * xx + 1) * torch.cos(2 * yy), xx * yy, torch.cos(4 * yy - xx)])[None]
    img = (0.8 * img + 0.2 * torch.rand(1, 3, 64, 64, generator=gv) - 0.1).clamp(-1, 1)
    with torch.no_grad():
        pq = vae.post_quant_conv(z)
        dec = vae.decode(z).sample
        enc_h = vae.encoder(img)
        moments = vae.quant_conv(enc_h)
        post = vae.encode(img).latent_dist
    R("vae.in.z", z, "decoder input z = latent / scaling_factor (raw VAE-space latent), torch.randn seed+11")
    R("vae.act.post_quant_conv", pq, "post_quant_conv(z)")
    R("vae.out.decoded", dec, "vae.decode(z): image NCHW in about [-1,1], NOT clamped")
    R("vae.in.image", img, "encoder input image NCHW in [-1,1]")
    R("vae.act.encoder_out", enc_h, "encoder output before quant_conv [1, 2*latent_channels, 8, 8]")
    R("vae.act.moments", moments, "quant_conv output = concat(mean, logvar) on channels")
    R("vae.out.mean", post.mean, "posterior mean (what ComfyUI VAEEncode returns)")
    R("vae.out.logvar", post.logvar, "posterior logvar (clamped to [-30, 20])")
    vae_b = copy.deepcopy(vae)
    with torch.no_grad():
        for p_ in vae_b.parameters():
            p_.copy_(p_.bfloat16().float())
        R("vae_bf16.out.decoded", vae_b.decode(z).sample, "vae.decode(vae.in.z) with the weights of vae_sgm_bf16.safetensors (bf16-rounded), fp32 compute")
        R("vae_bf16.out.mean", vae_b.encode(img).latent_dist.mean, "posterior mean of vae.in.image with the bf16-rounded weights")

    ref = {k: (v.float() if v.is_floating_point() else v) for k, v in ref.items()}
    st_save(ref, rel(out, "reference.safetensors"))

    # ------------------------------------------------------------------------------------------ manifest
    def fileinfo(name, d):
        p = rel(out, name)
        return {"file": name, "bytes": os.path.getsize(p), "description": d}

    manifest = {
        "generator": "Tests/Fixtures/make_fixtures.py", "seed": seed,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "open_clip_torch": open_clip.__version__},
        "weights": {
            "rule": "every parameter: ndim>=2 -> N(0,1)/sqrt(fan_in); 1-D *norm*.weight -> 1+0.1*N; other 1-D -> 0.05*N; "
                    "per-key torch.Generator seeded from (seed+component, crc32(diffusers key)); then rounded to fp16",
            "stored_dtype": "float16 (except vae_sgm_fp32 / vae_sgm_bf16 and the kohya LoRA alpha scalars, which are fp16 0-dim)",
            "reference_compute": "fp32 on the fp16-rounded weights (fp16 -> fp32 upcast is exact)",
        },
        "configs": {"text_encoder": te1.config.to_dict(), "text_encoder_2": te2.config.to_dict(),
                    "unet": {k: v for k, v in ucfg.items() if not k.startswith("_")},
                    "vae": {k: v for k, v in vcfg.items() if not k.startswith("_")},
                    "scheduler": SCHED_CFG,
                    "derived": {"unet_heads_per_level": list(UNET_CFG["attention_head_dim"]),
                                "unet_head_dim_per_level": [c // h for c, h in zip(UNET_CFG["block_out_channels"], UNET_CFG["attention_head_dim"])],
                                "unet_time_embed_dim": 4 * UNET_CFG["block_out_channels"][0],
                                "unet_mid_block_transformer_layers": UNET_CFG["transformer_layers_per_block"][-1],
                                "unet_up_block_transformer_layers": list(reversed(UNET_CFG["transformer_layers_per_block"])),
                                "vae_mid_attention": "single head, head dim = 32 (block_out_channels[-1])",
                                "vae_encoder_downsample_padding": "pad (left 0, right 1, top 0, bottom 1) then 3x3 stride-2 conv, padding 0",
                                "context_dim": 48, "pooled_dim": 16, "adm_in_channels": 64}},
        "prompts": PROMPTS,
        "files": [
            fileinfo("sdxl_tiny.safetensors", "single-file checkpoint, original SGM layout, fp16 (model.diffusion_model.*, conditioner.embedders.0.transformer.text_model.*, conditioner.embedders.1.model.* (OpenCLIP names, fused in_proj, text_projection [width, proj], logit_scale), first_stage_model.* (attention q/k/v/proj_out as 1x1 conv [C,C,1,1]))"),
            fileinfo("vae_sgm_fp32.safetensors", "standalone VAE, SGM naming WITHOUT the first_stage_model. prefix (like sdxl_vae.safetensors), F32, same values as the fp16 checkpoint: vae.* references apply"),
            fileinfo("vae_sgm_bf16.safetensors", "the same standalone VAE stored as BF16 (fp16 values rounded to bf16): use the vae_bf16.* references"),
            fileinfo("unet_diffusers.safetensors", "UNet-only file in diffusers layout, fp16 (like sdxl_lightning_4step_unet.safetensors); a relative symlink to diffusers/unet/diffusion_pytorch_model.safetensors"),
            fileinfo("lora_sgm.safetensors", "kohya LoRA, UNet modules in SGM naming (lora_unet_input_blocks_4_1_...), + lora_te1_/lora_te2_ keys, fp16, 0-dim .alpha"),
            fileinfo("lora_diffusers.safetensors", "the same LoRA with UNet modules in diffusers naming (lora_unet_down_blocks_1_attentions_0_...)"),
            fileinfo("reference.safetensors", "reference inputs/outputs, F32 (token ids I32), described below"),
            fileinfo("diffusers/model_index.json", "diffusers StableDiffusionXLPipeline folder (no tokenizer folders); unet/ vae/ text_encoder/ text_encoder_2/ scheduler/"),
        ],
        "tokenizer": {"bos": 49406, "eos": 49407, "te1_pad": 49407, "te2_pad": 0, "context_length": 77,
                      "source": "open_clip.tokenizer.SimpleTokenizer"},
        "lora": {"strength_model": LORA_STRENGTH, "strength_clip": LORA_CLIP_STRENGTH,
                 "rule": "W' = W + strength * (alpha/rank) * (up.flatten(1) @ down.flatten(1)).reshape(W.shape); rank = lora_down.shape[0]; "
                         "no .alpha key -> scale 1 (ComfyUI); te2 q/k/v LoRAs patch the matching third of attn.in_proj_weight",
                 "modules": lora_records},
        "single_file_verification": verification,
        "tolerances": {"fp32_vs_fp32": "max |a-b| <= 1e-4 * max(1, max|ref|) (reordering of fp32 sums; expect ~1e-6..1e-5 relative)",
                       "weights_after_load": "exact (fp16 -> fp32 widening is exact)"},
        "ignorable_keys": ["conditioner.embedders.1.model.logit_scale",
                           "conditioner.embedders.0.transformer.text_model.embeddings.position_ids"],
        "reference": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
                       "description": desc[k]} for k, v in ref.items()],
    }
    with open(rel(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    for k, v in ref.items():
        if v.is_floating_point():
            print(f"{k:70s} {str(list(v.shape)):18s} std {v.std().item():.4g} absmax {v.abs().max().item():.4g}")
    print(json.dumps(verification, indent=1))


def km_named_modules_hf(model):
    """named_modules of a CLIP model with HF file names ('text_model.' prefix even for flattened CLIPTextModel)."""
    for n, m in model.named_modules():
        if n:
            yield (n if n.startswith("text_model.") else "text_model." + n), m


def verify_lora(out, dd):
    """diffusers' own kohya converter must map lora_sgm (SGM names, given the UNet config) and lora_diffusers
    to the same diffusers/peft keys with equal tensors: an independent check of both namings."""
    from types import SimpleNamespace
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    try:
        cfg = SimpleNamespace(**UNet2DConditionModel.load_config(rel(dd, "unet")))
        a, _ = StableDiffusionXLPipeline.lora_state_dict(rel(out, "lora_sgm.safetensors"), unet_config=cfg)
        b, _ = StableDiffusionXLPipeline.lora_state_dict(rel(out, "lora_diffusers.safetensors"))
        same = sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in b)
        return {"check": "StableDiffusionXLPipeline.lora_state_dict(lora_sgm, unet_config) == lora_state_dict(lora_diffusers)",
                "converted_keys": len(b), "ok": bool(same)}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": repr(e)}


def verify_single_file(out, dd, unet_h, vae_h, te1_h, te2_h, sgm):
    """Load sdxl_tiny.safetensors back with diffusers' own single-file loaders and compare every tensor."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    path = rel(out, "sdxl_tiny.safetensors")
    res = {}

    def cmp(name, model, ref):
        got = km.hf_clip_keys(model.state_dict()) if "text" in name else model.state_dict()
        missing = sorted(set(ref) - set(got))
        extra = sorted(set(got) - set(ref))
        bad = [k for k in ref if k in got and not torch.equal(got[k].half(), ref[k])]
        res[name] = {"tensors": len(ref), "missing": missing, "unexpected": extra, "mismatched": bad,
                     "ok": not missing and not extra and not bad}

    try:
        u = UNet2DConditionModel.from_single_file(path, config=dd, subfolder="unet", local_files_only=True,
                                                  torch_dtype=torch.float16)
        cmp("unet (UNet2DConditionModel.from_single_file)", u, unet_h)
    except Exception as e:  # noqa: BLE001
        res["unet"] = {"ok": False, "error": repr(e)}
    try:
        v = AutoencoderKL.from_single_file(path, config=dd, subfolder="vae", local_files_only=True,
                                           torch_dtype=torch.float16)
        cmp("vae (AutoencoderKL.from_single_file)", v, vae_h)
    except Exception as e:  # noqa: BLE001
        res["vae"] = {"ok": False, "error": repr(e)}
    ck = load_file(path)
    for sub, cls, ref in (("text_encoder", CLIPTextModel, te1_h), ("text_encoder_2", CLIPTextModelWithProjection, te2_h)):
        try:
            m = create_diffusers_clip_model_from_ldm(cls, ck, subfolder=sub, config=dd, local_files_only=True,
                                                     torch_dtype=torch.float16)
            cmp(f"{sub} (diffusers create_diffusers_clip_model_from_ldm)", m, ref)
        except Exception as e:  # noqa: BLE001
            res[sub] = {"ok": False, "error": repr(e)}
    return res


if __name__ == "__main__":
    main()
