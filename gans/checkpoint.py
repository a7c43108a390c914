"""Saving and loading GAN weights, including checkpoints a user uploads.

Two kinds of file, both plain `torch.save` dicts of tensors, numbers and strings that load
with `weights_only=True` (never an arbitrary unpickle):
- `last.pt` (training state for resume): config, step, seconds, models, optimizers, RNG;
- `generator.pt` (the finished generator): format tag, config, data shape and class names,
  generator weights, and its provenance (data/provenance.py: what it learned from, with the
  fingerprints of those real images). This is what the Samples page opens or accepts as an upload.

An uploaded generator is untrusted: a file inflating past `MAX_FILE_BYTES` is not read, the sizes
its stored config declares are held to limits (image size, `MAX_CLASSES`, `MAX_PARAMETERS`), and
its weights are checked against that architecture built on the meta device (every key, every
shape) before a real model is built or any weight loaded; its provenance is
unknown whatever the file claims: `generator_provenance` is for generators the lab wrote itself.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from data.config import ConfigError
from data.files import atomic_save
from data.provenance import Provenance
from gans.blocks import IMAGE_SIZES
from gans.config import GanConfig, build_gan

GENERATOR_FORMAT = "gan-lab-generator/1"
MAX_FILE_BYTES = 1024**3  # a generator file, uncompressed; the largest the presets make is 0.6 GB
MAX_CLASSES = 100
MAX_PARAMETERS = 300_000_000  # generator and discriminator; the paper presets at 128 px with 11 classes: 270 M


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def save_atomic(obj: dict, path: Path) -> Path:
    return atomic_save(path, lambda tmp: torch.save(obj, tmp))


def load_trusted(path: Path, device="cpu") -> dict:
    """A checkpoint this lab wrote (resume); still loaded with weights_only=True."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a torn or foreign file: say which one
        raise CheckpointError(f"{path}: cannot resume from this checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None


def save_generator(gan, config: GanConfig, class_names: list[str], path: Path, provenance: Provenance | None = None,
                   trained_on: np.ndarray | None = None) -> Path:
    """Write the finished generator; `provenance` and `trained_on` (uint64 fingerprints) say what it learned from."""
    if provenance is None:
        provenance = Provenance.unknown("not recorded by the code that saved the generator")
    provenance.check(trained_on, path.name)
    blob = {
        "format": GENERATOR_FORMAT,
        "config": config.to_dict(),
        "data": {"image_size": gan.image_size, "channels": gan.channels, "num_classes": gan.num_classes,
                 "class_names": list(class_names)},
        "generator": gan.sampling_generator.state_dict(),
        "provenance": provenance.to_dict(),
    }
    if provenance.known:  # torch has no uint64 tensors to save: the same 64 bits as int64
        blob["trained_on"] = torch.from_numpy(np.asarray(trained_on, dtype=np.uint64).view(np.int64).copy())
    return save_atomic(blob, path)


def generator_provenance(path: Path) -> tuple[Provenance, np.ndarray | None]:
    """The provenance a generator file of this lab records, with its fingerprints (None when unknown).

    Only for a generator the lab wrote (a finished GAN run's checkpoints/generator.pt): an uploaded
    generator's claims are not evidence, so its provenance is unknown and this is not called.
    A file saved before provenance was recorded is unknown; a malformed record is a
    CheckpointError naming the file.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a torn or foreign file: say which one
        raise CheckpointError(f"{path}: not a readable generator file ({type(e).__name__})") from None
    if not isinstance(blob, dict) or "provenance" not in blob:
        return Provenance.unknown(f"{path.name} was saved before the lab recorded provenance"), None
    try:
        provenance = Provenance.from_dict(blob["provenance"])
        prints = blob.get("trained_on")
        trained_on = prints.numpy().view(np.uint64) if isinstance(prints, torch.Tensor) else None
        provenance.check(trained_on, path.name)
    except (ConfigError, ValueError) as e:
        raise CheckpointError(f"{path}: unusable provenance ({e})") from None
    return provenance, trained_on if provenance.known else None


def load_generator(source: str | Path | bytes, name: str = "", device="cpu"):
    """(GAN, config, class_names) from a generator file path or uploaded bytes.

    Raises CheckpointError with a message naming the file for anything that is not a
    generator this lab can rebuild exactly: not a torch file, pickled objects, missing
    fields, an unknown GAN, or weights whose keys or shapes differ from the architecture.
    """
    name = name or (Path(source).name if not isinstance(source, bytes) else "uploaded checkpoint")
    _check_file_size(source, name)
    try:
        blob = torch.load(io.BytesIO(source) if isinstance(source, bytes) else source,
                          map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to parse means the file is unusable
        raise CheckpointError(f"{name}: not a loadable weights-only PyTorch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None
    if not isinstance(blob, dict) or blob.get("format") != GENERATOR_FORMAT:
        raise CheckpointError(f"{name}: not a generator checkpoint of this lab (expected format "
                              f"'{GENERATOR_FORMAT}'; use checkpoints/generator.pt of a finished GAN run)")
    for key, kind in (("config", dict), ("data", dict), ("generator", dict)):
        if not isinstance(blob.get(key), kind):
            raise CheckpointError(f"{name}: field '{key}' is missing or malformed")
    data = blob["data"]
    try:
        config = GanConfig.from_dict(blob["config"])
        size, channels, classes = int(data["image_size"]), int(data["channels"]), int(data["num_classes"])
        class_names = [str(c) for c in data["class_names"]]
        if len(class_names) != classes or channels not in (1, 3) or classes < 1:
            raise ValueError(f"{classes} classes, {len(class_names)} class names, {channels} channels")
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{name}: its stored config does not describe a GAN of this lab ({e})") from None
    blueprint = _blueprint(config, size, channels, classes, name)
    check_state_matches(blueprint.sampling_generator.state_dict(), blob["generator"], name)
    gan = build_gan(config, size, channels, classes, device=device)
    gan.sampling_generator.load_state_dict(blob["generator"])
    return gan, config, class_names


def _check_file_size(source: str | Path | bytes, name: str) -> None:
    """Refuse a file whose records inflate past MAX_FILE_BYTES before torch reads it (torch reads
    deflated records too: a few KB can declare gigabytes)."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except Exception:  # noqa: BLE001 - not a zip file: torch.load says what is wrong with it
        return
    if total > MAX_FILE_BYTES:
        raise CheckpointError(f"{name}: holds {total / 2**20:.1f} MiB uncompressed; the limit is "
                              f"{MAX_FILE_BYTES / 2**20:.0f} MiB")


def _blueprint(config: GanConfig, size: int, channels: int, classes: int, name: str):
    """The GAN the file describes, built on the meta device (shapes only, no memory), once its
    sizes are within the limits; refused naming the limit otherwise."""
    if size not in IMAGE_SIZES:
        raise CheckpointError(f"{name}: image size {size} is not one of {IMAGE_SIZES}")
    if classes > MAX_CLASSES:
        raise CheckpointError(f"{name}: {classes} classes; the limit is {MAX_CLASSES}")
    with torch.device("meta"):
        blueprint = build_gan(config, size, channels, classes, device="meta")
    parameters = sum(p.numel() for network in (blueprint.generator, blueprint.discriminator)
                     for p in network.parameters())
    if parameters > MAX_PARAMETERS:
        amount = f"{parameters / 1e9:.1f} billion" if parameters >= 1e9 else f"{parameters / 1e6:.0f} million"
        raise CheckpointError(f"{name}: its config describes a GAN of {amount} parameters; the limit is "
                              f"{MAX_PARAMETERS // 10**6} million")
    return blueprint


def check_state_matches(expected: dict, given: dict, name: str) -> None:
    """Refuse weights whose keys, shapes, dtypes or values do not fit the expected model."""
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{name}: weights do not match the {len(expected)}-tensor architecture its config "
                              f"describes (missing: {', '.join(missing[:5]) or 'none'}; "
                              f"unexpected: {', '.join(extra[:5]) or 'none'})")
    for key, tensor in expected.items():
        value = given[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{name}: '{key}' has shape {shape}, the architecture needs {tuple(tensor.shape)}")
        if value.dtype != tensor.dtype:
            raise CheckpointError(f"{name}: '{key}' is {value.dtype}, expected {tensor.dtype}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{name}: '{key}' holds NaN or infinite values")
