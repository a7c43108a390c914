"""GPNN: the pyramid, the completeness-normalised search, and variations of a real OCT scan."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from data.config import ConfigError
from data.hooks import Hooks, Interrupted
from data.imageset import to_tensor
from gans.gpnn import PRESETS, GpnnSettings, PatchIndex, generate, level_schedule, patches, pyramid_sizes
from tests.conftest import DATA_DIR

OCT = DATA_DIR / "oct2017_samples" / "CNV-53018-1.jpeg"  # 768×496 grayscale B-scan
SMALL = {"max_side": 64}  # 41×64: a real pyramid (5 levels) in a fraction of a second


@pytest.fixture(scope="module")
def scan() -> torch.Tensor:
    """The OCT scan as 1×496×768 in [-1, 1]."""
    with Image.open(OCT) as im:
        pixels = np.array(im.convert("L"))[..., None]
    return to_tensor(pixels[None])[0]


def source_at(image: torch.Tensor, settings: GpnnSettings) -> torch.Tensor:
    """The source as GPNN sees it at its finest level, 1×C×h×w in [-1, 1]."""
    size = pyramid_sizes(*image.shape[-2:], settings)[-1]
    return torch.nn.functional.interpolate(image[None], size=size, mode="bicubic", antialias=True).clamp(-1, 1)


def patch_coherence(source: torch.Tensor, images: torch.Tensor, p: int = 7) -> float:
    """Mean over the images' p×p patches of the RMS pixel distance to the nearest source patch."""
    keys = patches(source, p)[0]
    return float(np.mean([torch.cdist(patches(image[None], p)[0], keys).amin(1).mean().item() / p
                          for image in images]))


def test_pyramid_runs_from_min_side_to_max_side_in_steps_no_larger_than_the_ratio():
    settings = GpnnSettings()
    sizes = pyramid_sizes(496, 768, settings)
    assert sizes[-1] == (83, 128)
    assert min(sizes[0]) == settings.min_side
    for (h0, w0), (h1, w1) in zip(sizes, sizes[1:]):
        assert 1 < h1 / h0 <= settings.pyramid_ratio + 0.05 and w1 > w0
    assert pyramid_sizes(12, 20, settings) == [(12, 20)]  # already smaller than the coarsest level
    assert pyramid_sizes(28, 28, settings)[-1] == (28, 28)  # small images are not enlarged


def test_settings_are_strict_and_both_presets_build():
    with pytest.raises(ConfigError, match="min_side"):
        GpnnSettings(min_side=5, patch_size=7)
    with pytest.raises(ConfigError, match="alpha"):
        GpnnSettings(alpha=0)
    with pytest.raises(ConfigError, match="unknown"):
        GpnnSettings.from_dict({"sigma": 0.5})
    assert PRESETS["paper"].iters == 10 and PRESETS["paper"].fine_levels == 0
    assert level_schedule(7, 8, PRESETS["paper"]) == (10, 1)
    quick = PRESETS["quick"]
    fast = (quick.fine_iters, quick.search_stride)
    assert [level_schedule(level, 8, quick) for level in (4, 5, 7)] == [(10, 1), fast, fast]
    assert [level_schedule(level, 3, quick) for level in (0, 1, 2)] == [(10, 1), fast, fast]  # the coarsest stays exact


@pytest.mark.parametrize("memory_mb", [512, 16])  # 16 MB forces the two-pass search of one sample
def test_search_picks_the_key_with_the_best_completeness_normalised_score(memory_mb):
    gen = torch.Generator().manual_seed(0)
    keys, queries = torch.rand(2100, 49, generator=gen), torch.rand(2, 2100, 49, generator=gen)
    settings = GpnnSettings(alpha=0.05, memory_mb=memory_mb)
    index = PatchIndex(keys, settings)
    best, _ = index.search(index.embed(queries))
    for sample, chosen in zip(queries, best):
        distances = torch.cdist(sample.double(), keys.double())
        scores = distances / (settings.alpha + distances.amin(0))
        expected = scores.argmin(1)
        agree = (chosen == expected).float().mean().item()
        assert agree > 0.99  # float32 ties aside
        # and the completeness term matters: plain nearest neighbours choose differently
        assert (distances.argmin(1) != expected).any()


