"""Two models on the same cases: paired tests, bootstrap confidence intervals and effect sizes.

All functions take the two models' per-case values ``x`` and ``y`` in the same case order (pair
them with :func:`~medseg_eval.stats.paired_values`) and look at the differences ``d = x - y``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from ..bootstrap import case_resamples, percentile_interval

Alternative = Literal["two-sided", "greater", "less"]
ZeroMethod = Literal["wilcox", "pratt", "zsplit"]

#: Above this many non-zero differences, ``method="auto"`` uses the normal approximation.
EXACT_WILCOXON_MAX_N = 200


@dataclass(frozen=True)
class TestResult:
    """A test's statistic and p-value, with how they were computed; unpacks as ``statistic, p_value``.

    Attributes
    ----------
    test
        ``"wilcoxon"``, ``"t"`` or ``"permutation"``.
    method
        How the p-value came: ``"exact"``, ``"normal approximation"``, ``"t distribution"`` or
        ``"monte carlo"``.
    details
        Test-specific numbers (Wilcoxon: ``r_plus, r_minus, z, zero_method``; permutation:
        ``n_resamples, seed``).
    """

    __test__ = False  # not a pytest test class despite its name

    test: str
    statistic: float
    p_value: float
    n: int
    method: str
    alternative: str
    details: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[float]:
        return iter((self.statistic, self.p_value))


def _differences(x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    d = np.asarray(x, dtype=np.float64) if y is None else np.asarray(x, np.float64) - np.asarray(y, np.float64)
    if y is not None and np.shape(x) != np.shape(y):
        raise ValueError(f"paired samples must have the same length, got {np.shape(x)} and {np.shape(y)}.")
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"expected two non-empty 1-D samples, got differences of shape {d.shape}.")
    if not np.isfinite(d).all():
        raise ValueError("the samples hold NaN or infinite values; pair them with a missing-case policy first.")
    return d


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"`alternative` must be 'two-sided', 'greater' or 'less', got {alternative!r}.")


def _p_from_tails(p_less: float, p_greater: float, alternative: str) -> float:
    if alternative == "less":
        return float(min(p_less, 1.0))
    if alternative == "greater":
        return float(min(p_greater, 1.0))
    return float(min(1.0, 2 * min(p_less, p_greater)))


def wilcoxon(x: np.ndarray, y: np.ndarray | None = None, *, zero_method: ZeroMethod = "wilcox",
             method: Literal["auto", "exact", "approx"] = "auto", correction: bool = False,
             alternative: Alternative = "two-sided") -> TestResult:
    """Wilcoxon signed-rank test of the paired differences ``x - y``.

    Parameters
    ----------
    zero_method
        Zero differences (common with Dice: both models perfect on an empty case): ``"wilcox"``
        drops them (scipy's and R's default); ``"pratt"`` ranks them with the others, then drops
        them; ``"zsplit"`` ranks them and splits their ranks evenly between both sides (Demšar 2006).
    method
        ``"exact"``: the null distribution of the signed-rank sum by enumeration over the sign
        flips, conditional on the observed ranks, so exact with ties and zeros too (a dynamic
        programme over doubled ranks). ``"approx"``: normal approximation with tie correction
        (and Cureton's zero correction under ``"pratt"``). ``"auto"``: exact up to
        :data:`EXACT_WILCOXON_MAX_N` non-zero differences.
    correction
        Continuity correction of the normal approximation.

    Returns
    -------
    TestResult
        ``statistic`` is ``min(R+, R-)`` for a two-sided test and ``R+`` otherwise (as scipy);
        ``details`` has ``r_plus``, ``r_minus`` and ``z``.

    References
    ----------
    Wilcoxon F. (1945) Individual comparisons by ranking methods. Biometrics Bulletin 1(6).
    Pratt J. W. (1959) Remarks on zeros and ties in the Wilcoxon signed rank procedures. JASA 54.

    Examples
    --------
    >>> r = wilcoxon([0.9, 0.8, 0.85, 0.7, 0.95], [0.8, 0.7, 0.8, 0.72, 0.9])
    >>> r.statistic, round(r.p_value, 4), r.method
    (1.0, 0.125, 'exact')
    """
    _check_alternative(alternative)
    if zero_method not in ("wilcox", "pratt", "zsplit"):
        raise ValueError(f"`zero_method` must be 'wilcox', 'pratt' or 'zsplit', got {zero_method!r}.")
    if method not in ("auto", "exact", "approx"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'approx', got {method!r}.")
    d = _differences(x, y)
    zero = d == 0
    if zero_method == "wilcox":
        d, zero = d[~zero], zero[~zero]
    ranks = sps.rankdata(np.abs(d)) if d.size else d
    r_plus, r_minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    if zero_method == "zsplit":
        r_plus += ranks[zero].sum() / 2
        r_minus += ranks[zero].sum() / 2
    n_signed = int((~zero).sum())
    statistic = min(r_plus, r_minus) if alternative == "two-sided" else r_plus
    details: dict[str, Any] = {"r_plus": r_plus, "r_minus": r_minus, "zero_method": zero_method,
                               "n_zero": int(zero.sum())}
    exact = method == "exact" or (method == "auto" and n_signed <= EXACT_WILCOXON_MAX_N)
    if exact:
        # Only the signs of non-zero differences are exchangeable under H0; doubled ranks are integers.
        doubled = np.rint(2 * ranks[~zero]).astype(np.int64)
        offset = ranks[zero].sum() / 2 if zero_method == "zsplit" else 0.0
        pmf = _signed_rank_pmf(doubled)
        observed = round(2 * (r_plus - offset))
        p = _p_from_tails(pmf[: observed + 1].sum(), pmf[observed:].sum(), alternative)
        return TestResult("wilcoxon", statistic, p, d.size, "exact", alternative, details)
    count = d.size
    mean = count * (count + 1) / 4
    var = count * (count + 1) * (2 * count + 1)
    _, ties = np.unique(np.abs(d[~zero]) if zero_method == "pratt" else np.abs(d), return_counts=True)
    if zero_method == "pratt":
        n_zero = int(zero.sum())
        mean -= n_zero * (n_zero + 1) / 4
        var -= n_zero * (n_zero + 1) * (2 * n_zero + 1)
    se = math.sqrt((var - (ties**3 - ties).sum() / 2) / 24)
    z = (r_plus - mean) / se if se > 0 else 0.0
    if correction and se > 0:
        z -= (np.sign(z) if alternative == "two-sided" else (1 if alternative == "greater" else -1)) * 0.5 / se
    details["z"] = z
    p = _p_from_tails(sps.norm.cdf(z), sps.norm.sf(z), alternative)
    return TestResult("wilcoxon", statistic, p, d.size, "normal approximation", alternative, details)


def _signed_rank_pmf(doubled_ranks: np.ndarray) -> np.ndarray:
    """Null distribution of sum(doubled rank * [sign > 0]) when every sign is +/- with probability 1/2."""
    pmf = np.zeros(int(doubled_ranks.sum()) + 1)
    pmf[0] = 1.0
    for r in doubled_ranks:
        shifted = np.zeros_like(pmf)
        shifted[r:] = pmf[: pmf.size - r]
        pmf = 0.5 * (pmf + shifted)
    return pmf


def paired_t(x: np.ndarray, y: np.ndarray | None = None, *, alternative: Alternative = "two-sided") -> TestResult:
    """Paired t-test of ``x - y`` (Student's t with ``n - 1`` degrees of freedom).

    Identical differences give ``t = 0, p = 1`` when they are all zero, and ``t = +/-inf, p = 0`` otherwise.

    Examples
    --------
    >>> t, p = paired_t([0.9, 0.8, 0.85, 0.7], [0.8, 0.75, 0.8, 0.72])
    >>> round(t, 4), round(p, 4)
    (1.8245, 0.1656)
    """
    _check_alternative(alternative)
    d = _differences(x, y)
    if d.size < 2:
        raise ValueError("the paired t-test needs at least two pairs.")
    mean, sd = d.mean(), d.std(ddof=1)
    if sd == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        t = float(mean / (sd / math.sqrt(d.size)))
    df = d.size - 1
    p = _p_from_tails(sps.t.cdf(t, df), sps.t.sf(t, df), alternative)
    return TestResult("t", t, p, d.size, "t distribution", alternative, {"df": df, "mean_difference": float(mean)})


def permutation_test(x: np.ndarray, y: np.ndarray | None = None, *, n_resamples: int = 9999, seed: int = 0,
                     alternative: Alternative = "two-sided") -> TestResult:
    """Paired permutation (sign-flip) test of the mean difference.

    Under H0 the sign of each difference is exchangeable. With ``2**n <= n_resamples`` all sign
    patterns are enumerated (exact p-value, ``count / 2**n``); otherwise ``n_resamples`` random
    patterns from ``numpy.random.default_rng(seed)`` give ``(count + 1) / (n_resamples + 1)``.
    The two-sided p-value is twice the smaller one-sided one (as scipy's ``permutation_test``).

    Examples
    --------
    >>> r = permutation_test([0.9, 0.8, 0.85, 0.7], [0.8, 0.75, 0.8, 0.72])
    >>> round(r.statistic, 4), r.p_value, r.method
    (0.045, 0.25, 'exact')
    """
    _check_alternative(alternative)
    d = _differences(x, y)
    observed = float(d.mean())
    tolerance = abs(observed) * np.finfo(np.float64).eps * 100  # equal statistics count as equal
    exact = 2 ** d.size <= n_resamples
    less = greater = 0
    if exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        null = signs @ d / d.size
        less, greater, total, adjust = (null <= observed + tolerance).sum(), (null >= observed - tolerance).sum(), \
            len(null), 0
    else:
        rng = np.random.default_rng(seed)
        for start in range(0, n_resamples, 1000):  # chunks bound the memory of the sign matrix
            signs = rng.choice((-1.0, 1.0), size=(min(1000, n_resamples - start), d.size))
            null = signs @ d / d.size
            less += int((null <= observed + tolerance).sum())
            greater += int((null >= observed - tolerance).sum())
        total, adjust = n_resamples, 1
    p = _p_from_tails((less + adjust) / (total + adjust), (greater + adjust) / (total + adjust), alternative)
    return TestResult("permutation", observed, p, d.size, "exact" if exact else "monte carlo", alternative,
                      {"n_resamples": int(total), "seed": None if exact else seed})


def bootstrap_ci(x: np.ndarray, y: np.ndarray | None = None, *, statistic: Literal["mean", "median"] = "mean",
                 confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Percentile-bootstrap CI of the mean (or median) paired difference ``x - y``: ``(estimate, low, high)``.

    Cases are resampled with replacement: ``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))``,
    the same resamples as ``scipy.stats.bootstrap(..., method="percentile")`` draws with that generator.

    Examples
    --------
    >>> est, lo, hi = bootstrap_ci([0.9, 0.8, 0.85, 0.7, 0.6], [0.8, 0.75, 0.8, 0.72, 0.5], seed=1)
    >>> round(est, 3), lo < est < hi
    (0.056, True)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must lie in (0, 1), got {confidence}.")
    reduce: Callable[..., np.ndarray] = {"mean": np.mean, "median": np.median}[statistic]
    d = _differences(x, y)
    boot = reduce(d[case_resamples(d.size, n_boot, seed)], axis=-1)
    low, high = percentile_interval(boot, confidence)
    return float(reduce(d)), float(low), float(high)


def rank_biserial(x: np.ndarray, y: np.ndarray | None = None, *, zero_method: ZeroMethod = "wilcox") -> float:
    """Matched-pairs rank-biserial correlation ``(R+ - R-) / (R+ + R-)`` (Kerby 2014), in [-1, 1].

    Zeros are handled as in :func:`wilcoxon` with the same ``zero_method``; no non-zero difference gives 0.

    Examples
    --------
    >>> rank_biserial([3, 4, 5, 6], [1, 1, 1, 7])
    0.8
    """
    result = wilcoxon(x, y, zero_method=zero_method, method="approx")
    total = result.details["r_plus"] + result.details["r_minus"]
    return 0.0 if total == 0 else (result.details["r_plus"] - result.details["r_minus"]) / total


def cohen_dz(x: np.ndarray, y: np.ndarray | None = None) -> float:
    """Cohen's d for paired data, ``d_z = mean(d) / sd(d)`` with ``sd`` of ``n - 1`` degrees of freedom.

    Identical differences give 0 when they are zero and +/-inf otherwise.

    Examples
    --------
    >>> round(cohen_dz([0.9, 0.8, 0.85, 0.7], [0.8, 0.75, 0.8, 0.72]), 4)
    0.9122
    """
    d = _differences(x, y)
    if d.size < 2:
        raise ValueError("Cohen's d_z needs at least two pairs.")
    sd = d.std(ddof=1)
    if sd == 0:
        return 0.0 if d.mean() == 0 else math.copysign(math.inf, d.mean())
    return float(d.mean() / sd)
