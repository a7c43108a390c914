"""The generator leaderboard: one row per scored synthetic set.

Reads every finished score job's `artifacts/scores.json` (the newest score of a set wins) and
every finished study's summary (downstream gain of the arm that used the set). Both are matched
by set id ("<run id>/<set name>", lab.sets), never by absolute path, so moving the runs folder
keeps every join; a set drawn twice with the same draw counts as the first one made.
Fidelity: FID, KID, precision, density and nearest-pair SSIM; diversity: recall and coverage;
memorization: share of suspected copies. Distribution metrics come in two feature spaces, each
column naming its own: Inception-v3 (the standard numbers) and the lab encoder (with its
validation balanced accuracy, or why its numbers were withheld). The pre-screen (train on synthetic,
test on real: the classification accuracy score) comes from the newest score job that measured the
set, beside the same classifier trained on the real images in that job. A run whose file cannot be
read is left out, never the whole board.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from classifier.prescreen import CasScores, Prescreen
from data.synthetic import set_id
from lab.engine.runs import Run, list_runs
from lab.sets import duplicate_ids, list_sets, resolve_set
from lab.study.summary import ArmSummary, read_summary
from metrics.scores import CLASS_MATCHED, ENCODER, INCEPTION, EncoderSummary, Scores, SetScores
from metrics.stats import PairedComparison


@dataclass
class ScoredSet:
    """The newest score of one set, with where it came from."""
    scores: SetScores
    encoder: EncoderSummary | None  # the encoder of its encoder-space metrics
    score_run: str  # id of the score job
    prescreen: CasScores | None = None  # its newest measured pre-screen
    prescreen_real: CasScores | None = None  # the real-only classifier of that pre-screen


@dataclass
class StudyGain:
    """What training with a set did in the newest study that used it."""
    study_run: str
    arm: ArmSummary
    comparison: PairedComparison  # arm − baseline on the study's primary metric, a fraction


def latest_scores(root: Path | None = None) -> dict[str, ScoredSet]:
    """set id -> the newest score of that set."""
    same = duplicate_ids(list_sets(root, duplicates=True))
    found: dict[str, ScoredSet] = {}
    for run in list_runs("score", root=root):  # newest first
        if run.state != "done":
            continue
        try:
            scores = Scores.load(run.artifacts / "scores.json")
        except ValueError:
            continue
        prescreen = _prescreen(run)
        for s in scores.sets:
            scored = found.setdefault(same.get(s.set_id, s.set_id), ScoredSet(s, scores.encoder, run.id))
            cas = prescreen.of(s.set_id) if prescreen is not None else None
            if scored.prescreen is None and cas is not None and cas.scores:
                scored.prescreen, scored.prescreen_real = cas, prescreen.real
    return found


def _prescreen(run: Run) -> Prescreen | None:
    """The pre-screen of a score job; None when it ran none or its file cannot be read."""
    path = run.artifacts / "prescreen.json"
    try:
        return Prescreen.load(path) if path.exists() else None
    except ValueError:
        return None


def study_gains(root: Path | None = None) -> dict[str, StudyGain]:
    """set id -> the newest study arm that trained with it, with its gain over the baseline."""
    same = duplicate_ids(list_sets(root, duplicates=True))
    gains: dict[str, StudyGain] = {}
    for run in list_runs("study", root=root):  # newest first
        if run.state != "done":
            continue
        try:
            summary = read_summary(run)
        except ValueError:
            continue
        if summary is None:
            continue
        for arm, comparison in summary.gains():
            arm_set = set_id(arm.synthetic_set)
            gains.setdefault(same.get(arm_set, arm_set), StudyGain(run.id, arm, comparison))
    return gains


def leaderboard_rows(root: Path | None = None) -> list[dict]:
    gains = study_gains(root)
    rows = []
    for key, scored in latest_scores(root).items():
        s = scored.scores
        inception, encoder = s.distribution_in(INCEPTION), s.distribution_in(ENCODER)
        matched = s.distribution_in(ENCODER, CLASS_MATCHED)
        nearest = s.pairings.get("nearest")
        ssim = nearest.metrics.get("ssim") if nearest is not None else None
        study = gains.get(key)
        gain = study.comparison.delta if study is not None else None
        cas, cas_real = scored.prescreen, scored.prescreen_real
        rows.append({
            "set": s.name, "generator": s.generator, "images": s.count,
            "FID (Inception) ↓": inception and inception.fid, "KID (Inception) ↓": inception and inception.kid,
            "precision (Inception) ↑": inception and inception.precision,
            "recall (Inception) ↑": inception and inception.recall,
            "density (Inception) ↑": inception and inception.density,
            "coverage (Inception) ↑": inception and inception.coverage,
            "FID (encoder) ↓": encoder and encoder.fid, "FID class-matched (encoder) ↓": matched and matched.fid,
            "precision (encoder) ↑": encoder and encoder.precision,
            "recall (encoder) ↑": encoder and encoder.recall,
            "encoder": _encoder_text(scored.encoder),
            "SSIM nearest ↑": ssim and ssim.mean,
            "suspected copies ↓": s.memorization.suspected_fraction.mean,
            "CAS balanced acc ↑": cas and cas.scores.get("balanced_accuracy"),
            "CAS AUC ↑": cas and cas.scores.get("auc_ovr"),
            "CAS real-only balanced acc": cas_real and cas_real.scores.get("balanced_accuracy"),
            "train time (s)": s.train_seconds,
            "downstream gain (points)": None if gain is None else 100 * gain.mean,
            "gain interval": None if gain is None else f"[{100 * gain.lo:+.1f}, {100 * gain.hi:+.1f}]",
            "verdict": study.arm.verdict if study is not None else None,
            "score run": scored.score_run, "set id": key, "path": _current_path(key, root),
        })
    return rows


def _encoder_text(encoder: EncoderSummary | None) -> str | None:
    """The encoder's validation accuracy, or why its numbers are withheld; None when it was not used."""
    if encoder is None:
        return None
    return f"withheld: {encoder.withheld}" if encoder.withheld else encoder.accuracy_text


def _current_path(key: str, root: Path | None) -> str:
    """Where the set is now ("" when it was deleted)."""
    try:
        return str(resolve_set(key, root))
    except FileNotFoundError:
        return ""
