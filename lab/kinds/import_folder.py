"""Job kind "import": decode an image folder once into the import cache.

Config: {"dataset": a DatasetSpec of source "folder"}. Output: the cache npz (shared by every run
that names the same folder, size and channels) and artifacts/import.json, its summary with the
split it made (`split_report` lines, `splits`: images and patients per split and class). A folder
that cannot be split fails the job before any image is decoded.
"""
from __future__ import annotations

from dataclasses import dataclass

from data import folder
from data.config import Config, ConfigError
from data.datasets import DatasetSpec
from data.files import atomic_write_json
from lab.engine.runs import Run


@dataclass(frozen=True)
class ImportConfig(Config):
    dataset: DatasetSpec

    def validate(self) -> None:
        if self.dataset.source != "folder":
            raise ConfigError(f"ImportConfig.dataset: only folders are imported; got source '{self.dataset.source}'")


CONFIG = ImportConfig


def run(run: Run) -> None:
    config = ImportConfig.from_dict(run.settings)
    folder.check_split(config.dataset)  # a folder that cannot be split is refused before any decoding
    path = folder.import_folder(config.dataset, run.hooks())
    splits, report = folder.load(config.dataset)
    summary = {**folder.import_summary(path),
               "split_report": [line for line in report if not line.startswith("skipped")],
               "splits": folder.split_table(splits, config.dataset.patient_pattern)}
    run.progress(summary["images"], summary["images"], message="imported", force=True)
    atomic_write_json(run.artifacts / "import.json", summary)
