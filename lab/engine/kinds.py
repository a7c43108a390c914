"""Job kinds, found by name.

The kind "gan" is the adapter module `lab/kinds/gan.py` (a kind's dashes are underscores there; "import"
is `import_folder.py`): its `CONFIG`, the job's strict config class, and `run(run)`, which runs the job in
its run directory; optionally `estimate(settings)`, when its time is not that of one job of its own
(lab.engine.eta). Only the module of the kind asked for is imported, so a worker that counts to ten
loads nothing of the others, and the engine names no kind.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from data.config import Config

PACKAGE = "lab.kinds"
FOLDER = Path(__file__).resolve().parents[1] / "kinds"
MODULE_OF = {"import": "import_folder"}  # kinds whose name is no Python module name


@dataclass(frozen=True)
class JobKind:
    name: str
    config: type[Config]  # the job's strict config, built from a run's settings before it is queued
    run: Callable[[Any], None]  # the adapter: runs the job in its run directory (a lab.engine.runs.Run)
    estimate: Callable[[dict], Any] | None  # its own estimate (lab.engine.eta.Estimate), if it has one


def module_name(kind: str) -> str:
    return MODULE_OF.get(kind, kind.replace("-", "_"))


def known_kinds() -> list[str]:
    """Every kind there is an adapter module for, by name."""
    kind_of = {module: kind for kind, module in MODULE_OF.items()}
    return sorted(kind_of.get(p.stem, p.stem.replace("_", "-")) for p in FOLDER.glob("*.py") if p.stem != "__init__")


def job_kind(kind: str) -> JobKind:
    """The kind's config class and adapter (its module imported on first use: most load torch).
    KeyError naming the known kinds for a kind with no adapter module."""
    if not isinstance(kind, str) or kind not in known_kinds():
        raise KeyError(f"Unknown job kind {kind!r} (known: {', '.join(known_kinds())})")
    module = importlib.import_module(f"{PACKAGE}.{module_name(kind)}")
    return JobKind(kind, module.CONFIG, module.run, getattr(module, "estimate", None))
