"""SinGAN model: the pyramid, image loading, training that learns, sampling, injection, saving."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from data.hooks import Hooks, Interrupted
from data.imageset import to_tensor
from gans.singan import SinGAN, SinGanSettings, load_image, pyramid_sizes
from gans.singan_train import train
from tests.conftest import DATA_DIR

OCT = DATA_DIR / "oct2017_samples" / "CNV-53018-1.jpeg"  # 768×496 grayscale B-scan


def test_pyramid_goes_from_min_side_to_max_side_keeping_the_aspect_ratio():
    sizes = pyramid_sizes(496, 768, max_side=128, min_side=25, stages=6)
    assert len(sizes) == 6
    assert sizes[-1] == (83, 128)
    assert min(sizes[0]) == 25
    for (h0, w0), (h1, w1) in zip(sizes, sizes[1:]):
        assert h1 > h0 and w1 > w0
    for h, w in sizes:
        assert abs(w / h - 768 / 496) < 0.06


def test_pyramid_of_a_small_image_still_has_distinct_levels():
    sizes = pyramid_sizes(28, 28, max_side=28, min_side=25, stages=4)
    assert sizes[0] == (14, 14) and sizes[-1] == (28, 28)
    assert len(set(sizes)) == 4


def test_grayscale_scan_loads_as_one_channel_and_colour_as_three(tmp_path):
    scan = load_image(OCT)
    assert scan.shape == (496, 768, 1) and scan.dtype == np.uint8
    colour = np.zeros((20, 30, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "red.png")
    assert load_image(tmp_path / "red.png").shape == (20, 30, 3)
    gray_as_rgb = np.repeat(np.arange(600, dtype=np.uint8).reshape(20, 30, 1) % 251, 3, axis=2)
    Image.fromarray(gray_as_rgb).save(tmp_path / "gray_rgb.png")
    assert load_image(tmp_path / "gray_rgb.png").shape == (20, 30, 1)


def test_undecodable_upload_gets_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "scan.jpeg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="scan.jpeg"):
        load_image(bad)


def small_settings(**overrides) -> SinGanSettings:
    return SinGanSettings(**{"max_side": 40, "min_side": 16, "stages": 3, "iters": 60, "width": 16,
                             "critic_layers": 4, "layers": 3, **overrides})


@pytest.fixture(scope="module")
def trained() -> tuple[SinGAN, list[float]]:
    """A small SinGAN trained on the OCT scan (40-px long side, 3 levels), with its rec RMSE per step."""
    torch.manual_seed(1)
    settings = small_settings(width=32, layers=4, min_side=10, iters_coarse=200)
    model = SinGAN(to_tensor(load_image(OCT)[None]), settings, seed=1)
    errors = []
    while not model.finished:
        errors.append(model.step()["rec_rmse"].item())
    return model, errors


def test_reconstruction_error_from_the_fixed_noise_drops_during_training(trained):
    model, errors = trained
    first_level = errors[: model.level_iters(0)]
    assert np.mean(first_level[-5:]) < 0.6 * np.mean(first_level[:3])
    assert model.reconstruction_error() < 0.6 * first_level[0]


def test_every_level_reconstructs_its_own_scale(trained):
    """What injection relies on: level k's output from the fixed noise is the real image at level k."""
    model, _ = trained
    with torch.no_grad():
        outputs = model.generator.levels(model.rec_noise, model.amps, model.sizes)
    errors = [torch.sqrt(F.mse_loss(out, real)).item() for out, real in zip(outputs, model.reals)]
    flat = [torch.sqrt(F.mse_loss(real.mean().expand_as(real), real)).item() for real in model.reals]
    assert all(e < 0.45 * f for e, f in zip(errors, flat)), (errors, flat)  # far closer than a flat image


def test_samples_have_the_right_shape_range_and_channels_and_are_not_the_training_image(trained):
    model, _ = trained
    samples = model.sample(4, seed=1)
    real = model.reals[-1]
    assert samples.shape == (4, 1, *model.sizes[-1]) == (4, *real.shape[1:])
    assert samples.min() >= -1 and samples.max() <= 1
    assert (samples - real).abs().mean(dim=(1, 2, 3)).min() > 0.02  # none is a copy of the image
    assert (samples[0] - samples[1]).abs().mean() > 0.01  # and they differ from each other
    assert torch.equal(model.sample(2, seed=5), model.sample(2, seed=5))


def test_other_sizes_and_injection_keep_the_real_layout_more_at_higher_levels(trained):
    model, _ = trained
    wide = model.sample(2, seed=1, scale=(1.0, 1.5))
    assert wide.shape[-1] == round(model.sizes[-1][1] * 1.5)
    real = model.reals[-1]
    distance = [(model.sample(6, seed=2, inject_stage=k) - real).abs().mean().item() for k in range(3)]
    assert distance[2] < distance[1] < distance[0]
    spread = [model.sample(6, seed=3, inject_stage=1, noise_scale=k).std(dim=0).mean().item() for k in (1, 10)]
    assert spread[1] > 1.5 * spread[0]  # a stronger noise gives more varied variations
    with pytest.raises(ValueError):
        model.sample(1, inject_stage=3)


