"""Grad-CAM (Selvaraju et al.): where in the image the classifier looked for its decision.

The heatmap is the ReLU of the target layer's activations weighted by the spatially averaged
gradient of the class score. At 28 px EfficientNet's last feature map is 1×1, which would make
every heatmap flat, so the default target is the deepest block whose output is still at least
a quarter of the input's side (7×7 for 28-px images).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps

from classifier.evaluate import to_input


def block_sizes(model, size: int, channels: int) -> list[int]:
    """Spatial side of each MBConv block's output for a size×size input."""
    sides = []
    hooks = [b.register_forward_hook(lambda m, i, o: sides.append(o.shape[-1])) for b in model._blocks]
    was_training = model.training
    model.eval()  # one probe image: batch norm must not try to compute batch statistics
    try:
        with torch.no_grad():
            model.extract_features(torch.zeros(1, channels, size, size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return sides


def default_layer(model, size: int, channels: int) -> int:
    sides = block_sizes(model, size, channels)
    return max(i for i, s in enumerate(sides) if s >= max(2, size // 4))


def gradcam(model, images: np.ndarray, target: np.ndarray | None = None,
            layer: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmaps in [0, 1] (N×H×W) for uint8 N×H×W×C images, for class `target` (default: the
    predicted class). Returns (heatmaps, target classes, class probabilities)."""
    n, size, _, channels = images.shape
    layer = default_layer(model, size, channels) if layer is None else layer
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    captured = {}
    hook = model._blocks[layer].register_forward_hook(lambda m, i, o: captured.update(act=o))
    try:
        x = to_input(torch.from_numpy(np.ascontiguousarray(images)), device)
        logits = model(x)
        probs = torch.softmax(logits, 1).detach()
        classes = probs.argmax(1) if target is None else torch.as_tensor(target, device=device).long()
        score = logits.gather(1, classes[:, None]).sum()
        grads = torch.autograd.grad(score, captured["act"])[0]
    finally:
        hook.remove()
        model.train(was_training)
    weights = grads.mean((2, 3), keepdim=True)
    cam = F.relu((weights * captured["act"]).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    return (cam / peak).cpu().numpy(), classes.cpu().numpy(), probs.cpu().numpy()


def overlay(images: np.ndarray, heatmaps: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The heatmaps (jet colours) blended over the images, uint8 N×H×W×3."""
    rgb = images if images.shape[-1] == 3 else np.repeat(images, 3, axis=-1)
    colours = colormaps["jet"](heatmaps)[..., :3] * 255
    return (rgb * (1 - alpha) + colours * alpha).round().clip(0, 255).astype(np.uint8)
