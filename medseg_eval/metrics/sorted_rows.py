"""Each image's distances in ascending order, on the CPU, by a compiled radix sort per image.

The distance metrics read each image's distances sorted (percentiles, and sums in the order the
references add them), and DeepMind orders distances that tie by their contour lengths. A row is sorted
as one 64-bit word per element: the bits where the image's squared distances vary (their offset from
the smallest nonzero one, plus 1, so that 0 stands for distance 0), then the rank of the element's
contour length (:attr:`.Boundaries.weight_rank`), above the element's own index; a stable radix sort
of those bits, least significant digit first, orders the elements by (distance, length) and keeps the
list's order among equals. Squared distances of integer offsets at spacings such as 1 or 0.5 vary in
a few dozen bits, so a row costs two or three passes. Distinct squared distances can share a square
root; where they can (keys a few units of their last bit apart) and lengths are a key, such a run is
put in order of rank again, so every row holds exactly the (distance, weight) pairs, in exactly the
order, that sorting the distances and lengths as pairs gives. CUDA sorts the whole list by torch's
sorts instead (:func:`.surface._padded_rows`); the tests compare the two.
"""

from __future__ import annotations

import numpy as np
import torch

from .compiled import compiled, in_threads

# Rows at most this long are sorted by insertion instead.
_SHORT = 32
# Below this many elements a call runs in one thread: waking another costs more than it saves.
_WORTH_ELEMENTS = 1 << 15


@compiled()
def _rows(tasks, start, count, squared, keys, rank, weights, ranked, d_out, w_out):  # pragma: no cover - compiled
    """Sort the elements ``start[i]:start[i] + count[i]`` of each task ``i`` by ``(keys, rank)``, stably
    (``keys``: the bits of ``squared``), and write their square roots and weights into row ``i`` of
    ``d_out`` and ``w_out``, padded with inf and 0."""
    length = d_out.shape[1]
    for i in tasks:
        m, s = count[i], start[i]
        order = np.empty(m, np.int64)
        key = np.empty(m, np.uint64)
        if m <= _SHORT:
            for j in range(m):
                e, k = s + j, keys[s + j]
                r = rank[e] if ranked else 0
                p = j
                while p > 0 and (key[p - 1] > k or (key[p - 1] == k and ranked and rank[order[p - 1]] > r)):
                    key[p], order[p] = key[p - 1], order[p - 1]
                    p -= 1
                key[p], order[p] = k, e
            step = 0
        else:
            step = _sort_long(s, m, keys, rank, ranked, order, key)
        # Distinct squares whose roots are equal lie a few units of their last bit apart: where every two
        # distinct keys differ by 16 units or more (``step`` of 4 bits), none tie.
        if ranked and step < 4:
            _ties_by_rank(key, order, squared, rank)
        for j in range(m):
            d_out[i, j] = np.sqrt(squared[order[j]])
            w_out[i, j] = weights[order[j]]
        d_out[i, m:length] = np.inf
        w_out[i, m:length] = 0.0


@compiled()
def _by_rank(elements, rank, order):  # pragma: no cover - compiled
    """``elements`` in order of ``rank`` (0..15), stably, into ``order``."""
    at = np.zeros(17, np.int64)
    for e in elements:
        at[rank[e] + 1] += 1
    for r in range(16):
        at[r + 1] += at[r]
    for e in elements:
        order[at[rank[e]]] = e
        at[rank[e]] += 1


@compiled()
def _sort_long(s, m, keys, rank, ranked, order, key):  # pragma: no cover - compiled
    """Sort the elements ``s:s + m`` by ``(keys, rank)``, stably, into ``order``, with ``key`` equal where
    their keys are, by a radix sort of one word per element: the bits where its key varies (plus 1, so
    that 0 stands for key 0: elements on the partner's boundary), then its rank, above its own index.
    Returns the lowest bit where two keys differ (two distinct keys differ by a multiple of 2 to its
    power)."""
    low, spread = np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64(0)
    for e in range(s, s + m):
        if keys[e] != 0:
            low = min(low, keys[e])
    for e in range(s, s + m):
        if keys[e] != 0:
            spread |= keys[e] - low
    lowest, highest = 0, 0
    if spread != 0:
        while (spread >> np.uint64(lowest)) & np.uint64(1) == 0:
            lowest += 1
        highest = 64
        while (spread >> np.uint64(highest - 1)) & np.uint64(1) == 0:
            highest -= 1
    rank_bits = 4 if ranked else 0
    index_bits, bits = 0, highest - lowest + 1 + rank_bits
    while (1 << index_bits) < m:
        index_bits += 1
    if index_bits + bits > 64:  # keys of many orders of magnitude at full precision: keys and indices apart
        if ranked:
            _by_rank(np.arange(s, s + m), rank, order)
        else:
            order[:] = np.arange(s, s + m)
        for j in range(m):
            key[j] = keys[order[j]]
        _radix(key, order, 0, 64)
        return 0
    words = np.empty(m, np.uint64)
    for j in range(m):
        k = keys[s + j]
        word = ((k - low) >> np.uint64(lowest)) + np.uint64(1) if k != 0 else np.uint64(0)
        if ranked:
            word = (word << np.uint64(4)) | np.uint64(rank[s + j])
        words[j] = (word << np.uint64(index_bits)) | np.uint64(j)
    _radix(words, np.empty(0, np.int64), index_bits, bits)
    mask = np.uint64((1 << index_bits) - 1)
    for j in range(m):
        order[j] = s + (words[j] & mask)
        key[j] = words[j] >> np.uint64(index_bits + rank_bits)
    return lowest


