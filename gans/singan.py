"""SinGAN: a pyramid of small fully-convolutional GANs that learns one image (Shaham et al. 2019).

Each pyramid level has a generator stage that adds a residual to the upsampled image from the
level below (plus noise scaled by that level's noise amplitude), and a patch critic trained with
WGAN-GP. A reconstruction loss ties a fixed noise map to the real image, and its error sets the
noise amplitude of the next level.

The published schedule trains one level at a time for 2000 iterations each, which takes hours on
a CPU. Here, as in ConSinGAN (Hinz et al. 2021), the generator grows one stage at a time but the
top `concurrent` stages keep training together, the lower ones with their learning rate scaled by
`lr_scale` per level, and each level gets far fewer iterations (more at the cheap coarse
levels, which set the global layout, than at the fine ones). The generator stays in image space
at every level (as in SinGAN), and every level being trained keeps its own reconstruction loss, so
a real image can be injected at any level: a lower level trained only through the top level's loss
drifts from its own scale, and the level above it learns to expect the drift, not the real image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from data.config import MAX_STEPS, Config, option
from data.files import atomic_save
from gans.blocks import gradient_penalty


@dataclass(frozen=True)
class SinGanSettings(Config):
    """Model and training hyper-parameters (defaults: the fast concurrent schedule)."""

    max_side: int = option(128, label="Maximum size (px)", min=8, max=1024, help="long side of the finest level")
    min_side: int = option(25, label="Coarsest size (px)", min=4, max=512,
                           help="short side of the coarsest level (at most half the finest short side)")
    stages: int = option(6, label="Levels", min=1, max=32, help="pyramid levels, coarse to fine")
    width: int = option(32, label="Width", min=1, max=512, help="feature channels of every generator stage and critic")
    layers: int = option(4, label="Generator layers", min=2, max=16, help="3×3 convolutions per generator stage")
    critic_layers: int = option(5, label="Critic layers", min=2, max=16,
                                help="3×3 convolutions of the critic (5 → 11-px patches, as in SinGAN)")
    iters: int = option(400, label="Iterations (finest level)", min=1, max=MAX_STEPS,
                       help="iterations of the finest level")
    iters_coarse: int = option(0, label="Iterations (coarsest level)", min=0, max=MAX_STEPS,
                               help="iterations of the coarsest level (0: same as iters); geometric in between")
    d_steps: int = option(1, label="Critic steps", min=1, max=10, help="critic updates per iteration")
    g_steps: int = option(1, label="Generator steps", min=1, max=10, help="generator updates per iteration")
    lr: float = option(5e-4, label="Learning rate", min=0, min_exclusive=True)
    lr_scale: float = option(0.1, label="Lower-level learning-rate scale", min=0, max=1,
                             help="learning-rate factor per level below the newest trained one")
    concurrent: int = option(3, label="Concurrent levels", min=1, max=32,
                            help="how many of the top levels train together")
    lr_drop: float = option(0.8, label="Learning-rate drop point", min=0, max=1,
                            help="learning rates drop ×0.1 after this fraction of a level's iterations")
    alpha: float = option(10.0, label="Reconstruction weight", min=0)
    gp_weight: float = option(0.1, label="Gradient-penalty weight", min=0,
                              help="weight of the critic's gradient penalty (SinGAN's λ)")
    noise_amp_init: float = option(0.1, label="Noise amplitude", min=0,
                                   help="noise amplitude = this × reconstruction RMSE of the level below")

    def level_iters(self, level: int) -> int:
        """Iterations of `level`: coarse levels are cheap and set the global layout, so they may get more."""
        top = self.stages - 1
        coarse = self.iters_coarse or self.iters
        if top == 0:
            return self.iters
        return max(1, round(coarse * (self.iters / coarse) ** (level / top)))

    @property
    def total_steps(self) -> int:
        return sum(self.level_iters(level) for level in range(self.stages))


# --- images and the pyramid ------------------------------------------------------------------

def load_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 H×W×C: 1 channel if it is grayscale (all channels equal), else RGB."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path.name} could not be decoded as an image: {e}") from None
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 8:
        raise ValueError(f"{path.name} is too small for SinGAN ({rgb.shape[1]}×{rgb.shape[0]} px)")
    grayscale = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., :1].copy() if grayscale else rgb


def pyramid_sizes(height: int, width: int, max_side: int, min_side: int = 25, stages: int = 6
                  ) -> list[tuple[int, int]]:
    """(h, w) of every level, coarse to fine, with the image's aspect ratio.

    The finest level has long side `max_side`; the coarsest has short side `min_side` (capped at
    half the finest short side so small images still get a real pyramid); sizes in between grow
    geometrically.
    """
    if stages < 1:
        raise ValueError("a pyramid needs at least one stage")
    scale = max_side / max(height, width)
    fine = (max(1, round(height * scale)), max(1, round(width * scale)))
    fine_short = min(fine)
    coarse_short = min(min_side, max(4, fine_short // 2))
    sizes = []
    for level in range(stages):
        factor = (coarse_short / fine_short) ** ((stages - 1 - level) / max(stages - 1, 1))
        sizes.append((max(4, round(fine[0] * factor)), max(4, round(fine[1] * factor))))
    sizes[-1] = fine
    return sizes


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize with antialiasing (area-like when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The bilinear upsampling between generator levels."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# --- networks -----------------------------------------------------------------------------------

def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))


class Stage(nn.Module):
    """One level's generator: x↑ + noise → x↑ + residual."""

    def __init__(self, channels: int, width: int, layers: int):
        super().__init__()
        self.body = nn.Sequential(conv_block(channels, width), *[conv_block(width, width) for _ in range(layers - 2)])
        self.tail = nn.Sequential(nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())

    def forward(self, noise: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return previous + self.tail(self.body(noise + previous))


class Generator(nn.Module):
    """The growing generator: one `Stage` per level trained so far."""

    def __init__(self, channels: int, width: int, layers: int):
        super().__init__()
        self.channels, self.width, self.layers = channels, width, layers
        self.stages = nn.ModuleList()

    def grow(self) -> Stage:
        """Add a level, starting from a copy of the one below (its weights are a good prior)."""
        stage = Stage(self.channels, self.width, self.layers)
        if len(self.stages):
            stage.load_state_dict(self.stages[-1].state_dict())
        self.stages.append(stage)
        return stage

    def forward(self, noise: list[torch.Tensor], amps: list[float], sizes: list[tuple[int, int]],
                x: torch.Tensor | None = None, begin: int = 0, end: int | None = None) -> torch.Tensor:
        """Run levels `begin`..`end`-1, starting from image `x` (None: from zeros at level 0)."""
        return self.levels(noise, amps, sizes, x, begin, end)[-1]

    def levels(self, noise: list[torch.Tensor], amps: list[float], sizes: list[tuple[int, int]],
               x: torch.Tensor | None = None, begin: int = 0, end: int | None = None) -> list[torch.Tensor]:
        """Like `forward`, but every level's output image, from `begin` up."""
        end = len(self.stages) if end is None else end
        outputs = []
        for level in range(begin, end):
            previous = torch.zeros_like(noise[level]) if x is None else upsample(x, sizes[level])
            x = self.stages[level](noise[level] * amps[level], previous)
            outputs.append(x)
        return outputs


class Critic(nn.Module):
    """A patch critic: one WGAN score per receptive field, no normalisation (WGAN-GP)."""

    def __init__(self, channels: int, width: int, layers: int):
        super().__init__()
        self.net = nn.Sequential(conv_block(channels, width), *[conv_block(width, width) for _ in range(layers - 2)],
                                 nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- the model ----------------------------------------------------------------------------------

class SinGAN:
    """A SinGAN for one image: training step by step, sampling, injection, checkpoints.

    Train with `while not model.finished: model.step()` (or `gans.singan_train.train`, which adds
    reporting, checkpoints and resume); `step` opens the next level when the current one has had
    its iterations, so a caller can report, checkpoint or stop between steps.
    """

    def __init__(self, image: torch.Tensor, settings: SinGanSettings | None = None, seed: int = 0,
                 device: str | torch.device = "cpu"):
        self.settings = settings or SinGanSettings()
        s = self.settings
        self.device = torch.device(device)
        self.image = image.detach().float().cpu()
        if self.image.ndim != 4 or self.image.shape[0] != 1:
            raise ValueError(f"SinGAN trains on one image 1×C×H×W; got {tuple(self.image.shape)}")
        self.channels = self.image.shape[1]
        self.sizes = pyramid_sizes(*self.image.shape[-2:], s.max_side, s.min_side, s.stages)
        self.reals = [resize(self.image, size).clamp(-1, 1).to(self.device) for size in self.sizes]
        self.rng = torch.Generator().manual_seed(seed)
        self.generator = Generator(self.channels, s.width, s.layers).to(self.device)
        self.amps: list[float] = []
        self.rec_noise: list[torch.Tensor] = []
        self.stage, self.iteration = -1, 0
        self.critic = self.opt_g = self.opt_d = self.sched_g = self.sched_d = None
        self.frozen_rec: torch.Tensor | None = None  # reconstruction by the frozen levels (fixed per level)

    # --- training ----------------------------------------------------------------------------
    def level_iters(self, level: int) -> int:
        return self.settings.level_iters(level)

    @property
    def finished(self) -> bool:
        top = len(self.sizes) - 1
        return self.stage == top and self.iteration >= self.level_iters(top)

    @property
    def total_steps(self) -> int:
        return self.settings.total_steps

    @property
    def level_done(self) -> bool:
        return self.stage >= 0 and self.iteration == self.level_iters(self.stage)

    @property
    def steps_done(self) -> int:
        return sum(self.level_iters(level) for level in range(max(self.stage, 0))) + self.iteration

    def step(self) -> dict[str, torch.Tensor]:
        """One iteration: `d_steps` critic updates, then `g_steps` generator updates.

        As in SinGAN, the last critic update and the first generator update share one fake; the
        fake and the reconstruction go through the generator together as a batch of two, and the
        critic scores real and fake in one batch. Returns the losses as 0-d tensors on the model's
        device (reading them is the caller's choice: it waits for the device): "critic" (the
        Wasserstein estimate, real − fake), "gp", "adversarial" and "rec_rmse" (the top level's
        reconstruction error in [-1, 1] units).
        """
        if self.finished:
            raise RuntimeError("training already finished")
        if self.stage < 0 or self.iteration >= self.level_iters(self.stage):
            self._open_level()
        s, real = self.settings, self.reals[self.stage]
        for d_step in range(s.d_steps):
            if d_step < s.d_steps - 1:
                with torch.no_grad():
                    fake, recs = self._fake_and_reconstruction()
            else:
                fake, recs = self._fake_and_reconstruction()
            scores = self.critic(torch.cat([real, fake.detach()])).mean(dim=(1, 2, 3))
            critic_real, critic_fake = scores[0], scores[1]
            penalty = gradient_penalty(self.pixel_scaled_critic, real, fake)
            loss_d = critic_fake - critic_real + s.gp_weight * penalty
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        self.critic.requires_grad_(False)
        for g_step in range(s.g_steps):
            if g_step:
                fake, recs = self._fake_and_reconstruction()
            adversarial = -self.critic(fake).mean()
            # Every trained level reconstructs its own scale, as in SinGAN where each level is
            # trained alone: then a real image injected at any level is what that level expects.
            level_mse = [F.mse_loss(rec, self.reals[level]) for level, rec in zip(self._trained_levels, recs)]
            rec_mse = level_mse[-1]
            loss_g = adversarial + s.alpha * sum(level_mse)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
        self.critic.requires_grad_(True)
        self.sched_d.step()
        self.sched_g.step()
        self.iteration += 1
        return {"critic": (critic_real - critic_fake).detach(), "gp": penalty.detach(),
                "adversarial": adversarial.detach(), "rec_rmse": rec_mse.detach().sqrt()}

    def pixel_scaled_critic(self, x: torch.Tensor) -> torch.Tensor:
        """Patch scores divided by √(pixels): SinGAN's gradient penalty through `gradient_penalty`.

        SinGAN (and ConSinGAN) differentiate the *sum* of the patch map and penalise the gradient
        norm of every pixel, (‖∇ₓΣD‖ per pixel − 1)², averaged, with λ = 0.1. `gradient_penalty`
        penalises the norm over the whole image instead; dividing the scores by √pixels turns that
        into the root-mean-square of the per-pixel norms, the same constraint. Without it the
        critic would be held to a per-pixel slope √pixels (≈ 100 at 83×128) times smaller than
        SinGAN's and its signal would vanish under the reconstruction loss.
        """
        return self.critic(x) / math.sqrt(x.shape[-2] * x.shape[-1])

    def _open_level(self) -> None:
        """Grow the generator by one level, set its noise amplitude and fresh optimisers."""
        previous_critic = self.critic
        self.stage += 1
        self.iteration = 0
        self.frozen_rec = None
        size = self.sizes[self.stage]
        if self.stage == 0:
            self.amps.append(1.0)
            self.rec_noise.append(self._noise(1, size))
        else:
            with torch.no_grad():
                below = upsample(self.reconstruct(), size)
                rmse = torch.sqrt(F.mse_loss(below, self.reals[self.stage])).item()
            self.amps.append(self.settings.noise_amp_init * rmse)
            self.rec_noise.append(torch.zeros(1, self.channels, *size, device=self.device))
        self.generator.grow().to(self.device)
        self._build_trainers()
        if previous_critic is not None:
            self.critic.load_state_dict(previous_critic.state_dict())

    def _build_trainers(self) -> None:
        s, k = self.settings, self.stage
        low = self.lowest_trained
        for level, stage in enumerate(self.generator.stages):
            stage.requires_grad_(level >= low)
        groups = [{"params": self.generator.stages[level].parameters(), "lr": s.lr * s.lr_scale ** (k - level)}
                  for level in range(low, k + 1)]
        self.opt_g = torch.optim.Adam(groups, lr=s.lr, betas=(0.5, 0.999))
        self.critic = Critic(self.channels, s.width, s.critic_layers).to(self.device)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=s.lr, betas=(0.5, 0.999))
        milestone = [max(1, int(s.lr_drop * self.level_iters(k)))]
        self.sched_g = torch.optim.lr_scheduler.MultiStepLR(self.opt_g, milestone, gamma=0.1)
        self.sched_d = torch.optim.lr_scheduler.MultiStepLR(self.opt_d, milestone, gamma=0.1)

    @property
    def lowest_trained(self) -> int:
        return max(0, self.stage - self.settings.concurrent + 1)

    def _noise(self, n: int, size: tuple[int, int]) -> torch.Tensor:
        return torch.randn(n, self.channels, *size, generator=self.rng).to(self.device)

    @property
    def _trained_levels(self) -> range:
        return range(self.lowest_trained, self.stage + 1)

    def _fake_and_reconstruction(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """A random sample at the current level and the reconstruction at every trained level,
        computed as one batch of two.

        Only the trained levels keep a graph; the frozen levels' reconstruction is fixed, so it
        is computed once per level (`_frozen_rec`).
        """
        k, low = self.stage, self.lowest_trained
        noise = [self._noise(1, size) for size in self.sizes[: k + 1]]
        x = None
        if low > 0:
            with torch.no_grad():
                x = torch.cat([self.generator(noise, self.amps, self.sizes, end=low), self._frozen_rec()])
        both = [torch.cat([z, r]) for z, r in zip(noise, self.rec_noise)]
        outputs = self.generator.levels(both, self.amps, self.sizes, x=x, begin=low, end=k + 1)
        return outputs[-1][:1], [out[1:] for out in outputs]

    def _frozen_rec(self) -> torch.Tensor:
        if self.frozen_rec is None:
            with torch.no_grad():
                self.frozen_rec = self.generator(self.rec_noise, self.amps, self.sizes, end=self.lowest_trained)
        return self.frozen_rec

    # --- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self) -> torch.Tensor:
        """The image the fixed reconstruction noise gives at the current top level."""
        return self.generator(self.rec_noise, self.amps, self.sizes)

    @torch.no_grad()
    def reconstruction_error(self) -> float:
        """RMSE (in [-1, 1] units) between the reconstruction and the real image at the top level."""
        return torch.sqrt(F.mse_loss(self.reconstruct(), self.reals[self.stage])).item()

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, scale: tuple[float, float] = (1.0, 1.0),
               inject_stage: int = 0, noise_scale: float = 1.0) -> torch.Tensor:
        """`n` random images N×C×H×W in [-1, 1] from the levels trained so far.

        `scale` = (height, width) factors for other sizes and aspect ratios. `inject_stage` k > 0
        starts at level k from the real image downsampled to level k−1: higher k keeps more of
        the real layout; 0 generates from noise alone. `noise_scale` multiplies the noise of the
        levels above the coarsest: 1 gives the trained amplitudes (`noise_amp_init` × the
        reconstruction RMSE of the level below); larger values give stronger texture (speckle in
        OCT), far more turns to noise.
        """
        levels = len(self.generator.stages)
        if not 0 <= inject_stage < max(levels, 1):
            raise ValueError(f"inject_stage must be in 0..{levels - 1}")
        rng = torch.Generator().manual_seed(seed) if seed is not None else self.rng
        sizes = [(max(4, round(h * scale[0])), max(4, round(w * scale[1]))) for h, w in self.sizes[:levels]]
        noise = [torch.randn(n, self.channels, *size, generator=rng).to(self.device) for size in sizes]
        x = None
        if inject_stage:
            x = resize(self.reals[inject_stage - 1], sizes[inject_stage - 1]).expand(n, -1, -1, -1)
        self.generator.eval()
        amps = [self.amps[0]] + [a * noise_scale for a in self.amps[1:]]
        out = self.generator(noise, amps, sizes, x=x, begin=inject_stage)
        self.generator.train()
        return out.clamp(-1, 1).cpu()

    # --- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume training mid-level (plain tensors and numbers only)."""
        return {"settings": self.settings.to_dict(), "image": self.image, "stage": self.stage,
                "iteration": self.iteration, "amps": list(self.amps),
                "rec_noise": [z.cpu() for z in self.rec_noise], "generator": self.generator.state_dict(),
                "critic": self.critic.state_dict() if self.critic else None,
                "opt_g": self.opt_g.state_dict() if self.opt_g else None,
                "opt_d": self.opt_d.state_dict() if self.opt_d else None,
                "sched_g": self.sched_g.state_dict() if self.sched_g else None,
                "sched_d": self.sched_d.state_dict() if self.sched_d else None,
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.stage, self.iteration = int(state["stage"]), int(state["iteration"])
        self.frozen_rec = None
        self.amps = [float(a) for a in state["amps"]]
        self.rec_noise = [z.to(self.device) for z in state["rec_noise"]]
        while len(self.generator.stages) < self.stage + 1:
            self.generator.grow().to(self.device)
        self.generator.load_state_dict(state["generator"])
        self.rng.set_state(state["rng"])
        if state.get("critic") is not None:
            self._build_trainers()
            self.critic.load_state_dict(state["critic"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_g.load_state_dict(state["sched_g"])
            self.sched_d.load_state_dict(state["sched_d"])

    def save(self, path: str | Path, training_state: bool = True) -> Path:
        """Write the model atomically; without the training state it is a small generator file."""
        state = self.state_dict()
        if not training_state:
            state.update(critic=None, opt_g=None, opt_d=None, sched_g=None, sched_d=None)
        return atomic_save(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "SinGAN":
        """A SinGAN from a file written by `save`."""
        path = Path(path)
        state = read_state(path)
        try:
            model = cls(state["image"], SinGanSettings.from_dict(state["settings"]), device=device)
            model.load_state_dict(state)
        except STATE_ERRORS as e:
            raise ValueError(f"{path.name} is not a SinGAN checkpoint this version can read: {e}") from None
        return model


# What applying a state dict of another version or shape raises.
STATE_ERRORS = (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError)


def read_state(path: Path) -> dict:
    """The dict in a SinGAN file (`SinGAN.save`, a trainer's last.pt), loaded with weights_only: no pickled code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such SinGAN checkpoint") from None
    except Exception as e:  # noqa: BLE001 - whatever fails to parse, the file is unusable
        reason = (str(e).splitlines() or [""])[0][:200]
        raise ValueError(f"{path.name} is not a SinGAN checkpoint: not a weights-only PyTorch file "
                         f"({type(e).__name__}: {reason})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path.name} is not a SinGAN checkpoint: it holds a {type(state).__name__}, not a dict")
    return state
