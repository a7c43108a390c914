"""`python -m lab singan` and `python -m lab gpnn`: one image → variations, or k seed images per class
of a dataset → a labelled synthetic set, by SinGAN (trained, minutes) or GPNN (patch nearest
neighbours, no training, seconds).

  python -m lab singan --image scan.jpeg [--max-side 128] [--preset quick] [--variations 8]
  python -m lab singan --dataset pneumoniamnist --image-index 12
  python -m lab singan --dataset pneumoniamnist --seeds-per-class 2 --variations 10 --preset tiny
  python -m lab singan --folder /data/OCT2017/train --size 128 --seeds-per-class 2 --variations 20
  python -m lab gpnn --image scan.jpeg [--preset quick] [--variations 8] [--no-sifid]
  python -m lab gpnn --dataset pneumoniamnist --seeds-per-class 2 --variations 10

Every model setting (`--max-side`, `--iters`, `--patch-size`, ...) and the job options take their
help, type and default from the config classes (gans/singan.py, gans/singan_train.py, gans/gpnn.py).
A finished image run prints its SIFID and how much its variations vary (summary.json).
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from data.datasets import DatasetSpec
from data.files import read_json
from gans import gpnn
from gans.gpnn import GpnnConfig, GpnnSettings
from gans.singan import SinGanSettings, load_image
from gans.config import make_config
from gans.singan_train import PRESETS, SinGanConfig


@dataclasses.dataclass(frozen=True)
class Generator:
    """What the command of one single-image generator needs to know about it."""
    kind: str
    help: str
    config: type
    settings: type
    presets: tuple[str, ...]
    job_options: tuple[str, ...]


GENERATORS = (
    Generator("singan", "train SinGAN on one image, or per class on k seed images of a dataset", SinGanConfig,
              SinGanSettings, tuple(PRESETS),
              ("variations", "inject_stage", "noise_scale", "seed", "device", "checkpoint_every", "log_every")),
    Generator("gpnn", "GPNN (patch nearest neighbours, no training): variations of one image in seconds, "
                      "or per class of k seed images of a dataset", GpnnConfig, GpnnSettings, tuple(gpnn.PRESETS),
              ("variations", "seed", "device")),
)


def add_commands(sub) -> None:
    for generator in GENERATORS:
        add_command(sub, generator)


def add_command(sub, generator: Generator) -> None:
    p = sub.add_parser(generator.kind, help=generator.help)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="an image file (PNG, JPEG, ...)")
    source.add_argument("--dataset", help="a MedMNIST flag, e.g. pneumoniamnist")
    source.add_argument("--folder", type=Path, help="an image folder (<class>/*.png) as the dataset")
    p.add_argument("--size", type=int, default=28, help="the dataset's working size (default 28)")
    p.add_argument("--image-index", type=int, help="use this image of the dataset's training split")
    p.add_argument("--seeds-per-class", type=int, help="seeds mode: k random training images per class")
    p.add_argument("--seed-indices", type=lambda s: [int(i) for i in s.split(",")],
                   help="seeds mode: hand-picked training indices, comma-separated")
    p.add_argument("--preset", default="quick", choices=generator.presets,
                   help=config_help(generator.config, "preset"))
    for name in generator.job_options:
        add_option(p, generator.config, name, f"default {default_of(generator.config, name)}")
    for field in dataclasses.fields(generator.settings):
        add_option(p, generator.settings, field.name, f"default: the preset's, else {field.default}")
    p.add_argument("--sifid", action=argparse.BooleanOptionalAction, default=True,
                   help=f"{config_help(generator.config, 'sifid')} (default on)")
    p.add_argument("--detach", action="store_true", help="queue it and return at once")
    p.set_defaults(func=lambda args: cmd_single_image(args, generator))


def add_option(parser, config_class, name: str, default_text: str) -> None:
    """`--name` for one config field, typed by its annotation, with the field's help text."""
    kind = typing.get_type_hints(config_class)[name]
    parser.add_argument(f"--{name.replace('_', '-')}", type=kind,
                        help=f"{config_help(config_class, name)} ({default_text})")


def config_help(config_class, name: str) -> str:
    meta = next(f.metadata for f in dataclasses.fields(config_class) if f.name == name)
    return meta.get("help") or meta.get("label") or name


def default_of(config_class, name: str):
    return next(f.default for f in dataclasses.fields(config_class) if f.name == name)


def cmd_single_image(args, generator: Generator) -> int:
    from lab.engine import jobs
    from lab.cli import follow
    from metrics.diversity import figures_text

    names = generator.job_options + tuple(f.name for f in dataclasses.fields(generator.settings))
    fields = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    fields["sifid"] = args.sifid
    if args.image:
        path = args.image.expanduser().resolve()
        image = load_image(path)  # refuse an undecodable file here, before queuing a job
        print(f"{path}: {image.shape[1]}×{image.shape[0]} px, {image.shape[2]} channel(s)")
        fields.update(mode="image", image_path=str(path))
        name = path.stem
    else:
        spec = (DatasetSpec(name=args.dataset, size=args.size) if args.dataset else
                DatasetSpec(source="folder", name=args.folder.name, size=args.size, path=str(args.folder.resolve())))
        fields["dataset"] = spec.to_dict()
        if args.image_index is not None:
            fields.update(mode="image", image_index=args.image_index)
        elif args.seeds_per_class or args.seed_indices:
            fields.update(mode="seeds", seeds_per_class=args.seeds_per_class or 0,
                          seed_indices=args.seed_indices or [])
        else:
            raise ValueError("with a dataset, give --image-index, --seeds-per-class or --seed-indices")
        name = spec.name
    config = make_config(generator.kind, args.preset, **fields)
    from lab.engine.eta import estimate  # loads torch: only for this command

    print(estimate(generator.kind, config.to_dict()).text)
    run = jobs.submit(generator.kind, config.to_dict(), name=name)
    print(f"{run.id}: queued at {run.path}")
    if args.detach:
        return 0
    code = follow(run)
    if code == 0:
        figures = figures_text(read_json(run.artifacts / "summary.json", {}) or {})
        print((f"{figures}\n" if figures else "") + f"samples: {run.samples}\nartifacts: {run.artifacts}")
    return code
