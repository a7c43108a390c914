"""Job kind "score": score synthetic sets against the dataset's real training split.

Config: a `metrics.scoring.ScoreConfig`. Writes `artifacts/scores.json` (everything, per set; the
distribution metrics in Inception-v3's feature space and the lab encoder's, each naming its own),
`artifacts/scores.csv` (one row per set × pairing × metric × class) and, per set, a
memorization gallery PNG (top row: synthetic images closest to the training set; bottom row:
those training images). Finished sets are checkpointed, so a resumed job skips them.

With `prescreen` on, the job then pre-screens each set (`classifier.prescreen.prescreen_sets`) and
writes `artifacts/prescreen.json` (a `Prescreen`).

The job shows one progress bar over every stage of both, each stage's share sized by its expected cost
(`data.hooks.one_bar`); what the dataset's caches already hold (the lab encoder, Inception's real
reference, the real-only pre-screen classifier) costs nothing, and each result lists it under `cached`.
"""
from __future__ import annotations

from classifier import prescreen
from data.datasets import load_dataset
from data.files import atomic_write_text
from data.grid import save_png
from data.hooks import one_bar
from data.synthetic import load_set
from lab.engine.runs import Run
from metrics.scoring import ScoreConfig, dataset_spec_for, expected_costs, memorization_gallery, score_sets


CONFIG = ScoreConfig


def run(run: Run) -> None:
    config = ScoreConfig.from_dict(run.settings)
    dataset = load_dataset(dataset_spec_for(config))
    budget = prescreen.prescreen_budget(config.prescreen_steps)
    costs = expected_costs(dataset, config)
    if config.prescreen:
        costs.update(prescreen.expected_costs(dataset, config.sets, budget))
    hooks = one_bar(run.hooks(), costs)
    scores = score_sets(dataset, config, hooks)
    for i, result in enumerate(scores.sets):
        gallery = memorization_gallery(load_set(result.path).images, dataset.train.images, result.memorization)
        if gallery is not None:
            result.gallery = save_png(gallery, run.artifacts / f"memorization_{i}.png").name
    atomic_write_text(run.artifacts / "scores.csv", scores.to_csv())
    scores.save(run.artifacts / "scores.json")
    if config.prescreen:
        prescreen.prescreen_sets(dataset, config.sets, budget, hooks).save(run.artifacts / "prescreen.json")
