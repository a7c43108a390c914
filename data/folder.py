"""Image folders as datasets: `<class>/` subfolders, optionally under `train/ val/ test/`.

A folder is imported once (decode, convert to gray or RGB, resize to the working size) into a
cache npz under `cache_dir()/folders/`, keyed by the folder's path, its file list (names,
sizes, mtimes), the size and the channels, so a changed folder is imported again. Splitting
happens at load time from the cache: missing val/test splits are carved from train, and when
file names carry a patient id, whole patients go to one split so that no patient appears in two.
Patients are read only from names that clearly follow OCT2017's `<CLASS>-<patient>-<n>.jpeg`
(the prefix being the file's class), or with the pattern the user gives (DatasetSpec's
`patient_pattern`); any other file is its own group.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from data.files import atomic_save, remove_abandoned_temporaries
from data.hooks import NO_HOOKS, Hooks, Interrupted
from data.imageset import ImageSet
from data.medmnist_source import DatasetError
from data.paths import cache_dir
from data.spec import DatasetSpec
from data.text import NAME_LIMIT, clean_text
from data.zipsafe import IMAGE_EXTENSIONS

SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
              "test": "test", "testing": "test"}
SPLITS = ("train", "val", "test")
OCT_NAME = re.compile(r"^(?P<prefix>[A-Za-z]+)-(?P<patient>[A-Za-z0-9]+)-\d+$")  # CNV-1016042-1
CHECKPOINT_EVERY = 500
MAX_LISTED = 1000  # images offered for picking one
STALE_TEMPORARY_SECONDS = 3600  # a temporary cache file this old belongs to an import that was killed, whatever its pid


@dataclass(frozen=True)
class ImageFile:
    relpath: str  # relative to the folder root, '/'-separated
    label: int
    given_split: str  # "train" | "val" | "test" | "" (no split folder)


@dataclass(frozen=True)
class FolderLayout:
    root: Path
    class_names: list[str]
    files: list[ImageFile]
    skipped: list[str]  # non-image files found while scanning


def scan(root: str | Path) -> FolderLayout:
    """Find the classes and image files under `root` (descending through a single wrapper folder)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    root = _unwrap(root)
    subdirs = _subdirs(root)
    split_dirs = {d: SPLIT_DIRS[d.name.lower()] for d in subdirs if d.name.lower() in SPLIT_DIRS}
    if split_dirs and len(split_dirs) != len(subdirs):
        others = sorted(d.name for d in subdirs if d not in split_dirs)
        raise DatasetError(f"{root} mixes split folders ({', '.join(d.name for d in split_dirs)}) with "
                           f"other folders ({', '.join(others)}); use either <split>/<class>/ or <class>/")
    class_dirs = [(split_dirs[d], c) for d in split_dirs for c in _subdirs(d)] if split_dirs else \
        [("", d) for d in subdirs]
    if not class_dirs:
        raise DatasetError(f"{root} has no class subfolders; expected <class>/ folders of images")
    shown = _class_names({c.name for _, c in class_dirs}, root)
    class_names = sorted(set(shown.values()))
    if len(class_names) < 2:
        raise DatasetError(f"{root} has a single class ('{class_names[0]}'); a classifier needs at least two")
    files, skipped = [], []
    for split, class_dir in sorted(class_dirs, key=lambda sc: (sc[0], sc[1].name)):
        images = []
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
                images.append(ImageFile(rel, class_names.index(shown[class_dir.name]), split))
            else:
                skipped.append(f"{rel}: not an image")
        if not images:
            raise DatasetError(f"class folder {class_dir} is empty (no {'/'.join(IMAGE_EXTENSIONS)} files)")
        files.extend(images)
    return FolderLayout(root, class_names, files, skipped)


def _class_names(folder_names: set[str], root: Path) -> dict[str, str]:
    """Each class folder's name -> its class's name: the folder's name without control or bidirectional
    formatting characters, at most NAME_LIMIT long (data.text). DatasetError when that leaves a name
    empty, or the same for two folders."""
    names: dict[str, str] = {}
    for folder_name in sorted(folder_names):
        name = clean_text(folder_name, NAME_LIMIT)
        if not name:
            raise DatasetError(f"{root}: class folder {folder_name!r} has no name left once control and "
                               "bidirectional characters are removed; rename it")
        same = [other for other, taken in names.items() if taken == name]
        if same:
            raise DatasetError(f"{root}: class folders {same[0]!r} and {folder_name!r} have the same name '{name}' "
                               "once control and bidirectional characters are removed; rename one")
        names[folder_name] = name
    return names


