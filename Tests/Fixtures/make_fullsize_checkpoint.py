#!/usr/bin/env python3
"""Write a random-weight, full-size SDXL single-file checkpoint (original SGM layout, fp16, ~6.9 GB).

    python Tests/Fixtures/make_fullsize_checkpoint.py OUT.safetensors [--seed 0] [--dtype fp16|bf16|fp32] [--dry-run]

Not run in CI; its output is not committed. For benchmarks and load tests at real sizes. The models are
instantiated on the meta device (no memory), only their key names and shapes are used; each tensor is then
drawn with the same per-key rule as the tiny fixtures (sdxl_keymap.perturb_value), converted to the SGM
name with the same key map, and streamed to disk one tensor at a time (peak memory ~ the largest tensor,
the 49408 x 1280 bigG token embedding). Output keys: model.diffusion_model.* (1680),
conditioner.embedders.0.transformer.text_model.* (196), conditioner.embedders.1.model.* (518 incl. logit_scale),
first_stage_model.* (248).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdxl_keymap as km  # noqa: E402

UNET_SDXL = dict(sample_size=128, in_channels=4, out_channels=4,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
                 attention_head_dim=(5, 10, 20), use_linear_projection=True, cross_attention_dim=2048,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816, norm_num_groups=32, act_fn="silu",
                 flip_sin_to_cos=True, freq_shift=0, upcast_attention=False)
VAE_SDXL = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                latent_channels=4, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407,
              pad_token_id=1, projection_dim=768)
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              max_position_embeddings=77, hidden_act="gelu", bos_token_id=49406, eos_token_id=49407,
              pad_token_id=1, projection_dim=1280)


def meta_state_dict(build):
    with torch.device("meta"):
        m = build()
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--config", default="sdxl", choices=["sdxl", "tiny"],
                    help="tiny = the configs of make_fixtures.py (self-test: with --seed 1234 the output equals sdxl-tiny/sdxl_tiny.safetensors)")
    ap.add_argument("--dry-run", action="store_true", help="print key counts and size, write nothing")
    args = ap.parse_args()
    dt = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    global UNET_SDXL, VAE_SDXL, CLIP_L, CLIP_G
    if args.config == "tiny":
        import make_fixtures as mf
        UNET_SDXL, VAE_SDXL, CLIP_L, CLIP_G = mf.UNET_CFG, mf.VAE_CFG, mf.TE1_CFG, mf.TE2_CFG

    comps = {
        "te1": meta_state_dict(lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L))),
        "te2": meta_state_dict(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G))),
        "unet": meta_state_dict(lambda: UNet2DConditionModel(**UNET_SDXL)),
        "vae": meta_state_dict(lambda: AutoencoderKL(**VAE_SDXL)),
    }
    seeds = {"te1": args.seed, "te2": args.seed + 1, "unet": args.seed + 2, "vae": args.seed + 3}
    # file names (with 'text_model.') -> the model's own parameter names, which seed the per-key values
    raw = {c: {} for c in comps}
    for c in ("te1", "te2"):
        for k in list(comps[c]):
            hk = next(iter(km.hf_clip_keys({k: 0})))
            raw[c][hk] = k
        comps[c] = {hk: comps[c][k] for hk, k in raw[c].items() if not k.endswith("position_ids")}

    def val(comp, key):
        shape = comps[comp][key]
        return km.perturb_value(raw[comp].get(key, key), shape, seeds[comp]).to(dt)

    # SGM name -> (shape, producer)
    plan = {}
    modmap = km.unet_module_map(UNET_SDXL)
    for k, s in comps["unet"].items():
        plan["model.diffusion_model." + km.unet_diffusers_to_sgm_key(k, modmap)] = (s, lambda k=k: val("unet", k))
    for k, s in comps["vae"].items():
        (sk, mt), = km.vae_to_sgm({k: torch.empty(s, device="meta")}, VAE_SDXL).items()
        plan[sk] = (tuple(mt.shape), lambda k=k, s2=tuple(mt.shape): val("vae", k).reshape(s2))
    for k, s in comps["te1"].items():
        plan["conditioner.embedders.0.transformer." + k] = (s, lambda k=k: val("te1", k))
    # bigG: convert the meta dict for names/shapes, then describe how to build each value
    g = km.clip_g_to_sgm({k: torch.empty(s, device="meta", dtype=dt) for k, s in comps["te2"].items()})
    pre = "conditioner.embedders.1.model."
    inv = {"token_embedding.weight": "text_model.embeddings.token_embedding.weight",
           "positional_embedding": "text_model.embeddings.position_embedding.weight",
           "ln_final.weight": "text_model.final_layer_norm.weight", "ln_final.bias": "text_model.final_layer_norm.bias"}
    ren = {v: k for k, v in km.OPENCLIP_LAYER_RENAME.items()}
    for sk, mt in g.items():
        name = sk[len(pre):]
        shape = tuple(mt.shape)
        if name in inv:
            plan[sk] = (shape, lambda h=inv[name]: val("te2", h))
        elif name == "text_projection":
            plan[sk] = (shape, lambda: val("te2", "text_projection.weight").t().contiguous())
        elif name == "logit_scale":
            plan[sk] = (shape, lambda: torch.tensor(4.6052, dtype=dt))
        elif ".attn.in_proj_" in name:
            n, wb = int(name.split(".")[2]), name.rsplit("_", 1)[1]
            plan[sk] = (shape, lambda n=n, wb=wb: torch.cat(
                [val("te2", f"text_model.encoder.layers.{n}.self_attn.{p}_proj.{wb}") for p in "qkv"], 0))
        else:  # transformer.resblocks.N.<mod>.<wb>
            parts = name.split(".")
            n, mod, wb = parts[2], ".".join(parts[3:-1]), parts[-1]
            plan[sk] = (shape, lambda h=f"text_model.encoder.layers.{n}.{ren[mod]}.{wb}": val("te2", h))

    names = sorted(plan)
    nbytes = sum(torch.Size(plan[n][0]).numel() for n in names) * torch.tensor([], dtype=dt).element_size()
    counts = {}
    for n in names:
        p = ".".join(n.split(".")[:3]) if n.startswith("conditioner") else n.split(".")[0]
        counts[p] = counts.get(p, 0) + 1
    print(f"{len(names)} tensors, {nbytes / 1e9:.2f} GB ({args.dtype}); per prefix: {counts}")
    if args.dry_run:
        return
    specs = [(n, plan[n][0], dt) for n in names]
    done = [0]

    def produce(n):
        done[0] += 1
        if done[0] % 200 == 0:
            print(f"  {done[0]}/{len(names)}", flush=True)
        return plan[n][1]()
    km.write_safetensors_streaming(args.out, specs, produce, {"format": "pt"})
    print("wrote", args.out)


if __name__ == "__main__":
    main()
