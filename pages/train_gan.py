"""Train GAN page: pick a GAN, a preset and options; launch; watch losses and samples live."""
from __future__ import annotations

from dataclasses import fields

import plotly.graph_objects as go
import streamlit as st

from gans import REGISTRY, TITLES
from gans.blocks import IMAGE_SIZES
from gans.config import PRESETS, GanConfig, make_config
from lab import jobs
from pages.common import (any_active, current_dataset, current_spec, ensure_app_navigation, format_seconds, pick_run,
                          run_status_panel, runs_table)

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

with st.expander("New training run", expanded=True):
    c1, c2, c3 = st.columns(3)
    gan = c1.selectbox("GAN", list(REGISTRY), format_func=TITLES.get)
    preset = c2.radio("Preset", list(PRESETS), horizontal=True,
                      help="quick: small networks, recognizable images in minutes on a CPU. "
                           "paper: the papers' widths, batch sizes and optimizers.")
    conditional = REGISTRY[gan].conditional
    per_class = c3.checkbox("One generator per class", value=True, disabled=conditional,
                            help="ACGAN is conditional by design. Unconditional GANs trained per class "
                                 "produce labelled images (needed for augmentation).")
    base = make_config(gan, preset)
    with st.popover("Options"):
        o1, o2 = st.columns(2)
        latent = o1.number_input("Latent size", 2, 512, base.latent)
        width = o2.number_input("Base width", 4, 256, base.width)
        batch = o1.number_input("Batch size" + (" (per class)" if per_class and not conditional else ""),
                                2, 1024, base.batch_size)
        steps = o2.number_input("Generator steps", 1, 1_000_000, base.steps, 100)
        lr_g = o1.number_input("Learning rate G", 1e-6, 1e-1, base.lr_g, format="%.5f")
        lr_d = o2.number_input("Learning rate D (≠ G: TTUR)", 1e-6, 1e-1, base.lr_d, format="%.5f")
        beta1 = o1.number_input("Adam β1", 0.0, 0.999, base.beta1)
        beta2 = o2.number_input("Adam β2", 0.0, 0.9999, base.beta2, format="%.4f")
        smoothing = o1.number_input("One-sided label smoothing", 0.0, 0.5, base.label_smoothing,
                                    help="Real targets 1 − s (DCGAN, ACGAN).")
        d_steps = o2.number_input("D steps per G step", 1, 10, base.d_steps)
        fraction = o1.number_input("Training fraction", 0.01, 1.0, base.train_fraction, 0.05)
        seed = o2.number_input("Seed", 0, 2 ** 31, base.seed)
        export = o1.number_input("Images per class exported at the end", 0, 10_000, base.export_per_class)
        device = o2.selectbox("Device", ["auto", "cpu", "cuda"])
    config = make_config(gan, preset, dataset=spec.to_dict(), per_class=per_class and not conditional,
                         latent=int(latent), width=int(width), batch_size=int(batch), steps=int(steps),
                         lr_g=float(lr_g), lr_d=float(lr_d), beta1=float(beta1), beta2=float(beta2),
                         label_smoothing=float(smoothing), d_steps=int(d_steps), train_fraction=float(fraction),
                         seed=int(seed), export_per_class=int(export), device=device)
    if st.button("Launch training", type="primary"):
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
    config = GanConfig.from_dict(run.config)
    events = run.events("progress")
    left, right = st.columns([3, 2])
    if events:
        left.plotly_chart(loss_figure(events), width="stretch")
        left.caption(f"{events[-1]['done']} steps in {format_seconds(events[-1].get('seconds', 0))}")
    else:
        left.info("Waiting for the first losses…")
    latest = run.samples / "latest.png"
    if latest.exists():
        rows = "one row per class" if config.per_class or REGISTRY[config.gan].conditional else "random draws"
        right.image(latest.read_bytes(), caption=f"Fixed noise, {rows}", width="stretch")
    if status.get("state") == "done":
        st.success("Finished: open it on the Samples page to draw, compare and export images.")
    with st.expander("Config"):
        st.json({f.name: getattr(config, f.name) for f in fields(config)})


live_view()
