"""Job kind "gan": train the GAN a run's config describes (gans/train.py), then keep what it made.

Outputs: checkpoints/last.pt (resume), checkpoints/generator.pt (what the Samples page and
`python -m lab sample` open), sample grids in samples/, and the default synthetic set
artifacts/synthetic.npz of `export_per_class` images per class.
"""
from __future__ import annotations

from data.synthetic import save_set
from gans.checkpoint import save_generator
from gans.config import GanConfig
from gans.sampling import has_labels, synthesize
from gans.train import train, training_images
from lab.runs import Run


def run(run: Run) -> None:
    config = GanConfig.from_dict({k: v for k, v in run.config.items() if k != "kind"})
    images = training_images(config)
    gan = train(config, images, run.hooks())
    save_generator(gan, config, images.class_names, run.checkpoints / "generator.pt")
    if config.export_per_class:
        run.log_event(type="stage", stage="export", per_class=config.export_per_class)
        synthetic = synthesize(gan, config.export_per_class, images.class_names, seed=config.seed,
                               source=f"{config.gan}:{run.id}")
        save_set(synthetic, run.artifacts, "synthetic", generator=config.gan, run_id=run.id, dataset=config.dataset,
                 train_seconds=round(gan.train_seconds, 1), steps=gan.steps_done, labelled=has_labels(gan),
                 preset=config.preset)
    run.log_event(type="done", step=gan.steps_done, seconds=round(gan.train_seconds, 2))
