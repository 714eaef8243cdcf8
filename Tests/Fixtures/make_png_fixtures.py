"""Writes small PNGs in every colour type / bit depth with Pillow and OpenCV, plus the expected
samples (as libpng expands them: palette -> RGB(A), tRNS -> alpha, 1-bit gray -> 0/255) in JSON.
Run from the repository root: python3 Tests/Fixtures/make_png_fixtures.py  (Pillow, numpy, opencv-python-headless)."""
import json, os
import numpy as np
from PIL import Image
import cv2

out = os.path.join(os.path.dirname(__file__), "png")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
W, H = 5, 4
cases = {}

def save(name, expected, channels, depth):
    cases[name] = {"width": W, "height": H, "channels": channels, "bit_depth": depth,
                   "samples": [int(v) for v in np.asarray(expected).reshape(-1)]}

g8 = rng.integers(0, 256, (H, W), dtype=np.uint8)
Image.fromarray(g8, "L").save(f"{out}/gray8.png"); save("gray8.png", g8, 1, 8)

g1 = (rng.integers(0, 2, (H, W)) * 255).astype(np.uint8)
Image.fromarray(g1, "L").convert("1").save(f"{out}/gray1.png"); save("gray1.png", g1, 1, 8)

g16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
cv2.imwrite(f"{out}/gray16.png", g16); save("gray16.png", g16, 1, 16)

la = rng.integers(0, 256, (H, W, 2), dtype=np.uint8)
Image.fromarray(la, "LA").save(f"{out}/graya8.png"); save("graya8.png", la, 2, 8)

rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
Image.fromarray(rgb, "RGB").save(f"{out}/rgb8.png"); save("rgb8.png", rgb, 3, 8)

rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
Image.fromarray(rgba, "RGBA").save(f"{out}/rgba8.png"); save("rgba8.png", rgba, 4, 8)

rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
cv2.imwrite(f"{out}/rgb16.png", rgb16[:, :, ::-1]); save("rgb16.png", rgb16, 3, 16)

rgba16 = rng.integers(0, 65536, (H, W, 4), dtype=np.uint16)
cv2.imwrite(f"{out}/rgba16.png", rgba16[:, :, [2, 1, 0, 3]]); save("rgba16.png", rgba16, 4, 16)

pal = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
idx = rng.integers(0, 4, (H, W), dtype=np.uint8)
p = Image.fromarray(idx, "P"); p.putpalette(pal.reshape(-1).tolist())
p.save(f"{out}/palette.png"); save("palette.png", pal[idx], 3, 8)

alpha = np.array([255, 128, 0, 255], dtype=np.uint8)
p.save(f"{out}/palette_trns.png", transparency=bytes(alpha.tolist()))
save("palette_trns.png", np.concatenate([pal[idx], alpha[idx][..., None]], axis=-1), 4, 8)

info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
info.add_text("prompt", '{"3": {"class_type": "KSampler"}}')
Image.fromarray(rgb, "RGB").save(f"{out}/text.png", pnginfo=info); save("text.png", rgb, 3, 8)
cases["text.png"]["text"] = {"prompt": '{"3": {"class_type": "KSampler"}}'}

with open(f"{out}/expected.json", "w") as f:
    json.dump(cases, f, indent=0, sort_keys=True)
print("wrote", len(cases), "cases")
