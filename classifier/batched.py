"""Several classifiers trained as one computation: the members of a study that share a budget.

`train_classifiers` is `classifier.train.train_classifier` for K members at once, on one packed
network (`classifier.packed`). Everything a member's numbers depend on stays its own: its training
images, its batch stream (the same `BatchStream` of its seed, so it draws exactly the batches its
ordinary run draws), its augmentation seeds, its class balance (sampler or weighted loss), its
dropout and drop-connect masks (its own generator, started where its ordinary run's global
generator starts), its BatchNorm statistics, its AdamW state, its model selection on validation
and its drawn-image record. What the members share is what the study holds equal anyway: the
architecture, image size, number of classes, steps, batch size, learning-rate schedule, weight
decay and evaluation points, so one optimizer over the packed weights is K separate AdamWs.

The numbers are those of the ordinary runs up to float rounding (grouped convolutions sum in a
different order), which training amplifies: tests/test_classifier_batched.py states how far apart
they end. Early stopping (`patience`) is not batched: a member that stops would leave the others'
computation shaped around it; `train_classifiers` refuses it.

The group checkpoints as one file (`group.pt` in `hooks.checkpoints`) at every evaluation and
when asked to stop, and resumes from it: no member is lost and no step repeated.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from classifier.evaluate import classification_metrics, to_input
from classifier.model import build_model
from classifier.packed import PackedEfficientNet, build_member, member_state_dict, pack, pack_inputs
from classifier.train import (Augment, BatchStream, TrainConfig, TrainResult, class_weights, eval_record,
                              learning_rate_schedule)
from data.device import resolve_device
from data.files import atomic_save
from data.hooks import NO_HOOKS, Hooks, Interrupted

CHECKPOINT = "group.pt"
EVAL_BATCH = 256


@dataclass
class Member:
    """One classifier of the group: its training images (uint8 N×H×W×C), labels, seed and options."""
    images: np.ndarray
    labels: np.ndarray
    seed: int
    augment: Augment | None = None
    balance: str = "none"  # TrainConfig.balance of this member: none, sampler or loss


def shared_config(config: TrainConfig) -> TrainConfig:
    """The part of a training config the members of one group must share: all but the class balance."""
    return replace(config, balance="none")


def train_classifiers(members: list[Member], val_images: np.ndarray, val_labels: np.ndarray, num_classes: int,
                      config: TrainConfig, hooks: Hooks = NO_HOOKS) -> list[TrainResult]:
    """Train every member for `config.steps` steps as one packed model; each member's weights that scored
    best on val, as ordinary models, in the order of `members`.

    `config.balance` is ignored (each member has its own). Hooks as `train_classifier`'s; events carry
    `member` (its index). With `hooks.checkpoints` the group saves and resumes `group.pt` there.
    """
    if not members:
        raise ValueError("train_classifiers needs at least one member")
    if config.patience:
        raise ValueError("TrainConfig.patience: early stopping is not batched; train these members one at a time")
    shapes = {m.images.shape[1:] for m in members}
    if len(shapes) != 1:
        raise ValueError(f"members' images differ in shape ({sorted(shapes)}); a group shares one image size")
    device = resolve_device(config.device)
    size, channels = members[0].images.shape[1], members[0].images.shape[3]
    built = [build_member(m.seed, num_classes, channels, size, config.variant, config.weights_path) for m in members]
    generators = [g if device.type == "cpu" else torch.Generator(device).manual_seed(m.seed)
                  for m, (_, g) in zip(members, built)]
    model = pack([model.to(device) for model, _ in built], generators)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = learning_rate_schedule(optimizer, config)
    group = _Group(members, num_classes, config.batch_size, device)

    state = {"step": 0, "seconds": 0.0, "members": [_fresh(len(m.labels)) for m in members]}
    checkpoint = hooks.checkpoints / CHECKPOINT if hooks.checkpoints is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = _load(checkpoint, model, optimizer, schedule, len(members))
        hooks.event(type="resume", step=state["step"])

    started = time.time() - state["seconds"]
    model.train()
    while state["step"] < config.steps:
        step = state["step"]
        inputs, labels = group.batch(step, state["members"])
        losses = group.losses(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # members share no weights: each gets the gradient of its own loss
        optimizer.step()
        schedule.step()
        for member, loss in zip(state["members"], losses.tolist()):
            member["losses"].append(loss)
        state["step"] = step = step + 1

        if step % 20 == 0:
            for k, member in enumerate(state["members"]):
                hooks.event(type="train", member=k, step=step, loss=float(np.mean(member["losses"][-20:])),
                            lr=schedule.get_last_lr()[0])
        hooks.progress(step, config.steps, message=f"training {len(members)} as one, step {step}/{config.steps}")
        if step % config.eval_every == 0 or step == config.steps:
            for k, (member, val) in enumerate(zip(state["members"], evaluate_members(model, val_images, val_labels))):
                record = _select(member, model, k, step, val, config.selection_metric)
                hooks.event(type="eval", member=k, **record)
            state["seconds"] = time.time() - started
            if checkpoint is not None:
                _save(checkpoint, state, model, optimizer, schedule)
        if hooks.should_stop():
            if checkpoint is not None:
                state["seconds"] = time.time() - started
                _save(checkpoint, state, model, optimizer, schedule)
            raise Interrupted()

    seconds = time.time() - started
    results = []
    for member in state["members"]:
        ordinary = build_model(num_classes, channels, size, config.variant).to(device)
        ordinary.load_state_dict(member["best_weights"])
        results.append(TrainResult(model=ordinary, steps=state["step"], best_step=member["best_step"],
                                   best_val=member["best_val"], history=member["history"],
                                   drawn=member["drawn"].numpy(), images_seen=state["step"] * config.batch_size,
                                   seconds=seconds))
    return results


class _Group:
    """The members' data side: one batch stream, augmentation and loss weighting per member."""

    def __init__(self, members: list[Member], num_classes: int, batch_size: int, device: torch.device):
        self.members, self.device = members, device
        self.images = [torch.from_numpy(np.ascontiguousarray(m.images)) for m in members]
        self.labels = [torch.from_numpy(np.asarray(m.labels, dtype=np.int64)) for m in members]
        self.streams = [BatchStream(m.labels, batch_size, m.seed, balanced=m.balance == "sampler") for m in members]
        self.weights = [class_weights(np.asarray(m.labels), num_classes).to(device) if m.balance == "loss" else None
                        for m in members]

    def batch(self, step: int, states: list[dict]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The packed input of this step (member k's batch in channel block k) and each member's labels;
        marks the drawn images."""
        batches, labels = [], []
        for member, images, targets, stream, state in zip(self.members, self.images, self.labels, self.streams, states):
            index = stream.batch(step)
            state["drawn"][index] = True
            batch = images[index]
            if member.augment is not None:
                batch = torch.from_numpy(member.augment(batch.numpy(), (member.seed * 1_000_003 + step) % 2**31))
            batches.append(to_input(batch, self.device))
            labels.append(targets[index].to(self.device))
        return pack_inputs(batches), labels

    def losses(self, logits: torch.Tensor, labels: list[torch.Tensor]) -> torch.Tensor:
        """Each member's cross-entropy, as its ordinary run computes it (K values), from N×K×classes logits."""
        return torch.stack([F.cross_entropy(logits[:, k], target, weight=weight)
                            for k, (target, weight) in enumerate(zip(labels, self.weights))])


@torch.no_grad()
def evaluate_members(model: PackedEfficientNet, images: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Every member's `classification_metrics` on the same uint8 images, in one pass of the packed model."""
    device = next(model.parameters()).device
    images = torch.as_tensor(images)
    was_training = model.training
    model.eval()
    probs = []
    for i in range(0, len(images), EVAL_BATCH):
        x = to_input(images[i:i + EVAL_BATCH], device)
        logits = model(x.repeat(1, model.members, 1, 1).contiguous(memory_format=torch.channels_last))
        probs.append(torch.softmax(logits.float(), dim=2).cpu())
    model.train(was_training)
    probs = torch.cat(probs).numpy()
    return [classification_metrics(labels, probs[:, k]) for k in range(model.members)]


def _fresh(n_images: int) -> dict:
    return {"best_score": -np.inf, "best_step": 0, "best_val": {}, "best_weights": None, "history": [],
            "losses": [], "drawn": torch.zeros(n_images, dtype=torch.bool)}


def _select(member: dict, model: PackedEfficientNet, k: int, step: int, val: dict, metric: str) -> dict:
    """Record member k's evaluation at `step`; keep its weights when they beat its best so far."""
    record = eval_record(step, member["losses"], val)
    member["history"].append(record)
    if val[metric] > member["best_score"]:
        member.update(best_score=val[metric], best_step=step, best_val=val,
                      best_weights={name: t.cpu() for name, t in member_state_dict(model, k).items()})
    return record


def _save(path, state: dict, model: PackedEfficientNet, optimizer, schedule) -> None:
    saved = {**state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "generators": [s.cpu() for s in model.generator_states()]}
    atomic_save(path, lambda tmp: torch.save(saved, tmp))


def _load(path, model: PackedEfficientNet, optimizer, schedule, members: int) -> dict:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if len(saved["members"]) != members:
            raise ValueError(f"it holds {len(saved['members'])} members, this group {members}")
        model.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        schedule.load_state_dict(saved.pop("schedule"))
        model.set_generator_states(saved.pop("generators"))
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise ValueError(f"Checkpoint {path} does not fit this group of classifiers: {e}") from None
    return saved
