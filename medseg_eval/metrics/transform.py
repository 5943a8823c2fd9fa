"""Partner distances by SciPy's exact feature transform, for the images where it costs less than a search.

The search of :mod:`.distances` pays per query, and a query far from every target pays most: a
speckled prediction scored against a clean ground truth lists a boundary element at most of its
pixels, nearly all of them far from the ground truth's contour. A distance transform pays once per
pixel whatever the boundaries look like. On the CPU each image whose queries would cost more to
search than its box costs to transform is handed to SciPy's ``distance_transform_edt``, the C code
the reference libraries themselves run (an exact Euclidean transform, Maurer et al. 2003): its
feature transform names the nearest target of every pixel, and the squared distance is then formed
from the integer offset exactly as SciPy forms its distances (``(dy*sy)**2 + (dx*sx)**2`` in
float64), so the values are those of the search wherever the nearest target is unique, and
wherever the spacing's products are exact. (Where two targets are at the same real distance and the
spacing is inexact, e.g. 0.1, the two float64 sums may differ in the last bit: the search keeps the
smaller, the transform SciPy's pick, as the references do: one ulp on the tests' ties.)

The transform reads only a box, the rows and columns that hold elements of either boundary (as
surface-distance crops to both masks' box): every query's nearest target lies inside it, so the
box's transform is exact there.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from .boundaries import Boundaries

# What a query costs the search, in pixels that the transform reads in the same time: before the first
# window (rows within 1 of the query, which settles most queries near their partner's boundary in
# under a microsecond), and for a query left open by the window of rows within 1, then 4 (the rest of
# the windows, or the band search of a query far from its partner's boundary: several microseconds);
# and what one transform costs beyond its pixels. The transform takes 25-90 ns a pixel (by content)
# and some 40 us a call on this project's CPU; the values were set by A/B runs on the speed suite's
# kinds (benchmarks/README.md).
NEAR_QUERY_COST = 8
QUERY_COSTS_AFTER = {1: 32, 4: 64}
CALL_COST = 1024


def transform_where_cheaper(b: Boundaries, pending: torch.Tensor, d2: torch.Tensor, query_cost: int) -> torch.Tensor:
    """Write into ``d2`` the exact squared distance from each pending element to its partner's nearest
    element, by SciPy's feature transform of the partner's box, for the images whose queries cost more to
    search than that box to transform (on the CPU); return the pending elements left to search.

    Parameters
    ----------
    b
        The boundary elements of N mask pairs.
    pending
        Indices of the elements whose distance is still to be found, ascending; each one's partner holds
        elements.
    d2
        Float64 per element of ``b``: where the distances go.
    query_cost
        What searching for one pending element costs, in pixels of the transform
        (:data:`NEAR_QUERY_COST`, :data:`QUERY_COSTS_AFTER`).

    Examples
    --------
    >>> from medseg_eval.metrics.boundaries import boundaries
    >>> speckle = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0)) < 0.3
    >>> disc = torch.zeros(1, 64, 64, dtype=torch.bool); disc[0, 20:40, 20:40] = True
    >>> b = boundaries(speckle, disc, torch.ones(1, 2, dtype=torch.float64), "medpy")
    >>> d2 = torch.full((len(b.image),), float("nan"), dtype=torch.float64)
    >>> left = transform_where_cheaper(b, torch.arange(len(b.image)), d2, NEAR_QUERY_COST)
    >>> bool((b.image[left] == 1).all()), bool(d2[b.image == 0].isnan().any())  # the speckle's queries answered
    (True, False)
    """
    if pending.device.type != "cpu" or len(pending) == 0:
        return pending
    n = b.pairs
    image, row, col, spacing = b.image.numpy(), b.row.numpy(), b.col.numpy(), b.spacing.numpy()
    at = pending.numpy()
    # Elements are listed by image, row-major, and `pending` ascends: each image's elements, and the
    # pending queries of each image, are one run.
    elements = np.bincount(image, minlength=2 * n)
    queries = np.bincount(image[at], minlength=2 * n)
    query_end = queries.cumsum()
    query_start = query_end - queries
    # The box of an image and its partner: the rows and columns that hold elements of either (the queries
    # are some of the image's elements). A run's first and last elements hold its first and last rows.
    top, left, bottom, right = _extents(row, col, elements)
    partner = np.roll(np.arange(2 * n), n)  # image i's partner: (i + n) mod 2n
    top, left = np.minimum(top, top[partner]), np.minimum(left, left[partner])
    bottom, right = np.maximum(bottom, bottom[partner]), np.maximum(right, right[partner])
    height, width = bottom - top + 1, right - left + 1
    plan = (queries > 0) & (queries * query_cost > height * width + CALL_COST)
    element_start = elements.cumsum() - elements
    for i in np.flatnonzero(plan).tolist():
        p, t0, l0, w = partner[i], top[i], left[i], width[i]
        targets = slice(element_start[p], element_start[p] + elements[p])
        grid = np.ones(height[i] * w, dtype=bool)
        grid[(row[targets] - t0) * w + col[targets] - l0] = False
        sy, sx = spacing[i].tolist()
        feature = ndimage.distance_transform_edt(grid.reshape(-1, w), sampling=(sy, sx),
                                                 return_distances=False, return_indices=True)
        q = at[query_start[i]:query_end[i]]
        qr, qc = row[q] - t0, col[q] - l0
        flat = qr * w + qc
        dy = (feature[0].ravel()[flat] - qr).astype(np.float64) * sy
        dx = (feature[1].ravel()[flat] - qc).astype(np.float64) * sx
        d2[torch.from_numpy(q)] = torch.from_numpy(dy * dy + dx * dx)
    if not plan.any():
        return pending
    return torch.from_numpy(at[np.repeat(~plan, queries)])


def _extents(row: np.ndarray, col: np.ndarray, elements: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per image, the first and last rows and columns of its elements (listed by image, row-major;
    ``elements`` counts each image's); an image without elements gets an empty extent."""
    end = elements.cumsum()
    start = end - elements
    held = elements > 0
    top, bottom = np.full(len(elements), 1 << 40), np.full(len(elements), -(1 << 40))
    left, right = top.copy(), bottom.copy()
    if held.any():
        top[held], bottom[held] = row[start[held]], row[end[held] - 1]
        left[held] = np.minimum.reduceat(col, start[held])
        right[held] = np.maximum.reduceat(col, start[held])
    return top, left, bottom, right
