"""Counts, settings and disks at their limits (issue 21): a count a user gives is refused before any
allocation, naming the field and its limit; infinite numbers, a runs folder that is a file and a bad
LAB_MAX_JOBS are one clear line; a full disk ends a run "failed: no space left on device (<path>)"."""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import time
import types
import typing
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from data.config import Config, ConfigError
from data.datasets import DatasetSpec
from gans.checkpoint import save_generator
from gans.config import build_gan, make_config
from gans.gpnn import gpnn_config
from gans.sampling import synthesize
from gans.singan_train import singan_config
from lab.engine import executors, jobs
from lab.engine.kinds import job_kind, known_kinds
from lab.engine.runs import list_runs, process_alive
from lab.study.config import RecipeConfig, StudyConfig

ROOT = Path(__file__).resolve().parent.parent


def lab(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m lab ARGS` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single `error: …` line a refused command prints (no traceback), its exit code 1."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached"
        time.sleep(0.1)


# --- numbers no config can hold ---------------------------------------------------------------

def test_an_infinite_step_count_in_a_config_file_is_one_line_naming_the_field(runs_root, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"kind": "count", "steps": 1e400}')  # JSON reads 1e400 as infinity
    assert one_error_line(lab("run", str(config))) == "error: CountConfig.steps must be a whole number; got inf"
    assert list_runs() == []


@pytest.mark.parametrize("value, field", [(float("nan"), "steps"), (float("-inf"), "steps"), (10 ** 400, "delay")])
def test_a_number_beyond_float_or_nan_is_a_config_error_naming_the_field(value, field):
    with pytest.raises(ConfigError, match=rf"^CountConfig\.{field} must be a (whole|finite) number; got "):
        job_kind("count").config.from_dict({field: value})


# --- every count a user gives has a limit -----------------------------------------------------

def whole_number_fields(cls: type[Config], where: str) -> typing.Iterator[tuple[str, dataclasses.Field]]:
    """(path, field) of every whole-number setting of `cls` and of the configs nested in it."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        for option in options:
            items = typing.get_args(option) if typing.get_origin(option) in (list, tuple) else ()
            for inner in (option, *items):
                if isinstance(inner, type) and issubclass(inner, Config):
                    yield from whole_number_fields(inner, f"{where}.{f.name}")
            if option is int:
                yield f"{where}.{f.name}", f


def test_every_whole_number_setting_of_every_job_kind_has_an_upper_limit():
    unbounded = [path for kind in known_kinds() for path, f in whole_number_fields(job_kind(kind).config, kind)
                 if f.metadata.get("max") is None and not f.metadata.get("choices")]
    assert unbounded == []


@pytest.mark.parametrize("build, message", [
    (lambda: make_config("dcgan", "quick", export_per_class=10 ** 8), "export_per_class must be at most 20000"),
    (lambda: make_config("dcgan", "quick", epochs=1e12), "epochs must be at most 10000"),
    (lambda: singan_config("quick", image_path="x.png", variations=10 ** 6), "variations must be at most 1000"),
    (lambda: singan_config("quick", image_path="x.png", max_side=100_000), "max_side must be at most 1024"),
    (lambda: singan_config("quick", image_path="x.png", iters=10 ** 9), "iters must be at most 10000000"),
    (lambda: gpnn_config("quick", mode="seeds", dataset=DatasetSpec(), seeds_per_class=5000),
     "seeds_per_class must be at most 1000"),
    (lambda: gpnn_config("quick", mode="seeds", dataset=DatasetSpec(), seeds_per_class=1000, variations=1000),
     "GpnnConfig: seeds_per_class × variations = 1000000 images per class; at most 20000"),
    (lambda: gpnn_config("quick", mode="seeds", dataset=DatasetSpec(), seed_indices=list(range(20_000))),
     "GpnnConfig.seed_indices: 20000 seed images; at most 10000"),
    (lambda: RecipeConfig("singan", "tiny", seeds_per_class=2, variations=50_000), "variations must be at most 1000"),
    (lambda: StudyConfig(seeds=list(range(1000))), "StudyConfig.seeds: 1000 seeds; at most 100"),
    (lambda: StudyConfig(seeds=[2 ** 40]), "StudyConfig.seeds: give distinct seeds from 0 to 2147483647"),
    (lambda: job_kind("score").config(encoder={"batch_size": 10 ** 7}), "batch_size must be at most 4096"),
    (lambda: job_kind("count").config(steps=10 ** 23), "CountConfig.steps must be at most 10000000"),
])
def test_a_count_beyond_its_limit_is_refused_naming_the_field_and_the_limit(build, message):
    with pytest.raises(ConfigError) as refused:
        build()
    assert message in str(refused.value)


def test_the_limits_show_in_the_settings_help():
    from gans.config import GanConfig

    assert "export_per_class (int, 0..20000)" in GanConfig.option_help()


# --- drawing images: the size is checked before anything is allocated ----------------------------

@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    """An untrained 2-class 28-px DCGAN's generator.pt (drawing needs no training)."""
    config = make_config("dcgan", "quick", dataset={"name": "pneumoniamnist"})
    path = tmp_path_factory.mktemp("gen") / "generator.pt"
    save_generator(build_gan(config, 28, 1, 2), config, ["normal", "pneumonia"], path)
    return path


def test_sample_with_a_huge_per_class_is_refused_in_one_line_before_loading_anything(runs_root, generator_file):
    result = lab("sample", str(generator_file), "--per-class", "100000000")
    assert result.returncode == 2 and "Traceback" not in result.stderr  # argparse's usage error
    assert result.stderr.strip().splitlines()[-1].endswith(
        "argument --per-class: must be a whole number from 1 to 20000; got 100000000")


def test_a_set_too_large_for_memory_is_refused_naming_its_size_and_the_limit():
    config = make_config("dcgan", "quick", dataset={"name": "dermamnist", "size": 128})
    gan = build_gan(config, 128, 3, 7)
    with pytest.raises(ValueError, match=r"^per_class 20000 × 7 classes × 128×128×3 px = 6.4 GiB of images; "
                                         r"at most 4 GiB fit in memory: draw fewer images per class$"):
        synthesize(gan, 20_000, [str(c) for c in range(7)])


# --- the runs folder is a file; LAB_MAX_JOBS is not a count ----------------------------------------

def test_a_runs_folder_that_is_a_file_is_one_line_from_the_cli(tmp_path):
    file = tmp_path / "runs"
    file.write_text("not a folder")
    env = {"LAB_RUNS_DIR": str(file)}
    assert one_error_line(lab("runs", "list", env=env)) == f"error: LAB_RUNS_DIR={file} is a file, not a folder"
    config = tmp_path / "count.json"
    config.write_text('{"kind": "count", "steps": 1}')
    assert one_error_line(lab("run", str(config), env=env)) == f"error: LAB_RUNS_DIR={file} is a file, not a folder"
    below = file / "runs"
    assert one_error_line(lab("runs", "list", env={"LAB_RUNS_DIR": str(below)})) == (
        f"error: LAB_RUNS_DIR={below} cannot be a folder: {file} is a file")
    assert file.read_text() == "not a folder"


def test_a_runs_folder_that_is_a_file_is_a_message_in_the_app(tmp_path, monkeypatch):
    file = tmp_path / "runs"
    file.write_text("not a folder")
    monkeypatch.setenv("LAB_RUNS_DIR", str(file))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    assert [e.value for e in at.error] == [f"LAB_RUNS_DIR={file} is a file, not a folder"]


@pytest.mark.parametrize("value", ["0", "-1", "1e23", "100000000000000000000000", "65", "abc", "2.5"])
def test_lab_max_jobs_must_be_a_whole_number_from_1_to_64(value, monkeypatch):
    monkeypatch.setenv("LAB_MAX_JOBS", value)
    with pytest.raises(ValueError, match=rf"^LAB_MAX_JOBS={value!r} is not a whole number from 1 to 64"):
        executors.slots()


def test_lab_max_jobs_in_range_is_taken(monkeypatch):
    monkeypatch.setenv("LAB_MAX_JOBS", " 64 ")
    assert executors.slots() == 64


def test_a_bad_lab_max_jobs_is_one_line_and_queues_nothing(runs_root, tmp_path):
    config = tmp_path / "count.json"
    config.write_text('{"kind": "count", "steps": 1}')
    line = one_error_line(lab("run", str(config), env={"LAB_MAX_JOBS": "0"}))
    assert line.startswith("error: LAB_MAX_JOBS='0' is not a whole number from 1 to 64")
    assert list_runs() == []


# --- a full disk ----------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path, monkeypatch) -> typing.Iterator[Path]:
    """A 4 MiB tmpfs as the runs folder (skipped where mounting is not permitted); unmounted at the end."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    monkeypatch.setenv("LAB_RUNS_DIR", str(mount))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file into `disk` until no byte more fits."""
    filler = disk / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 4096)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                return filler


def test_a_full_disk_ends_the_run_failed_saying_so_and_keeps_what_was_there(small_disk):
    earlier = jobs.submit("count", {"steps": 2, "delay": 0})
    assert jobs.wait(earlier, timeout=120) == "done"
    run = jobs.submit("count", {"steps": 100_000, "delay": 0.01})
    wait_for(lambda: (run.raw_status().get("progress") or {}).get("done", 0) >= 3)
    fill(small_disk)
    wait_for(lambda: run.raw_status()["state"] != "running", timeout=60)
    wait_for(lambda: not process_alive(run.raw_status().get("pid")), timeout=60)

    status = run.status()
    assert status["state"] == "failed" and not status.get("dead")
    assert status["error"] == f"no space left on device ({run.path})"
    last_line = run.log_path.read_text().splitlines()[-1]
    assert last_line.endswith(f"worker ends: failed: no space left on device ({run.path})")
    assert not [p for p in small_disk.rglob("*") if p.name.startswith(".") and p.name != ".queue.lock"]  # no temp

    assert earlier.status()["state"] == "done"  # what was there stays readable
    assert json.loads((earlier.artifacts / "result.json").read_text()) == {"counted": 2}
    listing = lab("runs", "list", env={"LAB_RUNS_DIR": str(small_disk)})
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    assert {line.split()[2] for line in listing.stdout.splitlines()} == {"done", "failed"}
