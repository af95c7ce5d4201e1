"""The benchmark command keeps working: every suite in its quick mode, and the JSON +
Markdown it writes.

Quick sizes only check that the code runs end to end; the numbers mean nothing (the real
runs are ``python -m benchmarks``, results in benchmarks/results/). Needs the
binarized-MNIST copy (``DGMLIB_DATA_DIR``); skipped without it. About 90 s on 2 CPU
cores.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.common import target_met
from dgmlib.data import binarized_mnist_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not binarized_mnist_available(),
        reason="binarized MNIST not found (set DGMLIB_DATA_DIR)",
    ),
]


@pytest.fixture(scope="module")
def cli():
    import benchmarks.__main__ as cli

    return cli


def test_every_benchmark_module_is_discovered(cli):
    assert {
        "rbm_speed",
        "rbm_quality",
        "ais_accuracy",
        "vae_mnist",
        "nade",
        "flows_digits",
        "dbm_quality",
        "dbm_speed",
        "dbm_ais_accuracy",
        "rbm_centered",
        "patches_table",
        "drbm_digits",
        "gan_modes",
        "gmmn_digits",
        "chains_walkback",
        "diffusion_sohl",
        "diffusion_digits",
    } <= set(cli.SUITES)


def _suite_names() -> list[str]:
    from benchmarks.__main__ import SUITES

    return sorted(SUITES)


# every suite the command discovers, so a new benchmark is covered without editing here
@pytest.mark.parametrize("name", _suite_names())
def test_quick_suite_returns_finite_rows(cli, name):
    rows = cli.SUITES[name](quick=True)
    assert rows, f"{name} returned no rows"
    for row in rows:
        assert row.benchmark.startswith(name.split("_")[0]), row
        assert row.what and row.unit, row
        assert math.isfinite(row.value), row
        assert row.passed in (None, True, False), row
        # a judged row agrees with its own target (tests/test_benchmark_rows.py)
        met = target_met(row.value, row.target)
        assert row.passed is None or met is None or row.passed is met, row


def test_command_writes_json_and_markdown(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "OUT", tmp_path)
    assert (
        cli.main(["--only", "flows_maf_iaf_speed", "--quick", "--name", "smoke"]) == 0
    )
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["machine"]["quick"] is True and data["rows"]
    table = (tmp_path / "smoke.md").read_text()
    assert "QUICK sizes" in table and table.count("\n| flows_maf_iaf_speed |") == len(
        data["rows"]
    )
