"""How long a job will take, said before it is launched.

An estimate takes its pace from this machine's finished runs of the same kind whose settings set
the same pace (`pace_key`: for a GAN its architecture, images, batch and width; for a classifier
run its dataset, network, batch and augmentation; for SinGAN its model settings): the median
seconds per unit of work (a step; for SinGAN one trained image) over the newest PAST_RUNS of them,
from status.json's started → finished (the worker's start-up included: it is part of the wait)
over the work they did. A run that was resumed is left out: its span holds the time it stood
stopped. So is a run shorter than MIN_PACE_S: its span is mostly the worker's start-up, which its
pace would multiply by the steps of a longer run (a 3-step run once predicted hours for minutes).
Without such a run the estimate is a rule of thumb for a 2-core CPU, and says so.

A kind made of other jobs gives its own estimate as the sum of its parts, each part paced by its
own past runs: a study's is its recipes' generator runs and its (arm, seed) classifier runs, a filtered
arm's with its filter's scoring (lab/study/estimate.py).

A busy machine: the paces above are per job alone, and an estimate scales them by what else runs
now (`Busy`: the lab's own running jobs and the load average, against the cores), with the simple
model of `slowdown`: the CPU scheduler shares the cores among everything that wants one, so a job
that wants t cores while others want D takes max(1, (t + D) / cores) times as long as alone. A job
wants every core (torch starts a thread per core) unless it was started with fewer (OMP_NUM_THREADS,
as side-by-side children are). The others' demand D is the 1-minute load average, or, when it is
larger, the lab's running jobs at a whole machine each (the load average is a minute's mean and lags
behind a job that just started). Past runs record the mean load average they ran under
(`load_mean`, `threads` in status.json: lab.engine.runs.Run.progress), so their pace is turned back
into a pace alone by the same model before it paces anything. The text says both figures: "expected
about 4m00s with 3 other jobs running (load 7.8 on 2 cores); 1m00s alone, …". A running job's ETA
needs none of this: it comes from the run's own recent pace, which already includes the load.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, replace
from typing import NamedTuple

from data.datasets import DatasetSpec, load_dataset
from gans import REGISTRY
from lab.engine import executors
from lab.engine.kinds import job_kind
from lab.engine.runs import RunFileError, list_runs, machine_cores, runs_elsewhere

BUSY_SHOWN = 1.25  # a machine that slows a job by less than this is called idle: the text gives one figure

PAST_RUNS = 10  # the newest comparable runs an estimate's pace comes from

# Rules of thumb for a 2-core CPU, from the runs timed in issue 12 (a DCGAN quick run on DermaMNIST,
# 7 models × 1500 steps, in 2m02s; a quick study in 9m56s) and SinGAN's presets (gans/singan_train.py:
# quick about 3.5 minutes an image at 128 px): seconds of start-up, then seconds per unit of work at
# the reference settings, scaled by the work per step.
STARTUP_S = 6.0  # a worker importing torch and loading its data
MIN_PACE_S = 5 * STARTUP_S  # a past run paces estimates only when its start-up is at most a fifth of its span
GAN_STEP_S = 0.012  # one generator step of one DCGAN quick model, batch 16, width 16, 28 px
# One EfficientNet-b0 step, batch 64, 28 px, evaluations included: 0.25 s a training step with one
# thread or two on an idle 2-core CPU (bench/classifier_speed.py), about 0.28 s with evaluations and
# start-up in the quick recipe study's arms (its 6 arms of 400 steps, 2 side by side: about 5.5 minutes).
CLASSIFIER_STEP_S = 0.28
SINGAN_IMAGE_S = {"tiny": 40.0, "quick": 210.0, "paper": 3 * 3600.0}  # one image, by preset
# 10 GPNN variations of a 128-px image, by preset: 7.2 s quick (bench/single_image.py, four OCT scans),
# the paper's settings projected at 67 s
GPNN_IMAGE_S = {"quick": 7.2, "paper": 67.0}
OTHER_RUN_S = 60.0  # a kind without a rule of its own


@dataclass(frozen=True)
class Part:
    """Some jobs of one kind and pace: a GAN run, 12 classifier runs, 6 SinGAN images."""
    what: str  # one of them in words: "dcgan quick run"
    count: int
    seconds: float  # all of them together
    past_runs: int  # comparable finished runs the pace comes from; 0: the rule of thumb

    @property
    def basis(self) -> str:
        """Where the pace comes from: "from 4 past dcgan quick runs like it", or that it is a guess."""
        them = "it" if self.count == 1 else "them"
        if self.past_runs:
            return f"from {self.past_runs} past {self.what}{'s' if self.past_runs > 1 else ''} like {them}"
        return f"a rough guess: no past {self.what} like {them} here yet"


class Busy(NamedTuple):
    """What else runs on this machine while a job does."""
    other_jobs: int  # the lab's own jobs running now, besides the one estimated
    load: float  # the 1-minute load average
    cores: int  # the cores this process may use

    @property
    def demand(self) -> float:
        """The cores' worth of work that competes with a job: the load average, or the lab's running jobs at
        a whole machine each when that is more (the load average lags a minute behind)."""
        return max(self.load, self.other_jobs * self.cores)

    @property
    def text(self) -> str:
        """"3 other jobs running (load 7.8 on 2 cores)"."""
        jobs = f"{self.other_jobs or 'no'} other job{'s' * (self.other_jobs != 1)} running"
        return f"{jobs} (load {self.load:.1f} on {self.cores} core{'s' * (self.cores != 1)})"


IDLE = Busy(0, 0.0, 1)


def slowdown(busy: Busy, threads: int | None = None) -> float:
    """How many times longer a job that wants `threads` cores (None: every core) takes on a machine as
    `busy` than alone: max(1, (threads + the others' demand) / cores). See the module docstring."""
    wanted = min(threads or busy.cores, busy.cores)
    return max(1.0, (wanted + busy.demand) / busy.cores)


def busy_now() -> Busy:
    """This machine now: the lab's jobs running here (a parent that only waits for its children is not
    counted, its children are; a run on another machine is not), the load average and the cores."""
    running = [run for run in list_runs() if (status := run.status())["state"] == "running"
               and not runs_elsewhere(status)]
    waiting_parents = {run.config.get("parent") for run in running}
    jobs = sum(str(run.path) not in waiting_parents for run in running)
    return Busy(jobs, round(os.getloadavg()[0], 2), machine_cores())


def ran_alone_factor(status: dict) -> float:
    """How much slower a finished run went than it would have alone, from the mean load average and the
    threads its status.json records (1 for runs of labs that did not record them). Its own threads are
    part of that load."""
    load, threads = status.get("load_mean"), status.get("threads")
    if not isinstance(load, (int, float)) or not isinstance(threads, int) or threads < 1:
        return 1.0
    cores = machine_cores()
    return slowdown(Busy(0, max(0.0, load - min(threads, cores)), cores), threads)


@dataclass(frozen=True)
class Estimate:
    parts: tuple[Part, ...]
    side_by_side: int = 1  # how many of a part's jobs run at once (a study's children: lab/engine/children.py)
    busy: Busy = IDLE  # what else runs on the machine (`estimate` measures it)

    @property
    def seconds(self) -> float:
        """The job alone on this machine."""
        return sum(part.seconds / part.count * math.ceil(part.count / self.side_by_side) for part in self.parts)

    @property
    def busy_factor(self) -> float:
        """How many times longer than alone the job takes beside what runs now (`slowdown`)."""
        return slowdown(self.busy)

    @property
    def expected_seconds(self) -> float:
        """The job with what else runs now running beside it all along."""
        return self.seconds * self.busy_factor

    @property
    def calibrated(self) -> bool:
        """True when every part's pace comes from this machine's past runs."""
        return all(part.past_runs for part in self.parts)

    @property
    def text(self) -> str:
        """"expected about 3m20s on this machine, from 4 past dcgan quick runs like it"; a study's names its
        parts: "expected about 9m50s: 3 dcgan quick runs, from 2 past …; 12 classifier runs, a
        rough guess: …"."""
        head = f"expected about {duration(self.seconds)}{' on this machine' if self.calibrated else ''}"
        if self.busy_factor >= BUSY_SHOWN:
            head = (f"expected about {duration(self.expected_seconds)} with {self.busy.text}; "
                    f"{duration(self.seconds)} alone{' on this machine' if self.calibrated else ''}")
        if len(self.parts) == 1 and self.parts[0].count == 1:
            return f"{head}, {self.parts[0].basis}"
        at_once = f" ({self.side_by_side} side by side)" if self.side_by_side > 1 else ""
        return f"{head}{at_once}: " + "; ".join(f"{p.count} {p.what}{'s' if p.count > 1 else ''}, {p.basis}"
                                                for p in self.parts)


class Profile(NamedTuple):
    """A job about to be launched, as an estimate sees it."""
    key: str  # its pace key (see pace_key)
    work: float  # units of work: steps (GAN, classifier), trained images (SinGAN), else 1
    what: str  # what it is a number of, in words: "dcgan quick run", "SinGAN tiny image"
    count: int  # how many of `what` it is
    guess_s: float  # the rule of thumb: seconds for the whole job on a 2-core CPU


def duration(seconds: float) -> str:
    """"45s", "3m20s", "1h05m"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def estimate(kind: str, settings: dict, busy: Busy | None = None) -> Estimate:
    """How long a job of `kind` with `settings` (its config as a dict, as jobs.submit takes it) will take
    on this machine as `busy` (None: as it is now)."""
    busy = busy_now() if busy is None else busy
    own = job_kind(kind).estimate
    if own is not None:  # a kind made of other jobs (a study) says how
        return replace(own(settings), busy=busy)
    job = part(kind, settings)
    seeds_run = kind == "singan" and settings.get("mode") == "seeds"  # one child run per seed image
    return Estimate((job,), executors.child_workers(job.count) if seeds_run else 1, busy)


def part(kind: str, settings: dict, jobs: int = 1) -> Part:
    """`jobs` jobs of `kind` with `settings`, paced by the past runs like them, else by the rule of thumb."""
    job = profile(kind, settings)
    pace = past_pace(kind, job.key)
    if pace is None:
        return Part(job.what, jobs * job.count, jobs * job.guess_s, 0)
    seconds_per_unit, runs = pace
    return Part(job.what, jobs * job.count, jobs * job.work * seconds_per_unit, runs)


def profile(kind: str, settings: dict) -> Profile:
    """A job about to be launched: its pace key, its work and the rule of thumb for it."""
    key = pace_key(kind, settings)
    if kind == "gan":
        spec = DatasetSpec.from_dict(settings["dataset"])
        train = load_dataset(spec).train
        models = len(train.class_names) if settings["per_class"] and not REGISTRY[settings["gan"]].conditional else 1
        steps = settings["steps"]
        if settings["epochs"] > 0:
            steps = max(1, round(settings["epochs"] * len(train) * settings["train_fraction"]
                                 / (settings["batch_size"] * settings["d_steps"] * models)))
        step_s = (GAN_STEP_S * models * settings["d_steps"] * (spec.size / 28) ** 2 * settings["batch_size"] / 16
                  * settings["width"] / 16)
        return Profile(key, steps, f"{settings['gan']} {settings['preset']} run", 1, STARTUP_S + steps * step_s)
    if kind in ("gan-stack", "study-group"):  # several runs as one: priced as its members one at a time
        members = [profile("gan" if kind == "gan-stack" else "study-arm", m) for m in settings["members"]]
        what = f"{members[0].what.removesuffix(' run')} stack" if kind == "gan-stack" else "batched classifier group"
        return Profile(key, members[0].work, f"{what} of {len(members)}", 1, sum(m.guess_s for m in members))
    if kind == "study-arm":
        train, size = settings["train"], DatasetSpec.from_dict(settings["dataset"]).size
        step_s = CLASSIFIER_STEP_S * train["batch_size"] / 64 * (size / 28) ** 2
        what = "filtered classifier run" if settings["arm"].get("filter") else "classifier run"
        return Profile(key, train["steps"], what, 1, STARTUP_S + train["steps"] * step_s)
    if kind == "singan":
        images = seed_images(settings)
        image_s = SINGAN_IMAGE_S.get(settings["preset"], SINGAN_IMAGE_S["quick"])
        return Profile(key, images, f"SinGAN {settings['preset']} image", images, images * image_s)
    if kind == "gpnn":  # no training: the patch search, which grows with the pixels and the variations
        images, model = seed_images(settings), settings["model"]
        side = min(model["max_side"], DatasetSpec.from_dict(settings["dataset"]).size if settings.get("dataset")
                   else model["max_side"])
        image_s = (GPNN_IMAGE_S.get(settings["preset"], GPNN_IMAGE_S["quick"]) * (side / 128) ** 2
                   * settings["variations"] / 10)
        return Profile(key, images, f"GPNN {settings['preset']} image", images, STARTUP_S + images * image_s)
    return Profile(key, 1, f"{kind} run", 1, OTHER_RUN_S)


def seed_images(settings: dict) -> int:
    """The images a single-image job works on: one, or its seed images in seeds mode."""
    if settings["mode"] != "seeds":
        return 1
    classes = len(load_dataset(DatasetSpec.from_dict(settings["dataset"])).class_names)
    return len(settings["seed_indices"]) or settings["seeds_per_class"] * classes


def pace_key(kind: str, settings: dict) -> str:
    """What sets the pace of a job per unit of work, as text: jobs with equal keys are comparable."""
    if kind == "gan":
        paced_by = [dataset(settings), *(settings[name] for name in ("gan", "per_class", "batch_size", "width",
                                                                     "d_steps", "latent", "device"))]
    elif kind == "study-arm":
        train = settings["train"]
        arm = settings["arm"]
        paced_by = [dataset(settings), train["variant"], train["batch_size"], train["device"],
                    arm["kind"] == "standard_aug", arm.get("filter_scoring") if arm.get("filter") else None]
    elif kind in ("gan-stack", "study-group"):  # as their members, and as many of them
        member = "gan" if kind == "gan-stack" else "study-arm"
        paced_by = [kind, *sorted(pace_key(member, m) for m in settings["members"])]
    elif kind in ("singan", "gpnn"):  # a seeds run's images go at the pace of image runs of the same model
        size = DatasetSpec.from_dict(settings["dataset"]).size if settings.get("dataset") else "file"
        paced_by = [settings["model"], size, settings["device"]] + ([settings["variations"]] if kind == "gpnn" else [])
    else:  # a kind without a rule of its own: runs of the same mode and preset
        paced_by = [kind, settings.get("mode"), settings.get("preset")]
    return json.dumps(paced_by, sort_keys=True)


def dataset(settings: dict) -> dict:
    """A config's dataset with every field (a config may name only some: {"name": "pneumoniamnist"})."""
    return DatasetSpec.from_dict(settings["dataset"]).to_dict()


def work_done(kind: str, settings: dict, status: dict) -> float:
    """The units of work a finished run did: the steps its progress counted (GAN, classifier, a stack or
    batched group of them); one image for a SinGAN image run (a seeds run's images are counted in its image
    runs: 0); the images of a GPNN run; else one run."""
    if kind in ("gan", "study-arm", "gan-stack", "study-group"):
        return (status.get("progress") or {}).get("done", 0)
    if kind == "singan":
        return 1 if settings["mode"] == "image" else 0
    if kind == "gpnn":
        return seed_images(settings)
    return 1


def past_pace(kind: str, key: str) -> tuple[float, int] | None:
    """(median seconds per unit of work alone, how many runs) over the newest finished, never-resumed runs
    of `kind` that lasted MIN_PACE_S or more and whose pace key is `key`; None when there are none. Each
    run's pace is divided by how much the load it ran under slowed it (`ran_alone_factor`)."""
    paces = []
    for run in list_runs(kind=kind):  # newest first
        if len(paces) == PAST_RUNS:
            break
        status = run.raw_status()
        started, finished = status.get("started"), status.get("finished")
        if status["state"] != "done" or started is None or finished is None or finished - started < MIN_PACE_S:
            continue
        try:
            settings = run.settings
            work = work_done(kind, settings, status) if pace_key(kind, settings) == key else 0
        except (RunFileError, KeyError, TypeError, ValueError):  # a config of another version, or damaged
            continue
        if work and not run.events("resume"):
            paces.append((finished - started) / work / ran_alone_factor(status))
    return (statistics.median(paces), len(paces)) if paces else None


def merge(parts: list[Part]) -> list[Part]:
    """Parts of the same words and basis (both paced by past runs, or both guessed) become one: their
    counts, seconds and past runs (different paces: different runs) added up."""
    merged: dict[tuple[str, bool], Part] = {}
    for p in parts:
        key = (p.what, bool(p.past_runs))
        same = merged.get(key)
        merged[key] = p if same is None else \
            Part(p.what, same.count + p.count, same.seconds + p.seconds, same.past_runs + p.past_runs)
    return list(merged.values())
