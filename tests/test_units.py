"""Budgets and rates: every accepted form round-trips; every rejected form names the accepted ones."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from searcher.errors import ConfigError
from searcher.units import BUDGET_FORMS, RATE_FORMS, Budget, format_gflops, parse_budget, parse_rate, written_as

PREFIX = {"": 1e-9, "k": 1e-6, "m": 1e-3, "g": 1.0, "t": 1e3}  # → GFLOPs


def any_case(text: str) -> st.SearchStrategy[str]:
    """``text`` with each letter in upper or lower case."""
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(text, upper, strict=True)))


# positive numbers as users write them: 3, 3.3, .5, 3., 3.3e9, 2E-3
numbers = st.one_of(
    st.integers(1, 10**7).map(str),
    st.tuples(st.integers(0, 9999), st.integers(0, 9999)).map(lambda t: f"{t[0]}.{t[1]}"),
    st.integers(1, 999).map(lambda f: f".{f}"),
    st.integers(1, 9999).map(lambda i: f"{i}."),
    st.tuples(st.integers(1, 99), st.integers(0, 99), st.sampled_from(["e", "E"]),
              st.sampled_from(["", "+", "-"]), st.integers(0, 12)).map(lambda t: "{}.{}{}{}{}".format(*t)),
)
space = st.sampled_from(["", " "])
flops_units = st.sampled_from(list(PREFIX)).flatmap(lambda p: any_case(p + "flops").map(lambda u: (p, u)))


@given(numbers, space, flops_units, st.sampled_from(["", "  "]))
def test_absolute_budget_round_trip(number: str, sep: str, unit: tuple[str, str], pad: str) -> None:
    prefix, written = unit
    expected = float(number) * PREFIX[prefix]
    assume(0 < expected <= 1e6)
    budget = parse_budget(f"{pad}{number}{sep}{written}{pad}")
    assert budget.fraction is None
    assert budget.gflops == pytest.approx(expected, rel=1e-12)
    assert budget.resolve(123.0) == budget.gflops
    again = parse_budget(str(budget))  # str() rounds to 3 significant digits
    assert again.gflops == pytest.approx(expected, rel=5e-3)


@given(st.floats(min_value=0, max_value=99.999, exclude_min=True, allow_subnormal=False), space)  # str: 6 digits
def test_relative_budget_round_trip(pct: float, sep: str) -> None:
    budget = parse_budget(f"{pct!r}{sep}%")
    assert budget.gflops is None
    assert budget.fraction == pytest.approx(pct / 100, rel=1e-12)
    assert 0 < budget.fraction < 1
    assert budget.resolve(10.0) == pytest.approx(pct / 10, rel=1e-12)
    assert parse_budget(str(budget)).fraction == pytest.approx(budget.fraction, rel=1e-5)


@given(numbers, space, st.sampled_from(["img/s", "image/s", "images/s"]).flatmap(any_case))
def test_rate_round_trip(number: str, sep: str, unit: str) -> None:
    assume(0 < float(number) < math.inf)
    assert parse_rate(f"{number}{sep}{unit}") == pytest.approx(float(number), rel=1e-12)


@given(st.floats(min_value=1e-6, max_value=1e5))
def test_format_gflops_parses_back(gflops: float) -> None:
    assert parse_budget(format_gflops(gflops)).gflops == pytest.approx(gflops, rel=5e-3)


@pytest.mark.parametrize("text, gflops", [("3.3GFLOPs", 3.3), ("850MFLOPs", 0.85), ("3.3e9FLOPs", 3.3),
                                          ("850 mflops", 0.85), ("3.3 GFLOPS", 3.3), ("0.5TFLOPs", 500.0),
                                          ("1200kFLOPs", 0.0012)])
def test_documented_budgets(text: str, gflops: float) -> None:
    assert parse_budget(text).gflops == pytest.approx(gflops)


def test_documented_share_and_rate() -> None:
    assert parse_budget("60%") == Budget(fraction=0.6)
    assert parse_budget("60 %").resolve(5.0) == pytest.approx(3.0)
    assert parse_rate("1500img/s") == 1500.0
    assert parse_rate("1500 IMG/S") == 1500.0
    assert parse_rate(1500) == 1500.0
    assert parse_budget(Budget(gflops=1.0)) == Budget(gflops=1.0)


REJECTED_BUDGETS = [
    "3.3", "GFLOPs", "-1GFLOPs", "0%", "150%", "nan", "1e999GFLOPs", "", "   ",
    # unit typos and near misses
    "3.3GFLOP", "3.3GFLOPs/s", "3.3 G FLOPs", "3.3GFLOPz", "3.3GLOPs", "3.3gflps", "3.3 GigaFLOPs",
    "3.3PFLOPs",
    "60 percent", "60%%", "%60", "3,3GFLOPs", "3.3  GFLOPs", "3.3\tGFLOPs", "3.3GFLOPs 60%", "1500img/s",
    # non-numbers, non-finite, out of range
    "nanGFLOPs", "NaN %", "infGFLOPs", "inf%", "-inf", "+3GFLOPs", "0GFLOPs", "0.0MFLOPs", "1e-400GFLOPs",
    "2e6GFLOPs", "100%", "100.0001%", "1e-400%", "-5%", "0x10GFLOPs", "1_000MFLOPs", "٣GFLOPs",
]


@pytest.mark.parametrize("text", REJECTED_BUDGETS)
def test_rejected_budgets_show_accepted_forms(text: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_budget(text)
    assert BUDGET_FORMS in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text, why", [("-3GFLOPs", "must be a finite positive number"),
                                       ("-10%", "must be a share in (0%, 100%)"),
                                       ("-5img/s", "must be a finite positive number")])
def test_negative_values_are_named_as_such(text: str, why: str) -> None:
    """They were "cannot read", as if misspelt (until 2026-12-08); zero always said why."""
    with pytest.raises(ConfigError, match=re.escape(f"{text!r} {why}")):
        (parse_rate if "img/s" in text else parse_budget)(text)


@pytest.mark.parametrize("value", [3.3, 0, None, True])
def test_non_string_budgets_are_rejected(value: object) -> None:
    with pytest.raises(ConfigError, match="3.3GFLOPs"):
        parse_budget(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["1500", "img/s", "-1500img/s", "0img/s", "nan", "nanimg/s", "1e999img/s",
                                  "", "1500fps", "1500 img/sec", "1500imgs/s", "1500 img / s", "60%",
                                  "3GFLOPs"])
def test_rejected_rates_show_accepted_forms(text: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_rate(text)
    assert RATE_FORMS in str(e.value)


@pytest.mark.parametrize("value", [0, -1, -0.5, math.nan, math.inf, True])
def test_rejected_numeric_rates(value: float) -> None:
    with pytest.raises(ConfigError, match="1500img/s"):
        parse_rate(value)


@given(numbers, space, st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/%", min_size=1,
                               max_size=9))
def test_unit_typos_are_rejected(number: str, sep: str, unit: str) -> None:
    valid = {p + "flops" for p in PREFIX} | {"%", "img/s", "image/s", "images/s"}
    assume(unit.lower() not in valid and unit[0] not in "eE")  # "3" + "e1%" would be a valid 30%
    with pytest.raises(ConfigError, match="3.3GFLOPs"):
        parse_budget(f"{number}{sep}{unit}")
    with pytest.raises(ConfigError, match="1500img/s"):
        parse_rate(f"{number}{sep}{unit}")


@given(numbers, st.sampled_from(["GFLOPs", "%", "img/s"]))
def test_signed_and_bare_numbers_are_rejected(number: str, unit: str) -> None:
    for text in (number, f"-{number}{unit}", f"+{number}{unit}"):
        with pytest.raises(ConfigError):
            parse_budget(text)
        with pytest.raises(ConfigError):
            parse_rate(text)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_budget("3.3")


def test_budget_needs_exactly_one_kind() -> None:
    with pytest.raises(ConfigError):
        Budget()
    with pytest.raises(ConfigError):
        Budget(gflops=1.0, fraction=0.5)


def test_a_budget_written_as_a_summary_prints_it_names_that_budget():
    g = 0.12340567
    for text in ("0.1234GFLOPs", "123.4MFLOPs", "1.234e8FLOPs", "123.41 mflops"):
        assert written_as(text, g), text
    for text in ("0.12GFLOPs", "0.1235GFLOPs", "123.405MFLOPs", "40%", "nonsense"):  # < 4 digits: another budget
        assert not written_as(text, g), text
