"""Runs page: everything the lab made — find, name, tag, note and delete runs and synthetic sets;
compare GAN runs' curves and studies' per-class recall."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from classifier.evaluate import METRIC_LABELS
from data.text import NAME_LIMIT, NOTE_LIMIT
from lab.engine import manage
from lab.engine.runs import ACTIVE_STATES, Run, list_runs
from lab.sets import list_sets
from lab.study.report import short_names
from lab.study.summary import read_summary, study_results
from pages.common import (PROGRESS_COLUMN, ensure_app_navigation, plain, remember, run_rows, run_status,
                          runs_section)

ensure_app_navigation()
st.title("Runs")
st.caption("Everything the lab made, newest first. Name, tag and note what matters; delete what does not "
           "(the lab names what depends on a run or set first). The same from a terminal: "
           "`python -m lab runs rename|tag|note|delete` and `python -m lab sets …`.")

KINDS = {"gan": "GAN", "singan": "SinGAN", "gpnn": "GPNN", "study": "study", "score": "scores", "sample": "export",
         "import": "import", "count": "self-test"}


def curve_name(key: str) -> str:
    return {"loss_d": "discriminator loss", "loss_g": "generator loss"}.get(key, key.replace("_", " "))


def editor(target: Run | object, key: str, what: str) -> None:
    """Rename, tag, note and delete one run or set (`target` a Run or a set's npz path)."""
    current = manage.meta(target)
    c1, c2 = st.columns(2)
    name = c1.text_input("Name", value=current["name"], key=f"name-{key}", max_chars=NAME_LIMIT,
                         placeholder="a name of your own" if isinstance(target, Run) else "")
    tags = c2.text_input("Tags (comma-separated)", value=", ".join(current["tags"]), key=f"tags-{key}")
    text = st.text_area("Note", value=current["note"], key=f"note-{key}", height=80, max_chars=NOTE_LIMIT)
    save, delete = st.columns([1, 3])
    if save.button("Save", key=f"save-{key}", icon=":material/save:"):
        try:
            manage.rename(target, name)
            wanted = [t.strip() for t in tags.split(",") if t.strip()]
            manage.tag(target, add=wanted, remove=[t for t in current["tags"] if t not in wanted])
            manage.note(target, text)
        except (ValueError, FileNotFoundError) as e:
            st.error(plain(e))
        else:
            st.rerun()
    with delete.popover(f"Delete this {what}", icon=":material/delete:"):
        users = manage.dependents(target)
        if users:
            st.warning("Used by:\n\n" + "\n".join(f"- {plain(u)}" for u in users))
        active = isinstance(target, Run) and target.state in ACTIVE_STATES
        if active:
            st.caption(f"It is {target.state}: deleting cancels it first (a running job saves, then stops).")
        confirmed = st.checkbox(("Yes, cancel and delete it" if active else "Yes, delete it")
                                + (" anyway" if users else ""), key=f"confirm-{key}")
        if st.button("Cancel and delete" if active else "Delete", key=f"delete-{key}", type="primary",
                     disabled=not confirmed):
            try:
                with st.spinner("Stopping it…"):
                    (manage.cancel_and_delete if active else manage.delete)(target, force=True)
            except (ValueError, FileNotFoundError, TimeoutError) as e:
                st.error(plain(e))
            else:
                st.session_state.pop(f"confirm-{key}", None)
                st.rerun()


# --- runs ------------------------------------------------------------------------------------------
all_runs = [run for run in list_runs() if not run.config.get("parent") and run.kind in KINDS]
tags = sorted({t for run in all_runs for t in manage.meta(run)["tags"]})
f1, f2 = st.columns(2)
kinds = f1.multiselect("Kinds", list(KINDS), format_func=KINDS.get, key=remember("runs_kinds", []),
                       placeholder="all kinds")
wanted_tags = f2.multiselect("Tags", tags, key=remember("runs_tags", [], tags), placeholder="any tag")


def shown() -> list[Run]:
    """The runs the filters let through, as they are on disk now."""
    return [run for run in list_runs() if not run.config.get("parent") and run.kind in KINDS
            and (not kinds or run.kind in kinds)
            and (not wanted_tags or set(wanted_tags) & set(manage.meta(run)["tags"]))]


def overview(runs: list[Run]) -> None:
    rows = [{"kind": KINDS[run.kind], **row, "note": manage.meta(run)["note"]}
            for run, row in zip(runs, run_rows(runs))]
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "progress": PROGRESS_COLUMN, "run": st.column_config.TextColumn("run", width="large"),
        "detail": st.column_config.TextColumn("detail", width="medium")})


if all_runs and not shown():
    st.caption("No run matches these filters.")
elif chosen := runs_section("", "runs_run", run_status, find=shown, table=overview, key="runs"):
    editor(chosen, chosen.id, "run")

