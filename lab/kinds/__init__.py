"""Job kinds: one short adapter per kind, wiring a run directory to a library function.

An adapter builds its config from `run.settings`, calls the library with `run.hooks()` (progress,
events, should-stop, checkpoint folder), writes the outputs into the run directory and lets the
library's `Interrupted` through (the worker marks the run cancelled). The registry names each
kind's config class too, so a run's config is built (and a bad one refused) before it is queued.
Adding a job kind is one module here plus one line below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from data.config import Config
from gans.config import GanConfig
from gans.gpnn import GpnnConfig
from gans.singan_train import SinGanConfig
from lab.kinds import count, gan, gpnn, import_folder, sample, score, singan, study
from lab.engine.runs import Run
from lab.study.config import ArmRunConfig, StudyConfig
from metrics.scoring import ScoreConfig


@dataclass(frozen=True)
class JobKind:
    config: type[Config]  # the job's strict config, built from a run's settings before it is queued
    run: Callable[[Run], None]  # the adapter: runs the job in its run directory


JOB_KINDS = {
    "count": JobKind(config=count.CountConfig, run=count.run),
    "import": JobKind(config=import_folder.ImportConfig, run=import_folder.run),
    "gan": JobKind(config=GanConfig, run=gan.run),
    "sample": JobKind(config=sample.SampleConfig, run=sample.run),
    "singan": JobKind(config=SinGanConfig, run=singan.run),
    "gpnn": JobKind(config=GpnnConfig, run=gpnn.run),
    "score": JobKind(config=ScoreConfig, run=score.run),
    "study": JobKind(config=StudyConfig, run=study.run_study),
    "study-arm": JobKind(config=ArmRunConfig, run=study.run_arm),
}
