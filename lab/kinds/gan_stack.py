"""Job kind "gan-stack": per-class GANs of several subsets trained as one stack (gans/stack.py), a study's
recipe generator of each seed when its runs are batched.

Config: GanStackConfig. Member k's files are the ones a "gan" run writes, named for it
(`lab.provenance_check.member_file`): checkpoints/trained_on-m<k>.npy (written before training),
checkpoints/generator-m<k>.pt and artifacts/synthetic-m<k>.npz, each recording the provenance of exactly
member k's real images. The stack's sample grids show one row per member and class; it resumes from
checkpoints/last.pt.
"""
from __future__ import annotations

from gans.stack import GanStackConfig, train_stack
from gans.train import training_images
from lab.engine.runs import Run
from lab.kinds.gan import keep, record

CONFIG = GanStackConfig


def run(run: Run) -> None:
    config = GanStackConfig.from_dict(run.settings)
    images = [training_images(member) for member in config.members]
    records = [record(run, member, own, k) for k, (member, own) in enumerate(zip(config.members, images))]
    gans = train_stack(config, images, run.hooks())
    for k, (member, gan, own, (provenance, trained_on)) in enumerate(zip(config.members, gans, images, records)):
        keep(run, gan, member, own.class_names, provenance, trained_on, k)
    run.log_event(type="done", step=gans[0].steps_done, seconds=round(gans[0].train_seconds, 2))
