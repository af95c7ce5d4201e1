"""The likelihood table of chapter 20 (dgmlib.evaluate.table): its numbers are the
benchmark results' numbers, every entry points at a row that exists, and a missing,
corrupted or quick-sized result file is reported, never silently used.
"""

import json
import shutil
from pathlib import Path

import pytest

from dgmlib.evaluate.table import ENTRIES, likelihood_table, load_results, table_html

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _rows_by_key():
    out = {}
    for f in RESULTS.glob("*.json"):
        for r in json.loads(f.read_text())["rows"]:
            out[(f.name, r["benchmark"], r["what"])] = r
    return out


def test_table_numbers_equal_the_json_files():
    raw = _rows_by_key()
    rows = likelihood_table(RESULTS)
    assert len(rows) == len(ENTRIES)
    n_measured = 0
    for e, row in zip(ENTRIES, rows):
        if e.value is None or e.value[0] not in {k[0] for k in raw}:
            assert row["log_p"] is None and row["status"] == "not run"
            continue
        n_measured += 1
        r = raw[e.value]
        # test NLLs become log-likelihoods; everything else is copied as it is
        expected = -r["value"] if "NLL" in r["what"] else r["value"]
        assert row["log_p"] == expected
        assert row["bracket"] == (raw[e.bracket]["value"] if e.bracket else None)
        assert row["budget"] == (raw[e.budget]["value"] if e.budget else None)
        wide = row["bracket"] is not None and abs(row["bracket"] - expected) > 2.0
        if wide:  # forward and reverse AIS disagree: not quoted as a log-likelihood
            assert row["status"].startswith("untrusted")
        else:
            assert row["status"] == "measured"
    assert n_measured >= 10  # the committed results cover most of the book's models


def test_every_entry_points_at_an_existing_row():
    raw = _rows_by_key()
    files = {k[0] for k in raw}
    for e in ENTRIES:
        for key in (e.value, e.bracket, e.budget):
            if key is not None and key[0] in files:
                assert key in raw, f"{key} is not in {key[0]}"


def test_missing_file_reads_not_run(tmp_path):
    for f in RESULTS.glob("*.json"):
        if f.name != "nade-cpu.json":
            shutil.copy(f, tmp_path / f.name)
    rows = {r["model"]: r for r in likelihood_table(tmp_path)}
    assert rows["NADE"]["log_p"] is None and rows["NADE"]["status"] == "not run"
    assert rows["RealNVP"]["log_p"] is not None


def test_quick_results_are_marked(tmp_path):
    d = json.loads((RESULTS / "nade-cpu.json").read_text())
    d["machine"]["quick"] = True
    (tmp_path / "nade-cpu.json").write_text(json.dumps(d))
    rows = {r["model"]: r for r in likelihood_table(tmp_path)}
    assert rows["NADE"]["status"] == "quick sizes only"


def test_corrupted_or_foreign_files_are_rejected(tmp_path):
    (tmp_path / "nade-cpu.json").write_text('{"rows": [')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(tmp_path)
    (tmp_path / "nade-cpu.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a benchmark result file"):
        load_results(tmp_path)


def test_a_renamed_benchmark_row_is_an_error(tmp_path):
    d = json.loads((RESULTS / "nade-cpu.json").read_text())
    for r in d["rows"]:
        r["what"] = r["what"].replace("exact test", "test")
    (tmp_path / "nade-cpu.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="out of date"):
        likelihood_table(tmp_path)


def test_html_shows_every_row_and_number():
    from dgmlib.evaluate.table import table_html

    rows = likelihood_table(RESULTS)
    html = table_html(rows)
    assert html.count("<table") == len({r["data"] for r in rows})
    assert html.count("<tr><td>") == len(rows)
    for r in rows:
        if r["log_p"] is not None:
            assert f"{r['log_p']:.2f}".replace("-", "−") in html
    assert html.count("not run") == sum(r["log_p"] is None for r in rows)


def _with_dbm_bracket(folder: Path, forward: float, reverse: float) -> dict:
    folder.mkdir()
    for f in RESULTS.glob("*.json"):
        shutil.copy(f, folder / f.name)
    path = folder / "dbm-quality-cpu.json"
    doc = json.loads(path.read_text())
    for r in doc["rows"]:
        if r["what"].startswith("test log-likelihood lower bound"):
            r["value"] = forward
        if r["what"].startswith("the same bound with reverse-AIS"):
            r["value"] = reverse
    path.write_text(json.dumps(doc))
    return {r["model"]: r for r in likelihood_table(folder)}["DBM, variational SML"]


def test_a_wide_ais_bracket_is_marked_untrusted(tmp_path):
    # forward and reverse AIS 30 nats apart: AIS has not mixed, so the row says so
    row = _with_dbm_bracket(tmp_path / "wide", -60.0, -90.0)
    assert row["status"].startswith("untrusted") and row["log_p"] == -60.0
    assert "<s>" in table_html([row])
    # within 2 nats the same row is a measurement
    row = _with_dbm_bracket(tmp_path / "narrow", -88.0, -89.5)
    assert row["status"] == "measured" and "<s>" not in table_html([row])
