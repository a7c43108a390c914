"""Shared UI pieces for the page scripts: the current dataset, job progress, run lists.

Only pages import this module; the library never imports streamlit.
"""
from __future__ import annotations

import time
from dataclasses import Field

import numpy as np
import streamlit as st

from data.datasets import Dataset, DatasetSpec, load_dataset
from data.grid import make_grid, upscale
from lab import jobs
from lab.runs import ACTIVE_STATES, Run, list_runs


def ensure_app_navigation() -> None:
    """Run this page inside app.py's navigation (dataset line, job panel), never on its own.

    While no session of a fresh server has run app.py yet, Streamlit treats pages/ as a legacy
    multipage folder: a first visit to a deep link such as /study runs pages/study.py alone, with
    a sidebar of file names. Turning that mode off and rerunning hands the request to app.py,
    which opens the same page by its URL.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


STATE_ICONS = {"queued": "⏳", "running": "🏃", "done": "✅", "failed": "❌", "cancelled": "⏹️"}


def current_spec() -> DatasetSpec:
    """The dataset chosen on the Data page (DermaMNIST 28 px until the user picks another)."""
    return st.session_state.setdefault("dataset_spec", DatasetSpec())


def set_spec(spec: DatasetSpec) -> None:
    st.session_state["dataset_spec"] = spec


@st.cache_resource(show_spinner="Loading dataset…", max_entries=4)
def _load(spec: DatasetSpec) -> Dataset:
    return load_dataset(spec)


def current_dataset() -> Dataset:
    """The current dataset, loaded once per server process; errors are shown, then the page stops."""
    spec = current_spec()
    try:
        return _load(spec)
    except Exception as e:  # noqa: BLE001 - any failure to load is a message for the user
        st.error(f"Could not load {spec.label}: {e}")
        st.stop()


def show_grid(images: np.ndarray, ncol: int = 8, caption: str = "", min_width: int = 320) -> None:
    grid = make_grid(images, ncol=ncol)
    factor = max(1, min_width // max(grid.shape[1], 1) + 1) if grid.shape[1] < min_width else 1
    st.image(upscale(grid, factor), caption=caption or None, clamp=True)


def run_status_panel(run: Run, key: str = "") -> dict:
    """Progress bar with ETA, state, error, and cancel/resume buttons for one run."""
    status = run.status()
    state = status.get("state", "?")
    progress = status.get("progress") or {}
    done, total = progress.get("done", 0), max(progress.get("total", 1), 1)
    eta = progress.get("eta_s")
    text = f"{STATE_ICONS.get(state, '')} {state} — {done}/{total} {progress.get('message', '')}"
    if state == "running" and eta is not None:
        text += f" · ETA {format_seconds(eta)}"
    st.progress(min(done / total, 1.0), text=text)
    if status.get("error"):
        st.error(f"{status['error']} (log: {run.log_path})")
    cols = st.columns(4)
    if state in ACTIVE_STATES and cols[0].button("Cancel", key=f"cancel-{key}{run.id}"):
        jobs.cancel(run)
        st.rerun()
    if state in ("cancelled", "failed") and cols[0].button("Resume", key=f"resume-{key}{run.id}"):
        jobs.resume(run)
        st.rerun()
    return status


def runs_table(kind: str) -> list[Run]:
    """A table of a kind's runs with state and progress; returns the runs. Runs that a parent
    run queued (a seeds run's seed runs) are left to the parent's view."""
    runs = [run for run in list_runs(kind=kind) if not run.config.get("parent")]
    if runs:
        rows = []
        for run in runs:
            status = run.status()
            p = status.get("progress") or {}
            rows.append({"run": run.id, "state": f"{STATE_ICONS.get(status.get('state'), '')} {status.get('state')}",
                         "progress": p.get("done", 0) / max(p.get("total", 1), 1),
                         "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(status.get("created", 0)))})
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1)})
    else:
        st.caption("No runs yet.")
    return runs


def pick_run(runs: list[Run], label: str, remembered: str) -> Run:
    """A select box over runs that opens on the run named in `st.session_state[remembered]`
    (the one this page just launched), else on the newest."""
    ids = [r.id for r in runs]
    default = ids.index(st.session_state[remembered]) if st.session_state.get(remembered) in ids else 0
    return runs[ids.index(st.selectbox(label, ids, index=default))]


def any_active(runs: list[Run]) -> bool:
    return any(r.state in ACTIVE_STATES for r in runs)


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def option_input(option: Field, value, container=st, label: str = ""):
    """A widget for one labelled config field (`data.config.option`), opening on `value`: a select
    box for choices, a checkbox for a flag, a number input with the field's range and step, else a
    text input. Returns the widget's value; building the config checks it."""
    meta = option.metadata
    label, help_text = label or meta["label"], meta.get("help") or None
    if meta.get("choices"):
        choices = list(meta["choices"])
        return container.selectbox(label, choices, index=choices.index(value), help=help_text)
    if isinstance(value, bool):
        return container.checkbox(label, value=value, help=help_text)
    if isinstance(value, (int, float)):
        kind, step = type(value), meta.get("step")
        bounds = {arg: kind(meta[key]) for arg, key in (("min_value", "min"), ("max_value", "max"))
                  if meta.get(key) is not None}
        if kind is int:
            return container.number_input(label, value=value, step=int(step or 1), help=help_text, **bounds)
        decimals = max(0, -int(np.floor(np.log10(step)))) if step else 2
        return container.number_input(label, value=value, step=step, format=f"%.{decimals}f", help=help_text,
                                      **bounds)
    return container.text_input(label, value=str(value), help=help_text)
