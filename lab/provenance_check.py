"""Whether a synthetic set's provenance is that of the run that wrote it.

A set's sidecar and npz are files anyone can edit, so what they say its generator learned from is
evidence only when it agrees with the generator run that made it (`verified_provenance`):
- the set lies in a run's artifacts/ inside the runs folder (links resolved): `<kind>/<run id>/artifacts/`;
- that run is the generator run (a "gan" run, a seeds-mode "singan" or "gpnn" run, or a "gan-stack" run, whose
  member k's set is `synthetic-m<k>.npz`, generator `generator-m<k>.pt` and fingerprints `trained_on-m<k>.npy`),
  or a "sample" run whose config names a GAN run and draws from that run's generator.pt;
- the provenance names that generator run, and agrees with its config.json on the dataset, split,
  training fraction, subset seed and generator;
- the fingerprints the generator run recorded of its real images as it trained (in the run, not
  beside the set: `checkpoints/trained_on.npy`, `record_fingerprints`) are the ones the set carries;
- a GAN run's generator.pt (a stack member's generator-m<k>.pt) records the same provenance and fingerprints.
A curated set lies in a "curate" run (lab/curation.py): its provenance must be its parent set's, itself
verified, with the curation run's recorded real images added (`with_curation`) and `curation_run` naming it.
Any disagreement makes the provenance unknown, saying what differs; forging it takes every one of
those files, not one.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data.config import ConfigError
from data.datasets import DatasetSpec
from data.files import atomic_save, atomic_write_json
from data.imageset import ImageSet
from data.paths import runs_dir
from data.provenance import Provenance, digest, fingerprints, read_provenance
from gans.checkpoint import CheckpointError, generator_provenance
from gans.config import GanConfig
from gans.gpnn import GpnnConfig
from gans.singan_train import SinGanConfig
from gans.stack import GanStackConfig
from lab.engine.runs import Run, RunFileError
from lab.sets import resolve_set

RECORDED = "trained_on.npy"  # in a generator run's checkpoints/: the fingerprints of the real images it learns from
MISMATCH = "provenance does not match the run that wrote it"
CURATION_DEPTH = 8  # a curated set of a curated set of ...: deeper chains are refused (and so is a loop)
SINGLE_IMAGE_CONFIGS = {"singan": SinGanConfig, "gpnn": GpnnConfig}
MEMBER_SET = re.compile(r"synthetic-m(\d+)")  # a gan-stack run's set of member k (`member_file`)
GENERATOR_FILES = {"gan": re.compile(r"generator\.pt"), "gan-stack": re.compile(r"generator-m(\d+)\.pt")}


def member_file(name: str, member: int | None) -> str:
    """Where a generator run keeps `name` ("synthetic.npz", "generator.pt", "trained_on.npy"): as it is, or, for
    member k of a gan-stack run, with "-m<k>" before the extension."""
    if member is None:
        return name
    stem, ext = name.split(".", 1)
    return f"{stem}-m{member}.{ext}"


def generator_name(run_id: str, member: int | None) -> str:
    """How draws name a generator run's generator (a stack member's: "<run id>-m<k>"), `lab.sets.draw`."""
    return run_id if member is None else f"{run_id}-m{member}"


def record_fingerprints(run: Run, trained_on: np.ndarray, member: int | None = None) -> None:
    """Keep in `run` the fingerprints of the real images it (its stack `member`) is about to learn from (once: a
    resumed run has them)."""
    path = run.checkpoints / member_file(RECORDED, member)
    if not path.exists():
        atomic_save(path, lambda tmp: np.save(tmp, np.asarray(trained_on, dtype=np.uint64)))


def keep_seed_images(run: Run, train_split: ImageSet, seeds: list[int]) -> None:
    """A single-image seeds run's seed images: their indices and labels in `artifacts/seeds.json`, their
    fingerprints recorded in the run (`record_fingerprints`)."""
    atomic_write_json(run.artifacts / "seeds.json", {"indices": seeds, "labels": train_split.labels[seeds].tolist()})
    record_fingerprints(run, fingerprints(train_split.images[seeds]))


def with_curation(generator_prints: np.ndarray, curation_prints: np.ndarray) -> np.ndarray:
    """The fingerprints of a curated set: its parent's, then the curation's real images the parent's lack."""
    generator_prints, curation_prints = (np.asarray(p, dtype=np.uint64) for p in (generator_prints, curation_prints))
    return np.concatenate([generator_prints, curation_prints[~np.isin(curation_prints, generator_prints)]])


