"""Single-image page: SinGAN (trained) or GPNN (patch nearest neighbours, no training) on one image (dataset,
folder or upload) or on seeds per class; watch it; compare both on the same image; explore SinGAN's samples."""
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from data.files import atomic_write_bytes, read_json
from data.folder import images_in
from data.grid import make_grid
from data.imageset import from_tensor
from data.medmnist_source import DatasetError
from data.paths import cache_dir
from data.synthetic import to_folder_zip
from gans import SINGLE_IMAGE, gpnn
from gans.singan import SinGAN, SinGanSettings, load_image, pyramid_sizes
from gans.config import make_config
from gans.singan_train import PRESETS, SinGanConfig
from gans.single_image import load_variations
from lab.engine.children import read_children
from lab.engine.manage import label
from lab.engine.runs import Run
from pages.common import (PROGRESS_COLUMN, class_names_of, current_dataset, current_spec, ensure_app_navigation,
                          estimate_caption, launch,
                          download, plain, remember, run_rows, run_status, runs_section, show_grid, show_labelled_grid,
                          top_level_runs)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
LOSSES = ["critic", "adversarial", "rec_rmse"]
PRESET_HELP = next(f.metadata["help"] for f in SinGanConfig.options() if f.name == "preset")
GPNN_PRESET_HELP = next(f.metadata["help"] for f in gpnn.GpnnConfig.options() if f.name == "preset")
GENERATOR_HELP = {"singan": "SinGAN: learns the image (minutes per image on a CPU)",
                  "gpnn": "GPNN: no training, rebuilds the image from its own patches (seconds)"}
GPNN_NOTE = ("GPNN copies real patches by construction: its variations are made of pieces of the real image. "
             "Its sets go through the memorization check (Quality page) like any other set.")
SIFID_HELP = "score the variations' SIFID against the image (loads the Inception network: a few seconds more)"

ensure_app_navigation()
st.title("Single image: SinGAN and GPNN")
st.caption("One real image, many variations. SinGAN learns it: a pyramid of small GANs trained coarse to fine; "
           "several levels train together (ConSinGAN), so a 128-px scan takes minutes on a CPU. GPNN learns "
           "nothing: it rebuilds the image from its own patches, coarse to fine, in seconds.")


def upload_path(upload) -> Path:
    """Keep an upload under the cache so the job's config can name it; refuse what does not decode."""
    data = upload.getvalue()
    suffix = Path(upload.name).suffix.lower() if Path(upload.name).suffix.lower() in IMAGE_SUFFIXES else ".img"
    path = cache_dir() / "singan_uploads" / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    if not path.exists():
        atomic_write_bytes(path, data)
    try:
        load_image(path)
    except ValueError as e:
        path.unlink(missing_ok=True)
        raise ValueError(str(e).replace(path.name, upload.name)) from None
    return path


def choose_image() -> tuple[dict, np.ndarray] | None:
    """The image to train on, as config fields plus the pixels for a preview."""
    source = st.radio("Image from", ["Current dataset", "Image folder", "Upload"], horizontal=True)
    if source == "Current dataset":
        dataset = current_dataset()
        train = dataset.train
        c1, c2 = st.columns(2)
        label = c1.selectbox("Class", range(train.num_classes), format_func=lambda k: train.class_names[k])
        members = np.flatnonzero(train.labels == label)
        pick = c2.number_input(f"Image (of {len(members)})", 0, max(len(members) - 1, 0), 0)
        index = int(members[pick])
        return {"dataset": current_spec().to_dict(), "image_index": index}, train.images[index]
    if source == "Image folder":
        folder = st.text_input("Folder path", placeholder="/data/OCT2017/train/CNV")
        if not folder:
            return None
        try:
            files = images_in(folder)  # that folder's own images only: never a walk through a whole disk
        except DatasetError as e:
            st.error(plain(e))
            return None
        if not files:
            st.warning(f"No images in {plain(folder)} (subfolders are not searched)")
            return None
        path = st.selectbox("Image", files, format_func=lambda p: p.name)
    else:
        upload = st.file_uploader("An image (for example a full-resolution OCT B-scan)",
                                  type=[s.strip(".") for s in IMAGE_SUFFIXES])
        if upload is None:
            return None
        try:
            path = upload_path(upload)
        except ValueError as e:
            st.error(plain(e))
            return None
    try:
        return {"image_path": str(path)}, load_image(path)
    except ValueError as e:
        st.error(plain(e))
        return None


