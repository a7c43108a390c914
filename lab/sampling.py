"""Drawing a synthetic set from a finished generator, once, with the provenance of the run that trained it.

Thousands of images per class take minutes on a CPU, so the Samples page queues a "sample" job
(lab/kinds/sample.py) rather than drawing them in its script thread. The set lands in that run's
artifacts (where the Quality and Study pages find it), its metadata naming the generator's origin and
its provenance: that of the generator's GAN run, or unknown for an uploaded generator.

A set is drawn once: when a set with the same draw exists (same generator, seed and images per
class, e.g. the GAN run's own export), nothing new is registered and the result names that set. A
sample run's `artifacts/result.json` holds {"set": <set id>, "identical_to": <set id> or null};
`sample_result(run)` reads it, with where the set is now. `export` draws without a run
(for `python -m lab sample`).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from data.config import MAX_IMAGES_PER_CLASS, MAX_SEED, Config, ConfigError, option
from data.files import read_json
from data.hooks import NO_HOOKS, Hooks
from data.provenance import Provenance
from data.synthetic import save_set, set_id
from gans.checkpoint import generator_provenance, load_generator
from gans.sampling import has_labels, synthesize
from lab.engine.runs import Run, RunFileError, find_run, list_runs
from lab.provenance_check import generator_name, member_file
from lab.sets import draw, find_identical, resolve_set

RESULT = "result.json"


@dataclass(frozen=True)
class SampleConfig(Config):
    generator: str = option("", help="Path of the generator.pt to draw from.")
    origin: str = option("", help="Where the generator came from: its GAN run's id, or upload:<file name>.")
    per_class: int = option(200, label="Images per class", min=1, max=MAX_IMAGES_PER_CLASS, step=50,
                            help="Images of every class (all images, for a whole-dataset generator).")
    seed: int = option(0, label="Seed", min=0, max=MAX_SEED, help="Same seed, same images.")
    name: str = option("synthetic", label="Set name", help="File name of the set: letters, digits, - and _.")

    def validate(self) -> None:
        if not self.generator:
            raise ConfigError("SampleConfig.generator: give the path of a generator.pt")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.name):
            raise ConfigError(f"SampleConfig.name: use 1 to 64 letters, digits, - and _; got {self.name!r}")


@dataclass(frozen=True)
class SampleResult:
    """What a finished sample job made: its set, or the identical set that already existed."""
    set_id: str
    identical_to: str | None  # the existing set it is identical to; None when the job drew a new set
    path: Path | None  # where that set is now; None when it was deleted since


def export(config: SampleConfig, directory: Path, root: Path | None = None, hooks: Hooks = NO_HOOKS) -> SampleResult:
    """Draw the set `config` describes into `directory` (a run's artifacts/) with its generator's provenance,
    unless a set with the same draw exists under the runs folder `root`: then nothing is drawn."""
    generator_id, provenance, trained_on = generator_origin(config, root)
    drawn = draw(generator_id, config.seed, config.per_class)
    same = find_identical(drawn, root)
    if same is not None:
        return SampleResult(same.id, same.id, same.path)
    gan, gan_config, class_names = load_generator(config.generator)
    images = synthesize(gan, config.per_class, class_names, seed=config.seed, source=config.origin, hooks=hooks)
    path = save_set(images, directory, config.name, provenance, trained_on, generator=gan_config.gan,
                    run_id=config.origin, dataset=gan_config.dataset, seed=config.seed, labelled=has_labels(gan),
                    draw=drawn)
    return SampleResult(set_id(path), None, path)


def generator_origin(config: SampleConfig, root: Path | None = None) -> tuple[str, Provenance, np.ndarray | None]:
    """The id naming the generator in draws, its provenance and its fingerprints (None when unknown).

    A generator is trusted only as the checkpoints/generator.pt of the GAN run `origin` names (or the
    generator-m<k>.pt of one member of the GAN stack run it names, then named "<run id>-m<k>" as that member's own
    set names it); any other file (an upload) is named by its content and has unknown provenance.
    """
    path = Path(config.generator)
    gan_run = _gan_run(config.origin, root)
    generator_id = _generator_id(gan_run, path) if gan_run is not None else None
    if generator_id is not None:
        provenance, trained_on = generator_provenance(path)
        return generator_id, provenance, trained_on
    content = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    reason = f"uploaded generator {config.origin.removeprefix('upload:')}" if config.origin.startswith("upload:") \
        else f"{path.name} is not the generator of the GAN run '{config.origin}'"
    return f"file:{content}", Provenance.unknown(reason), None


class FinishedGenerator(NamedTuple):
    run: Run  # a GAN run, or a GAN stack run
    path: Path  # the generator file
    member: int | None  # which member of the stack; None for a GAN run
    seed: int | None  # the member's seed (a study's seed); None for a GAN run


def finished_generators(root: Path | None = None) -> list[FinishedGenerator]:
    """The generator file of every finished GAN run and of every member of every finished GAN stack run (a
    batched study's recipe generators), newest run first."""
    found = []
    for run in sorted(list_runs("gan", root) + list_runs("gan-stack", root), key=lambda r: r.id, reverse=True):
        if run.kind == "gan":
            found += [FinishedGenerator(run, run.checkpoints / "generator.pt", None, None)]
            continue
        try:
            seeds = [int(member["seed"]) for member in run.settings["members"]]
        except (RunFileError, KeyError, TypeError, ValueError):  # an unreadable or foreign config: not offered
            continue
        found += [FinishedGenerator(run, run.checkpoints / member_file("generator.pt", k), k, seed)
                  for k, seed in enumerate(seeds)]
    return [g for g in found if g.path.is_file()]


def _gan_run(origin: str, root: Path | None) -> Run | None:
    if not origin or origin.startswith("upload:"):
        return None
    try:
        run = find_run(origin, root)
    except LookupError:
        return None
    return run if run.kind in ("gan", "gan-stack") and run.id == origin else None


def _generator_id(gan_run: Run, path: Path) -> str | None:
    """How draws name the generator file at `path` when it is `gan_run`'s (a stack's: one of its members'), else None."""
    if gan_run.kind == "gan":
        files = {"generator.pt": gan_run.id}
    else:
        members = len(gan_run.settings.get("members") or [])
        files = {member_file("generator.pt", k): generator_name(gan_run.id, k) for k in range(members)}
    return next((generator_id for name, generator_id in files.items()
                 if (gan_run.checkpoints / name).resolve() == path.resolve()), None)


def sample_result(run: Run) -> SampleResult | None:
    """The result of a finished sample job; None before it has one (or when its result file is unreadable)."""
    result = read_json(run.artifacts / RESULT, default=None)
    if not isinstance(result, dict) or not isinstance(result.get("set"), str):
        return None
    try:
        path = resolve_set(result["set"], root=run.path.parent.parent)
    except FileNotFoundError:
        path = None
    identical = result.get("identical_to")
    return SampleResult(result["set"], identical if isinstance(identical, str) else None, path)
