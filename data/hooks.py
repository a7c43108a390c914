"""How a long loop talks to whoever runs it: plain callbacks and one interruption error.

Every long loop of the library (GAN trainer, SinGAN, classifier, metrics encoder, folder
import, scoring) takes a `Hooks`. It reports progress and events through it, asks it whether
to stop, and keeps resumable state in its `checkpoints` folder. When asked to stop it saves
that state and raises `Interrupted`. The loops know nothing of run directories or jobs:
`lab/` builds a Hooks from a run (`Run.hooks()`), a test or a benchmark passes none.

A loop made of stages (scoring: the encoder, the real reference, each set; the pre-screen: each
classifier) reports each stage through `hooks.part(name)`, whose progress runs from 0 to that stage's
own total. `one_bar` turns those into one bar for the whole job: each stage fills its share, sized by
its expected cost, the bar never goes back, and each message names its stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable


class Interrupted(Exception):
    """A loop stopped because its caller asked it to (after it saved its checkpoint)."""


def _ignore(*args, **kwargs) -> None:
    return None


def _never() -> bool:
    return False


@dataclass
class Hooks:
    # progress(done, total, message="", force=False, **metrics): a step count and the latest numbers
    progress: Callable[..., None] = _ignore
    # event(type="...", **fields): anything worth a line in the record (stages, sample grids, resumes)
    event: Callable[..., None] = _ignore
    should_stop: Callable[[], bool] = _never
    checkpoints: Path | None = None  # folder for resumable state; None: the loop keeps none
    samples: Path | None = None  # folder for sample grids; None: the loop draws none
    # stage(name) -> the Hooks of one named stage (see `part`); None: the stage's name before its messages
    stage: Callable[[str], "Hooks"] | None = None

    def stop_if_asked(self) -> None:
        if self.should_stop():
            raise Interrupted()

    def part(self, name: str) -> "Hooks":
        """The hooks of the stage `name`, whose progress counts from 0 to the stage's own total: a share of
        one bar under `one_bar`, else the stage's own bar with its name before each message."""
        if self.stage is not None:
            return self.stage(name)

        def progress(done: int, total: int, message: str = "", **metrics) -> None:
            self.progress(done, total, f"{name}: {message}", **metrics)

        return replace(self, progress=progress)


BAR = 1000  # the steps of one_bar's bar: its shares need no more resolution


def one_bar(hooks: Hooks, costs: dict[str, float]) -> Hooks:
    """`hooks` whose stages (`Hooks.part`) fill one bar from 0 to BAR in the order of `costs`, each its
    share by its expected cost (seconds; 0 for work found in a cache). A stage not in `costs` takes no
    room; progress reported outside any stage keeps the bar where it is and shows its message. The bar
    never goes back, so a stage restarted within itself only holds it still."""
    if not any(costs.values()):  # nothing expected to cost anything: the stages share the bar equally
        costs = dict.fromkeys(costs, 1.0)
    whole = sum(costs.values()) or 1.0
    starts, at = {}, 0.0
    for name, cost in costs.items():
        starts[name], at = at, at + cost
    shown = [0]

    def show(value: int, message: str, metrics: dict) -> None:
        shown[0] = max(shown[0], min(BAR, value))
        hooks.progress(shown[0], BAR, message, **metrics)

    def stage(name: str) -> Hooks:
        start, cost = starts.get(name), costs.get(name, 0.0)
        hooks.event(type="stage", stage=name, done=shown[0], total=BAR)

        def progress(done: int, total: int, message: str = "", **metrics) -> None:
            fraction = min(1.0, done / total) if total > 0 else 1.0
            value = shown[0] if start is None else math.floor(BAR * (start + cost * fraction) / whole + 1e-9)
            show(value, f"{name}: {message}", metrics)

        return replace(hooks, progress=progress, stage=None)

    def outside(done: int, total: int, message: str = "", **metrics) -> None:
        show(shown[0], message, metrics)

    return replace(hooks, progress=outside, stage=stage)


NO_HOOKS = Hooks()
