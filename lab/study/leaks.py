"""Where a study's fixed synthetic sets came from: refused when their generator saw real images
the arm's classifier cannot see (unless the arm accepts the leak and every result says so)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.datasets import Dataset, DatasetSpec
from data.imageset import ImageSet
from data.provenance import fingerprints, leak_report
from data.synthetic import load_set
from lab.provenance_check import verified_provenance
from lab.sets import resolve_set
from lab.study.config import SetRefused, StudyConfig, set_label


def same_data(a: DatasetSpec, b: DatasetSpec) -> bool:
    return (a.source, a.name, a.size, a.path) == (b.source, b.name, b.size, b.path)


def dataset_of_sets(refs: list[str], root: Path | None = None) -> DatasetSpec | None:
    """The dataset the sets' generators learned from, by their verified provenance (None when none records it);
    sets of different datasets are refused."""
    found: dict[str, DatasetSpec] = {}
    for ref in refs:
        provenance, _ = verified_provenance(resolve_set(ref, root), root)
        if provenance.known:
            found[ref] = provenance.dataset
    specs = list(found.values())
    for ref, spec in found.items():
        if not same_data(spec, specs[0]):
            first = next(iter(found))
            raise SetRefused(f"synthetic sets of different datasets: {first} was made from {specs[0].label}, "
                             f"{ref} from {spec.label}")
    return specs[0] if specs else None


def load_synthetic(path: str | Path, reference: ImageSet) -> ImageSet:
    """A synthetic set checked against the dataset it is meant to augment."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"synthetic set not found: {path}")
    synthetic = load_set(path)
    name = Path(path).name
    if synthetic.images.shape[1:] != reference.images.shape[1:]:
        raise ValueError(f"{name}: images are {synthetic.images.shape[1:]} (H×W×C) but the dataset's are "
                         f"{reference.images.shape[1:]}")
    if len(synthetic) == 0:
        raise ValueError(f"{name} holds no images")
    if synthetic.labels.min() < 0 or synthetic.labels.max() >= reference.num_classes:
        raise ValueError(f"{name}: labels outside 0..{reference.num_classes - 1}")
    return synthetic


def held_out_prints(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints of the validation and the test images that are not also training images.

    A split can hold pixel-identical copies of another split's images (PneumoniaMNIST at 28 px has 10
    training images identical to validation images); a generator that learned from such a training
    image learned from a training image, and counts as such."""
    train = fingerprints(data.train.images)
    return (np.setdiff1d(fingerprints(data.val.images), train), np.setdiff1d(fingerprints(data.test.images), train))


def check_sets(study: StudyConfig, data: Dataset, root: Path | None = None) -> dict[str, str]:
    """Check every fixed-set arm's set against the study's data, before anything trains.

    Refused (SetRefused, naming the set): a set made from another dataset; a set whose generator
    saw any validation or test image; a set whose generator saw real training images outside a
    seed's subset, unless its arm has `allow_leak`. A bad file is a ValueError naming it.
    A set's provenance counts only when it matches the run that wrote it in the runs folder `root`
    (`lab.provenance_check.verified_provenance`); otherwise it is unknown.
    Returns arm name -> the flag every result of that arm carries, for an allowed leak or an
    unknown provenance ("generator trained on N real images, classifier on M").
    """
    val, test = held_out_prints(data)
    subsets = {seed: fingerprints(subset.of(data.train).images) for seed, subset in study.subsets(data.train).items()}
    flags = {}
    for arm in (a for a in study.arms if a.kind_of.fixed_set):
        path, name = resolve_set(arm.synthetic_set, root), f"synthetic set {set_label(arm.synthetic_set)}"
        provenance, trained_on = verified_provenance(path, root)
        if provenance.known and not same_data(provenance.dataset, study.dataset):
            raise SetRefused(f"{name} was made from {provenance.dataset.label}; this study is on "
                             f"{study.dataset.label}")
        load_synthetic(path, data.train)
        for seed, subset in subsets.items():
            report = leak_report(provenance, trained_on, subset, val, test)
            if report.in_val or report.in_test:
                raise SetRefused(f"{name}: its generator learned from {report.in_val} validation and "
                                 f"{report.in_test} test images; a study never uses such a set")
            if report.outside_subset and not arm.allow_leak:
                learners = "its generator and curation models" if provenance.curation_run else "its generator"
                raise SetRefused(
                    f"{name} (arm '{arm.name}'): {learners} learned from {report.generator_images} real "
                    f"training images, {report.outside_subset} of them outside the {report.subset_images} real "
                    f"images the classifier of seed {seed} trains on. Use a recipe arm (the generator trained "
                    f"inside each seed), or set allow_leak: true on the arm to run it anyway (every result "
                    f"then says so).")
            if report.outside_subset or not report.known:
                flags.setdefault(arm.name, report.text)
    return flags