@compiled()
def _radix(key, order, lowest, bits):  # pragma: no cover - compiled
    """Sort ``key`` (and ``order`` with it, unless empty) in place, stably, by its bits ``lowest`` to
    ``lowest + bits``, in digits of up to 12 bits, least significant first."""
    m = len(key)
    carry = len(order) > 0
    if m == 0 or bits == 0:
        return
    widest = 8 if m < 4096 else 12
    passes = -(-bits // widest)
    width = -(-bits // passes)
    mask = np.uint64((1 << width) - 1)
    counts = np.zeros((passes, (1 << width) + 1), np.int64)
    for j in range(m):
        v = key[j] >> np.uint64(lowest)
        for p in range(passes):
            counts[p, ((v >> np.uint64(p * width)) & mask) + 1] += 1
    key_from, order_from = key, order
    key_to, order_to = np.empty_like(key), np.empty_like(order)
    moved = 0
    for p in range(passes):
        at = counts[p]
        if at[((key[0] >> np.uint64(lowest + p * width)) & mask) + 1] == m:
            continue  # a digit every key shares
        moved += 1
        for v in range(1 << width):
            at[v + 1] += at[v]
        shift = np.uint64(lowest + p * width)
        for j in range(m):
            v = (key_from[j] >> shift) & mask
            t = at[v]
            at[v] = t + 1
            key_to[t] = key_from[j]
            if carry:
                order_to[t] = order_from[j]
        key_from, key_to = key_to, key_from
        order_from, order_to = order_to, order_from
    if moved % 2:
        key[:] = key_from
        if carry:
            order[:] = order_from


@compiled()
def _ties_by_rank(key, order, squared, rank):  # pragma: no cover - compiled
    """Put each run of elements whose keys differ but whose square roots are equal in order of rank, stably."""
    m, j = len(key), 1
    previous = np.sqrt(squared[order[0]]) if m else 0.0
    while j < m:
        if key[j] != key[j - 1]:
            d = np.sqrt(squared[order[j]])
            if d == previous:
                first, end = j - 1, j + 1
                while first > 0 and np.sqrt(squared[order[first - 1]]) == d:
                    first -= 1
                while end < m and np.sqrt(squared[order[end]]) == d:
                    end += 1
                _by_rank(order[first:end].copy(), rank, order[first:end])
                j, previous = end, d
                continue
            previous = d
        j += 1


def sorted_rows(image: torch.Tensor, squared: torch.Tensor, weights: torch.Tensor, n: int,
                weight_rank: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distances (square roots of ``squared``) of each of ``n`` images in one padded row, ascending, with
    their weights: what :func:`.surface._padded_rows` gives, for CPU tensors.

    Parameters
    ----------
    image
        Int64 per element: its image, ``0..n-1``, ascending (the elements are listed by image).
    squared
        Float64 per element, non-negative: its squared distance (``inf`` where none).
    weights
        Float64 per element.
    n
        The number of images (rows).
    weight_rank
        Int16 per element, 0..15: orders the weights (equal ranks, equal weights) of elements whose
        distances tie; None: ties in any order (their weights are equal).

    Returns
    -------
    tuple of torch.Tensor
        Distances ``[n, L]`` padded with ``inf``, weights ``[n, L]`` padded with 0, and each row's length
        (int64 ``[n]``); ``L`` is the longest row's length, at least 1.

    Examples
    --------
    >>> d, w, count = sorted_rows(torch.tensor([0, 0, 0, 1]), torch.tensor([4.0, 1.0, 4.0, 9.0], dtype=torch.float64),
    ...                           torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64), 2,
    ...                           torch.tensor([1, 1, 0, 1], dtype=torch.int16))
    >>> d.tolist(), w.tolist(), count.tolist()
    ([[1.0, 2.0, 2.0], [3.0, inf, inf]], [[2.0, 0.5, 1.0], [1.0, 0.0, 0.0]], [3, 1])
    """
    count = np.bincount(image.numpy(), minlength=n)
    length = max(1, int(count.max()) if n else 0)
    start = np.cumsum(count) - count
    d, w = np.empty((n, length), np.float64), np.empty((n, length), np.float64)
    squared_np = np.ascontiguousarray(squared.numpy())
    ranked = weight_rank is not None
    rank = weight_rank.numpy() if ranked else np.zeros(0, np.int16)
    in_threads(_rows, count + 1, start, count, squared_np, squared_np.view(np.uint64), rank,
               np.ascontiguousarray(weights.numpy()), ranked, d, w, worth=_WORTH_ELEMENTS)
    return torch.from_numpy(d), torch.from_numpy(w), torch.from_numpy(count)
