"""A small CNN trained on the real training split: the lab's domain feature space.

FID, KID, precision/recall and density/coverage need image features. Beside the standard
Inception-v3 space (metrics.inception), which was never trained on medical images, the lab
trains a compact classifier on the dataset's own training images and uses its penultimate layer
(`features`). The same model doubles as a quick real-data classifier (`predict`).

Training fits the data: at least `min_steps` optimizer steps however small the dataset (546
images at batch 128 would otherwise be 4 steps an epoch), with early stopping on the validation
split's balanced accuracy (measured every `eval_every` steps; the best weights are kept).

A feature space is only worth its numbers if the encoder learned something: `withheld_reason`
says why its metrics must not be reported when its validation balanced accuracy is not clearly
above chance. The rule: the balanced accuracy must beat chance (1 / classes) by at least
MIN_MARGIN and a label-permutation test must give p < MAX_P_VALUE. The accuracy is measured on
the split that picked the checkpoint, so it is slightly optimistic; the margin absorbs that.

A trained encoder is cached on disk under `cache_dir()/encoders/`, keyed by a fingerprint of
the training images, labels, the config and the training recipe (RECIPE), so every job on the
same data reuses it and a changed training loop never reuses an old encoder. Several jobs may
fill the cache at once: each writes under its own temporary name and moves the file into place,
so a reader sees a whole checkpoint or none. A cached file that cannot be read is trained again and
replaced, with a line in the log saying so.
"""
from __future__ import annotations

import copy
import hashlib
import json
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from data.config import MAX_BATCH, MAX_EVERY, MAX_SEED, MAX_STEPS, Config, ConfigError, option
from data.device import resolve_device
from data.files import atomic_save
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet, to_tensor
from data.paths import cache_dir
from metrics.stats import balanced_accuracy, balanced_accuracy_p_value

RECIPE = "v2: step budget max(min_steps, epochs), early stopping on validation balanced accuracy"
MIN_MARGIN = 0.10  # balanced accuracy points above chance an encoder must reach for its numbers to be reported
MAX_P_VALUE = 0.01  # and its label-permutation p-value must be below this
# One optimizer step of the default encoder (width 24, batch 128, 28 px) on a 2-core CPU, its validations
# included: about a fifth of an EfficientNet-b0 step of 64 images (measured side by side on this machine)
STEP_S = 0.06


@dataclass(frozen=True)
class EncoderConfig(Config):
    input_size: int = option(0, label="Input size (px)", min=0, max=256,
                             help="side the network sees; 0 = the images' own side, at most 64")
    width: int = option(24, label="Width", min=1, max=256, help="channels of the first block; doubled per block")
    feature_dim: int = option(128, label="Feature dimension", min=1, max=4096, help="length of the feature vector")
    epochs: int = option(4, label="Epochs", min=1, max=10_000,
                         help="passes over the training images, unless min_steps asks for more")
    min_steps: int = option(400, label="Minimum steps", min=1, max=MAX_STEPS,
                            help="optimizer steps at least, however small the dataset")
    eval_every: int = option(25, label="Validate every (steps)", min=1, max=MAX_EVERY,
                             help="steps between measurements of validation balanced accuracy")
    patience: int = option(6, label="Patience (validations)", min=1, max=MAX_STEPS,
                           help="stop after this many validations in a row without a better balanced accuracy")
    batch_size: int = option(128, label="Batch size", min=1, max=MAX_BATCH)
    lr: float = option(3e-3, label="Learning rate", min=0, min_exclusive=True)
    seed: int = option(0, label="Seed", min=0, max=MAX_SEED)
    device: str = option("auto", label="Device", choices=("auto", "cpu", "cuda"), help="auto: CUDA when present")


