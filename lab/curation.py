"""Curated synthetic sets: a set scored image by image against the real images its generator was allowed to
see (metrics.curation), and a new set of the images a rule or a reviewer keeps.

A "curate" job (lab/kinds/curate.py) scores one set (`score`): `artifacts/scores.json` (a
metrics.curation.CurationScores), and, in `checkpoints/trained_on.npy`, the fingerprints of the real images
its models learned from: a GAN set's exactly the real images its generator learned from (by the verified
fingerprints), a single-image generator's the share of the split it drew its seeds from. With a rule the job then writes the
curated set. The Review page keeps a reviewer's choices in `artifacts/review.json` as they are made
(`save_choices`) and saves the reviewed set (`write_reviewed`).

A curated set lies in the curation run's artifacts, beside its scores. Its sidecar's `curation` names the
parent set, the rule or the reviewer's choices, and the images kept and dropped per class; its provenance
is the parent's with the curation's real images added (`with_curation`) and `curation_run` set, which
lab.provenance_check verifies against both runs, so a study refuses a curated set whose scoring models saw
real images outside a seed's subset like any leak. The parent is never changed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.config import Config, ConfigError, option
from data.datasets import load_dataset
from data.files import atomic_write_json, read_json
from data.hooks import Hooks
from data.imageset import ImageSet
from data.provenance import Provenance, digest, fingerprints
from data.synthetic import load_set, read_meta, save_set
from gans import SINGLE_IMAGE
from lab.engine.runs import Run, list_runs
from lab.provenance_check import record_fingerprints, recorded_fingerprints, verified_provenance, with_curation
from lab.sets import resolve_set, set_id
from metrics.curation import (CurationConfig, CurationRule, CurationScores, drop_reasons, kept_per_class, score_set,
                              select)

KIND = "curate"
SCORES = "scores.json"
REVIEW = "review.json"
CHOICES = ("keep", "drop")
COPIED_META = ("generator", "run_id", "dataset", "labelled", "preset")  # kept from the parent's sidecar


@dataclass(frozen=True)
class CurateConfig(Config):
    set: str = option("", label="Synthetic set", help="the set to score and curate: its id (<run id>/<set name>)")
    rule: CurationRule | None = None  # None: score only (a reviewer, or a rule later, curates)
    name: str = option("curated", label="Curated set name", help="file name of the curated set: letters, digits, "
                                                                 "- and _")
    scoring: CurationConfig = field(default_factory=CurationConfig)

    def validate(self) -> None:
        if not self.set or self.set.endswith(".npz"):
            raise ConfigError(f"CurateConfig.set: give the id of a set of the runs folder (<run id>/<set name>); "
                              f"got {self.set!r}")
        _check_name(self.name, "CurateConfig.name")


def _check_name(name: str, where: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ConfigError(f"{where}: use 1 to 64 letters, digits, - and _; got {name!r}")


def parent_set(ref: str, root: Path | None = None) -> tuple[Path, Provenance, np.ndarray]:
    """The npz of the set `ref`, its verified provenance and fingerprints; a set whose provenance the lab
    cannot verify is refused (there are no real images to score it against)."""
    path = resolve_set(ref, root)
    provenance, trained_on = verified_provenance(path, root)
    if not provenance.known:
        raise ValueError(f"set {ref}: its provenance is unknown ({provenance.reason}); curation scores a set "
                         "against the real images its generator was allowed to see, so it needs a set the lab "
                         "made and verified")
    return path, provenance, trained_on


def allowed_real(provenance: Provenance, trained_on: np.ndarray) -> ImageSet:
    """The real images a set's generator was allowed to see: a GAN's, exactly those it learned from (the split's
    images with its verified fingerprints `trained_on`, even when it was given them by index); a single-image
    generator's, the share of the split its provenance names, which it drew its seed images from."""
    split = getattr(load_dataset(provenance.dataset), provenance.split)
    if provenance.generator in SINGLE_IMAGE:
        return split.stratified_subset(provenance.train_fraction, provenance.subset_seed)
    return split.take(np.flatnonzero(np.isin(fingerprints(split.images), trained_on)))


def score(run: Run, config: CurateConfig, hooks: Hooks) -> CurationScores:
    """Score the set `config.set` in `run` (artifacts/scores.json), recording the real images its models see."""
    root = run.path.parent.parent
    path, provenance, trained_on = parent_set(config.set, root)
    real = allowed_real(provenance, trained_on)
    record_fingerprints(run, fingerprints(real.images))
    scores = score_set(load_set(path), real, config.scoring, hooks)
    scores.save(run.artifacts / SCORES)
    return scores


def scores_of(run: Run) -> CurationScores:
    return CurationScores.load(run.artifacts / SCORES)


def write_by_rule(run: Run, rule: CurationRule, name: str) -> Path:
    """The curated set of the images of `run`'s scored set that pass `rule`."""
    scores = scores_of(run)
    keep = select(scores, rule)
    return write_curated(run, keep, name, {"rule": rule.to_dict(), "rule_text": rule.text,
                                           "dropped_because": drop_reasons(scores, rule)})


