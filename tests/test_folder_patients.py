"""Patient ids: guessed only from OCT2017's `<CLASS>-<patient>-<n>` names or a pattern the user gives;
an import records the split it made, `import-folder` prints it, and a folder that cannot be split is
refused before anything is queued or decoded."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data import folder
from data.config import ConfigError
from data.datasets import DatasetSpec
from data.files import read_json
from data.medmnist_source import DatasetError
from lab.cli import main
from lab.cli.data import print_split
from lab.engine.runs import Run
from lab.kinds import import_folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))


def make_folder(root: Path, names: dict[str, list[str]]) -> Path:
    rng = np.random.default_rng(0)
    for label, (class_name, files) in enumerate(names.items()):
        (root / class_name).mkdir(parents=True)
        for name in files:
            Image.fromarray(rng.integers(0, 100, (12, 12), dtype=np.uint8) + 100 * label).save(root / class_name / name)
    return root


def spec_for(root: Path, **kw) -> DatasetSpec:
    return DatasetSpec(source="folder", name=root.name, size=8, path=str(root), **kw)


@pytest.mark.parametrize("relpath, class_name, patient", [
    ("CNV/CNV-1016042-1.jpeg", "CNV", "1016042"),
    ("train/DME/DME-30521-15.jpeg", "DME", "30521"),
    ("df/DermaMNIST_train_00000.jpg", "df", None),
    ("akiec/IMG_2023_1.png", "akiec", None),
    ("DME/CNV-1016042-1.jpeg", "DME", None),  # the prefix is another class: not the OCT2017 scheme
    ("nv/nv-train-00012.png", "nv", "train"),  # the scheme as named; the user can always say otherwise
])
def test_patient_ids_come_only_from_names_in_the_oct2017_scheme(relpath, class_name, patient):
    assert folder.patient_id(relpath, class_name) == patient


def test_a_dermamnist_style_folder_is_split_by_file_not_into_three_patients(tmp_path):
    names = {c: [f"DermaMNIST_{s}_{i:05d}.jpg" for s in ("train", "val", "test") for i in range(4)]
             for c in ("akiec", "df")}
    splits, report = folder.load(spec_for(make_folder(tmp_path / "derma", names)))
    assert sum(len(s) for s in splits.values()) == 24
    assert any("stratified by class" in line for line in report)
    assert not any("patient" in line for line in report)


def test_a_patient_pattern_groups_files_by_patient_and_no_patient_is_in_two_splits(tmp_path):
    names = {c: [f"scan_p{p:02d}_{n}.png" for p in range(6) for n in range(3)] for c in ("benign", "malignant")}
    spec = spec_for(make_folder(tmp_path / "scans", names), patient_pattern=r"_p(?P<patient>\d+)_")
    splits, report = folder.load(spec)
    patients = {s: {folder.patient_id(n, "", spec.patient_pattern) for n in images.names}
                for s, images in splits.items()}
    assert None not in set().union(*patients.values())
    assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert any("by patient (6 patients" in line for line in report)
    rows = folder.split_table(splits, spec.patient_pattern)
    assert {(r["split"], r["class"]) for r in rows} == {(s, c) for s in splits for c in ("benign", "malignant")}
    assert sum(r["images"] for r in rows) == 36
    assert all(r["patients"] * 3 == r["images"] for r in rows)


@pytest.mark.parametrize("pattern, reason", [("(unclosed", "not a regular expression"),
                                             (r"\d+", "a group")])
def test_a_patient_pattern_that_cannot_name_a_patient_is_refused_when_the_spec_is_built(pattern, reason):
    with pytest.raises(ConfigError, match=f"patient_pattern.*{reason}"):
        DatasetSpec(source="folder", path="/x", patient_pattern=pattern)


def test_a_folder_that_cannot_be_split_is_refused_before_any_image_is_decoded(tmp_path, monkeypatch):
    names = {"benign": ["benign-7-1.png", "benign-7-2.png"], "malignant": ["malignant-8-1.png", "malignant-8-2.png"]}
    spec = spec_for(make_folder(tmp_path / "tiny", names))
    monkeypatch.setattr(folder, "decode", lambda *a: pytest.fail("decoded an image of a folder it cannot split"))
    with pytest.raises(DatasetError, match="too small to split: class 'benign' has 2 images from 1 patients"):
        folder.check_split(spec)


def test_an_import_records_the_split_it_made_and_import_folder_prints_it(runs_root, tmp_path, capsys):
    names = {c: [f"{c}-{p}-{n}.png" for p in range(5) for n in range(2)] for c in ("CNV", "NORMAL")}
    spec = spec_for(make_folder(tmp_path / "oct", names))
    run = Run.create("import", {"dataset": spec.to_dict()})
    import_folder.run(run)  # what the worker runs
    summary = read_json(run.artifacts / "import.json")
    assert summary["split_report"] == ["val, test carved from train by patient (5 patients; none in two splits)"]
    print_split(summary)
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["split", "class", "images", "patients"] in lines
    assert ["train", "CNV", "6", "3"] in lines and ["test", "NORMAL", "2", "1"] in lines


def test_import_folder_refuses_a_folder_it_cannot_split_before_queuing(runs_root, tmp_path, capsys):
    small = make_folder(tmp_path / "small", {c: [f"{c}-1-{n}.png" for n in range(3)] for c in ("CNV", "NORMAL")})
    assert main(["import-folder", str(small), "--size", "8"]) == 1
    assert "too small to split: class 'CNV' has 3 images from 1 patients" in capsys.readouterr().err
    assert not (runs_root / "import").exists()
