"""Ranking, the mean-image baseline, the k-NN probe, the verdict notes, REPORT.md's layout."""

import re

import numpy as np
import pytest

from minae.grid.probe import knn_accuracy
from minae.grid.report import mean_image_bce, ranking_csv, ranking_markdown, ranking_rows, report_markdown
from minae.losses import bce_loss


def test_mean_image_baseline_equals_the_brute_force_bce(rng):
    x_train = rng.uniform(size=(50, 12)) * (rng.uniform(size=(50, 12)) > 0.3)
    x_train[:, 0] = 0.0   # an always-black pixel: the prediction 0 is clipped
    x_val = rng.uniform(size=(30, 12))
    brute = float(bce_loss(np.broadcast_to(x_train.mean(0), x_val.shape), x_val))
    assert mean_image_bce(x_train, x_val) == pytest.approx(brute, rel=1e-12)


def test_knn_separates_clusters_and_matches_a_direct_vote(rng):
    centres = rng.normal(scale=10, size=(3, 4))
    labels = rng.integers(0, 3, size=300)
    codes = centres[labels] + rng.normal(size=(300, 4))
    assert knn_accuracy(codes[:200], labels[:200], codes[200:], labels[200:], chunk=7) == 1.0
    noise = rng.normal(size=(120, 3))
    noisy_labels = rng.integers(0, 4, size=120)
    d = ((noise[80:, None, :] - noise[None, :80, :]) ** 2).sum(-1)
    direct = []
    for row in d:
        votes = np.bincount(noisy_labels[:80][np.argsort(row, kind="stable")[:5]], minlength=4)
        direct.append(votes.argmax())
    expected = np.mean(np.array(direct) == noisy_labels[80:])
    got = knn_accuracy(noise[:80], noisy_labels[:80], noise[80:], noisy_labels[80:])
    assert got == pytest.approx(expected)


def _record(hidden, lr, val, status="ok", spread=0.2, dead=0.0, dataset="d"):
    return {"dataset": dataset, "hidden": hidden, "lr": lr, "status": status, "val_bce": val,
            "train_bce": val, "diverged_epoch": 3 if status != "ok" else None, "seconds": 1.0,
            "history": {"val_bce": [val]}, "knn_accuracy": 0.5, "output_spread": spread,
            "dead_fraction": dead, "data_source": "x", "backend": "numpy"}


def test_ranking_puts_the_lowest_loss_first_and_diverged_runs_last():
    records = [_record([4], 0.1, None, "diverged"), _record([4], 0.01, 0.3), _record([8], 0.01, 0.2)]
    rows = ranking_rows(records, {"d": 0.5})
    assert [r["rank"] for r in rows] == [1, 2, 3] and [(r["hidden"], r["lr"]) for r in rows] == [
        ("8", 0.01), ("4", 0.01), ("4", 0.1)]
    assert rows[2]["note"] == "diverged at epoch 3" and rows[0]["val_over_mean_image"] == pytest.approx(0.4)
    assert ranking_csv(rows).splitlines()[0].startswith(
        "dataset,rank,hidden,lr,status,n_seeds,val_bce_mean,val_bce_std,ci95_low,ci95_high,tied_with")


def test_notes_say_which_runs_learned_nothing():
    rows = ranking_rows([_record([4], 0.1, 0.26, spread=0.0001, dead=1.0), _record([4], 0.001, 0.255),
                         _record([8], 0.01, 0.1)], {"d": 0.26})
    notes = {r["lr"]: r["note"] for r in rows}
    assert notes[0.1].startswith("collapsed to a constant output")
    assert "100% of first-layer units dead" in notes[0.1]
    assert notes[0.001] == "no better than the mean image" and notes[0.01] == ""


def _report(records, figures, datasets=("mnist", "fashion-mnist")):
    from types import SimpleNamespace

    config = SimpleNamespace(datasets=datasets, hidden=((4,), (8,)), lrs=(0.1, 0.01), epochs=1,
                             batch_size=256, adam_form="keras", beta1=0.9, beta2=0.99, eps=1e-7, seed=0,
                             dtype="float32", backend="numpy")
    data = {name: SimpleNamespace(name=name, source="data-dir", location="here", n_train=10, n_val=5,
                                  canonical=True, notes=(), digest="abc") for name in datasets}
    baselines = dict.fromkeys(datasets, 0.5)
    rows = ranking_rows(records, baselines)
    return rows, report_markdown(config, records, rows, baselines, data, figures, "grid", len(records), 0)


def test_each_dataset_has_its_ranking_notes_and_figures_under_its_own_heading():
    records = [_record([4], 0.1, 0.5, spread=0.0001, dataset="fashion-mnist"),   # a note for each
               _record([8], 0.01, 0.3, dataset="fashion-mnist"),
               _record([4], 0.1, 0.5, spread=0.0001, dataset="mnist"),
               _record([8], 0.01, 0.2, dataset="mnist")]
    figures = {name: [("ranking.png", f"{name} ranking caption"), ("curves.png", f"{name} curves caption")]
               for name in ("mnist", "fashion-mnist")}
    _, text = _report(records, figures)
    sections = text.split("\n## ")
    headings = [s.splitlines()[0] for s in sections[1:]]
    assert headings == ["Settings", "Data", "mnist", "fashion-mnist", "Files"]   # the configured order
    for name, other in (("mnist", "fashion-mnist"), ("fashion-mnist", "mnist")):
        section = sections[1 + headings.index(name)]
        order = [section.index(part) for part in (
            "### Ranking", "| rank |", "### Notes", "- 4 lr=0.1: collapsed to a constant output",
            "### Figures", f"{name} ranking caption", f"(plots/{name}/ranking.png)",
            f"{name} curves caption", f"(plots/{name}/curves.png)")]
        assert order == sorted(order), name
        assert f"(plots/{other}/" not in section and f"{other} ranking caption" not in section.splitlines()


def _cells(line):
    """A Markdown table line's cells, split where GitHub splits them: at pipes not escaped."""
    return re.split(r"(?<!\\)\|", line)[1:-1]


def test_error_text_with_newlines_and_pipes_stays_in_its_table_cell():
    error = "KilledWorker: ('train-abc', <Worker 'tcp://1.2.3.4'>)\nTraceback | the scheduler\r\nwent away"
    failed = {**_record([4], 0.1, None, "failed", spread=None, dataset="mnist"), "error": error,
              "history": {"train_bce": [], "val_bce": []}, "seconds": None}
    records = [failed, _record([8], 0.01, 0.2, dataset="mnist")]
    rows, text = _report(records, {}, datasets=("mnist",))
    for markdown in (text, ranking_markdown(rows, {"mnist": 0.5}, {})):
        table = [line for line in markdown.splitlines() if line.startswith("| rank |")
                 or line.startswith("|---:") or line.startswith("| 1 |") or line.startswith("| 2 |")]
        assert len(table) == 4, table                                     # header, rule, two rows
        assert {len(_cells(line)) for line in table} == {14}              # no row ends early or runs on
        assert "failed: KilledWorker: ('train-abc', &lt;Worker 'tcp://1.2.3.4'>) Traceback \\| the " \
               "scheduler went away" in table[3]
    note = [line for line in text.splitlines() if line.startswith("- 4 lr=0.1: failed")]
    assert len(note) == 1 and note[0].endswith("went away.")             # the whole note on its bullet's line
