"""Deleting, renaming, tagging and noting act only on the lab's own runs and sets, inside the runs folder,
never through a link out of it; names, tags, notes and class names reach no screen with control or
bidirectional-override characters, nor at any length (issue 21)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA_DIR
from data import folder, uploads
from data.datasets import DatasetSpec
from data.medmnist_source import DatasetError
from lab.engine import manage
from lab.engine.runs import Run, find_run, list_runs
from data.synthetic import set_id
from lab.sets import list_sets
from tests.test_manage import gan_run_with_set

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "ok\u202eexe.gpj\x1b[2J\x07\u2066x\u2069\u200f\u061c\x00end"  # RLO, erase screen, bell, isolates, NUL
CLEANED = "okexe.gpj[2Jxend"


def lab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=timeout)


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` (links not followed) with its bytes: what must survive untouched."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- sets outside the runs folder ---------------------------------------------------------------

def test_sets_commands_refuse_an_npz_outside_the_runs_folder_and_leave_it_as_it_was(runs_root, tmp_path):
    outside = tmp_path / "mine"
    outside.mkdir()
    npz = Path(shutil.copy(DATA_DIR / "pneumoniamnist.npz", outside / "pneumoniamnist.npz"))
    npz.with_suffix(".json").write_text('{"name": "my notes"}')
    before = tree(outside)
    for action, *words in (("delete",), ("rename", "new"), ("tag", "x"), ("note", "hello")):
        out = lab("sets", action, str(npz), *words)
        assert out.returncode == 1, out.stdout
        assert f"is outside the runs folder {runs_root}" in out.stderr, out.stderr
    assert tree(outside) == before
    with pytest.raises(ValueError, match="outside the runs folder"):
        manage.delete(npz)
    run_link = runs_root / "gan" / "20240101-000000-ab12"  # a run folder in the runs folder that links out
    run_link.parent.mkdir()
    run_link.symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "artifacts").symlink_to(outside, target_is_directory=True)
    for ref in (f"{run_link.name}/pneumoniamnist", str(run_link / "artifacts" / "pneumoniamnist.npz")):
        out = lab("sets", "delete", ref)
        assert out.returncode == 1 and "outside the runs folder" in out.stderr, out.stderr
    assert tree(outside) == before


def test_a_set_path_inside_the_runs_folder_is_taken_as_its_id(runs_root):
    _, path = gan_run_with_set(runs_root)
    out = lab("sets", "tag", str(path), "kept")
    assert out.returncode == 0 and f"set {set_id(path)}: tags kept" in out.stdout, out.stdout + out.stderr
    assert manage.meta(path)["tags"] == ["kept"]


def test_a_set_that_links_to_a_file_outside_is_deleted_as_a_link_only(runs_root, tmp_path):
    run, _ = gan_run_with_set(runs_root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = Path(shutil.copy(DATA_DIR / "pneumoniamnist.npz", outside / "target.npz"))
    target.with_suffix(".json").write_text('{"name": "not the lab\'s"}')
    before = tree(outside)
    (run.artifacts / "linked.npz").symlink_to(target)
    (run.artifacts / "linked.json").symlink_to(target.with_suffix(".json"))
    out = lab("sets", "delete", f"{run.id}/linked")
    assert out.returncode == 0, out.stderr
    assert not (run.artifacts / "linked.npz").is_symlink() and not (run.artifacts / "linked.json").is_symlink()
    assert tree(outside) == before


# --- run folders that are links -----------------------------------------------------------------

def test_a_run_folder_linking_outside_is_listed_as_a_link_and_delete_removes_only_the_link(runs_root, tmp_path):
    outside = Run.create("gan", {"gan": "dcgan", "dataset": {"name": "dermamnist"}}, root=tmp_path / "other")
    outside.write_status("done")
    (outside.artifacts / "weights.pt").write_bytes(b"precious")
    before = tree(outside.path)
    link = runs_root / "gan" / "20240101-000000-link"
    link.parent.mkdir()
    link.symlink_to(outside.path, target_is_directory=True)

    listed = lab("runs", "list")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.startswith(link.name) and f"unreadable         the run folder is a link to {outside.path}" in line
    (run,) = list_runs()
    assert run.id == link.name and run.state == "unreadable"

    with pytest.raises(ValueError, match="is a link to"):
        manage.rename(run, "mine now")
    out = lab("runs", "delete", link.name)
    assert out.returncode == 0, out.stderr
    assert not link.is_symlink() and not link.exists()
    assert tree(outside.path) == before


def test_a_kind_folder_linking_outside_is_not_read_and_its_runs_are_not_deleted(runs_root, tmp_path):
    outside = Run.create("gan", {"gan": "dcgan", "dataset": {"name": "dermamnist"}}, root=tmp_path / "other")
    outside.write_status("done")
    before = tree(outside.path)
    (runs_root / "gan").symlink_to(outside.path.parent, target_is_directory=True)
    assert list_runs() == []
    out = lab("runs", "delete", outside.id)
    assert out.returncode == 1 and f"No run matches '{outside.id}'" in out.stderr, out.stderr
    assert lab("runs", "delete", str(runs_root / "gan" / outside.id)).returncode == 1
    assert tree(outside.path) == before


def test_deleting_a_run_removes_links_inside_it_never_what_they_point_to(runs_root, tmp_path):
    run, _ = gan_run_with_set(runs_root)
    outside = tmp_path / "data"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "scan.png").write_bytes(b"keep me")
    (run.artifacts / "folder").symlink_to(outside, target_is_directory=True)
    (run.checkpoints / "file.pt").symlink_to(outside / "sub" / "scan.png")
    before = tree(outside)
    assert manage.delete(find_run(run.id), force=True) == [run.path]
    assert not run.path.exists() and tree(outside) == before


# --- stale staging folders ----------------------------------------------------------------------

KILLED_EXTRACTION = """
import os, signal, sys
from data import uploads
real = uploads.extract_zip
def extract_then_die(source, target, **kw):
    real(source, target, **kw)
    os.kill(os.getpid(), signal.SIGKILL)  # killed after writing, before the folder is moved into place
