"""Uploads: a dataset as a zip of class folders, and synthetic sets as an npz or a zip.

A dataset zip (`<class>/<image>`, optionally under `<split>/`) is extracted safely
(`data.zipsafe.extract_zip`) once, into a folder of the import cache named by the zip's content
digest, so the same upload is never extracted twice; the members the zip check skipped are kept
beside it (`skipped_members`), because the extracted folder no longer holds them, with the name the
dataset goes by (`dataset_name`: the zip's one top folder, else the zip's file name; never the digest)
and the images' own side when they all share one square size (`image_side`: the working size it
imports at by default, so a 28 px set is not upscaled). The cache is bounded: past
`MAX_UPLOAD_CACHE_BYTES`, the extractions used least recently (extracted or uploaded again) are
removed first.

A synthetic set arrives as an npz (no pickles) or an image-folder zip whose class folders are
matched to the dataset's class names (by name, by the folder names the lab's own image-folder
export writes, or by index when folders are named 0, 1, …); its
images are decoded to the dataset's size and channels. Either way it is registered with
`save_set` under `runs_dir()/uploads/<id>/artifacts`, where the lab lists sets and the score
job finds it, with provenance unknown: what an uploaded file says about its generator is not evidence.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from data.datasets import DatasetSpec
from data.files import atomic_write_json, read_json, remove_abandoned_temporaries, slug, temporary_name
from data.folder import decode, scan, to_channels
from data.imageset import ImageSet
from data.medmnist_source import DatasetError
from data.paths import cache_dir, runs_dir
from data.provenance import Provenance
from data.synthetic import class_folders, read_set, save_set
from data.text import NAME_LIMIT, clean_text
from data.zipsafe import extract_zip


def uploads_dir() -> Path:
    """Where uploaded dataset zips are extracted: `cache_dir()/uploads`."""
    return cache_dir() / "uploads"


MAX_UPLOAD_CACHE_BYTES = 8 * 1024**3  # four of the largest zips the extractor takes
MIN_SIDE, MAX_SIDE = 8, 512  # the working sizes a DatasetSpec takes
STALE_STAGING_SECONDS = 3600  # a staging folder this old belongs to an extraction that was killed, whatever its pid


def extract_dataset_zip(data: bytes, filename: str = "", cache_limit: int = MAX_UPLOAD_CACHE_BYTES) -> Path:
    """Extract an uploaded dataset zip (its bytes; `filename`: what the zip was called) unless it was
    already; returns the folder.

    Raises DatasetError (naming the offending member) for a zip that cannot be used; nothing of
    it is kept then. Two sessions extracting the same zip at once each work in a folder of their
    own; the first to finish wins. Afterwards the cache is trimmed to `cache_limit` bytes, least
    recently used extractions first (never this one). First of all, the staging folders that killed
    extractions left behind are removed (uploads are extracted by the page's process, on this machine).
    """
    remove_abandoned_temporaries(uploads_dir(), STALE_STAGING_SECONDS)
    target = uploads_dir() / hashlib.sha256(data).hexdigest()[:20]
    if target.exists():
        with contextlib.suppress(FileNotFoundError):  # used again: the last to be removed
            os.utime(_skipped_path(target))
        return target
    staging = temporary_name(target)
    try:
        report = extract_zip(data, staging)
        files = [p for p in staging.rglob("*") if p.is_file()]
        atomic_write_json(_skipped_path(target), {"skipped": report.skipped,
                                                  "bytes": sum(p.stat().st_size for p in files),
                                                  "name": _name_of(staging, filename), "side": _common_side(files)})
        try:
            os.replace(staging, target)
        except OSError:  # fine when another session's extraction of the same zip got there first
            if not target.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _trim_cache(cache_limit, keep=target)
    return target


def _trim_cache(limit: int, keep: Path) -> None:
    """Remove extractions, least recently used first, until they hold at most `limit` bytes."""
    extractions = [(_modified(sidecar), sidecar) for sidecar in uploads_dir().glob("*.json")
                   if not sidecar.name.startswith(".")]  # not another session's sidecar being written
    sizes = {sidecar: _extraction_bytes(sidecar) for _, sidecar in extractions}
    total = sum(sizes.values())
    for _, sidecar in sorted(extractions):
        if total <= limit:
            break
        folder = sidecar.with_suffix("")
        if folder == keep:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        sidecar.unlink(missing_ok=True)
        total -= sizes[sidecar]


def _extraction_bytes(sidecar: Path) -> int:
    meta = read_json(sidecar, default={})
    if isinstance(meta, dict) and isinstance(meta.get("bytes"), int):
        return meta["bytes"]
    return sum(p.stat().st_size for p in sidecar.with_suffix("").rglob("*") if p.is_file())


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by another session meanwhile
        return time.time()


def skipped_members(folder: str | Path) -> list[str]:
    """The zip members ("name: reason") left out when `folder` was extracted; [] for any other folder."""
    return _extraction_meta(folder).get("skipped", [])


def dataset_name(folder: str | Path) -> str:
    """The name an extracted dataset zip goes by: its one top folder, else the zip's file name (as the
    first upload of that content called it); the folder's own name for any other folder."""
    name = _extraction_meta(folder).get("name")
    return name if isinstance(name, str) and name else Path(folder).name


