"""The distance metrics (HD, HD95, ASSD, MASD, NSD) from exact boundary-to-boundary distances.

:mod:`.boundaries` lists each convention's boundary elements, :mod:`.distances` finds each element's
distance to the other boundary, and this module sorts them per image and direction and reduces
them as the convention's reference library does (:mod:`.percentiles`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import compiled
from .boundaries import Boundaries, _gather
from .conventions import CONVENTION_SPECS, EmptyPolicy
from .distances import partner_squared_distances
from .percentiles import _last_in_row, _linear_percentile, _linear_percentile_float32, _nonzero, _weighted_percentile
from .sorted_rows import sorted_rows


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
    # Each row's total weight, added in order (as the cumulative sums the metrics read add).
    pred_total: torch.Tensor
    target_total: torch.Tensor


def _padded_rows(
    image: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, n: int, weight_rank: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter a flat list (grouped by image) into sorted, padded rows ``[n, L]``: by value, and
    values that tie by weight (``weight_rank`` orders each image's weights; None: no weight order).

    The flat list is sorted by stable sorts of integer keys, minor key first: non-negative doubles
    order as their bits do, and torch sorts a flat integer list by radix, several times faster on
    the CPU than it sorts padded float rows (and 16-bit keys faster than 64-bit ones).
    """
    count = torch.bincount(image, minlength=n)
    # At least one (padding) column, so that per-row lookups work when every boundary is empty.
    length = max(1, int(count.max()) if n else 0)
    if weight_rank is not None:
        order = weight_rank.sort(stable=True).indices
        order = _gather(order, _gather(values, order).view(torch.int64).sort(stable=True).indices)
    else:
        order = values.view(torch.int64).sort(stable=True).indices
    image_key = image.to(torch.int16 if n <= 2**15 else torch.int64)
    order = _gather(order, _gather(image_key, order).sort(stable=True).indices)
    # The list stays grouped by image: element i goes to its image's row, at i minus the image's first
    # index (as one flat index into the padded rows).
    first = count.cumsum(0) - count
    at = torch.arange(len(image), device=image.device) + _gather(torch.arange(n, device=image.device) * length - first,
                                                                 image)
    d = torch.full((n, length), math.inf, dtype=torch.float64, device=image.device)
    wt = torch.zeros((n, length), dtype=torch.float64, device=image.device)
    d.view(-1).index_copy_(0, at, _gather(values, order))
    wt.view(-1).index_copy_(0, at, _gather(weights, order))
    return d, wt, count


