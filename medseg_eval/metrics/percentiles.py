"""The percentiles and sums the references' numbers depend on, NumPy- and torch-exact, per padded row."""

from __future__ import annotations

import torch


def _last_in_row(x: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Each row's last valid entry: the maximum of sorted distances, or the total of a cumulative sum.

    Totals read this way, unlike ``sum(1)`` whose summation order depends on the padded row length,
    have the same bits for a case whatever batch it is computed in.
    """
    return x.gather(1, (count - 1).clamp_min(0)[:, None]).squeeze(1)


def _weighted_percentile(d: torch.Tensor, w: torch.Tensor, count: torch.Tensor, q: float) -> torch.Tensor:
    """DeepMind: the first distance whose cumulative weight share reaches ``q`` (no interpolation).

    The shares are ``cumsum / numpy.sum``, with NumPy's summation order: a share that should equal
    ``q`` exactly can land one ulp either side of it, which picks the neighbouring distance. For
    the same reason the cumulative sums are NumPy's sequential ones, and both sums are taken on the
    CPU, whose cumulative sums add in order: a GPU's parallel scan rounds differently.

    NumPy's pairwise total (:func:`_numpy_row_sums`) is formed only for rows where a share lies close
    enough to ``q`` for the total's rounding to decide its side. The sequential total (the cumulative
    sum's last entry) and the pairwise one both lie within ``(n + 32) * 2**-53`` of the exact sum,
    relatively, for ``n`` positive weights (NumPy's runs add at most ``25 + log2(n)`` times in turn), so
    a share farther than twice that from ``q`` lies on the same side of ``q`` whichever divides it.
    """
    w_cpu, count_cpu = w.cpu(), count.cpu()
    cum = w_cpu.cumsum(1)
    share = cum / _nonzero(_last_in_row(cum, count_cpu))[:, None]
    # Twice the two totals' bound, and twice again as a margin for the divisions' rounding.
    rel = 4 * (count_cpu.double() + 64) * 2.0**-53
    # |share - q| <= rel * share where q / (1 + rel) <= share <= q / (1 - rel). Shares ascend along a row, so
    # the shares that close to q are one run, found by two binary searches; the bounds are widened by a
    # further tenth (a row summed as NumPy does that need not be costs only time).
    low = torch.searchsorted(share, (q / (1 + 1.1 * rel))[:, None]).squeeze(1)
    high = torch.searchsorted(share, (q / (1 - 1.1 * rel))[:, None], right=True).squeeze(1)
    rows = (low < torch.minimum(high, count_cpu)).nonzero().squeeze(1)
    if len(rows):
        total = _numpy_row_sums(w_cpu.index_select(0, rows), count_cpu.index_select(0, rows))
        share[rows] = cum.index_select(0, rows) / _nonzero(total)[:, None]
    share = share.to(w.device)
    query = torch.full((len(d), 1), q, dtype=torch.float64, device=d.device)
    index = torch.searchsorted(share, query).squeeze(1)
    index = torch.minimum(index, (count - 1).clamp_min(0))
    return d.gather(1, index[:, None]).squeeze(1)


_PAIRWISE_BLOCK = 128  # NumPy's PW_BLOCKSIZE: runs up to this length are summed with 8 accumulators


def _numpy_row_sums(w: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``numpy.sum(w[i, :count[i]])`` for every row, bit for bit, vectorized over rows.

    NumPy sums a contiguous float64 run by pairwise summation: a run longer than 128 is split
    at ``n // 2`` rounded down to a multiple of 8 and the two halves' sums added; a shorter run is
    summed by 8 interleaved accumulators combined as a tree, then its last ``n % 8`` values one by
    one (a run under 8 values: one by one from 0). The split tree of every row is laid out over
    ``2**depth`` slots, the leaves summed together, and the sums added back up the tree. Adding
    the padding's zeros changes no sum. ``w`` must be on the CPU, whose cumulative sums add in order.

    Examples
    --------
    >>> import numpy as np
    >>> w = torch.rand(3, 1000, dtype=torch.float64); count = torch.tensor([1000, 129, 7])
    >>> want = [float(np.sum(w[i, :c].numpy())) for i, c in enumerate(count.tolist())]
    >>> _numpy_row_sums(w, count).tolist() == want
    True
    """
    rows = len(w)
    padded = torch.cat([w, w.new_zeros(rows, 1)], 1)  # the last column reads as 0 for any index past a run
    zero_column = padded.shape[1] - 1
    start, length = count.new_zeros(rows, 1), count[:, None].clone()
    splits = []
    while bool((length > _PAIRWISE_BLOCK).any()):
        split = length > _PAIRWISE_BLOCK
        half = length // 2
        left = torch.where(split, half - half % 8, length)
        start = torch.stack([start, start + left], 2).flatten(1)
        length = torch.stack([left, torch.where(split, length - left, 0)], 2).flatten(1)
        splits.append(split)

    offset = torch.arange(_PAIRWISE_BLOCK, device=w.device)
    main = torch.where(length >= 8, length - length % 8, 0)  # the part the 8 accumulators take

    def values(stop: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The run values at ``positions`` within each slot, 0 from ``stop`` on."""
        index = start[..., None] + positions
        index = torch.where(positions < stop[..., None], index, zero_column)
        return padded.gather(1, index.flatten(1)).view(*index.shape)

    # The 8 accumulators add their 16 values in turn (a cumulative sum on the CPU adds in order), and
    # are combined as a tree; then the run's last values are added one by one.
    r = values(main, offset).unflatten(-1, (-1, 8)).cumsum(-2)[..., -1, :]  # [rows, slots, 8]
    r = r[..., 0::2] + r[..., 1::2]
    r = r[..., 0::2] + r[..., 1::2]
    leaf = r[..., 0] + r[..., 1]
    rest = values(length, main[..., None] + torch.arange(7, device=w.device))
    leaf = torch.cat([leaf[..., None], rest], -1).cumsum(-1)[..., -1]
    for split in reversed(splits):
        pair = leaf.unflatten(1, (-1, 2))
        leaf = torch.where(split, pair[..., 0] + pair[..., 1], pair[..., 0])
    return leaf[:, 0]


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


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, 1.0)
