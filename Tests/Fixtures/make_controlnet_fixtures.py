#!/usr/bin/env python3
"""Tiny random-weight SDXL ControlNet (diffusers + original layouts) and ComfyUI-rule references.

    python Tests/Fixtures/make_controlnet_fixtures.py [--out Tests/Fixtures/controlnet-tiny] [--seed 1234]

Needs the sdxl-tiny fixtures (make_fixtures.py) and reuses make_sampling_fixtures.py (schedules, euler, noise)
and make_imaging_fixtures.py (comfy.utils.common_upscale). CPU, offline, deterministic.
Read controlnet-tiny/manifest.json, not this file, in tests.
"""
import argparse
import copy
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sdxl_keymap as km  # noqa: E402
from make_fixtures import UNET_CFG, fp16_round, half_sd, st_save  # noqa: E402
import make_sampling_fixtures as msf  # noqa: E402
from make_imaging_fixtures import comfy_common_upscale  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

HINT_CHANNELS = (4, 8, 16, 16)   # SDXL (and ComfyUI's cldm.py, hard-coded): (16, 32, 96, 256)
CN_CFG = dict(
    in_channels=4, conditioning_channels=3, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=UNET_CFG["down_block_types"], mid_block_type="UNetMidBlock2DCrossAttn",
    block_out_channels=UNET_CFG["block_out_channels"], layers_per_block=UNET_CFG["layers_per_block"],
    downsample_padding=1, mid_block_scale_factor=1, act_fn="silu", norm_num_groups=UNET_CFG["norm_num_groups"],
    norm_eps=1e-5, cross_attention_dim=UNET_CFG["cross_attention_dim"],
    transformer_layers_per_block=UNET_CFG["transformer_layers_per_block"],
    attention_head_dim=UNET_CFG["attention_head_dim"], use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=UNET_CFG["addition_time_embed_dim"],
    projection_class_embeddings_input_dim=UNET_CFG["projection_class_embeddings_input_dim"],
    upcast_attention=False, controlnet_conditioning_channel_order="rgb",
    conditioning_embedding_out_channels=HINT_CHANNELS, global_pool_conditions=False)
SEED_COMPONENT = 10          # weights: km.perturb_module(cn, seed + 10)
UNET_RESIDUAL_SCALE = 0.7
E2E_CASES = {
    # ControlNetApplyAdvanced chains, in the order the nodes are applied (the first is the 'previous_controlnet'
    # of the second). hint: PNG file name, loaded like LoadImage (uint8/255).
    "cn1": [dict(hint="hint.png", strength=0.8, start_percent=0.0, end_percent=0.5)],
    "cn2": [dict(hint="hint.png", strength=0.5, start_percent=0.0, end_percent=1.0),
            dict(hint="hint_b.png", strength=0.3, start_percent=0.25, end_percent=0.75)],
}
E2E_SPEC = dict(sampler="euler", scheduler="sgm_uniform", steps=4, cfg=1.0, denoise=1.0)


# ---------------------------------------------------------------------------------------------------- key maps
def controlnet_module_map(cfg):
    """diffusers ControlNetModel module prefix -> original (cldm / ControlNet-repo) prefix."""
    ucfg = dict(cfg, up_block_types=UNET_CFG["up_block_types"])
    m = {k: v for k, v in km.unet_module_map(ucfg).items()
         if not k.startswith(("up_blocks.", "conv_norm_out", "conv_out"))}
    nb = 2 * (len(cfg["conditioning_embedding_out_channels"]) - 1)
    m["controlnet_cond_embedding.conv_in"] = "input_hint_block.0"
    for i in range(nb):
        m[f"controlnet_cond_embedding.blocks.{i}"] = f"input_hint_block.{2 * (i + 1)}"
    m["controlnet_cond_embedding.conv_out"] = f"input_hint_block.{2 * (nb + 1)}"
    n_res = 1 + len(cfg["block_out_channels"]) * cfg["layers_per_block"] + len(cfg["block_out_channels"]) - 1
    for i in range(n_res):
        m[f"controlnet_down_blocks.{i}"] = f"zero_convs.{i}.0"
    m["controlnet_mid_block"] = "middle_block_out.0"
    return m


def controlnet_to_sgm(sd, cfg, prefix=""):
    modmap = controlnet_module_map(cfg)
    return {prefix + km.unet_diffusers_to_sgm_key(k, modmap): v for k, v in sd.items()}