class EncoderNet(nn.Module):
    """Three conv blocks (conv, batchnorm, ReLU, max-pool), global average pooling, a feature layer and a linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, config: EncoderConfig):
        super().__init__()
        w = config.width
        blocks, c = [], in_channels
        for out in (w, 2 * w, 4 * w):
            blocks += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c = out
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(c, config.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(config.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.embed(self.body(x))
        return features, self.head(features)


class Encoder:
    """A trained EncoderNet with numpy-in, numpy-out helpers (uint8 N×H×W×C images)."""

    def __init__(self, net: EncoderNet, config: EncoderConfig, class_names: list[str], info: dict):
        self.net = net.eval()
        self.config = config
        self.class_names = class_names
        # source, fingerprint, train_images, steps, best_step, train_seconds and, with a validation
        # split: val_images, val_accuracy, val_balanced_accuracy, val_balanced_chance, val_p_value
        self.info = info
        self.cached = False  # loaded from train_encoder's cache rather than trained now

    @property
    def name(self) -> str:
        acc = self.info.get("val_balanced_accuracy")
        acc_text = f", val balanced acc {acc:.2f}" if acc is not None else ""
        return f"lab-cnn-{self.config.feature_dim}d ({self.info.get('source', '?')}{acc_text})"

    def withheld_reason(self) -> str:
        """Why the encoder's metrics must not be reported ("" when they may): see the module docstring."""
        acc, chance, p = (self.info.get(k) for k in ("val_balanced_accuracy", "val_balanced_chance", "val_p_value"))
        if acc is None or p is None:
            return "encoder not validated (no validation split): encoder-space metrics withheld"
        if acc >= chance + MIN_MARGIN and p < MAX_P_VALUE:
            return ""
        return (f"encoder at balanced accuracy {acc:.2f}, chance {chance:.2f} (permutation p = {p:.2g} on "
                f"{self.info['val_images']} validation images; needs +{MIN_MARGIN:.2f} and p < {MAX_P_VALUE}): "
                f"not clearly above chance, encoder-space metrics withheld")

    def _batches(self, images: np.ndarray, batch_size: int = 512):
        """(features, logits) of each batch, on the CPU, computed where the network lives."""
        device = next(self.net.parameters()).device
        for start in range(0, len(images), batch_size):
            features, logits = self.net(to_input(images[start:start + batch_size], self.config.input_size).to(device))
            yield features.cpu(), logits.cpu()

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.config.feature_dim), dtype=np.float32)
        return torch.cat([f for f, _ in self._batches(images)]).numpy()

    @torch.no_grad()
    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return torch.cat([logits.softmax(1) for _, logits in self._batches(images)]).numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(1)