def sqrt_rn(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded square root of float64 ``x``, as NumPy's and ``math.sqrt`` give.

    Torch's vectorized CPU kernel is one ulp off for about 1% of inputs, enough to move a distance
    that equals the NSD tolerance across it; CUDA's float64 ``sqrt`` rounds correctly.

    Examples
    --------
    >>> import math
    >>> sqrt_rn(torch.full((32,), 149.0, dtype=torch.float64))[-1].item() == math.sqrt(149)
    True
    """
    if x.device.type != "cpu":
        return x.sqrt()
    return torch.from_numpy(np.sqrt(x.contiguous().numpy()))


def merged_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two stacks of ascending rows ``[N, La]``, ``[N, Lb]`` merged into ascending rows ``[N, La + Lb]``:
    what sorting their concatenation gives, in two binary searches per element instead of a sort.

    Each element goes to its index in its row plus the number of the other row's elements before
    it: those of ``b`` below it for ``a``'s, those of ``a`` up to it for ``b``'s (ties: ``a`` first).

    Examples
    --------
    >>> a = torch.tensor([[0.0, 2.0, 2.0, math.inf]]); b = torch.tensor([[1.0, 2.0, 5.0]])
    >>> merged_rows(a, b).tolist()
    [[0.0, 1.0, 2.0, 2.0, 2.0, 5.0, inf]]
    """
    at_a = torch.arange(a.shape[1], device=a.device) + torch.searchsorted(b, a)
    at_b = torch.arange(b.shape[1], device=b.device) + torch.searchsorted(a, b, right=True)
    out = torch.empty(len(a), a.shape[1] + b.shape[1], dtype=a.dtype, device=a.device)
    return out.scatter_(1, at_a, a).scatter_(1, at_b, b)


def distances_between(b: Boundaries, convention: str) -> SurfaceDistances:
    """The distances from each boundary of ``b``'s pairs to the other, sorted as the convention needs.

    Examples
    --------
    >>> from medseg_eval.metrics.boundaries import boundaries
    >>> p = torch.zeros(1, 8, 8, dtype=torch.bool); p[0, 2:5, 2:5] = True
    >>> t = torch.zeros(1, 8, 8, dtype=torch.bool); t[0, 2:5, 3:6] = True
    >>> b = boundaries(p, t, torch.ones(1, 2, dtype=torch.float64), "medpy")
    >>> sd = distances_between(b, "medpy")
    >>> sd.pred_to_target[0, :int(sd.pred_count[0])].tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """
    n = b.pairs
    spec = CONVENTION_SPECS[convention]
    d2 = partner_squared_distances(b)
    # DeepMind sorts (distance, length) pairs lexicographically.
    rank = b.weight_rank if spec.boundary == "surfels" else None
    split = int(torch.searchsorted(b.image, n))  # elements are listed by image, predictions' first
    rows = []
    for part, first in ((slice(0, split), 0), (slice(split, None), n)):
        image, weight, part_rank = b.image[part] - first, b.weight[part], None if rank is None else rank[part]
        if compiled.used(d2):
            rows.append(sorted_rows(image, d2[part], weight, n, part_rank))
        else:
            rows.append(_padded_rows(image, sqrt_rn(d2[part]), weight, n, part_rank))
    (pd, pw, pc), (td, tw, tc) = rows
    if spec.distance_dtype == "float32":  # rounding keeps the rows ascending
        pd, td = pd.float().double(), td.float().double()
    return SurfaceDistances(pd, pw, pc, td, tw, tc, _last_in_row(pw.cumsum(1), pc), _last_in_row(tw.cumsum(1), tc))


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
        ``"hausdorff"``, ``"hd95"`` (at ``percentile``), ``"assd"``, ``"masd"``, or ``"nsd"`` and
        ``"boundary_f1"`` (at ``tolerance``, in spacing units).

    ``"boundary_f1"`` is the boundary F-score: the harmonic mean of the shares of the predicted and of
    the true boundary (weighted as the convention weighs its elements) lying within ``tolerance`` of
    the other boundary, as Csurka et al. (BMVC 2013) define the BF score and Perazzi et al. (CVPR 2016)
    the boundary F-measure; 0 where neither boundary is within reach. Their tolerances, a fraction of
    the image diagonal (0.75% and 0.8%), are a ``tolerance`` the caller computes. NSD pools the same
    two counts instead.
    """
    spec = CONVENTION_SPECS[convention]
    pd, pw, pc = sd.pred_to_target, sd.pred_weights, sd.pred_count
    td, tw, tc = sd.target_to_pred, sd.target_weights, sd.target_count
    if name == "hausdorff":
        return torch.maximum(_last_in_row(pd, pc), _last_in_row(td, tc))
    if name == "hd95":
        q = percentile / 100.0
        if spec.percentile == "pooled-linear":
            return _linear_percentile(merged_rows(pd, td), pc + tc, q)
        if spec.percentile == "per-direction-linear-float32":
            return torch.maximum(_linear_percentile_float32(pd, pc, q), _linear_percentile_float32(td, tc, q))
        return torch.maximum(_weighted_percentile(pd, pw, pc, q), _weighted_percentile(td, tw, tc, q))

    def total(x: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        return _last_in_row(x.cumsum(1), count)

    # Rows with an empty boundary divide by 1 here; the empty-mask policy replaces them.
    p_total, t_total = sd.pred_total, sd.target_total
    if name in ("nsd", "boundary_f1"):
        if spec.boundary == "edge-pixels":
            # MONAI's NSD (MedPy has none, so its convention takes MONAI's): float32 distances
            # compared with the tolerance cast to float32.
            pd, td, tolerance = pd.float(), td.float(), float(np.float32(tolerance))
        p_within, t_within = total((pd <= tolerance) * pw, pc), total((td <= tolerance) * tw, tc)
        if name == "nsd":
            return (p_within + t_within) / _nonzero(p_total + t_total)
        precision, recall = p_within / _nonzero(p_total), t_within / _nonzero(t_total)
        return 2 * precision * recall / _nonzero(precision + recall)
    # Padding carries weight 0; zero its inf distances so that the products stay finite.
    p_sum = total(pd.masked_fill(pw == 0, 0.0) * pw, pc)
    t_sum = total(td.masked_fill(tw == 0, 0.0) * tw, tc)
    if name == "assd":
        return (p_sum + t_sum) / _nonzero(p_total + t_total)
    if name == "masd":
        return 0.5 * (p_sum / _nonzero(p_total) + t_sum / _nonzero(t_total))
    raise KeyError(name)


def apply_empty_policy(
    name: str, values: torch.Tensor, sd: SurfaceDistances, diagonal: torch.Tensor, empty: EmptyPolicy
) -> torch.Tensor:
    """Replace the values of image pairs where either boundary is empty, as ``empty`` says."""
    return empty.apply(name, values, sd.pred_count == 0, sd.target_count == 0, diagonal)
