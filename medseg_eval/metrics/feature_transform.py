"""Exact squared distance from query points to the nearest of a set of targets, by a compiled
separable transform evaluated only at the queries.

For the targets ``T`` of one image, let ``g(r, c')`` be the distance along column ``c'`` from row
``r`` to the nearest target in that column. The squared distance from a query ``(r, c)`` is then
``min_c' (sx * (c - c'))**2 + (sy * g(r, c'))**2`` (Saito & Toriwaki 1994; Meijster et al. 2000),
exactly. The first pass costs no more than the box's pixels: the targets sorted by column, and a
pointer per column that moves down the rows. The second pass runs only on the rows that hold queries:
the lower
envelope of the parabolas ``c -> (sx * (c - c'))**2 + (sy * g(r, c'))**2`` (Felzenszwalb &
Huttenlocher 2012), read at each query's column. The squared distance is then formed from the integer
offset to the target found, ``(dy * sy)**2 + (dx * sx)**2`` in float64 as SciPy forms its distances,
for the envelope's parabola at the query and its two neighbours, and the smallest is kept. Where
targets lie at the same real distance, the float sums of an inexact spacing (0.1 mm) may differ in the
last bit; the envelope keeps one parabola of those that tie, so the value may be one ulp above the
smallest sum, which the search of :mod:`.distances` and brute force keep (as SciPy's pick could be).

A query near a target is answered without the envelope: it reads the columns on either side of its
own, nearest first, until the next column is farther than the best found (a few columns, where
predictions and ground truths nearly agree). A row's scans may read a quarter as many columns as its
envelope holds, and a single query 32 on each side; then the envelope answers the rest of the row. So
a row costs at most a little more than the cheaper of the two, and an image at most about one pass
over the box, the cost of one distance transform, whatever the masks look like; usually far less.

The kernels are compiled by Numba (:mod:`.compiled`) and answer the images of a batch in as many
threads as torch uses; each image is one thread's, so the values do not depend on the threads.
"""

from __future__ import annotations

import numpy as np

from .compiled import compiled, in_threads

# What a row's scans may spend, in pairs of columns per column of its envelope, before the envelope
# answers the rest of the row: reading a pair costs about what adding a parabola to the envelope does.
SCAN_BUDGET = 0.25
# A query whose scan passes this many columns on each side is far: the envelope answers it and the rest
# of its row (a far row's first query would otherwise spend the row's whole budget).
_FAR_COLUMNS = 32
# Below this many pixels in all boxes a call runs in one thread: waking another costs more than it saves.
_WORTH_PIXELS = 1 << 18


@compiled(inline="always")
def _nearest_row(column_rows, start, below, c, r):  # pragma: no cover - compiled
    """The row of the target nearest row ``r`` in column ``c`` (which holds targets); ``below[c]`` moves
    down the column as the rows ascend."""
    p, end = below[c], start[c + 1]
    while p < end and column_rows[p] < r:
        p += 1
    below[c] = p
    if p == end or (p > start[c] and r - column_rows[p - 1] < column_rows[p] - r):
        return column_rows[p - 1]
    return column_rows[p]


@compiled()
def _image(row, col, sy, sx, top, left, width, targets_start, targets_end, queries, out,
           scan_budget):  # pragma: no cover - compiled
    """Answer the ``queries`` (element indices, row-major) of one image from the targets
    ``targets_start:targets_end`` (row-major), in the box whose top-left is ``(top, left)``."""
    # Targets by column, each column's rows ascending (the targets are listed row-major).
    start = np.zeros(width + 1, np.int64)
    for k in range(targets_start, targets_end):
        start[col[k] - left + 1] += 1
    for c in range(width):
        start[c + 1] += start[c]
    column_rows = np.empty(targets_end - targets_start, np.int64)
    fill = start[:width].copy()
    for k in range(targets_start, targets_end):
        c = col[k] - left
        column_rows[fill[c]] = row[k] - top
        fill[c] += 1
    held = np.empty(width, np.int64)  # the columns that hold targets
    n_held = 0
    for c in range(width):
        if start[c + 1] > start[c]:
            held[n_held] = c
            n_held += 1
    below = start[:width].copy()  # per column: the first target at or below the last row read
    env_col = np.empty(n_held, np.int64)  # a row's lower envelope: its parabolas' columns and target rows,
    env_row = np.empty(n_held, np.int64)
    env_height = np.empty(n_held, np.float64)
    env_from = np.empty(n_held + 1, np.float64)  # and where each starts
    sx2 = sx * sx
    q, n_queries = 0, len(queries)
    while q < n_queries:
        r = row[queries[q]] - top
        k = -1  # the row's envelope: none yet
        j = spent = 0
        while q < n_queries and row[queries[q]] - top == r:
            e = queries[q]
            q += 1
            c = col[e] - left
            best = np.inf
            if k < 0:
                # Near a target, a few columns settle it: a column ``d`` away holds nothing nearer than
                # ``(d * sx)**2``, formed as the sums below form it. Past the row's budget, or past
                # ``_FAR_COLUMNS``, the envelope answers this query and the rest of the row.
                if start[c + 1] > start[c]:
                    dy = (_nearest_row(column_rows, start, below, c, r) - r) * sy
                    best = dy * dy
                d = 1
                while spent < scan_budget * n_held and d <= _FAR_COLUMNS:
                    dx = d * sx
                    if dx * dx >= best:
                        break
                    spent += 1
                    if c >= d and start[c - d + 1] > start[c - d]:
                        dy = (_nearest_row(column_rows, start, below, c - d, r) - r) * sy
                        best = min(best, dy * dy + dx * dx)
                    if c + d < width and start[c + d + 1] > start[c + d]:
                        dy = (_nearest_row(column_rows, start, below, c + d, r) - r) * sy
                        best = min(best, dy * dy + dx * dx)
                    d += 1
                dx = d * sx
                if dx * dx >= best:
                    out[e] = best
                    continue
                k = _envelope(column_rows, start, below, held, n_held, r, sy, sx2, env_col, env_row, env_height,
                              env_from)
            while env_from[j + 1] <= c:
                j += 1
            for i in range(max(j - 1, 0), min(j + 2, k + 1)):
                dy = (env_row[i] - r) * sy
                dx = (env_col[i] - c) * sx
                best = min(best, dy * dy + dx * dx)
            out[e] = best


