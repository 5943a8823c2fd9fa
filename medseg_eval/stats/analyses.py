"""The analyses of one metric and class in a comparison: each model's summary, pairwise tests with their
effect sizes and bootstrap CIs, the omnibus and post-hoc tests, the rankings and their stability."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ..bootstrap import case_resamples, percentile_interval
from ..errors import ArgumentError
from .friedman import PAIRWISE_TESTS, conover, critical_difference, friedman, nemenyi
from .multiple import adjust_p, correction_name
from .paired import bootstrap_ci, cohen_dz, rank_biserial
from .pairing import PairedValues
from .ranking import SCHEMES, Scheme, rank_models, rank_stability


@dataclass(frozen=True)
class AnalysisOptions:
    """The checked options of one comparison, shared by every metric and class."""

    tests: list[str]
    correction: str
    alpha: float
    zero_method: str
    confidence: float
    n_boot: int
    n_permutations: int
    stability_scheme: Scheme
    n_rank_boot: int
    seed: int


def checked_tests(test: str | Sequence[str], correction: str, stability_scheme: str,
                   alpha: float) -> tuple[list[str], str]:
    """The pairwise tests and the correction's name, once every option is known to be valid."""
    tests = [test] if isinstance(test, str) else list(test)
    unknown = [t for t in tests if t not in PAIRWISE_TESTS]
    if unknown or not tests:
        raise ArgumentError(f"unknown test(s) {unknown or tests}; expected {', '.join(PAIRWISE_TESTS)}.")
    if stability_scheme not in SCHEMES:
        raise ArgumentError(f"unknown ranking scheme {stability_scheme!r}; expected one of {', '.join(SCHEMES)}.")
    if not 0 < alpha < 1:
        raise ArgumentError(f"`alpha` must lie in (0, 1), got {alpha}.")
    return tests, correction_name(correction)


def analyses(paired: PairedValues, o: AnalysisOptions) -> dict[str, pl.DataFrame]:
    """Every analysis of one metric and class, each frame labelled with them: summary, pairwise tests,
    omnibus and post-hoc tests (three models or more), rankings, rank stability and its Kendall's tau."""
    key = {"metric": paired.metric, "class": paired.class_name}
    test_options = {"wilcoxon": {"zero_method": o.zero_method}, "t": {},
                    "permutation": {"n_resamples": o.n_permutations, "seed": o.seed}}
    out = {
        "summary": _summary(paired, o.confidence, o.n_boot, o.seed),
        "pairwise": _pairwise(paired, o.tests, o.correction, test_options, o.alpha, o.zero_method, o.confidence,
                              o.n_boot, o.seed),
        "ranking": pl.concat([rank_models(paired, scheme=s, alpha=o.alpha).with_columns(scheme=pl.lit(s))
                              for s in SCHEMES]),
    }
    if len(paired.models) >= 3:
        out["omnibus"] = _omnibus(paired, o.alpha)
        out["posthoc"] = pl.concat([nemenyi(paired), conover(paired, correction=o.correction)])
    stability = rank_stability(paired, scheme=o.stability_scheme, alpha=o.alpha, n_boot=o.n_rank_boot, seed=o.seed)
    out["stability"] = stability.frequencies
    taus = stability.taus[~np.isnan(stability.taus)]
    out = {k: v.with_columns(**{c: pl.lit(x) for c, x in key.items()}) for k, v in out.items()}
    out["kendall"] = pl.DataFrame([{
        **key, "scheme": o.stability_scheme, "n_boot": o.n_rank_boot,
        "tau_mean": float(taus.mean()) if taus.size else None,
        "tau_median": float(np.median(taus)) if taus.size else None,
        "tau_low": float(np.quantile(taus, 0.025)) if taus.size else None,
        "tau_high": float(np.quantile(taus, 0.975)) if taus.size else None}])
    return out


def _summary(paired: PairedValues, confidence: float, n_boot: int, seed: int) -> pl.DataFrame:
    values = paired.values
    n = values.shape[0]
    boot = values[case_resamples(n, n_boot, seed)].mean(axis=1)  # [n_boot, k]
    ci_low, ci_high = percentile_interval(boot, confidence)
    mean = values.mean(axis=0)
    ranks = dict(rank_models(paired).select("model", "rank").rows())
    return pl.DataFrame({
        "model": paired.models, "n": pl.Series([n] * len(paired.models), dtype=pl.Int64), "mean": mean,
        "sd": pl.Series(values.std(axis=0, ddof=1) if n > 1 else [None] * len(paired.models), dtype=pl.Float64),
        "median": np.median(values, axis=0), "q1": np.quantile(values, 0.25, axis=0),
        "q3": np.quantile(values, 0.75, axis=0), "ci_low": ci_low,
        "ci_high": ci_high, "mean_rank": paired.ranks().mean(axis=0),
        "rank": [ranks[m] for m in paired.models],
        "higher_is_better": paired.higher_is_better,
    })


def _pairwise(paired: PairedValues, tests: list[str], correction: str, options: dict[str, dict[str, Any]],
              alpha: float, zero_method: str, confidence: float, n_boot: int, seed: int) -> pl.DataFrame:
    rows = []
    pairs = list(itertools.combinations(range(len(paired.models)), 2))
    for test in tests:
        results = [PAIRWISE_TESTS[test](paired.values[:, i], paired.values[:, j], **options[test]) for i, j in pairs]
        adjusted = adjust_p(np.array([r.p_value for r in results]), correction)
        for (i, j), result, p_adjusted in zip(pairs, results, adjusted):
            x, y = paired.values[:, i], paired.values[:, j]
            mean, mean_low, mean_high = bootstrap_ci(x, y, confidence=confidence, n_boot=n_boot, seed=seed)
            median, median_low, median_high = bootstrap_ci(x, y, statistic="median", confidence=confidence,
                                                           n_boot=n_boot, seed=seed)
            better = None if mean == 0 else paired.models[i if (mean > 0) == paired.higher_is_better else j]
            rows.append({
                "model_a": paired.models[i], "model_b": paired.models[j], "n": len(x), "test": test,
                "method": result.method, "statistic": result.statistic, "p_value": result.p_value,
                "p_adjusted": float(p_adjusted), "correction": correction,
                "significant": bool(p_adjusted < alpha), "better": better, "mean_diff": mean,
                "mean_diff_low": mean_low, "mean_diff_high": mean_high, "median_diff": median,
                "median_diff_low": median_low, "median_diff_high": median_high,
                "rank_biserial": rank_biserial(x, y, zero_method=zero_method),
                "cohen_dz": cohen_dz(x, y) if len(x) > 1 else None,
            })
    return pl.DataFrame(rows, schema_overrides={"better": pl.String, "cohen_dz": pl.Float64})


def _omnibus(paired: PairedValues, alpha: float) -> pl.DataFrame:
    result = friedman(paired)
    return pl.DataFrame([{
        "test": "friedman", "n_blocks": result.n_blocks, "n_models": result.n_models, "statistic": result.statistic,
        "df": result.df, "p_value": result.p_value, "iman_davenport": result.iman_davenport,
        "iman_davenport_p": result.iman_davenport_p, "alpha": alpha,
        "critical_difference": critical_difference(result.n_models, result.n_blocks, alpha=alpha),
    }])
