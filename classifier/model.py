"""EfficientNet (efficientnet-pytorch) sized to the dataset: any image size, 1 or 3 channels.

`image_size` fixes the "same" padding of every convolution for the working size, so 28-px
inputs run without resizing. The plain SiLU activation and channels-last memory layout are
chosen for speed on CPU (about 1.7× the package's default memory-efficient Swish there).
Batch-norm running statistics use PyTorch's usual momentum (0.1) instead of the package's
TensorFlow-era 0.01: with a budget of a few hundred steps the slow running averages would
still describe the random initial network when the model is evaluated.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from efficientnet_pytorch import EfficientNet

VARIANTS = [f"efficientnet-b{i}" for i in range(8)]
BN_MOMENTUM = 0.9  # the package's convention: PyTorch momentum = 1 - this = 0.1


def build_model(num_classes: int, in_channels: int, image_size: int,
                variant: str = "efficientnet-b0", weights_path: str = "") -> EfficientNet:
    """A fresh EfficientNet, or one initialised from local pretrained weights (`weights_path`).

    Pretrained weights load everything but the classifier head (its size depends on the
    number of classes); the stem is re-initialised too when the channel count differs.
    The package loads the file with torch's default `weights_only=True`, so no pickle runs.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown EfficientNet variant '{variant}' (choose from {', '.join(VARIANTS)})")
    if weights_path:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"EfficientNet weights not found: {path}")
        try:
            model = EfficientNet.from_pretrained(variant, weights_path=str(path), advprop=False,
                                                 in_channels=in_channels, num_classes=num_classes,
                                                 image_size=image_size, batch_norm_momentum=BN_MOMENTUM)
        except (AssertionError, RuntimeError, KeyError, OSError, pickle.UnpicklingError) as e:
            raise ValueError(f"{path.name} does not hold {variant} weights: {e}") from None
    else:
        model = EfficientNet.from_name(variant, image_size=image_size, in_channels=in_channels,
                                       num_classes=num_classes, batch_norm_momentum=BN_MOMENTUM)
    model.set_swish(memory_efficient=False)
    return model.to(memory_format=torch.channels_last)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
