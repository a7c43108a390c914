"""`python -m lab singan`: train a SinGAN on one image, or on k seed images per class of a dataset.

  python -m lab singan --image scan.jpeg [--max-side 128] [--preset quick] [--variations 8]
  python -m lab singan --dataset pneumoniamnist --image-index 12
  python -m lab singan --dataset pneumoniamnist --seeds-per-class 2 --variations 10 --preset tiny
  python -m lab singan --folder /data/OCT2017/train --size 128 --seeds-per-class 2 --variations 20

Every model setting (`--max-side`, `--iters`, `--lr`, ...) and the job options take their help,
type and default from the config classes (gans/singan.py, gans/singan_train.py).
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from data.datasets import DatasetSpec
from gans.singan import SinGanSettings, load_image
from gans.singan_train import PRESETS, SinGanConfig, make_config

JOB_OPTIONS = ("variations", "inject_stage", "noise_scale", "seed", "device", "checkpoint_every", "log_every")
MODEL_OPTIONS = tuple(f.name for f in dataclasses.fields(SinGanSettings))


def add_commands(sub) -> None:
    p = sub.add_parser("singan", help="train SinGAN on one image, or per class on k seed images of a dataset")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="an image file (PNG, JPEG, ...)")
    source.add_argument("--dataset", help="a MedMNIST flag, e.g. pneumoniamnist")
    source.add_argument("--folder", type=Path, help="an image folder (<class>/*.png) as the dataset")
    p.add_argument("--size", type=int, default=28, help="the dataset's working size (default 28)")
    p.add_argument("--image-index", type=int, help="train on this image of the dataset's training split")
    p.add_argument("--seeds-per-class", type=int, help="seeds mode: k random training images per class")
    p.add_argument("--seed-indices", type=lambda s: [int(i) for i in s.split(",")],
                   help="seeds mode: hand-picked training indices, comma-separated")
    p.add_argument("--preset", default="quick", choices=list(PRESETS), help=config_help(SinGanConfig, "preset"))
    for name in JOB_OPTIONS:
        add_option(p, SinGanConfig, name, f"default {default_of(SinGanConfig, name)}")
    for name in MODEL_OPTIONS:
        add_option(p, SinGanSettings, name, f"default: the preset's, else {default_of(SinGanSettings, name)}")
    p.add_argument("--detach", action="store_true", help="queue it and return at once")
    p.set_defaults(func=cmd_singan)


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


def cmd_singan(args) -> int:
    from lab import jobs
    from lab.cli import follow

    fields = {name: getattr(args, name) for name in JOB_OPTIONS + MODEL_OPTIONS if getattr(args, name) is not None}
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
    config = make_config(args.preset, **fields)
    run = jobs.submit("singan", config.to_dict(), name=name)
    print(f"{run.id}: queued at {run.path}")
    if args.detach:
        return 0
    code = follow(run)
    if code == 0:
        print(f"samples: {run.samples}\nartifacts: {run.artifacts}")
    return code
