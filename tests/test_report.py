"""Ranking, the mean-image baseline, the k-NN probe and the verdict notes."""

import numpy as np
import pytest

from minae.grid.probe import knn_accuracy
from minae.grid.report import mean_image_bce, rank, ranking_csv, ranking_rows
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


def _record(hidden, lr, val, status="ok", spread=0.2, dead=0.0):
    return {"dataset": "d", "hidden": hidden, "lr": lr, "status": status, "val_bce": val,
            "train_bce": val, "diverged_epoch": 3 if status != "ok" else None, "seconds": 1.0,
            "history": {"val_bce": [val]}, "knn_accuracy": 0.5, "output_spread": spread,
            "dead_fraction": dead, "data_source": "x"}


def test_ranking_puts_the_lowest_loss_first_and_diverged_runs_last():
    records = [_record([4], 0.1, None, "diverged"), _record([4], 0.01, 0.3), _record([8], 0.01, 0.2)]
    assert [r["lr"] for r in rank(records)] == [0.01, 0.01, 0.1]
    rows = ranking_rows(records, {"d": 0.5})
    assert [r["rank"] for r in rows] == [1, 2, 3] and rows[0]["hidden"] == "8"
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
