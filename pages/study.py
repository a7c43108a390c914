"""Augmentation study page: configure the arms (reference arms, generators trained inside each seed, fixed sets
checked for leaks), launch, follow each job, compare the arms."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from classifier.gradcam import gradcam, overlay
from data.augment import AUGMENTATIONS, default_pipeline
from data.synthetic import load_set
from gans import SINGLE_IMAGE, TITLES
from lab.engine.runs import ACTIVE_STATES, Run, list_runs
from lab.sets import compatible_sets, resolve_set
from lab.study.arm_runs import ArmRun, arm_runs_of
from lab.study.config import (BATCHED_MODES, GENERATORS, GROUP_MEMBERS, MIX_MODES, PRESETS, SUMMARY_FILE, StudyConfig,
                              preset, recipe_arms, reference_arms, set_label, synthetic_arms)
from lab.study.leaks import check_sets
from lab.study.pilot import Budget, PilotConfig, apply_budget, read_pilot
from lab.study.power import DEFAULT_DIFFERENCE, seed_plan
from lab.study.report import (arm_table, bars_figure, confusion_figure, curve_figure, recall_delta_figure,
                              yardsticks)
from lab.study.summary import arm_model, expected_interval, read_summary, study_results
from pages.common import (PROGRESS_COLUMN, current_dataset, current_spec, ensure_app_navigation, estimate_caption,
                          dataset_of, download, fraction_done, launch, plain, remember, run_status, runs_section,
                          show_grid)

ensure_app_navigation()
st.title("Augmentation study")
st.caption("Does adding a generator's images make the classifier better? Every arm gets the same number of "
           "optimizer steps and the same real subset per seed; synthetic images are used for training only; "
           "models are selected on the real validation split and tested once on the real test split.")

spec = current_spec()
data = current_dataset()
sets = compatible_sets(spec, data.train.channels, len(data.class_names))

with st.expander("New study", expanded=True):
    applied = st.session_state.get("study_applied_budget")  # a pilot's budget ("Apply this budget", below)
    measured = StudyConfig.from_dict(applied["study"]) if applied else None  # the study it measured, at that budget
    if measured is not None:
        if measured.dataset == spec:
            st.caption(f"Applied budget: {measured.train.steps} steps of batch {measured.train.batch_size} at training "
                       f"fraction {measured.train_fraction:g}, found by pilot {applied['pilot']} of study "
                       f"{applied['study_run']}; every other training setting as that study had it.")
        else:  # a budget means nothing on another dataset
            st.warning(f"The budget of pilot {applied['pilot']} was measured on {plain(measured.dataset.name)}, not "
                       f"{plain(spec.name)}: pick that dataset on the Data page, or forget the budget.")
            measured = None
        if st.button("Forget the applied budget"):
            del st.session_state["study_applied_budget"]
            st.rerun()
    preset_name = st.radio("Preset", PRESETS, horizontal=True, disabled=measured is not None,
                           help="quick: 10% of the data with a budget sized to it (400 steps × 64 on DermaMNIST), "
                                "minutes on a CPU. paper: all data, 5500 steps.")
    c1, c2, c3, c4 = st.columns(4)
    default_fraction = measured.train_fraction if measured else 0.1 if preset_name == "quick" else 1.0
    fraction = c1.number_input("Real training fraction", min(0.01, default_fraction), 1.0, default_fraction, 0.05)
    base = measured or preset(preset_name, dataset=spec, train_fraction=float(fraction))
    n_seeds = int(c2.number_input("Seeds", 1, 30, key=remember("study_seeds", len(base.seeds))))
    steps = c3.number_input("Optimizer steps per arm", min(10, base.train.steps), 100_000, base.train.steps, 50)
    batch = c4.number_input("Batch size", 1, max(512, base.train.batch_size), base.train.batch_size, 8)
    batched = st.radio("Train (arm, seed)s batched", BATCHED_MODES, horizontal=True,
                       help=f"up to {GROUP_MEMBERS} classifiers trained as one computation, each with its own data, "
                            f"seed and model selection, and a recipe's per-class GANs of up to {GROUP_MEMBERS} seeds "
                            "as one stack. auto: on CUDA only; on a CPU it costs what one at a time costs")
    st.caption(expected_interval(n_seeds, spec, float(fraction), base.primary_metric).text)
    detect = st.number_input("Difference to detect (points)", 0.5, 50.0, 100 * DEFAULT_DIFFERENCE, 0.5,
                             help="the smallest difference in the primary metric between two arms that matters to "
                                  "you; the page says how many seeds detect it with 80% power, and what they cost")
    plan = seed_plan(spec, float(fraction), base.primary_metric, detect / 100)
    st.caption(plan.text(n_seeds))
    if n_seeds < 3:
        st.warning(f"{n_seeds} seed{'s' if n_seeds > 1 else ''}: below 3 seeds an interval is too wide to tell most "
                   f"differences from noise.")

    st.markdown("**Reference arms**: the cheap alternatives every generator must beat, at the same budget")
    r1, r2, r3 = st.columns(3)
    wanted = (True, r1.checkbox("Real + class-balanced sampler", True),
              r2.checkbox("Real + standard augmentation", True), r3.checkbox("Real + augmentation + sampler", True))
    augment = default_pipeline(spec.name)
    if wanted[2] or wanted[3]:
        augment = st.multiselect("Augmentations", list(AUGMENTATIONS), augment,
                                 format_func=lambda n: f"{n} — {AUGMENTATIONS[n]}")
    arms = [arm for arm, on in zip(reference_arms(augment or None), wanted) if on]

    st.markdown("**Generators trained inside each seed**: each seed's generator learns from exactly the real "
                "images that seed's classifier sees")
    generators = st.multiselect("Generators (one 'real + recipe' arm each)", list(GENERATORS),
                                key=remember("study_recipes", ["dcgan"], list(GENERATORS)),
                                format_func=lambda g: TITLES.get(g) or f"{SINGLE_IMAGE[g]} (seeds per class)")
    m1, m2 = st.columns(2)
    mix = m1.radio("Mix", MIX_MODES, horizontal=True,
                   help="ratio: ratio × (real images) synthetic images; balance: top up every class to the largest "
                        "class")
    ratio = m2.number_input("Synthetic per real image", 0.1, 10.0, 1.0, 0.1, disabled=mix != "ratio")
    single_image = {}
    if any(g in SINGLE_IMAGE for g in generators):
        s1, s2 = st.columns(2)
        single_image = {"seeds_per_class": int(s1.number_input("Seed images per class (SinGAN, GPNN)", 1, 20, 2)),
                        "variations": int(s2.number_input("Variations per seed image", 1, 100, 8))}
    arms += [arm.replace(mix=mix, ratio=float(ratio)) for arm in recipe_arms(generators, spec.size, **single_image)]

    chosen, allow_leak = [], False
    if st.toggle("Advanced: fixed synthetic sets", key=remember("study_fixed", False),
                 help="a set made before the study: its generator may have seen real images the classifier does not"):
        by_id = {s.id: s for s in sets}
        chosen = st.multiselect("Synthetic sets (one 'real + synthetic' arm each)", list(by_id),
                                format_func=lambda i: by_id[i].label, key=remember("study_sets", [], list(by_id)))
        allow_leak = st.checkbox("Allow leaky sets", help="run a set whose generator learned from real training "
                                 "images outside a seed's subset; every verdict, table and report row of its arm "
                                 "then says how many real images each side saw")
        only = st.checkbox("Also train on synthetic only (test on real)")
        for ref in chosen:
            fixed = synthetic_arms([ref], allow_leak)[0].replace(mix=mix, ratio=float(ratio))
            arms.append(fixed)
            if only:
                arms.append(fixed.replace(name=f"only {set_label(ref)}", kind="synthetic_only"))
        if not sets:
            st.info("No synthetic sets for this dataset yet: train a GAN or SinGAN and export a set first.")
    st.write(f"{len(arms)} arms × {n_seeds} seeds = {len(arms) * n_seeds} classifier runs of {int(steps)} steps "
             f"each" + (f", after {len(generators) * n_seeds} generator runs." if generators else "."))
    try:
        if measured:  # evaluated as often, relative to its steps, as the pilot evaluated it
            at_budget = apply_budget(measured, Budget(int(steps), float(fraction)))
        else:
            at_budget = base.replace(train_fraction=float(fraction),
                                     train=base.train.replace(steps=int(steps), eval_every=max(1, int(steps) // 4)))
        config = at_budget.replace(seeds=list(range(n_seeds)), arms=arms, batched=batched,
                                   train=at_budget.train.replace(batch_size=int(batch)))
        flags = check_sets(config, data) if chosen else {}
    except (ValueError, FileNotFoundError) as e:  # a bad config, a refused or unreadable set
        config, flags = None, {}
        st.error(plain(e))
    for name, flag in flags.items():
        st.warning(f"Arm '{plain(name)}': {plain(flag)}. Every result of this arm will say so.")
    if config is not None:
        estimate_caption("study", config.to_dict())
        if plan.seeds is not None and plan.seeds != n_seeds:
            st.caption(f"With the {plan.seeds} seeds that detect {detect:g} points:")
            estimate_caption("study", config.replace(seeds=list(range(plan.seeds))).to_dict())
    if st.button("Launch study", type="primary", disabled=config is None):
        launch("study", config.to_dict(), name=f"{preset_name}-{spec.name}", remembered="study_run")


def progress_view(run: Run) -> None:
    state = run_status(run).get("state")
    children = arm_runs_of(run)
    if children:
        rows = []
        for key, child in children.items():
            status = child.status()
            arm, seed = key.rsplit("|", 1)
            rows.append({"arm": arm, "seed": seed, "state": status.get("state", "unknown"),
                         "progress": round(100 * fraction_done(status))})
        st.dataframe(rows, hide_index=True, width="stretch", column_config={"progress": PROGRESS_COLUMN})
    if state in ACTIVE_STATES and not (run.artifacts / SUMMARY_FILE).exists():  # the results below say the rest
        live_curves(run, children)


def live_curves(run: Run, arms: dict[str, ArmRun]) -> None:
    """Each (arm, seed)'s validation score and training loss so far, one line each, while the study runs."""
    metric = run.config.get("primary_metric", "balanced_accuracy")
    metric_name = metric.replace("_", " ")
    validation, loss = go.Figure(), go.Figure()
    for key, child in arms.items():
        arm, seed = key.rsplit("|", 1)
        name = f"{arm} · seed {seed}"
        evaluations, training = child.events("eval"), child.events("train")
        if evaluations:
            validation.add_scatter(x=[e["step"] for e in evaluations], y=[e.get(f"val_{metric}") for e in evaluations],
                                   mode="lines+markers", name=name, legendgroup=arm)
        if training:
            loss.add_scatter(x=[e["step"] for e in training], y=[e.get("loss") for e in training], mode="lines",
                             name=name, legendgroup=arm)
    if not (validation.data or loss.data):
        return
    left, right = st.columns(2)
    for column, fig, title, axis in ((left, validation, f"Validation {metric_name}", metric_name),
                                     (right, loss, "Training loss", "cross-entropy loss")):
        fig.update_layout(title=title, xaxis_title="optimizer step", yaxis_title=axis, height=320,
                          margin=dict(l=10, r=10, t=40, b=10), legend_title_text="arm · seed")
        column.plotly_chart(fig, width="stretch")


