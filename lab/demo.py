"""A demo in one click: the runs that give the lab's pages something to show, queued as ordinary jobs.

`prepare_demo` queues GPNN variations of the sample OCT scans (seconds each), a DCGAN quick on the default
dataset and a score of the DCGAN's set, which the queue starts only once the DCGAN is done
(`jobs.submit(after=...)`): nothing waits in a browser, so closing it stops nothing. The runs of the
last demo are named in the runs folder's `demo.json`; pressing again while they run or after they are
done queues nothing, and resumes a piece that failed or was cancelled. `demo_status` says, page by page,
whether it is ready or about how long it still needs.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from data.datasets import DatasetSpec
from data.files import atomic_write_json
from data.paths import data_dir, runs_dir
from gans.config import make_config
from lab.engine import eta, jobs
from lab.engine.runs import ACTIVE_STATES, Run, RunFileError, read_object
from metrics.scoring import ScoreConfig

DEMO_FILE = "demo.json"  # in the runs folder: the runs of the last demo, by <kind>/<run id>
SCANS = "oct2017_samples"  # the sample OCT B-scans in LAB_DATA_DIR
RUN_REF = re.compile(r"[a-z][a-z_-]*/[0-9][A-Za-z0-9_.-]*")  # <kind>/<run id> (a time stamp first): never ".."


@dataclass(frozen=True)
class DemoPlan:
    """The settings of a demo's runs (the score's, without its sets: the DCGAN's set is added)."""
    gpnn: list[dict]
    gan: dict
    score: dict


@dataclass(frozen=True)
class Demo:
    gpnn: list[Run]
    gan: Run
    score: Run

    @property
    def runs(self) -> list[Run]:
        """In the order they were queued."""
        return [*self.gpnn, self.gan, self.score]


@dataclass(frozen=True)
class PageReadiness:
    page: str  # "single_image", "samples", "quiz", "quality", "gan_steps"
    title: str
    state: str  # "ready", "waiting" (its runs are queued or running) or "failed"
    detail: str  # in words: what it shows, or what it waits for and about how long, or what went wrong
    seconds_left: float | None = None  # while waiting: about how long until it is ready
    runs: list[Run] = field(default_factory=list)


def sample_scans() -> list[Path]:
    scans = sorted((data_dir() / SCANS).glob("*.jpeg"))
    if not scans:
        raise FileNotFoundError(f"no sample OCT scans (*.jpeg) in {data_dir() / SCANS}: set LAB_DATA_DIR")
    return scans


def demo_plan() -> DemoPlan:
    """GPNN quick on every sample OCT scan, DCGAN quick on the default dataset, and a score of its set in the
    lab encoder's feature space (Inception's would take a CPU ten minutes and more)."""
    return DemoPlan(gpnn=[make_config("gpnn", "quick", mode="image", image_path=str(scan)).to_dict()
                          for scan in sample_scans()],
                    gan=make_config("dcgan", "quick", dataset=DatasetSpec()).to_dict(),
                    score=ScoreConfig(inception=False).to_dict())


def prepare_demo(root: Path | None = None, plan: DemoPlan | None = None, start: bool = True) -> Demo:
    """Queue a demo (`plan`, by default `demo_plan()`), unless the last one is running or done: then that
    one, with any piece that failed or was cancelled resumed. A demo whose runs were deleted, or whose
    demo.json cannot be read, is replaced by a new one (its runs stay in the runs folder)."""
    root = Path(root or runs_dir()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".demo.lock"):
        try:
            demo = read_demo(root)
        except ValueError:
            demo = None
        if demo is not None and all(run.state != "unreadable" for run in demo.runs):
            for run in demo.runs:  # the DCGAN before its score, which then waits for it again
                if run.state in ("failed", "cancelled"):
                    jobs.resume(run, root)
            return demo
        plan = plan or demo_plan()
        gpnn = [jobs.submit("gpnn", settings, name=f"demo {Path(settings['image_path']).stem}", root=root,
                            start=start) for settings in plan.gpnn]
        gan = jobs.submit("gan", plan.gan, name="demo dcgan", root=root, start=start)
        score = jobs.submit("score", {**plan.score, "sets": [str(gan.artifacts / "synthetic.npz")]},
                            name="demo dcgan", root=root, start=start, after=[gan])
        demo = Demo(gpnn, gan, score)
        atomic_write_json(root / DEMO_FILE, {"gpnn": [ref(run, root) for run in gpnn], "gan": ref(gan, root),
                                             "score": ref(score, root), "created": time.time()})
        return demo


