"""`python -m lab datasets` and `python -m lab import-folder`: what data there is, and bringing in more."""
from __future__ import annotations

from pathlib import Path

from data import folder, medmnist_source
from data.datasets import DatasetSpec
from data.files import read_json
from data.paths import cache_dir, data_dir
from data.text import NAME_LIMIT, clean_text


def add_commands(sub) -> None:
    p = sub.add_parser("datasets")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("import-folder")
    p.add_argument("path", type=Path)
    p.add_argument("--size", type=int, default=64, help="working size in pixels, 8 to 512 (default 64)")
    p.add_argument("--channels", type=int, default=0, choices=[0, 1, 3], help="0 = detect (default)")
    p.add_argument("--name", default="", help="display name (default: the folder's name)")
    p.add_argument("--patient-pattern", default="",
                   help="regular expression whose group 'patient' (or first group) finds the patient in each file's "
                        "path; default: only OCT2017-style names (<CLASS>-<patient>-<n>) are grouped by patient")
    p.add_argument("--detach", action="store_true", help="queue it and return at once")
    p.set_defaults(func=cmd_import_folder)


def cmd_datasets(args) -> int:
    found = medmnist_source.available()
    print(f"MedMNIST files in {data_dir()} (LAB_DATA_DIR):")
    if not found:
        print("  none (MedMNIST flags download on first use when online)")
    for flag, size, path in found:
        print(f"  {flag:16s} {size:4d}px  {path}")
    imported = folder.cached_imports()
    print(f"Imported folders in {cache_dir() / 'folders'}:")
    if not imported:
        print("  none (python -m lab import-folder <path>)")
    for meta in imported:
        counts = ", ".join(f"{n} {c}" for n, c in zip(meta["class_names"], meta["class_counts"]))
        print(f"  {meta['root']}  {meta['size']}px {meta['channels']}ch  {meta['images']} images ({counts})"
              f"  {meta['skipped']} skipped")
    return 0


def cmd_import_folder(args) -> int:
    from lab.engine import jobs
    from lab.cli import follow

    path = args.path.expanduser().resolve()
    # a bad size or folder is refused here, before a job is queued
    spec = DatasetSpec(source="folder", name=clean_text(args.name or path.name, NAME_LIMIT), size=args.size,
                       path=str(path), channels=args.channels, patient_pattern=args.patient_pattern)
    layout = folder.scan(path)
    print(f"{clean_text(str(path))}: {len(layout.files)} images in {len(layout.class_names)} classes "
          f"({', '.join(layout.class_names)})")
    folder.check_split(spec)  # a folder that cannot be split is refused here too
    run = jobs.submit("import", {"dataset": spec.to_dict()}, name=spec.name)
    print(f"{run.id}: queued at {run.path}")
    if args.detach:
        return 0
    code = follow(run)
    if code == 0:
        print_split(read_json(run.artifacts / "import.json", default={}))
    return code


def print_split(summary: dict) -> None:
    """The split an import made: how, then images and patients per split and class."""
    for line in summary.get("split_report", []):
        print(clean_text(str(line)))  # patient ids come from file names
    rows = summary.get("splits", [])
    if rows:
        width = max(len(row["class"]) for row in rows)
        print(f"{'split':5s}  {'class':{width}s}  {'images':>6s}  {'patients':>8s}")
        for row in rows:
            print(f"{row['split']:5s}  {row['class']:{width}s}  {row['images']:6d}  {row['patients']:8d}")
