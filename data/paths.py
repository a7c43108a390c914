"""Where the lab keeps things on disk. Every location can be moved with an environment variable."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """MedMNIST npz files (and downloads). `LAB_DATA_DIR`, default `./datasets`."""
    return Path(os.environ.get("LAB_DATA_DIR", "datasets")).expanduser().resolve()


def runs_dir() -> Path:
    """Run directories of every job. `LAB_RUNS_DIR`, default `./runs`."""
    return Path(os.environ.get("LAB_RUNS_DIR", "runs")).expanduser().resolve()


def cache_dir() -> Path:
    """Imported folders and extracted uploads. `LAB_CACHE_DIR`, default `<runs>/cache`."""
    default = runs_dir() / "cache"
    return Path(os.environ.get("LAB_CACHE_DIR", default)).expanduser().resolve()
