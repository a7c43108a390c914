"""Image grids as uint8 arrays (for sample PNGs, pages and reports): tiles, marked tiles, row captions."""
from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data.files import atomic_save

MARK_COLOUR = (230, 110, 0)  # the frame of a marked tile (the real image among variations)


def make_grid(images: np.ndarray, ncol: int = 8, pad: int = 2, fill: int = 255,
              marked: Iterable[int] = ()) -> np.ndarray:
    """Tile uint8 N×H×W×C images into one H'×W'×C image, row-major, `ncol` per row.

    The tiles whose indices are in `marked` get an orange frame (the padding around them); a grid
    with marked tiles is RGB even when the images are grayscale.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    marked = sorted(set(marked))
    if marked and images.shape[-1] == 1:
        images = images.repeat(3, axis=-1)
    n, h, w, c = images.shape
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i in marked:
        r, k = divmod(i, ncol)
        grid[r * (h + pad): (r + 1) * (h + pad) + pad, k * (w + pad): (k + 1) * (w + pad) + pad] = MARK_COLOUR
    for i, image in enumerate(images):
        r, k = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = image
    return grid


def label_rows(grid: np.ndarray, labels: list[str], scale: int = 1, pad: int = 2) -> np.ndarray:
    """`grid` (rows of equal height, as `make_grid` tiles them) enlarged `scale` times, with
    `labels[r]` written on a white band left of row r. len(labels) is the number of rows.

    Returns uint8 H'×W'×C with the grid's channels; the text is black, sized to the row height.
    """
    grid = upscale(np.asarray(grid), scale)
    if grid.ndim == 2:
        grid = grid[..., None]
    rows = max(len(labels), 1)
    row_height = (grid.shape[0] - pad * scale) / rows
    font = ImageFont.load_default(size=max(10, min(18, int(row_height * 0.45))))
    band = max(int(font.getlength(label)) for label in labels) + 12 if labels else 0
    canvas = Image.new("L" if grid.shape[-1] == 1 else "RGB", (band + grid.shape[1], grid.shape[0]), "white")
    canvas.paste(Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid), (band, 0))
    draw = ImageDraw.Draw(canvas)
    for r, label in enumerate(labels):
        centre = pad * scale + r * row_height + row_height / 2
        draw.text((band - 6, centre), label, fill="black", font=font, anchor="rm")
    out = np.asarray(canvas)
    return out[..., None] if out.ndim == 2 else out


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Save an H×W×C uint8 array as PNG atomically (readers never see a half-written file)."""
    picture = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
    return atomic_save(path, picture.save)


def png_data_uri(image: np.ndarray) -> str:
    """An H×W×C uint8 array as a `data:image/png;base64,…` URI, for an <img> in a page's component."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement so 28-px images are visible on a page."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image