def image_side(folder: str | Path) -> int | None:
    """The side of an extracted dataset zip's images when every one is square of that same side, within the
    sizes a dataset may have; None when they differ, for any other folder, or when it is not known."""
    side = _extraction_meta(folder).get("side")
    return side if type(side) is int and MIN_SIDE <= side <= MAX_SIDE else None


def _extraction_meta(folder: str | Path) -> dict:
    """What was recorded beside an extracted dataset zip; {} for any other folder or an unreadable record."""
    folder = Path(folder)
    meta = read_json(_skipped_path(folder), default={}) if folder.parent == uploads_dir() else {}
    return meta if isinstance(meta, dict) else {}


def _name_of(extracted: Path, filename: str) -> str:
    """The zip's one top folder (besides hidden and system entries, which the extraction skipped), else the
    zip's file name without .zip, else "upload"."""
    top = [p for p in extracted.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(top) == 1 and top[0].is_dir():
        return clean_text(top[0].name, NAME_LIMIT)
    return clean_text(Path(filename).name.removesuffix(".zip").removesuffix(".ZIP"), NAME_LIMIT) or "upload"


def _common_side(files: list[Path]) -> int | None:
    """The side every image file shares when all are square and of one size (read from their headers);
    None otherwise, or when one cannot be read (the import names it then)."""
    sizes = set()
    for path in files:
        try:
            with Image.open(path) as image:
                sizes.add(image.size)
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        if len(sizes) > 1:
            return None
    if not sizes:
        return None
    width, height = sizes.pop()
    return width if width == height else None


def _skipped_path(folder: Path) -> Path:
    return folder.with_name(f"{folder.name}.json")


def register_upload(data: bytes, filename: str, spec: DatasetSpec, class_names: list[str], channels: int) -> Path:
    """Save an uploaded synthetic set (npz or zip bytes) for the dataset; returns its npz path.

    Errors (DatasetError) name the file: a wrong format, images of another size or channels,
    labels outside the dataset's classes. How an npz's images were converted to uint8 (floats in
    [0, 1] or [-1, 1]) is recorded in the set's metadata as `converted`, for the page to say.
    """
    filename = clean_text(filename, NAME_LIMIT)  # the browser's file name is kept in the set's sidecar and shown
    converted: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        if filename.lower().endswith(".npz"):
            path = Path(tmp) / "upload.npz"
            path.write_bytes(data)
            images, converted = read_set(path, name=filename)
        elif filename.lower().endswith(".zip"):
            images = _folder_zip(data, filename, spec.size, class_names, channels, Path(tmp))
        elif filename.lower().endswith(".npy"):
            raise DatasetError(f"{filename}: a .npy file holds one array; upload an .npz with 'images' and "
                               "'labels' arrays (np.savez) or a .zip of class folders")
        else:
            raise DatasetError(f"{filename}: expected a .npz synthetic set or a .zip of class folders")
    if images.images.shape[1:] != (spec.size, spec.size, channels):
        raise DatasetError(f"{filename}: images are {images.images.shape[1:]} (H×W×C) but {spec.label} has "
                           f"{(spec.size, spec.size, channels)}")
    if len(images.class_names) != len(class_names) or images.labels.max(initial=0) >= len(class_names):
        raise DatasetError(f"{filename}: labels do not fit the {len(class_names)} classes of {spec.label}")
    upload_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    directory = runs_dir() / "uploads" / upload_id / "artifacts"
    stem = slug(Path(filename).stem, max_length=40) or "upload"
    return save_set(ImageSet(images.images, images.labels, list(class_names), "synthetic"), directory, stem,
                    Provenance.unknown(f"uploaded file {filename}"),  # whatever the file claims
                    generator="upload", display_name=f"upload/{stem}", dataset=spec.to_dict(), filename=filename,
                    converted=converted)


def _folder_zip(data: bytes, filename: str, size: int, class_names: list[str], channels: int,
                tmp: Path) -> ImageSet:
    try:
        extract_zip(data, tmp / "zip")
        layout = scan(tmp / "zip")
    except DatasetError as e:  # also UnsafeZipError
        raise DatasetError(f"{filename}: {e}") from None
    exported = class_folders(class_names)  # what the lab's own image-folder export names them
    mapping = {}
    for k, name in enumerate(layout.class_names):
        if name in class_names:
            mapping[k] = class_names.index(name)
        elif name in exported:
            mapping[k] = exported.index(name)
        elif name.isdigit() and int(name) < len(class_names):
            mapping[k] = int(name)
        else:
            raise DatasetError(f"{filename}: folder '{name}' is not a class of this dataset "
                               f"({', '.join(class_names)}) nor a class index")
    images, labels = [], []
    for f in layout.files:
        try:
            images.append(to_channels(decode(layout.root / f.relpath, size), channels))
        except DatasetError as e:
            raise DatasetError(f"{filename}: {f.relpath}: {e}") from None
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DatasetError(f"{filename}: {f.relpath} is not a readable image ({e})") from None
        labels.append(mapping[f.label])
    return ImageSet(np.stack(images), np.array(labels), list(class_names), "synthetic")
