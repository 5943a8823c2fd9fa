"""The distance search against brute force: every element against every element of its partner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medseg_eval.metrics import compiled, distances, feature_transform, transform
from medseg_eval.metrics.boundaries import Boundaries, boundaries
from medseg_eval.metrics.distances import partner_squared_distances


def _brute_force(b: Boundaries) -> np.ndarray:
    """Squared distance from each element to the nearest element of its partner, formed as SciPy does."""
    image, row, col = (t.cpu().numpy() for t in (b.image, b.row, b.col))
    spacing = b.spacing.cpu().numpy()
    out = np.full(len(image), np.inf)
    for i in range(2 * b.pairs):
        partner = i + b.pairs if i < b.pairs else i - b.pairs
        mine, theirs = image == i, image == partner
        if theirs.any():
            dy = (row[mine, None] - row[None, theirs]) * spacing[i, 0]
            dx = (col[mine, None] - col[None, theirs]) * spacing[i, 1]
            out[mine] = (dy * dy + dx * dx).min(1)
    return out


def _force(method: str, monkeypatch) -> None:
    """The search (CUDA's method) on the CPU too, or the CPU's own transform."""
    monkeypatch.setattr(compiled, "ON_CPU", method != "search")


def _scattered(rng: np.random.Generator, n: int, shape: tuple[int, int], density: float) -> torch.Tensor:
    """Masks of isolated specks and a few blobs: most elements lie far from the partner's."""
    masks = rng.random((n, *shape)) < density
    for m in masks:
        for _ in range(rng.integers(0, 3)):
            y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            m[y:y + rng.integers(1, 40), x:x + rng.integers(1, 40)] = True
    return torch.from_numpy(masks)


@pytest.mark.parametrize("convention", ["surface-distance", "monai"])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("block", [None, 64])
@pytest.mark.parametrize("method", ["search", "transform"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_search_is_exact_for_far_and_scattered_elements(convention: str, seed: int, block: int | None, method: str,
                                                        device: str, monkeypatch) -> None:
    if block is not None:  # the searches' work in many small pieces (groups of queries, of (query, band) pairs)
        monkeypatch.setattr(distances, "_BLOCK", block)
    _force(method, monkeypatch)
    rng = np.random.default_rng(seed)
    far = unreachable = False
    for shape in [(150, 220), (300, 90), (41, 260)]:  # wide, tall and flat: rows or columns searched
        n = 3
        pred, target = _scattered(rng, n, shape, 0.002), _scattered(rng, n, shape, 0.001)
        target[0] = False  # an empty partner: its elements' distances are inf
        spacing = torch.from_numpy(rng.choice([0.5, 1.0, 1.9, 3.0], size=(n, 2))).double()
        b = boundaries(pred.to(device), target.to(device), spacing.to(device), convention)
        expected = _brute_force(b)
        unreachable, far = unreachable or np.isinf(expected).any(), far or (expected > 400).any()
        np.testing.assert_array_equal(partner_squared_distances(b).cpu().numpy(), expected)
    assert unreachable and far  # the far searches ran


@pytest.mark.parametrize("convention", ["surface-distance", "monai"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("scan_budget", [0.0, feature_transform.SCAN_BUDGET, math.inf])
def test_dense_boundaries_are_transformed_and_exact(convention: str, seed: int, scan_budget: float,
                                                     monkeypatch) -> None:
    """Speckle over the whole image against clean shapes: the CPU's transform answers every query and agrees
    with brute force, on anisotropic spacing, objects on the border and one-pixel objects; whether rows are
    answered by their lower envelope (budget 0), by scans as far as they may go (no budget) or by both."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(len(args[3]))
        return feature_transform.nearest_squared_distances(*args, **kwargs, scan_budget=scan_budget)

    monkeypatch.setattr(transform, "nearest_squared_distances", counted)
    rng = np.random.default_rng(seed)
    n, shape = 4, (70, 90)
    pred = torch.from_numpy(rng.random((n, *shape)) < rng.uniform(0.2, 0.6, size=(n, 1, 1)))
    target = torch.zeros(n, *shape, dtype=torch.bool)
    target[0, 10:50, 0:30] = True  # on the border
    target[1, 35, 44] = True  # one pixel
    target[2, :, 60:] = True
    target[3] = pred[3]  # speckle against speckle
    spacing = torch.from_numpy(rng.choice([0.3, 0.7, 1.0, 1.9], size=(n, 2))).double()
    b = boundaries(pred, target, spacing, convention)
    np.testing.assert_array_equal(partner_squared_distances(b).numpy(), _brute_force(b))
    assert len(calls) == 1 and calls[0] >= 3  # one call, for the speckles against the three clean shapes at least


def test_transform_and_search_differ_at_most_by_one_ulp_on_ties(monkeypatch) -> None:
    """Where several elements lie at the same real distance, the float64 sums ``(dy*sy)**2 + (dx*sx)**2``
    of an inexact spacing (0.1) can differ in the last bit: the search keeps the smallest (as brute force
    does), the transform the smallest of the tied targets its envelope keeps. With spacings whose products
    are exact (1, 0.5) both agree with brute force bit for bit."""
    rng = np.random.default_rng(0)
    differed = 0
    for _ in range(24):
        pred = torch.from_numpy(rng.random((4, 80, 90)) < 0.3)
        target = torch.from_numpy(rng.random((4, 80, 90)) < 0.02)
        for spacing, exact in ((0.1, False), (1.0, True), (0.5, True)):
            b = boundaries(pred, target, torch.full((4, 2), spacing, dtype=torch.float64), "monai")
            expected = _brute_force(b)
            _force("search", monkeypatch)
            np.testing.assert_array_equal(partner_squared_distances(b).numpy(), expected)
            monkeypatch.undo()
            _force("transform", monkeypatch)
            transformed = partner_squared_distances(b).numpy()
            monkeypatch.undo()
            if exact:
                np.testing.assert_array_equal(transformed, expected)
            else:
                finite = np.isfinite(expected)
                assert (transformed[finite] >= expected[finite]).all()
                assert (transformed[finite] <= np.nextafter(expected[finite], np.inf)).all()
                differed += int((transformed != expected).sum())
    assert differed  # such ties occurred: the bound was tested where it matters


@pytest.mark.parametrize("scan_budget", [0.0, feature_transform.SCAN_BUDGET, math.inf])
def test_feature_transform_is_exact_on_random_targets(scan_budget: float) -> None:
    """The compiled transform against brute force on random boxes, one call for many tasks: sparse and dense
    targets, queries near and far (past the scans' 32 columns), anisotropic spacing, boxes off the origin."""
    rng = np.random.default_rng(7)
    rows, cols, spacing, box, targets, queries, expected = [], [], [], [], [], [], []
    n = 0
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        target = rng.random((h, w)) < rng.choice([0.002, 0.05, 0.4])
        target[rng.integers(h), rng.integers(w)] = True
        query = (rng.random((h, w)) < 0.3) & ~target
        sy, sx = rng.choice([1.0, 0.5, 0.3, 2.7], size=2)
        top, left = (int(v) for v in rng.integers(0, 50, 2))
        (tr, tc), (qr, qc) = np.nonzero(target), np.nonzero(query)
        rows += [tr + top, qr + top]
        cols += [tc + left, qc + left]
        spacing.append((sy, sx))
        box.append((top, left, w))
        targets.append((n, n + len(tr)))
        queries.append(np.arange(n + len(tr), n + len(tr) + len(qr)))
        n += len(tr) + len(qr)
        expected.append((((qr[:, None] - tr) * sy) ** 2 + ((qc[:, None] - tc) * sx) ** 2).min(1, initial=np.inf))
    out = np.full(n, np.nan)
    counts = np.array([len(q) for q in queries])
    feature_transform.nearest_squared_distances(
        np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64), np.array(spacing),
        *(np.array(v, dtype=np.int64) for v in zip(*box)), *(np.array(v, dtype=np.int64) for v in zip(*targets)),
        np.cumsum(counts) - counts, np.cumsum(counts), np.concatenate(queries).astype(np.int64), out,
        scan_budget=scan_budget)
    np.testing.assert_array_equal(out[np.concatenate(queries)], np.concatenate(expected))


def test_transform_values_do_not_depend_on_threads() -> None:
    """Each image is one thread's: one thread or two give the same values, bit for bit."""
    rng = np.random.default_rng(3)
    pred = torch.from_numpy(rng.random((6, 120, 100)) < 0.3)
    target = torch.from_numpy(rng.random((6, 120, 100)) < 0.01)
    b = boundaries(pred, target, torch.full((6, 2), 0.1, dtype=torch.float64), "surface-distance")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = partner_squared_distances(b).numpy()
        torch.set_num_threads(2)
        two = partner_squared_distances(b).numpy()
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)
