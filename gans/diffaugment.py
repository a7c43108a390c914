"""DiffAugment (Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN
Training").

With a few hundred real images the discriminator memorizes them and its feedback to the generator
collapses. DiffAugment gives it randomly transformed views of every image it sees, real and fake
alike, in the discriminator step and in the generator step. The transforms are differentiable
tensor operations, so the generator's gradient passes through them: it learns to draw images whose
augmented views look real, not augmented images.

A policy is a comma-separated list of transform families, applied in the paper's order:
- "color": brightness (adds U(−0.5, 0.5) to the image), saturation (scales each pixel's distance
  to its channel mean by U(0, 2); nothing to scale on a 1-channel image) and contrast (scales
  each pixel's distance to the image mean by U(0.5, 1.5)), each drawn per image;
- "translation": shifts the image by a whole number of pixels, up to 1/8 of its side in each
  direction, filling the uncovered border with zeros;
- "cutout": zeroes a square of half the image's side at a random centre (the square may stick out
  of the image).
Images are in [−1, 1], so zero is mid-grey. As in the paper, colour may leave [−1, 1]: clamping
would stop the gradient at every clipped pixel.

Per-class stacks hold the images of several independent models side by side in the channels
(B × models·C × H × W, see gans/base.py). Each model's image is transformed on its own, the same
way across its C channels, as if that model trained alone; colour statistics never mix models.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TRANSLATION_RATIO = 1 / 8  # the largest shift, as a share of the side
CUTOUT_RATIO = 1 / 2  # the cut-out square's side, as a share of the image's side


def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness, saturation and contrast per image of x (N × C × H × W)."""
    n = x.size(0)
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * (2 * torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + image_mean


def translation(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Each image of x (N × C × H × W) shifted by its own random offset, zeros shifted in."""
    n, _, h, w = x.shape
    pad_h, pad_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_h = torch.randint(-pad_h, pad_h + 1, (n, 1, 1), device=x.device)
    shift_w = torch.randint(-pad_w, pad_w + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + shift_h + pad_h  # N × H × 1
    cols = torch.arange(w, device=x.device)[None, None, :] + shift_w + pad_w  # N × 1 × W
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
    images = torch.arange(n, device=x.device)[:, None, None]
    return padded[images, :, rows, cols].permute(0, 3, 1, 2)  # indexing puts N × H × W first, then C


def cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Each image of x (N × C × H × W) with a zeroed square at its own random centre."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h, (n, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w, (n, 1, 1), device=x.device) - size_w // 2
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)  # N × H × W
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
    """The transform names of a policy string, in the paper's order ("" is no augmentation).

    Raises ValueError naming any unknown transform.
    """
    names = {name.strip() for name in policy.split(",") if name.strip()}
    unknown = sorted(names - set(TRANSFORMS))
    if unknown:
        raise ValueError(f"unknown DiffAugment transform(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(TRANSFORMS)})")
    return tuple(name for name in TRANSFORMS if name in names)


class DiffAugment:
    """The policy's transforms for images of `channels` channels per model.

    Called on a batch N × models·channels × H × W in [−1, 1], returns a batch of the same shape
    with every model's image transformed independently; the empty policy returns its input.
    """

    def __init__(self, policy: str, channels: int):
        self.transforms = [TRANSFORMS[name] for name in parse_policy(policy)]
        self.channels = channels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transforms:
            return x
        n, stacked, h, w = x.shape
        images = x.reshape(n * stacked // self.channels, self.channels, h, w)
        for transform in self.transforms:
            images = transform(images)
        return images.reshape(n, stacked, h, w)
