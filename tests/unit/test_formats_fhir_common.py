"""Block time <-> FHIR instant/dateTime (node/ops/formats/fhir_common.py): integers only,
the precision of a dateTime deciding its span, never a wider period than written."""

from __future__ import annotations

import pytest

from node.ops.formats import FormatError
from node.ops.formats.fhir_common import bundle, date, end_ms, instant, start_ms

DAY = 86_400_000


def test_instant_is_utc_with_milliseconds() -> None:
    assert instant(0) == "1970-01-01T00:00:00.000Z"
    assert instant(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert instant(-1) == "1969-12-31T23:59:59.999Z"
    assert date(1_700_000_000_123) == "2023-11-14"
    with pytest.raises(FormatError, match="years"):
        instant(10**18)


@pytest.mark.parametrize(
    "value, start, end",
    [
        ("2024", 1_704_067_200_000, 1_735_689_600_000),  # the whole year
        ("2024-12", 1_733_011_200_000, 1_735_689_600_000),  # December rolls into the next year
        ("2024-02", 1_706_745_600_000, 1_709_251_200_000),  # a leap February
        ("2024-02-29", 1_709_164_800_000, 1_709_164_800_000 + DAY),
        ("2024-01-01T00:00:00Z", 1_704_067_200_000, 1_704_067_201_000),  # a second
        ("2024-01-01T00:00:00.5Z", 1_704_067_200_500, 1_704_067_200_600),  # a tenth
        ("2024-01-01T00:00:00.999Z", 1_704_067_200_999, 1_704_067_201_000),  # a millisecond
        ("2024-01-01T02:00:00+02:00", 1_704_067_200_000, 1_704_067_201_000),  # an offset
        ("2023-12-31T23:00:00-01:00", 1_704_067_200_000, 1_704_067_201_000),
    ],
)
def test_a_datetime_spans_its_precision(value: str, start: int, end: int) -> None:
    assert (start_ms(value, "x"), end_ms(value, "x")) == (start, end)
    assert isinstance(start_ms(value, "x"), int) and isinstance(end_ms(value, "x"), int)


def test_sub_millisecond_times_never_widen_the_period() -> None:
    """A start inside a millisecond rounds up, an end rounds down."""
    value = "2024-01-01T00:00:00.0005Z"
    assert start_ms(value, "x") == 1_704_067_200_001
    assert end_ms(value, "x") == 1_704_067_200_000
    assert end_ms("2024-01-01T00:00:00.999999Z", "x") == 1_704_067_201_000


def test_an_exported_end_imports_back_exactly() -> None:
    for ms in (0, 1_700_000_000_000, 1_700_000_000_999):
        assert end_ms(instant(ms - 1), "x") == ms
        assert start_ms(instant(ms), "x") == ms


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01T10:00:00",  # a time without a zone is not FHIR
        "2024-01-01T10:00Z",  # no seconds
        "2024-02-30",  # no such day
        "2024-13",
        "2024-01-01T23:59:60Z",  # a leap second: not mapped
        "24-01-01",
        "",
        1_704_067_200_000,  # a number is no dateTime
    ],
)
def test_what_is_no_fhir_datetime_is_refused(value: object) -> None:
    with pytest.raises(FormatError) as info:
        start_ms(value, "provision.period.start")
    assert info.value.path == "provision.period.start"


def test_a_bundle_counts_only_searchsets_and_has_no_empty_entry() -> None:
    r = {"resourceType": "Consent", "id": "a"}
    assert bundle([r]) == {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r}],
    }
    assert bundle([r], "searchset")["total"] == 1
    assert "entry" not in bundle([])