# --- synthetic sets --------------------------------------------------------------------------------
st.header("Synthetic sets")
duplicates = st.toggle("Show duplicates (sets drawn again with the same generator, seed and size)", value=False)
sets = list_sets(duplicates=duplicates)
if sets:
    st.dataframe([{"set": s.name, "generator": s.meta.get("generator", ""),
                   "images": s.meta.get("count", ""),
                   "dataset": (s.meta.get("dataset") or {}).get("name", "") if isinstance(s.meta.get("dataset"), dict)
                   else "", "tags": ", ".join(manage.meta(s.path)["tags"]), "note": manage.meta(s.path)["note"]}
                  for s in sets], hide_index=True, width="stretch")
    by_id = {s.id: s for s in sets}
    ids = list(by_id)
    kept = ids.index(st.session_state["runs_set"]) if st.session_state.get("runs_set") in ids else 0
    st.session_state["runs_set"] = st.selectbox("Set", ids, index=kept,
                                                format_func=lambda i: f"{by_id[i].name} ({i})")
    picked = by_id[st.session_state["runs_set"]]  # kept when a rename changes the labels (a new select box)
    editor(picked.path, f"set-{picked.id}", "set")
else:
    st.caption("No synthetic sets yet: export one from a GAN run (Samples page) or make single-image seeds (SinGAN or GPNN).")

# --- compare GAN runs ------------------------------------------------------------------------------
st.header("Compare GAN runs")
gan_runs = [run for run in list_runs("gan") if run.events("progress")]
if not gan_runs:
    st.caption("No GAN run has recorded losses yet.")
else:
    gan_labels = {run.id: manage.label(run) for run in gan_runs}
    picked_ids = st.multiselect("GAN runs", list(gan_labels), format_func=gan_labels.get,
                                key=remember("compare_gans", list(gan_labels)[:3], list(gan_labels)))
    picked_runs = [run for run in gan_runs if run.id in picked_ids]
    recorded = sorted({k for run in picked_runs for e in run.events("progress")[-1:] for k, v in e.items()
                       if isinstance(v, (int, float)) and k not in ("t", "done", "total", "seconds")})
    c1, c2, c3 = st.columns([2, 2, 1])
    curve = c1.selectbox("Curve", recorded, format_func=curve_name,
                         key=remember("compare_curve", "loss_d", recorded)) if recorded else None
    weight = c2.slider("Smoothing", 0.0, 0.99, step=0.01, key=remember("compare_smoothing", 0.6))
    log_y = c3.checkbox("Log scale", key=remember("compare_log", False))
    if curve:
        figure = go.Figure()
        for run in picked_runs:
            steps, values = manage.series(run, curve)
            if log_y:
                steps, values = zip(*[(s, v) for s, v in zip(steps, values) if v > 0]) if any(
                    v > 0 for v in values) else ([], [])
            figure.add_scatter(x=list(steps), y=manage.smooth(list(values), weight), mode="lines",
                               name=gan_labels[run.id])
        figure.update_layout(height=380, margin={"t": 10, "b": 10}, xaxis_title="generator step",
                             yaxis_title=curve_name(curve) + (" (log)" if log_y else ""),
                             yaxis_type="log" if log_y else "linear", showlegend=True,
                             legend={"orientation": "h", "y": -0.2})
        st.plotly_chart(figure, width="stretch")
        if log_y:
            st.caption("Log scale leaves out values at or below zero (WGAN critic losses can be negative).")

# --- compare studies -------------------------------------------------------------------------------
st.header("Compare study arms")
summaries = {}
for run in list_runs("study"):
    try:
        summary = read_summary(run)
    except ValueError:
        continue
    if summary is not None:
        summaries[run.id] = (run, summary)
if not summaries:
    st.caption("No finished study yet.")
else:
    study_id = st.selectbox("Study", list(summaries), format_func=lambda i: manage.label(summaries[i][0]))
    run, summary = summaries[study_id]
    st.dataframe([{"arm": arm.arm, **{METRIC_LABELS[m]: f"{100 * e.mean:.1f} ± {100 * (e.hi - e.mean):.1f}"
                                      if e.n > 1 else f"{100 * e.mean:.1f}" for m, e in arm.metrics.items()
                                      if m in METRIC_LABELS}, "verdict": arm.verdict}
                  for arm in summary.arms], hide_index=True, width="stretch",
                 column_config={"verdict": st.column_config.TextColumn("verdict", width="large")})
    st.caption("Test scores in percent: mean ± half the 95% interval over seeds.")
    recall = manage.recall_by_class(study_results(run))
    names = short_names(summary.class_names, width=22)
    figure = go.Figure()
    for arm, estimates in recall.items():
        figure.add_bar(name=arm, x=names, y=[100 * e.mean for e in estimates],
                       error_y={"type": "data", "symmetric": False,
                                "array": [100 * (e.hi - e.mean) if e.n > 1 else 0 for e in estimates],
                                "arrayminus": [100 * (e.mean - e.lo) if e.n > 1 else 0 for e in estimates]})
    figure.update_layout(barmode="group", height=400, margin={"t": 10}, yaxis_title="test recall (%)",
                         yaxis_range=[0, 100], legend={"orientation": "h", "y": -0.3})
    st.plotly_chart(figure, width="stretch")
    st.caption("Per-class recall on the real test split: mean over seeds with its 95% interval.")

