"""Evidence about what a trained model learned, beyond its loss.

What it teaches: two models with similar BCE can have learned very different
things. A k-nearest-neighbour vote on the bottleneck codes asks whether the
codes know the class; the spread of the reconstructions across images asks
whether the model outputs one constant image; the fraction of first-layer
ReLU units that never fire asks whether the encoder is dead (what a learning
rate of 0.1 does; tutorial 8).
"""

from __future__ import annotations

import numpy as np

KNN_K = 5
KNN_TRAIN, KNN_VAL = 5000, 2000   # rows used for the k-NN probe of the codes


def knn_accuracy(train_codes, train_labels, val_codes, val_labels, k=KNN_K, chunk=500):
    """Accuracy of a k-nearest-neighbour vote (Euclidean) on the codes.

    train_codes: (N_train, Z), val_codes: (N_val, Z); labels are small ints.
    Ties in the vote go to the smaller label.
    """
    k = min(k, len(train_codes))   # a tiny --limit-train has fewer rows than neighbours
    n_classes = int(max(train_labels.max(), val_labels.max())) + 1
    sq_train = (train_codes**2).sum(1)                                       # (N_train,)
    correct = 0
    for start in range(0, len(val_codes), chunk):   # chunks bound the distance matrix's memory
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2; |a|^2 is the same for every b, so drop it.
        d = sq_train[None, :] - 2.0 * val_codes[start:start + chunk] @ train_codes.T
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k]                   # (chunk, k)
        votes = train_labels[nearest]
        counts = (votes[:, :, None] == np.arange(n_classes)).sum(1)         # (chunk, classes)
        correct += int(np.sum(counts.argmax(1) == val_labels[start:start + chunk]))
    return correct / len(val_codes)


def _probe_rows(n, limit, seed):
    return np.sort(np.random.default_rng(seed).choice(n, size=min(n, limit), replace=False))


def code_probe(model, ds, seed=0):
    """Evidence about what a trained model learned, on subsets of the data.

    knn_accuracy:  k-NN accuracy of the class from the bottleneck codes
    output_spread: mean over pixels of the std of the reconstructions across
                   images (about 0 when the model outputs one constant image)
    dead_fraction: fraction of first-layer ReLU units never active on them
    """
    tr = _probe_rows(len(ds.x_train), KNN_TRAIN, seed)
    va = _probe_rows(len(ds.x_val), KNN_VAL, seed + 1)
    be, layer = model.backend, model.code_layer
    x_tr, x_va = be.asarray(ds.x_train[tr]), be.asarray(ds.x_val[va])
    codes_tr = be.to_host(model.encode(x_tr, layer=layer)).astype(np.float64)
    codes_va = be.to_host(model.encode(x_va, layer=layer)).astype(np.float64)
    return {
        "knn_accuracy": knn_accuracy(codes_tr, ds.y_train[tr], codes_va, ds.y_val[va]),
        "output_spread": float(be.to_host(model.predict(x_va)).std(axis=0).mean()),
        "dead_fraction": dead_fraction(model, x_va),
    }


def dead_fraction(model, x, layer=1):
    """Fraction of hidden layer ``layer``'s ReLU units that are not positive for
    any row of x: (N, D). Such a unit passes no gradient back, so it cannot recover."""
    h = model.backend.to_host(model.encode(x, layer=layer))   # (N, H_layer)
    return float(np.mean(h.max(axis=0) <= 0))