def to_input(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 N×H×W×C -> float N×C×size×size in [-1, 1]; size 0 keeps the side (at most 64)."""
    size = size or min(images.shape[1], 64)
    x = to_tensor(images)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def fingerprint(images: ImageSet, config: EncoderConfig) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(images.images).tobytes())
    h.update(images.labels.tobytes())
    h.update(json.dumps([images.class_names, config.to_dict(), RECIPE], sort_keys=True).encode())
    return h.hexdigest()[:16]


def cache_path(source: str, key: str) -> Path:
    """Where the encoder with fingerprint `key`, trained on images from `source`, is cached."""
    return cache_dir() / "encoders" / f"{source or 'data'}-{key}.pt".replace("/", "_")


def train_encoder(train: ImageSet, val: ImageSet | None = None, config: EncoderConfig = EncoderConfig(),
                  cache: bool = True, hooks: Hooks = NO_HOOKS) -> Encoder:
    """Train (or load from the disk cache) an encoder on `train`, stopping early on `val`.

    Without a validation split it trains the whole budget and records no accuracy (so its
    numbers are withheld). Training reports each step through `hooks.progress` and raises
    `Interrupted` when `hooks.should_stop()` (minutes at most: nothing is checkpointed).
    """
    key = fingerprint(train, config)
    path = cache_path(train.source, key)
    if cache and path.exists():
        try:
            encoder = load_encoder(path, train.channels)
            encoder.cached = True
            return encoder
        except ValueError as e:
            print(f"cache: {path} cannot be used ({e}); training the encoder again", file=sys.stderr, flush=True)
    encoder = _train(train, val if val is not None and len(val) else None, config, key, hooks)
    if cache:
        save_encoder(encoder, path)
    return encoder


def expected_seconds(train: ImageSet, config: EncoderConfig, cache: bool = True) -> float:
    """About how long `train_encoder` takes on a 2-core CPU: 0 when the encoder is in the cache."""
    if cache and cache_path(train.source, fingerprint(train, config)).exists():
        return 0.0
    return training_seconds(len(train), train.size, config)


def training_seconds(images: int, size: int, config: EncoderConfig) -> float:
    """About how long training on `images` images of `size` px takes on a 2-core CPU (no cache)."""
    side = config.input_size or min(size, 64)
    _, steps = step_budget(images, config)
    return steps * STEP_S * (side / 28) ** 2 * config.batch_size / 128 * (config.width / 24) ** 2


def step_budget(train_images: int, config: EncoderConfig) -> tuple[int, int]:
    """(steps per epoch, total optimizer steps): `epochs` passes, but never fewer than `min_steps`."""
    steps_per_epoch = max(1, train_images // config.batch_size)
    return steps_per_epoch, max(config.min_steps, config.epochs * steps_per_epoch)


def _train(train: ImageSet, val: ImageSet | None, config: EncoderConfig, key: str, hooks: Hooks) -> Encoder:
    started = time.time()
    device = resolve_device(config.device)
    gen = torch.Generator().manual_seed(config.seed)  # batches and flips drawn on the CPU: the same on any device
    with torch.random.fork_rng():  # a seeded initialisation without touching the caller's global RNG
        torch.manual_seed(config.seed)
        net = EncoderNet(train.channels, train.num_classes, config).to(device)
    encoder = Encoder(net, config, list(train.class_names), {"source": train.source, "fingerprint": key,
                                                              "train_images": len(train)})
    x_all = to_input(train.images, config.input_size).to(device)
    y_all = torch.from_numpy(train.labels).to(device)
    # Class-balanced loss: medical sets are skewed and the features must separate rare classes too
    # (so judge it by balanced accuracy; plain accuracy can fall below the majority-class rate).
    counts = torch.from_numpy(train.class_counts()).float().clamp_(min=1)
    weights = ((counts.sum() / counts) / (counts.sum() / counts).mean()).to(device)
    steps_per_epoch, total = step_budget(len(train), config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    batches = _batch_indices(len(train), config.batch_size, steps_per_epoch, gen)
    best = {"accuracy": -1.0, "step": 0, "state": None}
    for step in range(1, total + 1):
        idx = next(batches).to(device)
        x = x_all[idx]
        flip = (torch.rand(len(x), generator=gen) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        net.train()
        loss = F.cross_entropy(net(x)[1], y_all[idx], weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        metrics = {}
        if val is not None and (step % config.eval_every == 0 or step == total):
            net.eval()
            metrics["val_balanced_accuracy"] = balanced_accuracy(encoder.predict(val.images), val.labels)
            if metrics["val_balanced_accuracy"] > best["accuracy"]:
                best = {"accuracy": metrics["val_balanced_accuracy"], "step": step,
                        "state": copy.deepcopy(net.state_dict())}
        hooks.progress(step, total, f"training encoder, step {step}/{total}", **metrics)
        hooks.stop_if_asked()
        if val is not None and step - best["step"] >= config.patience * config.eval_every:
            break  # `patience` validations in a row without a better balanced accuracy
    encoder.info.update(steps=step, train_seconds=round(time.time() - started, 1))
    if val is not None:
        net.load_state_dict(best["state"])
        encoder.info.update(best_step=best["step"], **validation(encoder.predict(val.images), val.labels))
    net.eval()
    return encoder


def _batch_indices(n: int, batch_size: int, steps_per_epoch: int, gen: torch.Generator):
    """Endless minibatches of indices into n images, reshuffled each epoch (a short last batch is dropped)."""
    while True:
        order = torch.randperm(n, generator=gen)
        for b in range(steps_per_epoch):
            yield order[b * batch_size:(b + 1) * batch_size]


def validation(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """What the encoder's validation predictions say: accuracy, balanced accuracy, its chance level
    (1 / classes present) and the one-sided label-permutation p-value of the balanced accuracy."""
    return {"val_images": len(labels), "val_accuracy": float((predicted == labels).mean()),
            "val_balanced_accuracy": balanced_accuracy(predicted, labels),
            "val_balanced_chance": 1 / len(np.unique(labels)),
            "val_p_value": balanced_accuracy_p_value(predicted, labels)}


def save_encoder(encoder: Encoder, path: Path) -> None:
    blob = {"state_dict": encoder.net.state_dict(), "config": encoder.config.to_dict(),
            "class_names": encoder.class_names, "info": encoder.info}
    atomic_save(path, lambda tmp: torch.save(blob, tmp))


def load_encoder(path: Path, in_channels: int) -> Encoder:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        config = EncoderConfig.from_dict(blob["config"])
        net = EncoderNet(in_channels, len(blob["class_names"]), config)
        net.load_state_dict(blob["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ConfigError, pickle.UnpicklingError) as e:
        raise ValueError(f"{path.name} is not a lab encoder checkpoint: {e}") from None
    return Encoder(net, config, list(blob["class_names"]), dict(blob["info"]))
