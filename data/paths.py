"""Where the lab keeps things on disk. Every location can be moved with an environment variable."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """MedMNIST npz files (and downloads). `LAB_DATA_DIR`, default `./datasets`."""
    return Path(os.environ.get("LAB_DATA_DIR", "datasets")).expanduser().resolve()


def runs_dir() -> Path:
    """Run directories of every job. `LAB_RUNS_DIR`, default `./runs`. ValueError naming the variable when
    it names a file, or a path below one (no folder can be made there)."""
    path = Path(os.environ.get("LAB_RUNS_DIR", "runs")).expanduser().resolve()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing == path and not path.is_dir():
        raise ValueError(f"LAB_RUNS_DIR={path} is a file, not a folder")
    if not existing.is_dir():
        raise ValueError(f"LAB_RUNS_DIR={path} cannot be a folder: {existing} is a file")
    return path


def cache_dir() -> Path:
    """Imported folders and extracted uploads. `LAB_CACHE_DIR`, default `<runs>/cache`."""
    if "LAB_CACHE_DIR" in os.environ:
        return Path(os.environ["LAB_CACHE_DIR"]).expanduser().resolve()
    return runs_dir() / "cache"
