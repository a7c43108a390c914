"""The study's configs and presets: its arms (reference, fixed set, recipe), budget, seeds and dataset."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.evaluate import CLASSIFICATION_METRICS
from classifier.train import BALANCE_MODES, TrainConfig
from data.augment import AUGMENTATIONS
from data.config import (MAX_IMAGES_PER_CLASS, MAX_SEED, MAX_SEEDS_PER_CLASS, MAX_STUDY_SEEDS, MAX_VARIATIONS, Config,
                         ConfigError, option)
from data.datasets import DatasetSpec, load_dataset
from data.device import resolve_device
from data.imageset import ImageSet
from data.subset import SeedSubset, check_indices
from gans import REGISTRY, SINGLE_IMAGE
from gans.config import make_config
from metrics.curation import CurationConfig, CurationRule

GENERATORS = (*REGISTRY, *SINGLE_IMAGE)
MIX_MODES = ("ratio", "balance")
PRESETS = ("quick", "paper")
BATCHED_MODES = ("auto", "on", "off")
GROUP_MEMBERS = 10  # (arm, seed)s trained as one batched computation at most: memory grows with every member
PRESET_SEEDS, BATCHED_PRESET_SEEDS = 3, 10  # a preset's seeds: one at a time, and where arms train batched (CUDA)
SUMMARY_FILE = "summary.json"
RECIPE_SET_FILES = {"gan": "synthetic.npz", "singan": "singan_variations.npz",
                    "gpnn": "gpnn_variations.npz"}  # a generator run's set
STUDY_OWNED = {"dataset", "train_fraction", "train_indices", "seed", "per_class", "export_per_class", "mode",
               "seed_indices", "seeds_per_class", "variations"}  # generator settings the study sets itself

QUICK_STEPS, QUICK_BATCH = 400, 64  # the quick budget at DermaMNIST's 10% (701 images)
QUICK_MIN_STEPS = 50
QUICK_EPOCHS = 40  # passes over the real subset the quick budget aims for, within those bounds
RULE_OF_THUMB_SPREAD = 0.02  # seed-to-seed standard deviation of a test score when no study measured it


class SetRefused(ValueError):
    """A synthetic set a study must not use as configured; the message names the set and why."""


# --- arm kinds ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArmKind:
    """What an arm of one kind trains on. The study asks these properties, never the kind's name; a new
    kind is one line in ARM_KINDS (and its training set in lab/study/arm.py `training_set`)."""
    name: str
    reference: bool = False  # a cheap alternative a generator must beat
    baseline: bool = False  # the plain real subset: the study's baseline is the first arm of such a kind
    augmented: bool = False  # real images through the standard augmentation (ArmConfig.augment)
    fixed_set: bool = False  # trains on a given synthetic set (ArmConfig.synthetic_set)
    recipe: bool = False  # trains on a generator made inside each seed from its subset (ArmConfig.recipe)
    synthetic_only: bool = False  # no real images: the synthetic ones alone (tested on real)

    @property
    def generated(self) -> bool:
        """Trains on generated images: a fixed set's or a recipe's."""
        return self.fixed_set or self.recipe


ARM_KINDS: dict[str, ArmKind] = {kind.name: kind for kind in (
    ArmKind("real", reference=True, baseline=True),
    ArmKind("standard_aug", reference=True, augmented=True),
    ArmKind("synthetic", fixed_set=True),
    ArmKind("synthetic_only", fixed_set=True, synthetic_only=True),
    ArmKind("recipe", recipe=True),
)}


def arm_kind(name: str) -> ArmKind:
    """The kind of that name; a name this lab does not know (a summary.json written elsewhere) is a kind
    with no property."""
    return (ARM_KINDS.get(name) if isinstance(name, str) else None) or ArmKind(str(name))


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
        self.job(DatasetSpec(), SeedSubset(1.0, 0, (0,)), images_per_class=1, seed_indices=[0])  # a bad preset or
        # setting fails here

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

    def job(self, dataset: DatasetSpec, subset: SeedSubset, images_per_class: int,
            seed_indices: list[int]) -> tuple[str, dict]:
        """The job kind and config of this recipe's generator run for one seed: a GAN learns from the
        seed's subset (its indices, in the config), a SinGAN or GPNN from the training images at
        `seed_indices` (drawn from that subset)."""
        if self.generator in SINGLE_IMAGE:
            config = make_config(self.generator, self.preset, **{
                **self.settings, "mode": "seeds", "dataset": dataset.to_dict(), "seed_indices": list(seed_indices),
                "seeds_per_class": 0, "variations": self.variations, "seed": subset.seed})
            return self.generator, config.to_dict()
        config = make_config(self.generator, self.preset, **{
            **self.settings, "dataset": dataset.to_dict(), "train_fraction": subset.fraction, "seed": subset.seed,
            "train_indices": list(subset.indices), "per_class": self.per_class, "export_per_class": images_per_class})
        return "gan", config.to_dict()


@dataclass(frozen=True)
class ArmConfig(Config):
    name: str = option(label="Arm name", help="unique within the study; names its runs and its results")
    kind: str = option("real", label="Kind", choices=tuple(ARM_KINDS),
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
    filter: CurationRule | None = None  # recipe arms: keep only the generated images that pass (metrics.curation),
    # scored inside each seed against that seed's real subset only
    filter_scoring: CurationConfig = field(default_factory=CurationConfig)  # how a filter's scores are computed

    @property
    def kind_of(self) -> ArmKind:
        """Its kind's properties (`kind` stays the name, as config.json holds it)."""
        return ARM_KINDS[self.kind]

    def validate(self) -> None:
        where = f"ArmConfig '{self.name}'"
        kind = self.kind_of
        if not self.name.strip():
            raise ConfigError("ArmConfig.name: an arm needs a name")
        if kind.fixed_set and not self.synthetic_set:
            raise ConfigError(f"{where}: a {self.kind} arm needs a synthetic_set")
        if not kind.fixed_set and self.synthetic_set:
            raise ConfigError(f"{where}: a {self.kind} arm takes no synthetic_set (got {self.synthetic_set})")
        if kind.recipe != (self.recipe is not None):
            raise ConfigError(f"{where}: a recipe arm, and only a recipe arm, needs a recipe")
        if self.filter is not None and not kind.recipe:
            raise ConfigError(f"{where}: a filter applies to recipe arms only (their images are scored inside each "
                              f"seed against its real subset)")
        if self.filter is None and self.filter_scoring != CurationConfig():
            raise ConfigError(f"{where}: filter_scoring is set but the arm has no filter")
        if self.allow_leak and not kind.fixed_set:
            raise ConfigError(f"{where}: allow_leak applies to fixed synthetic sets only")
        unknown = [n for n in self.augment or [] if n not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"{where}: unknown augmentation(s) {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(AUGMENTATIONS)})")
        if kind.augmented and self.augment == []:
            raise ConfigError(f"{where}: a {self.kind} arm needs at least one augmentation")
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
    primary_metric: str = option("balanced_accuracy", label="Primary metric", choices=CLASSIFICATION_METRICS,
                                 help="the test metric the verdicts speak of")
    preset: str = option("", label="Preset", choices=("", *PRESETS), help="the preset it started from, if any")
    batched: str = option("auto", label="Train arms batched", choices=BATCHED_MODES,
                          help=f"train up to {GROUP_MEMBERS} (arm, seed)s as one computation (classifier/batched.py), "
                               f"and a recipe's per-class GANs of up to {GROUP_MEMBERS} seeds as one stack "
                               "(gans/stack.py); auto: on CUDA only, where it pays (on a CPU it costs what one at a "
                               "time costs)")

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
        if self.batched == "on" and self.train.patience:
            raise ConfigError("StudyConfig.batched: early stopping (train.patience) is not batched; set batched to off "
                              "or auto, or patience to 0")

    def batches_arms(self) -> bool:
        """Whether its (arm, seed)s train in batched groups: `batched` on, or auto on a CUDA device."""
        if self.batched == "off" or self.train.patience:
            return False
        return self.batched == "on" or resolve_device(self.train.device).type == "cuda"

    @property
    def baseline(self) -> ArmConfig:
        """The arm every other arm is compared with: the first plain real-only arm, else the first real arm, else
        the first arm."""
        return next((a for a in self.arms if a.kind_of.baseline and a.balance == "none"),
                    next((a for a in self.arms if a.kind_of.baseline), self.arms[0]))

    def subsets(self, train: ImageSet) -> dict[int, SeedSubset]:
        """Each seed's real subset of the training split `train`, drawn once: every generator and classifier of
        a seed is handed these indices."""
        return {seed: SeedSubset.draw(train, self.train_fraction, seed) for seed in self.seeds}

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
    train_indices: list[int] = option(factory=list, help="the seed's real subset as indices into the training "
                                                         "split; empty (runs before them): drawn again by its rule")
    train: TrainConfig = field(default_factory=TrainConfig)
    recipe_set: str | None = None  # recipe arms: the set this seed's generator made (id or path)

    def validate(self) -> None:
        check_indices("ArmRunConfig.train_indices", self.train_indices)
        if self.arm.kind_of.recipe != bool(self.recipe_set):
            raise ConfigError("ArmRunConfig.recipe_set: a recipe arm, and only a recipe arm, names its "
                              "generator's set")

    @property
    def synthetic_set(self) -> str | None:
        return self.recipe_set if self.arm.kind_of.recipe else self.arm.synthetic_set

    @property
    def key(self) -> str:
        """"arm|seed": its key among the study's arm runs."""
        return f"{self.arm.name}|{self.seed}"


