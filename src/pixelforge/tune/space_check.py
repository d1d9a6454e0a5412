"""The search space checked against the base config before a study starts: every key a tunable config key (or a
knob of a mapping key, by its dotted name), every range of the key's type, every choice the value the config reads.

A mistake here is one line before the study folder is made, not N failed trials with Optuna's tracebacks.
"""

from __future__ import annotations

from pathlib import Path

from pixelforge.config import closest_key
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.config import build_config
from pixelforge.tasks.registry import get_task
from pixelforge.tune import space as spaces

_NOT_TUNABLE = {"data", "task", "out", "quiet"}  # what a trial trains on and where it writes, not how


def check_space(config: Path, space_file: Path, overrides: dict | None = None):
    """Every key must be a tunable config key of the task and every bound a valid value, before any trial runs.
    Returns the base config and the space, its ranges typed as the keys are and its choices as the config reads
    them (a trial's parameters are then exactly what its config.yaml holds).

    Example:
        >>> base, space = check_space("base.yaml", "space.yaml")  # doctest: +SKIP
        >>> space["batch_size"]  # doctest: +SKIP
        IntDistribution(high=32, log=False, low=8, step=1)
    """
    base = build_config(config, **(overrides or {}))
    task = get_task(base.task)
    try:  # what `train` refuses before a run folder, refused before the study folder (not as N failed trials)
        task.check(base)
        task.prepare_data(base)
    except PixelforgeError as exc:
        raise PixelforgeError(f"{config}: {exc}") from None
    fields = type(base).model_fields
    kinds = {k: _number_kind(f.annotation) for k, f in fields.items()}
    kinds.update({f"{k}.{sub}": _number_kind(f.annotation)
                  for k in fields for sub, f in _nested_fields(base, k).items()})
    space = spaces.load_space(space_file, kinds)
    for key, dist in space.items():
        head, _, tail = key.partition(".")
        if tail and head in fields:  # a knob inside a mapping key: augment_options.hflip
            inner = _nested_fields(base, head)
            if not inner:
                raise PixelforgeError(f"{space_file}: {key}: {head} is not a mapping of keys; tune {head} itself")
            if tail not in inner:
                close = closest_key(tail, list(inner))
                raise PixelforgeError(f"{space_file}: {key}: not a key of {head}" + (f"; did you mean {close!r}?"
                                      if close else "") + f" (its keys: {', '.join(inner)})")
        elif key not in fields:  # else the value check below blames the first value and the base config for it
            close = closest_key(key, list(fields))
            raise PixelforgeError(f"{space_file}: {key}: not a config key of task {base.task!r}"
                                  + (f"; did you mean {close!r}?" if close else "") + f" ({_tunable_keys(base)})")
        if key in _NOT_TUNABLE:  # trials on two datasets (or tasks) are not two settings of one training
            raise PixelforgeError(f"{space_file}: {key}: not tunable (every trial trains on the base config's "
                                  f"data and task, in its own folder under --out); set it in {config}")
        if isinstance(dist, spaces.CategoricalDistribution):
            space[key] = _checked_choices(config, space_file, overrides, base, task, key, dist.choices)
            continue
        for value in (dist.low, dist.high):
            _checked_value(config, space_file, overrides, base, task, key, value)
    return base, space


def _nested_fields(base, key: str) -> dict:
    """The fields of the mapping config key `key` (augment_options' hflip, vflip, ...), or {} for a plain key."""
    from pydantic import BaseModel
    import typing

    annotation = type(base).model_fields[key].annotation
    models = [a for a in (typing.get_args(annotation) or (annotation,)) if isinstance(a, type)
              and issubclass(a, BaseModel)]
    return dict(models[0].model_fields) if models else {}


def as_overrides(base, params: dict) -> dict:
    """A trial's parameters as config overrides: a dotted key (`augment_options.hflip`) set inside the base
    config's mapping, whose other keys stay as the base config has them."""
    out: dict = {}
    for key, value in params.items():
        head, _, tail = key.partition(".")
        if not tail or base is None:
            out[key] = value
            continue
        if head not in out:
            current = getattr(base, head)
            out[head] = current.model_dump(exclude_none=True) if current is not None else {}
        out[head][tail] = value
    return out


def _checked_value(config: Path, space_file: Path, overrides: dict | None, base, task, key: str, value):
    """`value` as the config reads it, or the one-line error the config gives for it."""
    try:
        cfg = build_config(config, **{**(overrides or {}), **as_overrides(base, {key: value})})
        task.check(cfg)
    except PixelforgeError as exc:
        raise PixelforgeError(f"{space_file}: {key}: {value!r} is not a valid value ({exc})") from None
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _checked_choices(config: Path, space_file: Path, overrides: dict | None, base, task, key: str,
                     choices) -> spaces.CategoricalDistribution:
    """A list's choices as the config reads them: `['4', 8.0]` for an int key trained 4 and 8 while the study and
    best_params said '4' and 8.0. Two choices that read as one value would be one setting under two names."""
    read = []
    for value in choices:
        if value is None:  # a trial's None means "not given": the base config's value, under the name null
            raise PixelforgeError(f"{space_file}: {key}: null cannot be a choice (a trial given null keeps "
                                  f"{config}'s value); list the values themselves")
        checked = _checked_value(config, space_file, overrides, base, task, key, value)
        # A choice the config turns into an object (not a number, text or bool) stays as written: Optuna stores it.
        read.append(checked if isinstance(checked, (bool, int, float, str)) else value)
    for i, value in enumerate(read):
        if value in read[:i] and type(value) is type(read[read.index(value)]):
            raise PixelforgeError(f"{space_file}: {key}: the choices {choices[read.index(value)]!r} and "
                                  f"{choices[i]!r} are the same value")
    return spaces.CategoricalDistribution(read)


def _number_kind(annotation) -> str | None:
    """"int" or "float" for a config key whose numbers are one kind (`lr: float | 'auto'` is float), else None."""
    import typing

    args = set(typing.get_args(annotation)) or {annotation}
    numbers = {a for a in args if a in (int, float)}
    return next(iter(numbers)).__name__ if len(numbers) == 1 else None


def _tunable_keys(base) -> str:
    """The keys a space may name, the task's own first: a user who guessed a key learns which there are."""
    from pixelforge.config import RunConfig

    fields = [k for k in type(base).model_fields if k not in _NOT_TUNABLE]
    own = sorted(k for k in fields if k not in RunConfig.model_fields)
    shared = sorted(k for k in fields if k in RunConfig.model_fields)
    return (f"its own keys: {', '.join(own)}; " if own else "") + f"shared keys: {', '.join(shared)}"
