"""Uploaded dataset zips: extracted once per content, skipped members remembered, a refused zip leaves nothing."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from data import uploads
from data.medmnist_source import DatasetError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 12), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_a_dataset_zip_is_extracted_once_and_its_skipped_members_are_remembered(cache, monkeypatch):
    data = make_zip({"set/a/1.png": png_bytes(1), "set/b/2.png": png_bytes(2), "set/notes.txt": b"hello"})
    folder = uploads.extract_dataset_zip(data)
    assert folder.parent == cache / "uploads"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == ["set/a/1.png", "set/b/2.png"]
    assert uploads.skipped_members(folder) == ["set/notes.txt: not an image (.txt)"]
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted([folder.name, f"{folder.name}.json"])

    monkeypatch.setattr(uploads, "extract_zip", lambda *a, **kw: pytest.fail("extracted the same zip twice"))
    assert uploads.extract_dataset_zip(data) == folder
    assert uploads.skipped_members(str(folder)) == ["set/notes.txt: not an image (.txt)"]


def test_another_zip_gets_another_folder_and_other_folders_have_no_skipped_members(tmp_path):
    first = uploads.extract_dataset_zip(make_zip({"a/1.png": png_bytes(1), "b/2.png": png_bytes(2)}))
    second = uploads.extract_dataset_zip(make_zip({"a/1.png": png_bytes(3), "b/2.png": png_bytes(4)}))
    assert first != second and first.parent == second.parent
    (tmp_path / "mine.json").write_text('{"skipped": ["not from an upload"]}')
    assert uploads.skipped_members(tmp_path / "mine") == []
    assert uploads.skipped_members("") == []


def test_a_refused_zip_leaves_no_folder_behind(cache):
    with pytest.raises(DatasetError, match="'../escape.png' points outside the folder"):
        uploads.extract_dataset_zip(make_zip({"a/1.png": png_bytes(1), "../escape.png": png_bytes(2)}))
    with pytest.raises(DatasetError, match="not a readable zip file"):
        uploads.extract_dataset_zip(b"not a zip")
    assert not (cache / "uploads").exists() or not list((cache / "uploads").iterdir())


def test_an_extraction_that_dies_half_way_is_not_taken_for_a_finished_one(cache, monkeypatch):
    data = make_zip({"a/1.png": png_bytes(1), "b/2.png": png_bytes(2)})
    real_extract = uploads.extract_zip

    def dies_after_writing(source, target, **kw):
        real_extract(source, target, **kw)
        raise KeyboardInterrupt  # the process is stopped after the files are written, before it finishes

    monkeypatch.setattr(uploads, "extract_zip", dies_after_writing)
    with pytest.raises(KeyboardInterrupt):
        uploads.extract_dataset_zip(data)
    assert not list((cache / "uploads").iterdir())  # its half-made folder is gone
    monkeypatch.setattr(uploads, "extract_zip", real_extract)
    folder = uploads.extract_dataset_zip(data)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == ["a/1.png", "b/2.png"]
    assert uploads.skipped_members(folder) == []


def sized_png(side: int, width: int | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((side, width or side), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_an_extracted_zip_is_named_by_its_top_folder_or_its_file_name_and_knows_its_images_side():
    nested = uploads.extract_dataset_zip(make_zip({"derma-28/a/1.png": sized_png(28), "derma-28/b/2.png": sized_png(28),
                                                   "__MACOSX/derma-28/._1.png": b"x"}), "export (3).zip")
    assert nested.name != "derma-28" and uploads.dataset_name(nested) == "derma-28"
    assert uploads.image_side(nested) == 28
    flat = uploads.extract_dataset_zip(make_zip({"a/1.png": sized_png(28), "b/2.png": sized_png(28)}), "chest.zip")
    assert uploads.dataset_name(flat) == "chest" and uploads.image_side(flat) == 28
    mixed = uploads.extract_dataset_zip(make_zip({"a/1.png": sized_png(28), "b/2.png": sized_png(64)}), "mixed.zip")
    wide = uploads.extract_dataset_zip(make_zip({"a/1.png": sized_png(28, 40), "b/2.png": sized_png(28, 40)}), "w.zip")
    assert uploads.image_side(mixed) is None and uploads.image_side(wide) is None  # no one size to keep
    assert uploads.dataset_name(uploads.uploads_dir().parent) == "cache"  # any other folder: its own name
