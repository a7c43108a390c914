"""Augmentation study page: configure arms, launch, follow each job, compare the arms."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import streamlit as st

from classifier.gradcam import gradcam, overlay
from data.augment import AUGMENTATIONS, default_pipeline
from data.config import ConfigError
from data.synthetic import load_set
from lab import jobs
from lab.children import read_children
from lab.sets import compatible_sets
from lab.study import MIX_MODES, PRESETS, arm_model, preset, read_summary, study_results
from lab.study_report import confusion_figure, curve_figure, metric_bars, recall_delta_figure
from pages.common import (STATE_ICONS, any_active, current_dataset, current_spec, ensure_app_navigation, pick_run,
                          run_status_panel, runs_table, show_grid)

ensure_app_navigation()
st.title("Augmentation study")
st.caption("Does adding a generator's images make the classifier better? Every arm gets the same number of "
           "optimizer steps and the same real subset per seed; synthetic images are used for training only; "
           "models are selected on the real validation split and tested once on the real test split.")

spec = current_spec()
data = current_dataset()
sets = compatible_sets(spec, data.train.channels, len(data.class_names))

with st.expander("New study", expanded=True):
    preset_name = st.radio("Preset", PRESETS, horizontal=True,
                           help="quick: 10% of the data, 400 steps, minutes on a CPU. paper: all data, 5500 steps.")
    base = preset(preset_name, dataset=spec.to_dict())
    c1, c2, c3, c4 = st.columns(4)
    fraction = c1.number_input("Real training fraction", 0.01, 1.0, base.train_fraction, 0.05)
    n_seeds = c2.number_input("Seeds", 1, 10, len(base.seeds))
    steps = c3.number_input("Optimizer steps per arm", 10, 100_000, base.train.steps, 50)
    batch = c4.number_input("Batch size", 8, 512, base.train.batch_size, 8)
    arms = [{"name": "real only"}]
    if st.checkbox("Real + standard augmentation"):
        names = st.multiselect("Augmentations", list(AUGMENTATIONS), default_pipeline(spec.name),
                               format_func=lambda n: f"{n} — {AUGMENTATIONS[n]}")
        arms.append(dict(name="real + standard aug", kind="standard_aug", augment=names))
    chosen = st.multiselect("Synthetic sets (one 'real + synthetic' arm each)", sets,
                            format_func=lambda s: s.label)
    if chosen:
        m1, m2, m3 = st.columns(3)
        mix = m1.radio("Mix", MIX_MODES, horizontal=True,
                       help="ratio: ratio × (real images) synthetic images; balance: top up every class "
                            "to the largest class")
        ratio = m2.number_input("Synthetic per real image", 0.1, 10.0, 1.0, 0.1, disabled=mix != "ratio")
        only = m3.checkbox("Also train on synthetic only (test on real)")
        for s in chosen:
            arms.append(dict(name=f"real + {s.name}", kind="synthetic", synthetic_set=str(s.path), mix=mix,
                             ratio=ratio))
            if only:
                arms.append(dict(name=f"only {s.name}", kind="synthetic_only", synthetic_set=str(s.path), mix=mix,
                                 ratio=ratio))
    elif not sets:
        st.info("No synthetic sets for this dataset yet: train a GAN or SinGAN and export a set first.")
    st.write(f"{len(arms)} arms × {int(n_seeds)} seeds = {len(arms) * int(n_seeds)} training jobs of "
             f"{int(steps)} steps each.")
    try:
        config = base.replace(train_fraction=float(fraction), seeds=list(range(int(n_seeds))),
                              arms=arms,
                              train=base.train.replace(steps=int(steps), batch_size=int(batch),
                                                       eval_every=max(1, int(steps) // 4)))
    except ConfigError as e:
        config = None
        st.error(str(e))
    if st.button("Launch study", type="primary", disabled=config is None):
        run = jobs.submit("study", config.to_dict(), name=f"{preset_name}-{spec.name}")
        st.session_state["study_run"] = run.id
        st.success(f"Queued {run.id}")

st.subheader("Studies")
runs = runs_table("study")
if not runs:
    st.stop()
run = pick_run(runs, "Study", "study_run")


@st.fragment(run_every=2 if any_active([run]) else None)
def progress_view():
    run_status_panel(run, key="study")
    children = read_children(run)
    if children:
        rows = []
        for key, child in children.items():
            status = child.status()
            p = status.get("progress") or {}
            arm, seed = key.rsplit("|", 1)
            rows.append({"arm": arm, "seed": seed,
                         "state": f"{STATE_ICONS.get(status.get('state'), '')} {status.get('state')}",
                         "progress": p.get("done", 0) / max(p.get("total", 1), 1)})
        st.dataframe(rows, hide_index=True, width="stretch", column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1)})


def show_figure(fig) -> None:
    st.pyplot(fig)
    plt.close(fig)


progress_view()
try:
    summary = read_summary(run)
except ValueError as e:
    st.error(str(e))
    st.stop()
if summary is None:
    st.stop()

st.subheader("Results on the real test split")
for arm in summary.arms:
    st.markdown(f"**{arm.arm}** — {arm.verdict}")
st.plotly_chart(metric_bars(summary), width="stretch")
st.markdown("**Per-class recall vs the baseline**")
show_figure(recall_delta_figure(summary))
st.markdown("**Confusion matrices** (row-normalised, summed over seeds)")
show_figure(confusion_figure(summary))
results = study_results(run)
if results:
    st.markdown("**Validation curves** (mean over seeds)")
    show_figure(curve_figure(results))
d1, d2, d3 = st.columns(3)
for col, name, mime in ((d1, "report.html", "text/html"), (d2, "report.csv", "text/csv"),
                        (d3, "summary.json", "application/json")):
    path = run.artifacts / name
    if path.exists():
        col.download_button(f"Download {name}", path.read_bytes(), file_name=f"{run.id}-{name}", mime=mime)

st.subheader("Grad-CAM")
children = {k: c for k, c in read_children(run).items() if (c.artifacts / "best.pt").exists()}
if children:
    g1, g2, g3 = st.columns(3)
    key = g1.selectbox("Trained model (arm | seed)", list(children))
    sources = ["real test images"] + [a.synthetic_set for a in summary.arms if a.synthetic_set]
    source = g2.selectbox("Images", list(dict.fromkeys(sources)))
    label = g3.selectbox("Class", range(len(summary.class_names)), format_func=lambda k: summary.class_names[k])
    images = data.test if source == "real test images" else load_set(source)
    pool = images.of_class(label)
    if len(pool):
        picked = pool.images[np.random.default_rng(0).permutation(len(pool))[:8]]
        heat, predicted, _ = gradcam(arm_model(children[key]), picked)
        show_grid(picked, ncol=8, caption="images")
        show_grid(overlay(picked, heat), ncol=8, caption="Grad-CAM; predicted: " +
                  ", ".join(summary.class_names[p] for p in predicted))
    else:
        st.caption("No images of this class in that set.")
