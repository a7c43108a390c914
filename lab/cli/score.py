"""`python -m lab score <set> [<set> …]`: score synthetic sets as a job and print the table."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from data.datasets import DatasetSpec
from lab.engine.runs import find_run

if TYPE_CHECKING:
    from classifier.prescreen import Prescreen
    from metrics.scores import Scores


def add_commands(sub) -> None:
    p = sub.add_parser("score", help="score synthetic sets (set ids, npz paths or run ids) against the real training split")
    p.add_argument("sets", nargs="+", help="synthetic sets: ids (<run id>/<set name>, as `sets list` shows them), "
                                           ".npz paths, or run ids whose artifacts hold sets")
    p.add_argument("--pairing", default="nearest", choices=["nearest", "random", "both"],
                   help="partner of each synthetic image: nearest real image of its class (default) or random")
    p.add_argument("--dataset", default="", help="MedMNIST flag to compare with (default: from the sets' metadata)")
    p.add_argument("--size", type=int, default=28, help="with --dataset: image size (default 28)")
    p.add_argument("--no-distribution", action="store_true",
                   help="skip FID/KID/precision/recall/density/coverage in every feature space")
    p.add_argument("--no-inception", action="store_true",
                   help="skip the Inception-v3 feature space (slow on a CPU: about 0.2-0.5 s per image)")
    p.add_argument("--inception-real", type=int, default=2000,
                   help="training images in Inception's real reference, cached per dataset (default 2000)")
    p.add_argument("--inception-synthetic", type=int, default=1000,
                   help="images of each set seen by Inception; larger sets are sampled down (default 1000)")
    p.add_argument("--small", default="upsample", choices=["upsample", "skip"],
                   help="images below a metric's minimum size: upsample (default) or report not applicable")
    p.add_argument("--prescreen", action=argparse.BooleanOptionalAction, default=None,
                   help="after the image metrics, train the study's classifier on each set alone at a small budget "
                        "and test it on the real test split (the classification accuracy score), beside the same "
                        "classifier trained on the real images (default: on for images of at most 32 px or on a "
                        "CUDA device, where it is cheap)")
    p.add_argument("--out", type=Path,
                   help="directory to copy scores.json, scores.csv, prescreen.json and galleries into")
    p.add_argument("--detach", action="store_true", help="queue it and return at once")
    p.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    from lab.engine import jobs
    from lab.cli import follow
    from classifier.prescreen import Prescreen, prescreen_by_default
    from metrics.scores import Scores
    from data.datasets import load_dataset
    from metrics.scoring import ScoreConfig, check_sets, dataset_spec_for

    paths = resolve_sets(args.sets)
    config = ScoreConfig(sets=[str(p) for p in paths],
                         dataset=DatasetSpec(name=args.dataset, size=args.size).to_dict() if args.dataset else None,
                         pairings=["nearest", "random"] if args.pairing == "both" else [args.pairing],
                         distribution=not args.no_distribution, inception=not args.no_inception,
                         inception_real_images=args.inception_real,
                         inception_synthetic_images=args.inception_synthetic, small=args.small)
    spec = dataset_spec_for(config)
    check_sets(config.sets, load_dataset(spec))  # a set that cannot be scored is refused before queuing
    config = config.replace(prescreen=prescreen_by_default(spec) if args.prescreen is None else args.prescreen)
    run = jobs.submit("score", config.to_dict(), name="score")
    print(f"{run.id}: scoring {len(paths)} set(s), queued at {run.path}")
    print("pre-screen: " + ("on, a classifier trained on each set and one on the real images (--no-prescreen skips it)"
                            if config.prescreen else "off (--prescreen runs it)"))
    if args.detach:
        return 0
    code = follow(run)
    if code != 0:
        return code
    print(format_table(Scores.load(run.artifacts / "scores.json")))
    prescreen = run.artifacts / "prescreen.json"
    if prescreen.exists():
        print(format_prescreen(Prescreen.load(prescreen)))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for f in [run.artifacts / "scores.json", run.artifacts / "scores.csv", *run.artifacts.glob("prescreen.json"),
                  *run.artifacts.glob("memorization_*.png")]:
            shutil.copy2(f, args.out / f.name)
        print(f"wrote {args.out / 'scores.json'} and {args.out / 'scores.csv'}")
    return code


def resolve_sets(refs: list[str]) -> list[Path]:
    """Synthetic set paths from set ids ("<run id>/<set name>", as `sets list` and `study --synthetic` name
    them), npz paths, or run ids (all sets in the run's artifacts)."""
    from lab.sets import resolve_set

    paths = []
    for ref in refs:
        if ref.endswith(".npz") or ("/" in ref and not Path(ref).expanduser().is_dir()):
            paths.append(resolve_set(ref))
            continue
        run = find_run(ref)
        found = sorted(run.artifacts.glob("*.npz"))
        if not found:
            raise LookupError(f"run {run.id} has no synthetic sets in its artifacts")
        paths.extend(found)
    return paths


def format_table(scores: Scores) -> str:
    """A plain-text table: one line per set and pairing, metric means with their intervals; the
    distribution metrics per feature space, the encoder's validation accuracy beside its numbers."""
    from metrics.scores import ENCODER
    from metrics.stats import percent_interval

    lines = []
    if scores.inception is not None:
        lines.append(f"Inception: {scores.inception.feature_space}; {scores.inception.sample_text}")
    if scores.encoder is not None:
        lines.append(f"encoder: {scores.encoder.name}: " + (scores.encoder.withheld or scores.encoder.accuracy_text))
    for s in scores.sets:
        lines.append(f"\n{s.name}  ({s.generator}, {s.count} images)")
        for pairing, block in s.pairings.items():
            cells = [f"{scores.metrics[k].name}{scores.metrics[k].arrow} {e.mean:.4g} [{e.lo:.4g}, {e.hi:.4g}]"
                     for k, e in block.metrics.items()]
            lines.append(f"  {pairing:8s} n={block.pairs}  " + "  ".join(cells))
        for d in s.distribution:
            space = "encoder" if d.space == ENCODER else "Inception"
            note = f", {scores.feature_space_note(d.space)}" if scores.feature_space_note(d.space) else ""
            lines.append(f"  {space:9s} {d.reference:13s} FID↓ {d.fid:.4g}  KID↓ {d.kid:.4g}±{d.kid_std:.2g}  "
                         f"precision↑ {d.precision:.3f}  recall↑ {d.recall:.3f}  "
                         f"density↑ {d.density:.3f}  coverage↑ {d.coverage:.3f}  "
                         f"(real n={d.n_real}, synthetic n={d.n_synthetic}{note})")
        if scores.encoder is not None and scores.encoder.withheld:
            lines.append(f"  encoder   withheld: {scores.encoder.withheld}")
        m = s.memorization
        lines.append(f"  memorization  suspected copies {m.suspected_count}/{s.count} = "
                     f"{percent_interval(m.suspected_fraction)} (expected ≈{m.expected_fraction:.0%} for new "
                     f"images; threshold {m.threshold:.4f} RMS)")
    return "\n".join(lines)


def format_prescreen(prescreen: Prescreen) -> str:
    """The pre-screen as plain text: one line per classifier (each set, the real-only reference, the
    majority class) with its scores on the real test split, or why a set has none."""
    from classifier.evaluate import METRIC_LABELS

    train = prescreen.train
    lines = [f"\npre-screen: train on synthetic, test on real ({train.steps} steps x {train.batch_size} "
             f"images; real test split of {prescreen.test_images} images)"]
    for row in prescreen.table_rows():
        scores = [f"{label} {row[label]:.3f}" for label in METRIC_LABELS.values() if row[label] is not None]
        measured = "  ".join(scores) if scores else f"not measured: {row['note']}"
        lines.append(f"  {row['trained on'][:32]:32s} {measured}")
    return "\n".join(lines)
