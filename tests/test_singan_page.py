"""The single-image page in Streamlit's AppTest: choosing an image and a generator (SinGAN or GPNN), a finished
run's variations and injection, SinGAN and GPNN side by side on the same image."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from gans.singan_train import singan_config
from lab.engine import jobs
from lab.engine.manage import label
from lab.engine.runs import Run, list_runs
from lab.kinds.gpnn import run as run_gpnn
from lab.kinds.singan import run as run_singan
from tests.conftest import DATA_DIR

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "singan.py")
OCT = DATA_DIR / "oct2017_samples" / "NORMAL-9251-1.jpeg"


def test_page_previews_a_dataset_image_with_its_pyramid(runs_root):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert at.title[0].value == "Single image: SinGAN and GPNN"
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert captions == ["28×28 px · levels: 12×12 → 16×16 → 21×21 → 28×28"]  # the tiny preset for 28 px
    assert any(b.label == "Train SinGAN" for b in at.button)
    assert any("No runs yet" in c.value for c in at.caption)


def test_finished_run_shows_variations_and_injection_changes_them(runs_root):
    config = singan_config("quick", mode="image", image_path=str(OCT), variations=4, max_side=32, min_side=12,
                         stages=3, iters=8, width=8, sifid=False)
    run = Run.create("singan", config.to_dict(), root=runs_root)
    run_singan(run)
    run.write_status("done")
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert any(s.value == "Variations" for s in at.subheader)
    slider = next(s for s in at.slider if s.label.startswith("Injection level"))
    assert (slider.min, slider.max) == (0, 2)
    before = [e.proto for e in at.get("image")]
    slider.set_value(2).run()
    assert not at.exception
    assert [e.proto for e in at.get("image")] != before
    assert {b.label for b in at.get("download_button")} >= {"Generator (singan.pt)", "Variations (image-folder zip)"}


def test_a_seeds_run_lists_its_seed_runs_under_it_not_beside_it(runs_root):
    config = singan_config("tiny", mode="seeds", dataset={"name": "pneumoniamnist", "size": 28}, seeds_per_class=1,
                         variations=3, max_side=28, min_side=8, stages=2, iters=5, width=8, sifid=False)
    run = Run.create("singan", config.to_dict(), root=runs_root)
    run_singan(run)
    run.write_status("done")
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    runs_table = at.dataframe[0].value
    assert runs_table["run"].tolist() == [label(run)]  # the two seed runs are not separate rows
    assert any(s.value == "Seeds and their variations" for s in at.subheader)
    assert any(e.label == "2 seed runs" for e in at.expander)


def test_gpnn_is_offered_beside_singan_says_it_copies_patches_and_launches_on_the_shown_image(runs_root, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only: no worker in this test
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.radio(key="one_generator").set_value("gpnn").run()
    assert not at.exception
    assert any("copies real patches" in i.value and "memorization" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Make GPNN variations").click().run()
    assert not at.exception
    [run] = list_runs("gpnn")
    assert (run.config["mode"], run.config["image_index"], run.config["preset"]) == ("image", 0, "quick")
    assert run.config["dataset"]["size"] == 28


def test_singan_and_gpnn_on_the_same_image_are_shown_side_by_side_with_their_figures(runs_root, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])
    config = singan_config("quick", mode="image", image_path=str(OCT), variations=4, max_side=32, min_side=12,
                         stages=3, iters=8, width=8, sifid=False)
    singan = Run.create("singan", config.to_dict(), root=runs_root)
    run_singan(singan)
    singan.write_status("done")
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    next(b for b in at.button if b.label == "GPNN on this image too").click().run()  # one click on the SinGAN run
    [gpnn] = list_runs("gpnn")
    assert gpnn.config["image_path"] == str(OCT) and gpnn.config["variations"] == 4
    assert gpnn.config["model"]["max_side"] == 32  # the size of the SinGAN run's variations
    run_gpnn(Run(gpnn.path))
    gpnn.write_status("done")
    at.run()
    assert not at.exception
    assert any(s.value == "SinGAN and GPNN on the same image" for s in at.subheader)
    figures = at.dataframe[-1].value
    assert figures["generator"].tolist() == ["SinGAN", "GPNN"]
    assert (figures["between variations (/255)"].astype(float) > 0).all()
    assert figures["real pairs (/255)"].tolist() == ["n/a", "n/a"]  # a file has no class to compare with: no None
