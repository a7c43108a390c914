"""Job kind "sample": draw a synthetic set from a finished generator and register it.

Thousands of images per class take minutes on a CPU, so the Samples page queues this job rather
than drawing them in its script thread. The set lands in this run's artifacts (where the
Quality and Study pages find it), its metadata naming the generator's origin.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from data.config import Config, ConfigError, option
from data.synthetic import save_set
from gans.checkpoint import load_generator
from gans.sampling import has_labels, synthesize
from lab.runs import Run


@dataclass(frozen=True)
class SampleConfig(Config):
    generator: str = option("", help="Path of the generator.pt to draw from.")
    origin: str = option("", help="Where the generator came from: its GAN run's id, or upload:<file name>.")
    per_class: int = option(200, label="Images per class", min=1, max=20_000, step=50,
                            help="Images of every class (all images, for a whole-dataset generator).")
    seed: int = option(0, label="Seed", min=0, max=2 ** 31 - 1, help="Same seed, same images.")
    name: str = option("synthetic", label="Set name", help="File name of the set: letters, digits, - and _.")

    def validate(self) -> None:
        if not self.generator:
            raise ConfigError("SampleConfig.generator: give the path of a generator.pt")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.name):
            raise ConfigError(f"SampleConfig.name: use 1 to 64 letters, digits, - and _; got {self.name!r}")


def run(run: Run) -> None:
    config = SampleConfig.from_dict({k: v for k, v in run.config.items() if k != "kind"})
    gan, gan_config, class_names = load_generator(config.generator)
    images = synthesize(gan, config.per_class, class_names, seed=config.seed, source=config.origin,
                        hooks=run.hooks())
    save_set(images, run.artifacts, config.name, generator=gan_config.gan, run_id=config.origin,
             dataset=gan_config.dataset, seed=config.seed, labelled=has_labels(gan))
