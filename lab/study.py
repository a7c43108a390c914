"""The augmentation study: does adding a generator's images make the classifier better?

A study trains the same EfficientNet once per (arm, seed) and compares the arms on the real
test split. It is fair by construction:
- every arm takes the same number of optimizer steps (`TrainConfig.steps`);
- for a given seed every arm starts from the same real subset (`stratified_subset(fraction, seed)`);
- a generator learns only from real images the arm's classifier also sees: a recipe arm trains its
  generator inside each seed on exactly that seed's subset; a fixed set whose generator saw other
  real training images is refused unless the arm accepts the leak (and every result then says
  so); a set whose generator saw a validation or test image is refused always (`check_sets`);
- every generator arm is judged against the strongest of the cheap alternatives (class-balanced
  sampling, standard augmentation, both), not only against real only;
- synthetic images enter training data only; model selection uses the real validation split;
  the test split is evaluated once, with the selected weights.

A recipe's generator for one seed is a "gan" or "singan" child run of the study; each (arm, seed)
is a "study-arm" child run with its own directory, events and checkpoint (lab/children.py: free
worker slots take them, the study runs the rest in its own process); the job adapters are in
lab/kinds/study.py. Each arm records what it actually trained and evaluated on
(`composition.json`, `data_seen.npz`), so fairness is checked on the data, not assumed. The
study then aggregates over seeds (mean with a Student-t 95% interval), compares the arms seed by
seed (paired t) and writes `summary.json` (`StudySummary`, what the Study page, the CLI, the
report and the leaderboard read). Its verdicts name every significant drop, the minimum
detectable difference and whether the baseline beats the trivial classifier at all.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from classifier.evaluate import METRICS, Trivial, evaluate
from classifier.train import BALANCE_MODES, Augment, TrainConfig, TrainResult, train_classifier
from data.augment import AUGMENTATIONS, apply, build_pipeline, default_pipeline
from data.config import (MAX_IMAGES_PER_CLASS, MAX_SEED, MAX_SEEDS_PER_CLASS, MAX_STUDY_SEEDS, MAX_VARIATIONS,
                         Config, ConfigError, option)
from data.datasets import Dataset, DatasetSpec, load_dataset
from data.files import atomic_write_json, read_json
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet
from data.provenance import digest, fingerprints, leak_report
from data.synthetic import load_set
from gans import REGISTRY, SINGLE_IMAGE
from gans.config import make_config as gan_config
from gans.gpnn import make_config as gpnn_config
from gans.singan_train import make_config as singan_config
from lab.children import read_children
from lab.provenance_check import verified_provenance
from lab.runs import Run, list_runs
from lab.sets import resolve_set
from lab.study_verdicts import trivial_check, verdict
from metrics.memorization import memorization
from metrics.pairing import nearest_neighbours
from metrics.stats import Estimate, PairedComparison, paired_comparison, t_interval

ARM_KINDS = ("real", "standard_aug", "synthetic", "synthetic_only", "recipe")
REFERENCE_KINDS = ("real", "standard_aug")  # the cheap alternatives a generator must beat
FIXED_SET_KINDS = ("synthetic", "synthetic_only")  # the arms that train on a given synthetic set
SYNTHETIC_KINDS = (*FIXED_SET_KINDS, "recipe")  # the arms that train on generated images
GENERATORS = (*REGISTRY, *SINGLE_IMAGE)
MIX_MODES = ("ratio", "balance")
PRESETS = ("quick", "paper")
SUMMARY_FILE = "summary.json"
RECIPE_SET_FILES = {"gan": "synthetic.npz", "singan": "singan_variations.npz",
                    "gpnn": "gpnn_variations.npz"}  # a generator run's set
STUDY_OWNED = {"dataset", "train_fraction", "seed", "per_class", "export_per_class", "mode", "seed_indices",
               "seeds_per_class", "variations"}  # generator settings the study sets itself

QUICK_STEPS, QUICK_BATCH = 400, 64  # the quick budget at DermaMNIST's 10% (701 images)
QUICK_MIN_STEPS = 50
QUICK_EPOCHS = 40  # passes over the real subset the quick budget aims for, within those bounds
RULE_OF_THUMB_SPREAD = 0.02  # seed-to-seed standard deviation of a test score when no study measured it


class SetRefused(ValueError):
    """A synthetic set a study must not use as configured; the message names the set and why."""


# --- configs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecipeConfig(Config):
    """How a recipe arm's generator is made: once per seed, from exactly that seed's real subset."""
    generator: str = option("dcgan", label="Generator", choices=GENERATORS,
                            help="a GAN of the registry, or singan / gpnn (k seed images per class, m variations "
                                 "each)")
    preset: str = option("quick", label="Preset", help="the generator's preset (SinGAN at 28 px: tiny)")
    per_class: bool = option(True, label="One GAN per class",
                             help="GANs: an unconditional GAN per class, so its images carry labels")
    seeds_per_class: int = option(2, label="SinGAN seeds per class", min=1, max=MAX_SEEDS_PER_CLASS,
                                  help="singan / gpnn: k real images per class, drawn from the seed's subset")
    variations: int = option(8, label="SinGAN variations per seed", min=1, max=MAX_VARIATIONS,
                             help="singan / gpnn: m images per seed image")
    settings: dict = option(factory=dict, label="Generator settings",
                            help='overrides of the generator\'s own config, e.g. {"steps": 800}')

    def validate(self) -> None:
        owned = sorted(STUDY_OWNED & set(self.settings))
        if owned:
            raise ConfigError(f"RecipeConfig.settings: the study sets {', '.join(owned)} itself")
        if self.generator not in SINGLE_IMAGE and not (self.per_class or REGISTRY[self.generator].conditional):
            raise ConfigError(f"RecipeConfig.per_class: an unconditional {self.generator} trained on the whole "
                              f"subset draws unlabelled images; train one per class")
        per_class = self.seeds_per_class * self.variations
        if self.generator in SINGLE_IMAGE and per_class > MAX_IMAGES_PER_CLASS:
            raise ConfigError(f"RecipeConfig: seeds_per_class × variations = {per_class} images per class; at most "
                              f"{MAX_IMAGES_PER_CLASS}")
        self.job(DatasetSpec(), 1.0, 0, images_per_class=1, seed_indices=[0])  # a bad preset or setting fails here

    @property
    def key(self) -> str:
        """Names this recipe's generator runs: recipes with the same settings share them."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return f"{self.generator}-{self.preset}-{hashlib.blake2b(text.encode(), digest_size=3).hexdigest()}"

    @property
    def label(self) -> str:
        if self.generator in SINGLE_IMAGE:
            return (f"{SINGLE_IMAGE[self.generator]} {self.preset}, {self.seeds_per_class} seeds per class × "
                    f"{self.variations} variations")
        return f"{REGISTRY[self.generator].title} {self.preset}{', one per class' if self.per_class else ''}"

    def job(self, dataset: DatasetSpec, train_fraction: float, seed: int, images_per_class: int,
            seed_indices: list[int]) -> tuple[str, dict]:
        """The job kind and config of this recipe's generator run for one seed: a GAN learns from the
        stratified `train_fraction` of the training split drawn with `seed` (the seed's subset), a
        SinGAN or GPNN from the training images at `seed_indices` (drawn from that subset)."""
        if self.generator in SINGLE_IMAGE:
            make_config = singan_config if self.generator == "singan" else gpnn_config
            config = make_config(self.preset, **{**self.settings, "mode": "seeds", "dataset": dataset.to_dict(),
                                                 "seed_indices": list(seed_indices), "seeds_per_class": 0,
                                                 "variations": self.variations, "seed": seed})
            return self.generator, config.to_dict()
        config = gan_config(self.generator, self.preset, **{
            **self.settings, "dataset": dataset.to_dict(), "train_fraction": train_fraction, "seed": seed,
            "per_class": self.per_class, "export_per_class": images_per_class})
        return "gan", config.to_dict()


