"""Uploaded weights: a generator file's declared sizes and weight shapes are checked before any model is
built, a file that inflates past the limit is never read, and classifier weights are never unpickled."""
from __future__ import annotations

import io
import zipfile

import pytest
import torch
from efficientnet_pytorch import EfficientNet

from classifier.model import build_model
from gans import checkpoint
from gans.checkpoint import GENERATOR_FORMAT, CheckpointError, load_generator, save_generator
from gans.config import build_gan, make_config


def generator_file(image_size: int = 28, classes: int = 2, generator: dict | None = None, **overrides) -> bytes:
    """A generator file whose stored config and data shape say what the arguments say, with the given weights."""
    config = make_config("dcgan", **overrides)
    blob = {"format": GENERATOR_FORMAT, "config": config.to_dict(),
            "data": {"image_size": image_size, "channels": 3, "num_classes": classes,
                     "class_names": [f"class {k}" for k in range(classes)]},
            "generator": generator or {}}
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    return buffer.getvalue()


@pytest.fixture
def no_real_model(monkeypatch):
    """Fail the test if a GAN is built anywhere but on the meta device (which allocates no memory)."""
    real = checkpoint.build_gan

    def build(config, *args, device="cpu", **kwargs):
        if torch.device(device).type != "meta":
            raise AssertionError(f"a {config.gan} was built on {device} before its file was checked")
        return real(config, *args, device=device, **kwargs)

    monkeypatch.setattr(checkpoint, "build_gan", build)


def test_a_tiny_file_declaring_a_large_generator_is_refused_before_any_model_is_built(no_real_model):
    data = generator_file(28, 50, width=96, per_class=True)
    assert len(data) < 4096
    with pytest.raises(CheckpointError, match=r"tiny.pt: weights do not match the \d+-tensor architecture"):
        load_generator(data, name="tiny.pt")


@pytest.mark.parametrize("image_size, classes, overrides, limit", [
    (128, 50, {"width": 256, "latent": 512, "per_class": True},
     r"\d+\.\d billion parameters; the limit is 300 million"),
    (28, 101, {}, "101 classes; the limit is 100"),
    (512, 2, {}, r"image size 512 is not one of \(28, 32, 64, 128\)"),
])
def test_declared_sizes_beyond_the_limits_are_refused_naming_the_limit(no_real_model, image_size, classes, overrides,
                                                                        limit):
    with pytest.raises(CheckpointError, match=f"big.pt: .*{limit}"):
        load_generator(generator_file(image_size, classes, **overrides), name="big.pt")


def test_a_file_that_inflates_past_the_limit_is_refused_before_torch_reads_it(monkeypatch):
    plain = io.BytesIO()
    torch.save({"format": GENERATOR_FORMAT, "padding": torch.zeros(1_000_000)}, plain)
    deflated = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source, \
            zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    assert len(deflated.getvalue()) < 50_000
    monkeypatch.setattr(checkpoint, "MAX_FILE_BYTES", 2 * 1024**2)
    monkeypatch.setattr(torch, "load", lambda *a, **kw: pytest.fail("torch.load read a file over the limit"))
    with pytest.raises(CheckpointError, match=r"zipped.pt: holds 3.8 MiB uncompressed; the limit is 2 MiB"):
        load_generator(deflated.getvalue(), name="zipped.pt")


def test_a_generator_within_the_limits_still_loads(tmp_path):
    config = make_config("dcgan", width=8, latent=8, per_class=True)
    gan = build_gan(config, 28, 1, 3)
    path = save_generator(gan, config, ["a", "b", "c"], tmp_path / "generator.pt")
    loaded, _, names = load_generator(path)
    assert names == ["a", "b", "c"]
    assert torch.equal(loaded.sample(6, [0, 1, 2] * 2, seed=1), gan.sample(6, [0, 1, 2] * 2, seed=1))


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_classifier_weights_are_read_weights_only_even_when_the_environment_says_otherwise(tmp_path, monkeypatch,
                                                                                          capsys):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    torch.save({"_conv_stem.weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="evil.pth: not a weights-only state dict"):
        build_model(2, 1, 28, weights_path=str(tmp_path / "evil.pth"))
    assert "this must never run" not in capsys.readouterr().out


def test_pretrained_weights_fill_every_layer_but_the_head_and_a_changed_stem(tmp_path):
    source = EfficientNet.from_name("efficientnet-b0").state_dict()
    torch.save(source, tmp_path / "b0.pth")
    gray = build_model(2, 1, 28, weights_path=str(tmp_path / "b0.pth")).state_dict()
    rgb = build_model(2, 3, 28, weights_path=str(tmp_path / "b0.pth")).state_dict()
    block = "_blocks.3._depthwise_conv.weight"
    assert torch.equal(gray[block], source[block]) and torch.equal(rgb[block], source[block])
    assert torch.equal(rgb["_conv_stem.weight"], source["_conv_stem.weight"])
    assert gray["_conv_stem.weight"].shape[1] == 1 and gray["_fc.weight"].shape[0] == 2
    torch.save({k: v for k, v in source.items() if k != block}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=f"partial.pth: .*missing: {block}"):
        build_model(2, 1, 28, weights_path=str(tmp_path / "partial.pth"))
