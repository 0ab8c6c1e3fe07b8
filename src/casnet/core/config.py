"""The strict base of every configuration section, and overrides validated like the file.

Every knob of the project lives in ``params.yaml`` (one section per concern). Each package owns the
settings it reads (:mod:`casnet.morphology.settings`, :mod:`casnet.data.settings`, ...);
:mod:`casnet.params` assembles them and is the only reader of the file. They are loaded once, at
the edge (CLI, stage, MLflow entry point), into frozen objects and passed down explicitly. An
unknown key or a bad value fails at load time with a message naming the key, the value and what
is allowed, never deep inside a run; a command-line override goes through the same validation
(:func:`override`, :func:`override_from_strings`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from casnet.core.errors import CasnetConfigError

__all__ = ["Section", "format_validation_error", "override", "override_from_strings"]

_S = TypeVar("_S", bound="Section")


class Section(BaseModel):
    """Base of every section: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def format_validation_error(exc: ValidationError, source: str, root: type[BaseModel]) -> str:
    """A message naming every bad key of ``root`` (a section or the whole file), its value and what
    is allowed (the allowed keys, for an unknown one)."""
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        msg = err["msg"].removeprefix("Value error, ")
        if not key:  # a check across sections: its message names the keys
            lines.append(f"  {msg}")
        elif err["type"] == "extra_forbidden":
            section = _section_for(err["loc"][:-1], root)
            allowed = ", ".join(sorted(section.model_fields)) if section else "?"
            lines.append(f"  {key} = {value!r}: unknown key; allowed keys here: {allowed}")
        else:
            lines.append(f"  {key} = {value!r}: {msg}")
    return "\n".join(lines)


def _section_for(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    model = root
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    return model


def override(section: _S, *, source: str = "command line", **changes: Any) -> _S:
    """A copy of ``section`` with ``changes`` (``None`` values ignored), validated like the file.

    Used for command-line flags that override ``params.yaml``; a bad value fails with the same
    kind of message as a bad key in the file.

    Raises
    ------
    CasnetConfigError
        Naming the bad key, its value and what is allowed.
    """
    update = {k: v for k, v in changes.items() if v is not None}
    if not update:
        return section
    return _validate(type(section), {**section.model_dump(), **update}, source)


def override_from_strings(section: _S, items: Iterable[str], *, source: str) -> _S:
    """A copy of ``section`` with ``KEY=VALUE`` overrides, validated like the file.

    Each item may hold several ``;``-separated overrides; a key may be dotted (``noise.snr_grid``)
    to reach a nested section; values are YAML (``filters=[8,32]``, ``input=null``).

    Raises
    ------
    CasnetConfigError
        For an item without ``=``, a key that is not in ``section`` or a bad value.
    """
    data = section.model_dump(mode="json")
    for item in (part.strip() for entry in items for part in entry.split(";")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise CasnetConfigError(f"{source}: expected KEY=VALUE, got {item!r}")
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise CasnetConfigError(f"{key.strip()!r} is not a key of {source}")
            node = node[part]
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            message = f"{source}: {key.strip()} = {value!r}: not YAML ({exc})"
            raise CasnetConfigError(message) from None
    return _validate(type(section), data, source)


def _validate(model: type[_S], data: dict[str, Any], source: str) -> _S:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CasnetConfigError(format_validation_error(exc, source, model)) from None
