"""Provenance: which real images a synthetic set's generator learned from.

Every set the lab writes records a `Provenance` in its sidecar (`data.synthetic.save_set`): the
dataset, split, training fraction and subset seed the generator learned from, how many real
images that was and an order-free digest of their fingerprints, the generator kind, its run id
and config. The fingerprints themselves (`trained_on`, uint64 N) are stored in the set's npz, so
a study can count how many of them lie outside the real subset its classifier sees, or in its
validation and test splits (`leak_report`). Uploaded sets and generators are "provenance
unknown", whatever their files claim: the lab records only what it saw itself. A set's files are
claims anyone can edit: the study believes them only when they agree with the run that wrote the
set (`lab.provenance_check`, which knows run directories; this module reads files only).

A fingerprint is a 64-bit BLAKE2b hash of an image's bytes: identical pixels (same size and
channels), identical fingerprint. The same fingerprints are what a study records in
`data_seen.npz`.
"""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.config import Config, ConfigError, option
from data.datasets import DatasetSpec
from data.files import read_json


def fingerprints(images: np.ndarray) -> np.ndarray:
    """A 64-bit content hash per image (uint8 N×H×W×C -> uint64 N): identical pixels, identical fingerprint."""
    return np.array([int.from_bytes(hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=8).digest(),
                                    "little") for im in images], dtype=np.uint64)


