"""Turning generator outputs into pictures: uint8 conversion, grids, point plots, PNG/GIF files.

numpy + Pillow only; every file goes through an atomic write.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ctrlgen.files import write_bytes


def to_uint8(samples: np.ndarray) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, C) uint8, rounding half away deterministically."""
    x = np.clip((np.asarray(samples, np.float32) + 1.0) * 127.5, 0, 255)
    return np.rint(x).astype(np.uint8).transpose(0, 2, 3, 1)


def grid(images: np.ndarray, nrow: int, pad: int = 2, pad_value: int = 0) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows·(H+pad)+pad, nrow·(W+pad)+pad, C) image, row-major."""
    n, h, w, c = images.shape
    nrow = max(1, min(nrow, n)) if n else 1
    rows = max(1, -(-n // nrow))
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y : y + h, x : x + w] = images[i]
    return out


def image_from_array(arr: np.ndarray):
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")


def png_bytes(arr: np.ndarray, scale: int = 1) -> bytes:
    """PNG bytes of an (H, W, C) uint8 array, optionally upscaled by nearest neighbour."""
    from PIL import Image

    im = image_from_array(arr)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def save_png(arr: np.ndarray, path: str | Path, scale: int = 1) -> None:
    write_bytes(path, png_bytes(arr, scale))


def gif_bytes(frames: list[np.ndarray], ms_per_frame: int = 80, scale: int = 1, comment: bytes = b"") -> bytes:
    """An endlessly looping GIF of (H, W, C) uint8 frames (``comment``: the GIF's comment extension)."""
    from PIL import Image

    ims = [image_from_array(f) for f in frames]
    if scale > 1:
        ims = [im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST) for im in ims]
    ims = [im.convert("P", palette=Image.Palette.ADAPTIVE) if im.mode == "RGB" else im for im in ims]
    buf = io.BytesIO()
    extra = {"comment": comment} if comment else {}
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=ms_per_frame, loop=0, **extra)
    return buf.getvalue()


def save_gif(frames: list[np.ndarray], path: str | Path, ms_per_frame: int = 80, scale: int = 1, comment: bytes = b"") -> None:
    write_bytes(path, gif_bytes(frames, ms_per_frame, scale, comment))


def points_image(
    points: np.ndarray,
    means: np.ndarray | None = None,
    size: int = 512,
    extent: float | None = None,
) -> np.ndarray:
    """A scatter plot of 2D points as an (size, size, 3) uint8 image; mixture means as red crosses."""
    from PIL import Image, ImageDraw

    pts = np.asarray(points, np.float64)
    ref = means if means is not None and len(means) else pts
    if extent is None:
        finite = np.abs(ref[np.isfinite(ref).all(1)]) if len(ref) else np.ones((1, 2))
        extent = float(finite.max()) * 1.25 + 1e-3 if len(finite) else 1.0
    im = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(im)

    def to_px(p: np.ndarray) -> np.ndarray:
        return (p / extent * 0.5 + 0.5) * np.array([size - 1, -(size - 1)]) + np.array([0, size - 1])

    draw.line([(size // 2, 0), (size // 2, size)], fill=(230, 230, 230))
    draw.line([(0, size // 2), (size, size // 2)], fill=(230, 230, 230))
    ok = np.isfinite(pts).all(1)
    for x, y in to_px(pts[ok]):
        draw.point((float(x), float(y)), fill=(30, 80, 200))
        draw.point((float(x) + 1, float(y)), fill=(30, 80, 200))
    if means is not None:
        for x, y in to_px(np.asarray(means, np.float64)):
            draw.line([(x - 4, y), (x + 4, y)], fill=(220, 30, 30))
            draw.line([(x, y - 4), (x, y + 4)], fill=(220, 30, 30))
    return np.asarray(im)
