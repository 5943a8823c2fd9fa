"""The case bootstrap every confidence interval of the package uses: seeded resamples, percentile intervals.

One place draws the resamples, so that a CI in ``Results.summary``, ``compare`` and the leaderboards
comes from the same cases for the same seed, and one place turns bootstrap values into an interval.
This module imports only NumPy: results, statistics and leaderboards all use it.
"""

from __future__ import annotations

import numpy as np


def case_resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Indices ``[n_boot, n]`` of ``n_boot`` resamples of ``n`` cases with replacement.

    They are ``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))``, the resamples that
    ``scipy.stats.bootstrap(..., method="percentile")`` draws with that generator.

    Examples
    --------
    >>> case_resamples(4, 2, seed=0).tolist()
    [[3, 2, 2, 1], [1, 0, 0, 0]]
    """
    return np.random.default_rng(seed).integers(0, n, (n_boot, n))


def percentile_interval(boot: np.ndarray, confidence: float, *, axis: int = 0,
                        ignore_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap values: their ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles along ``axis`` (linear interpolation), NaNs left out on request.

    Examples
    --------
    >>> low, high = percentile_interval(np.arange(101.0), 0.5)
    >>> float(low), float(high)
    (25.0, 75.0)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must lie in (0, 1), got {confidence}.")
    quantile = np.nanquantile if ignore_nan else np.quantile
    alpha = (1 - confidence) / 2
    return quantile(boot, alpha, axis=axis), quantile(boot, 1 - alpha, axis=axis)
