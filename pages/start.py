"""Start page: what the lab does, the current dataset, what has been made so far, and what to do next."""
from __future__ import annotations

import streamlit as st

from lab.demo import demo_status, prepare_demo
from lab.engine.manage import label
from lab.engine.runs import ACTIVE_STATES, Run, list_runs
from lab.sets import list_sets
from pages.common import POLL_S, current_spec, ensure_app_navigation, plain

DEMO_PAGES = {"single_image": "pages/singan.py", "samples": "pages/samples.py", "quiz": "pages/quiz.py",
              "quality": "pages/quality.py", "gan_steps": "pages/gan_steps.py"}
DEMO_ICONS = {"ready": ":material/check_circle:", "waiting": ":material/hourglass_top:", "failed": ":material/error:"}

ensure_app_navigation()
st.title("GAN Augmentation Lab")
st.markdown("Do synthetic images make a medical image classifier better? Find out in three steps:")

steps = st.columns(3)
with steps[0].container(border=True):
    st.markdown("**1 · Pick a dataset**")
    st.caption("MedMNIST, an image folder or a zip: class counts, samples, the low-data regime, augmentation.")
    st.page_link("pages/dataset.py", label="Data", icon=":material/dataset:")
with steps[1].container(border=True):
    st.markdown("**2 · Make synthetic images**")
    st.caption("Train DCGAN, WGAN-GP, ACGAN or SNGAN, or vary single images with SinGAN or GPNN; watch them "
               "learn; export sets.")
    st.page_link("pages/train_gan.py", label="Train GAN", icon=":material/model_training:")
    st.page_link("pages/singan.py", label="Single image (SinGAN, GPNN)", icon=":material/grain:")
with steps[2].container(border=True):
    st.markdown("**3 · Judge them**")
    st.caption("Score image quality against the nearest real image, then retrain a classifier with and "
               "without them: same budget, several seeds, an honest verdict.")
    st.page_link("pages/quality.py", label="Quality", icon=":material/straighten:")
    st.page_link("pages/study.py", label="Augmentation study", icon=":material/balance:")



def demo_panel(waiting: bool) -> None:
    """Page by page, what the demo has made ready; re-read every POLL_S seconds while a page waits, and the
    whole page runs once more when the last one is ready."""

    @st.fragment(run_every=POLL_S if waiting else None)
    def panel():
        try:
            pages = demo_status()
        except ValueError as e:
            st.error(plain(e))
            return
        if pages is None:
            return
        for page in pages:
            line = st.columns([1, 3])
            if page.state == "ready":
                line[0].page_link(DEMO_PAGES[page.page], label=page.title, icon=DEMO_ICONS["ready"])
            else:
                line[0].markdown(f"{DEMO_ICONS[page.state]} **{plain(page.title)}**")
            line[1].markdown(f"{page.state}: {plain(page.detail)}")
        if waiting and not any(page.state == "waiting" for page in pages):
            st.rerun()

    panel()


st.subheader("A demo in one click")
st.caption("For a class: GPNN variations of the four sample OCT scans (seconds), a DCGAN quick on DermaMNIST 28 px "
           "(a few minutes on a CPU) and a score of its images, queued as jobs: closing the browser stops nothing, "
           "and pressing again queues nothing new while they run or once they are done.")
if st.button("Prepare a demo", icon=":material/auto_awesome:"):
    try:
        prepare_demo()
    except (ValueError, OSError) as e:
        st.error(plain(e))
try:
    demo_waiting = any(page.state == "waiting" for page in demo_status() or [])
except ValueError:
    demo_waiting = False
demo_panel(demo_waiting)

spec = current_spec()
runs = [run for run in list_runs() if not run.config.get("parent")]


def made(kind: str) -> list[Run]:
    return [run for run in runs if run.kind == kind]


def finished(kind: str) -> list[Run]:
    return [run for run in made(kind) if run.state == "done"]


sets = [s for s in list_sets()
        if not isinstance(s.meta.get("dataset"), dict) or s.meta["dataset"].get("name") == spec.name]
active = [run for run in runs if run.state in ACTIVE_STATES]

st.subheader("Where you are")
st.markdown(f"Dataset: **{plain(spec.label)}** (change it on the Data page)")
c1, c2, c3, c4 = st.columns(4)
c1.metric("GAN runs done", len(finished("gan")), help=f"{len(made('gan'))} in all")
c2.metric("Single-image runs done", len(finished("singan")) + len(finished("gpnn")),
          help=f"SinGAN {len(made('singan'))}, GPNN {len(made('gpnn'))} in all")
c3.metric("Synthetic sets", len(sets), help=f"sets made from {plain(spec.name)}")
c4.metric("Studies done", len(finished("study")), help=f"{len(made('study'))} in all")


def next_action() -> tuple[str, str, str]:
    """(page, button label, why) of the next sensible step, from what exists."""
    if active:
        first = next((run for run in active if run.state == "running"), active[-1])
        return ("pages/runs.py", "Follow the running jobs",
                f"{plain(label(first))} is {first.state}; the sidebar shows its progress.")
    if not finished("gan") and not finished("singan") and not finished("gpnn"):
        return ("pages/train_gan.py", "Train a first GAN",
                f"Nothing has been generated yet: a quick DCGAN on {plain(spec.label)} takes a few minutes on a CPU.")
    if not sets:
        return ("pages/samples.py", "Export a synthetic set",
                "Your generators have not made a set for this dataset yet: draw one on the Samples page.")
    if not finished("score"):
        return ("pages/quality.py", "Score your synthetic sets",
                f"{len(sets)} set(s) wait for a verdict on their image quality.")
    if not finished("study"):
        return ("pages/study.py", "Run an augmentation study",
                "Does a set help the classifier? Train it with and without the synthetic images.")
    return ("pages/runs.py", "Compare your runs",
            "Studies are done: compare GAN curves and per-class recall side by side, tag what is worth keeping.")


page, action, why = next_action()
st.subheader("Next")
st.info(why, icon=":material/lightbulb:")
st.page_link(page, label=action, icon=":material/arrow_forward:")

st.subheader("Teaching")
t1, t2 = st.columns(2)
t1.page_link("pages/quiz.py", label="Real or synthetic? A quiz from your data and a set", icon=":material/quiz:")
t2.page_link("pages/gan_steps.py", label="A GAN step by step: D(x), D(G(z)) and the gradients",
             icon=":material/footprint:")
