"""`python -m lab score <set> [<set> …]`: score synthetic sets as a job and print the table."""
from __future__ import annotations

import shutil
from pathlib import Path

from data.datasets import DatasetSpec


def add_commands(sub) -> None:
    p = sub.add_parser("score", help="score synthetic sets (npz paths or run ids) against the real training split")
    p.add_argument("sets", nargs="+", help="synthetic set .npz paths, or run ids whose artifacts hold sets")
    p.add_argument("--pairing", default="nearest", choices=["nearest", "random", "both"],
                   help="partner of each synthetic image: nearest real image of its class (default) or random")
    p.add_argument("--dataset", default="", help="MedMNIST flag to compare with (default: from the sets' metadata)")
    p.add_argument("--size", type=int, default=28, help="with --dataset: image size (default 28)")
    p.add_argument("--no-distribution", action="store_true", help="skip FID/KID/precision/recall/density/coverage")
    p.add_argument("--small", default="upsample", choices=["upsample", "skip"],
                   help="images below a metric's minimum size: upsample (default) or report not applicable")
    p.add_argument("--out", type=Path, help="directory to copy scores.json, scores.csv and galleries into")
    p.add_argument("--detach", action="store_true", help="queue it and return at once")
    p.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    from lab import jobs
    from lab.cli import follow
    from lab.runs import read_json
    from metrics.job import resolve_sets

    paths = resolve_sets(args.sets)
    config = {"sets": [str(p) for p in paths],
              "pairings": ["nearest", "random"] if args.pairing == "both" else [args.pairing],
              "distribution": not args.no_distribution, "small": args.small}
    if args.dataset:
        config["dataset"] = DatasetSpec(name=args.dataset, size=args.size).to_dict()
    run = jobs.submit("score", config, name="score")
    print(f"{run.id}: scoring {len(paths)} set(s), queued at {run.path}")
    if args.detach:
        return 0
    code = follow(run)
    scores = read_json(run.artifacts / "scores.json")
    if code == 0 and scores:
        print(format_table(scores))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            for f in [run.artifacts / "scores.json", run.artifacts / "scores.csv",
                      *run.artifacts.glob("memorization_*.png")]:
                shutil.copy2(f, args.out / f.name)
            print(f"wrote {args.out / 'scores.json'} and {args.out / 'scores.csv'}")
    return code


def format_table(scores: dict) -> str:
    """A plain-text table: one line per set and pairing, metric means with their intervals."""
    metric_info = scores["metrics"]
    lines = []
    if scores.get("encoder"):
        lines.append(f"distribution metrics in the feature space of {scores['encoder']['name']}")
    for s in scores["sets"]:
        lines.append(f"\n{s['name']}  ({s['generator']}, {s['count']} images)")
        for pairing, block in s["pairings"].items():
            cells = [f"{metric_info[k]['name']}{metric_info[k]['arrow']} {e['mean']:.4g} "
                     f"[{e['lo']:.4g}, {e['hi']:.4g}]" for k, e in block["metrics"].items()]
            lines.append(f"  {pairing:8s} n={next(iter(block['metrics'].values()))['n']}  " + "  ".join(cells))
        for block, title in (("distribution", "vs train split"), ("distribution_class_matched", "class-matched")):
            d = s.get(block)
            if d:
                lines.append(f"  {title:14s} FID↓ {d['fid']:.4g}  KID↓ {d['kid']:.4g}±{d['kid_std']:.2g}  "
                             f"precision↑ {d['precision']:.3f}  recall↑ {d['recall']:.3f}  "
                             f"density↑ {d['density']:.3f}  coverage↑ {d['coverage']:.3f}  (real n={d['n_real']})")
        m = s["memorization"]
        f = m["suspected_fraction"]
        lines.append(f"  memorization  suspected copies {m['suspected_count']}/{s['count']} = {f['mean']:.3f} "
                     f"[{f['lo']:.3f}, {f['hi']:.3f}] (expected ≈{m['expected_fraction']:.2f} for new images; "
                     f"threshold {m['threshold']:.4f} RMS)")
    return "\n".join(lines)