def verified_provenance(set_path: str | Path, root: Path | None = None,
                        _depth: int = 0) -> tuple[Provenance, np.ndarray | None]:
    """A set's provenance and fingerprints (`data.provenance.read_provenance`) when they agree with the run
    under the runs folder `root` that wrote it; else unknown, naming what differs (fingerprints None).

    A set that disagrees with itself stays a ValueError naming the file, as in `read_provenance`.
    """
    path = Path(set_path).resolve()
    provenance, trained_on = read_provenance(path)
    if not provenance.known:
        return provenance, None
    root = Path(root or runs_dir()).resolve()
    writer = _writer(path, root)
    if writer is None:
        return Provenance.unknown(f"{path} is not in a run's artifacts/ under the runs folder {root}: "
                                  "a set copied out of its run folder"), None
    if writer.path.parent.name == "curate":
        differences = _curation_differences(provenance, trained_on, writer, root, _depth)
    else:
        differences = _differences(provenance, trained_on, writer, path)
    if differences:
        return Provenance.unknown(f"{MISMATCH}: {'; '.join(differences)}"), None
    return provenance, trained_on


def _writer(path: Path, root: Path) -> Run | None:
    """The run whose artifacts/ hold the set at `path` (resolved), or None when it lies anywhere else."""
    try:
        kind, run_id, folder, _ = path.relative_to(root).parts
    except ValueError:
        return None
    return Run(root / kind / run_id) if folder == "artifacts" else None


def _differences(provenance: Provenance, trained_on: np.ndarray, writer: Run, path: Path) -> list[str]:
    """What in the provenance and fingerprints of the set at `path` disagrees with the run that wrote it ([] when
    nothing)."""
    try:
        generator_run, member = _generator_run(writer, path)
        expected = _expected(generator_run, member)
    except (ConfigError, RunFileError, LookupError) as e:  # no generator run, or no readable config of one
        return [str(e)]
    differences = [f"it names run {provenance.run_id}, the set was made by run {generator_run.id}"] \
        if provenance.run_id != generator_run.id else []
    differences += [f"its {name} is {_shown(getattr(provenance, name))}, run {generator_run.id}'s config says "
                    f"{_shown(value)}" for name, value in expected.items() if getattr(provenance, name) != value]
    recorded = recorded_fingerprints(generator_run, member)
    if recorded is None:
        differences.append(f"run {generator_run.id} recorded no fingerprints of its real images in checkpoints/"
                           f"{member_file(RECORDED, member)} (made before the lab kept them, or deleted)")
    elif not _same_prints(recorded, trained_on):
        differences.append(f"the {len(trained_on)} fingerprints it carries are not the {len(recorded)} run "
                           f"{generator_run.id} recorded as it trained")
    if generator_run.path.parent.name in ("gan", "gan-stack"):
        differences += _generator_file_differences(provenance, trained_on, generator_run, member)
    return differences


def _curation_differences(provenance: Provenance, trained_on: np.ndarray, writer: Run, root: Path,
                          depth: int) -> list[str]:
    """What in a curated set's provenance disagrees with its parent set's (verified) and its curation run."""
    if depth >= CURATION_DEPTH:
        return [f"a chain of more than {CURATION_DEPTH} curations (or a loop) ends at curation run {writer.id}"]
    try:  # an unreadable config.json is a RunFileError, a ValueError
        parent_ref = str(writer.settings.get("set", ""))
        parent, parent_prints = verified_provenance(resolve_set(parent_ref, root), root, depth + 1)
    except (FileNotFoundError, ValueError) as e:
        return [f"the parent set of curation run {writer.id} cannot be read ({e})"]
    if not parent.known:
        return [f"its parent set {parent_ref}: {parent.reason}"]
    recorded = recorded_fingerprints(writer)
    if recorded is None:
        return [f"curation run {writer.id} recorded no fingerprints of its real images in checkpoints/{RECORDED}"]
    expected = with_curation(parent_prints, recorded)
    if not _same_prints(expected, trained_on):
        return [f"the {len(trained_on)} fingerprints it carries are not the {len(expected)} of its parent set "
                f"{parent_ref} and curation run {writer.id}"]
    claimed = parent.replace(real_images=len(expected), digest=digest(expected), curation_run=writer.id)
    return [] if provenance == claimed else [f"it says that {provenance.text}; its parent set and curation run say "
                                             f"that {claimed.text}"]