uploads.extract_zip = extract_then_die
uploads.extract_dataset_zip(open(sys.argv[1], "rb").read())
"""


def png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_the_staging_folder_of_a_killed_extraction_is_removed_at_the_next_upload(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    zip_path = tmp_path / "upload.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for i in range(40):
            z.writestr(f"{'ab'[i % 2]}/{i}.png", png_bytes(i))
    killed = subprocess.run([sys.executable, "-c", KILLED_EXTRACTION, str(zip_path)], cwd=ROOT, env=os.environ.copy())
    assert killed.returncode == -signal.SIGKILL
    (staging,) = uploads.uploads_dir().glob(".*.tmp")
    assert len(list(staging.rglob("*.png"))) == 40
    dead_pid = staging.name.split(".")[2]  # .<digest>.<pid>.<token>.tmp
    busy = uploads.uploads_dir() / f".{'0' * 20}.{os.getpid()}.feedbeef.tmp"  # a live extraction of this process
    busy.mkdir()

    data = zip_path.read_bytes()
    extracted = uploads.extract_dataset_zip(data)
    assert extracted.name == hashlib.sha256(data).hexdigest()[:20]
    assert not staging.exists() and busy.exists()
    (uploads.uploads_dir() / f".{'1' * 20}.{dead_pid}.0badcafe.tmp").mkdir()
    uploads.extract_dataset_zip(data)  # the same zip again: found in the cache, and still cleaned
    assert sorted(p.name for p in uploads.uploads_dir().glob(".*")) == [busy.name]


KILLED_IMPORT = """
import os, signal, sys
import numpy as np
from data import folder
from data.datasets import DatasetSpec
def save_then_die(path, **arrays):
    np.savez(path, **arrays)
    os.kill(os.getpid(), signal.SIGKILL)  # killed after writing the temporary file, before it is moved
