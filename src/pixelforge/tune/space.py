"""The search space: a YAML file whose keys are config keys (so anything trainable is tunable).

    lr: {low: 1.0e-4, high: 1.0e-2, log: true}     # float range (log scale)
    batch_size: [16, 32, 64]                          # categorical: a list
    epochs: {low: 2, high: 6}                         # int range: both bounds are integers
    dropout: {low: 0.0, high: 0.5, step: 0.1}         # optional step

Each entry becomes one of Optuna's distributions; `suggest` asks a trial for every key.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from pixelforge.errors import PixelforgeError

_RANGE_KEYS = {"low", "high", "log", "step"}


class _SpaceLoader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` (no dot) as a string, so `lr: [1e-3, 1e-2]` became string choices that reached the
    summary's best_params and the sampler as text; here it is the float a user means."""


_SpaceLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$"),
                                   list("-+0123456789"))


def load_space(path: str | Path, kinds: dict[str, str] | None = None) -> dict[str, BaseDistribution]:
    """Read space.yaml into {config key: Optuna distribution}; one-line errors name the file and the key.

    `kinds` maps a config key to "int" or "float" (its type in the config): a range takes it whatever its bounds
    look like, as choosing suggest_int or suggest_float would; a key without one is an int range when both bounds
    are integers.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "space.yaml"
        >>> _ = f.write_text("lr: {low: 0.001, high: 0.1, log: true}\\nbatch_size: [16, 32]\\n")
        >>> sorted(load_space(f))
        ['batch_size', 'lr']
    """
    path = Path(path)
    if not path.is_file():
        raise PixelforgeError(f"{path}: search space file not found")
    try:
        raw = yaml.load(path.read_text(), Loader=_SpaceLoader)
    except yaml.YAMLError as exc:
        raise PixelforgeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not raw:
        raise PixelforgeError(f"{path}: expected a mapping of config keys to a list or {{low, high, log}}")
    kinds = kinds or {}
    return {str(key): _distribution(path, str(key), value, kinds.get(str(key))) for key, value in raw.items()}


def _distribution(path: Path, key: str, value, kind: str | None = None) -> BaseDistribution:
    if isinstance(value, list):
        if not value:
            raise PixelforgeError(f"{path}: {key}: the list of choices is empty")
        nested = [v for v in value if isinstance(v, (dict, list))]
        if nested:  # Optuna takes them with a warning; its plots (the report) fail on them after the whole study
            hint = (f"name its knobs with a dot: {key}.{next(iter(nested[0]))}: [...]" if isinstance(nested[0], dict)
                    and nested[0] else "set it in the base config")
            raise PixelforgeError(f"{path}: {key}: a choice must be a number, a string, true/false; "
                                  f"{nested[0]!r} is a {type(nested[0]).__name__}: {hint}")
        return CategoricalDistribution(value)
    if not isinstance(value, dict) or not {"low", "high"} <= set(value) or set(value) - _RANGE_KEYS:
        raise PixelforgeError(f"{path}: {key}: give a list of choices or {{low, high[, log, step]}}, got {value!r}")
    low, high, log, step = value["low"], value["high"], value.get("log", False), value.get("step")
    for name, bound in (("low", low), ("high", high), ("step", step)):
        if not isinstance(bound, (int, float)) or isinstance(bound, bool):  # float(True) is 1.0: not what was meant
            if not (name == "step" and bound is None):
                raise PixelforgeError(f"{path}: {key}: {name} must be a number, got {bound!r}")
    if not isinstance(log, bool):  # bool("no") is True
        raise PixelforgeError(f"{path}: {key}: log must be true or false, got {log!r}")
    whole = all(float(v).is_integer() for v in (low, high) + ((step,) if step is not None else ()))
    if kind == "int" and not whole:
        raise PixelforgeError(f"{path}: {key}: an integer key: give whole-number bounds (and step), got {value!r}")
    as_int = kind == "int" or (kind is None and all(isinstance(v, int) for v in (low, high))
                               and not isinstance(step, float))
    try:
        if as_int:
            return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
        return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))
    except (ValueError, TypeError) as exc:
        raise PixelforgeError(f"{path}: {key}: {exc}") from None


def suggest(trial, space: dict[str, BaseDistribution]) -> dict:
    """Ask `trial` for one value of every key (Optuna's define-by-run API with fixed distributions)."""
    values = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[key] = trial.suggest_categorical(key, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[key] = trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            values[key] = trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return values


def grid(space: dict[str, BaseDistribution], path: str | Path = "space") -> dict[str, list]:
    """The grid GridSampler walks: lists as they are, int ranges stepped; a float range without a step has none."""
    out = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            out[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution):
            out[key] = list(range(dist.low, dist.high + 1, dist.step))
        elif dist.step is not None:
            n = int(round((dist.high - dist.low) / dist.step))
            out[key] = [round(dist.low + i * dist.step, 12) for i in range(n + 1)]
        else:
            raise PixelforgeError(f"{path}: {key}: --sampler grid needs a list or a range with a step")
    return out
