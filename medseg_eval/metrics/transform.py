"""Partner distances on the CPU, by the compiled separable transform of :mod:`.feature_transform`.

Each image's queries are answered from its partner's elements in the box of both boundaries (the rows
and columns that hold elements of either, as surface-distance crops to both masks' box): every query's
nearest target lies inside it. The transform's cost follows what the masks need, never the search's
worst case: a query near its partner's boundary reads a few columns, and a row of queries far from it
reads the row's lower envelope once (linear in the box's width), whatever the masks look like: clean,
speckled, noisy or full-resolution.
"""

from __future__ import annotations

import numpy as np
import torch

from .boundaries import Boundaries
from .feature_transform import nearest_squared_distances


def transform(b: Boundaries, pending: torch.Tensor, d2: torch.Tensor) -> None:
    """Write into ``d2`` the exact squared distance from each pending element to its partner's nearest
    element (CPU tensors).

    Parameters
    ----------
    b
        The boundary elements of N mask pairs.
    pending
        Indices of the elements whose distance is still to be found, ascending; each one's partner holds
        elements.
    d2
        Float64 per element of ``b``: where the distances go.

    Examples
    --------
    >>> from medseg_eval.metrics.boundaries import boundaries
    >>> speckle = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0)) < 0.3
    >>> disc = torch.zeros(1, 64, 64, dtype=torch.bool); disc[0, 20:40, 20:40] = True
    >>> b = boundaries(speckle, disc, torch.ones(1, 2, dtype=torch.float64), "medpy")
    >>> d2 = torch.full((len(b.image),), float("nan"), dtype=torch.float64)
    >>> transform(b, torch.arange(len(b.image)), d2)
    >>> bool(d2.isnan().any()), float(d2.max())   # all answered; the farthest: 24 rows and 24 columns off a corner
    (False, 1152.0)
    """
    if len(pending) == 0:
        return
    n = b.pairs
    image, row, col = (t.numpy().astype(np.int64, copy=False) for t in (b.image, b.row, b.col))
    at = pending.numpy().astype(np.int64, copy=False)
    # Elements are listed by image, row-major, and `pending` ascends: each image's elements, and the
    # pending queries of each image, are one run.
    elements = np.bincount(image, minlength=2 * n)
    queries = np.bincount(image[at], minlength=2 * n)
    query_end = queries.cumsum()
    top, left, right = _extents(row, col, elements)
    partner = np.roll(np.arange(2 * n), n)  # image i's partner: (i + n) mod 2n
    top, left = np.minimum(top, top[partner]), np.minimum(left, left[partner])
    right = np.maximum(right, right[partner])
    element_start = elements.cumsum() - elements
    tasks = np.flatnonzero(queries)
    targets = partner[tasks]
    nearest_squared_distances(
        row, col, np.ascontiguousarray(b.spacing.numpy()[tasks], dtype=np.float64), top[tasks], left[tasks],
        (right - left + 1)[tasks], element_start[targets], element_start[targets] + elements[targets],
        (query_end - queries)[tasks], query_end[tasks], at, d2.numpy())


def _extents(row: np.ndarray, col: np.ndarray, elements: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per image, the first row and the first and last columns of its elements (listed by image,
    row-major; ``elements`` counts each image's); an image without elements gets an empty extent."""
    start = elements.cumsum() - elements
    held = elements > 0
    top = np.full(len(elements), 1 << 40)
    left, right = top.copy(), np.full(len(elements), -(1 << 40))
    if held.any():
        top[held] = row[start[held]]
        left[held] = np.minimum.reduceat(col, start[held])
        right[held] = np.maximum.reduceat(col, start[held])
    return top, left, right
