"""GAN Augmentation Lab: `streamlit run app.py`.

Navigation over the page scripts, and a sidebar panel with the jobs that are running or queued.
"""
import streamlit as st
import torch

from data.paths import runs_dir
from lab.engine import jobs
from lab.engine.executors import executor_summary
from lab.engine.manage import label
from pages.common import POLL_S, current_spec, fraction_done, plain, status_text

# One torch thread per script run: the server runs every session's script at once, and what a page computes
# itself is small (longer work runs as a job). Two threads made the step view's small GAN step 10-20x slower
# on a busy 2-core machine (bench/step_view.py, README).
torch.set_num_threads(1)
st.set_page_config(page_title="GAN Augmentation Lab", page_icon=":material/science:", layout="wide")

PAGES = {
    "Lab": [
        st.Page("pages/start.py", title="Start", icon=":material/home:", default=True),
        st.Page("pages/dataset.py", title="Data", icon=":material/dataset:"),
        st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:"),
    ],
    "Generate": [
        st.Page("pages/train_gan.py", title="Train GAN", icon=":material/model_training:"),
        st.Page("pages/samples.py", title="Samples", icon=":material/photo_library:"),
        st.Page("pages/singan.py", title="Single image", icon=":material/grain:"),
    ],
    "Evaluate": [
        st.Page("pages/quality.py", title="Quality", icon=":material/straighten:"),
        st.Page("pages/review.py", title="Review a set", icon=":material/rule:"),
        st.Page("pages/study.py", title="Augmentation study", icon=":material/balance:"),
    ],
    "Teach": [
        st.Page("pages/quiz.py", title="Real or synthetic?", icon=":material/quiz:"),
        st.Page("pages/gan_steps.py", title="GAN step by step", icon=":material/footprint:"),
    ],
}


def queue_order(run) -> tuple[int, int]:
    """Running jobs first, then the queued ones in the order they will start, then those waiting for another
    run to finish (jobs.submit(after=...))."""
    place = jobs.queue_position(run)
    if place is not None:
        return (1, place.position)
    return (0, 0) if run.state == "running" else (2, 0)


def job_panel(active: bool) -> None:
    """Running and queued jobs (not their child runs), re-read every POLL_S seconds while any is active;
    when the last one ends the whole page runs once more (its tables and results show the outcome,
    polling stops)."""

    @st.fragment(run_every=POLL_S if active else None)
    def panel():
        # top-level jobs only: a study's or seeds run's bar and message cover its child runs
        runs = sorted((run for run in jobs.active_runs() if not run.config.get("parent")), key=queue_order)
        if not runs:
            st.caption("No jobs running.")
            if active:
                st.rerun()
            return
        for run in runs:
            status = run.status()
            st.progress(fraction_done(status), text=f"{plain(label(run))}  \n{status_text(run, status)}")

    panel()


navigation = st.navigation(PAGES)
try:
    runs_dir()
except ValueError as e:  # LAB_RUNS_DIR names a file: no page could list or start a run
    st.error(str(e))
    st.stop()
with st.sidebar:
    st.markdown(f"**Dataset:** {plain(current_spec().label)}")
    st.markdown("**Jobs**")
    st.caption(executor_summary())
    jobs.schedule()  # starts anything left queued (for example after a restart)
    job_panel(active=bool(jobs.active_runs()))
with st.spinner(f"Opening {navigation.title}…"):  # the page's first load (torch, the dataset) takes seconds
    navigation.run()
