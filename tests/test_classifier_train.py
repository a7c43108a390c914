"""The classifier: builds for any channel count, trains to beat chance on held-out data,
draws batches reproducibly, and evaluates and explains (Grad-CAM) correctly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from classifier.evaluate import classification_metrics, to_input
from classifier.gradcam import default_layer, gradcam, overlay
from classifier.model import build_model
from classifier.train import BatchStream, TrainConfig, class_weights, train_classifier
from data.config import ConfigError
from data.hooks import Hooks, Interrupted
from data.imageset import to_tensor, to_unit_tensor


@pytest.fixture(scope="module")
def trained(pneumonia):
    """EfficientNet-b0 trained for 80 balanced-sampler steps on a fifth of PneumoniaMNIST (1 channel, 28 px)."""
    train = pneumonia.train.stratified_subset(0.2, seed=0)
    config = TrainConfig(steps=80, batch_size=32, lr=3e-3, eval_every=40, balance="sampler")
    return train_classifier(train.images, train.labels, pneumonia.val.images, pneumonia.val.labels, 2,
                            config, seed=0)


def test_classifier_beats_chance_clearly_on_held_out_test_images(trained, pneumonia):
    from classifier.evaluate import evaluate

    metrics = evaluate(trained.model, pneumonia.test.images, pneumonia.test.labels)
    assert metrics["auc_ovr"] > 0.8, metrics
    assert metrics["balanced_accuracy"] > 0.65, metrics
    assert trained.steps == 80 and trained.best_step in (40, 80)
    assert [h["step"] for h in trained.history] == [40, 80]


def test_loop_records_the_images_it_drew(trained, pneumonia):
    n = len(pneumonia.train.stratified_subset(0.2, seed=0))
    assert trained.drawn.shape == (n,)
    assert trained.images_seen == 80 * 32
    assert 0 < trained.drawn.sum() <= min(n, 80 * 32)


def test_batch_stream_depends_only_on_seed_and_step():
    labels = np.array([0] * 90 + [1] * 10)
    a, b = BatchStream(labels, 16, seed=3, balanced=False), BatchStream(labels, 16, seed=3, balanced=False)
    late_first = b.batch(20)
    assert torch.equal(a.batch(20), late_first) and torch.equal(a.batch(5), b.batch(5))
    assert not torch.equal(a.batch(5), BatchStream(labels, 16, seed=4, balanced=False).batch(5))
    epoch = torch.cat([a.batch(s) for s in range(100 // 16)])  # one pass: no repeats
    assert len(set(epoch.tolist())) == len(epoch)


def test_balanced_sampler_evens_out_the_classes():
    labels = np.array([0] * 950 + [1] * 50)
    stream = BatchStream(labels, 100, seed=0, balanced=True)
    drawn = labels[torch.cat([stream.batch(s) for s in range(20)]).numpy()]
    assert 0.4 < drawn.mean() < 0.6


def test_class_weights_favour_rare_classes():
    w = class_weights(np.array([0] * 80 + [1] * 20), 3)
    assert w[1] == pytest.approx(4 * w[0]) and w[2] == 0


def test_metrics_on_known_predictions():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 0, 1, 2, 2, 2]] * 0.9 + 0.1 / 3
    m = classification_metrics(labels, probs)
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["per_class_recall"] == [1.0, 0.5, 1.0]
    assert m["balanced_accuracy"] == pytest.approx(2.5 / 3)
    assert m["confusion"] == [[2, 0, 0], [0, 1, 1], [0, 0, 2]]
    assert 0.5 < m["auc_ovr"] <= 1


def test_model_builds_for_gray_and_rgb_and_rejects_bad_weights(tmp_path):
    for channels in (1, 3):
        out = build_model(7, channels, 28)(torch.zeros(2, channels, 28, 28))
        assert out.shape == (2, 7)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_model(2, 1, 28, weights_path=str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pth"):
        build_model(2, 1, 28, weights_path=str(bad))
    with pytest.raises(ValueError, match="variant"):
        build_model(2, 1, 28, variant="resnet")


def test_gradcam_highlights_regions_of_the_image(trained, pneumonia):
    model = trained.model
    assert default_layer(model, 28, 1) > 0
    images = pneumonia.test.images[:6]
    heat, classes, probs = gradcam(model, images)
    assert heat.shape == (6, 28, 28) and classes.shape == (6,) and probs.shape == (6, 2)
    assert heat.min() >= 0 and heat.max() <= 1 + 1e-6
    assert np.all(heat.reshape(6, -1).std(1) > 0), "a flat heatmap explains nothing"
    assert overlay(images, heat).shape == (6, 28, 28, 3)


class Recorder:
    """Hooks that keep the events, and ask the loop to stop once `stop_after` progress reports arrived."""

    def __init__(self, checkpoints, stop_after: int | None = None):
        self.events, self.reports, self.stop_after = [], 0, stop_after
        self.hooks = Hooks(progress=self.progress, event=lambda **e: self.events.append(e),
                           should_stop=lambda: self.stop_after is not None and self.reports >= self.stop_after,
                           checkpoints=checkpoints)

    def progress(self, done, total, message="", **metrics):
        self.reports += 1


def test_interrupted_training_resumes_to_the_same_result(pneumonia, tmp_path):
    train = pneumonia.train.stratified_subset(0.05, seed=1)
    val = pneumonia.val.take(np.arange(100))
    config = TrainConfig(steps=10, batch_size=16, eval_every=5, balance="sampler")
    args = (train.images, train.labels, val.images, val.labels, 2, config)
    straight = train_classifier(*args, seed=1, hooks=Recorder(tmp_path / "straight").hooks)
    folder = tmp_path / "interrupted"
    folder.mkdir()
    with pytest.raises(Interrupted):
        train_classifier(*args, seed=1, hooks=Recorder(folder, stop_after=7).hooks)
    assert [p.name for p in folder.iterdir()] == ["last.pt"], "the checkpoint, and no temporary file beside it"
    resumed_hooks = Recorder(folder)
    resumed = train_classifier(*args, seed=1, hooks=resumed_hooks.hooks)
    assert [e["step"] for e in resumed_hooks.events if e["type"] == "resume"] == [7]
    assert [e["step"] for e in resumed_hooks.events if e["type"] == "eval"] == [10]
    assert resumed.steps == 10 and resumed.history == straight.history
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_stop_request_without_a_checkpoint_folder_still_stops(pneumonia):
    train = pneumonia.train.stratified_subset(0.02, seed=0)
    config = TrainConfig(steps=50, batch_size=8, eval_every=50)
    recorder = Recorder(None, stop_after=2)
    with pytest.raises(Interrupted):
        train_classifier(train.images, train.labels, train.images, train.labels, 2, config, hooks=recorder.hooks)
    assert recorder.reports == 2


def test_train_config_refuses_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match=r"'stpes'.*known: variant, steps"):
        TrainConfig.from_dict({"stpes": 10})
    for bad in ({"balance": "oversample"}, {"steps": 0}, {"lr": 0.0}, {"variant": "resnet"},
                {"selection_metric": "loss"}, {"device": "gpu please"}, {"batch_size": 16.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainConfig.from_dict(bad)
    assert TrainConfig.from_dict(TrainConfig(steps=7).to_dict()) == TrainConfig(steps=7)


def test_model_input_is_the_shared_uint8_conversion():
    images = np.random.default_rng(0).integers(0, 256, (3, 5, 5, 2), dtype=np.uint8)
    x = to_input(torch.from_numpy(images), torch.device("cpu"))
    assert x.shape == (3, 2, 5, 5) and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, to_tensor(images))
    assert x.min() >= -1 and x.max() <= 1 and x[0, 1, 2, 3] == images[0, 2, 3, 1] / 127.5 - 1
    unit = to_unit_tensor(images)
    assert torch.allclose(unit, (x + 1) / 2) and unit.min() >= 0 and unit.max() <= 1


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_the_shortest_budgets_train_without_a_schedule_error(pneumonia, steps):
    train = pneumonia.train.stratified_subset(0.01, seed=0)
    result = train_classifier(train.images, train.labels, train.images, train.labels, 2,
                              TrainConfig(steps=steps, batch_size=4, eval_every=1), seed=0)
    assert result.steps == steps
