"""Every run mirrored into MLflow as it runs, for teams that track their experiments there.

Off unless LAB_MLFLOW_TRACKING_URI names a tracking server or store (`http://mlflow:5000`, or
`file:///home/me/mlruns` with MLFLOW_ALLOW_FILE_STORE=true, which MLflow 3 asks for); only then does
a job's first event load mlflow (mlflow-skinny, requirements-mlflow.txt), so the CLI and the app
never pay for it.

Each run directory is one MLflow run in the experiment LAB_MLFLOW_EXPERIMENT (default
gan-augmentation-lab), named by the run's id and tagged with its directory, by which a resumed job
in another process finds the same MLflow run again. The run's config becomes params (dotted keys
for nested settings), each event's numbers become metrics named like the TensorBoard scalars
(progress/loss_d …) at the same step, an event naming a sample grid PNG adds it under samples/, and
the run's end (done, failed, cancelled) ends the MLflow run (FINISHED, FAILED, KILLED). Each call
goes through MlflowClient with its own tracking URI: no global mlflow state, several runs per
process. Mirroring never stops a job: a failure is reported once on stderr (the run's log) and
mirroring of that run ends.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from lab.mirrors.tensorboard import NOT_SCALARS, STEP_FIELDS, is_number, png_named

URI_VAR = "LAB_MLFLOW_TRACKING_URI"
EXPERIMENT_VAR = "LAB_MLFLOW_EXPERIMENT"
DEFAULT_EXPERIMENT = "gan-augmentation-lab"
DIR_TAG, ID_TAG, KIND_TAG = "lab.run_dir", "lab.run_id", "lab.kind"
END_STATUS = {"done": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}  # lab state -> MLflow run status
SAMPLES = "samples"  # the artifact folder of the sample grids
UNSAFE = re.compile(r"[^\w\-. /:]")  # MLflow names hold letters, digits, _ - . space / and : only
# On MLflow's own defaults (7 retries with growing pauses, 120 s timeout) an unreachable server holds a
# job for minutes before the mirror gives up; these are used unless the user sets the variables.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

_clients: dict[str, object] = {}  # tracking URI -> MlflowClient
_runs: dict[Path, str] = {}  # run dir -> MLflow run id, for the runs mirrored by this process
_broken: set[Path] = set()


def mirror(run_dir: Path, event: dict) -> None:
    """Log `event` (a line of the run's events.jsonl) to the run's MLflow run, when MLflow is on."""
    uri = os.environ.get(URI_VAR)
    if not uri or run_dir in _broken:
        return
    try:
        client = _client(uri)
        run_id = _runs.get(run_dir) or _start(client, run_dir)
        _log(client, run_id, run_dir, event)
    except Exception as e:  # noqa: BLE001 - a mirror must never fail the job it watches
        _stop(run_dir, e)


def finish(run_dir: Path, state: str) -> None:
    """End the MLflow run of `run_dir` with the status that matches the lab's final `state`.

    Only a run this process mirrors is ended: the app or the CLI cancelling a queued run never
    loads mlflow, and a run that logged nothing here has no MLflow run to end, or one an earlier
    process ended already.
    """
    if not os.environ.get(URI_VAR) or state not in END_STATUS or run_dir not in _runs:
        return
    run_id = _runs.pop(run_dir)  # a later event (a resume here) finds the run again and runs it anew
    try:
        _client(os.environ[URI_VAR]).set_terminated(run_id, END_STATUS[state])
    except Exception as e:  # noqa: BLE001
        _stop(run_dir, e)


def forget() -> None:
    """Forget which runs this process mirrors, as a new process starts (tests use it to resume)."""
    _runs.clear()
    _broken.clear()


def _stop(run_dir: Path, error: Exception) -> None:
    _broken.add(run_dir)
    _runs.pop(run_dir, None)
    reason = " ".join(str(error).split())  # MLflow's messages span lines; the log gets one
    print(f"MLflow mirror of {run_dir.name} stopped: {type(error).__name__}: {reason}", file=sys.stderr, flush=True)


def _client(uri: str):
    if uri not in _clients:
        # mlflow loads importlib_metadata, which then answers the standard library's metadata lookups with
        # KeyError for a missing field: torchsampler reads a field its metadata lacks on its first import.
        import torchsampler  # noqa: F401

        from mlflow.tracking import MlflowClient  # loaded by a job's first event, and only when MLflow is on

        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        _clients[uri] = MlflowClient(uri)
    return _clients[uri]


def _start(client, run_dir: Path) -> str:
    """The id of the MLflow run of `run_dir`, found again by its tags or created, set running, with the
    run's config logged as params (those it lacks: a resumed run keeps what it has)."""
    from mlflow.entities import Param
    from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    experiment_id = _experiment_id(client)
    run = _find(client, experiment_id, run_dir)
    if run is None:
        kind = config.get("kind") if isinstance(config.get("kind"), str) else run_dir.parent.name
        run = client.create_run(experiment_id, run_name=run_dir.name,
                                tags={DIR_TAG: str(run_dir), ID_TAG: run_dir.name, KIND_TAG: kind})
    elif run.info.status != "RUNNING":
        client.update_run(run.info.run_id, status="RUNNING")
    params = [Param(key, value) for key, value in _flatten(config) if key not in run.data.params]
    for first in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run.info.run_id, params=params[first:first + MAX_PARAMS_TAGS_PER_BATCH])
    _runs[run_dir] = run.info.run_id
    return run.info.run_id


def _experiment_id(client) -> str:
    name = os.environ.get(EXPERIMENT_VAR) or DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # noqa: BLE001 - another worker may have created it meanwhile
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _find(client, experiment_id: str, run_dir: Path):
    """The MLflow run of `run_dir` in the experiment, or None. It searches by the run id, which
    Run.create keeps to letters, digits and hyphens (safe in a filter), and then matches the directory."""
    found = client.search_runs([experiment_id], filter_string=f"tags.`{ID_TAG}` = '{run_dir.name}'")
    return next((run for run in found if run.data.tags.get(DIR_TAG) == str(run_dir)), None)


def _flatten(config: dict, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, value as text cut to MLflow's limit) for every setting, nested ones included."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{name}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            yield UNSAFE.sub("_", name), text[:MAX_PARAM_VAL_LENGTH]


def _log(client, run_id: str, run_dir: Path, event: dict) -> None:
    from mlflow.entities import Metric

    step = next((int(event[k]) for k in STEP_FIELDS if is_number(event.get(k))), 0)
    kind = str(event.get("type", "event"))
    timestamp = int(float(event.get("t", time.time())) * 1000)
    metrics = [Metric(UNSAFE.sub("_", f"{kind}/{name}"), float(value), timestamp, step)
               for name, value in event.items() if name not in NOT_SCALARS and is_number(value)]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    png = png_named(run_dir, event)
    if png is not None:
        _log_png(client, run_id, png, step)


def _log_png(client, run_id: str, png: Path, step: int) -> None:
    """`png` under samples/, named with its step: as it is when its name ends in the step (step_000300.png),
    else with the step added (latest.png -> latest_step_000300.png), so the grids of all steps stay apart."""
    digits = re.search(r"(\d+)$", png.stem)
    if digits is not None and int(digits.group(1)) == step:
        client.log_artifact(run_id, str(png), SAMPLES)
        return
    with tempfile.TemporaryDirectory() as folder:
        copy = shutil.copyfile(png, Path(folder) / f"{png.stem}_step_{step:06d}.png")
        client.log_artifact(run_id, str(copy), SAMPLES)
