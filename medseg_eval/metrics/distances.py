"""Exact Euclidean distance from each boundary element to the nearest element of its partner.

Distances are exact and separable (Saito & Toriwaki 1994; Meijster et al. 2000): for the set ``T``
of boundary elements of one mask, let ``g(i', j)`` be the column distance from ``(i', j)`` to the
nearest element of ``T`` in row ``i'``; the squared distance from a query element ``(i, j)`` of the
other boundary is ``min_i' (sy * (i - i'))**2 + (sx * g(i', j))**2``. ``g`` is found only where it is
needed, by a binary search in the sorted list of ``T``'s elements, and only rows that hold elements
of ``T`` are searched. The rows within 1, then 4, of ``i`` settle most queries: their best value is
exact once no other row of ``T`` can be closer. Every other query gets an upper bound from real
elements (the best so far, the nearest element of ``T`` in ``T``'s first and last rows and, when many
queries are still far, in its own column and ``T``'s first and last columns), and one search over the
lines within that bound settles it: along rows, or along columns (the same search on the transposed
images) where fewer columns than rows lie within the bound. That search takes the lines in bands
of 8 and reads the lines of a band only when no bound rules it out: the distance across to the
band plus the distance along to the nearest target in any of its lines is a lower bound for all
its targets, so a far query reads the few bands near its nearest target, not every line within
reach. Squared distances are formed exactly as SciPy's ``distance_transform_edt`` does
(``(dy*sy)**2 + (dx*sx)**2`` in float64, the two terms looked up in per-image tables), and one
square root is taken at the end.

The search runs on CUDA. On the CPU every query is answered by the compiled separable transform of
:mod:`.transform` instead, whose cost never grows with a query's distance from its partner; it forms
the same squared distances, the smallest where several targets tie.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from . import compiled
from .boundaries import Boundaries, _gather
from .transform import transform

# Upper bound of the elements in one [queries, rows] block of the search (memory cap).
_BLOCK = 1 << 20
# Half-widths (rows) of the first searches around each query; most queries end there.
_FIRST_HALF_WIDTHS = (1, 4)
# Lines per band of the last search, whose bands are tested before their lines are searched.
_BAND = 8
# Columns are searched too once more than one element in this many is still open after the first
# searches with a bound reaching beyond this many rows.
_COLUMNS_WORTH = 8
_FAR_ROWS = 16
# Marks "no target row left unsearched": farther than any image.
_FAR = 1 << 24


def _gaps_along_lines(keys: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """Distance along a line from each probe ``line * 2 * length + pos`` to the nearest target on that
    line; ``length`` or more if none.

    ``keys`` lists the targets as ``line * 2 * length + pos``, ascending, between two sentinels a line
    beyond either end; lines are the rows (or columns) of all images. A binary search puts each probe
    between its neighbours left and right. Lines lie ``2 * length`` apart, so a neighbour on another
    line is always more than ``length`` away and one on the probe's line always less: no test of
    which line a neighbour is on is needed.
    """
    at = torch.searchsorted(keys, probe)
    return torch.minimum(_gather(keys, at) - probe, probe - _gather(keys, at - 1))


def _with_sentinels(keys: torch.Tensor, lines: int, length: int) -> torch.Tensor:
    """Sorted keys ``line * 2 * length + pos`` between the sentinels of :func:`_gaps_along_lines`: one
    on line ``-1`` and one on line ``lines``."""
    sentinel = keys.new_tensor([-2 * length, lines * 2 * length])
    return torch.cat([sentinel[:1], keys, sentinel[1:]])


def partner_squared_distances(b: Boundaries) -> torch.Tensor:
    """Exact squared distance from every boundary element to the nearest element of its partner.

    Parameters
    ----------
    b
        The boundary elements of N mask pairs; image ``i`` and image ``(i + N) mod 2N`` are partners.

    Returns
    -------
    torch.Tensor
        Float64 squared distance per element. Elements whose partner has none get ``inf``; the
        caller treats them by its empty-mask rule.

    Examples
    --------
    >>> from medseg_eval.metrics.boundaries import boundaries
    >>> p = torch.zeros(1, 4, 4, dtype=torch.bool); p[0, 0, 0] = True
    >>> t = torch.zeros(1, 4, 4, dtype=torch.bool); t[0, 3, 2] = True
    >>> b = boundaries(p, t, torch.tensor([[1.0, 0.5]], dtype=torch.float64), "medpy")
    >>> partner_squared_distances(b).tolist()
    [10.0, 10.0]
    """
    d2 = torch.full((len(b.image),), math.inf, dtype=torch.float64, device=b.image.device)
    pending = _open_queries(b, d2)
    if compiled.used(d2):
        transform(b, pending, d2)
        return d2
    if len(pending) == 0:
        return d2
    rows = _LineSearch.build(b.image, b.row, b.col, b.spacing, b.shape, transposed=False)
    pending = _search_near_rows(b, rows, pending, d2)
    if len(pending):
        _search_far(b, rows, pending, d2)
    return d2


def _open_queries(b: Boundaries, d2: torch.Tensor) -> torch.Tensor:
    """Write 0 into ``d2`` for the elements shared with the partner's boundary (often about half) and
    return the others whose partner has elements (the rest keep ``inf``)."""
    d2.masked_fill_(b.on_partner, 0.0)
    # Per image, whether its partner (image (i + N) mod 2N) holds elements; then per element.
    partner_has = (torch.bincount(b.image, minlength=2 * b.pairs) > 0).roll(b.pairs)
    return (~b.on_partner & _gather(partner_has, b.image)).nonzero().flatten()


def _search_near_rows(b: Boundaries, rows: _LineSearch, pending: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
    """Search the rows within 1, then 4, of each pending query, writing the best found into ``d2``; return
    the queries still open: those that a target row not yet searched could hold a closer target for.
    """
    best = torch.full((len(pending),), math.inf, dtype=torch.float64, device=d2.device)
    searched = 0
    for half in _FIRST_HALF_WIDTHS:
        i, lo, hi = (_gather(x, pending) for x in (rows.line, rows.first, rows.last))
        # The lines within `half` not searched before.
        offsets = torch.arange(-half, half + 1, device=d2.device, dtype=i.dtype)
        offsets = offsets[offsets.abs() > searched] if searched else offsets
        best = torch.minimum(best, rows.min_near(pending, offsets))
        searched = half
        # Exact once the nearest target row left unsearched (if any) is no closer than the best.
        nearest_above = torch.minimum(hi, i - half - 1)
        nearest_below = torch.maximum(lo, i + half + 1)
        above = torch.where(nearest_above >= lo, i - nearest_above, _FAR)
        below = torch.where(nearest_below <= hi, nearest_below - i, _FAR)
        unsearched = torch.minimum(above, below).double() * _gather(rows.step_across, _gather(b.image, pending))
        d2[pending] = best
        open_ = best > unsearched * unsearched
        if not open_.any():
            return pending[:0]
        pending, best = pending[open_], best[open_]
    return pending


def _search_far(b: Boundaries, rows: _LineSearch, pending: torch.Tensor, d2: torch.Tensor) -> None:
    """Settle the queries left open by the near rows: an upper bound from real targets, then one search over
    the lines within it, along rows or along columns, whichever has fewer lines for the query."""
    best = d2[pending]
    searches = [rows]
    # Sorting every element by column pays off where many queries are far: those that are not settle in
    # a few bands of rows whichever way their nearest target lies.
    far = best > (_FAR_ROWS * _gather(rows.step_across, _gather(b.image, pending))) ** 2
    if int(far.sum()) * _COLUMNS_WORTH > len(b.image):
        searches.append(_LineSearch.build(b.image, b.row, b.col, b.spacing, b.shape, transposed=True))
        # The nearest target in the query's column is a real one (its row was searched).
        best = torch.minimum(best, searches[1].gap_squared(pending, _gather(searches[1].line, pending)))
    # Upper bounds from real targets: the nearest in the first and last rows (and columns) of targets.
    for search in searches:
        for edge in (_gather(search.first, pending), _gather(search.last, pending)):
            best = torch.minimum(best, search.gap_squared(pending, edge))
    # Lines farther than sqrt(best) cannot hold a closer target: search all the others.
    spans = []
    for search in searches:
        line, step = _gather(search.line, pending), _gather(search.step_across, _gather(b.image, pending))
        reach = (best.sqrt() / step).ceil().clamp_max(search.lines).to(line.dtype)
        spans.append((torch.maximum(line - reach, _gather(search.first, pending)),
                      torch.minimum(line + reach, _gather(search.last, pending))))
    lines = [bottom - top for top, bottom in spans]
    fewest = (lines[-1] < lines[0]).long()  # 1 (columns) where searched and fewer; rows on a tie
    for k, (search, (top, bottom)) in enumerate(zip(searches, spans)):
        chosen = (fewest == k).nonzero().flatten()
        if len(chosen):
            best[chosen] = search.min_over_bands(pending[chosen], top[chosen], bottom[chosen], best[chosen])
    d2[pending] = best


@dataclass(frozen=True)
class _LineSearch:
    """Query and target elements of one batch, prepared for searches along rows (or along columns).

    Along columns, the images are searched as if transposed: lines are columns, positions rows.
    """

    keys: torch.Tensor  # targets as (image * lines + line) * 2 * length + position, ascending, between sentinels
    image: torch.Tensor  # per element (in the row-major order of the elements): its image, partner, line, position
    partner: torch.Tensor
    line: torch.Tensor
    position: torch.Tensor
    origin: torch.Tensor  # per element: its own key, (image * lines + line) * 2 * length + position
    first: torch.Tensor  # per element: the first and last lines holding its partner's elements
    last: torch.Tensor
    step_across: torch.Tensor  # per image: the spacing across lines (sy along rows)
    # Per image, flat: (d * spacing)**2 for d = -lines..lines lines across, and for d = 0..length-1
    # along a line, then inf (no target on the line). A lookup gives SciPy's float64 values exactly.
    across_squared: torch.Tensor
    along_squared: torch.Tensor
    lines: int
    length: int

    @classmethod
    def build(cls, image: torch.Tensor, row: torch.Tensor, col: torch.Tensor, spacing: torch.Tensor, shape: tuple[int, int],
              *, transposed: bool) -> _LineSearch:
        """The search over the elements ``image, row, col`` (row-major order) of ``2N`` images of ``shape``,
        along rows or along columns."""
        n2 = len(spacing)
        n = n2 // 2
        h, w = shape
        line, position = (col, row) if transposed else (row, col)
        lines, length = (w, h) if transposed else (h, w)
        # int32 indices where they fit (keys up to 2 * n2 * lines * length): the search is bound by memory traffic.
        index_dtype = torch.int32 if n2 * (h + 2) * (w + 2) < 2**30 else torch.int64
        partner = torch.where(image < n, image + n, image - n)
        # Targets listed under the queries' image (their partner's).
        keys = ((partner * lines + line) * (2 * length) + position).to(index_dtype)
        if transposed:
            keys = keys.sort().values
        else:  # elements are listed by image, row-major: ground truths' (the predictions' targets) first
            split = int(torch.searchsorted(image, n))
            keys = torch.cat([keys[split:], keys[:split]])
        keys = _with_sentinels(keys, n2 * lines, length)
        # Each image's targets are one run of the sorted keys: its first and last keys give the first and
        # last lines holding targets (none: lines and -1).
        count = torch.bincount(partner, minlength=n2)
        end = count.cumsum(0)  # the run's last key, after the sentinel
        ends = torch.stack([_gather(keys, end - count + 1), _gather(keys, end)]) // (2 * length) % lines
        first, last = torch.where(count > 0, ends, torch.tensor([[lines], [-1]], device=image.device))
        steps = spacing.flip(1) if transposed else spacing
        across = torch.arange(-lines, lines + 1, device=image.device, dtype=torch.float64) * steps[:, :1]
        along = torch.arange(length + 1, device=image.device, dtype=torch.float64) * steps[:, 1:]
        along[:, length] = math.inf
        image, line, position = image.to(index_dtype), line.to(index_dtype), position.to(index_dtype)
        return cls(keys=keys, image=image, partner=partner.to(index_dtype), line=line, position=position,
                   origin=(image * lines + line) * (2 * length) + position,
                   first=_gather(first.to(index_dtype), image), last=_gather(last.to(index_dtype), image),
                   step_across=steps[:, 0], across_squared=(across * across).flatten(),
                   along_squared=(along * along).flatten(), lines=lines, length=length)

    def gap_squared(self, queries: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
        """Squared distance from each query to the nearest target on one line each (inf if none)."""
        return self._probe(queries, line - _gather(self.line, queries))

    def min_near(self, queries: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Smallest squared distance from each query to a target on the lines ``line + offsets`` (inf if none).

        Lines outside the first and last lines of the query's targets are searched as the nearer of
        those two instead: a target found there is a real one, and one line searched twice changes no
        minimum, so no line needs to be masked.
        """
        out = torch.empty(len(queries), dtype=torch.float64, device=queries.device)
        step = max(1, _BLOCK // len(offsets))
        for start in range(0, len(queries), step):
            q = queries[start:start + step]
            line = _gather(self.line, q)
            delta = offsets.clamp((_gather(self.first, q) - line)[:, None], (_gather(self.last, q) - line)[:, None])
            out[start:start + step] = self._probe(q[:, None], delta).amin(1)
        return out

    def min_over_lines(self, queries: torch.Tensor, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        """Smallest squared distance from each query to a target on lines ``top..bottom`` (inf if none).

        Each query's lines lie within the first and last lines of its targets, and hold at least one.
        For a few lines per query (one band): one ``[queries, lines]`` block, as wide as the most
        lines, where a query with fewer searches its last line again (which changes no minimum);
        cut into pieces to bound memory, in the queries' order, which keeps the binary searches local.
        """
        width = int((bottom - top).max()) + 1 if len(queries) else 1
        out = torch.empty(len(queries), dtype=torch.float64, device=queries.device)
        step = max(1, _BLOCK // width)
        offsets = torch.arange(width, device=top.device, dtype=top.dtype)
        for start in range(0, len(queries), step):
            part = slice(start, start + step)
            line = _gather(self.line, queries[part])
            delta = ((top[part] - line)[:, None] + offsets).clamp_max((bottom[part] - line)[:, None])
            out[part] = self._probe(queries[part, None], delta).amin(1)
        return out

    def min_over_bands(self, queries: torch.Tensor, top: torch.Tensor, bottom: torch.Tensor,
                       best: torch.Tensor) -> torch.Tensor:
        """``min(best, min_over_lines(queries, top, bottom))``, searching only the bands of ``_BAND`` lines
        that may hold a target closer than ``best``.

        A band's bound is the squared distance to it across lines plus the nearest target in any of
        its lines along them: no target of the band is closer. Far queries reach many lines, but only
        the few bands around their nearest target pass this test, fewer still once the band of lowest
        bound has been searched.
        """
        bands = -(-self.lines // _BAND)
        # The targets listed by band: (image * bands + line // _BAND) * 2 * length + position, ascending
        # (every element is a target, listed under its partner); _BAND is a power of 2.
        stride = 2 * self.length
        band_keys = ((self.partner * bands + (self.line >> _BAND.bit_length() - 1)) * stride
                     + self.position).sort().values
        band_keys = _with_sentinels(band_keys, len(self.step_across) * bands, self.length)
        first, count = top // _BAND, (bottom // _BAND - top // _BAND + 1).clamp_min(0).long()
        ends = count.cumsum(0)
        total = int(ends[-1]) if len(ends) else 0
        # Every (query, band) pair, listed flat, in groups of queries with about _BLOCK pairs (memory cap).
        cuts = torch.searchsorted(ends, torch.arange(1, total // _BLOCK + 1, device=ends.device) * _BLOCK, right=True)
        pairs = []
        for a, b in itertools.pairwise([0, *cuts.tolist(), len(queries)]):
            base = int(ends[a - 1]) if a else 0
            size = int(ends[b - 1]) - base if b > a else 0
            if size == 0:
                continue
            which = torch.repeat_interleave(torch.arange(a, b, device=ends.device), count[a:b], output_size=size)
            band = (_gather(first, which) + (torch.arange(size, device=ends.device) + base
                                              - _gather(ends - count, which)).to(first.dtype))
            q = _gather(queries, which)
            n, line = _gather(self.image, q), _gather(self.line, q)
            gap = _gaps_along_lines(band_keys, (n * bands + band) * stride + _gather(self.position, q))
            across = torch.maximum(band * _BAND - line, line - band * _BAND - (_BAND - 1)).clamp_min(0)
            bound = (_gather(self.across_squared, n * (2 * self.lines + 1) + self.lines + across)
                     + _gather(self.along_squared, n * (self.length + 1) + gap.clamp_max(self.length)))
            keep = (bound < _gather(best, which)).nonzero().squeeze(1)
            pairs.append((_gather(which, keep), _gather(band, keep), _gather(bound, keep)))
        which, band, bound = (torch.cat(column) for column in zip(*pairs))
        # The band of lowest bound first: its lines mostly hold the nearest target, whose distance
        # then rules out most of the other bands.
        lowest = torch.full_like(best, math.inf).scatter_reduce(0, which, bound, "amin")
        first_round = bound == _gather(lowest, which)

        def search(best: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
            w, b = which[chosen], band[chosen]
            if len(w) == 0:
                return best
            d2 = self.min_over_lines(_gather(queries, w), torch.maximum(_gather(top, w), b * _BAND),
                                     torch.minimum(_gather(bottom, w), b * _BAND + (_BAND - 1)))
            return best.scatter_reduce(0, w, d2, "amin")

        best = search(best, first_round)
        return search(best, ~first_round & (bound < _gather(best, which)))

    def _probe(self, queries: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Squared distance from each query to the nearest target on the line ``delta`` lines from its
        own (inf if none), a line within the first and last lines of its targets; ``queries`` broadcasts
        against ``delta`` (``[Q, 1]`` against ``[Q, L]``: the queries' values are read once)."""
        n = _gather(self.image, queries)
        gap = _gaps_along_lines(self.keys, _gather(self.origin, queries) + delta * (2 * self.length))
        return (_gather(self.across_squared, n * (2 * self.lines + 1) + self.lines + delta)
                + _gather(self.along_squared, n * (self.length + 1) + gap.clamp_max(self.length)))