def comfy_controlnet_specific_keys(diffusers_sd):
    """The ControlNet-specific part of ComfyUI comfy/controlnet.py load_controlnet_state_dict (diffusers branch),
    rewritten from its loops: controlnet_down_blocks.N -> zero_convs.N.0; conv_in -> input_hint_block.0,
    blocks.{c-1} -> input_hint_block.{2c} while present, then conv_out -> input_hint_block.{2c};
    controlnet_mid_block -> middle_block_out.0. (Shared UNet parts use comfy.utils.unet_to_diffusers.)"""
    keys = {"controlnet_mid_block.weight": "middle_block_out.0.weight",
            "controlnet_mid_block.bias": "middle_block_out.0.bias"}
    count = 0
    while True:
        k_w = f"controlnet_down_blocks.{count}.weight"
        if k_w not in diffusers_sd:
            break
        for s in (".weight", ".bias"):
            keys[f"controlnet_down_blocks.{count}{s}"] = f"zero_convs.{count}.0{s}"
        count += 1
    count, loop = 0, True
    while loop:
        for s in (".weight", ".bias"):
            k_in = "controlnet_cond_embedding.conv_in" + s if count == 0 else f"controlnet_cond_embedding.blocks.{count - 1}{s}"
            k_out = f"input_hint_block.{count * 2}{s}"
            if k_in not in diffusers_sd:
                k_in = "controlnet_cond_embedding.conv_out" + s
                loop = False
            keys[k_in] = k_out
        count += 1
    return keys


# ---------------------------------------------------------------------------------------------------- images
def make_hint_images(out):
    """hint_input.png: a small synthetic RGB picture; hint.png: its Canny edge map (RGB, 0/255), 64x64;
    hint_b.png: a 96x80 (WxH) smooth pattern (exercises the center-crop + nearest-exact resize to 64x64)."""
    import cv2
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    img = np.zeros((64, 64, 3), np.float32)
    img[..., 0] = 40 + 150 * ((xx - 22) ** 2 + (yy - 26) ** 2 < 15 ** 2)
    img[..., 1] = 60 + 120 * ((xx > 34) & (xx < 58) & (yy > 8) & (yy < 40)) + xx
    img[..., 2] = 200 - 140 * (np.abs(xx - yy - 20) < 6) - yy
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, 0.4 * 255, 0.8 * 255)          # controlnet_aux CannyDetector convention
    edges_rgb = np.repeat(edges[:, :, None], 3, axis=2)
    Image.fromarray(rgb).save(os.path.join(out, "hint_input.png"))
    Image.fromarray(edges_rgb).save(os.path.join(out, "hint.png"))
    yb, xb = np.mgrid[0:80, 0:96].astype(np.float32)
    b = np.stack([127.5 + 127.5 * np.sin(xb / 7.0), 127.5 + 127.5 * np.cos(yb / 5.0 + xb / 11.0),
                  (xb * 2 + yb) % 256], -1)
    Image.fromarray(np.clip(b, 0, 255).astype(np.uint8)).save(os.path.join(out, "hint_b.png"))
    return int((edges > 0).sum())


def load_image(path):   # ComfyUI LoadImage: RGB uint8 / 255 -> [1, H, W, 3] float32
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255.0)[None]


# ---------------------------------------------------------------------------------------------------- ComfyUI rules
def percent_to_sigma(ms, percent):   # comfy/model_sampling.py ModelSamplingDiscrete.percent_to_sigma
    if percent <= 0.0:
        return 999999999.9
    if percent >= 1.0:
        return 0.0
    percent = 1.0 - percent
    return ms.sigma(torch.tensor(percent * 999.0)).item()


def cn_forward(cn, xc, t, ctx, pooled, time_ids, hint):
    with torch.no_grad():
        down, mid = cn(xc, t, encoder_hidden_states=ctx, controlnet_cond=hint, conditioning_scale=1.0,
                       added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)
    return list(down), mid


def make_cn_denoiser(unet, cn, cond, chain, ms, log):
    """comfy/samplers.py calc_cond_batch -> ControlNet.get_control (comfy/controlnet.py) -> UNet apply_control.
    chain: list of dicts with cond_hint, strength, timestep_range (sigmas), in application order."""
    ctx, pooled, tids = cond

    def model(x, sigma):
        xc = x / (sigma.view(-1, 1, 1, 1) ** 2 + 1.0 ** 2) ** 0.5          # EPS.calculate_input (UNet and CN)
        t = ms.timestep(sigma).float()
        control, flags = None, []
        for c in chain:   # get_control recurses into previous_controlnet first, so the first applied runs first
            r0, r1 = c["timestep_range"]
            active = not (bool(sigma[0] > r0) or bool(sigma[0] < r1))     # skip if sigma > range[0] or < range[1]
            flags.append(active)
            if not active:
                continue
            down, mid = cn_forward(cn, xc, t, ctx, pooled, tids, c["cond_hint"])
            out = [d * c["strength"] for d in down] + [mid * c["strength"]]  # control_merge: x *= strength
            control = out if control is None else [p + o for p, o in zip(control, out)]   # prev_val + o[i]
        with torch.no_grad():
            eps = unet(xc, t, encoder_hidden_states=ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": tids},
                       down_block_additional_residuals=None if control is None else tuple(control[:-1]),
                       mid_block_additional_residual=None if control is None else control[-1]).sample.float()
        den = x - eps * sigma.view(-1, 1, 1, 1)                              # EPS.calculate_denoised
        log["timesteps"].append(float(t[0]))
        log["active"].append(flags)
        log["control"].append(control)
        log["denoised"].append(den.clone())
        return den
    return model