def choose_generator(key: str) -> str:
    return st.radio("Generator", list(SINGLE_IMAGE), format_func=SINGLE_IMAGE.get, horizontal=True, key=key,
                    help=" · ".join(GENERATOR_HELP.values()))


def image_name(fields: dict) -> str:
    """A run name for the image of config `fields`: the file's name, else <dataset>-<index>."""
    return Path(fields.get("image_path") or "").stem or f"{fields['dataset']['name']}-{fields['image_index']}"


def train_one_image() -> None:
    chosen = choose_image()
    if chosen is None:
        return
    fields, image = chosen
    if choose_generator("one_generator") == "gpnn":
        gpnn_one_image(fields, image)
        return
    c1, c2, c3 = st.columns(3)
    long_side = max(image.shape[:2])
    preset = c1.selectbox("Preset", list(PRESETS), index=list(PRESETS).index("tiny" if long_side <= 32 else "quick"),
                          help=PRESET_HELP)
    default_side = SinGanSettings(**PRESETS[preset]).max_side
    max_side = c2.slider("Maximum size (long side, px)", 16, max(16, min(256, long_side)),
                         min(default_side, long_side), step=4)
    variations = c3.number_input("Variations", 1, 64, 8)
    sifid = st.checkbox("SIFID", value=True, help=SIFID_HELP, key="singan_sifid")
    config = make_config("singan", preset, max_side=max_side, variations=int(variations), mode="image", sifid=sifid,
                         **fields)
    sizes = pyramid_sizes(*image.shape[:2], min(max_side, long_side), config.model.min_side, config.model.stages)
    preview(image, sizes)
    estimate_caption("singan", config.to_dict())
    if st.button("Train SinGAN", type="primary"):
        launch("singan", config.to_dict(), name=image_name(fields), remembered="singan_run")


def preview(image: np.ndarray, sizes: list[tuple[int, int]]) -> None:
    st.image(image, caption=f"{image.shape[1]}×{image.shape[0]} px · levels: "
             + " → ".join(f"{w}×{h}" for h, w in sizes), width=min(512, max(256, image.shape[1])), clamp=True)


def gpnn_one_image(fields: dict, image: np.ndarray) -> None:
    st.info(GPNN_NOTE)
    c1, c2, c3 = st.columns(3)
    preset = c1.selectbox("Preset", list(gpnn.PRESETS), index=list(gpnn.PRESETS).index("quick"), key="gpnn_preset",
                          help=GPNN_PRESET_HELP)
    variations = c2.number_input("Variations", 1, 64, 8, key="gpnn_variations")
    sifid = c3.checkbox("SIFID", value=True, help=SIFID_HELP, key="gpnn_sifid")
    config = make_config("gpnn", preset, variations=int(variations), mode="image", sifid=sifid, **fields)
    preview(image, gpnn.pyramid_sizes(*image.shape[:2], config.model))
    estimate_caption("gpnn", config.to_dict())
    if st.button("Make GPNN variations", type="primary"):
        launch("gpnn", config.to_dict(), name=image_name(fields), remembered="singan_run")


def train_seeds() -> None:
    spec = current_spec()
    dataset = current_dataset()
    generator = choose_generator("seeds_generator")
    st.write(f"From **{plain(spec.label)}** ({dataset.train.num_classes} classes): k training images per class, "
             f"{'one SinGAN each' if generator == 'singan' else 'GPNN on each'}, m variations each, saved as a "
             "labelled synthetic set at the dataset's size.")
    c1, c2, c3 = st.columns(3)
    k = c1.number_input("Seeds per class (k)", 1, 20, key=remember("singan_seeds_k", 2))
    m = c2.number_input("Variations per seed (m)", 1, 200, key=remember("singan_seeds_m", 10))
    if generator == "gpnn":
        st.info(GPNN_NOTE)
        preset = c3.selectbox("Preset", list(gpnn.PRESETS), index=list(gpnn.PRESETS).index("quick"),
                              key="gpnn_seeds_preset", help=GPNN_PRESET_HELP)
        st.caption(f"{k * dataset.train.num_classes} seed images × {m} variations, no training: seconds per seed")
        config = make_config("gpnn", preset, mode="seeds", dataset=spec.to_dict(), seeds_per_class=int(k),
                                  variations=int(m))
        estimate_caption("gpnn", config.to_dict())
        if st.button("Make GPNN seeds per class", type="primary"):
            launch("gpnn", config.to_dict(), name=f"{spec.name}-seeds", remembered="singan_run")
        return
    preset = c3.selectbox("Preset", list(PRESETS), index=list(PRESETS).index("tiny" if spec.size <= 32 else "quick"),
                          key="seeds_preset", help=PRESET_HELP)
    strength = st.slider("Variation strength (× trained noise; 5-10 adds visible texture)", 1.0, 20.0, 1.0, step=1.0)
    per_seed = SinGanSettings(**PRESETS[preset])
    st.caption(f"{k * dataset.train.num_classes} SinGANs × {per_seed.stages} levels × "
               f"{per_seed.iters_coarse or per_seed.iters}→{per_seed.iters} iterations (coarse→fine)")
    config = make_config("singan", preset, mode="seeds", dataset=spec.to_dict(), seeds_per_class=int(k),
                         variations=int(m), noise_scale=strength, max_side=min(per_seed.max_side, spec.size))
    estimate_caption("singan", config.to_dict())
    if st.button("Train seeds per class", type="primary"):
        launch("singan", config.to_dict(), name=f"{spec.name}-seeds", remembered="singan_run")


