"""Job kind "score": score synthetic sets against the dataset's real training split.

Config: a `metrics.scoring.ScoreConfig`. Writes `artifacts/scores.json` (everything, per set; the
distribution metrics in Inception-v3's feature space and the lab encoder's, each naming its own),
`artifacts/scores.csv` (one row per set × pairing × metric × class) and, per set, a
memorization gallery PNG (top row: synthetic images closest to the training set; bottom row:
those training images). Finished sets are checkpointed, so a resumed job skips them.

With `prescreen` on, the job then pre-screens each set (`classifier.prescreen.prescreen_sets`) and
writes `artifacts/prescreen.json` (a `Prescreen`).
"""
from __future__ import annotations

from classifier.prescreen import prescreen_budget, prescreen_sets
from data.datasets import load_dataset
from data.files import atomic_write_text
from data.grid import save_png
from data.synthetic import load_set
from lab.engine.runs import Run
from metrics.scoring import ScoreConfig, dataset_spec_for, memorization_gallery, score_sets


CONFIG = ScoreConfig


def run(run: Run) -> None:
    config = ScoreConfig.from_dict(run.settings)
    dataset = load_dataset(dataset_spec_for(config))
    scores = score_sets(dataset, config, run.hooks())
    for i, result in enumerate(scores.sets):
        gallery = memorization_gallery(load_set(result.path).images, dataset.train.images, result.memorization)
        if gallery is not None:
            result.gallery = save_png(gallery, run.artifacts / f"memorization_{i}.png").name
    atomic_write_text(run.artifacts / "scores.csv", scores.to_csv())
    scores.save(run.artifacts / "scores.json")
    if config.prescreen:
        prescreen_sets(dataset, config.sets, prescreen_budget(config.prescreen_steps),
                       run.hooks()).save(run.artifacts / "prescreen.json")
