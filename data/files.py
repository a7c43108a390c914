"""Files the lab writes and reads: atomic writes with unique temporary names, JSON, CSV, slugs.

Every writer in the lab goes through `atomic_save`: the content is written to a temporary file
with a name of its own (process id and random token) in the target's folder, then moved over
the target with `os.replace`. A reader therefore sees the old file or the new one, never half
of one, and two processes writing the same file (two jobs filling the shared encoder cache)
never write into each other's temporary file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Callable


def temporary_name(path: Path) -> Path:
    """A unique sibling of `path` that keeps its suffix (np.savez and PIL pick formats by it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")


TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(\.\w+)?$")  # a `temporary_name`


def remove_abandoned_temporaries(folder: Path, max_age_s: float) -> None:
    """Remove the temporaries (`temporary_name`, files or folders) in `folder` that a writer killed
    before it finished left behind: those of a process no longer running on this machine, and those
    untouched for `max_age_s` seconds (a process id gets reused)."""
    for path in Path(folder).glob(".*.tmp*"):
        match = TEMPORARY.match(path.name)
        if match and (not _running(int(match["pid"])) or _idle_s(path) > max_age_s):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _idle_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:  # its writer finished meanwhile
        return 0.0


def atomic_save(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary_path)`, then move the result onto `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_save(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def read_json(path: str | Path, default=None):
    """The JSON in `path`, or `default` when the file is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def csv_text(rows: list[dict]) -> str:
    """Rows of dicts (same keys) as CSV text, header first; empty text for no rows."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def slug(text: str, max_length: int = 32) -> str:
    """A file-name-safe form of `text`: letters and digits kept, everything else a hyphen."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:max_length]
