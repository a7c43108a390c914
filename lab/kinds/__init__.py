"""Job kinds: one short adapter module per kind, wiring a run directory to a library function.

A kind's module (`gan.py` for the kind "gan", `study_arm.py` for "study-arm") names its strict config
class `CONFIG` and defines `run(run)`: it builds the config from `run.settings`, calls the library with
`run.hooks()` (progress, events, should-stop, checkpoint folder), writes the outputs into the run
directory and lets the library's `Interrupted` through (the worker marks the run cancelled). The
engine finds a kind by its name (lab/engine/kinds.py) and imports only that module, so adding a job
kind is one module here and nothing else.
"""
