"""Data page: choose a dataset and see it — class balance, samples, the training fraction, augmentation."""
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from data import folder, medmnist_source, uploads
from data.augment import AUGMENTATIONS, NOT_MIRRORED, apply, build_pipeline, default_pipeline
from data.datasets import DatasetSpec, load_dataset
from data.medmnist_source import DatasetError
from lab.engine import jobs
from lab.engine.runs import Run
from pages.common import (current_dataset, current_spec, ensure_app_navigation, plain, run_actions, run_status,
                          set_spec, show_grid)

FOLDER_SIZES = (28, 32, 64, 128)
CHANNELS = {0: "detect", 1: "grayscale", 3: "RGB"}
SOURCES = {"medmnist": "MedMNIST", "folder": "Image folder", "zip": "Zip upload"}

ensure_app_navigation()
st.title("Data")
spec = current_spec()


def short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def choose_medmnist() -> None:
    present = sorted({flag for flag, _, _ in medmnist_source.available()})
    flags = present + [f for f in medmnist_source.flags_2d() if f not in present]
    c1, c2 = st.columns([3, 1])
    flag = c1.selectbox("MedMNIST flag", flags, index=flags.index(spec.name) if spec.name in flags else 0,
                        format_func=lambda f: f if f in present else f"{f} (download)", key="mnist_flag")
    size = c2.selectbox("Size", medmnist_source.SIZES,
                        index=medmnist_source.SIZES.index(spec.size) if spec.size in medmnist_source.SIZES else 0,
                        key="mnist_size")
    chosen = DatasetSpec(name=flag, size=size)
    if chosen != spec:
        set_spec(chosen)
        st.rerun()


def folder_options(key: str) -> dict:
    """The working size and channels a folder is imported with, as DatasetSpec fields."""
    c1, c2 = st.columns(2)
    size = c1.selectbox("Working size (px)", FOLDER_SIZES, index=2, key=f"{key}_size")
    channels = c2.radio("Channels", list(CHANNELS), format_func=CHANNELS.get, horizontal=True, key=f"{key}_ch")
    return {"size": size, "channels": channels}


def adopt(chosen: DatasetSpec) -> None:
    """Make an imported folder the current dataset, unless it cannot be split (then say why)."""
    try:
        load_dataset(chosen)
    except DatasetError as e:
        st.session_state["folder_error"] = str(e)
    else:
        set_spec(chosen)
    st.rerun(scope="app")


def use_folder(chosen: DatasetSpec) -> None:
    """Use a folder at once if it is imported already; otherwise import it as a background job."""
    try:
        imported = folder.is_imported(chosen)
    except DatasetError as e:
        st.error(plain(e))
        return
    if imported:
        adopt(chosen)
    else:
        run = jobs.submit("import", {"dataset": chosen.to_dict()}, name=chosen.name)
        st.session_state["import_run"] = str(run.path)
        st.rerun(scope="app")  # the sidebar and the import panel then follow the job


def choose_folder() -> None:
    path = st.text_input("Folder with <class>/ subfolders (optionally under train/ val/ test/)",
                         value=spec.path if spec.source == "folder" else "", key="folder_path")
    path = path.strip()
    options = folder_options(key="folder")
    if st.button("Use this folder", disabled=not path):
        use_folder(DatasetSpec(source="folder", name=Path(path).name, path=path, **options))


def choose_zip() -> None:
    upload = st.file_uploader("Zip of <class>/ folders of images", type=["zip"], key="zip_upload")
    if upload is None:
        return
    options = folder_options(key="zip")
    if not st.button("Use this zip"):
        return
    try:
        extracted = uploads.extract_dataset_zip(upload.getvalue())
    except DatasetError as e:
        st.error(plain(e))
        return
    use_folder(DatasetSpec(source="folder", name=upload.name.removesuffix(".zip"), path=str(extracted), **options))


def import_progress() -> None:
    """The running import, polled until it ends; then its dataset becomes the current one."""
    run_path = st.session_state.get("import_run")
    if not run_path:
        return
    run = Run(run_path)
    status = run.status()

    @st.fragment(run_every=2 if status["state"] in ("queued", "running") else None)
    def panel():
        state = run_status(run).get("state")
        if state == "done":
            del st.session_state["import_run"]
            adopt(DatasetSpec.from_dict(run.config["dataset"]))
        elif state != status["state"]:
            st.rerun()  # the whole page: the buttons below fit the new state

    st.markdown(f"**Importing** {plain(run.config['dataset']['path'])}")
    panel()
    run_actions(run, status, key="import")


