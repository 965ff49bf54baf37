"""Captions on image grids: a title, a title per column and/or per row (Pillow's built-in font).

Titles that do not fit their cell are shortened with an ellipsis rather than
overlapping the next one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctrlgen.images import image_from_array

INK, PAPER = (20, 20, 20), (255, 255, 255)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def fit(text: str, font, width: float) -> str:
    """``text``, shortened with an ellipsis to at most ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…" if text else ""


def caption(
    img: np.ndarray,
    col_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    title: str | None = None,
    font_size: int | None = None,
) -> np.ndarray:
    """An RGB copy of ``img`` (H, W, C uint8, a grid of equal cells) with margins holding the titles."""
    from PIL import Image, ImageDraw

    im = image_from_array(img).convert("RGB")
    w, h = im.size
    ncols = max(1, len(col_titles or ()))
    nrows = max(1, len(row_titles or ()))
    cell = min(w / ncols, h / nrows)
    size = font_size or int(np.clip(cell * 0.2, 10, 16))
    font = _font(size)
    line = size + 8
    top = (line if title else 0) + (line if col_titles else 0)
    left = int(max(font.getlength(t) for t in row_titles) + 12) if row_titles else 0
    left = min(left, max(60, w // 2))
    canvas = Image.new("RGB", (w + left, h + top), PAPER)
    canvas.paste(im, (left, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 4), fit(title, font, w + left - 8), fill=INK, font=font)
    if col_titles:
        y = top - line + 4
        pitch = w / len(col_titles)
        for c, text in enumerate(col_titles):
            draw.text((left + (c + 0.5) * pitch, y), fit(str(text), font, pitch - 4), fill=INK, font=font, anchor="ma")
    if row_titles:
        pitch = h / len(row_titles)
        for r, text in enumerate(row_titles):
            draw.text((left - 6, top + (r + 0.5) * pitch), fit(str(text), font, left - 10), fill=INK, font=font, anchor="rm")
    return np.asarray(canvas)
