"""The engine's compiled CPU kernels: how they are compiled, when they run, and how they share the threads.

On the CPU three steps run as Numba kernels, each image by one thread: listing the boundary elements
(:mod:`.element_lists`), the separable transform that finds their distances (:mod:`.feature_transform`)
and the per-image ordering of the distances (:mod:`.sorted_rows`). On CUDA the same steps run as
batched torch code (:mod:`.boundaries`, :mod:`.distances`, :mod:`.surface`), which the tests also run
on the CPU (:data:`ON_CPU` set to False) and compare with the kernels.

The kernels are compiled on first use (a few seconds, once: cached on disk where Numba finds a writable
place, else once per process). They release the GIL and run in as many Python threads as torch uses;
Numba's own threading layer is not used, so nothing changes for forked processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

# Whether CPU tensors go to the compiled kernels; the tests set it to False to run the torch code that
# CUDA runs on the CPU too.
ON_CPU = True
# Runs of tasks per thread in :func:`in_threads`: enough to even out rough estimates of their work.
_RUNS = 4


def used(tensor: torch.Tensor) -> bool:
    """Whether the compiled kernels take ``tensor``'s work: on the CPU, unless :data:`ON_CPU` is False.

    Examples
    --------
    >>> used(torch.zeros(1))
    True
    """
    return ON_CPU and tensor.device.type == "cpu"


def compiled(**options):
    """``numba.njit(cache=True, nogil=True, error_model="numpy", **options)``, or the same without the disk
    cache where Numba finds no writable place for it (a read-only install with no writable user cache):
    then each process compiles the kernels once instead of failing to import.

    Examples
    --------
    >>> namespace = {}
    >>> exec("def plus_one(x): return x + 1", namespace)   # no source file: nowhere to cache
    >>> compiled()(namespace["plus_one"])(41)
    42
    """
    options = {"nogil": True, "error_model": "numpy", **options}

    def compile_(fn):
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(**options)(fn)

    return compile_


def in_threads(kernel: Callable[..., None], work: np.ndarray, *args, worth: float = 0.0) -> None:
    """``kernel(tasks, *args)`` over every task ``0..len(work)-1``, in as many threads as torch uses
    (``torch.set_num_threads``) when the total ``work`` (an estimate per task) is at least ``worth``.

    The tasks are cut into runs of consecutive tasks, a few per thread, of about equal work (the
    estimates are rough); the calling thread and threads kept for the purpose (waking one costs tens of
    microseconds, starting one several times that) each take the next run left until none is.
    ``kernel`` must release the GIL, and each task must write only its own outputs, so that no value
    depends on the threads.

    Examples
    --------
    >>> seen = []
    >>> in_threads(lambda tasks, out: out.extend(tasks.tolist()), np.ones(5), seen)
    >>> sorted(seen)
    [0, 1, 2, 3, 4]
    """
    tasks = np.arange(len(work))
    threads = min(torch.get_num_threads(), len(tasks))
    total = np.cumsum(work, dtype=np.float64)
    if threads <= 1 or total[-1] < worth:
        kernel(tasks, *args)
        return
    runs = iter(np.split(tasks, np.searchsorted(total, total[-1] * np.arange(1, _RUNS * threads) / (_RUNS * threads))))

    def take_runs() -> None:
        for run in runs:  # one shared iterator: each run goes to the first thread free
            if len(run):
                kernel(run, *args)

    futures = [_helpers(threads - 1).submit(take_runs) for _ in range(threads - 1)]
    take_runs()
    for future in futures:
        future.result()


_pool: tuple[int, int, ThreadPoolExecutor] | None = None


def _helpers(count: int) -> ThreadPoolExecutor:
    """``count`` threads kept for :func:`in_threads`: made again in a forked process (whose copy of the
    threads is gone) or for another count."""
    global _pool
    if _pool is None or _pool[:2] != (os.getpid(), count):
        if _pool is not None and _pool[0] == os.getpid():
            _pool[2].shutdown(wait=False)
        _pool = (os.getpid(), count, ThreadPoolExecutor(count, thread_name_prefix="medseg-eval-kernel"))
    return _pool[2]
