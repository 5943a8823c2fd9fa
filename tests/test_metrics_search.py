"""The distance search against brute force: every element against every element of its partner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_eval.metrics import distances
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
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_search_is_exact_for_far_and_scattered_elements(convention: str, seed: int, block: int | None, device: str,
                                                        monkeypatch) -> None:
    if block is not None:  # the searches' work in many small pieces (groups of queries, of (query, band) pairs)
        monkeypatch.setattr(distances, "_BLOCK", block)
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
