"""Many models: Friedman's test, its post-hoc tests and the critical difference (Demšar 2006).

Blocks are the cases of one dataset, or the datasets when models are compared across several
(``blocks="dataset"``); ranks are taken within each block, 1 = best by the metric's direction,
ties averaged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import stats as sps

from .multiple import adjust_p, correction_name
from .paired import paired_t, permutation_test, wilcoxon
from .pairing import Blocks, MissingPolicy, PairedValues, paired_values

PAIRWISE_TESTS = {"wilcoxon": wilcoxon, "t": paired_t, "permutation": permutation_test}
POSTHOC_SCHEMA = {"model_a": pl.String, "model_b": pl.String, "test": pl.String, "statistic": pl.Float64,
                  "p_value": pl.Float64, "p_adjusted": pl.Float64, "correction": pl.String}


def as_paired(data: pl.DataFrame | PairedValues, metric: str | None, **pairing: Any) -> PairedValues:
    """``data`` itself when already paired, else :func:`~medseg_eval.stats.paired_values` of the long table."""
    if not isinstance(data, PairedValues):
        if metric is None:
            raise ValueError("name the metric to compare, e.g. metric='dice'.")
        data = paired_values(data, metric, **pairing)
    if len(data.models) < 2:
        raise ValueError(f"a comparison needs at least two models, got {data.models}.")
    return data


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's test; unpacks as ``statistic, p_value``.

    Attributes
    ----------
    statistic, p_value
        Friedman's chi-square (corrected for ties, as ``scipy.stats.friedmanchisquare``) and its
        p-value with ``k - 1`` degrees of freedom.
    iman_davenport, iman_davenport_p
        Iman and Davenport's F, less conservative, with ``(k - 1, (k - 1)(N - 1))`` degrees of freedom.
    mean_ranks
        Mean rank of each model (1 = best).
    """

    statistic: float
    p_value: float
    df: int
    iman_davenport: float
    iman_davenport_p: float
    n_blocks: int
    n_models: int
    mean_ranks: dict[str, float]

    def __iter__(self) -> Iterator[float]:
        return iter((self.statistic, self.p_value))


def friedman(data: pl.DataFrame | PairedValues, metric: str | None = None, *, class_: str | int | None = None,
             blocks: Blocks = "case", missing: MissingPolicy = "error",
             worst: Mapping[str, float] | None = None) -> FriedmanResult:
    """Friedman's test that all models perform alike, on a long per-case table of several models.

    Parameters
    ----------
    data
        Long per-case table with a ``model`` column (:func:`~medseg_eval.stats.per_case_table`), or
        values already paired by :func:`~medseg_eval.stats.paired_values`.
    metric, class_, blocks, missing, worst
        As in :func:`~medseg_eval.stats.paired_values`.

    References
    ----------
    Friedman M. (1937) JASA 32; Iman R. L., Davenport J. M. (1980) Commun. Statist. A9; Demšar J.
    (2006) Statistical comparisons of classifiers over multiple data sets. JMLR 7.

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a"] * 4 + ["b"] * 4 + ["c"] * 4, "case_id": ["1", "2", "3", "4"] * 3,
    ...                   "metric": "dice", "value": [.9, .8, .85, .9, .7, .75, .8, .6, .5, .6, .7, .65]})
    >>> statistic, p_value = friedman(t, metric="dice")
    >>> statistic, round(p_value, 4)
    (6.5, 0.0388)
    """
    paired = as_paired(data, metric, class_=class_, blocks=blocks, missing=missing, worst=worst)
    n, k = paired.values.shape
    ranks = paired.ranks()
    rank_sums = ranks.sum(axis=0)
    chi2 = 12 / (n * k * (k + 1)) * (rank_sums**2).sum() - 3 * n * (k + 1)
    ties = sum(((c**3 - c).sum() for c in (np.unique(row, return_counts=True)[1] for row in ranks)), 0)
    denominator = 1 - ties / (n * k * (k * k - 1))
    chi2 = float(chi2 / denominator) if denominator > 0 else 0.0  # every block all tied: no evidence
    p = float(sps.chi2.sf(chi2, k - 1))
    if n > 1 and n * (k - 1) - chi2 > 0:
        f = (n - 1) * chi2 / (n * (k - 1) - chi2)
        f_p = float(sps.f.sf(f, k - 1, (k - 1) * (n - 1)))
    else:  # ranks identical in every block: F is infinite
        f, f_p = math.inf, 0.0
    mean_ranks = dict(zip(paired.models, (ranks.mean(axis=0)).tolist()))
    return FriedmanResult(chi2, p, k - 1, float(f), f_p, n, k, mean_ranks)