def images_in(folder: str | Path, limit: int = MAX_LISTED) -> list[Path]:
    """The image files directly inside `folder` (not in its subfolders), sorted, at most `limit`:
    for a user to pick one. Never walks a tree, and refuses a file system root outright."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    if root.resolve() == Path(root.resolve().anchor):
        raise DatasetError(f"{root} is the root of the file system; give the folder that holds the images")
    with os.scandir(root) as entries:
        names = [e.name for e in entries if Path(e.name).suffix.lower() in IMAGE_EXTENSIONS
                 and not e.name.startswith(".") and e.is_file()]
    return [root / name for name in sorted(names)[:limit]]


def _subdirs(path: Path) -> list[Path]:
    return sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith((".", "__MACOSX")))


def _unwrap(root: Path) -> Path:
    """A zip often holds one top folder (`OCT2017/train/...`); the dataset starts inside it."""
    while True:
        subdirs = _subdirs(root)
        has_files = any(p.is_file() and not p.name.startswith(".") for p in root.iterdir())
        if len(subdirs) == 1 and not has_files and _subdirs(subdirs[0]):
            root = subdirs[0]
        else:
            return root


def cache_key(layout: FolderLayout, size: int, channels: int) -> str:
    digest = hashlib.sha256(f"{layout.root}|{size}|{channels}".encode())
    for f in layout.files:
        st = (layout.root / f.relpath).stat()
        digest.update(f"|{f.relpath}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def cache_path(layout: FolderLayout, spec: DatasetSpec) -> Path:
    return cache_dir() / "folders" / f"{cache_key(layout, spec.size, spec.channels)}.npz"


def is_imported(spec: DatasetSpec) -> bool:
    """Whether the folder is in the import cache as it is now (same files, size and channels)."""
    return cache_path(scan(spec.path), spec).exists()


def cached_imports() -> list[dict]:
    """Every imported folder in the cache: its metadata (root, size, channels, counts) and path."""
    found = []
    for path in sorted((cache_dir() / "folders").glob("*.npz")):
        try:
            found.append(import_summary(path, with_skipped=False))
        except (OSError, ValueError, KeyError):
            continue
    return found


def import_summary(path: Path, with_skipped: bool = True) -> dict:
    """An import cache's metadata (root, size, channels, images, class names and counts, skipped
    count), its path as `cache` and, `with_skipped`, the skipped files' lines as `skipped_files`."""
    with np.load(path, allow_pickle=False) as z:
        summary = {**json.loads(str(z["meta"])), "cache": str(path)}
        if with_skipped:
            summary["skipped_files"] = z["skipped"].tolist()
    return summary


# --- import: decode, convert, resize -------------------------------------------------------------

WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")  # 16-bit, 32-bit and float scans
GRAY_MODES = ("1", "L", "LA", *WIDE_MODES)
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as PIL's convert("L")
MAX_IMAGE_PIXELS = 40_000_000  # a 6000×6000 scan fits; Pillow's own limit (89 M) lets a 16-bit image cost GBs
ROWS_PER_BLOCK = 256


def decode(path: Path, size: int) -> np.ndarray:
    """One image as size×size×1 if it is gray (also RGB with equal channels), else size×size×3.

    Squashed to a square, not cropped, so nothing is cut off. An image of more than
    `MAX_IMAGE_PIXELS` is refused from its header, before it is decoded, with a DatasetError that
    callers prefix with the file's name.
    """
    with _open_image(path) as image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise DatasetError(f"{width}×{height} pixels; the limit is {MAX_IMAGE_PIXELS // 10**6} megapixels "
                               "per image")
        image.draft(None, (2 * size, 2 * size))  # JPEG: decode at 1/2..1/8 scale, still ≥ 2× the target
        image.load()
        gray = image.mode in GRAY_MODES
        if image.mode in WIDE_MODES:
            image = _stretch_to_8_bits(image)
        small = np.asarray(image.convert("L" if gray else "RGB").resize((size, size), Image.Resampling.LANCZOS))
    if gray:
        return small[..., None]
    if (small[..., 0] == small[..., 1]).all() and (small[..., 1] == small[..., 2]).all():
        return small[..., :1]
    return small


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except Image.DecompressionBombError:  # over twice Pillow's own limit: refused before reading its size
        raise DatasetError(f"over {2 * Image.MAX_IMAGE_PIXELS // 10**6} megapixels; the limit is "
                           f"{MAX_IMAGE_PIXELS // 10**6} megapixels per image") from None


