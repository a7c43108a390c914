"""Image grids as uint8 arrays (for sample PNGs, pages and reports)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from data.files import atomic_save


def make_grid(images: np.ndarray, ncol: int = 8, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile uint8 N×H×W×C images into one H'×W'×C image, row-major, `ncol` per row."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = image
    return grid


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Save an H×W×C uint8 array as PNG atomically (readers never see a half-written file)."""
    picture = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
    return atomic_save(path, picture.save)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement so 28-px images are visible on a page."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image