@dataclass(frozen=True)
class ArmConfig(Config):
    name: str = option(label="Arm name", help="unique within the study; names its runs and its results")
    kind: str = option("real", label="Kind", choices=ARM_KINDS,
                       help="real: the real subset only; standard_aug: real with albumentations; recipe: real + "
                            "a generator trained inside each seed on its subset; synthetic: real + a fixed "
                            "synthetic set; synthetic_only: the fixed set alone (tested on real)")
    synthetic_set: str | None = option(None, label="Synthetic set",
                                       help="fixed-set arms: a set id (<run id>/<set name>) or an .npz path "
                                            "(stored absolute)")
    recipe: RecipeConfig | None = None  # recipe arms: the generator made inside each seed
    mix: str = option("ratio", label="Mix", choices=MIX_MODES,
                      help="ratio: ratio × (real count) synthetic images; balance: top up every class to the "
                           "largest real class")
    ratio: float = option(1.0, label="Synthetic per real image", min=0, min_exclusive=True)
    balance: str = option("none", label="Class balance", choices=BALANCE_MODES,
                          help="sampler: torchsampler's ImbalancedDatasetSampler; loss: class-weighted loss")
    allow_leak: bool = option(False, label="Allow a leaky set",
                              help="fixed-set arms: run a set whose generator saw real training images the "
                                   "classifier does not (every result of the arm then says so)")
    augment: list[str] | None = option(None, label="Augmentations",
                                       help="standard_aug arms: data.augment transforms in order; none = the "
                                            "dataset's standard pipeline (data.augment.default_pipeline)")
    augment_strength: float = option(1.0, label="Augmentation strength", min=0, max=1, min_exclusive=True)
    augment_p: float = option(0.5, label="Probability per transform", min=0, max=1)

    def validate(self) -> None:
        where = f"ArmConfig '{self.name}'"
        if not self.name.strip():
            raise ConfigError("ArmConfig.name: an arm needs a name")
        if self.kind in FIXED_SET_KINDS and not self.synthetic_set:
            raise ConfigError(f"{where}: a {self.kind} arm needs a synthetic_set")
        if self.kind not in FIXED_SET_KINDS and self.synthetic_set:
            raise ConfigError(f"{where}: a {self.kind} arm takes no synthetic_set (got {self.synthetic_set})")
        if (self.kind == "recipe") != (self.recipe is not None):
            raise ConfigError(f"{where}: a recipe arm, and only a recipe arm, needs a recipe")
        if self.allow_leak and self.kind not in FIXED_SET_KINDS:
            raise ConfigError(f"{where}: allow_leak applies to fixed synthetic sets only")
        unknown = [n for n in self.augment or [] if n not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"{where}: unknown augmentation(s) {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(AUGMENTATIONS)})")
        if self.kind == "standard_aug" and self.augment == []:
            raise ConfigError(f"{where}: a standard_aug arm needs at least one augmentation")
        if self.synthetic_set and self.synthetic_set.endswith(".npz"):  # a path: absolute, so it names one file
            object.__setattr__(self, "synthetic_set", str(Path(self.synthetic_set).expanduser().resolve()))