def critical_difference(n_models: int, n_blocks: int, *, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of mean ranks: ``q_alpha * sqrt(k (k + 1) / (6 N))``.

    ``q_alpha`` is the studentized range quantile for ``k`` groups and infinite degrees of freedom
    divided by ``sqrt(2)`` (Demšar 2006, Table 5a).

    Examples
    --------
    >>> round(critical_difference(4, 14, alpha=0.05), 2), round(critical_difference(4, 14, alpha=0.10), 2)
    (1.25, 1.12)
    """
    return nemenyi_q(n_models, alpha) * math.sqrt(n_models * (n_models + 1) / (6 * n_blocks))


def nemenyi_q(n_models: int, alpha: float = 0.05) -> float:
    """Critical value ``q_alpha`` of the two-tailed Nemenyi test (studentized range / sqrt(2)).

    Examples
    --------
    >>> round(nemenyi_q(4, 0.05), 3)
    2.569
    """
    if n_models < 2:
        raise ValueError(f"the Nemenyi test needs at least two models, got {n_models}.")
    return float(sps.studentized_range.ppf(1 - alpha, n_models, np.inf) / math.sqrt(2))


def nemenyi(data: pl.DataFrame | PairedValues, metric: str | None = None, **pairing: Any) -> pl.DataFrame:
    """Nemenyi's all-pairs post-hoc test after Friedman's: one row per pair.

    ``statistic`` is ``|R_i - R_j| / sqrt(k (k + 1) / (6 N))`` of the mean ranks; the p-value comes from
    the studentized range (``q * sqrt(2)``, ``k`` groups, infinite df), which already controls the
    family-wise error, so ``p_adjusted = p_value`` (``correction="single-step"``).

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "case_id": ["1", "2", "3"] * 3,
    ...                   "metric": "dice", "value": [.9, .8, .85, .7, .75, .8, .5, .6, .7]})
    >>> [round(p, 4) for p in nemenyi(t, "dice")["p_adjusted"]]
    [0.4385, 0.038, 0.4385]
    """
    paired = as_paired(data, metric, **pairing)
    n, k = paired.values.shape
    mean_ranks = paired.ranks().mean(axis=0)
    rows = []
    for i, j in itertools.combinations(range(k), 2):
        q = abs(mean_ranks[i] - mean_ranks[j]) / math.sqrt(k * (k + 1) / (6 * n))
        p = float(sps.studentized_range.sf(q * math.sqrt(2), k, np.inf))
        rows.append((paired.models[i], paired.models[j], "nemenyi", float(q), p, p, "single-step"))
    return pl.DataFrame(rows, schema=POSTHOC_SCHEMA, orient="row")


def conover(data: pl.DataFrame | PairedValues, metric: str | None = None, *, correction: str = "holm",
            **pairing: Any) -> pl.DataFrame:
    """Conover's all-pairs post-hoc test after Friedman's (Conover 1999), with a p-value correction.

    ``statistic`` is the t statistic of the rank-sum difference with ``N k - k - N + 1`` degrees of
    freedom; ``correction`` is ``"holm"``, ``"fdr_bh"``, ``"bonferroni"``, ``"none"``, or
    ``"single-step"`` (studentized range, as scikit-posthocs).

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "case_id": ["1", "2", "3"] * 3,
    ...                   "metric": "dice", "value": [.9, .8, .85, .7, .75, .8, .5, .6, .7]})
    >>> conover(t, "dice")["correction"].to_list()
    ['holm', 'holm', 'holm']
    """
    paired = as_paired(data, metric, **pairing)
    n, k = paired.values.shape
    ranks = paired.ranks()
    rank_sums = ranks.sum(axis=0)
    s2 = ((ranks**2).sum() - k * n * (k + 1) ** 2 / 4) / (k - 1)
    t2 = ((rank_sums - n * (k + 1) / 2) ** 2).sum() / s2 if s2 > 0 else 0.0
    df = n * k - k - n + 1
    scale = math.sqrt(s2 * 2 * n * (k - 1) / df * (1 - t2 / (n * (k - 1)))) if s2 > 0 and df > 0 else 0.0
    pairs = list(itertools.combinations(range(k), 2))
    diffs = np.array([abs(rank_sums[i] - rank_sums[j]) for i, j in pairs])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(diffs == 0, 0.0, diffs / scale if scale > 0 else np.inf)
    if correction == "single-step":
        p = sps.studentized_range.sf(t * math.sqrt(2), k, np.inf)
        adjusted = p
    else:
        p = 2 * sps.t.sf(t, df)
        adjusted = adjust_p(p, correction)
        correction = correction_name(correction)
    rows = [(paired.models[i], paired.models[j], "conover", float(t[x]), float(p[x]), float(adjusted[x]), correction)
            for x, (i, j) in enumerate(pairs)]
    return pl.DataFrame(rows, schema=POSTHOC_SCHEMA, orient="row")


def pairwise_tests(data: pl.DataFrame | PairedValues, metric: str | None = None, *,
                   test: Literal["wilcoxon", "t", "permutation"] = "wilcoxon", correction: str = "holm",
                   pairs: Sequence[tuple[str, str]] | None = None, test_options: Mapping[str, Any] | None = None,
                   **pairing: Any) -> pl.DataFrame:
    """Paired two-model tests for all pairs of models (or ``pairs``), corrected as one family.

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "case_id": ["1", "2", "3"] * 3,
    ...                   "metric": "dice", "value": [.9, .8, .85, .7, .75, .8, .5, .6, .7]})
    >>> pairwise_tests(t, "dice", correction="holm")["p_adjusted"].to_list()
    [0.75, 0.75, 0.75]
    """
    if test not in PAIRWISE_TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {', '.join(PAIRWISE_TESTS)}.")
    paired = as_paired(data, metric, **pairing)
    index = {m: i for i, m in enumerate(paired.models)}
    pairs = list(itertools.combinations(paired.models, 2)) if pairs is None else list(pairs)
    results = [PAIRWISE_TESTS[test](paired.values[:, index[a]], paired.values[:, index[b]], **(test_options or {}))
               for a, b in pairs]
    adjusted = adjust_p(np.array([r.p_value for r in results]), correction)
    rows = [(a, b, test, r.statistic, r.p_value, float(q), correction_name(correction))
            for (a, b), r, q in zip(pairs, results, adjusted)]
    return pl.DataFrame(rows, schema=POSTHOC_SCHEMA, orient="row")


def versus_control(data: pl.DataFrame | PairedValues, metric: str | None = None, *, control: str | None = None,
                   correction: str = "holm", **pairing: Any) -> pl.DataFrame:
    """Each model against a control by mean ranks (Demšar 2006, section 3.2.2): ``z = (R_i - R_c) / SE``.

    ``SE = sqrt(k (k + 1) / (6 N))``, two-sided normal p-values corrected over the ``k - 1``
    comparisons. The control defaults to the best model (lowest mean rank).

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "case_id": ["1", "2", "3"] * 3,
    ...                   "metric": "dice", "value": [.9, .8, .85, .7, .75, .8, .5, .6, .7]})
    >>> versus_control(t, "dice").select("model_a", "model_b").rows()
    [('a', 'b'), ('a', 'c')]
    """
    paired = as_paired(data, metric, **pairing)
    n, k = paired.values.shape
    mean_ranks = paired.ranks().mean(axis=0)
    c = int(np.argmin(mean_ranks)) if control is None else paired.models.index(control)
    others = [i for i in range(k) if i != c]
    z = np.array([(mean_ranks[i] - mean_ranks[c]) / math.sqrt(k * (k + 1) / (6 * n)) for i in others])
    p = 2 * sps.norm.sf(np.abs(z))
    adjusted = adjust_p(p, correction)
    rows = [(paired.models[c], paired.models[i], "rank z", float(zi), float(pi), float(qi), correction_name(correction))
            for i, zi, pi, qi in zip(others, z, p, adjusted)]
    return pl.DataFrame(rows, schema=POSTHOC_SCHEMA, orient="row")


def cliques(mean_ranks: Mapping[str, float], cd: float) -> list[tuple[str, ...]]:
    """Maximal groups of models, consecutive by mean rank, whose ranks all lie within less than ``cd``.

    These are the bars of a critical-difference diagram: the models in one group are not
    significantly different by Nemenyi's test.

    Examples
    --------
    >>> cliques({"C4.5": 3.143, "C4.5+m": 2.0, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964}, 1.12)
    [('C4.5+m+cf', 'C4.5+m', 'C4.5+cf'), ('C4.5+cf', 'C4.5')]
    """
    ordered = sorted(mean_ranks, key=lambda m: (mean_ranks[m], m))
    groups: list[tuple[str, ...]] = []
    for i, first in enumerate(ordered):
        members = tuple(m for m in ordered[i:] if mean_ranks[m] - mean_ranks[first] < cd)
        if len(members) > 1 and not any(set(members) <= set(g) for g in groups):
            groups.append(members)
    return groups
