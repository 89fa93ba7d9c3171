"""PCA as a projection with both directions: codes down to a plane, points back up to codes.

What it teaches: PCA finds the directions in which a cloud of codes varies
most. The two leading ones, the rows of V (2, Z), span a plane through the
mean code m. A code c lands on that plane at

    p = (c - m) @ V.T                   (Z numbers -> 2)

and a point p of the plane lifts back to the code

    c' = m + p @ V                      (2 numbers -> Z)

Going down and up keeps what lies in the plane and forgets the other Z - 2
directions, so ``to_2d(to_code(p)) == p`` but ``to_code(to_2d(c))`` is only
c's shadow on the plane. A lifted point is a code no image may ever have
produced: that is how the explorer (and tutorial 12) finds the holes in an
autoencoder's code space. The grid's code figure (minae.grid.plots) draws the
same plane.
"""

from __future__ import annotations

import numpy as np


class Projection:
    """The PCA plane of a cloud of codes (N, Z), N >= 2, computed in float64 on the host."""

    def __init__(self, codes):
        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim != 2 or len(codes) < 2:
            raise ValueError(f"a projection needs codes of shape (N, Z) with N >= 2, got {codes.shape}")
        if not np.isfinite(codes).all():
            raise ValueError("the codes contain NaN or infinite values; a projection needs finite codes")
        self.mean = codes.mean(axis=0)                                   # m: (Z,)
        _, _, vt = np.linalg.svd(codes - self.mean, full_matrices=False)
        self.components = vt[:2]   # V: (2, Z), fewer rows only when Z or N - 1 is below 2

    def to_2d(self, codes):
        """codes (N, Z) -> points (N, 2) on the plane; a 1-D plane gives y = 0."""
        points = (np.asarray(codes, dtype=np.float64) - self.mean) @ self.components.T
        return np.pad(points, ((0, 0), (0, 2 - points.shape[1])))

    def to_code(self, points):
        """points (N, 2) on the plane -> codes (N, Z)."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"points must have shape (N, 2), got {points.shape}")
        return self.mean + points[:, :len(self.components)] @ self.components
