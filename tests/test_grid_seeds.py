"""Repeats: every configuration over several seeds, with means, intervals and ties."""

import csv
import json
import math

import numpy as np
import pytest

from minae.data.loading import SAMPLE_ROOT
from minae.grid.cli import main
from minae.grid.config import run_seed

stats = pytest.importorskip("scipy.stats", reason="SciPy is not installed (pip install 'minae[stats]')")

SMALL = ["--datasets", "mnist", "--data-dir", str(SAMPLE_ROOT), "--hidden", "8,4,8", "16,8,16",
         "--lrs", "0.01", "0.1", "--epochs", "2", "--limit-train", "600", "--limit-val", "200",
         "--jobs", "1", "--no-plots"]


def results(out):
    return json.loads((out / "results.json").read_text())


def ranking(out):
    return list(csv.DictReader((out / "ranking.csv").open()))


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "out"
    assert main([*SMALL, "--out", str(out), "--seeds", "3", "--quiet"]) == 0
    return out


def test_every_repeat_is_kept_with_its_own_seed(three):
    records = results(three)
    assert len(records) == 12
    for r in records:
        assert r["seed"] == run_seed(0, "mnist", tuple(r["hidden"]), r["lr"], r["repeat"])
    by_config = {}
    for r in records:
        by_config.setdefault((tuple(r["hidden"]), r["lr"]), []).append(r)
    for repeats in by_config.values():
        assert sorted(r["repeat"] for r in repeats) == [0, 1, 2]
        assert len({r["seed"] for r in repeats}) == 3 and len({r["val_bce"] for r in repeats}) == 3


def test_means_intervals_and_ties_follow_the_repeats(three):
    records, rows = results(three), ranking(three)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    samples = {}
    for row in rows:
        vals = np.array([r["val_bce"] for r in records
                         if ",".join(map(str, r["hidden"])) == row["hidden"] and r["lr"] == float(row["lr"])])
        samples[(row["hidden"], row["lr"])] = vals
        mean, std = vals.mean(), vals.std(ddof=1)
        half = stats.t.ppf(0.975, 2) * std / math.sqrt(3)
        assert int(row["n_seeds"]) == 3
        np.testing.assert_allclose([float(row[k]) for k in ("val_bce_mean", "val_bce_std", "ci95_low",
                                                              "ci95_high")],
                                   [mean, std, mean - half, mean + half], rtol=1e-12)
    means = [float(r["val_bce_mean"]) for r in rows]
    assert means == sorted(means)
    for row in rows:   # "tied with" is exactly the configurations Welch's test cannot separate
        me = samples[(row["hidden"], row["lr"])]
        expected = {f"{h} lr={float(lr):g}" for (h, lr), other in samples.items()
                    if (h, lr) != (row["hidden"], row["lr"])
                    and stats.ttest_ind(me, other, equal_var=False).pvalue >= 0.05}
        assert set(filter(None, row["tied_with"].split("; "))) == expected
    report = (three / "REPORT.md").read_text()
    assert "Welch's two-sample t-test" in report and "Student's t" in report


def test_raising_the_seed_count_trains_only_the_new_repeats(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*SMALL, "--out", str(out), "--seeds", "2", "--quiet"]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs" / "mnist").glob("*.json")}
    assert main([*SMALL, "--out", str(out), "--seeds", "3"]) == 0
    assert "8 finished earlier and reused, 4 to train" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in (out / "runs" / "mnist").glob("*.json")}
    assert len(after) == 12 and {k: after[k] for k in before} == before


def test_one_seed_keeps_the_columns_and_its_keys(three, tmp_path):
    out = tmp_path / "one"
    assert main([*SMALL, "--out", str(out), "--quiet"]) == 0
    row = ranking(out)[0]
    assert row["n_seeds"] == "1" and row["ci95_low"] == "" and row["tied_with"] == ""
    assert "One seed per configuration gives no interval" in (out / "ranking.md").read_text()
    first = {r["key"] for r in results(three) if r["repeat"] == 0}
    assert {r["key"] for r in results(out)} == first   # repeat 0 is the run a grid of one seed trains


def test_the_stacked_engine_stacks_learning_rates_and_seeds(three, tmp_path):
    out = tmp_path / "stacked"
    assert main([*SMALL, "--out", str(out), "--seeds", "3", "--engine", "stacked", "--quiet"]) == 0
    single = {r["key"]: r for r in results(three)}
    stacked = results(out)
    assert len(stacked) == 12
    for r in stacked:
        np.testing.assert_allclose(r["history"]["val_bce"], single[r["key"]]["history"]["val_bce"], rtol=1e-4)
