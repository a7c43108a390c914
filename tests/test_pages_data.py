"""The Data page in Streamlit's AppTest on the real DermaMNIST and PneumoniaMNIST files, folders and zips."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from data import folder
from data.datasets import DatasetSpec
from lab.engine import jobs
from lab.engine.runs import Run
from pages.common import plain

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "dataset.py")


@pytest.fixture
def page(runs_root) -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=180).run()


def chart_data(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def make_class_folder(root: Path, per_class: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for label, name in enumerate(["benign", "malignant"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.integers(0, 100, (30 + i, 26, 3)) + 100 * label).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}-{100 + i // 2}-{i % 2}.png")
    return root


def test_dermamnist_page_shows_class_chart_grids_and_sizes(page):
    assert not page.exception
    assert page.header[0].value == plain("dermamnist (28px)")
    assert metrics(page) == {"Images": "10015", "Classes": "7", "Image size": "28×28", "Channels": "3 (RGB)"}
    bars = {trace["name"]: trace for trace in chart_data(page)["data"]}
    assert set(bars) == {"train", "val", "test"}
    train_counts = dict(zip(bars["train"]["x"], bars["train"]["y"]["bdata"] if isinstance(bars["train"]["y"], dict)
                            else bars["train"]["y"]))
    assert any(name.startswith("melanocytic nevi") for name in train_counts)
    assert len(page.image) == 7 + 2  # a grid per class, then augmentation before/after
    assert page.image[0].captions[0].startswith("actinic keratoses")


def test_switching_to_pneumoniamnist_shows_its_two_grayscale_classes(page):
    page.selectbox(key="mnist_flag").select("pneumoniamnist").run()
    assert not page.exception
    assert page.session_state["dataset_spec"] == DatasetSpec(name="pneumoniamnist", size=28)
    assert metrics(page)["Channels"] == "1 (grayscale)" and metrics(page)["Images"] == "5856"
    assert [t["name"] for t in chart_data(page)["data"]] == ["train", "val", "test"]
    assert len(page.image) == 2 + 2
    assert [img.captions[0] for img in page.image[:2]] == ["normal (1214 train images)", "pneumonia (3494 train images)"]


def test_training_fraction_slider_shows_the_per_class_counts_it_keeps(page, derma):
    page.slider[0].set_value(0.1).run()
    assert not page.exception
    table = page.dataframe[-1].value
    expected = derma.train.stratified_subset(0.1, seed=0).class_counts().tolist()
    assert table.loc["10%"].tolist() == expected
    assert table.loc["full train"].tolist() == derma.train.class_counts().tolist()
    assert expected[5] == round(0.1 * 4693)  # melanocytic nevi, the majority class
    assert page.session_state["train_fraction"] == 0.1


def test_augmentation_preview_follows_the_chosen_pipeline(page):
    page.multiselect(key="aug_names_dermamnist").set_value(["vflip", "coarse_dropout"]).run()
    assert not page.exception
    assert page.image[-1].captions[0] == "after: vflip → coarse_dropout"
    assert page.image[-2].captions[0] == "before"


def test_augmentation_default_leaves_out_the_flip_for_chest_x_rays_and_says_why(page):
    assert page.multiselect(key="aug_names_dermamnist").value == ["hflip", "rotate", "brightness_contrast"]
    assert not any("not mirrored" in c.value for c in page.caption)
    page.selectbox(key="mnist_flag").select("pneumoniamnist").run()
    assert not page.exception
    assert page.multiselect(key="aug_names_pneumoniamnist").value == ["rotate", "brightness_contrast"]
    assert any("heart sits on the patient's left" in c.value for c in page.caption)
    assert page.image[-1].captions[0] == "after: rotate → brightness_contrast"


def test_imported_folder_shows_patient_aware_split_sizes(page, tmp_path):
    root = make_class_folder(tmp_path / "lesions")
    folder.import_folder(DatasetSpec(source="folder", name="lesions", size=64, path=str(root)))
    page.radio(key="data_source").set_value("folder").run()
    page.text_input(key="folder_path").input(str(root)).run()
    page.button[0].click().run()
    assert not page.exception
    assert page.header[0].value == plain("lesions (64px)")
    assert any(plain("by patient (6 patients; none in two splits)") in i.value for i in page.info)
    split_table = page.dataframe[0].value
    assert split_table["total"].tolist() == [12, 12]


def test_folder_that_is_not_imported_yet_is_imported_by_a_background_job(page, tmp_path):
    root = make_class_folder(tmp_path / "fresh")
    page.radio(key="data_source").set_value("folder").run()
    page.text_input(key="folder_path").input(str(root)).run()
    page.button[0].click().run()
    run = Run(page.session_state["import_run"])
    assert run.kind == "import"
    assert jobs.wait(run, timeout=120) == "done"
    page.run()
    assert not page.exception
    assert page.header[0].value == plain("fresh (64px)")


def test_folder_too_small_to_split_is_refused_and_the_dataset_stays(page, tmp_path):
    root = make_class_folder(tmp_path / "tiny", per_class=2)
    page.radio(key="data_source").set_value("folder").run()
    page.text_input(key="folder_path").input(str(root)).run()
    page.button[0].click().run()
    assert jobs.wait(Run(page.session_state["import_run"]), timeout=120) == "failed"  # refused before decoding
    page.run()
    assert any("too small to split" in e.value for e in page.error)
    assert page.header[0].value == plain("dermamnist (28px)")
    assert page.session_state["dataset_spec"] == DatasetSpec()


def test_zip_upload_loads_and_names_skipped_files(page, tmp_path):
    root = make_class_folder(tmp_path / "zipped" / "set")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in root.rglob("*.png"):
            z.write(path, path.relative_to(root.parent).as_posix())
        z.writestr("set/benign/notes.txt", "not an image")
        z.writestr("set/malignant/broken.png", b"garbage")
    page.radio(key="data_source").set_value("zip").run()
    page.file_uploader(key="zip_upload").set_value(("lesions.zip", buf.getvalue(), "application/zip")).run()
    page.button[0].click().run()
    run = Run(page.session_state["import_run"])
    assert jobs.wait(run, timeout=120) == "done"
    page.run()
    assert not page.exception
    assert page.header[0].value == plain("set (64px)")  # its top folder; images of many sizes: the usual 64 px
    warnings = " ".join(w.value for w in page.warning)
    assert plain("set/benign/notes.txt: not an image") in warnings  # named by the zip check
    assert plain("malignant/broken.png: cannot be decoded") in warnings  # named by the import (relative to set/)


def test_zip_with_a_path_escaping_its_folder_is_refused_on_the_page(page):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../../escape.png", b"x")
    page.radio(key="data_source").set_value("zip").run()
    page.file_uploader(key="zip_upload").set_value(("evil.zip", buf.getvalue(), "application/zip")).run()
    assert plain("'../../escape.png' points outside the folder") in page.error[0].value  # refused as it arrives
    assert page.header[0].value == plain("dermamnist (28px)")  # the current dataset is unchanged


def test_a_zip_of_a_28_px_set_imports_under_its_file_name_at_28_px(page, pneumonia):
    from data.synthetic import to_folder_zip

    both = np.concatenate([np.flatnonzero(pneumonia.train.labels == k)[:20] for k in (0, 1)])
    part = pneumonia.train.take(both)  # the lab's own image-folder export: <class>/<index>.png, 28 px
    page.radio(key="data_source").set_value("zip").run()
    page.file_uploader(key="zip_upload").set_value(("chest-28.zip", to_folder_zip(part), "application/zip")).run()
    assert page.selectbox(key="zip_size").value == 28  # the images' own size, not upscaled
    page.button[0].click().run()
    run = Run(page.session_state["import_run"])
    assert jobs.wait(run, timeout=120) == "done", run.log_path.read_text()
    page.run()
    assert not page.exception
    assert page.header[0].value == plain("chest-28 (28px)")  # not the digest of its content
    assert page.session_state["dataset_spec"].size == 28
