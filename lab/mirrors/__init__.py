"""Mirrors: a run's events also written where other tools read them, as sinks of the run directory code.

- `tensorboard`: the run's scalars and sample grids as TensorBoard event files in its folder;
- `mlflow`: params, metrics, grids and the run's end in MLflow, when LAB_MLFLOW_TRACKING_URI is set.
The processes that run or manage jobs attach them (`attach`): the worker command, the CLI, the app.
"""
from __future__ import annotations

from lab.engine import runs
from lab.mirrors import mlflow, tensorboard

MIRRORS = (tensorboard, mlflow)


def attach() -> None:
    """Mirror the events of every run this process writes (once per process)."""
    runs.SINKS.extend(mirror for mirror in MIRRORS if mirror not in runs.SINKS)
