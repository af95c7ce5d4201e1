"""The benchmarks' pass/fail logic (benchmarks.common.target_met), without running a
benchmark: every target string the suites write is read the way its words say, and a
row whose ``passed`` disagrees with its own target is caught (the slow
tests/test_benchmarks.py applies the same check to every row the suites return).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.common import Row, target_met

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "value,target,expected",
    [
        (3.0, ">= 3x", True),
        (2.99, ">= 3x", False),
        (1.5, "<= 1.5x", True),
        (1.51, "<= 1.5x", False),
        (-90.0, ">= -90", True),
        (-90.01, ">= -90", False),
        (-88.33, ">= -88.33", True),
        (600.0, "<= 600 s", True),
        (600.5, "<= 600 s", False),
        (0.3, "<= 0.3", True),
        (0.5, "0.5x-2x", True),
        (2.0, "0.5x-2x", True),
        (0.49, "0.5x-2x", False),
        (2.01, "0.5x-2x", False),
        (6.4, ">= 6.4x (d/10)", True),
        (6.3, ">= 6.4x (d/10)", False),
        (1.0, "< both baselines", None),  # in words: the suite decides
        (1.0, "", None),
    ],
)
def test_target_met_reads_targets_as_written(value, target, expected):
    assert target_met(value, target) is expected


def test_every_target_in_the_suites_is_read_or_in_words():
    """Each literal numeric target in benchmarks/*.py (an operator, then a number or a
    format field) parses; a new target format fails here until target_met reads it.
    """
    found = set()
    for path in (ROOT / "benchmarks").glob("*.py"):
        found |= set(
            re.findall(
                r'"((?:<=|>=|<|>) ?[-\d{][^"]*|[\d.]+x-[\d.]+x)"', path.read_text()
            )
        )
    assert found, "no targets found: the pattern is out of date"
    for target in found:
        probe = re.sub(r"\{[^}]*\}", "6.4", target)  # a format field: any number
        assert target_met(1.0, probe) is not None, target


def row_is_consistent(row: Row) -> bool:
    """A row's passed agrees with its target (or it has none / one in words)."""
    met = target_met(row.value, row.target)
    return row.passed is None or met is None or row.passed is met


@pytest.mark.parametrize("variant", ["correct", "flipped_comparison"])
def test_a_row_that_contradicts_its_target_is_caught(variant):
    # The broken variant is a suite that computes passed with the comparison reversed
    # (ratio < 3 for ">= 3x"): deterministic.
    ratios = [0.5, 2.9, 3.0, 7.0]
    rows = [
        Row("b", "speed-up", r, "x", ">= 3x", r >= 3 if variant == "correct" else r < 3)
        for r in ratios
    ]
    rows.append(Row("b", "quick run", 1.0, "s", "<= 600 s", None))  # not judged
    assert all(map(row_is_consistent, rows)) == (variant == "correct")
