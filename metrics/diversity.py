"""How much single-image variations vary, next to real images: the figures of a single-image run.

`diversity` puts numbers on "variations, not copies": mean absolute pixel distance (/255) of the
variations to their image and to each other, beside two distinct real images of the same class, and
the SinGAN paper's pixel-std diversity. `image_figures` adds SIFID (Inception's Conv2d_4a patch
statistics, metrics/inception.py); `figures_text` says them in one line.
"""
from __future__ import annotations

import numpy as np

from data.imageset import ImageSet
from metrics.inception import SIFID_FEATURE_SPACE, InceptionUnavailable, sifid

REAL_PAIRS = 200  # random pairs of real images behind `real_pairs`


def diversity(image: np.ndarray, variations: np.ndarray, same_class: np.ndarray | None, seed: int = 0
              ) -> dict[str, float | None]:
    """How far the variations are from their image and from each other, next to real images.

    image: uint8 H×W×C; variations: uint8 N×H×W×C; same_class: uint8 M×h×w×C real images of the
    image's class (its dataset's training split), or None. Distances are mean absolute pixel
    differences in /255 units (0: identical; a copy of the image scores 0 to it):
    - to_image: variation to the image, averaged over the variations;
    - between: variation to variation, averaged over all pairs (None with one variation);
    - real_pairs: between two distinct real images of the class, over `REAL_PAIRS` random pairs
      drawn with `seed` (None without them): what "a different image" means in this dataset;
    - pixel_std: the SinGAN paper's diversity, the std across the variations of each pixel,
      averaged over pixels, divided by the std of the image's pixels (None with one variation).
    """
    image, variations = image.astype(np.float64), variations.astype(np.float64)
    n = len(variations)
    to_image = np.abs(variations - image).mean()
    between = pixel_std = None
    if n > 1:
        first, second = np.triu_indices(n, 1)
        between = np.mean([np.abs(variations[i] - variations[j]).mean() for i, j in zip(first, second)])
        pixel_std = variations.std(0).mean() / max(image.std(), 1e-8)
    real_pairs = None
    if same_class is not None and len(same_class) > 1:
        a, b = np.random.default_rng(seed).integers(len(same_class), size=(2, REAL_PAIRS))
        distinct = a != b
        real_pairs = np.abs(same_class[a[distinct]].astype(np.float64) - same_class[b[distinct]]).mean()
    return {"to_image": _rounded(to_image), "between": _rounded(between), "real_pairs": _rounded(real_pairs),
            "pixel_std": _rounded(pixel_std)}


def _rounded(value) -> float | None:
    return None if value is None else round(float(value), 3)


def image_figures(image: np.ndarray, variations: np.ndarray, same_class: np.ndarray | None, with_sifid: bool,
                  device: str = "auto") -> dict:
    """The summary.json figures of an image-mode run: "diversity" (`diversity`) and, `with_sifid`,
    "sifid" (mean SIFID of the variations against the image, ↓; None with "sifid_error" where the
    Inception weights are missing) with its feature space. Images as in `diversity`."""
    figures = {"diversity": diversity(image, variations, same_class)}
    if with_sifid:
        try:
            figures["sifid"] = round(sifid(image, variations, device=device), 4)
        except InceptionUnavailable as e:
            figures.update(sifid=None, sifid_error=str(e))
        figures["sifid_feature_space"] = SIFID_FEATURE_SPACE
    return figures


def seeds_figures(train_split: ImageSet, seeds: list[int], variations: list[np.ndarray]) -> dict:
    """A seeds run's figures at the working size: "diversity" (each figure of `diversity` averaged
    over the seeds) and "diversity_per_seed"."""
    per_seed = [diversity(train_split.images[index], images, train_split.of_class(train_split.labels[index]).images)
                for index, images in zip(seeds, variations)]
    means = {name: _rounded(None if None in values else np.mean(values))
             for name, values in ((name, [d[name] for d in per_seed]) for name in per_seed[0])}
    return {"diversity": means, "diversity_per_seed": per_seed}


def figures_text(summary: dict) -> str:
    """The figures of a single-image run's summary.json in one line of words (the CLI's and the page's)."""
    d = summary.get("diversity") or {}
    parts = []
    if summary.get("sifid") is not None:
        parts.append(f"SIFID {summary['sifid']:.3g} (↓)")
    elif summary.get("sifid_error"):
        parts.append(f"SIFID left out: {summary['sifid_error']}")
    if d.get("to_image") is not None:
        text = f"variations differ from their image by {d['to_image']:.1f}/255"
        if d.get("between") is not None:
            text += f" and from each other by {d['between']:.1f}/255"
        if d.get("real_pairs") is not None:
            text += f"; two real images of the class differ by {d['real_pairs']:.1f}/255"
        parts.append(text)
    if d.get("pixel_std") is not None:
        parts.append(f"SinGAN's diversity (pixel std across variations / the image's) {d['pixel_std']:.2f}")
    return " · ".join(parts)
