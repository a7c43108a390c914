"""Strict configs: the one base of every config the lab builds, saves and reloads.

A config is a dataclass that inherits `Config`. Building one (from code, a form, the CLI or
a config.json) checks every field at once:
- unknown keys are an error that names the key and the known ones;
- each value must have its annotated type (a bool is not an int, "no" is not a bool; an
  integral float such as 1000.0 is accepted for an int, an int for a float);
- `option(...)` metadata gives a field its range or choices (checked), and its label and help
  (used by the pages' forms and the CLI's `--set` help);
- a subclass's `validate()` adds the rules that tie fields together.
So a bad config fails where it is made, before anything is queued, with a message that names
the field.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import MISSING, field
from typing import Any


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
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, meta['choices']))}; got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
            raise ConfigError(f"{where} must be {'above' if meta.get('min_exclusive') else 'at least'} {lo}; "
                              f"got {value}")
        if hi is not None and value > hi:
            raise ConfigError(f"{where} must be at most {hi}; got {value}")


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
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {hint}")
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
        raise ConfigError(f"{where} must be true or false; got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ConfigError(f"{where} must be a whole number; got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number; got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} must be a finite number; got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text; got {value!r}")
        return value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list; got {value!r}")
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
            raise ConfigError(f"{where} must be an object; got {value!r}")
        return value
    if isinstance(value, hint):
        return value
    raise ConfigError(f"{where} must be {getattr(hint, '__name__', hint)}; got {value!r}")
