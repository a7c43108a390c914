"""The synthetic sets the lab holds: every `artifacts/<name>.npz` with its sidecar in a run directory.

Generator runs export sets there, uploads are registered there (`runs/uploads/<id>/`), and the
quality and study pages offer the ones that fit the current dataset (`data.synthetic.incompatibility`).

A set is identified by its id, "<run id>/<set name>" (`set_id`), never by its absolute path, so
moving the runs folder keeps every reference; `resolve_set` finds the file of an id. A set drawn
from a generator records its draw (`draw`: generator run, sampling seed, images per class); a set
drawn again with the same draw is the same set (`find_identical`), and `list_sets` shows only the
first one made.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.config import ConfigError
from data.datasets import DatasetSpec
from data.paths import runs_dir
from data.provenance import Provenance
from data.synthetic import incompatibility, read_meta
from data.synthetic import set_id
from data.text import NAME_LIMIT, clean_text


@dataclass
class SyntheticSetInfo:
    path: Path  # the .npz
    meta: dict  # its sidecar (data.synthetic.save_set)

    @property
    def id(self) -> str:
        return set_id(self.path)

    @property
    def name(self) -> str:
        """Its display name, as every page shows it (cleaned again: the sidecar may be edited by hand)."""
        return clean_text(str(self.meta.get("name") or ""), NAME_LIMIT) or self.id

    @property
    def provenance(self) -> Provenance:
        """What its sidecar says its generator learned from (`data.provenance.read_provenance` also checks
        the fingerprints)."""
        try:
            return Provenance.from_dict(self.meta["provenance"])
        except (KeyError, ConfigError):
            return Provenance.unknown(f"{self.path.name} records no readable provenance")

    @property
    def label(self) -> str:
        gen = clean_text(str(self.meta.get("generator", "?")), NAME_LIMIT)
        unknown = "" if self.provenance.known else " · provenance unknown"
        return f"{gen} · {self.meta.get('count', '?')} images · {self.name}{unknown}"


def resolve_set(ref: str | Path, root: Path | None = None) -> Path:
    """The npz of a set given by id ("<run id>/<set name>", looked up under the runs folder) or by path,
    for reading it (any path will do; `owned_set` finds a set to change or delete).

    Raises FileNotFoundError naming the reference when no such set exists.
    """
    if isinstance(ref, Path) or str(ref).endswith(".npz"):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"synthetic set not found: {ref}")
        return path.resolve()
    return _set_by_id(str(ref), Path(root or runs_dir())).resolve()


def owned_set(ref: str | Path, root: Path | None = None) -> Path:
    """The npz of one of the lab's own sets, to rename, tag, note or delete: given by id, or by a path
    to a set's place in the runs folder (`<kind>/<run id>/artifacts/<name>.npz`, the folders on the
    way resolved), taken as that set's id.

    The path returned is where the set lies, its own name unresolved: a set that is a link is that
    link, never the file it points to. Raises ValueError for a set outside the runs folder or reached
    through a link out of it, FileNotFoundError when there is no such set.
    """
    root = Path(root or runs_dir()).resolve()
    if isinstance(ref, Path) or str(ref).endswith(".npz"):
        given = Path(ref).expanduser()
        if not given.is_file():
            raise FileNotFoundError(f"synthetic set not found: {ref}")
        located = given.parent.resolve() / given.name
        if not located.is_relative_to(root):
            raise ValueError(_outside(ref, root))
        if located.parent.name != "artifacts" or len(located.relative_to(root).parts) != 4:
            raise ValueError(f"{ref} is not a synthetic set of the runs folder (<kind>/<run id>/artifacts/<name>.npz)")
        ref = set_id(located)
    path = _set_by_id(str(ref), root)
    if path.parent.resolve() != path.parent:
        raise ValueError(_outside(f"{ref} (a link on the way to {path.parent.resolve()})", root))
    return path


def _outside(ref: str | Path, root: Path) -> str:
    return f"{ref} is outside the runs folder {root}: the lab renames, tags, notes and deletes only its own sets"


def _set_by_id(ref: str, root: Path) -> Path:
    """Where the set of id `ref` lies under `root` (not resolved); FileNotFoundError naming it otherwise."""
    run_id, _, name = ref.partition("/")
    if not run_id or not name or "/" in name or {run_id, name} & {".", ".."}:
        raise FileNotFoundError(f"'{ref}' is neither a set id (<run id>/<set name>) nor an .npz path")
    kinds = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = [p for kind in kinds if (p := kind / run_id / "artifacts" / f"{name}.npz").is_file()]
    if not found:
        raise FileNotFoundError(f"no synthetic set {ref} under {root}")
    return found[0]


def draw(generator_run: str, seed: int, per_class: int) -> dict:
    """What makes two sets drawn from a generator the same set: the generator's run id (or another id
    naming the generator file), the sampling seed and the images per class."""
    return {"generator": generator_run, "seed": int(seed), "per_class": int(per_class)}


def list_sets(root: Path | None = None, duplicates: bool = False) -> list[SyntheticSetInfo]:
    """Every synthetic set under the runs directory (`<kind>/<run>/artifacts/`), newest first.

    A set drawn with the same `draw` as an earlier one is left out unless `duplicates` is True.
    """
    root = Path(root or runs_dir())
    paths = sorted(root.glob("*/*/artifacts/*.npz"), key=_modified, reverse=True)
    sets = [SyntheticSetInfo(p, read_meta(p)) for p in paths if p.with_suffix(".json").exists()]
    if duplicates:
        return sets
    hidden = duplicate_ids(sets)
    return [s for s in sets if s.id not in hidden]


def duplicate_ids(sets: list[SyntheticSetInfo]) -> dict[str, str]:
    """Among `sets`, the id of each set drawn like an earlier one -> the id of the first one made."""
    first: dict[str, str] = {}
    same: dict[str, str] = {}
    for info in sorted(sets, key=lambda s: s.meta.get("created", 0)):
        key = _draw_key(info)
        if key is None:
            continue
        if key in first:
            same[info.id] = first[key]
        else:
            first[key] = info.id
    return same


def find_identical(drawn: dict, root: Path | None = None) -> SyntheticSetInfo | None:
    """The first set made with the draw `drawn` (see `draw`), or None."""
    matches = [s for s in list_sets(root) if s.meta.get("draw") == drawn]
    return min(matches, key=lambda s: s.meta.get("created", 0), default=None)


def _draw_key(info: SyntheticSetInfo) -> str | None:
    drawn = info.meta.get("draw")
    return repr(sorted(drawn.items())) if isinstance(drawn, dict) else None


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # deleted while listing
        return 0.0


def compatible_sets(spec: DatasetSpec, channels: int, num_classes: int,
                    root: Path | None = None) -> list[SyntheticSetInfo]:
    """The sets that fit a dataset of `channels` and `num_classes` (see `incompatibility`), newest first."""
    return [s for s in list_sets(root) if incompatibility(s.meta, spec, channels, num_classes) is None]
