"""Image folders: layouts, gray/RGB, mixed sizes, the import cache, patient-aware splits and bad folders."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA_DIR
from data import folder
from data.config import ConfigError
from data.datasets import DatasetSpec, load_dataset
from data.hooks import Hooks, Interrupted
from data.medmnist_source import DatasetError
from data.zipsafe import extract_zip

OCT_SAMPLES = sorted((DATA_DIR / "oct2017_samples").glob("*.jpeg"))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_oct_folder(root: Path, patients: int = 8, per_patient: int = 3, seed: int = 0) -> Path:
    """OCT2017-style names from the real B-scans: random crops of mixed sizes, made-up patient ids.

    Patient ids repeat across classes (as in OCT2017, where one patient can have several diagnoses).
    """
    rng = np.random.default_rng(seed)
    assert len(OCT_SAMPLES) == 4, f"expected the four OCT2017 sample B-scans in {DATA_DIR}/oct2017_samples"
    for source in OCT_SAMPLES:
        label = source.name.split("-")[0]
        (root / label).mkdir(parents=True, exist_ok=True)
        with Image.open(source) as scan:
            w, h = scan.size
            for patient in range(patients):
                for n in range(1, per_patient + 1):
                    x, y = int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3))
                    crop = scan.crop((x, y, x + w // 2, y + h // 2))
                    crop.resize((int(rng.integers(40, 90)), int(rng.integers(40, 90)))).save(
                        root / label / f"{label}-{7000 + patient}-{n}.jpeg")
    return root


def make_png_folder(root: Path, classes: dict[str, int], rgb: bool = True, size: int = 20) -> Path:
    rng = np.random.default_rng(1)
    for label, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (size + i % 5, size, 3) if rgb else (size, size + i % 3)
            pixels = rng.integers(0, 80, shape, dtype=np.uint8) + 80 * label
            Image.fromarray(pixels).save(root / name / f"img{i}.png")
    return root


def spec_for(root: Path, size: int = 24, **kw) -> DatasetSpec:
    return DatasetSpec(source="folder", name=root.name, size=size, path=str(root), **kw)


def test_patient_aware_split_puts_no_patient_in_two_splits_and_keeps_every_class(tmp_path):
    root = make_oct_folder(tmp_path / "oct")
    splits, report = folder.load(spec_for(root, size=32))
    patients = {s: {folder.patient_id(n, images.class_names[k]) for n, k in zip(images.names, images.labels)}
                for s, images in splits.items()}
    assert None not in set().union(*patients.values())
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(s) for s in splits.values()) == 4 * 8 * 3
    for images in splits.values():
        assert images.class_names == ["CNV", "DME", "DRUSEN", "NORMAL"]
        assert (images.class_counts() > 0).all()
        assert images.images.shape[1:] == (32, 32, 1)  # OCT scans are grayscale: one channel kept
    assert len(splits["train"]) > len(splits["test"]) > len(splits["val"])
    assert any("by patient (8 patients; none in two splits)" in line for line in report)


def test_split_is_reproducible_for_a_seed_and_changes_with_another(tmp_path):
    root = make_oct_folder(tmp_path / "oct")
    names = lambda seed: folder.load(spec_for(root, split_seed=seed))[0]["test"].names  # noqa: E731
    assert names(0) == names(0)
    assert names(0) != names(1)


def test_files_without_patient_ids_are_split_stratified_by_class(tmp_path):
    root = make_png_folder(tmp_path / "shapes", {"round": 30, "square": 20})
    splits, report = folder.load(spec_for(root, size=16))
    assert splits["train"].class_counts().tolist() == [21, 14]
    assert splits["val"].class_counts().tolist() == [3, 2]
    assert splits["test"].class_counts().tolist() == [6, 4]
    assert splits["train"].images.shape[1:] == (16, 16, 3)
    assert any("stratified by class" in line for line in report)


def test_given_train_test_folders_are_kept_and_val_is_carved_from_train(tmp_path):
    root = tmp_path / "OCT2017"
    make_oct_folder(root / "train", patients=6)
    make_oct_folder(root / "test", patients=2, seed=5)
    splits, report = folder.load(spec_for(root))
    assert all(n.startswith("test/") for n in splits["test"].names) and len(splits["test"]) == 4 * 2 * 3
    assert all(n.startswith("train/") for n in splits["train"].names + splits["val"].names)
    assert len(splits["train"]) + len(splits["val"]) == 4 * 6 * 3
    assert any(line.startswith("val carved from train by patient") for line in report)
    # the made-up ids 7000.. repeat between the given train/ and test/ folders: that leak is reported
    assert any(line.startswith("warning:") and "more than one of the given split folders" in line
               for line in report)


def test_grayscale_and_rgb_detection_and_forced_channels(tmp_path):
    gray = make_png_folder(tmp_path / "gray", {"a": 6, "b": 6}, rgb=False)
    rgb = make_png_folder(tmp_path / "rgb", {"a": 6, "b": 6}, rgb=True)
    assert folder.load(spec_for(gray))[0]["train"].channels == 1
    assert folder.load(spec_for(rgb))[0]["train"].channels == 3
    assert folder.load(spec_for(gray, channels=3))[0]["train"].channels == 3
    forced = folder.load(spec_for(rgb, channels=1))[0]["train"]
    assert forced.channels == 1 and forced.images.std() > 0


def test_undecodable_and_non_image_files_are_skipped_and_named_while_the_rest_loads(tmp_path):
    root = make_png_folder(tmp_path / "mixed", {"a": 6, "b": 6})
    (root / "a" / "broken.png").write_bytes(b"\x89PNG but not really")
    (root / "b" / "notes.txt").write_text("not an image")
    splits, report = folder.load(spec_for(root))
    assert sum(len(s) for s in splits.values()) == 12
    assert any("a/broken.png" in line and "cannot be decoded" in line for line in report)
    assert any("b/notes.txt" in line and "not an image" in line for line in report)


def test_import_is_cached_and_a_changed_folder_is_imported_again(tmp_path, cache):
    root = make_png_folder(tmp_path / "cached", {"a": 6, "b": 6})
    spec = spec_for(root)
    first = folder.import_folder(spec)
    assert first.parent == cache / "folders" and folder.import_folder(spec) == first
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(root / "a" / "new.png")
    second = folder.import_folder(spec)
    assert second != first
    assert sum(len(s) for s in folder.load(spec)[0].values()) == 13
    assert {m["cache"] for m in folder.cached_imports()} == {str(first), str(second)}


def test_zip_upload_extracted_safely_loads_as_a_folder(tmp_path):
    source = make_oct_folder(tmp_path / "src" / "OCT2017", patients=4, per_patient=2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in source.rglob("*.jpeg"):
            z.write(path, path.relative_to(source.parent).as_posix())
        z.writestr("OCT2017/README.txt", "from the upload")
    report = extract_zip(buf.getvalue(), tmp_path / "upload")
    dataset = load_dataset(spec_for(tmp_path / "upload"))
    assert dataset.class_names == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert sum(len(s) for s in dataset.splits.values()) == 4 * 4 * 2
    assert report.skipped == ["OCT2017/README.txt: not an image (.txt)"]


def test_empty_class_folder_is_a_clear_error(tmp_path):
    root = make_png_folder(tmp_path / "empty", {"a": 6, "b": 6})
    (root / "c").mkdir()
    with pytest.raises(DatasetError, match=r"class folder .*/c is empty"):
        folder.load(spec_for(root))


def test_single_class_dataset_is_a_clear_error(tmp_path):
    root = make_png_folder(tmp_path / "single", {"only": 8})
    with pytest.raises(DatasetError, match="single class \\('only'\\)"):
        folder.load(spec_for(root))


def test_dataset_too_small_to_split_is_a_clear_error(tmp_path):
    root = make_png_folder(tmp_path / "tiny", {"a": 6, "b": 2})
    with pytest.raises(DatasetError, match="too small to split: class 'b' has 2 images"):
        folder.load(spec_for(root))


def test_one_patient_per_class_is_too_small_for_a_patient_aware_split(tmp_path):
    root = make_oct_folder(tmp_path / "oct", patients=2, per_patient=4)
    with pytest.raises(DatasetError, match="too small to split: class 'CNV' has 8 images from 2 patients"):
        folder.load(spec_for(root))


def test_a_class_with_only_undecodable_files_is_a_clear_error(tmp_path):
    root = make_png_folder(tmp_path / "bad", {"a": 6, "b": 6})
    (root / "c").mkdir()
    (root / "c" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="class 'c' .* has no decodable image"):
        folder.load(spec_for(root))


def test_missing_folder_and_mixed_layout_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="is not a folder"):
        folder.scan(tmp_path / "nowhere")
    root = make_png_folder(tmp_path / "mixed", {"train": 3, "cats": 3})
    with pytest.raises(DatasetError, match="mixes split folders"):
        folder.scan(root)


def test_import_job_writes_cache_and_resumes_from_its_checkpoint(tmp_path, runs_root, monkeypatch):
    from lab.kinds import import_folder
    from lab.engine.runs import Run

    root = make_png_folder(tmp_path / "job", {"a": 8, "b": 8})
    run = Run.create("import", {"dataset": spec_for(root).to_dict()})
    monkeypatch.setattr(folder, "CHECKPOINT_EVERY", 4)
    report_progress = run.progress

    def progress_then_sigterm_at_6(done, total, **kw):  # what the worker's SIGTERM handler does
        report_progress(done, total, **kw)
        run.stop_requested = run.stop_requested or done == 6

    run.progress = progress_then_sigterm_at_6
    with pytest.raises(Interrupted):
        import_folder.run(run)
    assert int(np.load(run.checkpoints / "last.npz")["done"]) == 6
    decoded = []
    decode = folder.decode
    monkeypatch.setattr(folder, "decode", lambda path, size: decoded.append(path) or decode(path, size))
    import_folder.run(Run(run.path))
    assert len(decoded) == 10  # continued after the 6 images in the checkpoint
    meta = json.loads((run.artifacts / "import.json").read_text())
    assert meta["images"] == 16 and meta["class_counts"] == [8, 8] and Path(meta["cache"]).exists()
    assert run.status()["progress"]["done"] == 16


def test_import_reports_progress_and_stops_through_its_hooks_without_a_run(tmp_path, cache):
    root = make_png_folder(tmp_path / "hooks", {"a": 5, "b": 5})
    seen = []
    hooks = Hooks(progress=lambda done, total, **kw: seen.append((done, total)),
                  should_stop=lambda: len(seen) >= 3, checkpoints=tmp_path / "checkpoints")
    with pytest.raises(Interrupted, match="after 3/10 images"):
        folder.import_folder(spec_for(root), hooks)
    assert seen == [(1, 10), (2, 10), (3, 10)]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.npz"]  # no temporary file left
    assert not folder.cached_imports()  # an interrupted import is not in the cache
    path = folder.import_folder(spec_for(root), Hooks(checkpoints=tmp_path / "checkpoints"))
    assert folder.import_summary(path)["images"] == 10 and [p.name for p in path.parent.iterdir()] == [path.name]


def test_an_import_job_config_with_an_unknown_key_or_a_medmnist_spec_is_refused(runs_root):
    from lab.kinds import import_folder
    from lab.engine.runs import Run

    with pytest.raises(ConfigError, match="unknown setting.*'size'"):
        import_folder.run(Run.create("import", {"dataset": DatasetSpec().to_dict(), "size": 64}))
    with pytest.raises(ConfigError, match="only folders are imported"):
        import_folder.run(Run.create("import", {"dataset": DatasetSpec().to_dict()}))


def test_sixteen_bit_palette_and_rgba_images_are_converted(tmp_path):
    root = tmp_path / "modes"
    rng = np.random.default_rng(2)
    for name in ("deep", "flat"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 4000, (30, 30), dtype=np.uint16)).save(root / name / f"scan{i}.png")
            Image.fromarray(rng.integers(0, 255, (30, 30, 4), dtype=np.uint8)).save(root / name / f"rgba{i}.png")
            Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).convert("P").save(
                root / name / f"pal{i}.png")
    splits, report = folder.load(spec_for(root, size=16))
    assert not [line for line in report if line.startswith("skipped")]
    assert sum(len(s) for s in splits.values()) == 24 and splits["train"].channels == 3
    sixteen_bit = [i for i, n in enumerate(splits["train"].names) if "scan" in n]
    scans = splits["train"].images[sixteen_bit]
    assert scans.max() > 200 and (scans == 255).mean() < 0.05  # stretched to 8 bits, not clipped at 255


def test_gray_images_in_an_rgb_folder_become_three_equal_channels(tmp_path):
    root = tmp_path / "mixed"
    make_png_folder(root, {"a_gray": 6}, rgb=False)
    make_png_folder(root, {"b_colour": 6}, rgb=True)
    images = np.concatenate([s.images for s in folder.load(spec_for(root))[0].values()])
    labels = np.concatenate([s.labels for s in folder.load(spec_for(root))[0].values()])
    assert images.shape[-1] == 3
    gray = images[labels == 0]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert (images[labels == 1][..., 0] != images[labels == 1][..., 1]).any()