def test_saved_generator_loads_with_weights_only_and_samples_the_same(trained, tmp_path):
    model, _ = trained
    path = model.save(tmp_path / "singan.pt", training_state=False)
    loaded = SinGAN.load(path)
    assert torch.allclose(loaded.sample(3, seed=7), model.sample(3, seed=7))
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.pt"):
        SinGAN.load(tmp_path / "bad.pt")


def test_training_state_resumes_at_the_same_level_and_iteration():
    image = to_tensor(load_image(OCT)[None])
    model = SinGAN(image, small_settings(iters=10), seed=3)
    for _ in range(14):  # level 2, iteration 4
        model.step()
    state = model.state_dict()
    resumed = SinGAN(image, small_settings(iters=10), seed=99)
    resumed.load_state_dict(state)
    assert (resumed.stage, resumed.iteration, resumed.steps_done) == (1, 4, 14)
    assert resumed.amps == model.amps
    for a, b in zip(model.generator.parameters(), resumed.generator.parameters()):
        assert torch.equal(a, b)
    assert resumed.opt_g.state_dict()["state"][0]["step"] == model.opt_g.state_dict()["state"][0]["step"]
    resumed.step()
    assert (resumed.stage, resumed.iteration) == (1, 5)


def test_coarse_levels_can_get_more_iterations_than_fine_ones():
    image = to_tensor(load_image(OCT)[None])
    model = SinGAN(image, small_settings(iters=4, iters_coarse=16), seed=0)
    schedule = [model.level_iters(level) for level in range(3)]
    assert schedule == [16, 8, 4] and model.total_steps == 28
    per_level = []
    while not model.finished:
        model.step()
        if model.level_done:
            per_level.append(model.steps_done)
    assert per_level == [16, 24, 28]


def test_trainer_logs_the_mean_losses_every_log_every_steps_and_at_each_level_end(tmp_path):
    """Losses stay on the device between events; an event carries their mean over the steps since the last."""
    model = SinGAN(to_tensor(load_image(OCT)[None]), small_settings(iters=6), seed=0)
    step, per_step = model.step, []

    def recorded_step():
        losses = step()
        assert all(isinstance(v, torch.Tensor) for v in losses.values())  # no .item() inside a step
        per_step.append({k: v.item() for k, v in losses.items()})
        return losses

    model.step = recorded_step
    reports, events = [], []
    hooks = Hooks(progress=lambda done, total, message="", **metrics: reports.append((done, total, metrics)),
                  event=lambda **fields: events.append(fields), samples=tmp_path)
    seconds = train(model, hooks, log_every=4)
    assert seconds > 0 and model.finished
    assert [done for done, _, _ in reports] == list(range(1, 19))  # the status moves every step
    logged = [(done, metrics) for done, _, metrics in reports if metrics]
    assert [done for done, _ in logged] == [4, 6, 8, 12, 16, 18]  # every 4 steps and at each level's end
    start = 0
    for done, metrics in logged:
        for name in ("critic", "gp", "adversarial", "rec_rmse"):
            assert metrics[name] == pytest.approx(np.mean([s[name] for s in per_step[start:done]]), rel=1e-5)
        start = done
    assert [e["stage"] for e in events if e["type"] == "stage"] == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.glob("stage_*.png")) == ["stage_0.png", "stage_1.png", "stage_2.png"]


def test_trainer_saves_a_checkpoint_and_raises_interrupted_when_asked_to_stop(tmp_path):
    image = to_tensor(load_image(OCT)[None])
    steps = []
    hooks = Hooks(progress=lambda done, total, message="", **metrics: steps.append(done),
                  should_stop=lambda: len(steps) >= 7, checkpoints=tmp_path)
    with pytest.raises(Interrupted):
        train(SinGAN(image, small_settings(iters=6), seed=0), hooks, checkpoint_every=100)
    assert steps == list(range(1, 9))  # the stop is seen after step 8: level 2, iteration 2
    resumed, resumed_steps, events = SinGAN(image, small_settings(iters=6), seed=0), [], []
    train(resumed, Hooks(progress=lambda done, total, message="", **metrics: resumed_steps.append(done),
                         event=lambda **fields: events.append(fields), checkpoints=tmp_path))
    assert [(e["stage"], e["iteration"]) for e in events if e["type"] == "resume"] == [(1, 2)]
    assert resumed_steps == list(range(9, 19)) and resumed.finished
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (state["stage"], state["iteration"]) == (2, 6)
    (tmp_path / "last.pt").write_bytes(b"torn")
    with pytest.raises(ValueError, match="last.pt"):
        train(SinGAN(image, small_settings(iters=6), seed=0), Hooks(checkpoints=tmp_path))
