"""Boundaries, exact Euclidean boundary-to-boundary distances, and the distance metrics.

Everything runs batched on ``[N, H, W]`` masks (N = cases x classes) with torch ops only, so the
same code runs on CPU and CUDA.

Distances are exact and separable (Saito & Toriwaki 1994; Meijster et al. 2000): for the set ``T``
of boundary elements of one mask, let ``g(i', j)`` be the column distance from ``(i', j)`` to the
nearest element of ``T`` in row ``i'``; the squared distance from a query element ``(i, j)`` of the
other boundary is ``min_i' (sy * (i - i'))**2 + (sx * g(i', j))**2``. ``g`` is found only where it is
needed, by a binary search in the sorted list of ``T``'s elements, and the minimum runs first over
a small window of rows around ``i``: once the best value in the window is no larger than the
squared distance to the first row outside it, no row outside can win, so the result is exact.
Otherwise the best value bounds how many rows away the nearest target can be, and one more search
over those rows settles the query; a query that saw no target at all widens its window. Squared
distances are formed exactly as SciPy's ``distance_transform_edt`` does (``(dy*sy)**2 +
(dx*sx)**2`` in float64), and one square root is taken at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .conventions import CONVENTION_SPECS, EmptyPolicy

# Half-width (rows) of the first search window, and its growth while a query sees no target.
_FIRST_WINDOW = 1
_WINDOW_GROWTH = 4
# Upper bound of the elements in one [queries, rows] block of the search (memory cap).
_BLOCK = 1 << 20
# Marks "no boundary element in this row": wider than any image.
_FAR = 1 << 24


def _pad(masks: torch.Tensor) -> torch.Tensor:
    """The masks with a one-pixel background frame: outside the image counts as background."""
    n, h, w = masks.shape
    padded = masks.new_zeros(n, h + 2, w + 2)
    padded[:, 1:-1, 1:-1] = masks
    return padded


def edge_pixels(masks: torch.Tensor) -> torch.Tensor:
    """Edge pixels: the mask minus its erosion by the 4-neighbour cross (MONAI, MedPy).

    Pixels outside the image count as background, so foreground on the image border is boundary.

    Examples
    --------
    >>> m = torch.zeros(1, 5, 5, dtype=torch.bool); m[0, 1:4, 1:4] = True
    >>> edge_pixels(m)[0].int()
    tensor([[0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0],
            [0, 1, 0, 1, 0],
            [0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0]], dtype=torch.int32)
    """
    padded = _pad(masks)
    interior = padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    return masks & ~interior


def corner_elements(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boundary elements on the ``(H+1) x (W+1)`` pixel-corner lattice (DeepMind).

    Corner ``(i, j)`` is the top-left corner of pixel ``(i, j)``; it is a boundary element when
    the four pixels around it are neither all inside nor all outside (outside the image counts as
    outside). Returns the elements and the zero-padded masks ``[N, H+2, W+2]`` from which
    :func:`neighbour_codes` reads the codes of the elements.

    Examples
    --------
    >>> m = torch.zeros(1, 2, 3, dtype=torch.bool); m[0, 0, 1] = True
    >>> corner_elements(m)[0][0].int()
    tensor([[0, 1, 1, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 0]], dtype=torch.int32)
    """
    padded = _pad(masks)
    top_left = padded[:, :-1, :-1]
    elements = (top_left ^ padded[:, :-1, 1:]) | (top_left ^ padded[:, 1:, :-1]) | (top_left ^ padded[:, 1:, 1:])
    return elements, padded


