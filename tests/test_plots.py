"""Helpers behind the figures (the figures themselves are checked by test_grid)."""

import numpy as np

from minae.grid.plots import pca_2d, rectangle


def test_codes_are_reshaped_to_the_squarest_rectangle():
    assert [rectangle(n) for n in (128, 64, 32, 16, 7)] == [(8, 16), (8, 8), (4, 8), (4, 4), (1, 7)]


def test_pca_keeps_the_two_directions_of_largest_variance(rng):
    codes = rng.standard_normal((500, 3)) * [10.0, 0.1, 3.0]
    xy = pca_2d(codes)
    assert xy.shape == (500, 2)
    np.testing.assert_allclose(np.sort(xy.var(0))[::-1], [100, 9], rtol=0.15)
    assert pca_2d(rng.standard_normal((20, 1))).shape == (20, 2)   # a 1-D code still plots