@st.cache_resource(max_entries=4, show_spinner="Loading the generator…")
def load_model(path: str, mtime: float) -> SinGAN:
    return SinGAN.load(path)


def loss_chart(run: Run) -> None:
    events = run.events("progress")
    if not events:
        return
    frame = pd.DataFrame(events)
    columns = [c for c in LOSSES if c in frame]
    st.line_chart(frame.set_index("done")[columns], height=220)


def live_view(run: Run) -> None:
    run_status(run)
    if run.kind == "gpnn":
        return
    watched = run
    if run.config.get("mode") == "seeds":
        watched = seed_runs_view(run) or run
    stages = sorted(watched.samples.glob("*stage_*.png"), key=lambda p: p.stat().st_mtime)
    if stages:
        st.image(str(stages[-1]), caption=f"{plain(label(watched))} · {stages[-1].stem}: the real image (framed), "
                 "its reconstruction, 6 random samples", width=480)
    loss_chart(watched)


def seed_runs_view(run: Run) -> Run | None:
    """A seeds run's own runs (one per seed image) with their states; returns the one to watch."""
    children = list(read_children(run).values())
    if not children:
        return None
    with st.expander(f"{len(children)} seed runs", expanded=run.state in ("queued", "running")):
        st.dataframe(run_rows(children), hide_index=True, width="stretch", column_config={"progress": PROGRESS_COLUMN})
    running = [c for c in children if c.state == "running"]
    return running[0] if running else children[-1]


def results(run: Run) -> None:
    variations = load_variations(run.artifacts, run.kind, run.config.get("mode"))
    if run.kind == "gpnn":
        st.info(GPNN_NOTE)
    if run.config.get("mode") == "seeds":
        seeds_results(run, variations)
    else:
        image_results(run, variations)
        if run.kind == "singan":
            explore(run)
    download("Variations (image-folder zip)", lambda: to_folder_zip(variations), f"{run.id}.zip")


def seeds_results(run: Run, variations) -> None:
    st.subheader("Seeds and their variations")
    figures_table([run])
    names = class_names_of(run.config["dataset"])
    row_labels = [names[k] for k in (read_json(run.artifacts / "seeds.json", {}) or {}).get("labels", [])]
    with Image.open(run.samples / "seeds.png") as im:
        show_labelled_grid(np.asarray(im), row_labels, min_width=min(900, 3 * im.width),  # 28-px tiles: enlarged
                           caption="each row: the real seed (framed), then its variations")
    st.success(f"Synthetic set registered: {plain(run.artifacts / f'{run.kind}_variations.npz')} "
               f"({len(variations)} images) — pick it on the study page.")


def image_results(run: Run, variations) -> None:
    """The run's variations and figures; beside them the other generator's on the same image, or a button
    to make those."""
    other = "gpnn" if run.kind == "singan" else "singan"
    partner = partner_run(run, other)
    if partner is None:
        st.subheader("Variations")
        figures_table([run])
        show_grid(variations.images, ncol=4)
        if st.button(f"{SINGLE_IMAGE[other]} on this image too", help=GENERATOR_HELP[other], key="partner"):
            launch(other, partner_config(run, other, variations.images.shape[1:3]), name=image_name(run.config),
                   remembered="singan_run")
        return
    st.subheader(f"{SINGLE_IMAGE['singan']} and {SINGLE_IMAGE['gpnn']} on the same image")
    pair = sorted([run, partner], key=lambda r: list(SINGLE_IMAGE).index(r.kind))
    figures_table(pair)
    for column, shown in zip(st.columns(2), pair):
        with column:
            shown_set = load_variations(shown.artifacts, shown.kind, shown.config.get("mode"))
            show_grid(shown_set.images, ncol=4, caption=f"{SINGLE_IMAGE[shown.kind]} · {label(shown)}")


