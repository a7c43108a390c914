"""Building blocks shared by the GANs (and SinGAN)."""
from __future__ import annotations

import torch
from torch import autograd


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, *critic_args) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed, *critic_args)
    if isinstance(scores, tuple):  # critics with auxiliary heads return (score, ...)
        scores = scores[0]
    (grad,) = autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
