"""Strict configs: the one base of every config the lab builds, saves and reloads.

A config is a dataclass that inherits `Config`. Building one (from code, a form, the CLI or
a config.json) checks every field at once:
- unknown keys are an error that names the key and the known ones;
- each value must have its annotated type (a bool is not an int, "no" is not a bool; an
  integral float such as 1000.0 is accepted for an int, an int for a float);
- `option(...)` metadata gives a field its range or choices (checked), and its label and help
  (used by the pages' forms and the CLI's `--set` help); every count has an upper limit (the MAX_*
  below), so a count that would exhaust memory, disk or time is refused, naming the field and limit;
- a subclass's `validate()` adds the rules that tie fields together.
So a bad config fails where it is made, before anything is queued, with a message that names
the field.
"""
from __future__ import annotations

import dataclasses
import json
import math
import reprlib
import types
import typing
from dataclasses import MISSING, field
from typing import Any

# Upper limits of the counts a user gives: generous, but finite, so that one zero too many (or 1e23) is
# refused where the config is built instead of exhausting the memory, the disk or the years of a job.
MAX_SEED = 2 ** 31 - 1  # seeds: what every random generator of the lab (torch, numpy) takes
MAX_STEPS = 10_000_000  # optimizer steps or iterations: weeks of training at several steps a second
MAX_EVERY = MAX_STEPS  # "every N steps" settings: more than the steps a run may take means never
MAX_BATCH = 4_096  # images per batch: 4096 RGB images at 512 px are 12 GiB of floats on the device
MAX_IMAGES_PER_CLASS = 20_000  # images drawn or generated per class: a synthetic set in memory and on disk
MAX_VARIATIONS = 1_000  # variations of one image: 1000 at 1024 px are 3 GiB
MAX_SEEDS_PER_CLASS = 1_000  # seed images per class of a single-image job: one generator (SinGAN) each
MAX_SEED_IMAGES = 10_000  # seed images of a single-image job in all
MAX_STUDY_SEEDS = 100  # seeds of a study: one classifier run per arm and seed
MAX_INDEX = 100_000_000  # an image's index in a dataset: more images than any dataset here has
MAX_IMAGES_BYTES = 4 * 2 ** 30  # a set of images the lab holds in memory at once (uint8)


class ConfigError(ValueError):
    """A config that cannot be built; the message names the field and what is wrong."""


def option(default: Any = MISSING, *, factory: Any = MISSING, label: str = "", help: str = "",
           min: float | None = None, max: float | None = None, choices: tuple | list | None = None,
           step: float | None = None, min_exclusive: bool = False) -> Any:
    """A config field with its range, choices, form label and help text."""
    metadata = {"label": label, "help": help, "min": min, "max": max, "step": step,
                "choices": tuple(choices) if choices is not None else None, "min_exclusive": min_exclusive}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


