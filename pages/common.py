"""Shared UI pieces for the page scripts: the current dataset, job progress, run lists, live updates,
form values that survive a change of page.

Only pages import this module; the library never imports streamlit.
"""
from __future__ import annotations

import re
from dataclasses import Field, fields
from typing import Callable

import numpy as np
import streamlit as st

from data.datasets import Dataset, DatasetSpec, load_dataset
from data.grid import label_rows, make_grid, upscale
from lab import mirrors
from lab.engine import jobs
from lab.engine.manage import label, meta, progress_text
from lab.engine.runs import ACTIVE_STATES, Run, list_runs

mirrors.attach()  # a status the app writes (a dead worker found, a cancel) reaches the mirrors too

POLL_S = 2  # how often a page's live part re-reads the runs while a job is queued or running


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


MARKDOWN_CHARACTERS = re.compile(r"([!-/:-@\[-`{-~])")  # all ASCII punctuation: CommonMark escapes each


def plain(text) -> str:
    """`text` as it reads, for anything Streamlit renders as Markdown (markdown, error, warning,
    caption, header, progress text): every ASCII punctuation character backslash-escaped, line
    breaks made spaces. User strings (zip, file, folder, class and dataset names, run labels, an
    error quoting one) go through it, so none becomes an image the browser fetches, a link, emphasis,
    LaTeX or a heading."""
    return MARKDOWN_CHARACTERS.sub(r"\\\1", " ".join(str(text).splitlines()))


# Material icons (the navigation's own), so no emoji font is needed; tables show the state in words.
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/autorenew:", "done": ":material/check_circle:",
               "failed": ":material/error:", "cancelled": ":material/cancel:", "unreadable": ":material/broken_image:"}


URL_KEYS = {"name": "dataset"}  # a DatasetSpec field's key in the address, when not the field's own name


def current_spec() -> DatasetSpec:
    """The dataset chosen on the Data page (DermaMNIST 28 px until the user picks another).

    It lives in the address too (`?dataset=pneumoniamnist&size=64`), so a new tab or a shared link
    opens on it; a session starts from the address, and every page run writes it back there (a
    change of page drops the address's parameters)."""
    if "dataset_spec" not in st.session_state:
        st.session_state["dataset_spec"] = spec_from_url()
    spec = st.session_state["dataset_spec"]
    wanted = spec_to_url(spec)
    for field in (f.name for f in fields(DatasetSpec)):
        key = URL_KEYS.get(field, field)
        if key in wanted and st.query_params.get(key) != wanted[key]:
            st.query_params[key] = wanted[key]
        elif key not in wanted and key in st.query_params:
            del st.query_params[key]
    return spec


def set_spec(spec: DatasetSpec) -> None:
    st.session_state["dataset_spec"] = spec


def spec_to_url(spec: DatasetSpec) -> dict[str, str]:
    """The address parameters of `spec`: its fields that differ from the default's."""
    default = DatasetSpec().to_dict()
    return {URL_KEYS.get(field, field): str(value) for field, value in spec.to_dict().items()
            if value != default[field]}


def spec_from_url() -> DatasetSpec:
    """The dataset the address names (DermaMNIST 28 px when it names none); an address that names no
    valid dataset says why, and the page opens on the default."""
    named = {f.name: st.query_params[URL_KEYS.get(f.name, f.name)] for f in fields(DatasetSpec)
             if URL_KEYS.get(f.name, f.name) in st.query_params}
    try:
        return DatasetSpec.from_dict(dict(DatasetSpec.parse_setting(f"{field}={text}")
                                          for field, text in named.items()))
    except ValueError as e:
        st.warning(f"The address names no dataset this lab can open ({plain(e)}); showing "
                   f"{plain(DatasetSpec().label)}.")
        return DatasetSpec()


@st.cache_resource(show_spinner="Loading dataset…", max_entries=4)
def _load(spec: DatasetSpec) -> Dataset:
    return load_dataset(spec)


def current_dataset() -> Dataset:
    """The current dataset, loaded once per server process; errors are shown, then the page stops."""
    spec = current_spec()
    try:
        return _load(spec)
    except Exception as e:  # noqa: BLE001 - any failure to load is a message for the user
        st.error(f"Could not load {plain(spec.label)}: {plain(e)}")
        st.stop()


def dataset_of(dataset: dict) -> Dataset:
    """The dataset a run's config names (loaded once per server, like the current one): what a result view
    shows beside a run's results, whichever dataset is current in this tab."""
    return _load(DatasetSpec.from_dict(dataset))


def class_names_of(dataset: dict) -> list[str]:
    return list(dataset_of(dataset).class_names)


