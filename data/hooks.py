"""How a long loop talks to whoever runs it: plain callbacks and one interruption error.

Every long loop of the library (GAN trainer, SinGAN, classifier, metrics encoder, folder
import, scoring) takes a `Hooks`. It reports progress and events through it, asks it whether
to stop, and keeps resumable state in its `checkpoints` folder. When asked to stop it saves
that state and raises `Interrupted`. The loops know nothing of run directories or jobs:
`lab/` builds a Hooks from a run (`Run.hooks()`), a test or a benchmark passes none.
"""
from __future__ import annotations

from dataclasses import dataclass
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

    def stop_if_asked(self) -> None:
        if self.should_stop():
            raise Interrupted()


NO_HOOKS = Hooks()
