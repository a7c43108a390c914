"""Train GAN page: pick a GAN, a preset and options; launch; watch losses and samples live."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from data.config import ConfigError
from gans import REGISTRY, TITLES
from gans.blocks import IMAGE_SIZES
from gans.config import GanConfig, make_config
from lab.engine.runs import ACTIVE_STATES, Run
from pages.common import (class_names_of, current_dataset, current_spec, ensure_app_navigation, estimate_caption,
                          format_seconds, launch, option_input, plain, remember, run_status, runs_section,
                          show_labelled_grid)

ensure_app_navigation()
st.title("Train a GAN")
spec = current_spec()
data = current_dataset()
st.caption(f"Dataset: **{plain(spec.label)}** · {len(data.train)} training images · {len(data.class_names)} classes "
           f"· {data.train.channels} channel(s). Change it on the Data page.")
if spec.size not in IMAGE_SIZES:
    st.error(f"GANs here work at {', '.join(map(str, IMAGE_SIZES))} px; {plain(spec.label)} is {spec.size} px. "
             "Pick another working size on the Data page.")
    st.stop()

OPTIONS = {option.name: option for option in GanConfig.options()}
CHOSEN_ABOVE = ("gan", "preset", "per_class")  # the rest of the options sit in the Options popover


def described(name: str) -> dict:
    """The label and help of a GanConfig option, for a widget built by hand."""
    return {"label": OPTIONS[name].metadata["label"], "help": OPTIONS[name].metadata["help"]}


with st.expander("New training run", expanded=True):
    c1, c2, c3 = st.columns(3)
    gan = c1.selectbox(options=list(REGISTRY), format_func=TITLES.get,
                       key=remember("gan_kind", "dcgan", list(REGISTRY)), **described("gan"))
    presets = list(REGISTRY[gan].presets)
    preset = c2.radio(options=presets, horizontal=True, key=remember(f"gan_preset_{gan}", presets[0], presets),
                      **described("preset"))
    conditional = REGISTRY[gan].conditional
    per_class = c3.checkbox(value=True, disabled=conditional, **described("per_class"))
    base = make_config(gan, preset)
    values = {}
    with st.popover("Options"):
        columns = st.columns(2)
        shown = [option for name, option in OPTIONS.items() if name not in CHOSEN_ABOVE]
        for i, option in enumerate(shown):
            values[option.name] = option_input(option, getattr(base, option.name), columns[i % 2])
    try:
        config = make_config(gan, preset, dataset=spec.to_dict(), per_class=per_class and not conditional, **values)
    except ConfigError as e:
        config = None
        st.error(f"Fix this option first: {plain(e)}")
    if config is not None:
        estimate_caption("gan", config.to_dict())
    if st.button("Launch training", type="primary", disabled=config is None):
        launch("gan", config.to_dict(), name=f"{gan}-{spec.name}", remembered="gan_run")


def loss_figure(events: list[dict]) -> go.Figure:
    fig = go.Figure()
    for name in ("loss_d", "loss_g"):
        fig.add_scatter(x=[e["done"] for e in events], y=[e.get(name) for e in events], mode="lines",
                        name={"loss_d": "discriminator", "loss_g": "generator"}[name])
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="generator step",
                      yaxis_title="loss", title="Losses")
    return fig


def live_view(run: Run) -> None:
    status = run_status(run)
    settings = run.config
    events = run.events("progress")
    left, right = st.columns([3, 2])
    if events:
        left.plotly_chart(loss_figure(events), width="stretch")
        left.caption(f"{events[-1]['done']} steps in {format_seconds(events[-1].get('seconds', 0))}")
    elif status.get("state") in ACTIVE_STATES:
        left.info("Waiting for the first losses…")
    latest = run.samples / "latest.png"
    if latest.exists():
        grid = np.asarray(Image.open(latest))
        labelled = settings.get("per_class") or getattr(REGISTRY.get(settings.get("gan")), "conditional", False)
        with right:
            if labelled:
                show_labelled_grid(grid, class_names_of(settings["dataset"]), caption="Fixed noise, one row per class")
            else:
                st.image(grid, caption="Fixed noise, random draws", width="stretch")
    if status.get("state") == "done":
        st.success("Finished: open it on the Samples page to draw, compare and export images.")
    with st.expander("Config"):
        st.json(settings)


st.subheader("GAN runs")
runs_section("gan", "gan_run", live_view)
