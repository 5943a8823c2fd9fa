"""Rankings of models by three schemes, and how stable they are under bootstrap resampling of the cases.

The schemes are those of challenge reports (Maier-Hein et al. 2018; Wiesenfarth et al. 2021,
challengeR): *aggregate-then-rank* (rank the models' mean, or median, over cases),
*rank-then-aggregate* (rank the models within each case, then rank their mean rank) and
*test-then-rank* (count, for each model, the models it is significantly better than by a
one-sided paired Wilcoxon test at ``alpha``, without correction as challengeR; rank by that count).
Rank 1 is the best; tied scores share the best rank among them (``"min"``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import stats as sps

from ..bootstrap import case_resamples
from .friedman import as_paired
from .paired import wilcoxon
from .pairing import PairedValues

Scheme = Literal["aggregate-then-rank", "rank-then-aggregate", "test-then-rank"]
SCHEMES: tuple[str, ...] = ("aggregate-then-rank", "rank-then-aggregate", "test-then-rank")


def _check_scheme(scheme: str, aggregate: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown ranking scheme {scheme!r}; expected one of {', '.join(SCHEMES)}.")
    if aggregate not in ("mean", "median"):
        raise ValueError(f"`aggregate` must be 'mean' or 'median', got {aggregate!r}.")


def _scores(values: np.ndarray, higher: bool, scheme: str, aggregate: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(score, rank) per model; what the score means depends on the scheme."""
    if scheme == "aggregate-then-rank":
        score = values.mean(axis=0) if aggregate == "mean" else np.median(values, axis=0)
        return score, sps.rankdata(-score if higher else score, method="min")
    if scheme == "rank-then-aggregate":
        score = sps.rankdata(-values if higher else values, axis=1).mean(axis=0)
        return score, sps.rankdata(score, method="min")
    k = values.shape[1]
    wins = np.zeros(k)
    for i, j in itertools.combinations(range(k), 2):
        # One-sided "i better than j" and "j better than i" from one normal-approximation statistic.
        result = wilcoxon(values[:, i], values[:, j], method="approx")
        z = result.details.get("z", 0.0)
        p_i_larger, p_j_larger = sps.norm.sf(z), sps.norm.cdf(z)
        p_i_better, p_j_better = (p_i_larger, p_j_larger) if higher else (p_j_larger, p_i_larger)
        wins[i] += p_i_better < alpha
        wins[j] += p_j_better < alpha
    return wins, sps.rankdata(-wins, method="min")


def rank_models(data: pl.DataFrame | PairedValues, metric: str | None = None, *,
                scheme: Scheme = "aggregate-then-rank", aggregate: Literal["mean", "median"] = "mean",
                alpha: float = 0.05, **pairing: Any) -> pl.DataFrame:
    """Rank the models by one scheme: ``model, score, rank`` (rank 1 = best), best first.

    ``score`` is the mean (or median) for aggregate-then-rank, the mean rank for
    rank-then-aggregate, and the number of significant wins for test-then-rank (Wilcoxon,
    normal approximation with tie correction, zeros dropped).

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "case_id": ["1", "2", "3"] * 2,
    ...                   "metric": "hd95", "value": [1.0, 2.0, 13.0, 4.0, 5.0, 6.0]})
    >>> rank_models(t, "hd95").rows()  # b has the lower mean HD95...
    [('b', 5.0, 1), ('a', 5.333333333333333, 2)]
    >>> rank_models(t, "hd95", scheme="rank-then-aggregate").rows()  # ...a is better on 2 of 3 cases
    [('a', 1.3333333333333333, 1), ('b', 1.6666666666666667, 2)]
    """
    _check_scheme(scheme, aggregate)
    paired = as_paired(data, metric, **pairing)
    score, rank = _scores(paired.values, paired.higher_is_better, scheme, aggregate, alpha)
    return pl.DataFrame({"model": paired.models, "score": score.astype(np.float64), "rank": rank.astype(np.int64)}
                        ).sort("rank", "model")


@dataclass
class RankStability:
    """Bootstrap distribution of the ranks.

    Attributes
    ----------
    frequencies
        ``model, rank, frequency, full_rank``: the share of bootstrap samples in which each model
        got each rank (every rank 1..k listed), and its rank on all cases.
    taus
        Kendall's tau-b between each bootstrap ranking and the full one (NaN where a ranking is all ties).
    """

    scheme: str
    n_boot: int
    seed: int
    frequencies: pl.DataFrame
    taus: np.ndarray

    def summary(self) -> pl.DataFrame:
        """Per model: full rank, median bootstrap rank and its 95% interval, share of samples at the full rank."""
        rows = []
        for model, part in self.frequencies.group_by("model", maintain_order=True):
            ranks, freq = part["rank"].to_numpy(), part["frequency"].to_numpy()
            cdf = np.cumsum(freq)
            quantile = {q: int(ranks[np.searchsorted(cdf, q - 1e-12)]) for q in (0.025, 0.5, 0.975)}
            full = int(part["full_rank"][0])
            rows.append({"model": model[0], "full_rank": full, "median_rank": quantile[0.5],
                         "rank_low": quantile[0.025], "rank_high": quantile[0.975],
                         "at_full_rank": float(freq[ranks == full].sum())})
        return pl.DataFrame(rows).sort("full_rank", "model")


def rank_stability(data: pl.DataFrame | PairedValues, metric: str | None = None, *,
                   scheme: Scheme = "aggregate-then-rank", aggregate: Literal["mean", "median"] = "mean",
                   alpha: float = 0.05, n_boot: int = 1000, seed: int = 0, **pairing: Any) -> RankStability:
    """Rank the models on ``n_boot`` bootstrap resamples of the cases (blocks), seeded.

    Resamples are ``numpy.random.default_rng(seed).integers(0, N, (n_boot, N))`` over the N blocks.

    References
    ----------
    Wiesenfarth M. et al. (2021) Methods and open-source toolkit for analyzing and visualizing
    challenge results. Scientific Reports 11.

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "case_id": ["1", "2", "3", "4"] * 2,
    ...                   "metric": "dice", "value": [.9, .8, .7, .95, .6, .85, .5, .7]})
    >>> s = rank_stability(t, "dice", n_boot=200)
    >>> s.summary().select("model", "full_rank", "at_full_rank").rows()
    [('a', 1, 0.99), ('b', 2, 0.99)]
    """
    _check_scheme(scheme, aggregate)
    paired = as_paired(data, metric, **pairing)
    n, k = paired.values.shape
    _, full = _scores(paired.values, paired.higher_is_better, scheme, aggregate, alpha)
    resamples = case_resamples(n, n_boot, seed)
    boot = np.stack([_scores(paired.values[r], paired.higher_is_better, scheme, aggregate, alpha)[1]
                     for r in resamples])
    counts = np.stack([(boot == rank).sum(axis=0) for rank in range(1, k + 1)], axis=1)  # [model, rank]
    with np.errstate(invalid="ignore"):
        taus = np.array([_kendall(full, b) for b in boot])
    frequencies = pl.DataFrame({
        "model": np.repeat(paired.models, k), "rank": np.tile(np.arange(1, k + 1), k),
        "frequency": (counts / n_boot).ravel(), "full_rank": np.repeat(full.astype(np.int64), k),
    })
    return RankStability(scheme, n_boot, seed, frequencies, taus)


def _kendall(a: Sequence[float], b: Sequence[float]) -> float:
    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(sps.kendalltau(a, b).statistic)
