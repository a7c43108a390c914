"""`python -m lab datasets` and `python -m lab import-folder` as a user runs them (real worker process)."""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def lab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=timeout)


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 3)):
        for label, name in enumerate(("NORMAL", "PNEUMONIA")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = (rng.integers(0, 120, (40 + i, 36)) + 100 * label).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{name}-{split}{i}-1.jpeg")
    (root / "train" / "NORMAL" / "Thumbs.db").write_bytes(b"junk")
    return root


def test_datasets_lists_medmnist_files_and_where_they_are(runs_root):
    out = lab("datasets")
    assert out.returncode == 0, out.stderr
    data_dir = os.environ["LAB_DATA_DIR"]
    assert "dermamnist" in out.stdout and str(Path(data_dir).resolve() / "pneumoniamnist.npz") in out.stdout
    assert "none (python -m lab import-folder <path>)" in out.stdout


@pytest.mark.parametrize("command", [["datasets"], ["runs", "list"], ["--help"], ["datasets", "--help"]])
def test_listing_commands_and_help_do_not_load_torch(runs_root, command):
    """Loading torch and every family takes seconds: a command that needs neither must not wait for them."""
    script = ("import runpy, sys; sys.argv = ['lab', *sys.argv[1:]]\n"
              "try:\n    runpy.run_module('lab', run_name='__main__')\n"
              "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
              "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')")
    out = subprocess.run([sys.executable, "-c", script, *command], cwd=ROOT, env=os.environ.copy(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("torch not loaded")


def test_the_command_table_names_each_family_command_with_the_module_that_defines_it():
    from lab.cli import FAMILY_COMMANDS, build_parser

    for module in {module for module, _ in FAMILY_COMMANDS.values()}:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).add_commands(sub)
        assert set(sub.choices) == {command for command, (m, _) in FAMILY_COMMANDS.items() if m == module}
    listing = build_parser([]).format_help()
    assert all(command in listing for command in FAMILY_COMMANDS)
    assert "list MedMNIST files and imported folders" in lab("datasets", "--help").stdout


def test_import_folder_runs_a_job_and_the_import_is_listed(runs_root, tmp_path):
    root = make_folder(tmp_path / "chest")
    out = lab("import-folder", str(root), "--size", "32")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "26 images in 2 classes (NORMAL, PNEUMONIA)" in out.stdout and ": done" in out.stdout
    runs = list((runs_root / "import").iterdir())
    assert len(runs) == 1 and (runs[0] / "artifacts" / "import.json").exists()
    listed = lab("datasets").stdout
    assert f"{root}  32px 1ch  26 images (NORMAL 13, PNEUMONIA 13)  1 skipped" in listed


def test_import_folder_refuses_a_bad_folder_before_queuing(runs_root, tmp_path):
    (tmp_path / "one" / "only").mkdir(parents=True)
    out = lab("import-folder", str(tmp_path / "one"))
    assert out.returncode == 1 and "single class ('only')" in out.stderr
    assert not (runs_root / "import").exists()


@pytest.mark.parametrize("size", ["0", "-5", "1"])
def test_import_folder_refuses_a_size_outside_8_to_512_before_queuing(runs_root, tmp_path, size):
    root = make_folder(tmp_path / "chest")
    out = lab("import-folder", str(root), "--size", size)
    assert out.returncode == 1 and f"error: DatasetSpec.size must be at least 8; got {size}" in out.stderr
    assert not (runs_root / "import").exists()