@dataclass(frozen=True)
class StudyConfig(Config):
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    train_fraction: float = option(0.1, label="Real training fraction", min=0, max=1, min_exclusive=True,
                                   help="share of the real training split each seed trains on")
    seeds: list[int] = option(factory=lambda: [0, 1, 2], label="Seeds",
                              help="one run per arm and seed; the seed also picks the real subset")
    arms: list[ArmConfig] = field(default_factory=lambda: [ArmConfig("real only")])
    train: TrainConfig = field(default_factory=TrainConfig)
    primary_metric: str = option("balanced_accuracy", label="Primary metric", choices=METRICS,
                                 help="the test metric the verdicts speak of")
    preset: str = option("", label="Preset", choices=("", *PRESETS), help="the preset it started from, if any")

    def validate(self) -> None:
        if not self.arms:
            raise ConfigError("StudyConfig.arms: a study needs at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ConfigError(f"StudyConfig.arms: arm names must be unique; got {names}")
        seeds = self.seeds
        if len(seeds) > MAX_STUDY_SEEDS:
            raise ConfigError(f"StudyConfig.seeds: {len(seeds)} seeds; at most {MAX_STUDY_SEEDS} (each one trains "
                              f"every arm once)")
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0 or max(seeds) > MAX_SEED:
            raise ConfigError(f"StudyConfig.seeds: give distinct seeds from 0 to {MAX_SEED}; got {seeds}")
        if self.train.balance != "none":
            raise ConfigError("StudyConfig.train.balance: class balance is a setting of each arm (ArmConfig.balance)")

    @property
    def baseline(self) -> ArmConfig:
        """The arm every other arm is compared with: the first plain real-only arm, else the first real arm, else
        the first arm."""
        return next((a for a in self.arms if a.kind == "real" and a.balance == "none"),
                    next((a for a in self.arms if a.kind == "real"), self.arms[0]))

    def recipes(self) -> list[tuple[RecipeConfig, list[ArmConfig]]]:
        """Each distinct recipe with the arms that use it (they share its generator runs)."""
        found: dict[str, tuple[RecipeConfig, list[ArmConfig]]] = {}
        for arm in self.arms:
            if arm.recipe is not None:
                found.setdefault(arm.recipe.key, (arm.recipe, []))[1].append(arm)
        return list(found.values())


@dataclass(frozen=True)
class ArmRunConfig(Config):
    """One (arm, seed) of a study: everything a study-arm run needs, so it reproduces from its config alone."""
    arm: ArmConfig
    seed: int = option(0, min=0, max=MAX_SEED)
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    train_fraction: float = option(0.1, min=0, max=1, min_exclusive=True)
    train: TrainConfig = field(default_factory=TrainConfig)
    recipe_set: str | None = None  # recipe arms: the set this seed's generator made (id or path)

    def validate(self) -> None:
        if (self.arm.kind == "recipe") != bool(self.recipe_set):
            raise ConfigError("ArmRunConfig.recipe_set: a recipe arm, and only a recipe arm, names its "
                              "generator's set")

    @property
    def synthetic_set(self) -> str | None:
        return self.recipe_set if self.arm.kind == "recipe" else self.arm.synthetic_set


# --- presets ------------------------------------------------------------------------------------

def reference_arms(augment: list[str] | None = None) -> list[ArmConfig]:
    """The cheap alternatives every generator must beat: real only, class-balanced sampling,
    standard augmentation (`augment`, default the dataset's standard pipeline), and both."""
    return [ArmConfig("real only"), ArmConfig("real + sampler", balance="sampler"),
            ArmConfig("real + standard aug", "standard_aug", augment=augment),
            ArmConfig("real + aug + sampler", "standard_aug", augment=augment, balance="sampler")]


def recipe_arms(generators: list[str], size: int = 28, **recipe) -> list[ArmConfig]:
    """One "real + <generator> recipe" arm per generator, at its quick preset (SinGAN: tiny at ≤ 32 px)."""
    arms = []
    for generator in generators:
        preset_name = "tiny" if generator == "singan" and size <= 32 else "quick"
        arms.append(ArmConfig(f"real + {generator} recipe", "recipe",
                              recipe=RecipeConfig(generator, preset_name, **recipe)))
    return arms


def synthetic_arms(refs: list[str], allow_leak: bool = False) -> list[ArmConfig]:
    """One "real + <set>" arm per synthetic set (id or .npz path)."""
    return [ArmConfig(f"real + {set_label(ref)}", "synthetic", str(ref), allow_leak=allow_leak) for ref in refs]


def set_label(ref: str) -> str:
    """A set's id (<run id>/<set name>) as given, or the id-like tail of its path."""
    path = Path(ref)
    if not ref.endswith(".npz"):
        return ref
    return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "artifacts" else path.stem


def quick_budget(class_counts: np.ndarray) -> TrainConfig:
    """The quick preset's budget for a real subset of these class counts: about QUICK_EPOCHS passes over it
    (at least QUICK_MIN_STEPS, at most QUICK_STEPS steps), in batches no larger than the subset, evaluated
    four times. 10% of DermaMNIST (701 images) gets 400 steps of 64; 38 images get 50 steps of 38."""
    images = int(np.sum(class_counts))
    batch = max(1, min(QUICK_BATCH, images))
    steps = int(np.clip(math.ceil(QUICK_EPOCHS * images / batch), QUICK_MIN_STEPS, QUICK_STEPS))
    return TrainConfig(steps=steps, batch_size=batch, eval_every=max(1, steps // 4))


def preset(name: str, dataset: DatasetSpec | dict | None = None, train_fraction: float | None = None,
           synthetic_sets: list[str] = (), recipes: list[str] = (), allow_leak: bool = False) -> StudyConfig:
    """Both presets carry the reference arms (`reference_arms`), then one recipe arm per generator in
    `recipes` and one fixed-set arm per set in `synthetic_sets`.

    `quick`: 10% of the data, a budget sized to that subset (`quick_budget`: 400 steps × 64 on
    DermaMNIST), 3 seeds — minutes on a laptop CPU. `paper`: the full training split for about 100
    epochs' worth of steps at batch 128 (MedMNIST's protocol)."""
    spec = dataset if isinstance(dataset, DatasetSpec) else DatasetSpec.from_dict(dataset or {})
    arms = [*reference_arms(), *recipe_arms(list(recipes), spec.size), *synthetic_arms(list(synthetic_sets),
                                                                                        allow_leak)]
    if name == "quick":
        fraction = train_fraction or 0.1
        counts = load_dataset(spec).train.stratified_subset(fraction, 0).class_counts()
        return StudyConfig(dataset=spec, train_fraction=fraction, seeds=[0, 1, 2], arms=arms,
                           train=quick_budget(counts), preset="quick")
    if name == "paper":
        return StudyConfig(dataset=spec, train_fraction=train_fraction or 1.0, seeds=[0, 1, 2], arms=arms,
                           train=TrainConfig(steps=5500, batch_size=128, lr=1e-3, eval_every=500), preset="paper")
    raise ConfigError(f"Unknown study preset '{name}' (choose {' or '.join(PRESETS)})")


def arm_runs(study: StudyConfig, recipe_sets: dict[str, str] | None = None) -> dict[str, tuple[str, dict]]:
    """The study's study-arm jobs, "arm|seed" -> (run name, config); seed-major, so pairs complete early.
    `recipe_sets`: "<recipe key>|<seed>" -> the set that seed's recipe generator made (recipe arms)."""
    recipe_sets = recipe_sets or {}
    return {f"{arm.name}|{seed}": (f"{arm.name}-s{seed}", ArmRunConfig(
        arm=arm, seed=seed, dataset=study.dataset, train_fraction=study.train_fraction,
        train=study.train.replace(balance=arm.balance),
        recipe_set=recipe_sets[f"{arm.recipe.key}|{seed}"] if arm.recipe else None).to_dict())
        for seed in study.seeds for arm in study.arms}


# --- the synthetic sets: where they came from ---------------------------------------------------

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
    subsets = {seed: fingerprints(data.train.stratified_subset(study.train_fraction, seed).images)
               for seed in study.seeds}
    flags = {}
    for arm in (a for a in study.arms if a.kind in FIXED_SET_KINDS):
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
                raise SetRefused(
                    f"{name} (arm '{arm.name}'): its generator learned from {report.generator_images} real "
                    f"training images, {report.outside_subset} of them outside the {report.subset_images} real "
                    f"images the classifier of seed {seed} trains on. Use a recipe arm (the generator trained "
                    f"inside each seed), or set allow_leak: true on the arm to run it anyway (every result "
                    f"then says so).")
            if report.outside_subset or not report.known:
                flags.setdefault(arm.name, report.text)
    return flags


# --- recipe arms: a generator per seed, trained on that seed's subset ---------------------------

def images_per_class(arm: ArmConfig, counts: np.ndarray) -> int:
    """How many images of every class a class-balanced generator must make for `arm` on a subset of `counts`."""
    if arm.mix == "balance":
        return max(1, int(counts.max() - counts.min()))
    return max(1, math.ceil(arm.ratio * counts.sum() / len(counts)))


def training_indices(train: ImageSet, images: np.ndarray) -> list[int]:
    """Indices of `images` in the training split, found by fingerprint (identical pixels are the same picture)."""
    where = {p: i for i, p in enumerate(fingerprints(train.images).tolist())}
    return [where[p] for p in fingerprints(images).tolist()]


def generator_runs(study: StudyConfig, data: Dataset) -> dict[str, tuple[str, str, dict]]:
    """The recipes' generator runs, "<recipe key>|<seed>" -> (job kind, run name, config): one per distinct
    recipe and seed, making as many images per class as the most demanding arm that uses it draws."""
    from lab.kinds.singan import choose_seeds

    runs = {}
    for seed in study.seeds:
        subset = data.train.stratified_subset(study.train_fraction, seed)
        for recipe, arms in study.recipes():
            per_class = max(images_per_class(arm, subset.class_counts()) for arm in arms)
            seed_indices = [] if recipe.generator not in SINGLE_IMAGE else \
                training_indices(data.train, subset.images[choose_seeds(subset, recipe.seeds_per_class, seed)])
            kind, config = recipe.job(study.dataset, study.train_fraction, seed, per_class, seed_indices)
            runs[f"{recipe.key}|{seed}"] = (kind, f"{recipe.key}-s{seed}", config)
    return runs


def check_recipe_set(path: Path, subset: ImageSet, data: Dataset, exact: bool) -> None:
    """A recipe generator must have learned from the seed's subset only (a GAN: from exactly all of it),
    by the fingerprints its set records, verified against its run (the study made that run in its own
    runs folder: `path` is `<runs>/<kind>/<run id>/artifacts/<set>.npz`); otherwise the study stops here,
    naming the set."""
    provenance, trained_on = verified_provenance(path, Path(path).resolve().parents[3])
    report = leak_report(provenance, trained_on, fingerprints(subset.images), *held_out_prints(data))
    if not report.known or report.outside_subset or report.in_val or report.in_test or \
            (exact and digest(trained_on) != digest(fingerprints(subset.images))):
        raise RuntimeError(f"recipe generator set {path}: {report.text}; it must learn from the seed's subset only")


# --- one (arm, seed) ----------------------------------------------------------------------------

def training_set(arm: ArmConfig, real: ImageSet, synthetic: ImageSet | None, seed: int) -> tuple[ImageSet, np.ndarray]:
    """The arm's training images and a bool per image: True where it is synthetic."""
    if arm.kind not in SYNTHETIC_KINDS:
        return real, np.zeros(len(real), dtype=bool)
    rng = np.random.default_rng([seed, 1])
    if arm.mix == "balance":
        target = real.class_counts().max()
        pick = []
        for label, have in enumerate(real.class_counts()):
            pool = np.flatnonzero(synthetic.labels == label)
            want = min(len(pool), target) if arm.kind == "synthetic_only" else min(len(pool), target - have)
            pick.append(rng.choice(pool, size=max(0, want), replace=False))
        pick = np.sort(np.concatenate(pick)).astype(np.int64)
    else:
        want = min(len(synthetic), max(1, round(arm.ratio * len(real))))
        pick = np.sort(rng.choice(len(synthetic), size=want, replace=False))
    chosen = synthetic.take(pick)
    if arm.kind == "synthetic_only":
        return ImageSet(chosen.images, chosen.labels, real.class_names, "train", chosen.source), \
            np.ones(len(chosen), dtype=bool)
    images = np.concatenate([real.images, chosen.images])
    labels = np.concatenate([real.labels, chosen.labels])
    is_synthetic = np.concatenate([np.zeros(len(real), bool), np.ones(len(chosen), bool)])
    return ImageSet(images, labels, real.class_names, "train", f"{real.source}+{chosen.source}"), is_synthetic


def standard_augment(arm: ArmConfig, dataset_name: str) -> Augment | None:
    """A standard-augmentation arm's albumentations pipeline as a loop callback, else None."""
    if arm.kind != "standard_aug":
        return None
    names = default_pipeline(dataset_name) if arm.augment is None else arm.augment
    pipeline = build_pipeline(names, strength=arm.augment_strength, p=arm.augment_p)
    return lambda images, seed: apply(pipeline, images, seed)


def copy_rate(synthetic: np.ndarray, subset: ImageSet, heldout: ImageSet) -> float:
    """Share of the synthetic images (uint8 N×H×W×C) that are suspected copies of the real `subset`:
    closer to it than 99% of real held-out images are (metrics/memorization.py)."""
    images = ImageSet(synthetic, np.zeros(len(synthetic), np.int64), subset.class_names, "synthetic")
    memo = memorization(nearest_neighbours(images, subset).any_distance,
                        nearest_neighbours(heldout, subset).any_distance)
    return float(memo.suspected.mean())


@dataclass
class ArmOutcome:
    """What one (arm, seed) produced; lab/kinds/study.py writes each part to its file."""
    trained: TrainResult  # the selected classifier (best.pt) and its training record
    result: dict  # result.json: test and validation metrics, steps, history (+ copy_rate for recipe arms)
    composition: dict  # composition.json: image counts per split, the real subset's digest
    seen: dict[str, np.ndarray]  # data_seen.npz: fingerprints of the images drawn, validated and tested on


def train_arm(config: ArmRunConfig, hooks: Hooks = NO_HOOKS, root: Path | None = None) -> ArmOutcome:
    """Train one arm on one seed (resumable through `hooks.checkpoints`) and test it once; `root` is the
    runs folder a set id is looked up in."""
    arm, seed = config.arm, config.seed
    data = load_dataset(config.dataset)
    real = data.train.stratified_subset(config.train_fraction, seed)
    synthetic = load_synthetic(resolve_set(config.synthetic_set, root), real) if config.synthetic_set else None
    train, is_synthetic = training_set(arm, real, synthetic, seed)
    val, test = data.val, data.test
    hooks.event(type="stage", stage="train", train_images=len(train), synthetic=int(is_synthetic.sum()))
    trained = train_classifier(train.images, train.labels, val.images, val.labels, data.train.num_classes,
                               config.train, seed=seed, augment=standard_augment(arm, config.dataset.name),
                               hooks=hooks)
    hooks.progress(trained.steps, config.train.steps, message="testing", force=True)
    metrics = evaluate(trained.model, test.images, test.labels)

    drawn = trained.drawn
    seen = {"train": fingerprints(train.images[drawn]), "train_synthetic": is_synthetic[drawn],
            "val": fingerprints(val.images), "test": fingerprints(test.images)}
    composition = {
        "train": {"images": len(train), "real": int((~is_synthetic).sum()), "synthetic": int(is_synthetic.sum()),
                  "drawn": int(drawn.sum()), "drawn_synthetic": int((drawn & is_synthetic).sum()),
                  "real_subset": digest(fingerprints(real.images)),
                  "class_counts": train.class_counts().tolist()},
        "val": {"images": len(val), "synthetic": 0, "class_counts": val.class_counts().tolist()},
        "test": {"images": len(test), "synthetic": 0, "class_counts": test.class_counts().tolist()},
    }
    result = {"arm": arm.name, "kind": arm.kind, "seed": seed, "steps": trained.steps,
              "images_seen": trained.images_seen, "best_step": trained.best_step,
              "train_seconds": round(trained.seconds, 2), "threads": torch.get_num_threads(), "test": metrics,
              "val": {k: trained.best_val[k] for k in METRICS}, "history": trained.history}
    if arm.kind == "recipe":
        result["copy_rate"] = copy_rate(train.images[is_synthetic], real, val)
    return ArmOutcome(trained, result, composition, seen)


# --- the summary: every arm over the seeds ------------------------------------------------------

def _comparison(d: dict) -> PairedComparison:
    return PairedComparison(Estimate.from_dict(d), float(d["p_value"]))


def _comparisons(d: dict | None) -> dict[str, PairedComparison]:
    return {m: _comparison(c) for m, c in (d or {}).items()}


@dataclass
class ArmSummary:
    """One arm over the seeds on the real test split; scores are fractions in [0, 1]."""
    arm: str
    kind: str
    synthetic_set: str | None  # fixed-set arms: the set's id or path
    metrics: dict[str, Estimate]  # METRICS -> mean with its 95% t-interval over seeds
    per_class_recall: list[float]  # mean over seeds, one per class
    confusion: list[list[int]]  # summed over seeds, rows = truth
    steps: list[int]  # distinct optimizer-step counts of its runs: one value when the budget was equal
    seeds: list[int]
    verdict: str = ""
    # The paired comparison with the baseline (arm − baseline, METRICS -> delta); empty for the baseline.
    vs_baseline: dict[str, PairedComparison] = field(default_factory=dict)
    per_class_recall_delta: list[float] | None = None  # recall − the baseline's, per class
    balance: str = "none"  # its class balancing (BALANCE_MODES)
    recipe: str = ""  # recipe arms: the generator recipe trained inside each seed
    leak: str = ""  # fixed sets: "generator trained on N real images, classifier on M" when it saw more or unknown
    copy_rate: Estimate | None = None  # recipe arms: share of its synthetic images that copy its seed's subset
    reference: str = ""  # generator arms: the strongest reference arm on the primary metric
    # The paired comparison with `reference` when it is not the baseline (else it is `vs_baseline`).
    vs_reference: dict[str, PairedComparison] = field(default_factory=dict)

    @property
    def is_generator_arm(self) -> bool:
        return self.kind in SYNTHETIC_KINDS

    @property
    def against_reference(self) -> dict[str, PairedComparison]:
        """The comparison with the strongest reference arm (the baseline's when that is the strongest)."""
        return self.vs_reference or self.vs_baseline

    def to_dict(self) -> dict:
        d = {"arm": self.arm, "kind": self.kind, "synthetic_set": self.synthetic_set, "balance": self.balance,
             "recipe": self.recipe, "leak": self.leak,
             "metrics": {m: e.to_dict() for m, e in self.metrics.items()},
             "per_class_recall": self.per_class_recall, "confusion": self.confusion, "steps": self.steps,
             "seeds": self.seeds}
        if self.copy_rate is not None:
            d["copy_rate"] = self.copy_rate.to_dict()
        if self.vs_baseline:
            d["vs_baseline"] = {m: c.to_dict() for m, c in self.vs_baseline.items()}
            d["per_class_recall_delta"] = self.per_class_recall_delta
        if self.reference:
            d["reference"] = self.reference
        if self.vs_reference:
            d["vs_reference"] = {m: c.to_dict() for m, c in self.vs_reference.items()}
        d["verdict"] = self.verdict
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArmSummary":
        return cls(arm=d["arm"], kind=d["kind"], synthetic_set=d["synthetic_set"],
                   metrics={m: Estimate.from_dict(e) for m, e in d["metrics"].items()},
                   per_class_recall=list(d["per_class_recall"]), confusion=d["confusion"], steps=list(d["steps"]),
                   seeds=list(d["seeds"]), verdict=d["verdict"], vs_baseline=_comparisons(d.get("vs_baseline")),
                   per_class_recall_delta=d.get("per_class_recall_delta"), balance=d.get("balance", "none"),
                   recipe=d.get("recipe", ""), leak=d.get("leak", ""),
                   copy_rate=Estimate.from_dict(d["copy_rate"]) if d.get("copy_rate") else None,
                   reference=d.get("reference", ""), vs_reference=_comparisons(d.get("vs_reference")))


@dataclass
class StudySummary:
    """summary.json: what a finished study found, arm by arm (the baseline first among equals)."""
    dataset: DatasetSpec
    train_fraction: float
    seeds: list[int]
    primary_metric: str  # one of METRICS
    baseline: str  # the name of the arm the others are compared with
    class_names: list[str]
    study_run: str | None  # the study's run directory
    arms: list[ArmSummary]
    trivial: Trivial | None = None  # None in summaries written before it was recorded
    baseline_margin: Estimate | None = None  # the baseline's accuracy − the majority-class rate, over seeds
    cannot_judge: str = ""  # why the baseline does not clearly beat the trivial classifier; "" when it does
    strongest_reference: str = ""  # the reference arm with the best mean primary metric

    def arm(self, name: str) -> ArmSummary:
        return next(a for a in self.arms if a.arm == name)

    def gains(self) -> list[tuple[ArmSummary, PairedComparison]]:
        """Each arm that trained on a fixed synthetic set, with its gain on the primary metric over the
        strongest reference arm."""
        return [(arm, arm.against_reference[self.primary_metric]) for arm in self.arms
                if arm.synthetic_set and self.primary_metric in arm.against_reference]

    def to_dict(self) -> dict:
        return {"dataset": self.dataset.to_dict(), "train_fraction": self.train_fraction, "seeds": self.seeds,
                "primary_metric": self.primary_metric, "baseline": self.baseline, "class_names": self.class_names,
                "study_run": self.study_run,
                "trivial": self.trivial.to_dict() if self.trivial else None,
                "baseline_margin": self.baseline_margin.to_dict() if self.baseline_margin else None,
                "cannot_judge": self.cannot_judge, "strongest_reference": self.strongest_reference,
                "arms": [a.to_dict() for a in self.arms]}

    @classmethod
    def from_dict(cls, d: dict) -> "StudySummary":
        return cls(dataset=DatasetSpec.from_dict(d["dataset"]), train_fraction=float(d["train_fraction"]),
                   seeds=list(d["seeds"]), primary_metric=d["primary_metric"], baseline=d["baseline"],
                   class_names=list(d["class_names"]), study_run=d["study_run"],
                   arms=[ArmSummary.from_dict(a) for a in d["arms"]],
                   trivial=Trivial.from_dict(d["trivial"]) if d.get("trivial") else None,
                   baseline_margin=Estimate.from_dict(d["baseline_margin"]) if d.get("baseline_margin") else None,
                   cannot_judge=d.get("cannot_judge", ""), strongest_reference=d.get("strongest_reference", ""))


def write_summary(folder: Path, summary: StudySummary) -> Path:
    return atomic_write_json(Path(folder) / SUMMARY_FILE, summary.to_dict())


def read_summary(study_run: Run) -> StudySummary | None:
    """The summary of a finished study, or None while it has none; a malformed file is a ValueError naming it."""
    path = study_run.artifacts / SUMMARY_FILE
    if not path.exists():
        return None
    data = read_json(path)
    try:
        return StudySummary.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as e:
        raise ValueError(f"{path} is not a study summary: {type(e).__name__}: {e}") from None


def summarize(study: StudyConfig, results: list[dict], class_names: list[str], trivial: Trivial,
              flags: dict[str, str] | None = None, study_run: str | None = None) -> StudySummary:
    """Per arm, mean ± 95% t-interval per metric over its seeds (`results`: the arms' result.json), the
    paired comparisons with the baseline and, for generator arms, with the strongest reference arm;
    `flags`: arm name -> the leak flag of `check_sets`. Every arm gets its verdict."""
    flags = flags or {}
    by_arm = {arm.name: {r["seed"]: r for r in results if r["arm"] == arm.name} for arm in study.arms}
    metric = study.primary_metric
    arms = [_arm_summary(arm, by_arm[arm.name], study.seeds, flags.get(arm.name, "")) for arm in study.arms]
    base = next(a for a in arms if a.arm == study.baseline.name)
    references = [a for a in arms if a.kind in REFERENCE_KINDS and a.seeds]
    strongest = max(references, key=lambda a: a.metrics[metric].mean, default=base)
    for arm in arms:
        if arm is base:
            continue
        arm.vs_baseline = _paired(by_arm[arm.arm], by_arm[base.arm])
        base_recall = np.mean([by_arm[base.arm][s]["test"]["per_class_recall"] for s in arm.seeds
                               if s in by_arm[base.arm]], 0)
        arm.per_class_recall_delta = (np.array(arm.per_class_recall) - base_recall).tolist()
        if arm.is_generator_arm:
            arm.reference = strongest.arm
            if strongest is not base:
                arm.vs_reference = _paired(by_arm[arm.arm], by_arm[strongest.arm])
    summary = StudySummary(dataset=study.dataset, train_fraction=study.train_fraction, seeds=list(study.seeds),
                           primary_metric=metric, baseline=base.arm, class_names=list(class_names),
                           study_run=study_run, arms=arms, trivial=trivial,
                           baseline_margin=t_interval([by_arm[base.arm][s]["test"]["accuracy"] - trivial.majority_rate
                                                       for s in base.seeds]),
                           cannot_judge=trivial_check(base, trivial, metric), strongest_reference=strongest.arm)
    for arm in arms:
        arm.verdict = verdict(arm, summary)
    return summary


def _arm_summary(arm: ArmConfig, runs: dict[int, dict], seeds: list[int], leak: str) -> ArmSummary:
    seeds = [s for s in seeds if s in runs]
    copies = [runs[s]["copy_rate"] for s in seeds if "copy_rate" in runs[s]]
    return ArmSummary(
        arm=arm.name, kind=arm.kind, synthetic_set=arm.synthetic_set, balance=arm.balance,
        recipe=arm.recipe.label if arm.recipe else "", leak=leak,
        metrics={m: t_interval([runs[s]["test"][m] for s in seeds]) for m in METRICS},
        per_class_recall=np.mean([runs[s]["test"]["per_class_recall"] for s in seeds], 0).tolist(),
        confusion=np.sum([runs[s]["test"]["confusion"] for s in seeds], 0).tolist(),
        steps=sorted({runs[s]["steps"] for s in seeds}), seeds=seeds,
        copy_rate=t_interval(copies) if copies else None)


def _paired(runs: dict[int, dict], other: dict[int, dict]) -> dict[str, PairedComparison]:
    """runs − other on every metric, over the seeds both ran."""
    seeds = [s for s in runs if s in other]
    return {m: paired_comparison([runs[s]["test"][m] for s in seeds], [other[s]["test"][m] for s in seeds])
            for m in METRICS}


# --- before launch: how precise will it be? ------------------------------------------------------

@dataclass
class ExpectedInterval:
    """The 95% interval a paired difference between two arms can expect from a number of seeds."""
    seeds: int
    halfwidth: float  # fraction; inf below 2 seeds
    spread: float  # the seed-to-seed standard deviation of one arm's score it assumes
    source: str  # where that spread comes from

    @property
    def text(self) -> str:
        if not np.isfinite(self.halfwidth):
            return f"With {self.seeds} seed there is no interval at all: a difference cannot be told from noise."
        return (f"With {self.seeds} seeds, a difference between two arms will carry a 95% interval of about "
                f"±{100 * self.halfwidth:.1f} points (seed-to-seed spread {100 * self.spread:.1f} points: "
                f"{self.source}).")


def expected_interval(seeds: int, dataset: DatasetSpec, train_fraction: float, metric: str = "balanced_accuracy",
                      root: Path | None = None) -> ExpectedInterval:
    """The expected half-width from the baseline's seed-to-seed spread in the newest finished study on the
    same data and fraction, else RULE_OF_THUMB_SPREAD; two arms' differences are taken as independent
    (spread × √2), which a paired design usually beats."""
    spread, source = RULE_OF_THUMB_SPREAD, "a rule of thumb; no finished study on these data yet"
    for run in list_runs("study", root=root):  # newest first
        try:
            summary = read_summary(run) if run.state == "done" else None
        except ValueError:
            continue
        if summary is None or not same_data(summary.dataset, dataset) or summary.train_fraction != train_fraction:
            continue
        m = summary.arm(summary.baseline).metrics.get(metric)
        if m is not None and m.n >= 2 and np.isfinite(m.hi):
            spread = float((m.hi - m.mean) * math.sqrt(m.n) / stats.t.ppf(0.975, m.n - 1))
            source = f"the baseline of study {run.id}"
            break
    halfwidth = (stats.t.ppf(0.975, seeds - 1) * math.sqrt(2) * spread / math.sqrt(seeds) if seeds >= 2
                 else float("inf"))
    return ExpectedInterval(seeds, float(halfwidth), spread, source)


# --- reading finished studies (the page, Grad-CAM) ----------------------------------------------

def study_results(study_run: Run) -> list[dict]:
    """result.json of every finished arm run of a study, in the order they ran."""
    results = [read_json(child.artifacts / "result.json") for child in read_children(study_run).values()]
    return [r for r in results if r]


def arm_model(arm_run: Run):
    """The selected classifier of a finished arm run (weights loaded with weights_only=True)."""
    from classifier.model import build_model

    config = arm_run.config
    data = load_dataset(config["dataset"])
    train = TrainConfig.from_dict(config["train"])
    model = build_model(data.train.num_classes, data.train.channels, data.train.size, train.variant)
    path = arm_run.artifacts / "best.pt"
    if not path.exists():
        raise FileNotFoundError(f"{arm_run.id} has no trained weights yet ({path})")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
