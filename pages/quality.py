"""Quality page: score synthetic sets as a job, read the scores, and rank generators."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from classifier.prescreen import CHEAP_PRESCREEN_SIZE, Prescreen, prescreen_budget, prescreen_by_default
from data.grid import upscale
from data.synthetic import read_meta
from data.uploads import register_upload
from lab.leaderboard import leaderboard_rows
from lab.sets import compatible_sets
from metrics.distribution import DISTRIBUTION_METRICS
from metrics.inception import FEATURE_SPACE, PREPROCESSING, seconds_per_image
from metrics.quality import METRICS
from metrics.scores import ENCODER, Scores
from metrics.scoring import ScoreConfig, inception_images
from metrics.stats import Estimate, percent_interval
from pages.common import (current_dataset, current_spec, download, ensure_app_navigation, format_seconds, launch, plain,
                          remember, run_status, runs_section)

ensure_app_navigation()
st.title("Image quality")
st.caption("Each synthetic image is compared with its **nearest real training image of the same class** "
           "(random pairing, the older protocol, is there for comparison: it mostly measures how different two "
           "unrelated images are). Every score is a mean with a bootstrap 95% interval and the number of pairs. "
           "Arrows give the direction: MS-GMSD and MDSI are better when LOWER.")

spec = current_spec()
dataset = current_dataset()

with st.expander("What the metrics mean"):
    st.dataframe(pd.DataFrame(
        [{"metric": m.name, "better": m.arrow, "range": m.range_text, "ideal": m.ideal,
          "min size (px)": m.min_size, "meaning": m.meaning} for m in METRICS.values()]
        + [{"metric": m.name, "better": m.arrow, "range": "", "ideal": m.ideal, "min size (px)": None,
            "meaning": m.meaning} for m in DISTRIBUTION_METRICS.values()]), hide_index=True, width="stretch")
    st.caption("Images below a metric's minimum size are upsampled (bilinear) or, if you choose, reported as not "
               "applicable. Distribution metrics come in two feature spaces, each number naming its own: "
               f"**{FEATURE_SPACE}**, the standard one (its weights ship in a package, offline; {PREPROCESSING}; "
               "on a CPU the real reference is a stratified sample of the training split, cached per dataset, and "
               "large sets are sampled down, so compare FIDs only at equal image counts), and a small CNN trained on "
               "this dataset's training split, whose numbers are shown only when its validation balanced accuracy "
               "is clearly above chance (at least 0.10 above it and a permutation test p < 0.01).")

# --- choose sets and score them -------------------------------------------------------------------
with st.expander("Upload a synthetic set (npz or zip of class folders)"):
    upload = st.file_uploader("Synthetic set", type=["npz", "zip"], key="quality_upload")
    if upload is not None and st.button("Register upload"):
        try:
            path = register_upload(upload.getvalue(), upload.name, spec, dataset.class_names,
                                   dataset.train.channels)
            converted = read_meta(path).get("converted") or []  # e.g. float images in [0, 1] scaled to 0-255
            st.success(plain(f"Registered {path.parent.parent.name}/{path.name}"
                             + "".join(f"; {note}" for note in converted)))
        except ValueError as e:
            st.error(plain(e))

same_data = compatible_sets(spec, dataset.train.channels, len(dataset.class_names))
if not same_data:
    st.info(f"No synthetic sets for {plain(spec.label)} yet: train a GAN or SinGAN, or upload a set above.")
else:
    labels = {s.label: s for s in same_data}
    chosen = st.multiselect("Synthetic sets to score", list(labels),
                            key=remember("quality_sets", list(labels)[:1], list(labels)))
    c1, c2, c3 = st.columns(3)
    pairings = c1.multiselect("Pairing", ["nearest", "random"], default=["nearest"])
    distribution = c2.checkbox("Distribution metrics", value=True,
                               help="FID, KID, precision/recall and density/coverage between each set and the real "
                                    "training images, in the lab encoder's feature space")
    inception = c2.checkbox("Inception-v3 features too", value=True, disabled=not distribution,
                            help="the same metrics in the standard FID's feature space, comparable with published "
                                 "numbers (slow on a CPU)")
    small = c3.radio("Images below a metric's minimum size", ["upsample", "skip"], horizontal=True)
    defaults = ScoreConfig()
    budget = prescreen_budget(defaults.prescreen_steps)
    prescreen = c3.checkbox("Pre-screen (CAS)", value=prescreen_by_default(spec),
                            help="train on synthetic, test on real: after the image metrics, the study's "
                                 "classifier is trained on each set alone and "
                                 "tested on the real test split (the classification accuracy score), beside the "
                                 "same classifier trained on the real training split")
    c3.caption(f"The pre-screen trains {len(chosen) + 1} classifiers ({budget.steps} steps × {budget.batch_size} "
               f"images each: one per set, one on the real images). "
               + (f"On by default here: at {spec.size} px each takes minutes on a CPU." if prescreen_by_default(spec)
                  else f"Off by default here: at {spec.size} px each takes about {(spec.size / 28) ** 2:.0f}× as "
                       f"long as at 28 px on a CPU (on by default up to {CHEAP_PRESCREEN_SIZE} px or on a GPU)."))
    with st.expander("Inception sample sizes"):
        real_cap = st.number_input("Real reference: training images (stratified, cached per dataset)", min_value=2,
                                   value=defaults.inception_real_images, step=500)
        synthetic_cap = st.number_input("Images per synthetic set (larger sets are sampled down)", min_value=2,
                                        value=defaults.inception_synthetic_images, step=500)
    config = ScoreConfig(sets=[str(labels[c].path) for c in chosen], dataset=spec.to_dict(),
                         pairings=pairings or defaults.pairings, distribution=distribution, inception=inception,
                         inception_real_images=int(real_cap), inception_synthetic_images=int(synthetic_cap),
                         small=small, prescreen=prescreen)
    images = inception_images(dataset, config, [labels[c].meta.get("count", 0) for c in chosen])
    if images:
        pace = seconds_per_image()
        st.caption(f"Inception will embed {images} images: about {format_seconds(images * pace)} at this machine's "
                   f"{pace:.2f} s per image." if pace else
                   f"Inception will embed {images} images (not yet timed here: on a 2-core CPU about 0.2-0.5 s per "
                   f"image; the real reference is then cached for this dataset).")
    if st.button("Score", type="primary", disabled=not chosen or not pairings):
        launch("score", config.to_dict(), name="score", remembered="quality_run")

# --- results -----------------------------------------------------------------------------------
st.subheader("Score runs")
run = runs_section("score", "quality_run", run_status, picker="Score run", key="quality")
if run is None or not (run.artifacts / "scores.json").exists():
    st.stop()
try:
    scores = Scores.load(run.artifacts / "scores.json")
except ValueError as e:
    st.error(plain(e))
    st.stop()
if scores.inception is not None:
    st.caption(f"Inception: **{scores.inception.feature_space}**; {scores.inception.sample_text}; "
               f"{scores.inception.protocol}.")
if scores.encoder is not None and scores.encoder.withheld:
    st.warning(f"Lab encoder {plain(scores.encoder.name)}: {scores.encoder.withheld}.")
elif scores.encoder is not None:
    st.caption(f"Lab encoder: **{plain(scores.encoder.name)}**, {scores.encoder.accuracy_text}.")
if scores.cached:
    st.caption(f"Cached for these real images, from an earlier score job: {', '.join(scores.cached)}.")


def interval(e: Estimate) -> str:
    return "n/a" if e.n == 0 else f"{e.mean:.4g} [{e.lo:.4g}, {e.hi:.4g}]"


rows = []
for s in scores.sets:
    for pairing, block in s.pairings.items():
        row = {"set": s.name, "pairing": pairing, "n": block.pairs}
        row.update({f"{METRICS[k].name} {METRICS[k].arrow}": interval(e) for k, e in block.metrics.items()})
        rows.append(row)
st.subheader("Paired image-quality scores")
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
notes = {k: v for s in scores.sets for k, v in s.applicability.items() if v != "native"}
for key, note in notes.items():
    st.caption(f"{METRICS[key].name}: {note}.")

metric_key = st.selectbox("Chart", list(METRICS), format_func=lambda k: f"{METRICS[k].name} {METRICS[k].arrow}")
pairing_names = sorted({p for s in scores.sets for p in s.pairings})
figure = go.Figure()
for pairing in pairing_names:
    sets = [s for s in scores.sets if pairing in s.pairings and metric_key in s.pairings[pairing].metrics]
    est = [s.pairings[pairing].metrics[metric_key] for s in sets]
    figure.add_bar(name=pairing, x=[s.name for s in sets], y=[e.mean for e in est],
                   error_y={"type": "data", "symmetric": False, "array": [e.hi - e.mean for e in est],
                            "arrayminus": [e.mean - e.lo for e in est]})
figure.update_layout(barmode="group", yaxis_title=f"{METRICS[metric_key].name} ({METRICS[metric_key].arrow} better)",
                     height=360, margin={"t": 20})
st.plotly_chart(figure, width="stretch")

st.subheader("Per class")
pairing = st.radio("Pairing", pairing_names, horizontal=True)
per_class = [{"set": s.name, "class": cls, f"{METRICS[metric_key].name} {METRICS[metric_key].arrow}": interval(e),
              "n": e.n}
             for s in scores.sets if pairing in s.pairings and metric_key in s.pairings[pairing].metrics
             for cls, e in s.pairings[pairing].metrics[metric_key].per_class.items()]
st.dataframe(pd.DataFrame(per_class), hide_index=True, width="stretch")

if any(s.distribution for s in scores.sets):
    st.subheader("Fidelity and diversity (distribution level)")
    st.caption("Against the whole training split, and against training images drawn in the set's own class "
               "proportions (a class-balanced set differs from a skewed training split by design).")
    st.dataframe(pd.DataFrame([{"set": s.name, "feature space": "encoder" if d.space == ENCODER else "Inception",
                                "reference": d.reference,
                                **{f"{m.name} {m.arrow}": d.value(k) for k, m in DISTRIBUTION_METRICS.items()},
                                "KID std": d.kid_std, "real images": d.n_real, "synthetic images": d.n_synthetic,
                                "encoder accuracy": scores.feature_space_note(d.space)}
                               for s in scores.sets for d in s.distribution]),
                 hide_index=True, width="stretch")

PRESCREEN_READING = ("Train on synthetic, test on real: how well a classifier learns the classes from the set alone; "
                     "the real-only row is the same classifier trained on the real training split at the same "
                     "budget. Read balanced accuracy: a set near the majority-class row taught the classes nothing.")
prescreen_file = run.artifacts / "prescreen.json"
if prescreen_file.exists():
    st.subheader("Pre-screen: train on synthetic, test on real")
    try:
        prescreen = Prescreen.load(prescreen_file)
    except ValueError as e:
        st.error(plain(e))
    else:
        st.caption(f"{PRESCREEN_READING} Each classifier: {prescreen.train.steps} steps × "
                   f"{prescreen.train.batch_size} images, selected on the real validation split, scored on the "
                   f"{prescreen.test_images} real test images.")
        st.dataframe(pd.DataFrame(prescreen.table_rows()), hide_index=True, width="stretch")
        if prescreen.cached:
            st.caption(f"Cached for these real images, from an earlier score job: {', '.join(prescreen.cached)}.")
        measured = [s for s in [*prescreen.sets, prescreen.real] if s.scores]
        figure = go.Figure(go.Bar(x=[s.name for s in measured], y=[s.scores["balanced_accuracy"] for s in measured]))
        figure.add_hline(y=prescreen.trivial.scores["balanced_accuracy"], line_dash="dot",
                         annotation_text=f"always {prescreen.trivial.majority_class}")
        figure.update_layout(yaxis_title="balanced accuracy on real test images (↑)", yaxis_range=[0, 1], height=320,
                             margin={"t": 20})
        st.plotly_chart(figure, width="stretch")
        for s in prescreen.sets:
            if not s.scores:
                st.warning(f"Not pre-screened: {plain(s.message)}")
elif scores.config.get("prescreen") and run.state in ("queued", "running"):
    st.info("The pre-screen is running: one classifier per set and one on the real images (see the progress above).")

st.subheader("Memorization")
st.caption("A synthetic image is a suspected copy when it is closer to a training image than 99% of real "
           "held-out (validation) images are; a generator that makes new images flags about 1%.")
for s in scores.sets:
    m = s.memorization
    st.markdown(f"**{plain(s.name)}** — suspected copies {m.suspected_count}/{s.count} = "
                f"{percent_interval(m.suspected_fraction)} (exact 95% interval; expected ≈{m.expected_fraction:.0%}; "
                f"threshold {m.threshold:.4f} RMS, median distance {m.median_distance:.3f} vs held-out "
                f"{m.heldout_median_distance:.3f})")
    gallery = run.artifacts / s.gallery
    if s.gallery and gallery.exists():
        image = np.asarray(Image.open(gallery))
        st.image(upscale(image, max(1, 900 // image.shape[1])),
                 caption="top: synthetic images closest to the training set · bottom: their nearest training images")

c1, c2 = st.columns(2)
download("Download CSV", scores.to_csv().encode(), f"scores-{run.id}.csv", "text/csv", container=c1)
download("Download JSON", (run.artifacts / "scores.json").read_bytes(), f"scores-{run.id}.json", "application/json",
         container=c2)

st.header("Generator leaderboard")
st.caption("One row per scored set (its newest score). Downstream gain comes from augmentation studies that used "
           "the set: blank until one exists. Click a column to sort.")
board = leaderboard_rows()
if board:
    st.dataframe(pd.DataFrame(board).drop(columns=["path"]), hide_index=True, width="stretch")

st.caption("Per-image scores of a set, worst first, and keeping or dropping images by hand or by rule: the "
           "**Review a set** page.")
