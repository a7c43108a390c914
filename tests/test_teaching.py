"""Teaching mode: the real-or-synthetic quiz (questions, nearest real images, scoring, the page) and the
GAN trained one step at a time on real DermaMNIST images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from data.synthetic import save_set
from lab.engine.runs import Run
from lab.teaching import GanStepper, make_quiz, score_quiz

ROOT = Path(__file__).resolve().parent.parent


def fake_set(derma, n_per_class: int = 6):
    """A stand-in synthetic set: validation images of two classes, shifted so no pixel matches a real one."""
    picks = np.concatenate([np.flatnonzero(derma.val.labels == k)[:n_per_class] for k in (1, 4)])
    shifted = derma.val.take(picks)
    shifted.images = np.roll(shifted.images, 3, axis=2)
    return shifted


def test_a_quiz_is_half_synthetic_with_the_nearest_real_image_of_the_same_class(derma):
    synthetic = fake_set(derma)
    questions = make_quiz(derma.train, synthetic, n=10, seed=3)
    fakes = [q for q in questions if q.synthetic]
    assert len(questions) == 10 and len(fakes) == 5
    assert {q.label for q in questions} <= {1, 4}  # real images come from the set's classes
    for q in fakes:
        same_class = derma.train.images[derma.train.labels == q.label]
        distances = np.sqrt(((same_class.astype(float) - q.image) ** 2).mean(axis=(1, 2, 3)))
        assert np.sqrt(((q.nearest.astype(float) - q.image) ** 2).mean()) == distances.min()
    assert [q.synthetic for q in questions] != sorted(q.synthetic for q in questions)  # shuffled


def test_quiz_scoring_counts_right_answers_per_class_and_per_kind(derma):
    questions = make_quiz(derma.train, fake_set(derma), n=8, seed=0)
    names = derma.class_names
    perfect = score_quiz(questions, [q.synthetic for q in questions], names)
    assert (perfect.correct, perfect.answered, perfect.accuracy) == (8, 8, 1.0)
    all_real = score_quiz(questions, [False] * 8, names)
    assert all_real.correct == 4 and all_real.real == (4, 4) and all_real.synthetic == (0, 4)
    assert sum(t for _, t in all_real.per_class.values()) == 8
    assert all(right == sum(1 for q in questions if names[q.label] == name and not q.synthetic)
               for name, (right, _) in all_real.per_class.items())
    skipped = score_quiz(questions, [None] * 7 + [questions[7].synthetic], names)
    assert (skipped.correct, skipped.answered) == (1, 1)


def test_the_gan_stepper_reports_beliefs_and_gradients_and_its_samples_move(derma):
    stepper = GanStepper(derma.train.of_class(1), batch=16, seed=0)
    before = stepper.samples()
    reports = [stepper.step() for _ in range(3)]
    assert [r.step for r in reports] == [1, 2, 3] and stepper.history == reports
    assert all(0 < r.d_real < 1 and 0 < r.d_fake < 1 and r.grad_d > 0 and r.grad_g > 0 for r in reports)
    assert reports[-1].d_real > reports[0].d_real  # three updates teach D to call real images real
    after = stepper.samples()
    assert after.shape == (16, 28, 28, 3) and np.abs(after.astype(int) - before).mean() > 1


def test_quiz_page_reveals_the_score_and_the_nearest_real_images(runs_root, derma):
    run = Run.create("gan", {"gan": "dcgan", "dataset": {"name": "dermamnist", "size": 28}}, root=runs_root)
    save_set(fake_set(derma), run.artifacts, "synthetic", generator="dcgan", run_id=run.id,
             dataset={"name": "dermamnist", "size": 28})
    at = AppTest.from_file(str(ROOT / "pages" / "quiz.py"), default_timeout=180).run()
    assert not at.exception
    at.number_input(key="quiz_images").set_value(4).run()
    for radio in at.radio:
        radio.set_value("synthetic")
    at.run()
    next(b for b in at.button if b.label == "Reveal the answers").click().run()
    assert not at.exception
    assert at.subheader[0].value == "2 of 4 right (50%)"
    assert sum("nearest real image" in caption for image in at.image for caption in image.captions) == 2