@dataclass(frozen=True)
class ArmGroupRunConfig(Config):
    """(arm, seed)s of a study trained as one batched computation: what a study-group run needs. The members
    share the dataset and the training budget (all of it but each arm's class balance)."""
    members: list[ArmRunConfig] = field(default_factory=list)

    def validate(self) -> None:
        if not self.members:
            raise ConfigError("ArmGroupRunConfig.members: a group needs at least one member")
        if len({json.dumps(m.dataset.to_dict(), sort_keys=True) for m in self.members}) != 1:
            raise ConfigError("ArmGroupRunConfig.members: members of a group share one dataset")
        if len({m.train.replace(balance="none") for m in self.members}) != 1:
            raise ConfigError("ArmGroupRunConfig.members: members of a group share the training budget (all of "
                              "TrainConfig but balance)")
        if self.members[0].train.patience:
            raise ConfigError("ArmGroupRunConfig: early stopping (train.patience) is not batched")


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


def filtered_arms(arms: list[ArmConfig], rule: CurationRule, scoring: CurationConfig = CurationConfig()
                  ) -> list[ArmConfig]:
    """A filtered twin of every unfiltered recipe arm: the same generator runs, only the images that pass `rule`."""
    return [arm.replace(name=f"{arm.name}, filtered", filter=rule, filter_scoring=scoring)
            for arm in arms if arm.kind_of.recipe and arm.filter is None]


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


