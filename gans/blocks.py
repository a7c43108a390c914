"""Building blocks shared by the GANs (and SinGAN).

Every GAN here is made of the same pieces, after DCGAN (Radford et al. 2016): a generator that
grows a small seed (7×7 for 28 px, 4×4 otherwise) into the image with stride-2 transposed
convolutions, and a discriminator that mirrors it with stride-2 convolutions.

`groups` stacks several independent models into one module through grouped convolutions: the
channels of model k sit in the k-th slice of every layer. Per-class training uses this to run
one generator (and one discriminator) per class in a single batched pass instead of a loop.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import autograd, nn
from torch.nn.utils import parametrize

IMAGE_SIZES = (28, 32, 64, 128)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, *critic_args, groups: int = 1) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂.

    With `groups` > 1 the critic is a stack of independent critics (channels split in equal
    slices): each gets its own gradient norm, and the penalties are summed over the stack.
    """
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed, *critic_args)
    if isinstance(scores, tuple):  # critics with auxiliary heads return (score, ...)
        scores = scores[0]
    (grad,) = autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grad.reshape(grad.size(0), groups, -1).norm(2, dim=2)
    return ((norms - 1) ** 2).mean(0).sum()


def seed_size(image_size: int) -> int:
    """Side of the generator's first feature map: the image size halved until it is small."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image size {image_size} is not supported (choose from {IMAGE_SIZES})")
    return 7 if image_size == 28 else 4


def num_resolutions(image_size: int) -> int:
    """How many stride-2 layers lead from the seed to the image (2 for 28 px, 4 for 64 px)."""
    return int(math.log2(image_size // seed_size(image_size)))


def init_dcgan_weights(module: nn.Module) -> None:
    """N(0, 0.02) convolutions and N(1, 0.02) batch-norm scales, as in the DCGAN paper."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def init_he_weights(module: nn.Module, slope: float = 0.2) -> None:
    """He-normal convolutions for LeakyReLU(slope), zero biases: a critic without normalisation.

    A critic with no batch or spectral norm keeps the scale it is initialised with. Under
    DCGAN's N(0, 0.02) the WGAN-GP critic's input gradient starts near 0.016 (DermaMNIST, width 16),
    so the penalty, which wants 1, outweighs the Wasserstein term until the weights have grown
    ~60×; He initialisation starts it near 1 (as in Gulrajani et al.'s code).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=slope, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z (B × groups·latent) -> images (B × groups·channels × size × size) in [-1, 1].

    Transposed convolutions with batch norm and ReLU, tanh at the end; the widest layer
    (width · 2^(n−1) channels) sits at the seed resolution and each upsampling halves it.
    """

    def __init__(self, image_size: int, channels: int, latent: int, width: int, groups: int = 1):
        super().__init__()
        n = num_resolutions(image_size)
        widths = [width * 2 ** (n - 1 - i) for i in range(n)]
        g = groups
        layers = [nn.ConvTranspose2d(g * latent, g * widths[0], seed_size(image_size), 1, 0, groups=g, bias=False),
                  nn.BatchNorm2d(g * widths[0]), nn.ReLU(True)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(g * a, g * b, 4, 2, 1, groups=g, bias=False),
                       nn.BatchNorm2d(g * b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(g * widths[-1], g * channels, 4, 2, 1, groups=g), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class ConditionalGenerator(nn.Module):
    """A Generator whose noise is multiplied by a learned embedding of the class label.

    The embedding starts as N(0, 1) vectors, so different classes map to different latent
    regions from the first step and the class head has something to latch onto.
    """

    def __init__(self, image_size: int, channels: int, latent: int, width: int, num_classes: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, latent)
        self.body = Generator(image_size, channels, latent, width)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.body(z * self.embed(labels))


class GroupedSpectralNorm(nn.Module):
    """Spectral normalization (Miyato et al. 2018) of each group's slice of a conv weight.

    Divides every group's weight matrix by its largest singular value, estimated by one step
    of power iteration per forward pass in training mode (the paper's recipe). With one
    group this is ordinary spectral normalization.
    """

    def __init__(self, weight: torch.Tensor, groups: int):
        super().__init__()
        self.groups = groups
        rows, cols = weight.shape[0] // groups, weight[0].numel()
        self.register_buffer("u", F.normalize(torch.randn(groups, rows), dim=1))
        self.register_buffer("v", F.normalize(torch.randn(groups, cols), dim=1))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.reshape(self.groups, -1, weight[0].numel())
        if self.training:
            with torch.no_grad():
                self.v.copy_(F.normalize(torch.bmm(self.u.unsqueeze(1), w).squeeze(1), dim=1))
                self.u.copy_(F.normalize(torch.bmm(w, self.v.unsqueeze(2)).squeeze(2), dim=1))
        # Clones: a later forward updates u and v in place while this graph still needs them.
        sigma = torch.einsum("gr,grc,gc->g", self.u.clone(), w, self.v.clone())
        return (w / sigma[:, None, None]).reshape_as(weight)


def conv(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, groups: int, spectral: bool,
         bias: bool = True) -> nn.Conv2d:
    layer = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=bias)
    nn.init.normal_(layer.weight, 0.0, 0.02)
    if bias:
        nn.init.zeros_(layer.bias)
    if spectral:
        parametrize.register_parametrization(layer, "weight", GroupedSpectralNorm(layer.weight, groups))
    return layer


class DiscriminatorBody(nn.Module):
    """Images -> features at the seed resolution (B × groups·out_channels × s × s).

    Stride-2 convolutions with LeakyReLU; `norm` is "batch" (DCGAN, ACGAN), "none" (the
    WGAN-GP critic) or "spectral" (SNGAN). The first layer is never batch-normalized.
    """

    def __init__(self, image_size: int, channels: int, width: int, norm: str = "batch", groups: int = 1,
                 slope: float = 0.2):
        super().__init__()
        if norm not in ("batch", "none", "spectral"):
            raise ValueError(f"unknown discriminator norm '{norm}'")
        n = num_resolutions(image_size)
        widths = [width * 2 ** i for i in range(n)]
        g, spectral = groups, norm == "spectral"
        layers = [conv(g * channels, g * widths[0], 4, 2, 1, g, spectral), nn.LeakyReLU(slope, True)]
        for a, b in zip(widths, widths[1:]):
            layers.append(conv(g * a, g * b, 4, 2, 1, g, spectral, bias=norm != "batch"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(g * b))
            layers.append(nn.LeakyReLU(slope, True))
        self.net = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    """DiscriminatorBody plus a linear score per model: images -> B × groups."""

    def __init__(self, image_size: int, channels: int, width: int, norm: str = "batch", groups: int = 1):
        super().__init__()
        self.body = DiscriminatorBody(image_size, channels, width, norm, groups)
        s = seed_size(image_size)
        self.score = conv(groups * self.body.out_channels, groups, s, 1, 0, groups, norm == "spectral")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.body(x)).flatten(1)
