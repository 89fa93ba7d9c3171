"""The pictures every figure shares: tiles, strips, filters with dead units marked, loss curves."""

import numpy as np
from matplotlib.figure import Figure

from minae import Autoencoder, figures
from minae.diagnostics import DIAG_ROWS


def test_tiles_go_row_major_with_gaps_of_the_fill_value():
    images = np.arange(1, 4)[:, None] * np.ones((3, 4))          # three 2x2 images: all 1, all 2, all 3
    out = figures.tile(images, side=2, columns=2, gap=1, fill=-1.0)
    assert out.shape == (5, 5)
    np.testing.assert_array_equal(out, [[1, 1, -1, 2, 2],
                                        [1, 1, -1, 2, 2],
                                        [-1, -1, -1, -1, -1],
                                        [3, 3, -1, -1, -1],
                                        [3, 3, -1, -1, -1]])
    assert figures.tile(images, side=2, columns=3).shape == (2, 6)   # no gap: tiles touch


def test_a_strip_puts_each_array_in_its_own_row():
    top, bottom = np.zeros((3, 784)), np.full((3, 784), 0.5)
    out = figures.strip(top, bottom)
    step = 28 + figures.GAP
    assert out.shape == (2 * step - figures.GAP, 3 * step - figures.GAP)
    assert (out[:28, :28] == 0).all() and (out[step:step + 28, :28] == 0.5).all()
    assert (out[28:step] == 1).all()   # white between the rows


def _tile(image, k, columns=8):
    """Tile k of a filters_image (inside its one-pixel margin), and the ring just around it."""
    r, c = divmod(k, columns)
    top, left = 1 + r * 30, 1 + c * 30
    ring = np.concatenate([image[top - 1, left - 1:left + 29], image[top + 28, left - 1:left + 29],
                           image[top - 1:top + 29, left - 1], image[top - 1:top + 29, left + 28]])
    return image[top:top + 28, left:left + 28], ring


def test_filters_are_red_where_positive_blue_where_negative_and_dead_ones_grey_in_a_frame(rng):
    W = np.stack([rng.uniform(0.1, 1.0, 784), -rng.uniform(0.1, 1.0, 784), rng.normal(size=784)], axis=1)
    image = figures.filters_image(W, dead=np.array([False, False, True]))
    assert image.shape == (30, 8 * 30, 3) and image.min() >= 0 and image.max() <= 1   # 8 to a row
    positive, ring = _tile(image, 0)
    assert (positive[..., 0] == 1).all() and (positive[..., 2] < 1).any()   # red: no red taken away
    assert (ring == 1).all()                                                  # alive: no frame
    negative, ring = _tile(image, 1)
    assert (negative[..., 2] == 1).all() and (negative[..., 0] < 1).any()   # blue
    assert (ring == 1).all()
    dead, ring = _tile(image, 2)
    assert (dead[..., 0] == dead[..., 1]).all() and (dead[..., 1] == dead[..., 2]).all()   # grey
    assert dead.std() > 0                      # its weights still show, in grey
    assert (ring == 0).all()                   # in a black frame


def test_the_filter_caption_counts_the_dead_units(rng):
    W = rng.normal(size=(784, 32))
    dead = np.zeros(32, bool)
    dead[[3, 30]] = True
    ax = Figure().subplots()
    figures.draw_filters(ax, W, dead)
    assert "32 units" in ax.get_xlabel() and "; 2 dead\n(grey, framed" in ax.get_xlabel()
    figures.draw_filters(ax, W, np.zeros(32, bool))
    assert "none dead" in ax.get_xlabel()


def test_dead_units_are_those_never_positive(rng):
    model = Autoencoder(784, [4, 2, 4], seed=0)
    b = model.dense[0].b
    b[...] = [10.0, 10.0, -1e6, 0.0]   # alive, alive, never positive, ...
    model.dense[0].W[:, 3] = 0.0       # ... and exactly 0 for every input: dead too
    x = rng.uniform(size=(50, 784)).astype(np.float32)
    np.testing.assert_array_equal(figures.dead_units(model, x), [False, False, True, True])


def test_picture_rows_copy_device_rows_to_the_host(cupy_like, rng):
    x = rng.uniform(size=(DIAG_ROWS + 10, 784))
    rows = figures.picture_rows(cupy_like(x))   # np.asarray would raise, as CuPy does
    assert type(rows) is np.ndarray
    np.testing.assert_array_equal(rows, x[:DIAG_ROWS])
    assert figures.picture_rows(None) is None


def test_curves_ignore_the_first_epochs_spike_unless_it_is_all_there_is():
    assert figures.curve_top([[5.0, 0.3, 0.2], [4.0, 0.25, None]]) == 0.3
    assert figures.curve_top([[0.7], [0.6]]) == 0.7                    # one epoch: it sets the range
    assert figures.curve_top([[None], [float("nan")]]) is None         # diverged at once


def test_loss_curves_mark_only_their_last_point():
    ax = Figure().subplots()
    val = [1.0 / k for k in range(1, 61)] + [None] * 40            # diverged after epoch 60 of 100
    line = figures.draw_losses(ax, [v * 1.1 if v else v for v in val], val, "C1", "lr=0.1")
    train = ax.get_lines()[1]
    assert line.get_linestyle() == "-" and train.get_linestyle() == "--"
    assert line.get_markevery() == [59] and train.get_markevery() == [59]   # where it stopped
    assert line.get_label() == "lr=0.1" and train.get_color() == line.get_color()
    one = figures.draw_losses(ax, [0.7], [0.6])
    assert one.get_markevery() == [0] and one.get_marker() == "o"          # one epoch: a visible dot
