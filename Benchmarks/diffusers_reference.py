"""The PyTorch / diffusers peer of `sdflow bench`: the same full-size SDXL components with random weights,
the same inputs and thread count, printing the same JSON lines.

    python3 Benchmarks/diffusers_reference.py unet --width 512 --height 512 --runs 3 [--threads 2] [--precision fp32|bf16]

Needs torch, diffusers, transformers (Tests/Fixtures/requirements.txt); no model download.
"""
import argparse, json, os, resource, statistics, sys, time

import torch


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unet_model():
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
        norm_num_groups=32)


def vae_model():
    from diffusers import AutoencoderKL
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                         layers_per_block=2, latent_channels=4, sample_size=1024, scaling_factor=0.13025)


def clip_models():
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    l = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                     num_attention_heads=12, hidden_act="quick_gelu", projection_dim=768))
    g = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                                   num_attention_heads=20, hidden_act="gelu", projection_dim=1280))
    return l, g


def timed(runs, fn):
    fn()  # warm-up (allocator, oneDNN primitive caches), as sdflow's first timed run also pays its own
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("component", choices=["unet", "vae", "clip", "pipeline"])
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--channels-last", action="store_true", help="run the VAE in channels_last (PyTorch's fastest CPU layout)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    h, w = a.height // 8, a.width // 8
    with torch.inference_mode():
        if a.component == "unet":
            m = unet_model().to(dtype).eval()
            x = torch.randn(1, 4, h, w, dtype=dtype)
            ctx = torch.randn(1, 77, 2048, dtype=dtype)
            added = {"text_embeds": torch.randn(1, 1280, dtype=dtype),
                     "time_ids": torch.tensor([[a.height, a.width, 0, 0, a.height, a.width]], dtype=dtype)}
            fn = lambda: m(x, torch.tensor([999.0]), encoder_hidden_states=ctx, added_cond_kwargs=added)
        elif a.component == "vae":
            m = vae_model().to(dtype).eval()
            z = torch.randn(1, 4, h, w, dtype=dtype)
            if a.channels_last:
                m = m.to(memory_format=torch.channels_last)
                z = z.contiguous(memory_format=torch.channels_last)
            fn = lambda: m.decode(z)
        elif a.component == "clip":
            l, g = clip_models()
            l, g = l.to(dtype).eval(), g.to(dtype).eval()
            ids = torch.tensor([[49406] + [320] * 20 + [49407] * 56])
            fn = lambda: (l(ids, output_hidden_states=True), g(ids, output_hidden_states=True))
        else:
            unet, vae = unet_model().to(dtype).eval(), vae_model().to(dtype).eval()
            if a.channels_last:
                vae = vae.to(memory_format=torch.channels_last)
            l, g = clip_models()
            l, g = l.to(dtype).eval(), g.to(dtype).eval()
            ids = torch.tensor([[49406] + [320] * 20 + [49407] * 56])
            sigmas = [14.61464, 4.086081, 1.6155803, 0.69514954, 0.0]
            timesteps = [999.0, 749.0, 500.0, 250.0]

            def fn():
                ctx = torch.cat([l(ids, output_hidden_states=True).hidden_states[-2],
                                 g(ids, output_hidden_states=True).hidden_states[-2]], dim=-1)
                pooled = g(ids).text_embeds
                added = {"text_embeds": pooled, "time_ids": torch.tensor([[a.height, a.width, 0, 0, a.height, a.width]], dtype=dtype)}
                x = torch.randn(1, 4, h, w, dtype=dtype) * (1 + sigmas[0] ** 2) ** 0.5
                for i, t in enumerate(timesteps):
                    s = sigmas[i]
                    eps = unet(x / (s * s + 1) ** 0.5, torch.tensor([t]), encoder_hidden_states=ctx, added_cond_kwargs=added).sample
                    x = x + (eps) * (sigmas[i + 1] - s)
                vae.decode(x / 0.13025)
        if a.no_warmup:
            times = []
            for _ in range(a.runs):
                t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
        else:
            times = timed(a.runs, fn)
    st = sorted(times)
    print(json.dumps({"component": a.component, "width": a.width if a.component != "clip" else 0,
                      "height": a.height if a.component != "clip" else 0, "precision": a.precision,
                      "threads": a.threads, "channels_last": a.channels_last, "median_s": statistics.median(times), "min_s": st[0], "max_s": st[-1],
                      "peak_rss_mb": round(peak_rss_mb()), "impl": f"torch {torch.__version__}"}, sort_keys=True))


if __name__ == "__main__":
    main()