def show_figure(fig) -> None:
    st.pyplot(fig)
    plt.close(fig)


st.subheader("Studies")
run = runs_section("study", "study_run", progress_view, picker="Study")
if run is None:
    st.stop()
try:
    summary = read_summary(run)
except ValueError as e:
    st.error(plain(e))
    st.stop()
if summary is None:
    st.stop()

st.subheader("Results on the real test split")
st.caption(yardsticks(summary))
for arm in summary.arms:
    st.markdown(f"**{plain(arm.arm)}** — {plain(arm.verdict)}")
if summary.cannot_judge:  # a learning-curve pilot of the baseline names the budget at which it could judge
    with st.container(border=True):
        st.markdown("**Cannot judge at this budget.** A pilot trains the baseline alone at larger step budgets "
                    "and training fractions, cheapest first, until it clears the trivial classifier on the "
                    "validation split.")
        pilots = [r for r in list_runs("study-pilot") if r.config.get("study_run") == str(run.path)]
        if not pilots or pilots[0].state in ("failed", "cancelled"):
            if st.button("Run a learning-curve pilot"):
                launch("study-pilot", PilotConfig(study=StudyConfig.from_dict(run.settings), study_run=str(run.path),
                                                  seeds=min(2, len(run.settings["seeds"]))).to_dict(),
                       name="pilot", remembered="study_pilot_run")
        if pilots:
            pilot_status = pilots[0].status()
            found = read_pilot(pilots[0].artifacts) if pilot_status["state"] == "done" else None
            st.caption(plain(found.text) if found else f"Pilot {pilots[0].id}: {pilot_status['state']} "
                       f"{plain((pilot_status.get('progress') or {}).get('message', ''))}")
            if found and found.budget and st.button("Apply this budget", type="primary"):
                # the pilot's own study at its budget: the batch size and every other setting it measured the budget at
                pilot_study = PilotConfig.from_dict(pilots[0].settings).study
                st.session_state["study_applied_budget"] = {"pilot": pilots[0].id, "study_run": run.id,
                                                            "study": apply_budget(pilot_study, found.budget).to_dict()}
                st.rerun()
