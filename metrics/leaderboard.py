"""The generator leaderboard: one row per scored synthetic set.

Reads every finished score job's `artifacts/scores.json` (the newest score of a set wins) and
every finished study's `artifacts/summary.json` (downstream gain of the arm that used the set,
matched by the set's npz path). Fidelity: FID, precision, density and nearest-pair SSIM;
diversity: recall and coverage; memorization: share of suspected copies.
"""
from __future__ import annotations

from pathlib import Path

from lab.runs import list_runs, read_json


def latest_scores(root: Path | None = None) -> dict[str, dict]:
    """npz path -> the newest score of that set (with the encoder name and score run id)."""
    found: dict[str, dict] = {}
    for run in list_runs("score", root=root):  # newest first
        if run.state != "done":
            continue
        scores = read_json(run.artifacts / "scores.json")
        for s in (scores or {}).get("sets", []):
            encoder = (scores.get("encoder") or {}).get("name")
            found.setdefault(str(Path(s["path"]).resolve()), {**s, "score_run": run.id, "encoder": encoder})
    return found


def study_gains(root: Path | None = None) -> dict[str, dict]:
    """npz path -> the newest study arm that trained with it: gain over the baseline and verdict."""
    gains: dict[str, dict] = {}
    for run in list_runs("study", root=root):
        if run.state != "done":
            continue
        summary = read_json(run.artifacts / "summary.json") or {}
        primary = summary.get("primary_metric", "balanced_accuracy")
        for arm in summary.get("arms", []):
            path, delta = arm.get("synthetic_set"), (arm.get("vs_baseline") or {}).get(primary)
            if path and delta:
                gains.setdefault(str(Path(path).resolve()), {"study": run.id, "metric": primary, "arm": arm["arm"],
                                                             **delta, "verdict": arm.get("verdict", "")})
    return gains


def leaderboard_rows(root: Path | None = None) -> list[dict]:
    gains = study_gains(root)
    rows = []
    for path, s in latest_scores(root).items():
        d = s.get("distribution") or {}
        nearest = (s["pairings"].get("nearest") or {}).get("metrics", {})
        gain = gains.get(path)
        rows.append({
            "set": s["name"], "generator": s["generator"], "images": s["count"],
            "FID ↓": d.get("fid"), "FID class-matched ↓": (s.get("distribution_class_matched") or {}).get("fid"),
            "precision ↑": d.get("precision"), "density ↑": d.get("density"),
            "SSIM nearest ↑": (nearest.get("ssim") or {}).get("mean"),
            "recall ↑": d.get("recall"), "coverage ↑": d.get("coverage"),
            "suspected copies ↓": s["memorization"]["suspected_fraction"]["mean"],
            "train time (s)": s.get("train_seconds"),
            "downstream gain (points)": None if gain is None else 100 * gain["mean"],
            "gain interval": None if gain is None else f"[{100 * gain['lo']:+.1f}, {100 * gain['hi']:+.1f}]",
            "verdict": None if gain is None else gain["verdict"],
            "encoder": s.get("encoder"), "score run": s["score_run"], "path": path,
        })
    return rows
