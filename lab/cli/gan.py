"""`python -m lab train-gan` and `python -m lab sample`: GAN training and sampling, headless."""
from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from data.config import MAX_IMAGES_PER_CLASS, MAX_SEED
from data.datasets import DatasetSpec
from data.files import atomic_write_bytes
from data.synthetic import save_set, to_folder_zip
from gans import PRESET_NAMES, REGISTRY
from gans.config import GanConfig
from gans.sampling import npz_bytes


def add_commands(sub) -> None:
    p = sub.add_parser("train-gan", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="settings for --set KEY=VALUE (VALUE is JSON, or text):\n"
                              + textwrap.indent(GanConfig.option_help(), "  "))
    p.add_argument("--gan", default="dcgan", choices=list(REGISTRY))
    p.add_argument("--preset", default="quick", choices=list(PRESET_NAMES))
    p.add_argument("--dataset", default="dermamnist", help="MedMNIST flag (default dermamnist)")
    p.add_argument("--size", type=int, default=28, help="image size: 28, 32, 64 or 128 (default 28)")
    p.add_argument("--folder", default="", help="train on an image folder instead of MedMNIST")
    p.add_argument("--whole", action="store_true", help="one unconditional generator for all classes "
                                                        "(default: one per class, so images carry labels)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting listed below, e.g. --set steps=3000 --set lr_d=4e-4 "
                        "--set diffaugment=color,translation,cutout --set ema=0.999 (repeatable)")
    p.add_argument("--name", default="", help="a name for the run directory")
    p.add_argument("--detach", action="store_true", help="queue it and return at once")
    p.set_defaults(func=cmd_train_gan)

    p = sub.add_parser("sample")
    p.add_argument("run", help="run id, id prefix, run directory or generator .pt file")
    p.add_argument("--per-class", type=whole_number(1, MAX_IMAGES_PER_CLASS), default=100,
                   help=f"images per class, at most {MAX_IMAGES_PER_CLASS} (default 100)")
    p.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0)
    p.add_argument("--out", type=Path, help="write here too: .npz (arrays) or .zip (class folders of PNGs)")
    p.set_defaults(func=cmd_sample)


def whole_number(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`, so a count is refused before anything is loaded."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}; got {text}")
        return value

    return parse


def cmd_train_gan(args) -> int:
    from gans.config import make_config
    from lab.engine import jobs
    from lab.cli import follow
    from lab.engine.eta import estimate

    if args.folder:
        spec = DatasetSpec(source="folder", name=Path(args.folder).name, size=args.size,
                           path=str(Path(args.folder).resolve()))
    else:
        spec = DatasetSpec(name=args.dataset, size=args.size)
    settings = {"dataset": spec.to_dict(), "per_class": not args.whole,
                **dict(GanConfig.parse_setting(pair) for pair in args.set)}
    config = make_config(settings.pop("gan", args.gan), settings.pop("preset", args.preset), **settings)
    print(estimate("gan", config.to_dict()).text)
    run = jobs.submit("gan", config.to_dict(), name=args.name or f"{args.gan}-{spec.name}")
    print(f"{run.id}: queued at {run.path}")
    return 0 if args.detach else follow(run)


def cmd_sample(args) -> int:
    from gans.checkpoint import load_generator
    from gans.sampling import synthesize
    from lab.engine.runs import find_run

    source = Path(args.run)
    run = None
    if source.suffix == ".pt" and source.is_file():
        path = source
    else:
        run = find_run(args.run)
        path = run.checkpoints / "generator.pt"
        if not path.exists():
            raise FileNotFoundError(f"{run.id} has no generator yet (state: {run.state}); sample a finished run")
    gan, config, class_names = load_generator(path)
    images = synthesize(gan, args.per_class, class_names, seed=args.seed, source=f"{config.gan}:{path}")
    if run is not None:
        saved = save_set(images, run.artifacts, f"samples_{args.per_class}pc_seed{args.seed}", generator=config.gan,
                         run_id=run.id, dataset=config.dataset, seed=args.seed)
        print(f"registered synthetic set {saved}")
    if args.out:
        write_images(images, args.out)
        print(f"wrote {len(images)} images to {args.out}")
    counts = ", ".join(f"{n} {c}" for n, c in zip(images.class_counts(), images.class_names))
    print(f"{len(images)} images ({counts})")
    return 0


def write_images(images, out: Path) -> None:
    if out.suffix == ".zip":
        atomic_write_bytes(out, to_folder_zip(images))
    elif out.suffix == ".npz":
        atomic_write_bytes(out, npz_bytes(images))
    else:
        raise ValueError(f"--out {out}: use a .npz or .zip file name")
