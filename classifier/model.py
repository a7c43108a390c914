"""EfficientNet (efficientnet-pytorch) sized to the dataset: any image size, 1 or 3 channels.

`image_size` fixes the "same" padding of every convolution for the working size, so 28-px
inputs run without resizing. The plain SiLU activation and channels-last memory layout are
chosen for speed on CPU (about 1.7× the package's default memory-efficient Swish there).
Batch-norm running statistics use PyTorch's usual momentum (0.1) instead of the package's
TensorFlow-era 0.01: with a budget of a few hundred steps the slow running averages would
still describe the random initial network when the model is evaluated.
"""
from __future__ import annotations

from pathlib import Path

import torch
from efficientnet_pytorch import EfficientNet

VARIANTS = [f"efficientnet-b{i}" for i in range(8)]
BN_MOMENTUM = 0.9  # the package's convention: PyTorch momentum = 1 - this = 0.1
HEAD = ("_fc.weight", "_fc.bias")  # the classifier head: sized by the number of classes, never loaded


def build_model(num_classes: int, in_channels: int, image_size: int,
                variant: str = "efficientnet-b0", weights_path: str = "") -> EfficientNet:
    """A fresh EfficientNet, or one initialised from local pretrained weights (`weights_path`).

    Pretrained weights fill everything but the classifier head (its size depends on the number
    of classes); the stem is re-initialised too when the channel count differs from the
    weights' 3.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown EfficientNet variant '{variant}' (choose from {', '.join(VARIANTS)})")
    channels = 3 if weights_path else in_channels
    model = EfficientNet.from_name(variant, image_size=image_size, in_channels=channels, num_classes=num_classes,
                                   batch_norm_momentum=BN_MOMENTUM)
    if weights_path:
        load_pretrained(model, Path(weights_path), variant)
        model._change_in_channels(in_channels)
    model.set_swish(memory_efficient=False)
    return model.to(memory_format=torch.channels_last)


def load_pretrained(model: EfficientNet, path: Path, variant: str) -> None:
    """Load a state dict of `variant` weights from `path` into every layer of `model` but its head.

    We read the file ourselves with `weights_only=True`: the package's loader calls `torch.load`
    without it, so an environment that turns weights-only loading off would unpickle the file.
    Raises ValueError naming the file for anything but plain tensors that fit the model.
    """
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet weights not found: {path}")
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read plain tensors means the file is unusable
        raise ValueError(f"{path.name}: not a weights-only state dict ({type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:200]})") from None
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise ValueError(f"{path.name}: not a state dict of named tensors")
    expected = {k: v for k, v in model.state_dict().items() if k not in HEAD}
    body = {k: v for k, v in weights.items() if k not in HEAD}
    missing = sorted(set(expected) - set(body))
    unexpected = sorted(set(body) - set(expected))
    reshaped = sorted(k for k in set(body) & set(expected) if body[k].shape != expected[k].shape)
    if missing or unexpected or reshaped:
        raise ValueError(f"{path.name}: not {variant} weights (missing: {', '.join(missing[:3]) or 'none'}; "
                         f"unexpected: {', '.join(unexpected[:3]) or 'none'}; "
                         f"other shapes: {', '.join(reshaped[:3]) or 'none'})")
    model.load_state_dict(body, strict=False)


