"""Shared fixtures: real data from ../shared/datasets, a fresh runs directory per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Test processes and the job workers they start share two cores: busy-waiting OpenMP threads would
# starve each other (runs 25-100x slower seen here). Must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from lab import mirrors  # noqa: E402

mirrors.attach()  # as the worker command and the app do: runs a test executes in-process are mirrored too

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LAB_DATA_DIR", str((ROOT.parent / "shared" / "datasets").resolve()))
DATA_DIR = Path(os.environ["LAB_DATA_DIR"])
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    """An empty runs directory, set as LAB_RUNS_DIR for the test and its workers."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def derma():
    from data.datasets import DatasetSpec, load_dataset

    return load_dataset(DatasetSpec(name="dermamnist", size=28))


@pytest.fixture(scope="session")
def pneumonia():
    from data.datasets import DatasetSpec, load_dataset

    return load_dataset(DatasetSpec(name="pneumoniamnist", size=28))


@pytest.fixture
def server(runs_root):
    """The app served by a real Streamlit on a free port, with `runs_root` as its runs folder: its URL."""
    from tests.browser_support import streamlit_server

    with streamlit_server(runs_root) as url:
        yield url