# ---------------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "controlnet-tiny"))
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    out, seed = args.out, args.seed
    os.makedirs(out, exist_ok=True)
    tiny = os.path.join(HERE, "sdxl-tiny")

    import diffusers
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    # ------------------------------------------------------------------------------------------ model + files
    cn = ControlNetModel(**CN_CFG).eval()
    km.perturb_module(cn, seed + SEED_COMPONENT)   # every parameter, the zero convs included, drawn non-zero
    fp16_round(cn)
    zero_conv_keys = [k for k in cn.state_dict() if k.startswith(("controlnet_down_blocks.", "controlnet_mid_block."))
                      or k.startswith("controlnet_cond_embedding.conv_out.")]
    assert all(cn.state_dict()[k].abs().min() > 0 for k in zero_conv_keys if k.endswith("weight"))
    ccfg = {k: v for k, v in dict(cn.config).items() if not k.startswith("_")}
    dd = os.path.join(out, "diffusers")
    os.makedirs(dd, exist_ok=True)
    cn.save_config(dd)
    cn_h = half_sd(cn)
    # size budget (< 3 MB): the diffusers folder holds the F32 file (the dtype of diffusers' default file name in real
    # SDXL ControlNet repos) and controlnet_fp32.safetensors is a relative symlink to it (as sdxl-tiny's
    # unet_diffusers.safetensors); F16 is covered by controlnet_sgm.safetensors. Values are fp16-representable.
    for stale in ("diffusion_pytorch_model.fp16.safetensors",):
        if os.path.exists(os.path.join(dd, stale)):
            os.remove(os.path.join(dd, stale))
    st_save({k: v.float() for k, v in cn_h.items()}, os.path.join(dd, "diffusion_pytorch_model.safetensors"))
    link = os.path.join(out, "controlnet_fp32.safetensors")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join("diffusers", "diffusion_pytorch_model.safetensors"), link)
    sgm = dict(sorted(controlnet_to_sgm(cn_h, ccfg).items()))
    st_save(sgm, os.path.join(out, "controlnet_sgm.safetensors"))
    modmap = controlnet_module_map(ccfg)
    keymap = {k: km.unet_diffusers_to_sgm_key(k, modmap) for k in cn_h}

    # ------------------------------------------------------------------------------------------ verification
    ver = {}
    back = convert_controlnet_checkpoint(dict(sgm), {"layers_per_block": ccfg["layers_per_block"]})
    back_p = convert_controlnet_checkpoint({"control_model." + k: v for k, v in sgm.items()},
                                           {"layers_per_block": ccfg["layers_per_block"]})
    for name, b in (("no_prefix", back), ("control_model_prefix", back_p)):
        b = {k: v for k, v in b.items() if v is not None}
        missing = sorted(set(cn_h) - set(b))
        extra = sorted(set(b) - set(cn_h))
        bad = [k for k in b if k in cn_h and not torch.equal(b[k], cn_h[k])]
        ver[f"diffusers_convert_controlnet_checkpoint_{name}"] = {
            "check": "diffusers.loaders.single_file_utils.convert_controlnet_checkpoint(controlnet_sgm) vs the diffusers state dict",
            "converted": len(b), "missing": missing, "unexpected": extra, "mismatched": bad,
            "ok": not extra and not bad and all(k.startswith("add_embedding.") for k in missing),
            "note": "diffusers' converter maps only DIFFUSERS_TO_LDM_MAPPING['controlnet']['layers'] (no label_emb -> add_embedding), "
                    "so add_embedding.* (= label_emb.0.0 / label_emb.0.2, the UNet's rule) is expected to be missing"}
    comfy = comfy_controlnet_specific_keys(cn_h)
    ours = {k: v for k, v in keymap.items() if k.startswith("controlnet_")}
    ver["comfyui_controlnet_specific_keys"] = {
        "check": "our map of controlnet_* keys == ComfyUI load_controlnet_state_dict's loops (re-implemented)",
        "keys": len(comfy), "ok": comfy == ours,
        "diff": sorted(set(comfy.items()) ^ set(ours.items()))}
    ver["unet_shared_keys"] = {"check": "shared UNet parts use sdxl_keymap.unet_module_map (verified in sdxl-tiny against "
                                        "UNet2DConditionModel.from_single_file); the UNet's own 'input_blocks.*' / 'middle_block.*' / "
                                        "'time_embed.*' / 'label_emb.*' names carry over 1:1",
                               "ok": all(keymap[k] == km.unet_diffusers_to_sgm_key(k, km.unet_module_map(dict(UNET_CFG)))
                                         for k in cn_h if not k.startswith("controlnet_"))}
    re = ControlNetModel.from_pretrained(dd, torch_dtype=torch.float32).eval()
    ver["diffusers_from_pretrained"] = {"ok": all(torch.equal(re.state_dict()[k], cn.state_dict()[k]) for k in cn.state_dict())}
    print(json.dumps({k: v["ok"] for k, v in ver.items()}), flush=True)

    # ------------------------------------------------------------------------------------------ hints
    edge_pixels = make_hint_images(out)
    hint_img = load_image(os.path.join(out, "hint.png"))        # [1, 64, 64, 3]
    hint_b_img = load_image(os.path.join(out, "hint_b.png"))    # [1, 80, 96, 3]

    # ------------------------------------------------------------------------------------------ part 2: single forward
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel.from_pretrained(os.path.join(tiny, "diffusers"), subfolder="unet",
                                                torch_dtype=torch.float32).float().eval()
    tref = load_file(os.path.join(tiny, "reference.safetensors"))
    ref, desc = {}, {}

    def R(name, t, d):
        ref[name] = t.detach().float().contiguous().clone()
        desc[name] = d

    gx = torch.Generator().manual_seed(seed + 21)
    x = torch.randn(2, 4, 8, 8, generator=gx)
    ts = torch.tensor([999.0, 250.0])
    ctx, pooled, time_ids = tref["cond.context"], tref["te2.pooled"], tref["unet.in.time_ids"]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    smooth = torch.stack([0.5 + 0.5 * torch.sin(9 * xx + 2 * yy), xx * yy, 0.5 + 0.5 * torch.cos(12 * yy - 5 * xx)])
    hint = torch.stack([hint_img[0].movedim(-1, 0), smooth])
    R("cn.in.x", x, "ControlNet (and UNet) input sample, already scaled (x/sqrt(sigma^2+1)); torch.randn seed+21")
    R("cn.in.timesteps", ts, "timesteps (float) per batch item")
    R("cn.in.context", ctx, "encoder_hidden_states [2,77,48] = sdxl-tiny reference cond.context")
    R("cn.in.text_embeds", pooled, "pooled text embeds [2,16] = sdxl-tiny te2.pooled")
    R("cn.in.time_ids", time_ids, "time ids [2,6] = sdxl-tiny unet.in.time_ids")
    R("cn.in.hint", hint, "hint NCHW [2,3,64,64] in 0..1 at image resolution (8x latent): item 0 = hint.png/255 "
                          "(Canny edges), item 1 = a smooth float pattern")
    acts = {}
    hooks = [cn.controlnet_cond_embedding.register_forward_hook(lambda m, i, o: acts.__setitem__("cond_embedding", o.detach().clone())),
             cn.conv_in.register_forward_hook(lambda m, i, o: acts.__setitem__("conv_in", o.detach().clone())),
             cn.mid_block.register_forward_hook(lambda m, i, o: acts.__setitem__("mid_block", o.detach().clone()))]
    down, mid = cn_forward(cn, x, ts, ctx, pooled, time_ids, hint)
    for h in hooks:
        h.remove()
    R("cn.act.cond_embedding", acts["cond_embedding"], "controlnet_cond_embedding(hint) = input_hint_block output [2,16,8,8] "
      "(conv_in+SiLU, 6 x (conv+SiLU) with stride 2 at blocks 1,3,5, conv_out; no activation after conv_out)")
    R("cn.act.conv_in", acts["conv_in"], "conv_in(x) (input_blocks.0.0) before the hint embedding is added")
    R("cn.act.mid_block", acts["mid_block"], "mid_block output before controlnet_mid_block (middle_block_out.0)")
    shapes = []
    for i, d in enumerate(down):
        R(f"cn.out.down.{i}", d, f"residual {i}: controlnet_down_blocks.{i} (zero_convs.{i}.0, 1x1 conv) applied to the "
          f"hidden state after input block {i} (diffusers down_block_res_samples[{i}]); conditioning_scale 1.0")
        shapes.append(list(d.shape))
    R("cn.out.mid", mid, "controlnet_mid_block (middle_block_out.0, 1x1 conv) of the mid block output; conditioning_scale 1.0")
    with torch.no_grad():
        eps = unet(x, ts, encoder_hidden_states=ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids},
                   down_block_additional_residuals=tuple(d * UNET_RESIDUAL_SCALE for d in down),
                   mid_block_additional_residual=mid * UNET_RESIDUAL_SCALE).sample
        eps0 = unet(x, ts, encoder_hidden_states=ctx,
                    added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
        down07, mid07 = [], None
        d2, m2 = cn(x, ts, encoder_hidden_states=ctx, controlnet_cond=hint, conditioning_scale=UNET_RESIDUAL_SCALE,
                    added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)
        assert all(torch.equal(a * UNET_RESIDUAL_SCALE, b) for a, b in zip(down + [mid], list(d2) + [m2]))
    R(f"cn.unet_eps_scale{UNET_RESIDUAL_SCALE}", eps,
      f"sdxl-tiny UNet eps on cn.in.* with residuals cn.out.down.i * {UNET_RESIDUAL_SCALE} added to the skip connections "
      f"(down_block_res_samples[i]) and cn.out.mid * {UNET_RESIDUAL_SCALE} added to the mid block output")
    R("cn.unet_eps_nocontrol", eps0, "the same UNet call without control (to see the residuals matter)")
    # the same forward from the original-layout file (converted back by diffusers + label_emb by our rule)
    back_sd = {k: v for k, v in back.items() if v is not None}
    back_sd["add_embedding.linear_1.weight"] = sgm["label_emb.0.0.weight"]
    back_sd["add_embedding.linear_1.bias"] = sgm["label_emb.0.0.bias"]
    back_sd["add_embedding.linear_2.weight"] = sgm["label_emb.0.2.weight"]
    back_sd["add_embedding.linear_2.bias"] = sgm["label_emb.0.2.bias"]
    cn_b = ControlNetModel(**CN_CFG).eval()
    cn_b.load_state_dict({k: v.float() for k, v in back_sd.items()}, strict=True)
    db, mb = cn_forward(cn_b, x, ts, ctx, pooled, time_ids, hint)
    ver["sgm_file_forward"] = {"check": "ControlNetModel loaded from controlnet_sgm (diffusers converter + label_emb) gives "
                                        "identical cn.out.*", "ok": all(torch.equal(a, b) for a, b in zip(down + [mid], db + [mb]))}
    st_save(ref, os.path.join(out, "reference.safetensors"))

    # ------------------------------------------------------------------------------------------ part 3: e2e
    ms = msf.ModelSamplingDiscrete()
    te1, te2, unet_e, vae = msf.load_models(os.path.join(tiny, "diffusers"))
    ids1, ids2, ectx, epooled = msf.encode_text(te1, te2, msf.PROMPT)
    H = W = 8
    etids = torch.tensor([[H * 8, W * 8, 0, 0, H * 8, W * 8]], dtype=torch.float32)
    sampling_ref = load_file(os.path.join(HERE, "sampling", "e2e.safetensors"))
    e2e, cases = {}, {}
    for key, chain_spec in E2E_CASES.items():
        sigmas = msf.ksampler_sigmas(ms, E2E_SPEC["scheduler"], E2E_SPEC["steps"], E2E_SPEC["denoise"])
        latent = torch.zeros(1, 4, H, W)
        noise = torch.randn(latent.size(), dtype=latent.dtype, layout=latent.layout,
                            generator=torch.manual_seed(msf.SEED), device="cpu")
        md = msf.max_denoise(ms, sigmas)
        xs = msf.noise_scaling(sigmas[0], noise.clone(), latent, md)
        chain, chain_rec = [], []
        for j, c in enumerate(chain_spec):
            img = load_image(os.path.join(out, c["hint"]))
            cond_hint = comfy_common_upscale(img.movedim(-1, 1), W * 8, H * 8, "nearest-exact", "center")
            rng = (percent_to_sigma(ms, c["start_percent"]), percent_to_sigma(ms, c["end_percent"]))
            chain.append(dict(cond_hint=cond_hint, strength=c["strength"], timestep_range=rng))
            resized = tuple(img.shape[1:3]) != (H * 8, W * 8)
            if resized:   # identity resizes (64x64 -> 64x64) are not stored: cond_hint == the PNG / 255
                e2e[f"{key}.cn{j}.cond_hint"] = cond_hint
            chain_rec.append(dict(c, image_hw=list(img.shape[1:3]), cond_hint_shape=list(cond_hint.shape),
                                  cond_hint_is_png_over_255=not resized,
                                  cond_hint_tensor=f"{key}.cn{j}.cond_hint" if resized else None,
                                  timestep_range_sigma=[rng[0], rng[1]]))
        log = {"timesteps": [], "active": [], "control": [], "denoised": []}
        model = make_cn_denoiser(unet_e, cn, (ectx, epooled, etids), chain, ms, log)
        samples = msf.sample_euler(model, xs, sigmas)
        latent_out = samples.float() / msf.LATENT_SCALE
        with torch.no_grad():
            dec = vae.decode(latent_out).sample.float()
        image = torch.clamp((dec + 1.0) / 2.0, min=0.0, max=1.0).movedim(1, -1)
        u8 = np.clip(255. * image[0].numpy(), 0, 255).astype(np.uint8)
        Image.fromarray(u8).save(os.path.join(out, f"{key}.png"))
        active = torch.tensor(log["active"], dtype=torch.int32)                 # [steps, n_controlnets]
        for name, t in (("context", ectx), ("pooled", epooled), ("time_ids", etids), ("sigmas", sigmas),
                        ("timesteps", torch.tensor(log["timesteps"])), ("noise", noise), ("x_start", xs),
                        ("active", active), ("samples_scaled", samples), ("latent", latent_out),
                        ("decoded_raw", dec), ("image_u8", torch.from_numpy(u8.copy()))):
            e2e[f"{key}.{name}"] = t
        e2e[f"{key}.ids_te1"], e2e[f"{key}.ids_te2"] = ids1.int(), ids2.int()
        for i, (ctl, den) in enumerate(zip(log["control"], log["denoised"])):
            e2e[f"{key}.step{i}.denoised"] = den
            if ctl is not None:
                for j, d in enumerate(ctl[:-1]):
                    e2e[f"{key}.step{i}.control.down.{j}"] = d
                e2e[f"{key}.step{i}.control.mid"] = ctl[-1]
        same_as_a = bool(torch.equal(latent_out, sampling_ref["a.latent"]))
        cases[key] = {"chain": chain_rec, "sigmas": msf.fl(sigmas), "timesteps": log["timesteps"],
                      "active_per_step": log["active"],
                      "sigma_ties_boundary_per_step": [[bool(float(sigmas[i]) in c["timestep_range"]) for c in chain]
                                                       for i in range(len(sigmas) - 1)],
                      "png": f"{key}.png",
                      "latent_absmax": float(latent_out.abs().max()),
                      "max_abs_diff_vs_sampling_case_a_latent": float((latent_out - sampling_ref["a.latent"]).abs().max()),
                      "identical_to_sampling_case_a": same_as_a}
        print(key, cases[key]["active_per_step"], cases[key]["max_abs_diff_vs_sampling_case_a_latent"], flush=True)
    # sanity: the pipeline without control reproduces sampling case a bit for bit
    log0 = {"timesteps": [], "active": [], "control": [], "denoised": []}
    sig0 = msf.ksampler_sigmas(ms, "sgm_uniform", 4, 1.0)
    n0 = torch.randn(1, 4, 8, 8, generator=torch.manual_seed(msf.SEED))
    lat0 = msf.sample_euler(make_cn_denoiser(unet_e, cn, (ectx, epooled, etids), [], ms, log0), 
                            msf.noise_scaling(sig0[0], n0, torch.zeros(1, 4, 8, 8), msf.max_denoise(ms, sig0)), sig0) / msf.LATENT_SCALE
    ver["e2e_no_control_equals_sampling_case_a"] = {"ok": bool(torch.equal(lat0, sampling_ref["a.latent"]))}
    st_save({k: (v.float() if v.is_floating_point() else v).contiguous().clone() for k, v in e2e.items()},
            os.path.join(out, "e2e.safetensors"))

    # ------------------------------------------------------------------------------------------ manifest
    def fileinfo(name, d):
        return {"file": name, "bytes": os.path.getsize(os.path.join(out, name)), "description": d}

    n_levels = len(ccfg["block_out_channels"])
    residual_layout = []
    idx = 0
    residual_layout.append({"index": 0, "after": "conv_in (+ hint embedding)", "sgm_input_block": 0, "shape_b1": shapes[0][1:]})
    idx = 1
    for l in range(n_levels):
        for j in range(ccfg["layers_per_block"]):
            residual_layout.append({"index": idx, "after": f"down_blocks.{l}.resnets.{j}" + (f" + attentions.{j}" if "CrossAttn" in ccfg["down_block_types"][l] else ""),
                                    "sgm_input_block": idx, "shape_b1": shapes[idx][1:]})
            idx += 1
        if l < n_levels - 1:
            residual_layout.append({"index": idx, "after": f"down_blocks.{l}.downsamplers.0", "sgm_input_block": idx,
                                    "shape_b1": shapes[idx][1:]})
            idx += 1
    manifest = {
        "generator": "Tests/Fixtures/make_controlnet_fixtures.py", "seed": seed,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
        "weights": {"rule": "sdxl_keymap.perturb_module(controlnet, seed + 10) (the sdxl-tiny rule: ndim>=2 -> N(0,1)/sqrt(fan_in); "
                            "1-D *norm*.weight -> 1+0.1N; other 1-D -> 0.05N; per diffusers key), then rounded to fp16. "
                            "The 'zero' convs (controlnet_down_blocks.*, controlnet_mid_block, controlnet_cond_embedding.conv_out) are "
                            "drawn like every other weight: NON-zero, so a wrong residual fails the tests. Independent of the UNet's weights.",
                    "reference_compute": "fp32 on the fp16-rounded weights"},
        "config": ccfg,
        "config_notes": {
            "matches_unet": "block_out_channels, layers_per_block, transformer_layers_per_block, heads, cross_attention_dim, "
                            "text_time add-embedding, norm groups, use_linear_projection: identical to sdxl-tiny/diffusers/unet",
            "hint_channels": f"conditioning_embedding_out_channels {list(HINT_CHANNELS)} (real SDXL ControlNets: [16, 32, 96, 256]). "
                             "ComfyUI's comfy/cldm/cldm.py ControlNet HARD-CODES 16/32/96/256 in input_hint_block, so this tiny file "
                             "would not load in ComfyUI (nor would its tiny UNet config be detected); read the channel counts from the "
                             "weight shapes in Swift.",
            "num_residuals": len(down),
        },
        "files": [
            fileinfo("diffusers/config.json", "diffusers ControlNetModel config"),
            fileinfo("diffusers/diffusion_pytorch_model.safetensors", "diffusers layout, F32 (the default file name of real diffusers SDXL "
                     "ControlNet repos; their F16 copy is the .fp16.safetensors variant). Values are the fp16-rounded weights"),
            {"file": "controlnet_fp32.safetensors", "symlink_to": "diffusers/diffusion_pytorch_model.safetensors",
             "description": "diffusers keys, F32: a relative symlink (size budget), same bytes as the diffusers folder's file"},
            fileinfo("controlnet_sgm.safetensors", "original ControlNet-repo / cldm layout, F16, NO 'control_model.' prefix "
                     "(ComfyUI accepts both 'zero_convs.0.0.weight' and 'control_model.zero_convs.0.0.weight'; diffusers' "
                     "convert_controlnet_checkpoint accepts both too: strip 'control_model.' if present)"),
            fileinfo("reference.safetensors", "single-forward references, F32 (cn.*)"),
            fileinfo("e2e.safetensors", "end-to-end ComfyUI-rule runs (cn1.*, cn2.*), F32 (ids, active: I32; image_u8: U8)"),
            fileinfo("hint_input.png", "64x64 RGB synthetic picture (Canny source)"),
            fileinfo("hint.png", "64x64 RGB Canny edge map of hint_input.png: cv2.Canny(cv2.cvtColor(rgb, RGB2GRAY), 0.4*255, 0.8*255) "
                     f"repeated on 3 channels, 0/255 ({edge_pixels} edge pixels)"),
            fileinfo("hint_b.png", "96x80 (WxH) RGB smooth pattern: cond hint is center-cropped to 80x80 and resized (nearest-exact) to 64x64"),
            fileinfo("cn1.png", "SaveImage bytes of case cn1"), fileinfo("cn2.png", "SaveImage bytes of case cn2"),
        ],
        "key_map": {
            "rule": "diffusers -> original: UNet parts by sdxl_keymap.unet_module_map (down/mid/time/label only) + "
                    "controlnet_cond_embedding.conv_in -> input_hint_block.0, controlnet_cond_embedding.blocks.i -> input_hint_block.{2i+2}, "
                    "controlnet_cond_embedding.conv_out -> input_hint_block.{2*len(blocks)+2} (=14), controlnet_down_blocks.N -> zero_convs.N.0, "
                    "controlnet_mid_block -> middle_block_out.0. Odd input_hint_block indices are the SiLUs (no weights).",
            "sources": ["ComfyUI comfy/controlnet.py load_controlnet_state_dict (diffusers branch loops)",
                        "diffusers loaders/single_file_utils.py convert_controlnet_checkpoint + DIFFUSERS_TO_LDM_MAPPING['controlnet']",
                        "diffusers pipelines/stable_diffusion/convert_from_ckpt.py convert_ldm_unet_checkpoint(controlnet=True)"],
            "modules": {k: v for k, v in modmap.items()},
            "tensors": keymap,
        },
        "verification": ver,
        "residual_layout": residual_layout,
        "rules": {
            "hint_input": "The hint enters at image resolution (8x the latent), RGB, NCHW, values 0..1 (ComfyUI: IMAGE [B,H,W,3] 0..1 "
                          "movedim(-1,1), no normalisation; diffusers StableDiffusionXLControlNetPipeline: control_image_processor = "
                          "VaeImageProcessor(do_convert_rgb=True, do_normalize=False) -> also 0..1). input_hint_block: conv3x3(3->c0)+SiLU, "
                          "then per step i: conv3x3(c_i->c_i)+SiLU, conv3x3 stride 2 pad 1 (c_i->c_{i+1})+SiLU (3 stride-2 convs: /8), "
                          "conv3x3(c_last -> block_out_channels[0]), no activation. The result is ADDED to conv_in(x) (input_blocks.0 output) "
                          "before residual 0 and before down block 0 (cldm: h = input_blocks[0](x) + guided_hint).",
            "controlnet_inputs": "ComfyUI ControlNet.get_control: the SAME x (x_noisy / sqrt(sigma^2+1), EPS.calculate_input), "
                                 "timestep = model_sampling.timestep(sigma), context = cond['c_crossattn'] (or 'crossattn_controlnet' if set), "
                                 "y = the SDXL adm vector (extra_conds ['y']) as the UNet; diffusers: same sample/timestep/encoder_hidden_states/"
                                 "text_embeds+time_ids.",
            "outputs": "cldm returns {'output': [zero_convs[i](h_i) for each input block i], 'middle': [middle_block_out(h_mid)]}. "
                       "control_merge multiplies every tensor by strength (x *= strength; fp32 tensor times the python float) and, "
                       "with a previous ControlNet, adds: o[i] = prev_val + o[i].",
            "where_added": "comfy/ldm/modules/diffusionmodules/openaimodel.py UNetModel.forward: after the middle block "
                           "h = apply_control(h, control, 'middle') (h += middle[0]); in the up path, for each output block: hsp = hs.pop(); "
                           "hsp = apply_control(hsp, control, 'output') -> ctrl = control['output'].pop(), i.e. the LAST residual goes to the "
                           "LAST skip (both popped from the end), so residual i is added to the skip connection saved after input block i "
                           "(= diffusers down_block_res_samples[i] + down_block_additional_residuals[i]; mid: sample + mid_block_additional_residual). "
                           "'input' control (T2I adapters) is empty for ControlNets. The residuals do not change the down path itself.",
            "gating": "comfy/samplers.py pre_run_control: percent_to_timestep_function = model_sampling.percent_to_sigma; ControlBase.pre_run: "
                      "timestep_range = (percent_to_sigma(start_percent), percent_to_sigma(end_percent)). ModelSamplingDiscrete.percent_to_sigma(p): "
                      "p <= 0 -> 999999999.9; p >= 1 -> 0.0; else sigma(torch.tensor((1-p)*999.0)).item() (log-linear interpolation of the "
                      "float32 log_sigmas table, as the schedules). ControlNet.get_control: `if t[0] > timestep_range[0] or t[0] < timestep_range[1]: "
                      "return control_prev` (t = sigma, float32 tensor vs python float). So ACTIVE iff percent_to_sigma(end) <= sigma <= "
                      "percent_to_sigma(start): INCLUSIVE at both ends. Note: sgm_uniform's sigmas are sigma(linspace(999, 0, steps+1)[i]) and "
                      "percent_to_sigma uses the same float32 function, so with 4 steps the 25/50/75% boundaries tie EXACTLY with steps 1/2/3 "
                      "(749.25, 499.5, 249.75): cn1 step 2 and cn2's second ControlNet at steps 1 and 3 are active only because of the inclusive rule.",
            "hint_resize": "ControlNet.get_control: cond_hint = comfy.utils.common_upscale(cond_hint_original, x.shape[3]*8, x.shape[2]*8, "
                           "self.upscale_algorithm, 'center') with upscale_algorithm = 'nearest-exact' (ControlBase default; compression_ratio 8), "
                           "recomputed only when the latent size changes; batch: broadcast_image_to (a batch-1 hint stays batch 1 and broadcasts). "
                           "common_upscale 'center': crop the larger aspect side symmetrically by round((old - old*(new_aspect/old_aspect))/2) "
                           "(width) or round((old - old*(old_aspect/new_aspect))/2) (height), then F.interpolate(mode='nearest-exact'). "
                           "hint_b.png 96x80 -> crop x = round((96 - 96*(1/1.2))/2) = 8 -> 80x80 -> 64x64.",
            "chaining": "ControlNetApplyAdvanced (nodes.py): c_net = control_net.copy().set_cond_hint(image.movedim(-1,1), strength, "
                        "(start_percent, end_percent)); c_net.set_previous_controlnet(the conditioning's existing 'control'); the same c_net object "
                        "is shared by positive and negative when they had the same previous control; control_apply_to_uncond False. get_control "
                        "first evaluates the previous controlnet (control_prev), then returns control_prev unchanged if this one is gated off, else "
                        "its own strength-scaled outputs + control_prev element-wise (prev_val + o[i]). Result: sum over active ControlNets of "
                        "strength_k * residuals_k(hint_k).",
            "strength_zero": "ControlNetApplyAdvanced returns the conditioning unchanged when strength == 0 (no ControlNet attached).",
            "cfg": "cfg 1.0 here: ComfyUI skips the uncond pass (math.isclose(cfg, 1)), so the ControlNet runs once per step on the positive cond.",
        },
        "reference": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""), "description": desc[k]}
                      for k, v in ref.items()],
        "e2e": {"spec": dict(E2E_SPEC, prompt=msf.PROMPT, seed=msf.SEED, latent_hw=[H, W], image_hw=[H * 8, W * 8],
                             model="Tests/Fixtures/sdxl-tiny/diffusers (UNet, text encoders, VAE) + this ControlNet"),
                "pipeline": "as Tests/Fixtures/sampling case a (manifest e2e.facts) plus the ControlNet rules above; per case: "
                            "<case>.{ids_te1, ids_te2, context, pooled, time_ids, sigmas, timesteps, noise, x_start, active [steps, n_cn] I32, "
                            "step<i>.denoised, step<i>.control.down.<j> / .mid (summed, strength-scaled residuals, only for steps with any active "
                            "ControlNet), cn<j>.cond_hint [1,3,64,64] (only when the hint PNG is not already 64x64), samples_scaled, "
                            "latent (VAE space), decoded_raw (VAE output before clamp), image_u8 [64,64,3] U8 (SaveImage: "
                            "clip(255*clamp((decoded_raw+1)/2,0,1)) truncated)}",
                "cases": cases,
                "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in e2e.items()}},
        "tolerances": {"single_forward": "max|a-b| <= 1e-4 * max(1, max|ref|) (fp32 with another summation order)",
                       "e2e_latent": "a few 1e-4 relative after 4 steps (as sampling/ e2e cases)",
                       "gating": "exact: compute the sigmas and percent_to_sigma in float32 exactly as ComfyUI (ties at 25/50/75%)"},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps({k: v["ok"] for k, v in ver.items()}, indent=1))
    tot = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(out) for fn in fns
              if not os.path.islink(os.path.join(dp, fn)))
    print("total bytes", tot)


if __name__ == "__main__":
    main()