class Config:
    """Base of the lab's config dataclasses (plain or frozen); see the module docstring."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_type(getattr(self, f.name), hints[f.name], f"{self._name()}.{f.name}")
            _check_range(value, f, f"{self._name()}.{f.name}")
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Rules that tie several fields together; raise ConfigError. Override in subclasses."""

    @classmethod
    def _name(cls) -> str:
        return cls.__name__

    @classmethod
    def from_dict(cls, values: dict, where: str = ""):
        """The config from a dict (a config.json); unknown keys are an error."""
        if not isinstance(values, dict):
            raise ConfigError(f"{where or cls.__name__}: expected an object of settings, got {type(values).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in known]
        if unknown:
            raise ConfigError(f"{where or cls.__name__}: unknown setting(s) {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(known)})")
        try:
            return cls(**values)
        except TypeError as e:  # a nested value of the wrong kind
            raise ConfigError(f"{where or cls.__name__}: {e}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        """The fields that carry a label: what a form or `--set` help offers."""
        return [f for f in dataclasses.fields(cls) if f.metadata.get("label")]

    @classmethod
    def option_help(cls) -> str:
        """One line per labelled field: name, type, range or choices, help (for `--set` help)."""
        hints = _hints(cls)
        lines = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            kind = getattr(hints[f.name], "__name__", str(hints[f.name]))
            limits = _limits_text(meta)
            text = meta.get("help") or meta.get("label") or ""
            lines.append(f"{f.name} ({kind}{', ' + limits if limits else ''}){': ' + text if text else ''}")
        return "\n".join(lines)

    @classmethod
    def parse_setting(cls, pair: str) -> tuple[str, Any]:
        """A `KEY=VALUE` string from the command line as (key, typed value); VALUE is JSON or text."""
        key, sep, text = pair.partition("=")
        known = [f.name for f in dataclasses.fields(cls)]
        if not sep or key not in known:
            raise ConfigError(f"--set {pair}: expected KEY=VALUE with KEY one of {', '.join(known)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        return key, value


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _limits_text(meta) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f"{'>' if meta.get('min_exclusive') else ''}{lo}..{hi}"
    if lo is not None:
        return f"{'>' if meta.get('min_exclusive') else '≥'} {lo}"
    if hi is not None:
        return f"≤ {hi}"
    return ""


def _check_range(value, f: dataclasses.Field, where: str) -> None:
    meta = f.metadata
    if value is None:
        return
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, meta['choices']))}; got {_shown(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
            raise ConfigError(f"{where} must be {'above' if meta.get('min_exclusive') else 'at least'} {lo}; "
                              f"got {_shown(value)}")
        if hi is not None and value > hi:
            raise ConfigError(f"{where} must be at most {hi}; got {_shown(value)}")


def _check_type(value, hint, where: str):
    """`value` as the annotated type (numbers widened, nested configs built), or ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option_hint in options:
            if option_hint is type(None):
                continue
            try:
                return _check_type(value, option_hint, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {_shown(value)} fits none of {hint}")
    if hint is Any:
        return value
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, hint):
            return value
        if isinstance(value, dict):
            return hint.from_dict(value, where=where)
        raise ConfigError(f"{where} must be an object of {hint.__name__} settings; got {type(value).__name__}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false; got {_shown(value)}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _is_whole(value):
            raise ConfigError(f"{where} must be a whole number; got {_shown(value)}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number; got {_shown(value)}")
        if not _is_finite(value):
            raise ConfigError(f"{where} must be a finite number; got {_shown(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text; got {_shown(value)}")
        return value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list; got {_shown(value)}")
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where} must have {len(args)} items; got {len(value)}")
            return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be an object; got {_shown(value)}")
        return value
    if isinstance(value, hint):
        return value
    raise ConfigError(f"{where} must be {getattr(hint, '__name__', hint)}; got {_shown(value)}")


def _is_whole(value: float) -> bool:
    """An int, or a float with no fraction (infinity and NaN have no whole value)."""
    return isinstance(value, int) or (math.isfinite(value) and value == int(value))


def _is_finite(value: float) -> bool:
    """A float, or an int that a float can hold (10**400 is beyond one)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _shown(value) -> str:
    """`value` in a message: long texts and lists shortened, a huge whole number by its size (Python will
    not even write one of over 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a number of about {round(value.bit_length() * math.log10(2))} digits"
    return reprlib.repr(value)


def check_images_bytes(count_text: str, count: int, height: int, width: int, channels: int, advice: str) -> None:
    """ValueError, before anything is allocated, when `count` uint8 images of height × width × channels exceed
    MAX_IMAGES_BYTES; `count_text` says where the count comes from ("per_class 200 × 7 classes")."""
    size = count * height * width * channels
    if size > MAX_IMAGES_BYTES:
        raise ValueError(f"{count_text} × {height}×{width}×{channels} px = {size / 2 ** 30:.1f} GiB of images; "
                         f"at most {MAX_IMAGES_BYTES // 2 ** 30} GiB fit in memory: {advice}")
