"""GPNN: single-image variations by patch nearest neighbours, no training.

Granot, Feinstein, Shocher, Bagon, Irani, "Drop the GAN: In Defense of Patches Nearest Neighbors
as Single Image Generative Models", CVPR 2022.

A coarse-to-fine pyramid of the source image. The coarsest level starts from the downscaled
source (or an injected image) plus strong Gaussian noise. At each level, `iters` times: cut the
current estimate into all overlapping p×p patches (queries), find for each query a source patch
(key) by the completeness-normalised score

    score(q, k) = ‖q − k‖ / (alpha + min over the sample's queries q' of ‖q' − k‖),

replace every query by its key's value patch, and fold the patches back into an image by
averaging where they overlap. A small alpha favours keys that no query is close to yet, so each
output uses most of the source's patches (completeness) instead of collapsing onto a few.
Moving up a level, the estimate is upsampled (so it is blurry); its first iteration therefore
matches against keys from the coarser source upsampled the same way (equally blurry) and copies
the values from the sharp source at this level; later iterations match against the sharp source.

Distances are in the paper's units: pixel values in [0, 1], Euclidean over the patch. Search is
brute force, as matrix products over chunks of the distance matrix; the N samples go through it
as one batch against one key index per level.

Speed. The exact search costs about 0.5 CPU-seconds per sample per round at the finest level of
an 83×128 scan (9394 queries × 9394 keys), so the paper's 10 rounds at each of 8 levels take
60-85 CPU-seconds for 10 samples. The "quick" preset keeps the paper's search at the coarse
levels, which set the layout, and cuts the cost of the 3 finest, which only add detail: 3 rounds
instead of 10, each matching the queries on a stride-2 grid only and giving every other query
the best of its grid neighbours' matches, shifted by its offset (as PatchMatch propagates).
Same seed, same layouts as the paper's settings. On the four OCT sample scans at 128 px (10
samples each, same seeds) quick took 9 CPU-seconds for the 83×128 scan against 85 and matched
the paper's settings: mean SIFID 2.26 against 2.36, diversity 0.72 against 0.72, the same
distance of output patches to their nearest source patch. Fewer rounds alone cost detail (2
rounds at exact search: SIFID 3.02); the stride-2 search alone improved it (coherent neighbours'
matches copy larger clean pieces: SIFID 2.13 at 10 rounds). Tried and left out: comparing
patches by 16 principal components (6% faster, SIFID worse on both scans tried), bfloat16
products (2.8× faster products on this CPU, but 17% of the matches change).

`GpnnConfig` (built by `make_config`) is the config of the "gpnn" job (lab/kinds/gpnn.py): one
image, or k seed images per class of a dataset, and how many variations of each.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from data.config import MAX_SEED, Config, ConfigError, option
from data.device import resolve_device
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet, to_tensor
from gans.single_image import SingleImageJob, to_working_size


@dataclass(frozen=True)
class GpnnSettings(Config):
    """GPNN's settings; the defaults are the paper's (at a 128-px long side)."""

    patch_size: int = option(7, label="Patch size", min=3, max=15,
                             help="side of the square patches matched and copied, in pixels")
    pyramid_ratio: float = option(4 / 3, label="Pyramid ratio", min=1.05, max=2.0,
                                  help="largest scale factor between neighbouring pyramid levels")
    min_side: int = option(14, label="Coarsest side (px)", min=4, max=512,
                           help="short side of the coarsest pyramid level: about twice the patch size lets the "
                                "noise there rearrange the image's layout")
    max_side: int = option(128, label="Long side (px)", min=8, max=1024,
                           help="long side of the output; larger images are shrunk to it, smaller ones kept")
    noise_std: float = option(0.75, label="Noise std", min=0.0, max=5.0,
                              help="std of the Gaussian noise added to the coarsest level, in [0, 1] pixel units; "
                                   "0 with an injected image reconstructs it")
    alpha: float = option(0.005, label="Alpha (completeness)", min=0.0, min_exclusive=True, max=10.0,
                          help="smaller favours source patches not used yet (more complete, more diverse)")
    iters: int = option(10, label="Iterations per level", min=1, max=100,
                        help="patch replacement rounds per level (the paper's T)")
    fine_levels: int = option(0, label="Fast fine levels", min=0, max=20,
                              help="how many of the finest levels run with `fine_iters` rounds and the search "
                                   "stride; the coarser ones, which set the layout, keep the paper's exact search "
                                   "(the coarsest always does)")
    fine_iters: int = option(2, label="Iterations per fast level", min=1, max=100,
                             help="patch replacement rounds at each fast fine level")
    search_stride: int = option(2, label="Search stride (fast levels)", min=1, max=4,
                                help="at the fast levels, match queries on a grid of this stride and give the others "
                                     "the best of their grid neighbours' shifted matches; 1: match every query")
    memory_mb: int = option(512, label="Search memory (MB)", min=16, max=65536,
                            help="largest distance-matrix chunk held at once")

    def validate(self) -> None:
        if self.min_side < self.patch_size:
            raise ConfigError(f"GpnnSettings.min_side ({self.min_side}) must be at least the patch size "
                              f"({self.patch_size})")


PRESETS: dict[str, GpnnSettings] = {
    "paper": GpnnSettings(max_side=250),
    "quick": GpnnSettings(fine_levels=3, fine_iters=3),
}


# --- the pyramid --------------------------------------------------------------------------------

def pyramid_sizes(height: int, width: int, settings: GpnnSettings) -> list[tuple[int, int]]:
    """(h, w) of every level, coarse to fine.

    The finest level has long side `max_side` (or the image's own size if smaller); the coarsest
    has short side `min_side` (or the finest's, if that is smaller); the levels in between are
    spaced geometrically with a ratio of at most `pyramid_ratio`.
    """
    scale = min(1.0, settings.max_side / max(height, width))
    fine = (max(1, round(height * scale)), max(1, round(width * scale)))
    short = min(fine)
    if short <= settings.min_side:
        return [fine]
    steps = math.ceil(math.log(short / settings.min_side) / math.log(settings.pyramid_ratio) - 1e-9)
    sizes = []
    for level in range(steps + 1):
        factor = (settings.min_side / short) ** ((steps - level) / steps)
        sizes.append((max(settings.patch_size, round(fine[0] * factor)),
                      max(settings.patch_size, round(fine[1] * factor))))
    sizes[-1] = fine
    return sizes


def level_schedule(level: int, levels: int, settings: GpnnSettings) -> tuple[int, int]:
    """(replacement rounds, search stride) at `level` (0 = coarsest) of a `levels`-level pyramid.

    The `fine_levels` finest levels are the fast ones, never the coarsest: it sets the layout.
    """
    if level >= max(1, levels - settings.fine_levels):
        return settings.fine_iters, settings.search_stride
    return settings.iters, 1


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize, antialiased when shrinking; queries and blurred keys go through the same one."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


def patches(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Every p×p patch of N×C×H×W images, row-major: N × (H−p+1)(W−p+1) × C·p·p."""
    return F.unfold(images, patch_size).transpose(1, 2)


def fold(values: torch.Tensor, size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Inverse of `patches`: N×Q×C·p·p patches averaged into N×C×H×W images where they overlap."""
    summed = F.fold(values.transpose(1, 2), size, patch_size)
    ones = torch.ones(1, 1, *size, dtype=values.dtype, device=values.device)
    coverage = F.fold(F.unfold(ones, patch_size), size, patch_size)
    return summed / coverage


# --- the search ---------------------------------------------------------------------------------

class PatchIndex:
    """The key patches of one level, ready for the completeness-normalised nearest-neighbour search.

    Patches are centred on the keys' mean (smaller numbers, less cancellation in float32), then
    embedded so that one matrix product gives squared distances:
    query [q, ‖q‖², 1] · key [−2k, 1, ‖k‖²] = ‖q − k‖².
    """

    def __init__(self, keys: torch.Tensor, settings: GpnnSettings):
        self.alpha = settings.alpha
        self.budget = settings.memory_mb * 2 ** 20 // 4  # float32 elements per distance chunk
        self.mean = keys.mean(0)
        self.scratch: torch.Tensor | None = None
        k = keys - self.mean
        ones = torch.ones(len(k), 1, dtype=k.dtype, device=k.device)
        self.keys = torch.cat([-2 * k, ones, (k * k).sum(1, keepdim=True)], 1)  # K × (d+2)

    def __len__(self) -> int:
        return len(self.keys)

    def embed(self, queries: torch.Tensor) -> torch.Tensor:
        """N×Q×D query patches -> N×Q×(d+2) embedded queries."""
        q = queries - self.mean
        return torch.cat([q, (q * q).sum(-1, keepdim=True), torch.ones_like(q[..., :1])], -1)

    def search(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best key per embedded query, N×Q (long), and each sample's key weights N×K.

        A key's weight is 1 / (alpha + its distance to the sample's closest query)²; the squared
        distance times the weight orders keys as the paper's normalised score does.
        """
        n, q, _ = queries.shape
        k = len(self)
        best = torch.empty(n, q, dtype=torch.long, device=queries.device)
        weights = torch.empty(n, k, dtype=queries.dtype, device=queries.device)
        if q * k <= self.budget:
            step = self.budget // (q * k)
            for start in range(0, n, step):
                chunk = queries[start:start + step]
                distances = self._distances(chunk.reshape(-1, chunk.shape[-1])).view(len(chunk), q, k)
                weights[start:start + step] = self._weights(distances.amin(1))
                best[start:start + step] = distances.mul_(weights[start:start + step, None]).argmin(-1)
        else:  # one sample's matrix is too big: a pass for the keys' minima, then one for the matches
            rows = max(1, self.budget // k)
            for i in range(n):
                minima = torch.stack([self._distances(part).amin(0) for part in queries[i].split(rows)]).amin(0)
                weights[i] = self._weights(minima)
                best[i] = torch.cat([self._distances(part).mul_(weights[i]).argmin(-1)
                                     for part in queries[i].split(rows)])
        return best, weights

    def _distances(self, queries: torch.Tensor) -> torch.Tensor:
        """M×(d+2) embedded queries -> M×K squared distances, in a reused buffer (a fresh one per
        chunk would cost the page faults of hundreds of megabytes per level)."""
        needed = len(queries) * len(self)
        if self.scratch is None or len(self.scratch) < needed:
            self.scratch = torch.empty(needed, dtype=queries.dtype, device=queries.device)
        return torch.mm(queries, self.keys.T, out=self.scratch[:needed].view(len(queries), len(self)))

    def _weights(self, squared_minima: torch.Tensor) -> torch.Tensor:
        return (self.alpha + squared_minima.clamp_min(0).sqrt()).pow(-2)


def match(index: PatchIndex, queries: torch.Tensor, grid: tuple[int, int], stride: int) -> torch.Tensor:
    """Key index for each of the N×Q query patches laid out on a `grid` (rows, cols) = the key grid.

    stride 1 searches every query. A larger stride searches the queries on a grid of that stride
    (plus the last row and column) and gives every query the best of four candidates: the matches
    of the grid queries around it, shifted by its offset from them (a coherent neighbour's patch
    continues where the neighbour's match left off), scored like the search.
    """
    embedded = index.embed(queries)
    if stride == 1:
        return index.search(embedded)[0]
    n, (h, w), dim = len(queries), grid, embedded.shape[-1]
    rows, cols = _grid_lines(h, stride, queries.device), _grid_lines(w, stride, queries.device)
    on_grid = embedded.view(n, h, w, dim)[:, rows][:, :, cols].reshape(n, -1, dim)
    best, weights = index.search(on_grid)
    best = best.view(n, len(rows), len(cols))
    y, x = torch.arange(h, device=queries.device), torch.arange(w, device=queries.device)
    candidates = []
    for r in _neighbour_lines(rows, y):
        for c in _neighbour_lines(cols, x):
            source = best[:, r][:, :, c]  # N × h × w: the neighbour's match
            key_y = (source // w + (y - rows[r])[:, None]).clamp(0, h - 1)
            key_x = (source % w + (x - cols[c])[None, :]).clamp(0, w - 1)
            candidates.append((key_y * w + key_x).view(n, -1))
    candidates = torch.stack(candidates, -1)  # N × Q × 4
    distances = (index.keys[candidates] @ embedded.unsqueeze(-1)).squeeze(-1)  # N × Q × 4
    key_weights = weights.gather(1, candidates.flatten(1)).view_as(candidates)
    choice = (distances * key_weights).argmin(-1, keepdim=True)
    return candidates.gather(2, choice).squeeze(-1)


def _grid_lines(length: int, stride: int, device) -> torch.Tensor:
    """Positions 0, s, 2s, … and the last one."""
    lines = list(range(0, length, stride))
    if lines[-1] != length - 1:
        lines.append(length - 1)
    return torch.tensor(lines, device=device)


def _neighbour_lines(lines: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each position, the index of the grid line at or before it and the one at or after it."""
    after = torch.searchsorted(lines, positions)
    before = torch.where(lines[after] == positions, after, after - 1)
    return before, after


# --- generation ---------------------------------------------------------------------------------

@torch.no_grad()
def generate(image: torch.Tensor, n: int, settings: GpnnSettings | None = None, seed: int = 0,
             inject: torch.Tensor | None = None, hooks: Hooks | None = None) -> torch.Tensor:
    """`n` variations of one image.

    image: C×H×W float in [-1, 1]. inject: None (start from the source), or a C×H×W or N×C×H×W
    image in [-1, 1] to start from instead (resized to the coarsest level; noise is added to it
    too). Returns N×C×h×w in [-1, 1], where (h, w) is the image's size shrunk to a long side of
    `max_side` if it is larger. Runs on the image's device; `hooks` gets a progress report per
    pyramid level and may stop the run between levels (raising `Interrupted`).
    """
    settings = settings or GpnnSettings()
    hooks = hooks or NO_HOOKS
    if image.ndim != 3:
        raise ValueError(f"GPNN takes one C×H×W image; got shape {tuple(image.shape)}")
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    if min(image.shape[-2:]) < settings.patch_size:
        raise ValueError(f"the image ({image.shape[-1]}×{image.shape[-2]} px) is smaller than a patch "
                         f"({settings.patch_size} px)")
    p = settings.patch_size
    source = (image.detach().float()[None] + 1) / 2  # the paper's [0, 1] units
    sizes = pyramid_sizes(*image.shape[-2:], settings)
    sources = [resize(source, size) for size in sizes]

    start = sources[0] if inject is None else resize(_as_batch(inject, image, n).to(source) / 2 + 0.5, sizes[0])
    rng = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, image.shape[0], *sizes[0], generator=rng).to(source)
    x = start.expand(n, -1, -1, -1) + settings.noise_std * noise

    for level, size in enumerate(sizes):
        hooks.stop_if_asked()
        level_started = time.perf_counter()
        values = patches(sources[level], p)[0]
        grid = (size[0] - p + 1, size[1] - p + 1)
        sharp_index = PatchIndex(values, settings)
        index = sharp_index
        if level:
            x = resize(x, size)
            index = PatchIndex(patches(resize(sources[level - 1], size), p)[0], settings)
        rounds, stride = level_schedule(level, len(sizes), settings)
        for _ in range(rounds):
            best = match(index, patches(x, p), grid, stride)
            x = fold(values[best], size, p)
            index = sharp_index
        hooks.progress(level + 1, len(sizes), f"level {level + 1}/{len(sizes)}: {size[0]}×{size[1]}",
                       level_seconds=round(time.perf_counter() - level_started, 3), level_side=max(size))
    return (x * 2 - 1).clamp(-1, 1)


def _as_batch(inject: torch.Tensor, image: torch.Tensor, n: int) -> torch.Tensor:
    """An injected image as 1×C×H×W or n×C×H×W, checked against the source's channels."""
    batch = inject[None] if inject.ndim == 3 else inject
    if batch.ndim != 4 or batch.shape[1] != image.shape[0] or len(batch) not in (1, n):
        raise ValueError(f"inject must be C×H×W or {n}×C×H×W with C = {image.shape[0]}; "
                         f"got shape {tuple(inject.shape)}")
    return batch.detach().float()


# --- the job's config ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GpnnConfig(SingleImageJob):
    """A GPNN job: one image → variations ("image"), or k seed images per class → a labelled set ("seeds")."""

    preset: str = option("quick", label="Preset", choices=tuple(PRESETS),
                         help="quick: the paper's search at the coarse levels, a faster one at the 3 finest "
                              "(seconds); paper: the paper's settings at a 250-px long side")
    model: GpnnSettings = field(default_factory=GpnnSettings)
    seed: int = option(0, label="Seed", min=0, max=MAX_SEED)
    device: str = option("auto", label="Device", help="auto: CUDA when present, else CPU")
    sifid: bool = option(True, label="SIFID",
                         help="image mode: score the variations' SIFID against the image (loads Inception)")


def gpnn_config(preset: str = "quick", **fields) -> GpnnConfig:
    """A config from a preset; `fields` override job fields and GPNN settings by name."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    settings = {f.name for f in dataclasses.fields(GpnnSettings)}
    model = {k: v for k, v in fields.items() if k in settings}
    job = {k: v for k, v in fields.items() if k not in settings}
    return GpnnConfig.from_dict({**job, "preset": preset, "model": {**PRESETS[preset].to_dict(), **model}})


def variations_of(image: np.ndarray, config: GpnnConfig, seed: int, hooks: Hooks = NO_HOOKS) -> torch.Tensor:
    """`config.variations` GPNN variations of a uint8 H×W×C image: N×C×h×w in [-1, 1], on the CPU."""
    source = to_tensor(image[None])[0].to(resolve_device(config.device))
    return generate(source, config.variations, config.model, seed=seed, hooks=hooks).cpu()


def seed_variations(train_split: ImageSet, seeds: list[int], config: GpnnConfig, size: int,
                    hooks: Hooks = NO_HOOKS) -> list[np.ndarray]:
    """The variations of each seed image (training indices `seeds`), one after another with seeds
    `config.seed + position`, at the dataset's working `size` and channels (uint8, one array per seed);
    each seed's pyramid levels are its share of one progress bar."""
    return [to_working_size(variations_of(train_split.images[index], config, config.seed + position,
                                          _share(hooks, position, len(seeds))), size, train_split.channels)
            for position, index in enumerate(seeds)]


def _share(hooks: Hooks, position: int, count: int) -> Hooks:
    """`hooks` for the seed at `position` of `count`: its progress is that share of the whole."""
    def progress(done: int, total: int, message: str = "", **metrics) -> None:
        hooks.progress(position * total + done, count * total, f"seed {position + 1}/{count}: {message}", **metrics)

    return Hooks(progress=progress, event=hooks.event, should_stop=hooks.should_stop)
