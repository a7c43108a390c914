"""GAN Augmentation Lab: `streamlit run app.py`.

Navigation over the page scripts, and a sidebar panel with the jobs that are running or queued.
"""
import streamlit as st

from lab import jobs
from pages.common import STATE_ICONS, current_spec, format_seconds

st.set_page_config(page_title="GAN Augmentation Lab", page_icon=":material/science:", layout="wide")

PAGES = {
    "Data": [st.Page("pages/dataset.py", title="Data", icon=":material/dataset:", default=True)],
    "Generate": [
        st.Page("pages/train_gan.py", title="Train GAN", icon=":material/model_training:"),
        st.Page("pages/samples.py", title="Samples", icon=":material/photo_library:"),
        st.Page("pages/singan.py", title="SinGAN", icon=":material/grain:"),
    ],
    "Evaluate": [
        st.Page("pages/quality.py", title="Quality", icon=":material/straighten:"),
        st.Page("pages/study.py", title="Augmentation study", icon=":material/balance:"),
    ],
}


def job_panel(poll: bool) -> None:
    """Running and queued jobs; polls every 2 s only while something is active."""

    @st.fragment(run_every=2 if poll else None)
    def panel():
        active = jobs.active_runs()
        if not active:
            st.caption("No jobs running.")
            if st.session_state.pop("jobs_were_active", False):
                st.rerun()  # a job just ended: refresh the page once, which stops the polling
            return
        st.session_state["jobs_were_active"] = True
        for run in active:
            status = run.status()
            progress = status.get("progress") or {}
            done, total = progress.get("done", 0), max(progress.get("total", 1), 1)
            eta = progress.get("eta_s")
            label = f"{STATE_ICONS.get(status.get('state'), '')} {run.kind} · {run.id[-13:]}"
            if eta is not None and status.get("state") == "running":
                label += f" · {format_seconds(eta)} left"
            st.progress(min(done / total, 1.0), text=label)

    panel()


navigation = st.navigation(PAGES)
with st.sidebar:
    st.markdown(f"**Dataset:** {current_spec().label}")
    st.markdown("**Jobs**")
    jobs.schedule()  # starts anything left queued (for example after a restart)
    job_panel(poll=bool(jobs.active_runs()))
navigation.run()