def test_variations_have_the_source_size_and_range_and_depend_on_the_seed(scan):
    settings = PRESETS["quick"].replace(**SMALL)
    first, again, other = (generate(scan, 3, settings, seed=seed) for seed in (0, 0, 1))
    assert first.shape == (3, 1, 41, 64)
    assert first.min() >= -1 and first.max() <= 1 and torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 0.02
    assert (first[0] - first[1]).abs().mean() > 0.02  # samples of one batch differ too


@pytest.mark.parametrize("preset", ["paper", "quick"])
def test_injecting_the_image_itself_without_noise_reconstructs_it(scan, preset):
    settings = PRESETS[preset].replace(noise_std=0.0, **SMALL)
    out = generate(scan, 2, settings, seed=0, inject=scan)
    assert (out - source_at(scan, settings)).abs().mean() < 0.01


def test_variations_are_new_images_made_of_the_sources_patches(scan):
    settings = PRESETS["quick"].replace(**SMALL)
    source = source_at(scan, settings)
    out = generate(scan, 6, settings, seed=0)
    # Most samples are new images; GPNN does return a near copy now and then (1 in 6 here, 0.01).
    assert (out - source).abs().mean(dim=(1, 2, 3)).median() > 0.08
    shuffled = source.flatten()[torch.randperm(source.numel(), generator=torch.Generator().manual_seed(0))]
    same_histogram = shuffled.view_as(source)
    assert patch_coherence(source, out) < 0.3 * patch_coherence(source, same_histogram)


def test_an_injected_layout_is_kept(scan):
    settings = PRESETS["quick"].replace(noise_std=0.0, **SMALL)
    source = source_at(scan, settings)
    shifted = source.roll(32, dims=-1)  # the retina's two halves swapped
    out = generate(scan, 1, settings, seed=0, inject=shifted[0])
    assert (out - shifted).abs().mean() < 0.6 * (out - source).abs().mean()


def test_hooks_report_every_level_and_can_stop(scan):
    settings = PRESETS["quick"].replace(**SMALL)
    reports = []
    generate(scan, 1, settings, hooks=Hooks(progress=lambda done, total, message="", **_: reports.append(done)))
    assert reports == list(range(1, len(pyramid_sizes(*scan.shape[-2:], settings)) + 1))
    with pytest.raises(Interrupted):
        generate(scan, 1, settings, hooks=Hooks(should_stop=lambda: True))


def test_inject_must_match_the_source_channels(scan):
    with pytest.raises(ValueError, match="inject"):
        generate(scan, 2, PRESETS["quick"].replace(**SMALL), inject=torch.zeros(3, 41, 64))


def test_ten_variations_of_a_small_scan_take_well_under_a_few_seconds(scan):
    # CPU time, not wall time: on a shared machine waiting for a core is not the code's cost.
    started = time.process_time()
    generate(scan, 10, PRESETS["quick"].replace(**SMALL), seed=0)
    assert time.process_time() - started < 3  # about 0.4 CPU-seconds here


def test_a_small_colour_image_gets_colour_variations():
    with np.load(DATA_DIR / "dermamnist.npz") as arrays:
        image = to_tensor(arrays["train_images"][:1])[0]  # 3×28×28 dermatoscopy
    out = generate(image, 4, PRESETS["quick"], seed=0)
    assert out.shape == (4, 3, 28, 28)
    assert (out.std(0).mean() > 0.02) and (out[:, 0] - out[:, 2]).abs().mean() > 0.05  # varied, and in colour
