"""MLflow mirror: a real tiny GAN job read back with MlflowClient; resume, a broken store, and no cost when off."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torchsampler  # noqa: F401 - before mlflow, whose importlib_metadata breaks its first import (lab/mirrors/mlflow.py)

from gans.config import make_config
from lab.engine.runs import Run
from lab.kinds import gan as gan_job
from lab.mirrors import mlflow as mlflow_mirror

from tests.test_tensorboard import TINY

mlflow_tracking = pytest.importorskip("mlflow.tracking")  # requirements-mlflow.txt: `make test` installs it

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A fresh file store for the test, set as LAB_MLFLOW_TRACKING_URI."""
    uri = f"file://{tmp_path / 'mlruns'}"
    monkeypatch.setenv(mlflow_mirror.URI_VAR, uri)
    monkeypatch.setenv(mlflow_mirror.EXPERIMENT_VAR, "lab-tests")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks file stores to opt in
    return uri


def only_mlflow_run(client):
    experiment = client.get_experiment_by_name("lab-tests")
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 1, f"expected one MLflow run, found {len(found)}"
    return found[0]


def test_a_gan_run_is_read_back_from_mlflow_with_params_metrics_samples_and_status(runs_root, tracking_uri, tmp_path):
    run = Run.create("gan", make_config("dcgan", **TINY).to_dict(), root=runs_root)
    gan_job.run(run)
    run.write_status("done")

    client = mlflow_tracking.MlflowClient(tracking_uri)
    found = only_mlflow_run(client)
    assert found.info.run_name == run.id
    assert found.data.tags["lab.kind"] == "gan" and found.data.tags["lab.run_id"] == run.id
    assert found.data.tags["lab.run_dir"] == str(run.path)
    params = found.data.params
    assert params["kind"] == "gan" and params["gan"] == "dcgan" and params["steps"] == "6"
    assert params["dataset.name"] == "dermamnist"  # nested settings become dotted keys

    progress = run.events("progress")
    history = client.get_metric_history(found.info.run_id, "progress/loss_d")
    assert [m.step for m in history] == [3, 6]
    assert [m.value for m in history] == pytest.approx([e["loss_d"] for e in progress], rel=1e-6)
    assert "progress/done" not in found.data.metrics and "progress/total" not in found.data.metrics

    samples = [Path(a.path).name for a in client.list_artifacts(found.info.run_id, "samples")]
    assert samples == ["step_000003.png", "step_000006.png"]
    copy = client.download_artifacts(found.info.run_id, "samples/step_000006.png", str(tmp_path))
    assert Path(copy).read_bytes() == (run.samples / "step_000006.png").read_bytes()
    assert found.info.status == "FINISHED"


def test_a_resumed_run_continues_the_same_mlflow_run_in_another_process(runs_root, tracking_uri):
    run = Run.create("count", {"steps": 2, "note": "x" * 7000, "nested": {"a": 1}}, root=runs_root)
    run.log_event(type="eval", step=1, val_accuracy=0.5)
    run.write_status("cancelled")
    mlflow_mirror.forget()  # as in a new worker process resuming the run
    run.log_event(type="eval", step=2, val_accuracy=0.75)

    client = mlflow_tracking.MlflowClient(tracking_uri)
    found = only_mlflow_run(client)
    history = client.get_metric_history(found.info.run_id, "eval/val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.75)]
    assert found.info.status == "RUNNING"  # resumed after it was killed
    assert found.data.params["nested.a"] == "1"
    assert len(found.data.params["note"]) == 6000  # MLflow's limit on a param value

    run.write_status("failed", error="boom")
    assert client.get_run(found.info.run_id).info.status == "FAILED"


def test_a_broken_tracking_store_is_reported_once_and_does_not_fail_the_job(runs_root, tmp_path, monkeypatch, capfd):
    not_a_folder = tmp_path / "mlruns"
    not_a_folder.write_text("a regular file where the store should be")
    monkeypatch.setenv(mlflow_mirror.URI_VAR, f"file://{not_a_folder}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = Run.create("gan", make_config("dcgan", **TINY).to_dict(), root=runs_root)
    gan_job.run(run)
    run.write_status("done")

    assert run.state == "done" and len(run.events("progress")) == 2
    reports = [line for line in capfd.readouterr().err.splitlines() if "MLflow mirror" in line]
    assert len(reports) == 1 and run.id in reports[0], reports


def test_without_the_setting_the_mirror_costs_one_lookup_and_never_loads_mlflow(tmp_path):
    script = ("import sys\nfrom lab.engine.runs import Run\nfrom lab import mirrors\nmirrors.attach()\n"
              f"run = Run.create('count', {{'steps': 1}}, root={str(tmp_path)!r})\n"
              "run.log_event(type='eval', step=1, val_accuracy=0.5)\nrun.write_status('done')\n"
              "print('mlflow loaded' if 'mlflow' in sys.modules else 'mlflow not loaded')\n")
    env = {key: value for key, value in os.environ.items() if key != mlflow_mirror.URI_VAR}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "mlflow not loaded", out.stderr


def test_a_process_that_mirrored_first_can_still_load_the_classifier(tmp_path, tracking_uri):
    """mlflow brings importlib_metadata, whose metadata raises KeyError for a missing field where the
    standard library's gives None: torchsampler's first import read 'homepage' and failed after it."""
    script = ("import sys\nfrom lab.engine.runs import Run\nfrom lab import mirrors\nmirrors.attach()\n"
              f"run = Run.create('count', {{'steps': 1}}, root={str(tmp_path / 'runs')!r})\n"
              "run.log_event(type='eval', step=1, val_accuracy=0.5)\n"
              "assert 'mlflow' in sys.modules, 'the mirror did not load mlflow'\n"
              "import classifier.train\nprint('classifier loaded')\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ), capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1:] == ["classifier loaded"], out.stderr[-2000:]