def _generator_run(writer: Run, path: Path) -> tuple[Run, int | None]:
    """The run that trained the generator of the set at `path`, and which member of it when it is a gan-stack run
    (else None): the writer itself (a stack's member by the set's name, synthetic-m<k>.npz), or the GAN run a
    sample run drew from (a stack's member by the generator file's name, generator-m<k>.pt)."""
    kind = writer.path.parent.name  # where it lies, not what its config.json says
    if kind in ("gan", *SINGLE_IMAGE_CONFIGS):
        return writer, None
    if kind == "gan-stack":
        found = MEMBER_SET.fullmatch(path.stem)
        if found is None:
            raise LookupError(f"{path.name} is not a member's set (synthetic-m<k>.npz) of GAN stack run {writer.id}")
        return writer, int(found.group(1))
    if kind != "sample":
        raise LookupError(f"it lies in a run of kind '{kind}', which trains no generator")
    settings = writer.settings
    origin, generator = str(settings.get("origin", "")), Path(str(settings.get("generator", "")))
    runs = writer.path.parent.parent
    for gan_kind, name in GENERATOR_FILES.items():
        gan_run, found = Run(runs / gan_kind / origin), name.fullmatch(generator.name)
        if gan_run.path.parent == runs / gan_kind and found and generator.parts[-4:-1] == (gan_kind, origin, "checkpoints") \
                and (gan_run.path / "config.json").is_file():
            return gan_run, int(found.group(1)) if gan_kind == "gan-stack" else None
    raise LookupError(f"sample run {writer.id} drew from {generator}, not from the generator of its origin, "
                      f"GAN run '{origin}'")


def _expected(generator_run: Run, member: int | None = None) -> dict:
    """The dataset, split, training fraction, subset seed and generator of a provenance, as the generator run's
    own config.json has them (for a gan-stack run: its `member`'s config)."""
    kind, settings = generator_run.path.parent.name, generator_run.settings
    if kind in SINGLE_IMAGE_CONFIGS:  # seeds mode: its seed images, from the whole split
        config = SINGLE_IMAGE_CONFIGS[kind].from_dict(settings)
        return {"dataset": config.dataset, "split": "train", "train_fraction": 1.0, "subset_seed": config.seed,
                "generator": kind}
    if kind == "gan":
        config = GanConfig.from_dict(settings)
    else:
        members = GanStackConfig.from_dict(settings).members
        if member >= len(members):
            raise LookupError(f"GAN stack run {generator_run.id} has {len(members)} members, no member {member}")
        config = members[member]
    return {"dataset": config.spec, "split": "train", "train_fraction": config.train_fraction,
            "subset_seed": config.seed, "generator": config.gan}


def _shown(value) -> str:
    return value.label if isinstance(value, DatasetSpec) else repr(value)


def recorded_fingerprints(run: Run, member: int | None = None) -> np.ndarray | None:
    """The fingerprints `run` (its stack `member`) recorded as it trained; None when it has none or they are not
    uint64 fingerprints."""
    try:
        prints = np.load(run.checkpoints / member_file(RECORDED, member), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return prints if isinstance(prints, np.ndarray) and prints.dtype == np.uint64 and prints.ndim == 1 else None


def _same_prints(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(np.sort(a), np.sort(b))


def _generator_file_differences(provenance: Provenance, trained_on: np.ndarray, gan_run: Run,
                                member: int | None) -> list[str]:
    path = gan_run.checkpoints / member_file("generator.pt", member)
    if not path.is_file():
        return [f"run {gan_run.id} has no {path.name}"]
    try:
        recorded, prints = generator_provenance(path)
    except CheckpointError as e:
        return [str(e)]
    if recorded != provenance or prints is None or not _same_prints(prints, trained_on):
        return [f"run {gan_run.id}'s {path.name} records that {recorded.text}"]
    return []
