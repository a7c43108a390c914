"""The classifier training loop: a fixed budget of optimizer steps on in-memory uint8 tensors.

Every arm of a study gets the same number of optimizer steps (not epochs: an arm with more
images would otherwise get more updates). Batches are drawn from a stream that depends only
on (seed, step), so a resumed run continues with exactly the batches it would have drawn.
Model selection uses the real validation split; the loop records which training images it
actually drew so a caller can prove what the model saw.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from classifier.evaluate import CLASSIFICATION_METRICS, evaluate, to_input
from classifier.model import VARIANTS, build_model
from data.config import MAX_BATCH, MAX_EVERY, MAX_STEPS, Config, ConfigError, option
from data.device import resolve_device
from data.files import atomic_save
from data.hooks import NO_HOOKS, Hooks, Interrupted

BALANCE_MODES = ("none", "sampler", "loss")

# (uint8 N×H×W×C images, seed) -> augmented images of the same shape; see data.augment.apply.
Augment = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class TrainConfig(Config):
    variant: str = option("efficientnet-b0", label="EfficientNet variant", choices=VARIANTS)
    steps: int = option(400, label="Optimizer steps", min=1, max=MAX_STEPS,
                        help="the budget: identical in every arm of a study")
    batch_size: int = option(64, label="Batch size", min=1, max=MAX_BATCH)
    lr: float = option(2e-3, label="Peak learning rate", min=0, min_exclusive=True,
                       help="peak of the one-cycle schedule (AdamW)")
    weight_decay: float = option(0.05, label="Weight decay", min=0, help="AdamW")
    warmup_fraction: float = option(0.1, label="Warm-up fraction", min=0, max=0.5,
                                    help="share of the steps spent warming up")
    eval_every: int = option(100, label="Evaluate every (steps)", min=1, max=MAX_EVERY,
                             help="steps between validation evaluations (and checkpoints)")
    patience: int = option(0, label="Patience", min=0, max=MAX_STEPS,
                           help="evaluations without improvement before stopping early; 0 = use the whole budget")
    balance: str = option("none", label="Class balance", choices=BALANCE_MODES,
                          help="sampler: torchsampler's ImbalancedDatasetSampler; loss: class-weighted loss")
    selection_metric: str = option("balanced_accuracy", label="Selection metric", choices=CLASSIFICATION_METRICS,
                                   help="validation metric that picks the weights kept")
    weights_path: str = option("", label="Pretrained weights",
                               help="local pretrained EfficientNet weights; empty = from scratch")
    device: str = option("auto", label="Device", help="auto (CUDA when present), cpu, cuda or cuda:N")

    def validate(self) -> None:
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ConfigError(f"TrainConfig.device must be auto or a torch device such as cpu or cuda:0; "
                                  f"got {self.device!r}") from None


@dataclass
class TrainResult:
    model: torch.nn.Module  # holding the selected (best validation) weights
    steps: int  # optimizer steps taken
    best_step: int
    best_val: dict  # validation metrics of the selected weights
    history: list[dict] = field(default_factory=list)  # one entry per validation evaluation
    drawn: np.ndarray = None  # bool per training image: drawn into at least one batch
    images_seen: int = 0
    seconds: float = 0.0


def learning_rate_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """One-cycle schedule (warm-up, then cosine decay to a small fraction of `lr`).

    OneCycleLR divides by the length of each phase in steps, so the warm-up keeps at least two steps
    and a budget of two steps or fewer (no room for two phases) trains at the constant `lr`.
    """
    if config.steps <= 2:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    warmup = min(max(config.warmup_fraction, 2 / config.steps), 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps,
                                               pct_start=warmup)


class BatchStream:
    """Training-set indices for step s: a fixed function of (seed, s).

    Each pass over the data is a permutation (or, with the balanced sampler, a draw from
    torchsampler's ImbalancedDatasetSampler with the labels passed explicitly), generated
    under its own seed so the global RNG the model's dropout uses is left alone.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int, balanced: bool):
        self.n, self.batch_size, self.seed = len(labels), batch_size, seed
        self.sampler = None
        if balanced:
            # imported here: torchsampler loads torchvision (about a second), which an arm without it never needs
            from torchsampler import ImbalancedDatasetSampler

            self.sampler = ImbalancedDatasetSampler(labels, labels=labels.tolist())
        self._epoch, self._order = -1, None

    def _order_for(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed * 100_003 + epoch)
                self._order = (torch.tensor(list(self.sampler)) if self.sampler is not None
                               else torch.randperm(self.n))
            self._epoch = epoch
        return self._order

    def batch(self, step: int) -> torch.Tensor:
        start = step * self.batch_size
        parts = []
        while len(parts) == 0 or sum(len(p) for p in parts) < self.batch_size:
            epoch, offset = divmod(start, self.n)
            take = min(self.batch_size - sum(len(p) for p in parts), self.n - offset)
            parts.append(self._order_for(epoch)[offset:offset + take])
            start += take
        return torch.cat(parts)


def eval_record(step: int, losses: list[float], val: dict) -> dict:
    """One history entry: the step, the mean training loss since the last evaluation (then cleared), the
    validation scores."""
    record = {"step": step, "loss": float(np.mean(losses)) if losses else None,
              **{f"val_{k}": val[k] for k in CLASSIFICATION_METRICS}}
    losses.clear()
    return record


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 over the classes present."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def train_classifier(train_images: np.ndarray, train_labels: np.ndarray,
                     val_images: np.ndarray, val_labels: np.ndarray, num_classes: int,
                     config: TrainConfig, seed: int = 0, augment: Augment | None = None,
                     hooks: Hooks = NO_HOOKS) -> TrainResult:
    """Train for `config.steps` optimizer steps; return the weights that scored best on val.

    Images are uint8 N×H×W×C, labels ints in [0, num_classes). The loop reports every step
    through `hooks.progress` and the training loss, validation scores and resumes through
    `hooks.event`. With `hooks.checkpoints` it saves `last.pt` there at every evaluation and
    resumes from it; when `hooks.should_stop()` turns true it saves and raises `Interrupted`.
    """
    device = resolve_device(config.device)
    torch.manual_seed(seed)
    images = torch.from_numpy(np.ascontiguousarray(train_images))
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    size, channels = images.shape[1], images.shape[3]
    model = build_model(num_classes, channels, size, config.variant, config.weights_path).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = learning_rate_schedule(optimizer, config)
    weight = class_weights(labels.numpy(), num_classes).to(device) if config.balance == "loss" else None
    stream = BatchStream(labels.numpy(), config.batch_size, seed, balanced=config.balance == "sampler")

    state = {"step": 0, "best_score": -np.inf, "best_step": 0, "best_val": {}, "best_weights": None,
             "history": [], "losses": [], "stale": 0, "drawn": torch.zeros(len(labels), dtype=torch.bool), "seconds": 0.0}
    checkpoint = hooks.checkpoints / "last.pt" if hooks.checkpoints is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = _load_checkpoint(checkpoint, model, optimizer, schedule)
        hooks.event(type="resume", step=state["step"])

    started, losses = time.time() - state["seconds"], state["losses"]  # losses since the last evaluation
    model.train()
    while state["step"] < config.steps:
        step = state["step"]
        index = stream.batch(step)
        state["drawn"][index] = True
        batch = images[index]
        if augment is not None:
            batch = torch.from_numpy(augment(batch.numpy(), (seed * 1_000_003 + step) % 2**31))
        loss = F.cross_entropy(model(to_input(batch, device)), labels[index].to(device), weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        state["step"] = step = step + 1

        if step % 20 == 0:
            hooks.event(type="train", step=step, loss=float(np.mean(losses[-20:])), lr=schedule.get_last_lr()[0])
        hooks.progress(step, config.steps, message=f"training step {step}/{config.steps}")
        if step % config.eval_every == 0 or step == config.steps:
            val = evaluate(model, val_images, val_labels)
            record = eval_record(step, losses, val)
            state["history"].append(record)
            score = val[config.selection_metric]
            if score > state["best_score"]:
                state.update(best_score=score, best_step=step, best_val=val, stale=0,
                             best_weights={k: v.detach().clone() for k, v in model.state_dict().items()})
            else:
                state["stale"] += 1
            hooks.event(type="eval", **record)
            state["seconds"] = time.time() - started
            if config.patience and state["stale"] >= config.patience:
                break
            if checkpoint is not None:
                _save_checkpoint(checkpoint, state, model, optimizer, schedule)
        if hooks.should_stop():
            if checkpoint is not None:
                state["seconds"] = time.time() - started
                _save_checkpoint(checkpoint, state, model, optimizer, schedule)
            raise Interrupted()

    model.load_state_dict(state["best_weights"])
    return TrainResult(model=model, steps=state["step"], best_step=state["best_step"], best_val=state["best_val"],
                       history=state["history"], drawn=state["drawn"].numpy(),
                       images_seen=state["step"] * config.batch_size, seconds=time.time() - started)


def _save_checkpoint(path: Path, state: dict, model, optimizer, schedule) -> None:
    saved = {**state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "rng": torch.get_rng_state()}
    atomic_save(path, lambda tmp: torch.save(saved, tmp))


def _load_checkpoint(path: Path, model, optimizer, schedule) -> dict:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        schedule.load_state_dict(saved.pop("schedule"))
    except (RuntimeError, KeyError, ValueError) as e:
        raise ValueError(f"Checkpoint {path} does not fit this training config: {e}") from None
    torch.set_rng_state(saved.pop("rng"))
    return saved
