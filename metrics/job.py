"""The "score" job: score synthetic sets against the dataset's real training split.

Config: a `ScoreConfig` dict. Writes `artifacts/scores.json` (everything, per set),
`artifacts/scores.csv` (one row per set × pairing × metric × class) and, per set, a
memorization gallery PNG (top row: synthetic images closest to the training set; bottom row:
those training images). Each finished set is checkpointed, so a resumed job skips it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from data.datasets import DatasetSpec, load_dataset
from data.grid import make_grid, save_png
from data.synthetic import load_set, read_meta
from lab.runs import Cancelled, Run, atomic_write_json, atomic_write_text, csv_text, find_run
from metrics.distribution import DISTRIBUTION_METRICS
from metrics.encoder import EncoderConfig, train_encoder
from metrics.quality import METRICS
from metrics.scoring import ScoreConfig, build_reference, score_set


def resolve_sets(refs: list[str]) -> list[Path]:
    """Synthetic set paths from npz paths or run ids (all sets in the run's artifacts)."""
    paths = []
    for ref in refs:
        path = Path(ref).expanduser()
        if path.suffix == ".npz":
            if not path.exists():
                raise FileNotFoundError(f"no synthetic set at {path}")
            paths.append(path.resolve())
            continue
        run = find_run(ref)
        found = sorted(run.artifacts.glob("*.npz"))
        if not found:
            raise LookupError(f"run {run.id} has no synthetic sets in its artifacts")
        paths.extend(found)
    return paths


def dataset_spec_for(config: ScoreConfig) -> DatasetSpec:
    """The dataset to compare with: the config's, else the one the first set was made from."""
    if config.dataset:
        return DatasetSpec.from_dict(config.dataset)
    for path in config.sets:
        meta = read_meta(path)
        if meta.get("dataset"):
            return DatasetSpec.from_dict(meta["dataset"])
    raise ValueError("no dataset given and the sets' metadata names none; pass the dataset spec")


def run_job(run: Run) -> None:
    config = ScoreConfig.from_dict(run.config)
    if not config.sets:
        raise ValueError("a score job needs at least one synthetic set")
    spec = dataset_spec_for(config)
    dataset = load_dataset(spec)
    encoder_config = EncoderConfig(**config.encoder)
    trained_steps = []  # stays empty when the encoder comes from the disk cache

    def encoder_progress(step: int, steps: int, message: str) -> None:
        trained_steps[:] = [steps]
        run.progress(step, steps + len(config.sets), message)
        if run.stop_requested:
            raise Cancelled()

    encoder = None
    if config.distribution:
        run.log_event(type="stage", stage="encoder")
        encoder = train_encoder(dataset.train, dataset.val, encoder_config, progress=encoder_progress)
    encoder_steps = trained_steps[0] if trained_steps else 0  # progress counts encoder steps, then sets
    total = encoder_steps + len(config.sets)
    run.progress(encoder_steps, total, "computing real features", force=True)
    reference = build_reference(dataset, encoder)
    results = []
    for i, path in enumerate(config.sets):
        checkpoint = run.checkpoints / f"set_{i}.json"
        if checkpoint.exists():
            results.append(json.loads(checkpoint.read_text()))
            continue
        run.progress(encoder_steps + i, total, f"scoring {Path(path).name}", force=True)
        started = time.time()
        synthetic = load_set(path)
        meta = read_meta(path)
        result = {"path": str(Path(path).resolve()), "name": meta.get("name") or Path(path).stem,
                  "generator": meta.get("generator", "?"), "run_id": meta.get("run_id"),
                  "train_seconds": meta.get("train_seconds"),
                  **score_set(synthetic, reference, config), "seconds": round(time.time() - started, 2)}
        result["gallery"] = save_gallery(synthetic.images, dataset.train.images, result, run.artifacts, i)
        atomic_write_json(checkpoint, result)
        results.append(result)
        run.log_event(type="set", index=i, name=result["name"], seconds=result["seconds"])
        if run.stop_requested:
            raise Cancelled()
    scores = {"dataset": spec.to_dict(), "config": config.to_dict(), "created": time.time(),
              "encoder": None if encoder is None else {"name": encoder.name, **encoder.info,
                                                       "config": asdict(encoder.config)},
              "metrics": {k: {"name": m.name, "arrow": m.arrow, "range": m.range_text, "meaning": m.meaning,
                              "min_size": m.min_size} for k, m in METRICS.items()},
              "sets": results}
    atomic_write_text(run.artifacts / "scores.csv", to_csv(scores))
    atomic_write_json(run.artifacts / "scores.json", scores)
    run.progress(total, total, "done", force=True)


def save_gallery(synthetic: np.ndarray, train: np.ndarray, result: dict, directory: Path, index: int) -> str:
    closest = result["memorization"]["closest"]
    if not closest:
        return ""
    top = synthetic[[c["synthetic_index"] for c in closest]]
    bottom = train[[c["train_index"] for c in closest]]
    name = f"memorization_{index}.png"
    save_png(make_grid(np.concatenate([top, bottom]), ncol=len(closest)), directory / name)
    return name


def table_rows(scores: dict) -> list[dict]:
    """Flat rows: set × pairing × metric × class ("all" first), then distribution and memorization."""
    rows = []
    for s in scores["sets"]:
        base = {"set": s["name"], "generator": s["generator"], "path": s["path"]}
        for pairing, block in s["pairings"].items():
            for key, est in block["metrics"].items():
                metric = METRICS[key]
                for cls, e in [("all", est), *est["per_class"].items()]:
                    rows.append({**base, "pairing": pairing, "metric": metric.name, "direction": metric.arrow,
                                 "class": cls, "mean": e["mean"], "lo": e["lo"], "hi": e["hi"], "n": e["n"]})
        for block in ("distribution", "distribution_class_matched"):
            for key, value in (s.get(block) or {}).items():
                if key in DISTRIBUTION_METRICS:
                    rows.append({**base, "pairing": block, "metric": DISTRIBUTION_METRICS[key].name,
                                 "direction": DISTRIBUTION_METRICS[key].arrow, "class": "all", "mean": value,
                                 "lo": None, "hi": None, "n": s["count"]})
        memo = s["memorization"]
        for cls, e in [("all", memo["suspected_fraction"]), *memo["per_class"].items()]:
            rows.append({**base, "pairing": "memorization", "metric": "suspected copies", "direction": "↓",
                         "class": cls, "mean": e["mean"], "lo": e["lo"], "hi": e["hi"], "n": e["n"]})
    return rows


def to_csv(scores: dict) -> str:
    return csv_text(table_rows(scores))
