"""The synthetic sets the lab holds: every `artifacts/<name>.npz` with its sidecar in a run directory.

Generator runs export sets there, uploads are registered there (`runs/uploads/<id>/`), and the
quality and study pages offer the ones that fit the current dataset (`data.synthetic.incompatibility`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.datasets import DatasetSpec
from data.paths import runs_dir
from data.synthetic import incompatibility, read_meta


@dataclass
class SyntheticSetInfo:
    path: Path  # the .npz
    meta: dict  # its sidecar (data.synthetic.save_set)

    @property
    def name(self) -> str:
        return self.meta.get("name") or f"{self.path.parent.parent.name}/{self.path.stem}"

    @property
    def label(self) -> str:
        gen = self.meta.get("generator", "?")
        return f"{gen} · {self.meta.get('count', '?')} images · {self.name}"


def list_sets(root: Path | None = None) -> list[SyntheticSetInfo]:
    """Every synthetic set under the runs directory (`<kind>/<run>/artifacts/`), newest first."""
    root = Path(root or runs_dir())
    paths = sorted(root.glob("*/*/artifacts/*.npz"), key=_modified, reverse=True)
    return [SyntheticSetInfo(p, read_meta(p)) for p in paths if p.with_suffix(".json").exists()]


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # deleted while listing
        return 0.0


def compatible_sets(spec: DatasetSpec, channels: int, num_classes: int,
                    root: Path | None = None) -> list[SyntheticSetInfo]:
    """The sets that fit a dataset of `channels` and `num_classes` (see `incompatibility`), newest first."""
    return [s for s in list_sets(root) if incompatibility(s.meta, spec, channels, num_classes) is None]
