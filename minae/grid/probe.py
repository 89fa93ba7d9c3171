"""Evidence about what a trained model learned, beyond its loss.

What it teaches: two models with similar BCE can have learned very different
things. A k-nearest-neighbour vote on the bottleneck codes asks whether the
codes know the class (a collapsed model's codes know nothing: k-NN near
chance, 10%).
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
    """k-NN accuracy of the class from the bottleneck codes, on seeded subsets of
    the data (KNN_TRAIN neighbours to vote, KNN_VAL images to classify).

    The unit statistics (dead units, output spread) are minae.diagnostics':
    a run's record takes them from its last epoch, measured on the rows every
    figure and the live view use.
    """
    tr = _probe_rows(len(ds.x_train), KNN_TRAIN, seed)
    va = _probe_rows(len(ds.x_val), KNN_VAL, seed + 1)
    be, layer = model.backend, model.code_layer
    codes_tr = be.to_host(model.encode(be.asarray(ds.x_train[tr]), layer=layer)).astype(np.float64)
    codes_va = be.to_host(model.encode(be.asarray(ds.x_val[va]), layer=layer)).astype(np.float64)
    return knn_accuracy(codes_tr, ds.y_train[tr], codes_va, ds.y_val[va])