def preset_seeds() -> list[int]:
    """A preset's seeds on this machine: 10 where its arms train batched (`batched` auto: on CUDA), else 3."""
    batched = StudyConfig(train=TrainConfig(device="auto")).batches_arms()
    return list(range(BATCHED_PRESET_SEEDS if batched else PRESET_SEEDS))


def preset(name: str, dataset: DatasetSpec | dict | None = None, train_fraction: float | None = None,
           synthetic_sets: list[str] = (), recipes: list[str] = (), allow_leak: bool = False) -> StudyConfig:
    """Both presets carry the reference arms (`reference_arms`), then one recipe arm per generator in
    `recipes` and one fixed-set arm per set in `synthetic_sets`.

    `quick`: 10% of the data, a budget sized to that subset (`quick_budget`: 400 steps × 64 on
    DermaMNIST) — minutes on a laptop CPU. `paper`: the full training split for about 100 epochs' worth of
    steps at batch 128 (MedMNIST's protocol). Both run 3 seeds, or 10 where the arms train batched (on CUDA:
    `StudyConfig.batches_arms`), where ten cost about what three cost one at a time."""
    spec = dataset if isinstance(dataset, DatasetSpec) else DatasetSpec.from_dict(dataset or {})
    arms = [*reference_arms(), *recipe_arms(list(recipes), spec.size), *synthetic_arms(list(synthetic_sets),
                                                                                        allow_leak)]
    if name == "quick":
        fraction = train_fraction or 0.1
        train = load_dataset(spec).train
        counts = SeedSubset.draw(train, fraction, 0).of(train).class_counts()
        return StudyConfig(dataset=spec, train_fraction=fraction, seeds=preset_seeds(), arms=arms,
                           train=quick_budget(counts), preset="quick")
    if name == "paper":
        return StudyConfig(dataset=spec, train_fraction=train_fraction or 1.0, seeds=preset_seeds(), arms=arms,
                           train=TrainConfig(steps=5500, batch_size=128, lr=1e-3, eval_every=500), preset="paper")
    raise ConfigError(f"Unknown study preset '{name}' (choose {' or '.join(PRESETS)})")


def arm_runs(study: StudyConfig, subsets: dict[int, SeedSubset],
             recipe_sets: dict[str, str] | None = None) -> dict[str, tuple[str, dict]]:
    """The study's study-arm jobs, "arm|seed" -> (run name, config); seed-major, so pairs complete early.
    `subsets`: each seed's real subset (`StudyConfig.subsets`); `recipe_sets`: "<recipe key>|<seed>" -> the set
    that seed's recipe generator made (recipe arms)."""
    recipe_sets = recipe_sets or {}
    return {f"{arm.name}|{seed}": (f"{arm.name}-s{seed}", ArmRunConfig(
        arm=arm, seed=seed, dataset=study.dataset, train_fraction=study.train_fraction,
        train_indices=list(subsets[seed].indices), train=study.train.replace(balance=arm.balance),
        recipe_set=recipe_sets[f"{arm.recipe.key}|{seed}"] if arm.recipe else None).to_dict())
        for seed in study.seeds for arm in study.arms}


def arm_groups(plan: dict[str, tuple[str, dict]], members: int = GROUP_MEMBERS) -> dict[str, tuple[str, dict]]:
    """The arm runs of `plan` (`arm_runs`) in study-group jobs of at most `members` each, in the plan's
    (seed-major) order: "group i" -> (run name, ArmGroupRunConfig)."""
    configs = [config for _, config in plan.values()]
    chunks = [configs[i:i + members] for i in range(0, len(configs), members)]
    return {f"group {i}": (f"arms-{i}", ArmGroupRunConfig(members=[ArmRunConfig.from_dict(c) for c in chunk]).to_dict())
            for i, chunk in enumerate(chunks)}