folder._save_npz = lambda path, **arrays: folder.atomic_save(path, lambda tmp: save_then_die(tmp, **arrays))
folder.import_folder(DatasetSpec(source="folder", name="x", size=16, path=sys.argv[1]))
"""


def test_the_temporary_file_of_a_killed_folder_import_is_removed_at_the_next_import(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    killed = subprocess.run([sys.executable, "-c", KILLED_IMPORT, str(tmp_path / "images")], cwd=ROOT,
                            env=os.environ.copy())
    assert killed.returncode == -signal.SIGKILL
    cache = tmp_path / "cache" / "folders"
    assert len(list(cache.glob(".*.tmp.npz"))) == 1
    path = folder.import_folder(DatasetSpec(source="folder", name="x", size=16, path=str(tmp_path / "images")))
    assert sorted(p.name for p in cache.iterdir()) == [path.name]


# --- names, tags, notes, class names ------------------------------------------------------------

def test_names_tags_and_notes_lose_control_and_bidi_characters(runs_root):
    run, path = gan_run_with_set(runs_root)
    manage.rename(run, HOSTILE)
    assert manage.tag(run, add=[HOSTILE, "paper\x07"]) == [CLEANED, "paper"]
    manage.note(run, "line one\x1b[31m\r\nline\ttwo\u202e\n")
    assert manage.meta(run) == {"name": CLEANED, "tags": [CLEANED, "paper"], "note": "line one[31m\nline two"}
    manage.rename(path, HOSTILE)
    assert manage.meta(path)["name"] == CLEANED


@pytest.mark.parametrize("field, limit", [("name", 200), ("tag", 50), ("note", 5000)])
def test_an_overlong_name_tag_or_note_is_refused_and_the_old_one_kept(runs_root, field, limit):
    run, _ = gan_run_with_set(runs_root)
    manage.rename(run, "old name")
    manage.tag(run, add=["old"])
    manage.note(run, "old note")
    change = {"name": lambda text: manage.rename(run, text), "tag": lambda text: manage.tag(run, add=[text]),
              "note": lambda text: manage.note(run, text)}[field]
    change("x" * limit)  # at the limit: kept whole
    manage.rename(run, "old name")
    manage.tag(run, remove=["x" * limit])
    manage.note(run, "old note")
    with pytest.raises(ValueError, match=f"{field} .*at most {limit} characters.*{limit + 1}"):
        change("x" * (limit + 1))
    assert manage.meta(run) == {"name": "old name", "tags": ["old"], "note": "old note"}


def test_the_cli_refuses_a_ten_thousand_character_name_and_echoes_no_escape_or_bell(runs_root):
    run, path = gan_run_with_set(runs_root)
    out = lab("runs", "rename", run.id, "x" * 10_000)
    assert out.returncode == 1 and len(out.stderr) < 300 and "at most 200 characters" in out.stderr
    assert manage.meta(run)["name"] == ""
    typed = HOSTILE.replace("\x00", "")  # a command line cannot hold NUL
    for command in (("runs", "tag", run.id, typed), ("runs", "rename", run.id, typed),
                    ("sets", "rename", set_id(path), typed), ("sets", "list")):
        out = lab(*command)
        assert out.returncode == 0, out.stderr
        assert CLEANED in out.stdout and not any(c in out.stdout for c in "\x1b\x07\u202e\u2066"), out.stdout


def test_a_hand_edited_meta_file_cannot_bring_the_characters_back(runs_root):
    run, path = gan_run_with_set(runs_root)
    (run.path / "meta.json").write_text(json.dumps({"name": HOSTILE + "y" * 10_000, "tags": [HOSTILE * 20, 7],
                                                    "note": HOSTILE + "\nz" * 10_000}))
    sidecar = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**sidecar, "name": HOSTILE}))
    meta = manage.meta(run)
    assert meta["name"] == (CLEANED + "y" * 200)[:200] and manage.label(run) == meta["name"]
    assert meta["tags"] == [(CLEANED * 20)[:50], "7"]
    assert len(meta["note"]) == 5000 and meta["note"].startswith(CLEANED + "\nz")
    (listed,) = list_sets()
    assert manage.meta(path)["name"] == CLEANED and listed.name == CLEANED


def test_class_names_from_folder_names_lose_control_and_bidi_characters(runs_root, tmp_path):
    root = tmp_path / "scans"
    for name in ("normal\x1b[31m", "sick\u202e"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((12, 12), 30 * i, np.uint8)).save(root / name / f"{i}.png")
    assert folder.scan(root).class_names == ["normal[31m", "sick"]
    out = lab("import-folder", str(root), "--size", "16")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "normal[31m, sick" in out.stdout and not any(c in out.stdout for c in "\x1b\u202e"), out.stdout
    splits, _ = folder.load(DatasetSpec(source="folder", name="scans", size=16, path=str(root)))
    assert splits["train"].class_names == ["normal[31m", "sick"]


def test_class_folders_that_clean_to_the_same_name_are_refused_naming_both(tmp_path):
    for name in ("sick", "sick\u202e", "well"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name / "0.png")
    with pytest.raises(DatasetError, match="'sick'.*same name"):
        folder.scan(tmp_path)


def test_the_runs_page_shows_a_hand_edited_name_and_tags_without_their_overrides(runs_root):
    from streamlit.testing.v1 import AppTest

    run, _ = gan_run_with_set(runs_root)
    (run.path / "meta.json").write_text(json.dumps({"name": HOSTILE, "tags": [HOSTILE]}))
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=180).run()
    assert not at.exception
    row = at.dataframe[0].value.iloc[0]
    assert (row["run"], row["tags"]) == (CLEANED, CLEANED)
