"""A GAN step by step: a small DCGAN on a real 28-px dataset, one training step at a time, showing what
the two networks believe and how hard each one is pushed (in the spirit of GAN Lab)."""
from __future__ import annotations

import pandas as pd
import streamlit as st
from plotly.subplots import make_subplots

from lab.teaching import GanStepper
from pages.common import current_dataset, current_spec, ensure_app_navigation, plain, remember, show_grid

ensure_app_navigation()
st.title("A GAN, step by step")
st.markdown("A **generator** G turns random noise z into images; a **discriminator** D gives each image the "
            "probability that it is real. Each step, D learns to say *real* to a batch of training images (D(x) "
            "up) and *fake* to a batch of G's images (D(G(z)) down); then G learns to make D say *real* to its "
            "images (D(G(z)) up). Watch the two pull against each other.")

spec = current_spec()
if spec.size != 28:
    st.info(f"This view trains on 28-px images; {plain(spec.label)} is {spec.size} px."
            " Pick a 28-px dataset on the Data page.")
    st.stop()
dataset = current_dataset()
names = dataset.class_names
c1, c2 = st.columns([3, 1])
label = c1.selectbox("Train on", [-1, *range(len(names))], format_func=lambda k: "all classes" if k < 0 else names[k],
                     key=remember("steps_class", -1, [-1, *range(len(names))]))
batch = c2.select_slider("Batch", [8, 16, 32, 64], key=remember("steps_batch", 32))

wanted = (spec, label, batch)
if st.session_state.get("stepper_for") != wanted:
    images = dataset.train if label < 0 else dataset.train.of_class(label)
    st.session_state["stepper"] = GanStepper(images, batch=batch)
    st.session_state["stepper_for"] = wanted
stepper: GanStepper = st.session_state["stepper"]


def beliefs_figure(history: pd.DataFrame):
    """D(x) and D(G(z)) above, the two gradient sizes below, over the steps so far."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=("what D believes", "gradient size"))
    figure.add_scatter(x=history.step, y=history.d_real, name="D(x): real called real", row=1, col=1)
    figure.add_scatter(x=history.step, y=history.d_fake, name="D(G(z)): fake called real", row=1, col=1)
    figure.add_scatter(x=history.step, y=history.grad_d, name="|∇D|", row=2, col=1)
    figure.add_scatter(x=history.step, y=history.grad_g, name="|∇G|", row=2, col=1)
    figure.update_yaxes(range=[0, 1], title_text="probability", row=1, col=1)
    round_numbers = [m * 10.0 ** e for e in range(-3, 5) for m in (1, 2, 5)]  # plotly's own labels 20 as "2"
    figure.update_yaxes(type="log", tickvals=round_numbers, title_text="L2 norm", row=2, col=1)
    figure.update_xaxes(title_text="step", row=2, col=1)
    figure.update_layout(height=460, margin={"t": 30, "b": 10}, legend={"orientation": "h", "y": -0.15})
    return figure


# A press reruns this part alone, not the page and sidebar around it: a class of students pressing at once
# shares one server (bench/step_view.py).
@st.fragment
def stepping(stepper: GanStepper) -> None:
    b1, b2, b3, b4 = st.columns(4)
    pressed = [b1.button("One step", type="primary", icon=":material/skip_next:"),
               b2.button("10 steps", icon=":material/fast_forward:"),
               b3.button("100 steps", icon=":material/double_arrow:")]
    steps = sum(n for n, hit in zip((1, 10, 100), pressed) if hit)
    if b4.button("Start over", icon=":material/restart_alt:"):
        st.session_state.pop("stepper_for")
        st.rerun()
    if steps:
        with st.spinner(f"{steps} step{'s' * (steps > 1)}…"):
            for _ in range(steps):
                stepper.step()

    left, right = st.columns([3, 2])
    with right:
        show_grid(stepper.samples(), ncol=4, min_width=360,
                  caption=f"G's images from the same 16 noise vectors, after {len(stepper.history)} "
                          f"step{'s' * (len(stepper.history) != 1)}")
    with left:
        if not stepper.history:
            st.info("Press **One step**: the first batch shows what two untrained networks make of each other.")
            return
        last = stepper.history[-1]
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("D(x)", f"{last.d_real:.2f}", help="mean probability D gives real images of being real")
        m2.metric("D(G(z))", f"{last.d_fake:.2f}", help="mean probability D gives G's images of being real")
        m3.metric("|∇D|", f"{last.grad_d:.2g}", help="size (L2 norm) of the discriminator's gradient this step")
        m4.metric("|∇G|", f"{last.grad_g:.2g}", help="size (L2 norm) of the generator's gradient this step")
        st.plotly_chart(beliefs_figure(pd.DataFrame([vars(r) for r in stepper.history])), width="stretch")
        st.caption("D(x) near 1 and D(G(z)) near 0: D is winning. Both near 0.5: D cannot tell, which is where a "
                   "good GAN heads (and where a collapsed one can hide). A very small |∇G| means G has stopped "
                   "learning.")


stepping(stepper)
