"""Generator checkpoints: the same seed gives the same samples after a round trip; bad files are refused."""
from __future__ import annotations

import io
import pickle

import pytest
import torch

from gans.checkpoint import CheckpointError, load_generator, save_generator
from gans.config import build_gan, make_config

CLASSES = ["normal", "pneumonia"]


@pytest.fixture
def saved(tmp_path):
    config = make_config("acgan", latent=16, width=8)
    gan = build_gan(config, 28, 1, 2)
    path = save_generator(gan, config, CLASSES, tmp_path / "generator.pt")
    return gan, config, path


@pytest.mark.parametrize("gan_name,per_class", [("acgan", False), ("dcgan", True), ("sngan", False)])
def test_round_trip_reproduces_the_same_samples_for_the_same_seed(tmp_path, gan_name, per_class):
    config = make_config(gan_name, latent=16, width=8, per_class=per_class)
    gan = build_gan(config, 32, 3, 2)
    for p in gan.generator.parameters():  # move away from the initial weights
        p.data.add_(0.01 * torch.randn_like(p))
    path = save_generator(gan, config, CLASSES, tmp_path / "g.pt")
    loaded, loaded_config, names = load_generator(path)
    assert names == CLASSES and loaded_config == config
    labels = [0, 1] * 8
    assert torch.equal(gan.sample(16, labels, seed=7), loaded.sample(16, labels, seed=7))
    assert not torch.equal(gan.sample(16, labels, seed=7), gan.sample(16, labels, seed=8))


def test_a_tampered_weight_shape_is_refused_naming_the_file_and_tensor(saved, tmp_path):
    gan, config, path = saved
    blob = torch.load(path, weights_only=True)
    key = next(iter(blob["generator"]))
    blob["generator"][key] = torch.zeros(3, 3)
    torch.save(blob, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match=rf"tampered.pt: '{key}' has shape \(3, 3\)"):
        load_generator(tmp_path / "tampered.pt")


def test_a_checkpoint_whose_config_describes_another_architecture_is_refused(saved, tmp_path):
    gan, config, path = saved
    blob = torch.load(path, weights_only=True)
    blob["config"]["width"] = 16
    torch.save(blob, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="mismatch.pt: .* has shape"):
        load_generator(tmp_path / "mismatch.pt")


def test_missing_weights_nan_weights_and_foreign_files_are_refused(saved, tmp_path):
    gan, config, path = saved
    blob = torch.load(path, weights_only=True)
    removed = dict(blob, generator={k: v for i, (k, v) in enumerate(blob["generator"].items()) if i})
    torch.save(removed, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing.pt: weights do not match"):
        load_generator(tmp_path / "missing.pt")

    poisoned = dict(blob, generator={k: v.float() * float("nan") if v.is_floating_point() else v
                                     for k, v in blob["generator"].items()})
    torch.save(poisoned, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        load_generator(tmp_path / "nan.pt")

    torch.save({"state": gan.generator.state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="plain.pt: not a generator checkpoint"):
        load_generator(tmp_path / "plain.pt")

    with pytest.raises(CheckpointError, match="uploaded checkpoint: not a loadable"):
        load_generator(b"definitely not a torch file")


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickled_object_in_an_upload_is_never_executed(capsys):
    buffer = io.BytesIO()
    torch.save({"format": "gan-lab-generator/1", "config": Payload()}, buffer, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="evil.pt: not a loadable weights-only"):
        load_generator(buffer.getvalue(), name="evil.pt")
    assert "this must never run" not in capsys.readouterr().out
