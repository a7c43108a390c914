"""Train GAN page: pick a GAN, a preset and options; launch; watch losses and samples live."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from data.config import ConfigError
from gans import REGISTRY, TITLES
from gans.blocks import IMAGE_SIZES
from gans.config import GanConfig, make_config
from lab import jobs
from pages.common import (any_active, current_dataset, current_spec, ensure_app_navigation, format_seconds, option_input,
                          pick_run, run_status_panel, runs_table)

ensure_app_navigation()
st.title("Train a GAN")
spec = current_spec()
data = current_dataset()
st.caption(f"Dataset: **{spec.label}** · {len(data.train)} training images · {len(data.class_names)} classes "
           f"· {data.train.channels} channel(s). Change it on the Data page.")
if spec.size not in IMAGE_SIZES:
    st.error(f"GANs here work at {', '.join(map(str, IMAGE_SIZES))} px; {spec.label} is {spec.size} px. "
             "Pick another working size on the Data page.")
    st.stop()

OPTIONS = {option.name: option for option in GanConfig.options()}
CHOSEN_ABOVE = ("gan", "preset", "per_class")  # the rest of the options sit in the Options popover


def described(name: str) -> dict:
    """The label and help of a GanConfig option, for a widget built by hand."""
    return {"label": OPTIONS[name].metadata["label"], "help": OPTIONS[name].metadata["help"]}


with st.expander("New training run", expanded=True):
    c1, c2, c3 = st.columns(3)
    gan = c1.selectbox(options=list(REGISTRY), format_func=TITLES.get, **described("gan"))
    preset = c2.radio(options=list(REGISTRY[gan].presets), horizontal=True, **described("preset"))
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
        st.error(f"Fix this option first: {e}")
    if st.button("Launch training", type="primary", disabled=config is None):
        run = jobs.submit("gan", config.to_dict(), name=f"{gan}-{spec.name}")
        st.session_state["gan_run"] = run.id
        st.success(f"Queued {run.id}")

st.subheader("GAN runs")
runs = runs_table("gan")
if not runs:
    st.stop()
run = pick_run(runs, "Run", "gan_run")


def loss_figure(events: list[dict]) -> go.Figure:
    fig = go.Figure()
    for name in ("loss_d", "loss_g"):
        fig.add_scatter(x=[e["done"] for e in events], y=[e.get(name) for e in events], mode="lines",
                        name={"loss_d": "discriminator", "loss_g": "generator"}[name])
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="generator step",
                      yaxis_title="loss", title="Losses")
    return fig


@st.fragment(run_every=2 if any_active([run]) else None)
def live_view():
    status = run_status_panel(run, key="gan")
    settings = run.config
    events = run.events("progress")
    left, right = st.columns([3, 2])
    if events:
        left.plotly_chart(loss_figure(events), width="stretch")
        left.caption(f"{events[-1]['done']} steps in {format_seconds(events[-1].get('seconds', 0))}")
    else:
        left.info("Waiting for the first losses…")
    latest = run.samples / "latest.png"
    if latest.exists():
        labelled = settings.get("per_class") or getattr(REGISTRY.get(settings.get("gan")), "conditional", False)
        right.image(latest.read_bytes(), caption=f"Fixed noise, {'one row per class' if labelled else 'random draws'}",
                    width="stretch")
    if status.get("state") == "done":
        st.success("Finished: open it on the Samples page to draw, compare and export images.")
    with st.expander("Config"):
        st.json(settings)


live_view()
