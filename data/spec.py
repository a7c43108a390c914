"""How a dataset is named: `DatasetSpec`, carried by every job config so a run can be reproduced from
its config alone. A spec is checked when it is built (a size of 0, an unknown source, a folder without
a path are refused there, before any job is queued). `data.datasets.load_dataset` loads what it names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from data.config import MAX_SEED, Config, ConfigError, option

DEFAULT_FLAG = "dermamnist"


@dataclass(frozen=True)
class DatasetSpec(Config):
    source: str = option("medmnist", label="Source", choices=("medmnist", "folder"),
                         help="medmnist: a MedMNIST flag; folder: an image folder (an uploaded zip is extracted "
                              "to one)")
    name: str = option(DEFAULT_FLAG, label="Name", help="MedMNIST flag; for folders a display name")
    size: int = option(28, label="Size (px)", min=8, max=512,
                       help="working size in pixels (images are square after import)")
    path: str = option("", label="Folder", help="folder root (source=folder)")
    channels: int = option(0, label="Channels", choices=(0, 1, 3),
                           help="folders: 1 (grayscale) or 3 (RGB); 0 = detect (grayscale if every image is)")
    val_fraction: float = option(0.1, label="Validation fraction", min=0, max=1, min_exclusive=True,
                                 help="share carved out for validation when a folder has no val/ split")
    test_fraction: float = option(0.2, label="Test fraction", min=0, max=1, min_exclusive=True,
                                  help="share carved out for testing when a folder has no test/ split")
    split_seed: int = option(0, label="Split seed", min=0, max=MAX_SEED, help="seed of the carved splits")
    patient_pattern: str = option("", label="Patient id pattern",
                                  help="folders: a regular expression whose group `patient` (or first group) finds "
                                       "the patient in each file's path, e.g. '_p(?P<patient>\\d+)_'; whole patients "
                                       "then go to one split. Empty: only OCT2017-style names "
                                       "(<CLASS>-<patient>-<n>) are grouped by patient.")

    def validate(self) -> None:
        if self.source == "folder" and not self.path.strip():
            raise ConfigError("DatasetSpec.path: a folder dataset needs the folder's path")
        if self.patient_pattern:
            try:
                groups = re.compile(self.patient_pattern).groups
            except re.error as e:
                raise ConfigError(f"DatasetSpec.patient_pattern: not a regular expression ({e})") from None
            if not groups:
                raise ConfigError("DatasetSpec.patient_pattern: needs a group that captures the patient id, "
                                  "e.g. '_p(?P<patient>\\d+)_'")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"DatasetSpec: val_fraction + test_fraction must leave images for training; "
                              f"got {self.val_fraction} + {self.test_fraction}")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.size}px)"
