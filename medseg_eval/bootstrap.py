"""The case bootstrap every confidence interval of the package uses: seeded resamples, percentile intervals.

Cross-validations resample in two stages (:func:`hierarchical_resamples`): folds or seeds, then the
cases within each.

One place draws the resamples, so that a CI in ``Results.summary``, ``compare`` and the leaderboards
comes from the same cases for the same seed, and one place turns bootstrap values into an interval.
This module imports only NumPy: results, statistics and leaderboards all use it.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def hierarchical_resamples(strata: Sequence[Sequence[int]], n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage resamples: units (folds, or seeds) with replacement, then each drawn unit's cases
    with replacement, within each of its strata.

    A unit's cases are laid out stratum after stratum (``strata[u]`` lists the sizes of unit ``u``'s
    strata: one stratum, its cases, for a fold; one stratum per fold for a seed of a cross-validation),
    and a case is only ever replaced by one of its own stratum, so every fold keeps its size. Each
    drawn unit gets its own case resample, also when a unit is drawn twice (Davison and Hinkley
    1997, sec. 3.8, "strategy 2").

    Parameters
    ----------
    strata
        Per unit, the sizes of its strata (each at least 1).
    n_boot, seed
        Number of resamples, and the seed of ``numpy.random.default_rng`` that draws them: first
        the units ``[n_boot, n_units]``, then the cases.

    Returns
    -------
    units
        ``[n_boot, n_units]``: the units of each resample.
    cases
        ``[n_boot, n_units, width]`` with ``width`` the largest unit: ``cases[b, j, p]`` is the
        position, within unit ``units[b, j]``, of the case drawn for its position ``p`` (same
        stratum), and -1 beyond that unit's length.

    Examples
    --------
    >>> units, cases = hierarchical_resamples([[2], [3]], 2, seed=0)
    >>> units.tolist(), cases.tolist()
    ([[1, 1], [1, 0]], [[[0, 0, 0], [0, 0, 2]], [[1, 2, 1], [1, 1, -1]]])
    """
    sizes = [[int(n) for n in unit] for unit in strata]
    if not sizes or any(not unit or min(unit) < 1 for unit in sizes):
        raise ValueError(f"every unit needs at least one stratum of at least one case, got {sizes}.")
    width = max(sum(unit) for unit in sizes)
    offset = np.full((len(sizes), width), -1, dtype=np.int64)  # first position of each position's stratum
    size = np.ones((len(sizes), width), dtype=np.int64)  # that stratum's size (1 beyond the unit)
    for u, unit in enumerate(sizes):
        start = 0
        for n in unit:
            offset[u, start:start + n], size[u, start:start + n] = start, n
            start += n
    rng = np.random.default_rng(seed)
    units = rng.integers(0, len(sizes), (n_boot, len(sizes)))
    first, high = offset[units], size[units]
    cases = np.where(first >= 0, first + rng.integers(0, high), -1)
    return units, cases
