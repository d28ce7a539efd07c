"""node/core/strict.py: typed records, msgspec's failures as located problems with reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
import pytest
from msgspec import Meta

from node.core import strict
from node.core.strict import (
    NON_BLANK,
    CheckedAs,
    ParsedBy,
    Problem,
    Rule,
    StrictError,
    one_of,
    printable,
    text,
)


@dataclass(frozen=True)
class Point:
    x: int
    y: int

    @staticmethod
    def parse(value: str) -> Point:
        a, sep, b = value.partition(",")
        if not sep or not a.isdigit() or not b.isdigit():
            raise ValueError(f"{value!r} is not X,Y")
        return Point(int(a), int(b))


Count = Annotated[int, Meta(ge=1)]
Name = Annotated[str, text(NON_BLANK, printable(8), Rule(r"[a-z]+\Z", "{value} is not a-z"))]
_FIXED = msgspec.defstruct("fixed", [("a", int), ("b", int)], forbid_unknown_fields=True)


@dataclass(frozen=True)
class Item:
    name: Name
    size: Annotated[int, Meta(ge=0, le=10)] = 0


@dataclass(frozen=True)
class Doc:
    count: Count
    items: Annotated[tuple[Item, ...], Meta(min_length=1)]
    points: Annotated[
        tuple[Annotated[Point, ParsedBy(Point.parse)], ...], Meta(extra={"expected": "points"})
    ] = ()
    level: Annotated[str, text(one_of(("low", "high")))] = "low"
    fixed: Annotated[Mapping[str, int], CheckedAs(_FIXED)] = field(
        default_factory=lambda: {"a": 0, "b": 0}
    )


class A(msgspec.Struct, tag_field="kind", tag="a", forbid_unknown_fields=True):
    x: int = 0


class B(msgspec.Struct, tag_field="kind", tag="b", forbid_unknown_fields=True):
    y: int = 0


class Tagged(msgspec.Struct, forbid_unknown_fields=True):
    things: tuple[A | B, ...] = ()
    maybe: int | msgspec.UnsetType = msgspec.UNSET


GOOD: dict[str, Any] = {"count": 2, "items": [{"name": "ab", "size": 3}], "points": ["1,2"]}


def problem(doc: dict[str, Any], tp: Any = Doc) -> Problem:
    with pytest.raises(StrictError) as e:
        strict.convert(doc, tp)
    return e.value.problem


def test_a_dataclass_is_checked_strictly_and_built() -> None:
    doc = strict.convert({**GOOD, "fixed": {"a": 1, "b": 2}}, Doc)
    assert doc == Doc(2, (Item("ab", 3),), (Point(1, 2),), "low", {"a": 1, "b": 2})
    assert isinstance(doc.items[0], Item) and isinstance(doc.points[0], Point)
    again = strict.convert({**GOOD, "points": [Point(5, 6)]}, Doc)  # a parsed value passes
    assert again.points == (Point(5, 6),)


def test_unknown_and_missing_fields() -> None:
    p = problem({**GOOD, "items": [{"name": "ab", "sise": 1}]})
    assert (p.what, p.path, p.value, p.fields) == (
        "unknown",
        ("items", 0, "sise"),
        1,
        ("name", "size"),
    )
    assert strict.suggest("sise", p.fields) == "size"
    p = problem({"items": GOOD["items"]})
    assert (p.what, p.path) == ("missing", ("count",))
    p = problem({**GOOD, "fixed": {"a": 1}})
    assert (p.what, p.path, p.fields) == ("missing", ("fixed", "b"), ("a", "b"))


def test_wrong_types_name_what_the_place_takes() -> None:
    p = problem({**GOOD, "count": "2"})
    assert (p.what, p.path, p.value, p.expected) == ("type", ("count",), "2", "an integer")
    p = problem({**GOOD, "items": {}})
    assert p.expected == "an array"
    p = problem({**GOOD, "points": ["1,2", 3]})  # declared: the whole value is reported
    assert (p.what, p.path, p.value, p.expected) == ("type", ("points",), ["1,2", 3], "points")


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"count": 0}, ("count",), "must be a positive integer, got 0"),
        ({"items": []}, ("items",), "must not be empty"),
        ({"items": [{"name": " "}]}, ("items", 0, "name"), "must not be empty"),
        ({"items": [{"name": "a\x01"}]}, ("items", 0, "name"), "must be at most 8 printable"),
        ({"items": [{"name": "abcdefghi"}]}, ("items", 0, "name"), "must be at most 8 printable"),
        ({"items": [{"name": "AB"}]}, ("items", 0, "name"), "'AB' is not a-z"),
        ({"items": [{"name": "a", "size": 11}]}, ("items", 0, "size"), "must be in 0..10, got 11"),
        ({"points": ["1;2"]}, ("points", 0), "'1;2' is not X,Y"),
        ({"level": "mid"}, ("level",), "must be one of low, high; got 'mid'"),
    ],
)
def test_values_that_break_a_rule_get_its_reason(
    change: dict[str, Any], path: tuple[Any, ...], reason: str
) -> None:
    p = problem({**GOOD, **change})
    assert (p.what, p.path) == ("value", path)
    assert p.why(repr).startswith(reason)


def test_tagged_unions_and_unset() -> None:
    assert strict.given(strict.convert({}, Tagged)) == {"things": ()}
    assert strict.given(strict.convert({"maybe": 3}, Tagged))["maybe"] == 3
    p = problem({"things": [{"kind": "a"}, {"kind": "c"}]}, Tagged)
    assert (p.what, p.path, p.why(repr)) == (
        "tag",
        ("things", 1, "kind"),
        "must be one of a, b; got 'c'",
    )
    p = problem({"things": [{"kind": "b", "x": 1}]}, Tagged)
    assert (p.what, p.path, p.fields) == ("unknown", ("things", 0, "x"), ("y",))


def test_dotted_paths() -> None:
    assert strict.dotted(("validators", 2, "node_key")) == "validators[2].node_key"
    assert strict.dotted((0, "a")) == "[0].a"
    assert strict.dotted(()) == ""
    assert str(StrictError(Problem("missing", ("a", 1, "b")))) == "a[1].b: missing: missing"
