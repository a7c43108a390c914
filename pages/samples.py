"""Samples page: open a finished GAN run or upload a generator; look, compare, export.

The previews (8 images per class) are drawn here; an exported set, up to 20,000 images per
class, is drawn by a "sample" job (lab/kinds/sample.py) while the page shows its progress.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st

from data.config import ConfigError
from data.files import atomic_write_bytes
from data.paths import runs_dir
from data.synthetic import load_set, read_meta, to_folder_zip
from gans import TITLES
from gans.checkpoint import CheckpointError, load_generator
from gans.sampling import class_grid, has_labels, interpolate
from lab.engine import jobs
from lab.engine.manage import label as run_label
from lab.engine.runs import ACTIVE_STATES, Run
from lab.sampling import SampleConfig, finished_generators, sample_result
from pages.common import (current_dataset, current_spec, download, ensure_app_navigation, option_input, plain,
                          run_actions, run_status, show_grid)

ensure_app_navigation()
st.title("Samples")


@st.cache_resource(max_entries=4, show_spinner="Loading generator…")
def generator_from_file(path: str, modified: float):
    return load_generator(path)


@st.cache_resource(max_entries=2, show_spinner="Checking the uploaded checkpoint…")
def generator_from_upload(data: bytes, name: str):
    return load_generator(data, name=name)


def keep_upload(data: bytes) -> Path:
    """The uploaded generator as a file a job can open, named by its content (so kept once)."""
    path = runs_dir() / "uploads" / "generators" / f"{hashlib.sha256(data).hexdigest()[:20]}.pt"
    if not path.exists():
        atomic_write_bytes(path, data)
    return path


finished = finished_generators()
source = st.radio("Generator", ["Finished run", "Upload a checkpoint"], horizontal=True)
run = upload = None
try:
    if source == "Finished run":
        if not finished:
            st.info("No finished GAN runs yet: train one on the Train GAN page, or upload a generator.pt.")
            st.stop()
        labels = {str(g.path): run_label(g.run) + (f" · seed {g.seed}'s generator" if g.member is not None else "")
                  for g in finished}
        run, path, _, _ = finished[list(labels).index(st.selectbox("Run", list(labels), format_func=labels.get))]
        gan, config, class_names = generator_from_file(str(path), path.stat().st_mtime)
        origin, generator_key = run.id, str(path)
    else:
        upload = st.file_uploader("generator.pt from a GAN run of this lab", type=["pt"])
        if upload is None:
            st.stop()
        gan, config, class_names = generator_from_upload(upload.getvalue(), upload.name)
        origin = generator_key = f"upload:{upload.name}"
except CheckpointError as e:
    st.error(f"Checkpoint refused. {plain(e)}")
    st.stop()

mode = "conditional" if gan.conditional else "one generator per class" if gan.per_class else "whole dataset"
st.caption(f"{TITLES.get(config.gan, config.gan)} · {gan.image_size} px · {gan.channels} channel(s) · {mode} · "
           f"trained on {plain(config.dataset.get('name'))} · classes: {plain(', '.join(class_names))}")
export_options = {option.name: option for option in SampleConfig.options()}
seed = option_input(export_options["seed"], 0)

st.subheader("Per-class samples" if has_labels(gan) else "Samples")
images = class_grid(gan, per_row=8, seed=int(seed))
if has_labels(gan):
    cols = st.columns(min(len(class_names), 4))
    for k, name in enumerate(class_names):
        with cols[k % len(cols)]:
            show_grid(images[8 * k: 8 * k + 8], ncol=4, caption=plain(name), min_width=200)
else:
    show_grid(images, ncol=8)

st.subheader("Latent interpolation")
c1, c2 = st.columns(2)
label = c1.selectbox("Class", range(len(class_names)), format_func=lambda k: class_names[k],
                     disabled=not has_labels(gan))
steps = c2.slider("Steps", 4, 16, 10)
show_grid(interpolate(gan, int(label), steps, seed=int(seed)), ncol=steps,
          caption="From one latent point to another in a straight line", min_width=600)

st.subheader("Real and synthetic side by side")
spec = current_spec()
if (spec.name, spec.size) != (config.dataset.get("name"), gan.image_size):
    st.info(f"The current dataset is {plain(spec.label)}; choose {plain(config.dataset.get('name'))} at "
            f"{gan.image_size} px on the Data page to compare with its real images.")
else:
    real = current_dataset().train
    for k, name in enumerate(class_names if has_labels(gan) else ["all classes"]):
        pool = real.of_class(k) if has_labels(gan) else real
        if not len(pool):
            continue
        picks = np.random.default_rng(int(seed)).choice(len(pool), size=min(8, len(pool)), replace=False)
        left, right = st.columns(2)
        with left:
            show_grid(pool.images[picks], ncol=8, caption=f"real · {plain(name)}", min_width=300)
        with right:
            start = 8 * k if has_labels(gan) else 0
            show_grid(images[start:start + 8], ncol=8, caption=f"synthetic · {plain(name)}", min_width=300)

st.subheader("Export")
e1, e2 = st.columns(2)
per_class = option_input(export_options["per_class"], 200, e1, label="" if has_labels(gan) else "Images")
name = option_input(export_options["name"], f"{config.gan}_{int(per_class)}pc_seed{int(seed)}", e2)
if st.button("Generate and register the set", type="primary"):
    generator = path if run is not None else keep_upload(upload.getvalue())
    try:
        sample_config = SampleConfig(generator=str(generator), origin=origin, per_class=int(per_class),
                                     seed=int(seed), name=name)
    except ConfigError as e:
        st.error(plain(e))
    else:
        job = jobs.submit("sample", sample_config.to_dict(), name=name)
        st.session_state["sample_job"] = (generator_key, str(job.path))
        st.rerun()  # the sidebar and the export panel then follow the job


def export_downloads(job: Run) -> None:
    """The finished export: what it registered, and its files to download."""
    result = sample_result(job)
    if result is None or result.path is None:
        st.error("The sample job finished but its set is gone (deleted since?).")
        return
    path = result.path
    count = read_meta(path).get("count", "?")
    if result.identical_to:
        st.success(f"Identical to the set {plain(result.identical_to)} (same generator, seed and images per "
                   f"class): nothing new drawn; its {count} images are listed on the Quality and Study pages.")
    else:
        st.success(f"Registered {count} images as {plain(result.set_id)} — the Quality and Study pages list it now.")
    d1, d2 = st.columns(2)
    download("Download npz", path.read_bytes, path.name, container=d1)
    download("Download image-folder zip", lambda: to_folder_zip(load_set(path)), f"{path.stem}.zip", container=d2)


if st.session_state.get("sample_job", (None,))[0] == generator_key:  # an export of the generator shown
    job = Run(st.session_state["sample_job"][1])
    status = job.status()

    @st.fragment(run_every=1 if status["state"] in ACTIVE_STATES else None)
    def export_status():
        if run_status(job).get("state") != status["state"]:
            st.rerun()  # the whole page: its buttons and downloads follow the new state

    export_status()
    run_actions(job, status, key="sample")
    if status["state"] == "done":
        export_downloads(job)

st.caption("Per-image scores of a set, worst first, and keeping or dropping images by hand or by rule: the "
           "**Review a set** page.")