source_names = list(SOURCES)
source = st.radio("Source", source_names, format_func=SOURCES.get, horizontal=True, key="data_source",
                  index=source_names.index(spec.source) if spec.source in source_names else 0)
{"medmnist": choose_medmnist, "folder": choose_folder, "zip": choose_zip}[source]()
import_progress()
if error := st.session_state.pop("folder_error", None):
    st.error(plain(error))

dataset = current_dataset()
spec = dataset.spec
train = dataset.train
class_names = [short(c) for c in dataset.class_names]

st.header(plain(spec.label))
c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", sum(len(s) for s in dataset.splits.values()))
c2.metric("Classes", len(class_names))
c3.metric("Image size", f"{train.size}×{train.size}")
c4.metric("Channels", f"{train.channels} ({'grayscale' if train.channels == 1 else 'RGB'})")
skipped = uploads.skipped_members(spec.path) + \
    [line.removeprefix("skipped ") for line in dataset.report if line.startswith("skipped")]
if skipped:
    more = f"\n- … and {len(skipped) - 50} more" if len(skipped) > 50 else ""
    st.warning(f"{len(skipped)} files were skipped:\n\n" + "\n".join(f"- {plain(s)}" for s in skipped[:50]) + more)
for line in dataset.report:
    if not line.startswith("skipped"):
        (st.warning if line.startswith("warning") else st.info)(plain(line))

st.subheader("Class counts per split")
counts = pd.DataFrame({split: images.class_counts() for split, images in dataset.splits.items()}, index=class_names)
long = counts.reset_index(names="class").melt(id_vars="class", var_name="split", value_name="images")
chart = px.bar(long, x="class", y="images", color="split", barmode="group", text="images",
               category_orders={"class": class_names, "split": list(dataset.splits)})
chart.update_layout(height=380, margin=dict(t=10, b=10), legend_title_text="")
st.plotly_chart(chart, width="stretch")
ratio = counts["train"].max() / max(counts["train"].min(), 1)
st.caption(f"Largest training class is {ratio:.1f}× the smallest.")
with st.expander("Split sizes per class"):
    st.dataframe(counts.assign(total=counts.sum(axis=1)), width="stretch")

st.subheader("Training fraction")
fraction = st.slider("Share of the training split used for training (the low-data regime)", 0.01, 1.0,
                     st.session_state.get("train_fraction", 1.0), 0.01)
st.session_state["train_fraction"] = fraction  # remembered for the other pages
subset = train.stratified_subset(fraction, seed=0)
st.dataframe(pd.DataFrame({"full train": train.class_counts(), f"{fraction:.0%}": subset.class_counts()},
                          index=class_names).T, width="stretch")

st.subheader("Samples per class")
rng = np.random.default_rng(0)
cols = st.columns(2)
for label, name in enumerate(dataset.class_names):
    idx = np.flatnonzero(train.labels == label)
    pick = rng.choice(idx, size=min(8, len(idx)), replace=False)
    with cols[label % 2]:
        show_grid(train.images[pick], ncol=8, caption=f"{plain(name)} ({len(idx)} train images)")

st.subheader("Augmentation preview")
st.caption("The same images before and after a standard augmentation pipeline (what the study's "
           "“standard augmentation” arm trains on).")
if spec.name in NOT_MIRRORED:
    st.caption(NOT_MIRRORED[spec.name])
names = st.multiselect("Transforms (applied in this order)", list(AUGMENTATIONS), default=default_pipeline(spec.name),
                       format_func=lambda n: f"{n} — {AUGMENTATIONS[n]}",
                       key=f"aug_names_{spec.name}")  # another dataset starts from its own default
c1, c2, c3 = st.columns(3)
strength = c1.slider("Strength", 0.1, 1.0, 1.0, 0.1, key="aug_strength")
p = c2.slider("Probability per transform", 0.0, 1.0, 0.5, 0.05, key="aug_p")
seed = c3.number_input("Seed", 0, 10_000, 0, key="aug_seed")
preview = train.stratified_subset(min(1.0, 16 / len(train)), seed=1).images[:16]
augmented = apply(build_pipeline(names, strength, p), preview, seed=int(seed))
c1, c2 = st.columns(2)
with c1:
    show_grid(preview, ncol=8, caption="before")
with c2:
    show_grid(augmented, ncol=8, caption="after: " + (" → ".join(names) or "no transform"))
