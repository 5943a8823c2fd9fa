"""Each image's distances in order: the CPU's compiled radix sort against DeepMind's definition (sorting
(distance, length) pairs) and against the torch sorts that CUDA runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_eval.metrics.sorted_rows import sorted_rows
from medseg_eval.metrics.surface import _padded_rows, sqrt_rn


def _lists(rng: np.random.Generator, n: int, longest: int, spacing: float, bumped: float = 0.1):
    """Elements of ``n`` images grouped by image: squared distances of integer offsets at ``spacing``
    (zeros, roots that tie, an image with no partner: all inf), lengths of 16 codes and their ranks."""
    counts = rng.integers(0, longest, size=n)
    counts[0] = longest  # one long row: the radix passes (short rows are sorted by insertion)
    image = np.repeat(np.arange(n), counts)
    m = len(image)
    dy, dx = rng.integers(-40, 40, m), rng.integers(-40, 40, m)
    squared = (dy * spacing) ** 2 + (dx * spacing * 1.1) ** 2
    squared[rng.random(m) < 0.3] = 0.0  # elements on the partner's boundary
    bump = rng.random(m) < bumped  # the next double up: mostly the same square root
    squared[bump] = np.nextafter(squared[bump], np.inf)
    squared[image == n - 1] = np.inf
    table = rng.choice([0.5, np.sqrt(0.5), 1.0, np.sqrt(2.0)], size=16)
    code = rng.integers(0, 16, m)
    rank = np.argsort(np.argsort(table, kind="stable"), kind="stable")[code].astype(np.int16)
    return torch.from_numpy(image), torch.from_numpy(squared), torch.from_numpy(table[code]), torch.from_numpy(rank)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("longest", [5, 33, 400, 5000])
@pytest.mark.parametrize("spacing", [1.0, 0.1, 0.37, 0.5])
@pytest.mark.parametrize("bumped", [0.1, 0.0])
def test_rows_hold_each_images_distance_length_pairs_sorted(seed: int, longest: int, spacing: float,
                                                            bumped: float) -> None:
    rng = np.random.default_rng(seed)
    n = 4
    image, squared, weight, rank = _lists(rng, n, longest, spacing, bumped)
    d, w, count = sorted_rows(image, squared, weight, n, rank)
    distance = np.sqrt(squared.numpy())
    ties = 0
    for i in range(n):
        mine = (image == i).numpy()
        want = sorted(zip(distance[mine], weight.numpy()[mine]))  # DeepMind: sorted((distance, length) pairs)
        assert count[i] == len(want)
        assert d[i, :len(want)].tolist() == [p[0] for p in want] and w[i, :len(want)].tolist() == [p[1] for p in want]
        assert (d[i, len(want):] == np.inf).all() and (w[i, len(want):] == 0).all()
        ties += len(np.unique(squared.numpy()[mine])) - len(np.unique(distance[mine]))
    assert d.shape[1] == longest
    assert ties > 0 or longest < 400 or not bumped  # roots of distinct squares tied (in the long rows)


def test_squares_sixteen_units_apart_have_distinct_roots() -> None:
    """The premise on which rows skip the search for tied roots: two doubles whose bits differ by 16 or
    more have distinct square roots (within a binade the roots of doubles up to 4 units apart can tie)."""
    rng = np.random.default_rng(0)
    a = np.concatenate([np.ldexp(rng.random(200_000) + 1.0, rng.integers(-60, 60, 200_000)),
                        np.nextafter(np.ldexp(1.0, np.arange(-60, 60)), 0)])  # just below each power of 2
    bits = a.view(np.uint64)
    for units in (16, 17, 40):
        assert (np.sqrt((bits + np.uint64(units)).view(np.float64)) > np.sqrt(a)).all()
    assert (np.sqrt((bits + np.uint64(1)).view(np.float64)) == np.sqrt(a)).any()  # the ties that do occur


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ranked", [True, False])
def test_rows_equal_the_torch_sorts_cuda_runs(seed: int, ranked: bool) -> None:
    rng = np.random.default_rng(seed)
    image, squared, weight, rank = _lists(rng, 5, 3000, float(rng.choice([1.0, 0.1])))
    if not ranked:  # edge pixels: weight 1, ties in any order
        weight, rank = torch.ones_like(weight), None
    got = sorted_rows(image, squared, weight, 5, rank)
    want = _padded_rows(image, sqrt_rn(squared), weight, 5, rank)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_rows_of_no_elements() -> None:
    empty = torch.zeros(0, dtype=torch.int64)
    d, w, count = sorted_rows(empty, empty.double(), empty.double(), 3, None)
    assert d.shape == (3, 1) and (d == np.inf).all() and (w == 0).all() and count.tolist() == [0, 0, 0]
