"""Boundary elements listed from packed planes on the CPU, by a compiled scan.

:mod:`.boundaries` finds each convention's boundary elements by bitwise operations on whole packed rows
(8 pixels to a byte), on CPU and CUDA alike. Listing them (each set bit's image, row and column, whether
the partner image holds the same element, and DeepMind's contour length) is a scan here: each image's
elements are counted (:func:`.packed_counts.packed_counts`), then its plane is read 8 bytes at a time,
mostly zero words skipped, and each set bit is listed where it is found, so the cost is two reads of
the planes plus a few nanoseconds per element. CUDA lists them by torch's
``nonzero`` and gathers instead (:func:`.boundaries.frame_boundaries`); the tests compare the two.
"""

from __future__ import annotations

import numpy as np
import torch

from .compiled import compiled, in_threads
from .packed_counts import packed_counts

# The index of the lowest set bit of each byte value (8 for 0).
_LOWEST_BIT = np.array([(v & -v).bit_length() - 1 if v else 8 for v in range(256)], np.int64)
# Below this total a call runs in one thread: waking another costs more than it saves.
_WORTH_ELEMENTS = 1 << 16


@compiled(inline="always")
def _bit(plane, at, c):  # pragma: no cover - compiled
    """Bit ``c`` of the packed row that starts at byte ``at`` of ``plane``."""
    return (plane[at + (c >> 3)] >> (c & 7)) & 1


@compiled()
def _list(tasks, plane, words, per_image, per_row, pairs, shift, start, bits, bits_per_image, table, ranks,
          image, row, col, on_partner, weight, weight_rank):  # pragma: no cover - compiled
    """List the set bits of each image of ``plane`` from ``start[i]`` on, row-major; with ``bits`` (the framed
    masks, surfels) also each corner's contour length and its rank, from its 2x2 code."""
    surfels = bits.size > 0
    for i in tasks:
        base = i * per_image
        f, stop, k = base, base + per_image, start[i]
        partner = (pairs if i < pairs else -pairs) * per_image
        while f < stop:
            if f & 7 == 0 and f + 8 <= stop and words[f >> 3] == 0:
                f += 8
                continue
            v = np.int64(plane[f])
            if v:
                r = (f - base) // per_row
                c8 = (f - base - r * per_row) * 8
                theirs = np.int64(plane[f + partner])
                while v:
                    b = _LOWEST_BIT[v]
                    v &= v - 1
                    image[k], row[k], col[k] = i, r, c8 + b - shift
                    on_partner[k] = (theirs >> b) & 1 != 0
                    if surfels:
                        # Corner (r, c) has pixels at rows r, r + 1 and columns c, c + 1 of the frame.
                        c, top = c8 + b, i * bits_per_image + r * per_row
                        code = (8 * _bit(bits, top, c) + 4 * _bit(bits, top, c + 1) + 2 * _bit(bits, top + per_row, c)
                                + _bit(bits, top + per_row, c + 1))
                        weight[k], weight_rank[k] = table[i, code], ranks[i, code]
                    else:
                        weight[k] = 1.0
                    k += 1
            f += 1


def list_elements(elements: torch.Tensor, shift: int, bits: torch.Tensor | None = None,
                  table: torch.Tensor | None = None, ranks: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """Every set bit of packed planes ``[2N, R, B]``: its image, row and column, whether image ``(i + N) mod
    2N`` has it set too, and its weight (and weight rank), listed by image, row-major.

    Parameters
    ----------
    elements
        Uint8 ``[2N, R, B]`` on the CPU: packed boundary elements of the predictions, then the ground truths.
    shift
        Columns to subtract from a bit's column in the packed row (the frame's left margin).
    bits
        For corner elements (DeepMind): the framed masks ``[2N, R + 1, B]``; corner ``(r, c)`` of the
        plane has its four pixels at rows ``r, r + 1`` and columns ``c, c + 1`` there. None: edge pixels,
        weight 1.
    table, ranks
        With ``bits``: float64 ``[2N, 16]``, the contour length of each 2x2 code per image, and int16
        ``[2N, 16]``, each length's rank among its image's 16 (:func:`.boundaries.length_ranks`).

    Returns
    -------
    tuple of torch.Tensor
        ``image, row, col`` (int64), ``on_partner`` (bool), ``weight`` (float64) and ``weight_rank``
        (int16, from ``ranks``; None for edge pixels).

    Examples
    --------
    >>> plane = torch.zeros(2, 1, 2, dtype=torch.uint8); plane[0, 0, 1] = 0b101; plane[1, 0, 1] = 0b100
    >>> image, row, col, on_partner, weight, rank = list_elements(plane, 8)
    >>> image.tolist(), col.tolist(), on_partner.tolist(), rank
    ([0, 0, 1], [0, 2, 2], [False, True, True], None)
    """
    pairs = len(elements) // 2
    elements = elements.contiguous()
    plane = elements.view(-1).numpy()
    words = plane[:len(plane) // 8 * 8].view(np.uint64)
    per_image, per_row = elements.shape[1] * elements.shape[2], elements.shape[2]
    ones = packed_counts(elements, 0, pairs).numpy()
    counts = np.concatenate([ones[:, 0], ones[:, 1]])  # predictions', then ground truths' (pair i: i and N + i)
    start = np.cumsum(counts) - counts
    total = int(counts.sum())
    image, row, col = (np.empty(total, np.int64) for _ in range(3))
    on_partner, weight = np.empty(total, np.bool_), np.empty(total, np.float64)
    if bits is None:
        frame, table_np, ranks_np = np.zeros(0, np.uint8), np.zeros((0, 16)), np.zeros((0, 16), np.int16)
        weight_rank = None
    else:
        frame = bits.contiguous().view(-1).numpy()
        table_np, ranks_np = (np.ascontiguousarray(t.numpy()) for t in (table, ranks))
        weight_rank = np.empty(total, np.int16)
    in_threads(_list, counts + per_image // 8, plane, words, per_image, per_row, pairs, shift, start, frame,
               bits.shape[1] * per_row if bits is not None else 0, table_np, ranks_np, image, row, col, on_partner,
               weight, np.zeros(0, np.int16) if weight_rank is None else weight_rank, worth=_WORTH_ELEMENTS)
    out = [torch.from_numpy(a) for a in (image, row, col, on_partner, weight)]
    return (*out, None if weight_rank is None else torch.from_numpy(weight_rank))
