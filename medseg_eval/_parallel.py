"""Work on many files at once in threads: decoders (PIL, zlib, NumPy) release the GIL while they work."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Threads used at most; decoding scales to about this many before memory bandwidth limits it.
MAX_WORKERS = 8


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, run in a few threads, results in the items' order.

    The first failure in the items' order is raised (as the loop would raise it) and the items
    not yet started are dropped.

    Parameters
    ----------
    fn
        Called once per item, from worker threads.
    items
        What ``fn`` is called with.
    workers
        Threads; default ``min(8, os.cpu_count())``. One runs ``fn`` in the caller's thread.

    Examples
    --------
    >>> map_in_threads(lambda x: x * x, range(5))
    [0, 1, 4, 9, 16]
    """
    items = list(items)
    workers = min(workers or MAX_WORKERS, os.cpu_count() or 1, len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medseg-eval")
    try:
        return list(pool.map(fn, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