def write_reviewed(run: Run, name: str) -> Path:
    """The set of the images the reviewer did not drop (images not yet reviewed are kept)."""
    choices = review_choices(run)
    scores = scores_of(run)
    keep = np.ones(len(scores), dtype=bool)
    keep[[i for i, c in choices.items() if c == "drop"]] = False
    kept = sorted(i for i, c in choices.items() if c == "keep")
    return write_curated(run, keep, name, {"review": {
        "kept": kept, "dropped": sorted(i for i, c in choices.items() if c == "drop"),
        "unreviewed": int(len(scores) - len(choices)), "rule_text": "reviewed by hand (unreviewed images kept)"}})


def write_curated(run: Run, keep: np.ndarray, name: str, how: dict) -> Path:
    """Save the images `keep` selects of `run`'s parent set as the set `name` in `run`'s artifacts, with the
    parent's provenance plus the curation's real images, and `how` (the rule or the review) in its sidecar."""
    _check_name(name, "curated set name")
    config = CurateConfig.from_dict(run.settings)
    root = run.path.parent.parent
    path, parent, parent_prints = parent_set(config.set, root)
    if (run.artifacts / f"{name}.npz").exists():
        raise ValueError(f"run {run.id} already holds a set named {name}; choose another name")
    synthetic = load_set(path)
    keep = np.asarray(keep, dtype=bool)
    if len(keep) != len(synthetic):
        raise ValueError(f"run {run.id}: {len(keep)} choices for the {len(synthetic)} images of set {config.set}")
    if not keep.any():
        raise ValueError(f"set {config.set}: the curation keeps none of its {len(synthetic)} images")
    curation_prints = recorded_fingerprints(run)
    if curation_prints is None:
        raise ValueError(f"run {run.id} recorded no fingerprints of the real images it scored against")
    prints = with_curation(parent_prints, curation_prints)
    provenance = parent.replace(real_images=len(prints), digest=digest(prints), curation_run=run.id)
    classes = synthetic.num_classes
    parent_meta = read_meta(path)
    curation = {"parent": set_id(path), "parent_count": len(synthetic), "run": run.id,
                "kept": int(keep.sum()), "kept_per_class": kept_per_class(synthetic.labels, keep, classes),
                "dropped_per_class": kept_per_class(synthetic.labels, ~keep, classes),
                "curation_real_images": len(curation_prints), **how}
    return save_set(synthetic.take(np.flatnonzero(keep)), run.artifacts, name, provenance, prints,
                    display_name=f"{parent_meta.get('name') or set_id(path)} · {name}",
                    **{k: parent_meta[k] for k in COPIED_META if k in parent_meta}, curation=curation)


# --- the reviewer's choices ---------------------------------------------------------------------

def review_choices(run: Run) -> dict[int, str]:
    """Image index -> "keep" | "drop", as saved so far ({} before any; entries that do not parse are ignored)."""
    stored = read_json(run.artifacts / REVIEW, default={})
    choices = stored.get("choices") if isinstance(stored, dict) else None
    if not isinstance(choices, dict):
        return {}
    return {int(i): c for i, c in choices.items() if isinstance(i, str) and i.isdigit() and c in CHOICES}


def save_choices(run: Run, choices: dict[int, str], images: int) -> dict[int, str]:
    """Merge `choices` (image index -> "keep" | "drop") into the run's saved review, atomically; returns the
    review as saved. An index outside the set's `images` or another choice is a ValueError."""
    bad = [i for i, c in choices.items() if not 0 <= int(i) < images or c not in CHOICES]
    if bad:
        raise ValueError(f"run {run.id}: review choices for images {bad[:5]} are not keep or drop of one of the "
                         f"{images} images")
    merged = {**review_choices(run), **{int(i): c for i, c in choices.items()}}
    atomic_write_json(run.artifacts / REVIEW, {"choices": {str(i): c for i, c in sorted(merged.items())}})
    return merged


def curation_runs(ref: str, root: Path | None = None) -> list[Run]:
    """The finished curation runs of the set `ref`, newest first."""
    return [run for run in list_runs(KIND, root) if run.config.get("set") == ref and run.state == "done"]


def curated_set(run: Run, name: str) -> str:
    """One line on the curated set `name` of `run`: its id, what it kept of its parent and why the rest went."""
    path = run.artifacts / f"{name}.npz"
    curation = read_meta(path).get("curation")
    if not isinstance(curation, dict):
        return f"run {run.id} holds no curated set named {name}"
    because = ", ".join(f"{n} {why}" for why, n in (curation.get("dropped_because") or {}).items() if n)
    return (f"set {set_id(path)}: kept {curation.get('kept')} of the {curation.get('parent_count')} images of "
            f"{curation.get('parent')} ({curation.get('rule_text')}); kept per class {curation.get('kept_per_class')}"
            + (f"; failed: {because}" if because else ""))