@compiled()
def _envelope(column_rows, start, below, held, n_held, r, sy, sx2, env_col, env_row, env_height,
              env_from):  # pragma: no cover - compiled
    """Build row ``r``'s lower envelope of the parabolas ``c -> sx2 * (c - c')**2 + (sy * g(r, c'))**2``
    of the columns that hold targets (Felzenszwalb & Huttenlocher); return its last index."""
    k = -1
    for i in range(n_held):
        c = held[i]
        target = _nearest_row(column_rows, start, below, c, r)
        dy = (target - r) * sy
        height = dy * dy
        if k < 0:
            k = 0
            env_from[0] = -np.inf
        else:
            while True:
                v = env_col[k]
                s = ((height + sx2 * c * c) - (env_height[k] + sx2 * v * v)) / (2.0 * sx2 * (c - v))
                if s > env_from[k]:
                    break
                k -= 1
            k += 1
            env_from[k] = s
        env_col[k], env_row[k], env_height[k] = c, target, height
    env_from[k + 1] = np.inf
    return k


@compiled()
def _images(tasks, row, col, spacing, top, left, width, targets_start, targets_end, query_start, query_end,
            queries, out, scan_budget):  # pragma: no cover - compiled
    for i in tasks:
        _image(row, col, spacing[i, 0], spacing[i, 1], top[i], left[i], width[i], targets_start[i],
               targets_end[i], queries[query_start[i]:query_end[i]], out, scan_budget)


def nearest_squared_distances(row: np.ndarray, col: np.ndarray, spacing: np.ndarray, top: np.ndarray,
                              left: np.ndarray, width: np.ndarray, targets_start: np.ndarray,
                              targets_end: np.ndarray, query_start: np.ndarray, query_end: np.ndarray,
                              queries: np.ndarray, out: np.ndarray, scan_budget: float = SCAN_BUDGET) -> None:
    """Write into ``out[e]``, for each query element ``e``, the exact squared distance to the nearest target
    of its image's task.

    Parameters
    ----------
    row, col
        Int64 position of every element (targets and queries of all tasks).
    spacing
        Float64 ``[tasks, 2]``: each task's ``(sy, sx)``.
    top, left, width
        Int64 per task: its box (every target and query lies inside).
    targets_start, targets_end
        Int64 per task: its targets are elements ``targets_start:targets_end``, listed row-major.
    query_start, query_end
        Int64 per task: its queries are ``queries[query_start:query_end]``, element indices listed
        row-major.
    queries
        Int64 element indices.
    out
        Float64 per element: where the squared distances go.
    scan_budget
        What a row's scans may read, in pairs of columns per column of the row's lower envelope, before
        the envelope answers the rest of the row (0: every row by its envelope; ``inf``: no limit but
        the one on a single query, 32 columns each side). Only the time depends on it (and, where
        targets tie at an inexact spacing, which tied value of one ulp apart is kept).

    Examples
    --------
    >>> row, col = np.array([0, 3, 1]), np.array([0, 2, 4])     # targets (0, 0) and (3, 2); query (1, 4)
    >>> out = np.zeros(3)
    >>> nearest_squared_distances(row, col, np.array([[1.0, 0.5]]), *(np.array([v]) for v in (0, 0, 5, 0, 2, 0, 1)),
    ...                           np.array([2]), out)
    >>> float(out[2])   # (1 row * 1.0)**2 + (4 columns * 0.5)**2 to (0, 0); (2 * 1.0)**2 + (2 * 0.5)**2 to (3, 2)
    5.0
    """
    # A task's box, rows times columns, bounds its work; its rows end at its last query's. Each task
    # writes only its own queries' elements of ``out``.
    rows = row[queries[query_end - 1]] - top + 1 if len(top) else top
    in_threads(_images, rows * width, row, col, spacing, top, left, width, targets_start, targets_end, query_start,
               query_end, queries, out, float(scan_budget), worth=_WORTH_PIXELS)
