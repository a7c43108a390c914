"""Job kind "curate": score a synthetic set image by image and, with a rule, write the curated set (lab/curation.py).

Config: a `lab.curation.CurateConfig`. Writes `artifacts/scores.json` (class confidence, realism and the
distance to the nearest real image of every image), and with `rule` the curated set `artifacts/<name>.npz`.
Nothing is checkpointed: the models take minutes, and a cancelled run is simply run again.
"""
from __future__ import annotations

from lab.curation import CurateConfig, score, write_by_rule
from lab.engine.runs import Run

CONFIG = CurateConfig


def run(run: Run) -> None:
    config = CurateConfig.from_dict(run.settings)
    run.log_event(type="stage", stage="score")
    score(run, config, run.hooks())
    if config.rule is not None:
        path = write_by_rule(run, config.rule, config.name)
        run.log_event(type="synthetic_set", path=str(path))
