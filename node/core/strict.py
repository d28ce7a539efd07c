"""Strict reading of decoded documents into typed records: one way for every file the node reads.

``config.toml``, ``genesis.json``, ``testnet.json`` and the simulator's scenario
files (docs/configuration.md, docs/simulator.md) are all checked the same way.
Record types say what a document may hold: field names, types, and constraints
written as ``Annotated[T, msgspec.Meta(...)]``. ``convert`` checks a decoded
document against them with ``msgspec.convert``, unknown fields forbidden, and
turns a failure into a ``Problem``: the path to the offending place (keys and
list indices), what is wrong there (an ``unknown`` or a ``missing`` field, a
value of the wrong ``type``, a ``value`` that breaks a rule, a ``tag`` of a
tagged union that names no member) and why, in words.
This module knows no file: each loader words a ``Problem`` its own way, naming
the file, the key, the value and, for an unknown key, the closest known
spelling (``suggest``).

Records are msgspec Structs or frozen dataclasses. A dataclass (the form the
rest of the node uses for settings it reads) is checked through a Struct with
the same fields and ``forbid_unknown_fields`` (``strict_struct``), then built.

The reasons: integer bounds read "must be a positive integer", "must be 0 or a
positive integer" or "must be in LOW..HIGH"; an array with ``min_length=1``
"must not be empty"; a tagged union's tag "must be one of ..."; a string has
its own rules (``text``), each a pattern and the reason a string that does not
match it gets, checked in order. A type only a parser can check (a peer
``ID@HOST:PORT``) is marked ``Annotated[T, ParsedBy(parse)]``: its value is a
string that ``parse`` reads, and the parser's ``ValueError`` is the reason. A
type can say what it expects in words (``Meta(extra={"expected": ...})``): a
value of the wrong type anywhere inside it is reported as the whole value not
being that.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar

import msgspec
import msgspec.inspect as mi

__all__ = [
    "NON_BLANK",
    "CheckedAs",
    "ParsedBy",
    "Path",
    "Problem",
    "Rule",
    "StrictError",
    "convert",
    "dotted",
    "given",
    "one_of",
    "printable",
    "strict_struct",
    "suggest",
    "text",
]

T = TypeVar("T")
Path = tuple[str | int, ...]


# ------------------------------------------------------------------ string rules
@dataclass(frozen=True)
class Rule:
    """A rule of a string: a pattern it must match from its start, and the reason a
    string that does not match gets (``{value}`` stands for the value as shown)."""

    pattern: str
    reason: str


NON_BLANK: Final = Rule(r"\s*\S", "must not be empty")


def printable(max_len: int) -> Rule:
    """At most ``max_len`` characters, none of them a control character."""
    return Rule(
        rf"[^\x00-\x1f\x7f]{{0,{max_len}}}\Z", f"must be at most {max_len} printable characters"
    )


def one_of(choices: Iterable[str], reason: str = "") -> Rule:
    """One of ``choices`` exactly; the reason lists them unless given."""
    names = tuple(choices)
    why = reason or f"must be one of {', '.join(names)}; got {{value}}"
    return Rule(f"(?:{'|'.join(map(re.escape, names))})\\Z", why)


def text(*rules: Rule) -> msgspec.Meta:
    """The constraint of a string that follows every rule of ``rules``."""
    both = "".join(f"(?={r.pattern})" for r in rules)
    return msgspec.Meta(pattern=f"^{both}", extra={"rules": rules})


# ------------------------------------------------------------------ markers and dataclasses
@dataclass(frozen=True)
class CheckedAs:
    """``Annotated`` marker: check this dataclass field with ``type`` instead of its own type
    (a mapping whose keys are fixed, checked as a Struct)."""

    type: Any


@dataclass(frozen=True)
class ParsedBy:
    """``Annotated`` marker: the value is written as a string that ``parse`` reads into the
    annotated type; the ``ValueError`` of ``parse`` is the reason a string is refused."""

    parse: Callable[[str], Any]


class _Text:
    """A type msgspec leaves to ``_parse``: a string read by ``parse`` into a ``target``
    (the check holds it wrapped; the record built from the check holds the ``value``)."""

    target: type
    parse: Callable[[str], Any]

    def __init__(self, value: Any) -> None:
        self.value = value


@functools.cache
def _parsed(target: type, parse: Callable[[str], Any]) -> type[_Text]:
    attrs = {"target": target, "parse": staticmethod(parse)}
    return type(f"{target.__name__}Text", (_Text,), attrs)


@functools.cache
def strict_struct(cls: type) -> type[msgspec.Struct]:
    """A Struct with the fields, types and defaults of dataclass ``cls``, unknown fields
    forbidden; dataclasses in its field types are replaced by their own strict Structs."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in dataclasses.fields(cls):
        tp = _strict(hints[f.name])
        if f.default is not dataclasses.MISSING:
            fields.append((f.name, tp, f.default))
        elif f.default_factory is not dataclasses.MISSING:
            fields.append((f.name, tp, msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, tp))
    return msgspec.defstruct(cls.__name__, fields, forbid_unknown_fields=True, frozen=True)