def digest(prints: np.ndarray) -> str:
    """One hash (24 hex digits) for a collection of fingerprints, independent of their order."""
    return hashlib.blake2b(np.sort(np.asarray(prints, dtype=np.uint64)).tobytes(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Provenance(Config):
    """What a set's generator learned from; `known=False` (with the reason) when the lab cannot tell."""
    known: bool = False
    reason: str = ""  # why it is unknown; "" when known
    dataset: DatasetSpec | None = None
    split: str = ""  # the split its real images came from ("train")
    train_fraction: float = option(1.0, min=0, max=1, min_exclusive=True)  # stratified share of that split
    subset_seed: int = option(0, min=0)  # seed of the share (or of the images drawn from it)
    real_images: int = option(0, min=0)  # how many real images it learned from
    digest: str = ""  # `digest` of their fingerprints
    generator: str = ""  # the generator kind: dcgan, singan, ...
    run_id: str = ""  # the run that trained it
    config: dict = field(default_factory=dict)  # that run's config
    # a curated set: the curation run whose scoring models learned from real images too; the fingerprints
    # and their count and digest are then those of the generator's and the curation's real images together
    curation_run: str = ""

    def validate(self) -> None:
        if not self.known and not self.reason:
            raise ConfigError("Provenance.reason: an unknown provenance says why it is unknown")
        missing = [name for name in ("dataset", "split", "digest", "generator", "run_id") if not getattr(self, name)]
        if self.known and missing:
            raise ConfigError(f"Provenance: a known provenance names its {', '.join(missing)}")

    @classmethod
    def unknown(cls, reason: str) -> Provenance:
        return cls(known=False, reason=reason)

    @classmethod
    def trained(cls, trained_on: np.ndarray, *, dataset: DatasetSpec, split: str, train_fraction: float,
                subset_seed: int, generator: str, run_id: str, config: dict) -> Provenance:
        """The provenance of a generator that learned from the real images with fingerprints `trained_on`."""
        return cls(known=True, dataset=dataset, split=split, train_fraction=train_fraction, subset_seed=subset_seed,
                   real_images=len(trained_on), digest=digest(trained_on), generator=generator, run_id=run_id,
                   config=dict(config))

    @property
    def text(self) -> str:
        """One line for tables and reports."""
        if not self.known:
            return f"provenance unknown: {self.reason}"
        share = f"the whole {self.split} split" if self.train_fraction == 1 else \
            f"{100 * self.train_fraction:g}% of the {self.split} split"
        curated = f" and curation run {self.curation_run}" if self.curation_run else ""
        return (f"{self.generator} run {self.run_id}{curated} learned from {self.real_images} real images of "
                f"{self.dataset.label}, drawn from {share} (seed {self.subset_seed})")

    def check(self, trained_on: np.ndarray | None, name: str) -> None:
        """Refuse fingerprints that are not those this provenance counted and digested (ValueError naming `name`)."""
        if not self.known:
            return
        if trained_on is None:
            raise ValueError(f"{name}: its provenance is recorded but not the fingerprints of its generator's "
                             "real images")
        if len(trained_on) != self.real_images or digest(trained_on) != self.digest:
            raise ValueError(f"{name}: the fingerprints it stores ({len(trained_on)}) are not the "
                             f"{self.real_images} real images its provenance records")


def read_provenance(set_path: str | Path) -> tuple[Provenance, np.ndarray | None]:
    """A synthetic set's provenance and the fingerprints of its generator's real images (None when unknown).

    A set that records no provenance (made before the lab recorded it) is unknown. A recorded
    provenance that does not parse, or whose fingerprints are missing from the npz or disagree
    with it, is a ValueError naming the file.
    """
    path = Path(set_path)
    meta = read_json(path.with_suffix(".json"), default={})
    recorded = meta.get("provenance") if isinstance(meta, dict) else None
    if recorded is None:
        return Provenance.unknown(f"{path.name} records no provenance"), None
    try:
        provenance = Provenance.from_dict(recorded)
    except ConfigError as e:
        raise ValueError(f"{path.with_suffix('.json').name}: malformed provenance ({e})") from None
    if not provenance.known:
        return provenance, None
    trained_on = _stored_fingerprints(path)
    provenance.check(trained_on, path.name)
    return provenance, trained_on


def _stored_fingerprints(path: Path) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            prints = f["trained_on"] if "trained_on" in f else None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path.name}: cannot read its fingerprints ({e})") from None
    if prints is not None and (prints.dtype != np.uint64 or prints.ndim != 1):
        raise ValueError(f"{path.name}: 'trained_on' must be uint64 fingerprints; got {prints.dtype} {prints.shape}")
    return prints


@dataclass(frozen=True)
class LeakReport:
    """How a set's generator's real images relate to a classifier's data (counts of images, not unique ones).

    `known` is False when the set's provenance is unknown; then the generator's counts are None.
    """
    known: bool
    generator_images: int | None  # real images the generator learned from
    subset_images: int  # real training images the classifier learns from
    outside_subset: int | None  # generator images the classifier's subset does not hold
    in_val: int | None  # generator images identical to a validation image
    in_test: int | None  # generator images identical to a test image
    reason: str = ""  # why unknown

    @property
    def text(self) -> str:
        """e.g. "generator trained on 701 real images, classifier on 70; 631 outside the classifier's subset"."""
        if not self.known:
            return (f"generator's real images unknown ({self.reason}), classifier trained on "
                    f"{self.subset_images} real images")
        text = f"generator trained on {self.generator_images} real images, classifier on {self.subset_images}"
        if self.outside_subset:
            text += f"; {self.outside_subset} outside the classifier's subset"
        held_out = [f"{n} {split}" for n, split in ((self.in_val, "validation"), (self.in_test, "test")) if n]
        if held_out:
            text += f"; {' and '.join(held_out)} images among them"
        return text


def leak_report(provenance: Provenance, trained_on: np.ndarray | None, subset_prints: np.ndarray,
                val_prints: np.ndarray, test_prints: np.ndarray) -> LeakReport:
    """Compare the fingerprints a generator learned from with a classifier's subset, validation and test images."""
    if not provenance.known or trained_on is None:
        return LeakReport(False, None, len(subset_prints), None, None, None,
                          provenance.reason or "no fingerprints recorded")
    return LeakReport(True, len(trained_on), len(subset_prints),
                      int((~np.isin(trained_on, subset_prints)).sum()),
                      int(np.isin(trained_on, val_prints).sum()), int(np.isin(trained_on, test_prints).sum()))