def partner_run(run: Run, kind: str) -> Run | None:
    """The newest finished image-mode `kind` run on the same image as `run`, if any."""
    def source(config: dict) -> tuple:
        return config.get("image_path"), config.get("dataset"), config.get("image_index")

    return next((other for other in top_level_runs(kind) if other.state == "done"
                 and other.config.get("mode") == "image" and source(other.config) == source(run.config)), None)


def partner_config(run: Run, kind: str, size: tuple[int, int]) -> dict:
    """The config of a `kind` run on the image of `run`, at the size of its variations, with as many of them
    (SinGAN: the tiny preset up to 32 px)."""
    fields = {name: run.config[name] for name in ("image_path", "dataset", "image_index", "variations", "sifid")
              if name in run.config}
    if kind == "gpnn":
        return make_config("gpnn", "quick", mode="image", max_side=max(size), **fields).to_dict()
    preset = "tiny" if max(size) <= 32 else "quick"
    return make_config("singan", preset, mode="image", max_side=max(size), **fields).to_dict()


def figures_table(runs: list[Run]) -> None:
    """Each run's SIFID and diversity (its summary.json) as one row of a table."""
    rows = []
    for run in runs:
        summary = read_json(run.artifacts / "summary.json", {}) or {}
        d = summary.get("diversity") or {}
        figures = {"SIFID ↓": summary.get("sifid"), "to its image (/255)": d.get("to_image"),
                   "between variations (/255)": d.get("between"), "real pairs (/255)": d.get("real_pairs"),
                   "pixel std ratio": d.get("pixel_std")}
        # n/a: a figure the run could not have (no same-class real images for a folder image, no SIFID for seeds)
        rows.append({"generator": SINGLE_IMAGE.get(run.kind, run.kind),
                     **{name: f"{value:.3g}" if isinstance(value, (int, float)) else "n/a"
                        for name, value in figures.items()}})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption("Mean absolute pixel differences in /255: of the variations to their image and to each other, next "
               "to two random real images of the same class (dataset images). Pixel std ratio: SinGAN's "
               "diversity, each pixel's std across the variations over the image's std. SIFID: Inception's early "
               "features, variations against the image (seeds runs: averages over the seeds, no SIFID).")


def explore(run: Run) -> None:
    """SinGAN samples drawn here: injection level, noise strength, aspect ratio, seed."""
    model = load_model(str(run.checkpoints / "singan.pt"), (run.checkpoints / "singan.pt").stat().st_mtime)
    levels = len(model.sizes)
    c1, c2 = st.columns(2)
    stage = c1.slider("Injection level (0 = from noise; higher keeps more of the real layout)", 0, levels - 1, 0)
    strength = c2.slider("Variation strength (× trained noise)", 1.0, 20.0, 1.0, step=1.0)
    c1, c2 = st.columns(2)
    width = c1.slider("Width factor (other aspect ratios)", 0.5, 2.0, 1.0, step=0.25)
    seed = c2.number_input("Sample seed", 0, 10_000, 0)
    samples = from_tensor(model.sample(8, seed=int(seed), scale=(1.0, width), inject_stage=stage,
                                       noise_scale=strength))
    st.image(make_grid(samples, ncol=4), caption=f"injection at level {stage}, strength ×{strength:g}, "
             f"width ×{width}", clamp=True)
    download("Generator (singan.pt)", (run.checkpoints / "singan.pt").read_bytes, f"{run.id}-singan.pt")


one, seeds = st.tabs(["One image", "Seeds per class"])
with one:
    train_one_image()
with seeds:
    train_seeds()

st.header("Runs")
picked = runs_section("singan", "singan_run", live_view, find=lambda: sorted(
    top_level_runs("singan") + top_level_runs("gpnn"), key=lambda r: r.id, reverse=True))
if picked is not None and picked.state == "done":
    results(picked)
