"""Job kinds: one short adapter per kind, wiring a run directory to a library function.

An adapter reads the run's config, calls the library with `run.hooks()` (progress, events,
should-stop, checkpoint folder), writes the outputs into the run directory and lets the
library's `Interrupted` through (the worker marks the run cancelled). Adding a job kind is one
module here plus one line below.
"""
from __future__ import annotations

from lab.kinds import count, gan, import_folder, sample, score, singan, study

JOB_KINDS = {
    "count": count.run,
    "import": import_folder.run,
    "gan": gan.run,
    "sample": sample.run,
    "singan": singan.run,
    "score": score.run,
    "study": study.run_study,
    "study-arm": study.run_arm,
}
