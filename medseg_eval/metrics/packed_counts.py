"""Confusion counts from masks packed 8 pixels to a byte, on the CPU, by a compiled popcount.

Where the distance metrics are asked for, every mask pair is packed into a frame
(:func:`.boundaries.frame_pairs`) anyway; counting the set bits of the packed rows (and of their AND)
then reads an eighth of the bytes that counting the masks does, right after packing them, while they
are still in the cache. CUDA counts the masks by torch reductions (:func:`.overlap.confusion_counts`);
the tests compare the two.
"""

from __future__ import annotations

import numpy as np
import torch

from .compiled import compiled, in_threads

_M1, _M2, _M4, _H01 = (np.uint64(v) for v in (0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F,
                                               0x0101010101010101))
# Below this many bytes a call runs in one thread: waking another costs more than it saves.
_WORTH_BYTES = 1 << 20


@compiled(inline="always")
def _ones(x):  # pragma: no cover - compiled
    """The set bits of the uint64 ``x`` (which LLVM compiles to one instruction where the CPU has it)."""
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


@compiled()
def _count(tasks, plane, words, per_image, pairs, out):  # pragma: no cover - compiled
    """For each pair ``i``: the set bits of image ``i``, of image ``pairs + i``, and of their AND."""
    for i in tasks:
        f, g, stop = i * per_image, (pairs + i) * per_image, (i + 1) * per_image
        pred = target = both = np.uint64(0)
        while f < stop and f & 7:  # bytes up to the prediction's first whole word
            p, t = np.uint64(plane[f]), np.uint64(plane[g])
            pred, target, both = pred + _ones(p), target + _ones(t), both + _ones(p & t)
            f, g = f + 1, g + 1
        # The ground truth's bytes are read as words too, two aligned ones joined where they straddle.
        shift = np.uint64(8 * (g & 7))
        while f + 16 <= stop:
            p, w = words[f >> 3], words[g >> 3]
            t = w if shift == 0 else (w >> shift) | (words[(g >> 3) + 1] << (np.uint64(64) - shift))
            pred, target, both = pred + _ones(p), target + _ones(t), both + _ones(p & t)
            f, g = f + 8, g + 8
        while f < stop:
            p, t = np.uint64(plane[f]), np.uint64(plane[g])
            pred, target, both = pred + _ones(p), target + _ones(t), both + _ones(p & t)
            f, g = f + 1, g + 1
        out[i, 0], out[i, 1], out[i, 2] = pred, target, both


def packed_counts(bits: torch.Tensor, first: int, last: int) -> torch.Tensor:
    """Pixels set in the prediction, in the ground truth and in both, for the mask pairs ``first:last`` of a
    packed frame (:func:`.boundaries.empty_frame`; pair ``i``'s masks are images ``i`` and ``N + i``).

    Returns
    -------
    torch.Tensor
        Int64 ``[last - first, 3]``.

    Examples
    --------
    >>> from medseg_eval.metrics.boundaries import framed_bits
    >>> p = torch.zeros(1, 3, 20, dtype=torch.bool); p[0, :, 2:12] = True
    >>> t = torch.zeros(1, 3, 20, dtype=torch.bool); t[0, 1:, 5:] = True
    >>> packed_counts(framed_bits(p, t), 0, 1).tolist()   # 30 pixels, 30, and the 14 in both
    [[30, 30, 14]]
    """
    pairs = len(bits) // 2
    plane = bits.contiguous().view(-1).numpy()
    words = plane[:len(plane) // 8 * 8].view(np.uint64)
    per_image = bits.shape[1] * bits.shape[2]
    out = np.zeros((pairs, 3), np.int64)
    tasks = np.zeros(last - first) + per_image
    in_threads(lambda run, *args: _count(run + first, *args), tasks, plane, words, per_image, pairs, out,
               worth=_WORTH_BYTES)
    return torch.from_numpy(out[first:last])
