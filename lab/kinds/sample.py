"""Job kind "sample": draw a synthetic set from a finished generator and register it (lab/sampling.py).

Writes the set into artifacts/ and `artifacts/result.json` ({"set": <set id>, "identical_to": <set id> or
null}: a set with the same draw already existed, so nothing new was drawn).
"""
from __future__ import annotations

from data.files import atomic_write_json
from lab.engine.runs import Run
from lab.sampling import RESULT, SampleConfig, export

CONFIG = SampleConfig


def run(run: Run) -> None:
    config = SampleConfig.from_dict(run.settings)
    result = export(config, run.artifacts, run.path.parent.parent, run.hooks())
    if result.identical_to:
        run.log_event(type="identical", set=result.identical_to)
        run.progress(1, 1, f"identical to {result.identical_to}: nothing new drawn", force=True)
    atomic_write_json(run.artifacts / RESULT, {"set": result.set_id, "identical_to": result.identical_to})
