"""The strict base of every configuration section, and overrides validated like the file.

Every knob of the project lives in ``params.yaml`` (one section per concern). Each package owns the
settings it reads (:mod:`casnet.morphology.settings`, :mod:`casnet.data.settings`, ...);
:mod:`casnet.params` assembles them and is the only reader of the file. They are loaded once, at
the edge (CLI, stage, MLflow entry point), into frozen objects and passed down explicitly. An
unknown key or a bad value fails at load time with a message naming the key, the value and what
is allowed, never deep inside a run; a command-line override goes through the same validation
(:func:`override`, :func:`override_from_strings`).

Configuration text is YAML read by :func:`parse_yaml`, which refuses aliases (``*name``): a few
kilobytes of nested aliases expand to billions of values (the "billion laughs"), and parameters
have no need for them. Messages show at most :data:`VALUE_LIMIT` characters of any value
(:func:`short_repr`) and :data:`MAX_ERRORS` errors, so a huge value cannot flood the terminal.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Sized
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from casnet.core.errors import CasnetConfigError

__all__ = [
    "MAX_ERRORS",
    "MAX_YAML_DEPTH",
    "VALUE_LIMIT",
    "Section",
    "format_validation_error",
    "override",
    "override_from_strings",
    "parse_yaml",
    "short_repr",
    "shorten",
]

_S = TypeVar("_S", bound="Section")

#: characters of a user's value (or key) an error message shows; the rest is cut, its length said
VALUE_LIMIT = 200
#: characters of a validator's own message: it may quote the value, but also lists what is allowed
#: (the flag names, ~200 characters), which must survive the cut
_MESSAGE_LIMIT = 600
#: bad keys listed by one error; the others are counted (a list of 10^5 bad items is one mistake)
MAX_ERRORS = 20
#: nesting depth of configuration YAML: params.yaml needs 4; PyYAML's composer recurses per level,
#: so ``[[[[...`` a megabyte deep would end in a RecursionError traceback
MAX_YAML_DEPTH = 32

# reprlib bounds the work as well as the text: a list of 10^6 items is not turned into a 10 MB
# string only to be cut. Its item limits stay above what VALUE_LIMIT characters can show, so the
# cut in short_repr, which says the size, is the one a user sees.
_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 100
_REPR.maxstring = _REPR.maxother = VALUE_LIMIT
_REPR.maxlong = VALUE_LIMIT


def shorten(text: str, *, limit: int = VALUE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, ending ``... (N characters)`` when cut.

    For text that is already a message (a key, a YAML error); values go through
    :func:`short_repr`.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def short_repr(value: object, *, limit: int = VALUE_LIMIT) -> str:
    """The ``repr`` of a user's value for an error message, at most about ``limit`` characters.

    A longer value is cut and ends with ``... (N characters)`` (a string), ``... (N bytes)``,
    or ``... (list of N items)`` (a container), so the message says what was there without
    echoing megabytes of it.

    Parameters
    ----------
    value : object
        Anything a user wrote (a YAML value, a command-line string).
    limit : int, optional
        Characters of the value shown; default :data:`VALUE_LIMIT`.

    Returns
    -------
    str
        ``repr(value)`` when it is short enough, else its first ``limit`` characters, an
        ellipsis and the value's size.
    """
    if isinstance(value, str | bytes):
        if len(value) <= limit:
            return repr(value)
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:limit]!r}... ({len(value):,} {unit})"
    try:
        text = _REPR.repr(value)
    except Exception:  # a broken __repr__ must not hide the configuration error
        return f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    size = type(value).__name__
    if isinstance(value, Sized):
        size += f" of {len(value):,} item{'' if len(value) == 1 else 's'}"
    return f"{text[:limit]}... ({size})"


class _Refused(yaml.YAMLError):
    """YAML that parses but that configuration does not accept (an alias, too deep a nesting)."""


class _ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and with a bounded nesting depth.

    An alias is refused when it is met, before anything is expanded: the safe loader itself
    shares the aliased node, but everything downstream (validation, messages, ``model_dump``)
    walks the expanded tree, 10^9 values for 9 levels of 10 aliases in 16 KB of text.
    """

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                f"line {event.start_mark.line + 1}: YAML aliases "
                f"(*{shorten(event.anchor, limit=40)}) are not allowed in casnet's "
                "configuration and model files; write the value out in full"
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _Refused(f"line {line}: nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str | bytes, *, source: str) -> Any:
    """Parse configuration YAML (a params file, a ``KEY=VALUE`` override's value, a model's
    ``MLmodel``) safely.

    Like :func:`yaml.safe_load`, but an alias (``*name``) or a nesting deeper than
    :data:`MAX_YAML_DEPTH` is refused: parameters never need them, and a few kilobytes of
    nested aliases expand to billions of values.

    Parameters
    ----------
    text : str or bytes
        The YAML (bytes: UTF-8/16 as the YAML spec reads them).
    source : str
        What the text is (a file, ``search (--search): filters``): it starts every message.

    Raises
    ------
    CasnetConfigError
        One line naming ``source`` for an alias or too deep a nesting; the YAML error, cut to a
        few hundred characters, for text that is not YAML.
    """
    loader = _ParamsLoader(text)
    loader.name = source  # YAML errors say `in "<source>", line 3` instead of "<byte string>"
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise CasnetConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        detail = shorten(str(exc), limit=_MESSAGE_LIMIT)
        raise CasnetConfigError(f"{source}: not valid YAML: {detail}") from None
    except ValueError as exc:
        # int() of a number with more than 4300 digits (Python's limit) fails inside PyYAML
        detail = shorten(str(exc), limit=_MESSAGE_LIMIT)
        raise CasnetConfigError(f"{source}: not valid YAML: {detail}") from None
    finally:
        loader.dispose()


class Section(BaseModel):
    """Base of every section: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def format_validation_error(exc: ValidationError, source: str, root: type[BaseModel]) -> str:
    """A message naming every bad key of ``root`` (a section or the whole file), its value and what
    is allowed (the allowed keys, for an unknown one).

    Bounded whatever the input: each key and value shows at most :data:`VALUE_LIMIT` characters
    (:func:`short_repr`), and past :data:`MAX_ERRORS` errors the rest are only counted.
    """
    errors = exc.errors(include_url=False)
    lines = [f"{source}: invalid configuration"]
    for err in errors[:MAX_ERRORS]:
        key = shorten(".".join(str(p) for p in err["loc"]))
        value = short_repr(err.get("input"))
        msg = shorten(err["msg"].removeprefix("Value error, "), limit=_MESSAGE_LIMIT)
        if not key:  # a check across sections: its message names the keys
            lines.append(f"  {msg}")
        elif err["type"] == "extra_forbidden":
            section = _section_for(err["loc"][:-1], root)
            allowed = ", ".join(sorted(section.model_fields)) if section else "?"
            lines.append(f"  {key} = {value}: unknown key; allowed keys here: {allowed}")
        else:
            lines.append(f"  {key} = {value}: {msg}")
    if len(errors) > MAX_ERRORS:
        lines.append(f"  ... and {len(errors) - MAX_ERRORS:,} more errors")
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
            raise CasnetConfigError(f"{source}: expected KEY=VALUE, got {short_repr(item)}")
        key = key.strip()
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise CasnetConfigError(f"{short_repr(key)} is not a key of {source}")
            node = node[part]
        # the same safe reader as the file: an alias bomb fits on one command line too
        node[leaf] = parse_yaml(value, source=f"{source}: {shorten(key)} = {short_repr(value)}")
    return _validate(type(section), data, source)


def _validate(model: type[_S], data: dict[str, Any], source: str) -> _S:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CasnetConfigError(format_validation_error(exc, source, model)) from None