st.dataframe(arm_table(summary), hide_index=True, width="stretch")
show_figure(bars_figure(summary))
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
        download(f"Download {name}", path.read_bytes(), f"{run.id}-{name}", mime, container=col)

st.subheader("Grad-CAM")
children = {k: c for k, c in arm_runs_of(run).items() if (c.artifacts / "best.pt").exists()}
if children:
    g1, g2, g3 = st.columns(3)
    key = g1.selectbox("Trained model (arm | seed)", list(children))
    sources = ["real test images"] + [a.synthetic_set for a in summary.arms if a.synthetic_set]
    source = g2.selectbox("Images", list(dict.fromkeys(sources)))
    label = g3.selectbox("Class", range(len(summary.class_names)), format_func=lambda k: summary.class_names[k])
    images = dataset_of(run.config["dataset"]).test if source == "real test images" else load_set(resolve_set(source))
    pool = images.of_class(label)
    if len(pool):
        picked = pool.images[np.random.default_rng(0).permutation(len(pool))[:8]]
        heat, predicted, _ = gradcam(arm_model(children[key]), picked)
        show_grid(picked, ncol=8, caption="images")
        show_grid(overlay(picked, heat), ncol=8, caption="Grad-CAM; predicted: " +
                  plain(", ".join(summary.class_names[p] for p in predicted)))
    else:
        st.caption("No images of this class in that set.")
