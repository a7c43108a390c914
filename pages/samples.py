"""Samples page: open a finished GAN run or upload a generator; look, compare, export."""
from __future__ import annotations

import numpy as np
import streamlit as st

from data.paths import runs_dir
from data.synthetic import save_set, to_folder_zip
from gans import TITLES
from gans.checkpoint import CheckpointError, load_generator
from gans.sampling import class_grid, has_labels, interpolate, npz_bytes, synthesize
from lab.runs import list_runs
from pages.common import current_dataset, current_spec, ensure_app_navigation, show_grid

ensure_app_navigation()
st.title("Samples")


@st.cache_resource(max_entries=4, show_spinner="Loading generator…")
def generator_from_file(path: str, modified: float):
    return load_generator(path)


@st.cache_resource(max_entries=2, show_spinner="Checking the uploaded checkpoint…")
def generator_from_upload(data: bytes, name: str):
    return load_generator(data, name=name)


finished = [r for r in list_runs("gan") if (r.checkpoints / "generator.pt").exists()]
source = st.radio("Generator", ["Finished run", "Upload a checkpoint"], horizontal=True)
run = None
try:
    if source == "Finished run":
        if not finished:
            st.info("No finished GAN runs yet: train one on the Train GAN page, or upload a generator.pt.")
            st.stop()
        run = finished[[r.id for r in finished].index(st.selectbox("Run", [r.id for r in finished]))]
        path = run.checkpoints / "generator.pt"
        gan, config, class_names = generator_from_file(str(path), path.stat().st_mtime)
        export_dir, origin = run.artifacts, run.id
    else:
        upload = st.file_uploader("generator.pt from a GAN run of this lab", type=["pt"])
        if upload is None:
            st.stop()
        gan, config, class_names = generator_from_upload(upload.getvalue(), upload.name)
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in upload.name.rsplit(".", 1)[0])[:40]
        export_dir, origin = runs_dir() / "uploads" / stem / "artifacts", f"upload:{upload.name}"
except CheckpointError as e:
    st.error(f"Checkpoint refused. {e}")
    st.stop()

mode = "conditional" if gan.conditional else "one generator per class" if gan.per_class else "whole dataset"
st.caption(f"{TITLES.get(config.gan, config.gan)} · {gan.image_size} px · {gan.channels} channel(s) · {mode} · "
           f"trained on {config.dataset.get('name')} · classes: {', '.join(class_names)}")
seed = st.number_input("Seed", 0, 2 ** 31, 0, help="Same seed, same images.")

st.subheader("Per-class samples" if has_labels(gan) else "Samples")
images = class_grid(gan, per_row=8, seed=int(seed))
if has_labels(gan):
    cols = st.columns(min(len(class_names), 4))
    for k, name in enumerate(class_names):
        with cols[k % len(cols)]:
            show_grid(images[8 * k: 8 * k + 8], ncol=4, caption=name, min_width=200)
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
    st.info(f"The current dataset is {spec.label}; choose {config.dataset.get('name')} at {gan.image_size} px on "
            "the Data page to compare with its real images.")
else:
    real = current_dataset().train
    for k, name in enumerate(class_names if has_labels(gan) else ["all classes"]):
        pool = real.of_class(k) if has_labels(gan) else real
        if not len(pool):
            continue
        picks = np.random.default_rng(int(seed)).choice(len(pool), size=min(8, len(pool)), replace=False)
        left, right = st.columns(2)
        with left:
            show_grid(pool.images[picks], ncol=8, caption=f"real · {name}", min_width=300)
        with right:
            start = 8 * k if has_labels(gan) else 0
            show_grid(images[start:start + 8], ncol=8, caption=f"synthetic · {name}", min_width=300)

st.subheader("Export")
e1, e2 = st.columns(2)
per_class = e1.number_input("Images per class" if has_labels(gan) else "Images", 1, 20_000, 200, 50)
name = e2.text_input("Set name", f"{config.gan}_{int(per_class)}pc_seed{int(seed)}")
if st.button("Generate and register the set", type="primary"):
    synthetic = synthesize(gan, int(per_class), class_names, seed=int(seed), source=origin)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "synthetic"
    path = save_set(synthetic, export_dir, safe, generator=config.gan, run_id=origin, dataset=config.dataset,
                    seed=int(seed), labelled=has_labels(gan))
    st.session_state["exported"] = (origin, synthetic, path)
if st.session_state.get("exported", (None,))[0] == origin:
    _, synthetic, path = st.session_state["exported"]
    st.success(f"Registered {len(synthetic)} images as {path} — the Quality and Study pages list it now.")
    d1, d2 = st.columns(2)
    d1.download_button("Download npz", npz_bytes(synthetic), file_name=f"{path.stem}.npz")
    d2.download_button("Download image-folder zip", to_folder_zip(synthetic), file_name=f"{path.stem}.zip")
