"""The order in which :func:`medseg_eval.evaluate` reads and scores cases: runs read together, batches scored.

Memory is bounded by pixels, not by the number of cases: a run read at once holds at most
:data:`PIXELS_PER_BATCH` pixels, and so do the cases that wait for their batch. A batch holds cases
of one *bucket*: sizes that round up to the same multiple of :data:`BUCKET` pixels in each side. Cases
of several sizes are padded at the bottom and right to the batch's largest size and scored in one
engine call with each case's own size (``metrics.compute(..., sizes=...)``), which gives each case's
numbers exactly: real datasets come in hundreds of sizes (Kvasir-SEG: 326 among 880 masks), and one
call per size costs more than the pixels the padding adds (at most ``BUCKET - 1`` per side).
"""

from __future__ import annotations

import math

import numpy as np

#: Pixels (cases x foreground classes x height x width) in one batch at most, which bounds the memory
#: a batch takes: a 4439 x 6688 ISIC image is a batch of its own, 512 x 512 binary masks go 64 at a time
#: (as ``batch_size`` allows).
PIXELS_PER_BATCH = 1 << 24
#: Sizes scored together round up to the same multiple of this in each side.
BUCKET = 64


def bucket(shape: tuple[int, int]) -> tuple[int, int]:
    """The padded size a case of ``shape`` is scored in, at most: each side rounded up to :data:`BUCKET`.

    Examples
    --------
    >>> bucket((529, 622)), bucket((576, 640))
    ((576, 640), (576, 640))
    """
    return (-(-shape[0] // BUCKET) * BUCKET, -(-shape[1] // BUCKET) * BUCKET)


def windows(ids: list[str], shapes: dict[str, tuple[int, int]]) -> list[list[str]]:
    """``ids`` in runs read together: at most :data:`PIXELS_PER_BATCH` pixels each (one case at least).

    Examples
    --------
    >>> windows(["a", "b", "c"], {"a": (4000, 4000), "b": (10, 10), "c": (4000, 4000)})
    [['a', 'b'], ['c']]
    """
    runs: list[list[str]] = [[]]
    pixels = 0
    for case_id in ids:
        size = shapes[case_id][0] * shapes[case_id][1]
        if runs[-1] and pixels + size > PIXELS_PER_BATCH:
            runs.append([])
            pixels = 0
        runs[-1].append(case_id)
        pixels += size
    return runs if runs[-1] else []


def plan(shapes: dict[str, tuple[int, int]], num_classes: int,
         batch_size: int) -> list[tuple[list[str], list[list[str]]]]:
    """The order of work: runs of cases read in case order, each followed by the batches then scored.

    A batch holds cases of one :func:`bucket`, at most ``batch_size`` of them and
    :data:`PIXELS_PER_BATCH` pixels x foreground classes, padded to the batch's largest size (one
    case at least). Cases read
    wait for their batch to fill; when more than :data:`PIXELS_PER_BATCH` pixels wait, the largest
    group is scored as it is. Cases held decoded at once are thus one run read plus at most that many
    pixels, whatever the number of cases.

    Examples
    --------
    >>> plan({"a": (30, 40), "b": (31, 40), "c": (500, 500)}, 2, 16)
    [(['a', 'b', 'c'], [['a', 'b'], ['c']])]
    """
    waiting: dict[tuple[int, int], list[str]] = {}
    largest_size: dict[tuple[int, int], tuple[int, int]] = {}  # of each waiting group: the padded size
    steps = []
    runs = windows(sorted(shapes), shapes)
    for step, run in enumerate(runs):
        batches = []
        for case_id in run:
            key = bucket(shapes[case_id])
            waiting.setdefault(key, []).append(case_id)
            size = np.maximum(largest_size.get(key, (0, 0)), shapes[case_id])
            largest_size[key] = (int(size[0]), int(size[1]))
            per_batch = PIXELS_PER_BATCH // (math.prod(largest_size[key]) * (num_classes - 1))
            if len(waiting[key]) >= max(1, min(batch_size, per_batch)):
                batches.append(waiting.pop(key))
                del largest_size[key]
        held = {key: sum(math.prod(shapes[c]) for c in ids) for key, ids in waiting.items()}
        while held and (sum(held.values()) > PIXELS_PER_BATCH or step == len(runs) - 1):
            largest = max(held, key=held.get) if step < len(runs) - 1 else next(iter(held))
            batches.append(waiting.pop(largest))
            del held[largest], largest_size[largest]
        steps.append((run, batches))
    return steps


def stack(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """``arrays`` ``[H_i, W_i]`` in one ``[B, max H, max W]`` array, padded with zeros at the bottom and
    right, and each one's size ``[B, 2]`` (None when they all have one size: nothing is padded).

    Examples
    --------
    >>> batch, sizes = stack([np.ones((2, 3), np.uint8), np.ones((3, 2), np.uint8)])
    >>> batch.shape, sizes.tolist(), int(batch[0, 2, 0]), int(batch[1, 0, 2])
    ((2, 3, 3), [[2, 3], [3, 2]], 0, 0)
    """
    sizes = np.array([a.shape for a in arrays], dtype=np.int64)
    if (sizes == sizes[0]).all():
        return np.stack(arrays), None
    out = np.zeros((len(arrays), *sizes.max(0)), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0], :a.shape[1]] = a
    return out, sizes
