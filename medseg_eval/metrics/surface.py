"""Boundaries, exact Euclidean boundary-to-boundary distances, and the distance metrics.

Everything runs batched on ``[N, H, W]`` masks (N = cases x classes) with torch ops only, so the
same code runs on CPU and CUDA.

Distances are exact. For the set ``T`` of boundary elements of one mask, a column pass gives
``g(i, j) = min |i - k|`` over ``T``'s elements ``k`` in column ``j`` (two cumulative scans).
The squared distance from a query element ``(i, j)`` of the other boundary is then
``min_j' (sy * g(i, j'))**2 + (sx * (j - j'))**2`` (Saito & Toriwaki 1994; Meijster et al. 2000),
evaluated only at query elements and first over a small window of columns: once the best value in
the window is no larger than the squared distance to the first column outside it, no column outside
can win, so the result is exact; the few unresolved queries widen the window. Squared distances are
formed exactly as SciPy's ``distance_transform_edt`` does (``(dy*sy)**2 + (dx*sx)**2`` in float64),
and one square root is taken at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .conventions import CONVENTION_SPECS, EmptyPolicy

# Column windows (half-widths) tried in turn before falling back to every column.
_WINDOWS = (8, 32, 128)
# Upper bound of the elements in one [queries, columns] block of the row pass (memory cap).
_BLOCK = 1 << 22
# Marks "no boundary element in this column"; large enough to lose every comparison, small
# enough that (_FAR * spacing)**2 stays finite in float64.
_FAR = 1 << 24


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
    n, h, w = masks.shape
    padded = masks.new_zeros(n, h + 2, w + 2)
    padded[:, 1:-1, 1:-1] = masks
    interior = padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    return masks & ~interior


def neighbour_codes(masks: torch.Tensor) -> torch.Tensor:
    """2x2 neighbourhood codes on the ``(H+1) x (W+1)`` pixel-corner lattice (DeepMind).

    Corner ``(i, j)`` is the top-left corner of pixel ``(i, j)``; its code is
    ``8*top_left + 4*top_right + 2*bottom_left + 1*bottom_right`` over the four pixels around it,
    which is what ``surface_distance`` gets from correlating with ``[[8, 4], [2, 1]]``.
    Codes 1..14 are boundary elements; 0 and 15 lie outside or inside the object.
    """
    n, h, w = masks.shape
    padded = torch.zeros(n, h + 2, w + 2, dtype=torch.uint8, device=masks.device)
    padded[:, 1:-1, 1:-1] = masks
    return 8 * padded[:, :-1, :-1] + 4 * padded[:, :-1, 1:] + 2 * padded[:, 1:, :-1] + padded[:, 1:, 1:]


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


def _column_distances(targets: torch.Tensor) -> torch.Tensor:
    """``g[n, i, j]``: row distance from ``(i, j)`` to the nearest target in column ``j`` (int32)."""
    h = targets.shape[1]
    rows = torch.arange(h, dtype=torch.int32, device=targets.device).view(1, h, 1)
    above = torch.where(targets, rows, -_FAR).cummax(1).values
    below = torch.where(targets, rows, 2 * _FAR).flip(1).cummin(1).values.flip(1)
    return torch.minimum(rows - above, below - rows).clamp_max(_FAR)


def _row_pass(g_rows: torch.Tensor, j: torch.Tensor, sy: torch.Tensor, sx: torch.Tensor, half: int | None) -> torch.Tensor:
    """Minimum squared distance over the columns ``j - half .. j + half`` (all columns if ``half`` is None)."""
    w = g_rows.shape[1]
    if half is None:
        cols = torch.arange(w, device=j.device).expand(len(j), w)
    else:
        cols = j[:, None] + torch.arange(-half, half + 1, device=j.device)
    inside = (cols >= 0) & (cols < w)
    g = g_rows.gather(1, cols.clamp(0, w - 1)).double() * sy[:, None]
    dx = (cols - j[:, None]).double() * sx[:, None]
    d2 = g * g + dx * dx
    return d2.masked_fill(~inside, math.inf).amin(1)


def nearest_squared_distances(
    queries: torch.Tensor, targets: torch.Tensor, spacing: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact squared distance from every query element to the nearest target element.

    Parameters
    ----------
    queries, targets
        Bool ``[N, h, w]``: query and target elements of N independent images.
    spacing
        Float64 ``[N, 2]``, ``(sy, sx)`` per image, on the masks' device.

    Returns
    -------
    image, d2
        ``image[q]`` is the image index of query ``q`` (queries in row-major order per image) and
        ``d2[q]`` its squared distance (float64). Images without targets give huge, finite values;
        the caller treats them by its empty-mask rule.

    Examples
    --------
    >>> q = torch.zeros(1, 4, 4, dtype=torch.bool); q[0, 0, 0] = True
    >>> t = torch.zeros(1, 4, 4, dtype=torch.bool); t[0, 3, 2] = True
    >>> nearest_squared_distances(q, t, torch.tensor([[1.0, 0.5]], dtype=torch.float64))[1].tolist()
    [10.0]
    """
    image, i, j = queries.nonzero(as_tuple=True)
    g = _column_distances(targets)
    w = g.shape[2]
    d2 = torch.empty(len(image), dtype=torch.float64, device=queries.device)
    sy_all, sx_all = spacing[:, 0], spacing[:, 1]
    pending = torch.arange(len(image), device=queries.device)
    for half in (*(h for h in _WINDOWS if 2 * h + 1 < w), None):
        width = w if half is None else 2 * half + 1
        still = []
        for block in pending.split(max(1, _BLOCK // width)):
            n = image[block]
            sx = sx_all[n]
            best = _row_pass(g[n, i[block]], j[block], sy_all[n], sx, half)
            d2[block] = best
            if half is not None:
                # Exact once no column outside the window can be closer than the best inside it.
                outside = (half + 1) * sx
                still.append(block[best > outside * outside])
        if half is None or not still:
            break
        pending = torch.cat(still)
        if len(pending) == 0:
            break
    return image, d2


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
    length = int(count.max()) if n else 0
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
        codes = neighbour_codes(torch.cat([pred, target]))
        elements = (codes != 0) & (codes != 15)
        table = contour_length_table(spacing).to(pred.device).repeat(2, 1)
        weight_of = table.gather(1, codes.flatten(1).long()).view(codes.shape)
    else:
        elements = edge_pixels(torch.cat([pred, target]))
        weight_of = None
    both_spacing = spacing.repeat(2, 1)
    # Queries of the first half look at targets of the second half and vice versa.
    swapped = torch.cat([elements[n:], elements[:n]])
    image, d2 = nearest_squared_distances(elements, swapped, both_spacing)
    d = d2.sqrt()
    if spec.distance_dtype == "float32":
        d = d.float().double()
    weights = weight_of[elements] if weight_of is not None else torch.ones_like(d)
    from_pred = image < n
    by_weight = weight_of is not None
    pd, pw, pc = _padded_rows(image[from_pred], d[from_pred], weights[from_pred], n, by_weight)
    td, tw, tc = _padded_rows(image[~from_pred] - n, d[~from_pred], weights[~from_pred], n, by_weight)
    return SurfaceDistances(pd, pw, pc, td, tw, tc)


def _row_totals(cumulative: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Row sums read off a cumulative sum at each row's last element.

    Unlike ``sum(1)``, whose summation order depends on the padded row length, this gives the same
    bits for a case whatever batch it is computed in.
    """
    if cumulative.shape[1] == 0:
        return cumulative.new_zeros(len(cumulative))
    return cumulative.gather(1, (count - 1).clamp_min(0)[:, None]).squeeze(1)


def _weighted_percentile(d: torch.Tensor, w: torch.Tensor, count: torch.Tensor, q: float) -> torch.Tensor:
    """DeepMind: the first distance whose cumulative weight share reaches ``q`` (no interpolation)."""
    cum = w.cumsum(1)
    total = _row_totals(cum, count)[:, None]
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


def _directed_max(d: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    last = (count - 1).clamp_min(0)
    return d.gather(1, last[:, None]).squeeze(1) if d.shape[1] else torch.zeros_like(count, dtype=torch.float64)


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
        return torch.maximum(_directed_max(pd, pc), _directed_max(td, tc))
    if name == "hd95":
        q = percentile / 100.0
        if spec.percentile == "pooled-linear":
            pooled = torch.cat([pd, td], 1).sort(1).values
            return _linear_percentile(pooled, pc + tc, q)
        if spec.percentile == "per-direction-linear-float32":
            return torch.maximum(_linear_percentile_float32(pd, pc, q), _linear_percentile_float32(td, tc, q))
        return torch.maximum(_weighted_percentile(pd, pw, pc, q), _weighted_percentile(td, tw, tc, q))
    def total(x: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        return _row_totals(x.cumsum(1), count)

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
