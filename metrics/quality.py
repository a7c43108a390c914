"""The five full-reference image-quality metrics (piqa), with the facts a reader needs.

Each metric compares two images. piqa expects float N×C×H×W in [0, 1]; MS-GMSD, MDSI and
HaarPSI also want three channels and enough pixels for their filters. `score_pairs` takes
uint8 images, converts them (`data.imageset.to_unit_tensor`), repeats grayscale to three
channels where a metric needs it, and upsamples images below a metric's minimum size (or
reports the metric as not applicable, `small="skip"`), so a number is never silently computed
on the wrong input.
Adding a metric is one `QualityMetric` entry in `METRICS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import piqa
import torch
import torch.nn.functional as F

from data.device import resolve_device
from data.imageset import to_unit_tensor


@dataclass(frozen=True)
class QualityMetric:
    key: str
    name: str
    higher_is_better: bool
    low: float  # range of values; PSNR is capped by piqa's epsilon at 80 dB
    high: float
    ideal: float  # the value for identical images
    meaning: str  # one line for the UI
    min_size: int  # smallest side the metric's filters are meant for
    needs_rgb: bool
    build: Callable[[int], torch.nn.Module]  # channels -> piqa module returning one value per pair

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def range_text(self) -> str:
        return f"{self.low:g}–{self.high:g}"

    def better(self, a: float, b: float) -> bool:
        """True if value `a` is better than `b` in this metric's direction."""
        return a > b if self.higher_is_better else a < b


METRICS: dict[str, QualityMetric] = {m.key: m for m in [
    QualityMetric("psnr", "PSNR", True, 0.0, 80.0, 80.0,
                  "Peak signal-to-noise ratio in dB: pixel-wise closeness; higher is closer.",
                  1, False, lambda c: piqa.PSNR(reduction="none")),
    QualityMetric("ssim", "SSIM", True, 0.0, 1.0, 1.0,
                  "Structural similarity of local means, contrasts and structure; 1 means identical.",
                  11, False, lambda c: piqa.SSIM(n_channels=c, reduction="none")),
    QualityMetric("ms_gmsd", "MS-GMSD", False, 0.0, 1.0, 0.0,
                  "Deviation of gradient-magnitude similarity over 4 scales; LOWER is better, 0 is identical.",
                  32, True, lambda c: piqa.MS_GMSD(reduction="none")),
    QualityMetric("mdsi", "MDSI", False, 0.0, 1.0, 0.0,
                  "Mean deviation similarity of gradients and chromaticity; LOWER is better, 0 is identical.",
                  8, True, lambda c: piqa.MDSI(reduction="none")),
    QualityMetric("haarpsi", "HaarPSI", True, 0.0, 1.0, 1.0,
                  "Haar-wavelet perceptual similarity; 1 means identical.",
                  16, True, lambda c: piqa.HaarPSI(reduction="none")),
]}
"""Minimum sizes: SSIM's Gaussian window is 11 px; MS-GMSD halves the image three times and its
coarsest scale needs ≥4 px for the 3×3 Prewitt gradient; HaarPSI halves once and then applies
Haar filters up to 8 px wide; MDSI needs room for its 3×3 gradient."""


def prepare(x: torch.Tensor, metric: QualityMetric) -> torch.Tensor:
    """Fit a [0, 1] batch to what `metric` requires: three channels, at least `min_size` px."""
    if metric.needs_rgb and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    side = min(x.shape[-2:])
    if side < metric.min_size:
        scale = metric.min_size / side
        size = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp_(0, 1)
    return x


def applicability(metric: QualityMetric, size: int, small: str = "upsample") -> str:
    """How `metric` treats images of side `size`: 'native', 'upsampled to N px' or 'not applicable'."""
    if size >= metric.min_size:
        return "native"
    if small == "skip":
        return f"not applicable below {metric.min_size} px"
    return f"upsampled {size}→{metric.min_size} px"


@torch.no_grad()
def score_pairs(synthetic: np.ndarray, real: np.ndarray, metrics: list[str] | None = None,
                batch_size: int = 500, small: str = "upsample", device: str = "cpu") -> dict[str, np.ndarray]:
    """One value per pair (synthetic[i], real[i]) for each metric; NaN where not applicable.

    Both arrays are uint8 N×H×W×C of the same shape. `small` is "upsample" (default) or
    "skip" for images smaller than a metric's minimum size. `device`: where the metrics run
    ("auto": CUDA when present).
    """
    device = resolve_device(device)
    if synthetic.shape != real.shape:
        raise ValueError(f"paired images must have the same shape, got {synthetic.shape} and {real.shape}")
    if small not in ("upsample", "skip"):
        raise ValueError(f"small must be 'upsample' or 'skip', got {small!r}")
    keys = list(metrics or METRICS)
    unknown = [k for k in keys if k not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    n, size, channels = len(synthetic), min(synthetic.shape[1:3]), synthetic.shape[3]
    values = {k: np.full(n, np.nan) for k in keys}
    active = [METRICS[k] for k in keys if not applicability(METRICS[k], size, small).startswith("not")]
    modules = {m.key: m.build(channels).eval().to(device) for m in active}
    for start in range(0, n, batch_size):
        x = to_unit_tensor(synthetic[start:start + batch_size]).to(device)
        y = to_unit_tensor(real[start:start + batch_size]).to(device)
        for m in active:
            out = modules[m.key](prepare(x, m), prepare(y, m))
            values[m.key][start:start + len(x)] = out.double().cpu().numpy()
    return values