def _stretch_to_8_bits(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float gray image stretched over its own range to 8 bits, a block of rows
    at a time in float32 (a float64 copy of a large scan would cost 8 bytes per pixel)."""
    pixels = np.asarray(image)
    lo, hi = float(pixels.min()), float(pixels.max())
    scale = 255 / max(hi - lo, 1e-12)
    stretched = np.empty(pixels.shape, dtype=np.uint8)
    for start in range(0, len(pixels), ROWS_PER_BLOCK):
        rows = slice(start, start + ROWS_PER_BLOCK)
        stretched[rows] = (pixels[rows].astype(np.float32) - lo) * scale
    return Image.fromarray(stretched)


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    if pixels.shape[-1] == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    return np.round(pixels @ LUMA).clip(0, 255).astype(np.uint8)[..., None]


def import_folder(spec: DatasetSpec, hooks: Hooks = NO_HOOKS) -> Path:
    """Decode and resize every image of a folder into the cache npz; returns its path.

    Images are held with one channel until the first colour image (when channels are detected),
    so a large grayscale folder such as OCT2017 needs a third of the memory. Progress is reported
    per image; when `hooks.should_stop()` turns true the import raises `Interrupted`. With
    `hooks.checkpoints`, partial work is saved there every few hundred images and before stopping,
    and an interrupted import continues from it.
    """
    layout = scan(spec.path)
    target = cache_path(layout, spec)
    remove_abandoned_temporaries(target.parent, STALE_TEMPORARY_SECONDS)  # what killed imports left
    if target.exists():
        return target
    checkpoint = hooks.checkpoints / "last.npz" if hooks.checkpoints is not None else None
    n = len(layout.files)
    images = np.zeros((n, spec.size, spec.size, spec.channels or 1), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    errors: dict[int, str] = {}
    start = 0
    if checkpoint is not None and checkpoint.exists():
        with np.load(checkpoint, allow_pickle=False) as z:
            if str(z["key"]) == target.stem:
                start = int(z["done"])
                images = np.zeros((n, *z["images"].shape[1:]), dtype=np.uint8)
                images[:start], ok[:start] = z["images"], z["ok"]
                errors = {int(k): v for k, v in json.loads(str(z["errors"])).items()}
    for i in range(start, n):
        rel = layout.files[i].relpath
        try:
            pixels = decode(layout.root / rel, spec.size)
        except DatasetError as e:
            errors[i] = f"{rel}: {e}"
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            errors[i] = f"{rel}: cannot be decoded ({type(e).__name__}: {str(e).replace(str(layout.root / rel), rel)})"
        else:
            if pixels.shape[-1] == 3 and images.shape[-1] == 1 and not spec.channels:
                images = to_channels(images, 3)  # the first colour image: the dataset is RGB
            images[i], ok[i] = to_channels(pixels, images.shape[-1]), True
        done = i + 1
        hooks.progress(done, n, message="decoding")
        stop = hooks.should_stop() and done < n
        if checkpoint is not None and (done % CHECKPOINT_EVERY == 0 or stop):
            _save_npz(checkpoint, key=np.str_(target.stem), done=np.int64(done), images=images[:done],
                      ok=ok[:done], errors=np.str_(json.dumps(errors)))
        if stop:
            raise Interrupted(f"import stopped after {done}/{n} images")
    _write_cache(target, layout, spec, images[ok], ok, errors)
    return target


def _write_cache(target: Path, layout: FolderLayout, spec: DatasetSpec, images: np.ndarray, ok: np.ndarray,
                 errors: dict[int, str]) -> None:
    files = [f for f, good in zip(layout.files, ok) if good]
    labels = np.array([f.label for f in files], dtype=np.int64)
    for label, name in enumerate(layout.class_names):
        if not (labels == label).any():
            raise DatasetError(f"class '{name}' in {layout.root} has no decodable image")
    skipped = layout.skipped + [errors[i] for i in sorted(errors)]
    counts = np.bincount(labels, minlength=len(layout.class_names)).tolist()
    meta = {"root": str(layout.root), "size": spec.size, "channels": images.shape[-1], "images": len(files),
            "class_names": layout.class_names, "class_counts": counts, "skipped": len(skipped)}
    _save_npz(target, images=images, labels=labels, class_names=np.array(layout.class_names),
              names=np.array([f.relpath for f in files]), given_split=np.array([f.given_split for f in files]),
              skipped=np.array(skipped, dtype=str), meta=np.str_(json.dumps(meta)))


def _save_npz(path: Path, **arrays) -> None:
    atomic_save(path, lambda tmp: np.savez(tmp, **arrays))


# --- load: cache -> splits -------------------------------------------------------------------------

def load(spec: DatasetSpec) -> tuple[dict[str, ImageSet], list[str]]:
    """The folder's train/val/test ImageSets and a report (skipped files, how it was split).

    Imports in-process first if the cache is missing.
    """
    path = import_folder(spec)
    with np.load(path, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
        class_names, names = z["class_names"].tolist(), z["names"].tolist()
        given, skipped = z["given_split"], z["skipped"].tolist()
    split, report = assign_splits(names, labels, given, class_names, spec)
    splits = {}
    for s in SPLITS:
        idx = np.flatnonzero(split == s)
        splits[s] = ImageSet(images[idx], labels[idx], class_names, s, source=f"folder:{spec.name}",
                             names=[names[i] for i in idx])
    return splits, [f"skipped {line}" for line in skipped] + report


def check_split(spec: DatasetSpec) -> list[str]:
    """How the folder will be split (report lines), worked out from its file names before any
    image is decoded; raises DatasetError for a folder that cannot be split. (Files that later
    fail to decode are left out of the real split.)"""
    layout = scan(spec.path)
    labels = np.array([f.label for f in layout.files], dtype=np.int64)
    given = np.array([f.given_split for f in layout.files])
    return assign_splits([f.relpath for f in layout.files], labels, given, layout.class_names, spec)[1]


def assign_splits(names: list[str], labels: np.ndarray, given: np.ndarray, class_names: list[str],
                  spec: DatasetSpec) -> tuple[np.ndarray, list[str]]:
    """Each file's split ("train" | "val" | "test"), and report lines saying how it was made.

    Given split folders are kept; missing val/test splits are carved from train, by patient where
    file names carry one (`patient_id`), else stratified by class.
    """
    split = given.astype(object)
    groups = patient_groups(names, [class_names[k] for k in labels], spec.patient_pattern)
    carved = [s for s in SPLITS if not (given == s).any()]
    if "train" in carved and len(carved) < 3:
        raise DatasetError(f"{spec.path} has {', '.join(s for s in SPLITS if s not in carved)} folders "
                           "but no train/ folder")
    report = []
    if carved:
        pool = np.flatnonzero((given == "train") | (given == ""))
        fractions = {"val": spec.val_fraction, "test": spec.test_fraction}
        fractions = {s: fractions[s] for s in carved if s != "train"}
        fractions["train"] = 1 - sum(fractions.values())
        split[pool] = group_split(labels[pool], [groups[i] for i in pool], fractions, class_names,
                                  spec.split_seed, where=str(spec.path))
        patients = len({g for g in groups if not g.startswith("file:")})
        how = f"by patient ({patients} patients; none in two splits)" if patients else "stratified by class"
        report.append(f"{', '.join(s for s in carved if s != 'train')} carved from train {how}")
    return split, report + _leaks(split, groups)


def split_table(splits: dict[str, ImageSet], patient_pattern: str = "") -> list[dict]:
    """Images and patients per split and class: rows {"split", "class", "images", "patients"}
    (patients 0 where file names carry none)."""
    rows = []
    for s, images in splits.items():
        for label, class_name in enumerate(images.class_names):
            files = [n for n, k in zip(images.names, images.labels) if k == label]
            patients = {patient_id(n, class_name, patient_pattern) for n in files} - {None}
            rows.append({"split": s, "class": class_name, "images": len(files), "patients": len(patients)})
    return rows


def patient_id(relpath: str, class_name: str, pattern: str = "") -> str | None:
    """The patient a file shows, or None when its path does not say.

    With `pattern` (a DatasetSpec's patient_pattern): its group `patient`, else its first group,
    searched in the path. Without: only names that clearly follow OCT2017's scheme,
    `<CLASS>-<patient>-<n>` with the file's own class as prefix (`CNV/CNV-1016042-1.jpeg`); names
    such as `DermaMNIST_train_00000.jpg` or `IMG_2023_1.png` carry no patient.
    """
    if pattern:
        match = re.search(pattern, relpath)
        if not match:
            return None
        return match["patient"] if "patient" in match.re.groupindex else match[1]
    match = OCT_NAME.match(PurePosixPath(relpath).stem)
    return match["patient"] if match and match["prefix"].lower() == class_name.lower() else None


def patient_groups(names: list[str], classes: list[str], pattern: str = "") -> list[str]:
    """A group per patient where a file's path names one; otherwise each file is its own group."""
    return [f"patient:{p}" if (p := patient_id(n, c, pattern)) else f"file:{n}" for n, c in zip(names, classes)]


def group_split(labels: np.ndarray, groups: list[str], fractions: dict[str, float], class_names: list[str],
                seed: int, where: str = "the dataset") -> np.ndarray:
    """Assign whole groups to splits so that each split gets about its fraction of every class.

    First every non-train split receives one group of each class (rarest class first), then the
    remaining groups go, largest first, to the split whose per-class quota they fill best.
    """
    rng = np.random.default_rng(seed)
    keys = sorted(set(groups))
    rng.shuffle(keys)
    index = {k: i for i, k in enumerate(keys)}
    member = np.array([index[g] for g in groups])
    counts = np.zeros((len(keys), len(class_names)))
    np.add.at(counts, (member, labels), 1)
    names = list(fractions)
    quota = np.array([fractions[s] for s in names])[:, None] * counts.sum(0)[None, :]
    filled = np.zeros_like(quota)
    owner = np.full(len(keys), -1)

    def give(g: int, s: int) -> None:
        owner[g] = s
        filled[s] += counts[g]

    for c in np.argsort(counts.sum(0)):
        for s, name in enumerate(names):
            if name == "train" or filled[s, c] > 0:
                continue
            candidates = [g for g in np.argsort(counts[:, c], kind="stable") if owner[g] < 0 and counts[g, c] > 0]
            if len(candidates) < 2:  # keep at least one group of the class for training
                raise DatasetError(
                    f"{where} is too small to split: class '{class_names[c]}' has {int(counts[:, c].sum())} "
                    f"images from {int((counts[:, c] > 0).sum())} patients/files, but every split needs one")
            give(candidates[0], s)
    for g in sorted(np.flatnonzero(owner < 0), key=lambda g: -counts[g].sum()):
        need = (quota - filled) / np.maximum(quota, 1e-9)
        give(g, int(np.argmax(need @ counts[g])))
    for c, class_name in enumerate(class_names):
        if not filled[names.index("train"), c]:
            raise DatasetError(f"{where} is too small to split: class '{class_name}' has no image left for training")
    return np.array(names, dtype=object)[owner[member]]


def _leaks(split: np.ndarray, groups: list[str]) -> list[str]:
    """Patients found in more than one split (possible only with given split folders)."""
    seen: dict[str, set] = {}
    for s, g in zip(split, groups):
        if g.startswith("patient:"):
            seen.setdefault(g, set()).add(s)
    shared = sorted(g.split(":", 1)[1] for g, s in seen.items() if len(s) > 1)
    if not shared:
        return []
    return [f"warning: {len(shared)} patients appear in more than one of the given split folders "
            f"(e.g. {', '.join(shared[:5])})"]
