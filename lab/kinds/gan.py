"""Job kind "gan": train the GAN a run's config describes (gans/train.py), then keep what it made.

Outputs: checkpoints/last.pt (resume), checkpoints/generator.pt (what the Samples page and
`python -m lab sample` open), sample grids in samples/, and the default synthetic set
artifacts/synthetic.npz of `export_per_class` images per class. The generator and the set record
their provenance: the fingerprints of exactly the real images the GAN learned from, which the run
also keeps in checkpoints/ before it trains (`lab.provenance_check`: what the set's claims are checked against).
"""
from __future__ import annotations

import numpy as np

from data.imageset import ImageSet
from data.provenance import Provenance, fingerprints
from data.synthetic import save_set
from gans.base import GAN
from gans.checkpoint import save_generator
from gans.config import GanConfig
from gans.sampling import has_labels, synthesize
from gans.train import train, training_images
from lab.engine.runs import Run
from lab.provenance_check import generator_name, member_file, record_fingerprints
from lab.sets import draw

CONFIG = GanConfig


def run(run: Run) -> None:
    config = GanConfig.from_dict(run.settings)
    images = training_images(config)
    provenance, trained_on = record(run, config, images)
    gan = train(config, images, run.hooks())
    keep(run, gan, config, images.class_names, provenance, trained_on)
    run.log_event(type="done", step=gan.steps_done, seconds=round(gan.train_seconds, 2))


def record(run: Run, config: GanConfig, images: ImageSet, member: int | None = None) -> tuple[Provenance, np.ndarray]:
    """Record in `run` the fingerprints of the real images `config`'s GAN (the stack's `member`) is about to learn
    from; return the provenance its files will carry, with those fingerprints."""
    trained_on = fingerprints(images.images)
    record_fingerprints(run, trained_on, member)
    provenance = Provenance.trained(trained_on, dataset=config.spec, split="train",
                                    train_fraction=config.train_fraction, subset_seed=config.seed,
                                    generator=config.gan, run_id=run.id, config=config.to_dict())
    return provenance, trained_on


def keep(run: Run, gan: GAN, config: GanConfig, class_names: list[str], provenance: Provenance,
         trained_on: np.ndarray, member: int | None = None) -> None:
    """Write the trained GAN's generator file and its synthetic set into `run` (for a stack's `member`: the
    files named for it, `member_file`)."""
    save_generator(gan, config, class_names, run.checkpoints / member_file("generator.pt", member), provenance,
                   trained_on)
    if not config.export_per_class:
        return
    run.log_event(type="stage", stage="export", per_class=config.export_per_class,
                  **({} if member is None else {"member": member}))
    made_by = generator_name(run.id, member)
    synthetic = synthesize(gan, config.export_per_class, class_names, seed=config.seed, source=f"{config.gan}:{made_by}")
    save_set(synthetic, run.artifacts, member_file("synthetic.npz", member).removesuffix(".npz"), provenance,
             trained_on, generator=config.gan, run_id=run.id, dataset=config.dataset,
             train_seconds=round(gan.train_seconds, 1), steps=gan.steps_done, labelled=has_labels(gan),
             preset=config.preset, draw=draw(made_by, config.seed, config.export_per_class))
