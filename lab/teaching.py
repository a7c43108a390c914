"""Teaching mode: a "real or synthetic?" quiz, and a small GAN trained one step at a time.

The quiz mixes real images of a dataset with images of a synthetic set, class by class, and scores
the answers: overall, per class, and for each kind of image. Every synthetic image carries its
nearest real training image of the same class, shown beside it when the answers are revealed.

`GanStepper` trains a small DCGAN one step at a time and reports what GAN Lab shows: the
discriminator's belief that real images are real, D(x), and that generated ones are, D(G(z)),
the losses, the size of each network's gradient, and samples from fixed noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data.imageset import ImageSet, from_tensor, to_tensor
from gans.dcgan import DCGAN
from metrics.pairing import nearest_neighbours


# --- the quiz ----------------------------------------------------------------------------------

@dataclass
class Question:
    image: np.ndarray  # uint8 H×W×C
    synthetic: bool
    label: int  # class index
    nearest: np.ndarray | None = None  # synthetic images: the nearest real training image of the class


@dataclass
class QuizScore:
    answered: int
    correct: int
    per_class: dict[str, tuple[int, int]]  # class name -> (correct, answered)
    real: tuple[int, int]  # real images: (called real, answered)
    synthetic: tuple[int, int]  # synthetic images: (called synthetic, answered)

    @property
    def accuracy(self) -> float:
        return self.correct / self.answered if self.answered else 0.0


def make_quiz(real: ImageSet, synthetic: ImageSet, n: int = 12, seed: int = 0) -> list[Question]:
    """`n` questions, half real and half synthetic (as far as the sets allow), in random order.

    Classes are drawn so both kinds cover the classes the synthetic set has; `real` is the
    dataset's training split (the nearest real images come from it).
    """
    if real.images.shape[1:] != synthetic.images.shape[1:]:
        raise ValueError(f"the set's images are {synthetic.images.shape[1:]}, the dataset's {real.images.shape[1:]}")
    if not len(synthetic):
        raise ValueError("the synthetic set is empty")
    rng = np.random.default_rng(seed)
    fakes = rng.choice(len(synthetic), size=min(n - n // 2, len(synthetic)), replace=False)
    fake_set = synthetic.take(fakes)
    classes = np.unique(fake_set.labels)
    pool = np.flatnonzero(np.isin(real.labels, classes))
    reals = rng.choice(pool, size=min(n - len(fakes), len(pool)), replace=False)
    nearest = nearest_neighbours(fake_set, real).same_index
    questions = [Question(real.images[i], False, int(real.labels[i])) for i in reals]
    questions += [Question(fake_set.images[k], True, int(fake_set.labels[k]),
                           real.images[nearest[k]] if nearest[k] >= 0 else None) for k in range(len(fake_set))]
    return [questions[i] for i in rng.permutation(len(questions))]


def score_quiz(questions: list[Question], answers: list[bool | None], class_names: list[str]) -> QuizScore:
    """Score `answers` (True: "synthetic", False: "real", None: not answered) against the questions."""
    answered = correct = 0
    per_class: dict[str, list[int]] = {}
    by_kind = {False: [0, 0], True: [0, 0]}
    for question, answer in zip(questions, answers):
        if answer is None:
            continue
        right = answer == question.synthetic
        answered += 1
        correct += right
        tally = per_class.setdefault(class_names[question.label], [0, 0])
        tally[0] += right
        tally[1] += 1
        by_kind[question.synthetic][0] += right
        by_kind[question.synthetic][1] += 1
    return QuizScore(answered, correct, {name: (c, t) for name, (c, t) in per_class.items()},
                     tuple(by_kind[False]), tuple(by_kind[True]))


# --- one GAN step at a time --------------------------------------------------------------------

@dataclass
class StepReport:
    step: int
    d_real: float  # mean D(x): the discriminator's probability that a real batch is real
    d_fake: float  # mean D(G(z)) before the discriminator's update
    loss_d: float
    loss_g: float
    grad_d: float  # L2 norm of the discriminator's gradient in its update
    grad_g: float  # L2 norm of the generator's gradient in its update


class GanStepper:
    """A small DCGAN (no label smoothing) on `images` (uint8, any class), trained `batch` images per step.

    Each step is the GAN's own `train_step`: the discriminator learns to call a real batch real and a
    generated batch fake, then the generator learns to make the discriminator call its batch real
    (the non-saturating loss). `history` holds every step's report.
    """

    def __init__(self, images: ImageSet, batch: int = 32, latent: int = 16, width: int = 16, seed: int = 0):
        torch.manual_seed(seed)
        self.batch = batch
        self.gan = DCGAN(images.size, images.channels, images.num_classes, latent=latent, width=width,
                         lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))
        self.real = images.images  # uint8: each step converts only its own batch (a view opens in no time)
        self.draws = torch.Generator().manual_seed(seed)
        self.fixed_noise = self.gan.noise(16, torch.Generator().manual_seed(seed + 1))
        self.history: list[StepReport] = []

    def step(self) -> StepReport:
        real = to_tensor(self.real[torch.randint(len(self.real), (self.batch,), generator=self.draws).numpy()])
        seen = {name: value.item() for name, value in self.gan.train_step(real, None, inspect=True).items()}
        self.gan.steps_done += 1
        report = StepReport(self.gan.steps_done, **seen)
        self.history.append(report)
        return report

    @torch.no_grad()
    def samples(self) -> np.ndarray:
        """uint8 16×H×W×C images from the same fixed noise at every step (so you see them move), made as
        training makes them (batch statistics: after a few steps the running ones still lag behind)."""
        return from_tensor(self.gan.generate(self.fixed_noise, None).cpu())
