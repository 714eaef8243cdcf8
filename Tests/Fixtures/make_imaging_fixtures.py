#!/usr/bin/env python3
"""Regenerates the Imaging golden fixtures in Tests/Fixtures/imaging/.

Reference implementations (pinned in Tests/Fixtures/requirements-imaging.txt):
    torch==2.15.0  opencv-python-headless==5.0.0.93  scikit-image==0.26.0
    numpy==2.4.6   pillow==13.0.0
Run from anywhere:  python3 Tests/Fixtures/make_imaging_fixtures.py

What it writes (all raw arrays are little-endian, C order):
  * Photos from the scikit-image wheel (licences in imaging/LICENSES.md), downsized 2x with
    cv2.INTER_AREA (an exact 2x2 box average): <name>.png for people and <name>_rgb.bin
    (uint8 [H,W,3]) for the Swift tests, which must not depend on the PNG reader.
  * canny_<name>_<low>_<high>.bin: uint8 [H,W], 0 or 255, from
        gray = cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2GRAY)
        cv2.Canny(gray, low*255, high*255)        # apertureSize 3, L2gradient False
    which is how the ControlNet canny annotator (controlnet_aux CannyDetector) calls OpenCV.
    The Swift side receives the photo as Float u8/255 and converts back with
    u8 = clamp(round(x*255), 0, 255), which recovers the uint8 exactly.
  * scale_input.bin: float32 [2,13,17,3] (ComfyUI IMAGE layout [B,H,W,C]) from torch.rand.
    scale_<method>_<w>x<h>_<crop>.bin: float32 [2,h,w,3] = ComfyUI's ImageScale, i.e.
    comfy.utils.common_upscale on image.movedim(-1,1) (reproduced below, ComfyUI has no wheel),
    moved back to [B,H,W,C].
  * manifest.json describing every file and shape.
"""
import json
import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
import skimage
import skimage.data

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "imaging")

CANNY_THRESHOLDS = [(0.4, 0.8), (0.1, 0.3), (0.2, 0.5), (0.05, 0.15)]
SCALE_METHODS = ["nearest-exact", "bilinear", "bicubic", "area", "lanczos"]
# (width, height, crop) targets for a 13x17 (HxW) source
SCALE_TARGETS = [
    (29, 7, "disabled"), (37, 29, "disabled"), (5, 4, "disabled"), (17, 13, "disabled"),
    (34, 26, "disabled"), (8, 6, "disabled"), (1, 1, "disabled"), (3, 40, "disabled"),
    (11, 3, "disabled"), (15, 5, "disabled"),
    (29, 7, "center"), (10, 20, "center"), (40, 10, "center"), (16, 16, "center"),
]


def photos():
    out = {}
    for name in ["astronaut", "coffee"]:
        rgb = getattr(skimage.data, name)()
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        out[name] = np.ascontiguousarray(small, dtype=np.uint8)
    return out


def comfy_lanczos(samples, width, height):
    # comfy.utils.lanczos: truncating uint8 conversion, PIL LANCZOS, /255
    images = [Image.fromarray(np.clip(255. * image.movedim(0, -1).cpu().numpy(), 0, 255).astype(np.uint8))
              for image in samples]
    images = [image.resize((width, height), resample=Image.Resampling.LANCZOS) for image in images]
    images = [torch.from_numpy(np.array(image).astype(np.float32) / 255.0).movedim(-1, 0) for image in images]
    return torch.stack(images).to(samples.device, samples.dtype)


def comfy_common_upscale(samples, width, height, upscale_method, crop):
    # comfy.utils.common_upscale (4-D case), semantics reproduced verbatim
    if crop == "center":
        old_width = samples.shape[-1]
        old_height = samples.shape[-2]
        old_aspect = old_width / old_height
        new_aspect = width / height
        x = 0
        y = 0
        if old_aspect > new_aspect:
            x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
        s = samples.narrow(-2, y, old_height - y * 2).narrow(-1, x, old_width - x * 2)
    else:
        s = samples
    if upscale_method == "lanczos":
        return comfy_lanczos(s, width, height)
    return F.interpolate(s, size=(height, width), mode=upscale_method)


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"versions": {"torch": torch.__version__, "opencv": cv2.__version__,
                             "numpy": np.__version__, "scikit-image": skimage.__version__,
                             "pillow": Image.__version__},
                "photos": [], "canny": [], "scale": {}}

    for name, rgb in photos().items():
        h, w = rgb.shape[:2]
        Image.fromarray(rgb).save(os.path.join(OUT, f"{name}.png"))
        rgb.tofile(os.path.join(OUT, f"{name}_rgb.bin"))
        manifest["photos"].append({"name": name, "file": f"{name}_rgb.bin", "height": h, "width": w})
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        for low, high in CANNY_THRESHOLDS:
            edges = cv2.Canny(gray, low * 255, high * 255)
            assert edges.dtype == np.uint8 and edges.shape == (h, w)
            fname = f"canny_{name}_{low}_{high}.bin"
            edges.tofile(os.path.join(OUT, fname))
            manifest["canny"].append({"photo": name, "low": low, "high": high, "file": fname,
                                      "edge_pixels": int((edges > 0).sum())})

    g = torch.Generator().manual_seed(20240611)
    image = torch.rand(2, 13, 17, 3, generator=g, dtype=torch.float32)  # [B,H,W,C]
    image.numpy().astype("<f4").tofile(os.path.join(OUT, "scale_input.bin"))
    manifest["scale"] = {"input": {"file": "scale_input.bin", "shape": list(image.shape)}, "cases": []}
    samples = image.movedim(-1, 1)
    for method in SCALE_METHODS:
        for width, height, crop in SCALE_TARGETS:
            out = comfy_common_upscale(samples, width, height, method, crop).movedim(1, -1).contiguous()
            assert tuple(out.shape) == (2, height, width, 3)
            fname = f"scale_{method}_{width}x{height}_{crop}.bin"
            out.numpy().astype("<f4").tofile(os.path.join(OUT, fname))
            manifest["scale"]["cases"].append({"method": method, "width": width, "height": height,
                                               "crop": crop, "file": fname, "shape": list(out.shape)})

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
