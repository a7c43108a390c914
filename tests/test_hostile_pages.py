"""User strings on the pages (zip, file, folder, class and dataset names) are shown as text, never as
Markdown that the browser would turn into images or links; the SinGAN page never walks a whole disk."""
from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from data import folder
from data.datasets import DatasetSpec
from data.medmnist_source import DatasetError
from pages.common import plain

PAGES = Path(__file__).resolve().parent.parent / "pages"
HOSTILE = "![t](https:example.invalid)"
ASCII_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))


def bodies(at: AppTest, *kinds: str) -> str:
    return " ".join(element.value for kind in kinds for element in at.get(kind))


@pytest.mark.parametrize("text", [HOSTILE, "<https://example.invalid>", "a_b*c*`d`", "$x$ :red[y] ~z~",
                                  "line\nbreak\r\n# heading", "www.example.invalid/x.png", "\\![t](u)"])
def test_plain_escapes_every_markdown_character_and_keeps_the_text(text):
    shown = plain(text)
    assert not ASCII_PUNCTUATION.search(re.sub(r"\\.", "", shown))  # only escaped characters are left
    assert "\n" not in shown and "\r" not in shown
    assert re.sub(r"\\(.)", r"\1", shown) == " ".join(text.splitlines())


def png(seed: int, value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 60, (10, 10), dtype=np.uint8) + value).save(buf, "PNG")
    return buf.getvalue()


def test_the_data_page_shows_a_hostile_zip_member_name_as_text(runs_root):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"../{HOSTILE}.png", b"x")
    at = AppTest.from_file(str(PAGES / "dataset.py"), default_timeout=120).run()
    at.radio(key="data_source").set_value("zip").run()
    at.file_uploader(key="zip_upload").set_value((f"{HOSTILE}.zip", buf.getvalue(), "application/zip")).run()
    shown = bodies(at, "error")  # refused as it arrives
    assert plain(f"'../{HOSTILE}.png' points outside the folder") in shown
    assert "![" not in shown and "](" not in shown


def test_the_data_page_shows_a_hostile_dataset_and_file_name_as_text(runs_root, tmp_path):
    root = tmp_path / "lesions"
    for label, name in enumerate(["benign", "malignant"]):
        (root / name).mkdir(parents=True)
        for i in range(12):
            (root / name / f"{i}.png").write_bytes(png(i, 100 * label))
    (root / "benign" / f"{HOSTILE}.txt").write_text("notes")
    spec = DatasetSpec(source="folder", name=HOSTILE, size=8, path=str(root))
    folder.import_folder(spec)
    at = AppTest.from_file(str(PAGES / "dataset.py"), default_timeout=120)
    at.session_state["dataset_spec"] = spec
    at.run()
    assert not at.exception
    assert at.header[0].value == plain(spec.label)
    assert plain(f"benign/{HOSTILE}.txt: not an image") in bodies(at, "warning")
    assert "![" not in bodies(at, "header", "warning", "info", "markdown", "caption")


def test_the_samples_page_shows_a_hostile_checkpoint_name_as_text(runs_root):
    at = AppTest.from_file(str(PAGES / "samples.py"), default_timeout=60).run()
    at.radio[0].set_value("Upload a checkpoint").run()
    at.get("file_uploader")[0].set_value((f"{HOSTILE}.pt", b"not a checkpoint", "application/octet-stream")).run()
    shown = bodies(at, "error")
    assert plain(f"{HOSTILE}.pt: not a loadable weights-only PyTorch checkpoint") in shown and "![" not in shown


def singan_folder(at: AppTest, path: str) -> AppTest:
    next(r for r in at.radio if r.label == "Image from").set_value("Image folder").run()
    next(t for t in at.text_input if t.label == "Folder path").input(path).run()
    return at


def test_the_singan_image_folder_lists_only_that_folders_images(runs_root, tmp_path):
    (tmp_path / "scans" / "deeper").mkdir(parents=True)
    for name in ("b.png", "a.png", "deeper/c.png"):
        (tmp_path / "scans" / name).write_bytes(png(0, 50))
    (tmp_path / "scans" / "notes.txt").write_text("x")
    at = singan_folder(AppTest.from_file(str(PAGES / "singan.py"), default_timeout=60).run(), str(tmp_path / "scans"))
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Image").options == ["a.png", "b.png"]


def test_the_singan_image_folder_refuses_the_root_of_the_file_system_at_once(runs_root):
    at = AppTest.from_file(str(PAGES / "singan.py"), default_timeout=60).run()
    start = time.perf_counter()
    singan_folder(at, "/")
    assert time.perf_counter() - start < 10
    assert any("root of the file system" in e.value for e in at.error)


def test_the_singan_image_folder_shows_a_hostile_folder_name_as_text(runs_root, tmp_path):
    at = singan_folder(AppTest.from_file(str(PAGES / "singan.py"), default_timeout=60).run(),
                       str(tmp_path / HOSTILE))
    shown = bodies(at, "error")
    assert plain(HOSTILE) in shown and "![" not in shown


def test_images_in_lists_a_capped_sorted_flat_listing(tmp_path):
    for i in range(5):
        (tmp_path / f"{4 - i}.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.png").write_bytes(b"")
    assert [p.name for p in folder.images_in(tmp_path, limit=3)] == ["0.png", "1.png", "2.png"]
    with pytest.raises(DatasetError, match="not a folder"):
        folder.images_in(tmp_path / "missing")


def test_the_quality_page_says_how_an_uploaded_float_set_was_converted(runs_root):
    buf = io.BytesIO()
    np.savez(buf, images=np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32),
             labels=np.array([0, 1, 0, 1]))
    at = AppTest.from_file(str(PAGES / "quality.py"), default_timeout=120)
    at.session_state["dataset_spec"] = DatasetSpec(name="pneumoniamnist", size=28)
    at.run()
    at.get("file_uploader")[0].set_value(("floats.npz", buf.getvalue(), "application/octet-stream")).run()
    next(b for b in at.button if b.label == "Register upload").click().run()
    assert not at.exception
    assert any(plain("float images in [0, 1] scaled to 0-255") in s.value for s in at.success)