def ref(run: Run, root: Path) -> str:
    return str(run.path.relative_to(root))


def read_demo(root: Path | None = None) -> Demo | None:
    """The last demo of the runs folder; None when none was prepared. ValueError naming demo.json when it
    is not what `prepare_demo` writes."""
    root = Path(root or runs_dir()).resolve()
    path = root / DEMO_FILE
    if not path.exists():
        return None
    try:
        index = read_object(path)
    except RunFileError as e:
        raise ValueError(f"{path}: {e}") from None
    refs = index.get("gpnn"), index.get("gan"), index.get("score")
    if not (isinstance(refs[0], list) and all(isinstance(r, str) and RUN_REF.fullmatch(r)
                                               for r in [*refs[0], *refs[1:]])):
        raise ValueError(f"{path}: gpnn, gan and score must name runs of this runs folder as <kind>/<run id>")
    return Demo([Run(root / r) for r in refs[0]], Run(root / refs[1]), Run(root / refs[2]))


def demo_status(root: Path | None = None) -> list[PageReadiness] | None:
    """Page by page, whether the last demo has given it something to show; None when there is no demo.
    The seconds left assume the demo's runs run one after another (one job at a time, the default)."""
    demo = read_demo(root)
    if demo is None:
        return None
    left = seconds_left(demo.runs)
    scans = f"GPNN variations of the {len(demo.gpnn)} sample OCT scans"
    dcgan = "a DCGAN quick on DermaMNIST 28 px"
    return [readiness("single_image", "Single image", demo.gpnn, left, scans),
            readiness("samples", "Samples", [demo.gan], left, f"{dcgan}: its images per class"),
            readiness("quiz", "Real or synthetic?", [demo.gan], left, "the DCGAN's images among real ones"),
            readiness("quality", "Quality", [demo.score], left, "the scores of the DCGAN's set"),
            PageReadiness("gan_steps", "GAN step by step", "ready", "needs no run: its small GAN trains as you press")]


def readiness(page: str, title: str, runs: list[Run], left: dict[Path, float], shows: str) -> PageReadiness:
    """`page` is ready when all its `runs` are done; while they are queued or running it waits for every
    unfinished demo run queued before its last one, and for that one."""
    states = [run.status() for run in runs]
    failed = [(run, status) for run, status in zip(runs, states) if status["state"] not in ("done", *ACTIVE_STATES)]
    if failed:
        run, status = failed[0]
        why = f": {status['error']}" if status.get("error") else ""
        return PageReadiness(page, title, "failed", f"{run.kind} run {run.id} {status['state']}{why}", runs=runs)
    if all(status["state"] == "done" for status in states):
        return PageReadiness(page, title, "ready", shows, runs=runs)
    order = list(left)
    last = max(order.index(run.path) for run in runs if run.path in left)
    seconds = sum(left[path] for path in order[:last + 1])
    doing = "running" if any(status["state"] == "running" for status in states) else "queued"
    return PageReadiness(page, title, "waiting", f"{shows}: {doing}, about {eta.duration(seconds)}",
                         seconds, runs=runs)


def seconds_left(runs: list[Run]) -> dict[Path, float]:
    """About how long each unfinished run still needs: a running one by its own pace when it has one (else
    its estimate less the time it has run), a queued one by its estimate (lab.engine.eta)."""
    left = {}
    for run in runs:
        status = run.status()
        if status["state"] not in ACTIVE_STATES:
            continue
        progress = status.get("progress") or {}
        if status["state"] == "running" and progress.get("eta_s") is not None:
            left[run.path] = progress["eta_s"]
            continue
        whole = eta.estimate(run.kind, run.settings).seconds
        ran = time.time() - status["started"] if status["state"] == "running" and status.get("started") else 0.0
        left[run.path] = max(whole - ran, 0.0)
    return left

