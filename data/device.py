"""Where tensors go: one rule for "auto" (CUDA when present, else the CPU), used by every loop."""
from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`device` as a torch.device: "auto" is CUDA when present, else the CPU; "cpu", "cuda", "cuda:1" as named."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