def show_grid(images: np.ndarray, ncol: int = 8, caption: str = "", min_width: int = 320) -> None:
    grid = make_grid(images, ncol=ncol)
    factor = max(1, min_width // max(grid.shape[1], 1) + 1) if grid.shape[1] < min_width else 1
    st.image(upscale(grid, factor), caption=caption or None, clamp=True)


def show_labelled_grid(grid: np.ndarray, row_labels: list[str], caption: str = "", min_width: int = 480) -> None:
    """A grid image whose rows are classes, with each row's class name written left of it."""
    factor = max(1, -(-min_width // max(grid.shape[1], 1)))
    st.image(label_rows(grid, row_labels, scale=factor), caption=caption or None, clamp=True)


# --- runs: labels, states, progress ---------------------------------------------------------------

def status_text(run: Run, status: dict | None = None) -> str:
    """One line for a run: icon, state, progress, and the ETA or the place in the queue."""
    status = run.status() if status is None else status
    state = status.get("state", "unknown")
    parts = [f"{STATE_ICONS.get(state, ':material/help:')} {state}",
             plain(progress_text(status.get("progress"))), waiting_text(run, status)]
    eta = (status.get("progress") or {}).get("eta_s") if isinstance(status.get("progress"), dict) else None
    if state == "running" and isinstance(eta, (int, float)):
        parts.append(f"{format_seconds(eta)} left")
    return " · ".join(p for p in parts if p)


def waiting_text(run: Run, status: dict) -> str:
    """Why a run is not moving: "2nd in line behind DCGAN · quick · …, one job at a time (LAB_MAX_JOBS=1)"
    for a queued run, "it never started" for one cancelled while queued; "" otherwise."""
    if status.get("state") == "cancelled" and status.get("started") is None:
        return "cancelled while queued: it never started"
    place = jobs.queue_position(run) if status.get("state") == "queued" else None
    if place is None:  # not queued, or it started (or was cancelled) since `status` was read
        return ""
    if not place.ahead:
        return "starting"
    position = place.position
    suffix = "th" if 10 <= position % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")
    return (f"{position}{suffix} in line behind {plain(label(place.ahead[-1]))}, "
            f"{'one job' if place.limit == 1 else f'{place.limit} jobs'} at a time (LAB_MAX_JOBS={place.limit})")


def fraction_done(status: dict) -> float:
    progress = status.get("progress") if isinstance(status.get("progress"), dict) else {}
    try:
        return min(max(float(progress.get("done", 0)) / max(float(progress.get("total", 0)), 1.0), 0.0), 1.0)
    except (TypeError, ValueError):
        return 0.0


def run_status(run: Run) -> dict:
    """Progress bar with state, progress, ETA or queue place, and the error: a status display, drawn inside
    a polling fragment or out of it. Returns the status it shows."""
    status = run.status()
    state = status.get("state", "?")
    message = (status.get("progress") or {}).get("message", "") if isinstance(status.get("progress"), dict) else ""
    st.progress(fraction_done(status), text=f"**{plain(label(run))}** · {status_text(run, status)}"
                + (f" · {plain(message)}" if message and state == "running" else ""))
    if status.get("error"):
        st.error(f"{plain(status['error'])} (log: {plain(run.log_path)})")
    return status


def run_actions(run: Run, status: dict, key: str = "") -> None:
    """Cancel, move to the front, resume: the buttons that fit the run's state in `status`. Never inside a
    polling fragment (a button redrawn under the pointer loses its click)."""
    state = status.get("state", "?")
    cols = st.columns(4)
    if state in ACTIVE_STATES and cols[0].button("Cancel", key=f"cancel-{key}{run.id}", icon=":material/stop:"):
        jobs.cancel(run)
        st.rerun()
    if state == "queued" and cols[1].button("Move to the front", key=f"front-{key}{run.id}",
                                            icon=":material/vertical_align_top:"):
        jobs.move_to_front(run)
        st.rerun()
    if state in ("cancelled", "failed") and cols[0].button("Resume", key=f"resume-{key}{run.id}",
                                                          icon=":material/play_arrow:"):
        jobs.resume(run)
        st.rerun()


def download(label_text: str, data: bytes | Callable[[], bytes], file_name: str, mime: str | None = None,
             container=st) -> None:
    """A download button that starts no rerun: the browser fetches the file and the page stays as it is.
    Never inside a polling fragment: a button redrawn there drops the file it offered before the browser
    has fetched it. `data` is the bytes, or a function that makes them on the click (a file too costly to
    make on every page run)."""
    container.download_button(label_text, data, file_name=file_name, mime=mime, on_click="ignore",
                              key=f"download-{file_name}")


def top_level_runs(kind: str) -> list[Run]:
    """A kind's runs, newest first, without the runs a parent run queued (shown under the parent)."""
    return [run for run in list_runs(kind=kind) if not run.config.get("parent")]


def run_rows(runs: list[Run]) -> list[dict]:
    """One table row per run: readable name (with its start time), state in words, progress, what it
    is doing or why it failed, tags. No None anywhere."""
    rows = []
    for run in runs:
        status = run.status()
        progress = status.get("progress") if isinstance(status.get("progress"), dict) else {}
        rows.append({"run": label(run), "state": str(status.get("state", "unknown")),
                     "progress": round(100 * fraction_done(status)),
                     "detail": str(status.get("error") or (status.get("state") in ACTIVE_STATES
                                                           and progress.get("message")) or ""),
                     "tags": ", ".join(meta(run)["tags"])})
    return rows


PROGRESS_COLUMN = st.column_config.ProgressColumn("progress", min_value=0, max_value=100, format="%d%%")


def runs_table(runs: list[Run]) -> None:
    st.dataframe(run_rows(runs), hide_index=True, width="stretch",
                 column_config={"progress": PROGRESS_COLUMN, "run": st.column_config.TextColumn("run", width="large")})


def pick_run(runs: list[Run], label_text: str, remembered: str) -> Run:
    """A select box over runs (by readable label) that opens on the run named in
    `st.session_state[remembered]` (the one picked last or just launched on this page), else on the newest.
    It keeps the pick when its labels change (a run renamed): Streamlit then makes a new select box."""
    ids = [r.id for r in runs]
    labels = {r.id: label(r) for r in runs}
    default = ids.index(st.session_state[remembered]) if st.session_state.get(remembered) in ids else 0
    picked = st.selectbox(label_text, ids, index=default, format_func=labels.get)
    st.session_state[remembered] = picked
    return runs[ids.index(picked)]


def any_active(runs: list[Run]) -> bool:
    return any(r.state in ACTIVE_STATES for r in runs)


# --- live updates --------------------------------------------------------------------------------

def live(render: Callable[[], bool], active: bool) -> None:
    """Draw a page's one live part: `render` in a fragment that re-runs every POLL_S seconds while
    `active` (something it shows is queued or running).

    `render` draws and returns whether anything it shows is still active; when that turns false the
    whole page re-runs once, so what a finished job made appears and the polling stops.
    """
    @st.fragment(run_every=POLL_S if active else None)
    def fragment() -> None:
        if not render() and active:
            st.rerun()

    fragment()


def runs_section(kind: str, remembered: str, view: Callable[[Run], None], picker: str = "Run",
                 find: Callable[[], list[Run]] | None = None,
                 table: Callable[[list[Run]], None] | None = None, key: str = "") -> Run | None:
    """A kind's runs: the table and `view(run)` of the picked run as the page's live part, updated every
    POLL_S seconds while any of them is queued or running; the picker and the run's buttons outside it,
    so they stay open and clickable while it polls. Returns the picked run (None when there are none).

    A run that appears or goes, or a change of the picked run's state, redraws the whole page, so the
    picker lists what exists and the buttons fit the state. `view` draws status displays only (no widgets).
    `find` lists other runs than the kind's top-level ones, `table` draws them another way."""
    find = find or (lambda: top_level_runs(kind))
    table = table or runs_table
    runs = find()
    if not runs:
        st.caption("No runs yet.")
        return None
    listed = [run.id for run in runs]
    table_spot = st.container()
    run = pick_run(runs, picker, remembered)
    status = run.status()
    run_actions(run, status, key=key or kind)

    def section() -> bool:
        now = find()
        with table_spot:
            table(now)
        if [r.id for r in now] != listed or run.state != status.get("state"):
            st.rerun()
        view(run)
        return any_active(now)

    live(section, any_active(runs))
    return run
def estimate_caption(kind: str, config: dict) -> None:
    """How long a job of `kind` with `config` should take (lab/engine/eta.py), shown before its launch button."""
    from lab.engine.eta import estimate  # loads torch: only pages that launch jobs pay for it, not the first paint

    st.caption(plain(estimate(kind, config).text))


def launch(kind: str, config: dict, name: str, remembered: str) -> None:
    """Queue a job, remember it as the page's picked run, and redraw the page (the sidebar and the
    run table then show it, and poll while it is active)."""
    run = jobs.submit(kind, config, name=name)
    st.session_state[remembered] = run.id
    st.rerun()


# --- form values that survive a change of page ----------------------------------------------------

def remember(key: str, default, options: list | None = None) -> str:
    """The key of a widget whose value survives a change of page: pass it as `key=` and give the
    widget no value of its own. Streamlit forgets a widget's value when a page without it runs; a
    copy under another key brings it back (or `default`, when the copy is no longer among `options`)."""
    copy = f"remembered:{key}"
    if key not in st.session_state:
        value = st.session_state.get(copy, default)
        if options is not None:
            value = [v for v in value if v in options] if isinstance(value, list) else \
                value if value in options else default
        st.session_state[key] = value
    st.session_state[copy] = st.session_state[key]
    return key


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