def neighbour_codes(padded: torch.Tensor, image: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """2x2 neighbourhood codes of the corners ``(image, row, col)``, as DeepMind computes them.

    ``8*top_left + 4*top_right + 2*bottom_left + 1*bottom_right`` over the four pixels around the
    corner, what ``surface_distance`` gets by correlating the mask with ``[[8, 4], [2, 1]]``.
    ``padded`` is the second result of :func:`corner_elements`.
    """
    _, hp, wp = padded.shape
    flat = padded.flatten().to(torch.uint8)
    top_left = (image * hp + row) * wp + col
    return (8 * flat[top_left] + 4 * flat[top_left + 1] + 2 * flat[top_left + wp] + flat[top_left + wp + 1]).long()


def contour_length_table(spacing: torch.Tensor) -> torch.Tensor:
    """Contour length of each 2x2 code, per case: float64 ``[N, 16]``.

    DeepMind's marching-squares table: one or three corners inside cut the square diagonally
    (half a diagonal), two adjacent corners cut it straight (one pixel side), two opposite corners
    cut it twice. The diagonal is computed in NumPy so that it is the correctly rounded value
    DeepMind's ``math.sqrt`` gives.

    Examples
    --------
    >>> contour_length_table(torch.tensor([[1.0, 2.0]], dtype=torch.float64))[0, [3, 5, 6]].tolist()
    [2.0, 1.0, 2.23606797749979]
    """
    s = spacing.cpu().numpy()
    vertical, horizontal = s[:, 0], s[:, 1]
    diag = 0.5 * np.sqrt(vertical**2 + horizontal**2)
    table = np.zeros((len(s), 16))
    table[:, [1, 2, 4, 8, 7, 11, 13, 14]] = diag[:, None]
    table[:, [3, 12]] = horizontal[:, None]
    table[:, [5, 10]] = vertical[:, None]
    table[:, [6, 9]] = 2 * diag[:, None]
    return torch.from_numpy(table)


def _gaps_along_rows(keys: torch.Tensor, line: torch.Tensor, col: torch.Tensor, width: int) -> torch.Tensor:
    """Column distance from ``(line, col)`` to the nearest target in that row (``_FAR`` if none).

    ``keys`` lists the targets as ``line * width + col``, ascending, between two sentinels that
    lie outside every row; ``line`` numbers the rows of all images. A binary search puts each probe
    between its neighbours left and right, which count only when they are in the probe's row.
    """
    start = line * width
    probe = start + col
    pos = torch.searchsorted(keys, probe)
    right, left = keys[pos], keys[pos - 1]
    gap_right = torch.where(right < start + width, right - probe, _FAR)
    gap_left = torch.where(left >= start, probe - left, _FAR)
    return torch.minimum(gap_right, gap_left)


def partner_squared_distances(
    elements: torch.Tensor, spacing: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact squared distance from every boundary element to the nearest element of its partner.

    Parameters
    ----------
    elements
        Bool ``[2N, h, w]``: boundary elements of N predictions followed by those of their N
        ground truths; image ``i`` and image ``(i + N) mod 2N`` are partners.
    spacing
        Float64 ``[2N, 2]``, ``(sy, sx)`` per image, on the masks' device.

    Returns
    -------
    image, row, col, d2
        Coordinates of each element (row-major order) and its squared distance (float64). Elements
        whose partner has none get ``inf``; the caller treats them by its empty-mask rule.

    Examples
    --------
    >>> e = torch.zeros(2, 4, 4, dtype=torch.bool); e[0, 0, 0] = True; e[1, 3, 2] = True
    >>> partner_squared_distances(e, torch.tensor([[1.0, 0.5]] * 2, dtype=torch.float64))[3].tolist()
    [10.0, 10.0]
    """
    n2, h, w = elements.shape
    n = n2 // 2
    device = elements.device
    image, row, col = elements.nonzero(as_tuple=True)
    d2 = torch.full((len(image),), math.inf, dtype=torch.float64, device=device)
    if len(image) == 0:
        return image, row, col, d2
    # Each element is a target of its partner's queries. Listed under the partner's index, the
    # ground truths' elements come first, so the sorted target list is a rotation of this one.
    partner = torch.where(image < n, image + n, image - n)
    partner_flat = (partner * h + row) * w + col
    split = int((image < n).sum())
    # Elements shared with the partner's boundary (often about half) are at distance 0.
    on_target = elements.flatten()[partner_flat]
    d2[on_target] = 0.0
    # int32 indices where they fit: the search below is bound by memory traffic.
    index_dtype = torch.int32 if elements.numel() < 2**30 else torch.int64
    sentinel = torch.tensor([-2 * _FAR, elements.numel() + 2 * _FAR], dtype=index_dtype, device=device)
    keys = partner_flat.to(index_dtype)
    search = _WindowSearch(
        keys=torch.cat([sentinel[:1], keys[split:], keys[:split], sentinel[1:]]),
        image=image.to(index_dtype), row=row.to(index_dtype), col=col.to(index_dtype),
        sy=spacing[:, 0], sx=spacing[:, 1], height=h, width=w,
    )
    pending = (~on_target).nonzero().flatten()
    half = torch.full_like(pending, _FIRST_WINDOW)
    best = search.min_over_rows(pending, _FIRST_WINDOW)
    while True:
        d2[pending] = best
        sy = search.sy[image[pending]]
        # Exact once no row outside the window can be closer than the best inside it, or once
        # every row was searched.
        reach = (half + 1) * sy
        open_ = (best > reach * reach) & (2 * half + 1 < h)
        if not open_.any():
            break
        pending, best, half, sy = pending[open_], best[open_], half[open_], sy[open_]
        # The nearest target lies within sqrt(best) / sy rows (unbounded if none was seen yet):
        # search exactly those rows when that is no wider than growing the window would be.
        bound = torch.where(torch.isfinite(best), (best.sqrt() / sy).ceil(), math.inf)
        grown = (half * _WINDOW_GROWTH).double()
        half = torch.minimum(bound, grown).clamp_max(h).long()
        best = search.min_over_rows_each(pending, half)
        # A search out to the bound is exact: mark it done by widening its nominal window.
        half = torch.where(half.double() >= bound, h, half)
    return image, row, col, d2


@dataclass(frozen=True)
class _WindowSearch:
    """Query and target elements of one batch, prepared for windowed row searches."""

    keys: torch.Tensor  # targets as (image * height + row) * width + col, ascending, between sentinels
    image: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    sy: torch.Tensor
    sx: torch.Tensor
    height: int
    width: int

    def min_over_rows(self, queries: torch.Tensor, half: int) -> torch.Tensor:
        """Smallest squared distance to a target in rows ``row - half .. row + half`` (all if wider)."""
        out = torch.empty(len(queries), dtype=torch.float64, device=queries.device)
        step = max(1, _BLOCK // min(self.height, 2 * half + 1))
        for start in range(0, len(queries), step):
            out[start:start + step] = self._min_over(queries[start:start + step], half)
        return out

    def min_over_rows_each(self, queries: torch.Tensor, halves: torch.Tensor) -> torch.Tensor:
        """As :meth:`min_over_rows` with one half-width per query (at least that wide).

        Half-widths are rounded up to powers of two, and each such class is searched in one pass
        with the queries in their original, row-major order, which keeps the binary searches local.
        """
        out = torch.empty(len(queries), dtype=torch.float64, device=queries.device)
        classes = torch.exp2(torch.log2(halves.clamp(1, self.height).double()).ceil()).long()
        for half in classes.unique().tolist():
            members = (classes == half).nonzero().flatten()
            out[members] = self.min_over_rows(queries[members], half)
        return out

    def _min_over(self, queries: torch.Tensor, half: int) -> torch.Tensor:
        h = self.height
        n, i, j = self.image[queries], self.row[queries], self.col[queries]
        if 2 * half + 1 >= h:
            rows = torch.arange(h, device=n.device, dtype=n.dtype).expand(len(n), h)
        else:
            rows = i[:, None] + torch.arange(-half, half + 1, device=n.device, dtype=n.dtype)
        inside = (rows >= 0) & (rows < h)
        gap = _gaps_along_rows(self.keys, n[:, None] * h + rows.clamp(0, h - 1), j[:, None], self.width)
        dy = (rows - i[:, None]).double() * self.sy[n.long(), None]
        dx = gap.double() * self.sx[n.long(), None]
        return (dy * dy + dx * dx).masked_fill(~inside | (gap == _FAR), math.inf).amin(1)


@dataclass(frozen=True)
class SurfaceDistances:
    """Distances between the two boundaries of N mask pairs, sorted per image and direction.

    Rows are padded: distances with ``inf``, weights with 0; ``*_count`` holds each row's length.
    For ``"monai"`` the distances are MONAI's float32 values (held in float64).
    """

    pred_to_target: torch.Tensor
    pred_weights: torch.Tensor
    pred_count: torch.Tensor
    target_to_pred: torch.Tensor
    target_weights: torch.Tensor
    target_count: torch.Tensor


def _padded_rows(
    image: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, n: int, by_weight: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter a flat list (grouped by image) into sorted, padded rows ``[n, L]``."""
    count = torch.bincount(image, minlength=n)
    # At least one (padding) column, so that per-row lookups work when every boundary is empty.
    length = max(1, int(count.max()) if n else 0)
    start = count.cumsum(0) - count
    position = torch.arange(len(image), device=image.device) - start[image]
    d = torch.full((n, length), math.inf, dtype=torch.float64, device=image.device)
    wt = torch.zeros((n, length), dtype=torch.float64, device=image.device)
    d[image, position] = values
    wt[image, position] = weights
    if by_weight:
        # DeepMind sorts (distance, length) pairs lexicographically: sort by the minor key first.
        order = wt.sort(dim=1, stable=True).indices
        d, wt = d.gather(1, order), wt.gather(1, order)
    order = d.sort(dim=1, stable=True).indices
    return d.gather(1, order), wt.gather(1, order), count


def surface_distances(
    pred: torch.Tensor, target: torch.Tensor, spacing: torch.Tensor, convention: str
) -> SurfaceDistances:
    """Boundary elements of both masks and their distances to the other boundary, both directions.

    Parameters
    ----------
    pred, target
        Bool ``[N, H, W]``.
    spacing
        Float64 ``[N, 2]`` on the masks' device.
    convention
        ``"surface-distance"``, ``"monai"`` or ``"medpy"``.

    Examples
    --------
    >>> p = torch.zeros(1, 8, 8, dtype=torch.bool); p[0, 2:5, 2:5] = True
    >>> t = torch.zeros(1, 8, 8, dtype=torch.bool); t[0, 2:5, 3:6] = True
    >>> sd = surface_distances(p, t, torch.ones(1, 2, dtype=torch.float64), "medpy")
    >>> sd.pred_to_target[0, :int(sd.pred_count[0])].tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """
    n = pred.shape[0]
    spec = CONVENTION_SPECS[convention]
    if spec.boundary == "surfels":
        elements, padded = corner_elements(torch.cat([pred, target]))
    else:
        elements = edge_pixels(torch.cat([pred, target]))
    image, row, col, d2 = partner_squared_distances(elements, spacing.repeat(2, 1))
    d = d2.sqrt()
    if spec.distance_dtype == "float32":
        d = d.float().double()
    by_weight = spec.boundary == "surfels"
    if by_weight:
        table = contour_length_table(spacing).to(pred.device).repeat(2, 1)
        weights = table[image, neighbour_codes(padded, image, row, col)]
    else:
        weights = torch.ones_like(d)
    from_pred = image < n
    pd, pw, pc = _padded_rows(image[from_pred], d[from_pred], weights[from_pred], n, by_weight)
    td, tw, tc = _padded_rows(image[~from_pred] - n, d[~from_pred], weights[~from_pred], n, by_weight)
    return SurfaceDistances(pd, pw, pc, td, tw, tc)


def _last_in_row(x: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Each row's last valid entry: the maximum of sorted distances, or the total of a cumulative sum.

    Totals read this way, unlike ``sum(1)`` whose summation order depends on the padded row length,
    have the same bits for a case whatever batch it is computed in.
    """
    return x.gather(1, (count - 1).clamp_min(0)[:, None]).squeeze(1)


def _weighted_percentile(d: torch.Tensor, w: torch.Tensor, count: torch.Tensor, q: float) -> torch.Tensor:
    """DeepMind: the first distance whose cumulative weight share reaches ``q`` (no interpolation)."""
    cum = w.cumsum(1)
    total = _last_in_row(cum, count)[:, None]
    share = cum / _nonzero(total)
    query = torch.full((len(d), 1), q, dtype=torch.float64, device=d.device)
    index = torch.searchsorted(share, query).squeeze(1)
    index = torch.minimum(index, (count - 1).clamp_min(0))
    return d.gather(1, index[:, None]).squeeze(1)


def _linear_percentile_float32(d: torch.Tensor, count: torch.Tensor, q: float) -> torch.Tensor:
    """``torch.quantile(d, q)`` (linear) per row, with its float32 arithmetic, as MONAI calls it."""
    values = d.float()
    rank = torch.tensor(q, dtype=torch.float32, device=d.device) * (count - 1).clamp_min(0).float()
    below, above = rank.long(), rank.ceil().long()
    weight = rank - below.float()
    lo = values.gather(1, below[:, None]).squeeze(1)
    hi = values.gather(1, above.clamp_max(values.shape[1] - 1)[:, None]).squeeze(1)
    return torch.lerp(lo, hi, weight).double()


def _linear_percentile(d: torch.Tensor, count: torch.Tensor, q: float) -> torch.Tensor:
    """``numpy.percentile(d, 100*q)`` (method "linear") per row, with NumPy's index arithmetic."""
    n = count.double()
    virtual = n * q + (1 - q) - 1
    last = (count - 1).clamp_min(0)
    below = torch.minimum(virtual.floor().long().clamp_min(0), last)
    above = torch.minimum(below + 1, last)
    gamma = virtual - below.double()
    lo = d.gather(1, below[:, None]).squeeze(1)
    hi = d.gather(1, above[:, None]).squeeze(1)
    diff = hi - lo
    return torch.where(gamma >= 0.5, hi - diff * (1 - gamma), lo + diff * gamma)


def distance_metric(
    name: str,
    sd: SurfaceDistances,
    convention: str,
    *,
    percentile: float = 95.0,
    tolerance: float = 2.0,
) -> torch.Tensor:
    """One distance metric per image (float64 ``[N]``) from :class:`SurfaceDistances`.

    Rows where a boundary is empty hold meaningless values; :func:`apply_empty_policy` replaces
    them.

    Parameters
    ----------
    name
        ``"hausdorff"``, ``"hd95"`` (at ``percentile``), ``"assd"``, ``"masd"`` or ``"nsd"`` (at
        ``tolerance``, in spacing units).
    """
    spec = CONVENTION_SPECS[convention]
    pd, pw, pc = sd.pred_to_target, sd.pred_weights, sd.pred_count
    td, tw, tc = sd.target_to_pred, sd.target_weights, sd.target_count
    if name == "hausdorff":
        return torch.maximum(_last_in_row(pd, pc), _last_in_row(td, tc))
    if name == "hd95":
        q = percentile / 100.0
        if spec.percentile == "pooled-linear":
            pooled = torch.cat([pd, td], 1).sort(1).values
            return _linear_percentile(pooled, pc + tc, q)
        if spec.percentile == "per-direction-linear-float32":
            return torch.maximum(_linear_percentile_float32(pd, pc, q), _linear_percentile_float32(td, tc, q))
        return torch.maximum(_weighted_percentile(pd, pw, pc, q), _weighted_percentile(td, tw, tc, q))

    def total(x: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        return _last_in_row(x.cumsum(1), count)

    # Padding carries weight 0; zero its inf distances so that the products stay finite.
    p_sum = total(pd.masked_fill(pw == 0, 0.0) * pw, pc)
    t_sum = total(td.masked_fill(tw == 0, 0.0) * tw, tc)
    p_total, t_total = total(pw, pc), total(tw, tc)
    # Rows with an empty boundary divide by 1 here; the empty-mask policy replaces them.
    if name == "assd":
        return (p_sum + t_sum) / _nonzero(p_total + t_total)
    if name == "masd":
        return 0.5 * (p_sum / _nonzero(p_total) + t_sum / _nonzero(t_total))
    if name == "nsd":
        # MONAI compares its float32 distances with the tolerance cast to float32.
        tol = float(np.float32(tolerance)) if spec.distance_dtype == "float32" else tolerance
        within = total((pd <= tol) * pw, pc) + total((td <= tol) * tw, tc)
        return within / _nonzero(p_total + t_total)
    raise KeyError(name)


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, 1.0)


def apply_empty_policy(
    name: str, values: torch.Tensor, sd: SurfaceDistances, diagonal: torch.Tensor, empty: EmptyPolicy
) -> torch.Tensor:
    """Replace the values of image pairs where either boundary is empty, as ``empty`` says."""
    return empty.apply(name, values, sd.pred_count == 0, sd.target_count == 0, diagonal)
