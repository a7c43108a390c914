"""Extract an uploaded zip of images without trusting it.

Every member is checked before anything is written: no absolute or `..` paths, no symlinks,
no name twice, no name both a file and a folder, names the file system can hold (parts of at most
255 bytes, at most 32 folders deep), at most `max_files` images and `max_bytes` uncompressed
bytes, and no suspicious inflation (compression ratio), neither of any member nor of the
archive as a whole. A folder without images (an empty class folder) is refused, as it is on disk.
While extracting, a member that yields more bytes than it declared, or fails its CRC, aborts the
extraction and the partial target folder is removed. Non-image members (notes, `__MACOSX/`
forks, hidden files) are skipped and named in the report.
"""
from __future__ import annotations

import io
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from data.medmnist_source import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MAX_FILES = 100_000
MAX_BYTES = 2 * 1024**3
MAX_RATIO = 100  # uncompressed / compressed; images barely compress, bombs inflate 1000×
RATIO_ALLOWANCE = 64 * 1024  # bytes beyond the ratio: a small blank BMP compresses well without being a bomb
MAX_DEPTH = 32  # folders above a member
MAX_NAME_BYTES = 255  # per path part: what file systems hold
CHUNK = 1024**2


class UnsafeZipError(DatasetError):
    """The zip was refused as a whole; nothing from it was kept."""


@dataclass
class ExtractReport:
    target: Path
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: reason"


def extract_zip(source: str | Path | bytes, target_dir: str | Path, max_files: int = MAX_FILES,
                max_bytes: int = MAX_BYTES) -> ExtractReport:
    """Extract the image members of a zip (a path or the uploaded bytes) into `target_dir`."""
    label = "the uploaded zip" if isinstance(source, bytes) else str(source)
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as e:
        raise DatasetError(f"{label} is not a readable zip file ({e})") from None
    target = Path(target_dir).resolve()
    report = ExtractReport(target)
    with archive:
        members = _checked_members(archive, label, target, report, max_files, max_bytes)
        target.mkdir(parents=True, exist_ok=True)
        try:
            for info, destination in members:
                try:
                    _extract_member(archive, info, destination, label)
                except OSError as e:  # a full disk, a name this file system refuses
                    raise DatasetError(f"{label}: member '{info.filename}' could not be written "
                                       f"({e.strerror or e}); nothing from the zip was kept") from None
                report.extracted.append(info.filename)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return report


def _checked_members(archive: zipfile.ZipFile, label: str, target: Path, report: ExtractReport,
                     max_files: int, max_bytes: int) -> list[tuple[zipfile.ZipInfo, Path]]:
    members, seen, images, folders = [], set(), {}, set()
    total = compressed = 0
    for info in archive.infolist():
        name = info.filename
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise UnsafeZipError(f"{label}: member '{name}' has an absolute path; refusing the zip")
        if ".." in path.parts:
            raise UnsafeZipError(f"{label}: member '{name}' points outside the folder ('..'); refusing the zip")
        _check_name(path, label)
        if path in seen:
            raise UnsafeZipError(f"{label}: member '{name}' appears twice; refusing the zip")
        seen.add(path)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeZipError(f"{label}: member '{name}' is a symbolic link; refusing the zip")
        hidden = "__MACOSX" in path.parts or any(part.startswith(".") for part in path.parts)
        if info.is_dir():
            if not hidden:
                folders.add(path)
            continue
        if hidden:
            report.skipped.append(f"{name}: hidden or system file")
            continue
        folders.update(path.parents[:-1])
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            report.skipped.append(f"{name}: not an image ({path.suffix or 'no extension'})")
            continue
        if info.file_size > MAX_RATIO * info.compress_size + RATIO_ALLOWANCE:
            raise UnsafeZipError(
                f"{label}: member '{name}' inflates {info.file_size / max(info.compress_size, 1):.0f}× "
                f"({info.compress_size} → {info.file_size} bytes); refusing a likely zip bomb")
        total += info.file_size
        compressed += info.compress_size
        if total > max_bytes:
            raise UnsafeZipError(f"{label}: more than {max_bytes} uncompressed bytes (at member '{name}'); "
                                 "refusing the zip")
        destination = (target / Path(*path.parts)).resolve()
        if not destination.is_relative_to(target):
            raise UnsafeZipError(f"{label}: member '{name}' resolves outside the target folder; refusing the zip")
        members.append((info, destination))
        images[path] = name
        if len(members) > max_files:
            raise UnsafeZipError(f"{label}: more than {max_files} image files; refusing the zip")
    if total > MAX_RATIO * compressed + RATIO_ALLOWANCE:
        raise UnsafeZipError(f"{label}: its images inflate {total / max(compressed, 1):.0f}× as a whole "
                             f"({compressed} → {total} bytes; the limit is {MAX_RATIO}×); "
                             "refusing a likely zip bomb")
    _check_tree(images, folders, label)
    return members


def _check_name(path: PurePosixPath, label: str) -> None:
    """Refuse a name the file system cannot hold before anything tries to create it."""
    if any(len(part.encode()) > MAX_NAME_BYTES for part in path.parts):
        raise UnsafeZipError(f"{label}: member '{_shown(path)}' has a name longer than {MAX_NAME_BYTES} bytes; "
                             "refusing the zip")
    if len(path.parts) - 1 > MAX_DEPTH:
        raise UnsafeZipError(f"{label}: member '{_shown(path)}' is nested {len(path.parts) - 1} folders deep; "
                             f"the limit is {MAX_DEPTH}; refusing the zip")


def _check_tree(images: dict[PurePosixPath, str], folders: set[PurePosixPath], label: str) -> None:
    """Refuse an image member that is also a folder, and folders that hold no image."""
    with_images = {parent for path in images for parent in path.parents}
    for path, name in images.items():
        if path in with_images:
            raise UnsafeZipError(f"{label}: member '{name}' is both a file and a folder; refusing the zip")
    empty = sorted(folders - with_images)
    if empty:
        raise UnsafeZipError(f"{label}: folder '{empty[0]}/' holds no images (an empty class folder); "
                             "refusing the zip")


def _shown(path: PurePosixPath) -> str:
    """A long member name cut to a readable length for a message."""
    name = path.as_posix()
    return name if len(name) <= 80 else f"{name[:60]}…{name[-16:]}"


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, label: str) -> None:
    """Stream one member, never writing more bytes than it declared."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with _open_member(archive, info, label) as src, open(destination, "wb") as out:
        while chunk := _read_chunk(src, info, label):
            written += len(chunk)
            if written > info.file_size:
                raise UnsafeZipError(f"{label}: member '{info.filename}' is larger than it declares "
                                     f"({info.file_size} bytes); refusing a likely zip bomb")
            out.write(chunk)


def _open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str):
    try:
        return archive.open(info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:  # RuntimeError: encrypted
        raise UnsafeZipError(f"{label}: member '{info.filename}' cannot be opened ({e}); refusing the zip") from None


def _read_chunk(src, info: zipfile.ZipInfo, label: str) -> bytes:
    try:
        return src.read(CHUNK)
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:  # BadZipFile covers a CRC mismatch
        raise UnsafeZipError(f"{label}: member '{info.filename}' is corrupt or tampered with ({e}); "
                             "refusing the zip") from None