def _strict(tp: Any) -> Any:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return strict_struct(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        marks = tp.__metadata__
        for mark in marks:
            if isinstance(mark, CheckedAs):
                return mark.type
            if isinstance(mark, ParsedBy):
                return Annotated[(_parsed(args[0], mark.parse), *marks)]
        return Annotated[(_strict(args[0]), *marks)]
    if origin in (tuple, list, dict, Mapping) and args:
        return origin[tuple(a if a is ... else _strict(a) for a in args)]
    return tp


# ------------------------------------------------------------------ problems
@dataclass(frozen=True)
class Problem:
    """What is wrong in a document, and where."""

    # an "unknown" or a "missing" field, a value of the wrong "type", a "value" that breaks
    # a rule, or a "tag" (of a tagged union, e.g. a fault's kind) that names no member
    what: str
    path: Path  # to the field or value concerned
    value: Any = None  # the value there (None for a missing field)
    expected: str = ""  # "type": what the place takes, e.g. "an integer"
    reason: str = ""  # "value": why it is refused; may hold {value}
    fields: tuple[str, ...] = ()  # "unknown", "missing": the fields that object may have

    def why(self, show: Callable[[Any], str]) -> str:
        """The reason, with the value written by ``show``."""
        return self.reason.replace("{value}", show(self.value))


class StrictError(ValueError):
    """A document that does not fit its record type; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        detail = problem.expected or problem.why(repr) or problem.what
        super().__init__(f"{dotted(problem.path) or 'the document'}: {problem.what}: {detail}")
        self.problem = problem


def convert(data: Any, tp: type[T]) -> T:
    """``data`` (decoded TOML or JSON) as a ``tp``: a Struct, or a dataclass checked
    through ``strict_struct`` and then built. ``StrictError`` names the first problem."""
    checked: Any = strict_struct(tp) if dataclasses.is_dataclass(tp) else tp
    try:
        record = msgspec.convert(data, checked, dec_hook=_parse)
    except msgspec.ValidationError as e:
        raise StrictError(_problem(str(e), data, checked)) from None
    if checked is not tp:
        record = msgspec.convert(msgspec.to_builtins(record, enc_hook=_unwrap), tp)
    return typing.cast(T, record)


def _parse(tp: type, value: Any) -> Any:
    if not (isinstance(tp, type) and issubclass(tp, _Text)):
        raise TypeError(f"Expected `{tp}`, got `{_msgspec_name(value)}`")
    if isinstance(value, tp.target):
        return tp(value)
    if not isinstance(value, str):  # worded as msgspec words its own type errors
        raise TypeError(f"Expected `str`, got `{_msgspec_name(value)}`")
    return tp(tp.parse(value))


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, _Text):
        return msgspec.to_builtins(obj.value)
    raise TypeError(f"cannot write {type(obj).__name__}")


def _msgspec_name(value: Any) -> str:
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else "array" if isinstance(value, list | tuple) else "object"


_A: Final = {
    "int": "an integer",
    "str": "a string",
    "bool": "a boolean",
    "float": "a number",
    "array": "an array",
    "object": "an object",
    "null": "null",
}
_AT = re.compile(r"(?s)(.*) - at (?:`key` in )?`\$(.*)`")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`")
_MISSING = re.compile(r"Object missing required field `(.*)`")
_TYPE = re.compile(r"Expected `([^`]*)`, got `[^`]*`")


def _problem(message: str, data: Any, tp: Any) -> Problem:
    at = _AT.fullmatch(message)
    said, path = (at[1], _path(at[2])) if at else (message, ())
    trail = _trail(tp, data, path)  # (type, extra) of every prefix of path
    info, extra = trail[-1]
    if m := _UNKNOWN.fullmatch(said) or _MISSING.fullmatch(said):
        what = "unknown" if m.re is _UNKNOWN else "missing"
        where = (*path, m[1])
        value = _at(data, where) if what == "unknown" else None
        return Problem(what, where, value, fields=_fields(info))
    if m := _TYPE.fullmatch(said):
        for depth in range(len(path), -1, -1):
            expected = trail[depth][1].get("expected")
            if expected:
                return Problem("type", path[:depth], _at(data, path[:depth]), expected=expected)
        return Problem("type", path, _at(data, path), expected=_A.get(m[1], f"`{m[1]}`"))
    value = _at(data, path)
    parent = trail[-2][0] if len(trail) > 1 else None
    if said.startswith("Invalid value") and isinstance(parent, mi.UnionType):
        tags = [str(t.tag) for t in parent.types if isinstance(t, mi.StructType)]
        return Problem(
            "tag", path, value, reason=f"must be one of {', '.join(tags)}; got {{value}}"
        )
    return Problem("value", path, value, reason=_reason(said, info, extra, value))


def _reason(said: str, info: Any, extra: Mapping[str, Any], value: Any) -> str:
    if isinstance(value, str):
        for rule in extra.get("rules", ()):
            if not re.match(rule.pattern, value):
                return str(rule.reason)
    if isinstance(info, mi.IntType):
        if info.le is not None and info.ge is not None:
            return f"must be in {info.ge}..{info.le}, got {{value}}"
        if info.ge in (0, 1) and info.le is None:
            return f"must be {'0 or ' if info.ge == 0 else ''}a positive integer, got {{value}}"
    if said.startswith("Expected `array` of length >= 1"):
        return "must not be empty"
    return said


def _path(text: str) -> Path:
    steps: list[str | int] = []
    for m in _STEP.finditer(text):
        if m[0] == "[...]":
            break  # a key of a mapping: the path stops at the mapping
        steps.append(m[1] if m[1] is not None else int(m[2]))
    return tuple(steps)


def _at(data: Any, path: Path) -> Any:
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _trail(tp: Any, data: Any, path: Path) -> list[tuple[Any, dict[str, Any]]]:
    info = mi.type_info(tp)
    out: list[tuple[Any, dict[str, Any]]] = []
    for depth in range(len(path) + 1):
        value = _at(data, path[:depth])
        extra: dict[str, Any] = {}
        while True:
            if isinstance(info, mi.Metadata):
                extra.update(info.extra or {})
                info = info.type
            elif isinstance(info, mi.UnionType) and (member := _member(info, value)) is not None:
                info = member
            else:
                break
        out.append((info, extra))
        if depth < len(path):
            info = _child(info, path[depth])
    return out


def _member(union: mi.UnionType, value: Any) -> Any:
    """The member of ``union`` that ``value`` is read as (None: no single one)."""
    structs = [t for t in union.types if isinstance(t, mi.StructType) and t.tag_field]
    if structs and isinstance(value, dict):
        tagged = [t for t in structs if value.get(t.tag_field) == t.tag]
        return tagged[0] if tagged else None
    others = [t for t in union.types if not isinstance(t, mi.NoneType)]
    return others[0] if len(others) == 1 else None


def _child(info: Any, step: str | int) -> Any:
    if isinstance(info, mi.StructType | mi.DataclassType):
        for f in info.fields:
            if f.encode_name == step:
                return f.type
    elif isinstance(info, mi.VarTupleType | mi.ListType):
        return info.item_type
    elif isinstance(info, mi.DictType):
        return info.value_type
    return mi.AnyType()


def _fields(info: Any) -> tuple[str, ...]:
    if isinstance(info, mi.StructType | mi.DataclassType):
        return tuple(f.encode_name for f in info.fields)
    return ()


# ------------------------------------------------------------------ for the loaders
def dotted(path: Path) -> str:
    """``("validators", 2, "node_key")`` -> ``validators[2].node_key``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}" if out else step
    return out


def suggest(word: str, choices: Iterable[str]) -> str:
    """The known name closest to a misspelt ``word``, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else ""


def given(record: msgspec.Struct) -> dict[str, Any]:
    """The fields of ``record`` that its document set (those not ``msgspec.UNSET``)."""
    names = record.__struct_fields__
    return {n: getattr(record, n) for n in names if getattr(record, n) is not msgspec.UNSET}
