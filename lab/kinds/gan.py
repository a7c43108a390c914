"""Job kind "gan": train the GAN a run's config describes (gans/train.py), then keep what it made.

Outputs: checkpoints/last.pt (resume), checkpoints/generator.pt (what the Samples page and
`python -m lab sample` open), sample grids in samples/, and the default synthetic set
artifacts/synthetic.npz of `export_per_class` images per class. The generator and the set record
their provenance: the fingerprints of exactly the real images the GAN learned from, which the run
also keeps in checkpoints/ before it trains (`lab.provenance_check`: what the set's claims are checked against).
"""
from __future__ import annotations

from data.provenance import Provenance, fingerprints
from data.synthetic import save_set
from gans.checkpoint import save_generator
from gans.config import GanConfig
from gans.sampling import has_labels, synthesize
from gans.train import train, training_images
from lab.engine.runs import Run
from lab.provenance_check import record_fingerprints
from lab.sets import draw


CONFIG = GanConfig


def run(run: Run) -> None:
    config = GanConfig.from_dict(run.settings)
    images = training_images(config)
    trained_on = fingerprints(images.images)
    record_fingerprints(run, trained_on)
    provenance = Provenance.trained(trained_on, dataset=config.spec, split="train",
                                    train_fraction=config.train_fraction, subset_seed=config.seed,
                                    generator=config.gan, run_id=run.id, config=config.to_dict())
    gan = train(config, images, run.hooks())
    save_generator(gan, config, images.class_names, run.checkpoints / "generator.pt", provenance, trained_on)
    if config.export_per_class:
        run.log_event(type="stage", stage="export", per_class=config.export_per_class)
        synthetic = synthesize(gan, config.export_per_class, images.class_names, seed=config.seed,
                               source=f"{config.gan}:{run.id}")
        save_set(synthetic, run.artifacts, "synthetic", provenance, trained_on, generator=config.gan, run_id=run.id,
                 dataset=config.dataset, train_seconds=round(gan.train_seconds, 1), steps=gan.steps_done,
                 labelled=has_labels(gan), preset=config.preset,
                 draw=draw(run.id, config.seed, config.export_per_class))
    run.log_event(type="done", step=gan.steps_done, seconds=round(gan.train_seconds, 2))
