"""The numbers of a cross-validation: per fold, over folds (and seeds), pooled, and their hierarchical bootstrap CI.

Every statistic here is a function of sums over cases, so that one routine serves them all: the
per-case mean is ``sum(value) / count`` (NaN values left out, as in ``Results.summary``), pooled Dice
and IoU come from the summed pixel counts, pooled lesion recall from the summed lesion counts. A
fold's value is the statistic of its cases' sums; the value over folds is the mean of the folds'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from ..bootstrap import hierarchical_resamples, percentile_interval
from ..results import POOLED, pooled_values

if TYPE_CHECKING:
    from .crossval import CrossValidation

#: Statistic of summed columns ``[..., q]`` -> ``[...]``.
Statistic = Callable[[np.ndarray], np.ndarray]
_CHUNK = 128  # resamples gathered at once: bounds memory to _CHUNK x units x cases x columns


def _ratio(sums: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums[..., 1] > 0, sums[..., 0] / np.where(sums[..., 1] > 0, sums[..., 1], 1), np.nan)


def _pooled(metric: str) -> Statistic:
    def statistic(sums: np.ndarray) -> np.ndarray:
        return pooled_values(metric, sums[..., 0], sums[..., 1], sums[..., 2])
    return statistic


def _columns(cv: CrossValidation | tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None], metric: str,
             class_id: int, aggregate: str) -> tuple[pl.DataFrame, Statistic]:
    """Per held-out case (``fold, seed, case_id``, then the summed columns ``sum_0, sum_1, ...``) and the statistic of their sums."""
    per_case, counts, lesions = (cv.per_case, cv.counts, cv.lesions) if not isinstance(cv, tuple) else cv
    keys = ["fold", "seed", "case_id"]
    if aggregate == "mean":
        part = per_case.filter((pl.col("metric") == metric) & (pl.col("class_id") == class_id))
        ok = pl.col("value").is_not_nan()
        return part.select(*keys, pl.when(ok).then(pl.col("value")).otherwise(0.0).alias("sum_0"),
                           ok.cast(pl.Float64).alias("sum_1")), _ratio
    if metric == "lesion_recall":
        cases = per_case.filter((pl.col("metric") == metric) & (pl.col("class_id") == class_id)).select(keys)
        found = (lesions.filter(pl.col("class_id") == class_id).group_by(keys)
                 .agg(pl.col("detected").cast(pl.Float64).sum().alias("sum_0"), pl.len().cast(pl.Float64).alias("sum_1")))
        return cases.join(found, on=keys, how="left", nulls_equal=True).fill_null(0.0), _ratio
    part = counts.filter(pl.col("class_id") == class_id)
    return part.select(*keys, pl.col("tp").alias("sum_0"), pl.col("fp").alias("sum_1"), pl.col("fn").alias("sum_2")), \
        _pooled(metric)


def _aggregates(metric: str, lesions: pl.DataFrame | None) -> list[str]:
    pooled = metric in POOLED or (metric == "lesion_recall" and lesions is not None)
    return ["mean", "pooled"] if pooled else ["mean"]


def _sums(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(pl.selectors.starts_with("sum_")).to_numpy().astype(np.float64)


def per_fold(per_case: pl.DataFrame, counts: pl.DataFrame, lesions: pl.DataFrame | None) -> pl.DataFrame:
    """One row per fold, seed, metric and class: ``n, n_nan, mean, pooled`` of that fold's held-out cases."""
    rows = []
    metrics = list(dict.fromkeys(per_case["metric"].to_list()))
    classes = per_case.select("class_id", "class").unique().sort("class_id").rows()
    runs = per_case.select("fold", "seed").unique(maintain_order=True).rows()
    for metric in metrics:
        for class_id, name in classes:
            values = {}
            for aggregate in _aggregates(metric, lesions):
                frame, statistic = _columns((per_case, counts, lesions), metric, class_id, aggregate)
                for (fold, seed), part in frame.group_by("fold", "seed"):
                    values[(fold, seed, aggregate)] = (float(statistic(_sums(part).sum(0))), part)
            for fold, seed in runs:
                mean, part = values[(fold, seed, "mean")]
                n = int(part["sum_1"].sum())
                pooled = values.get((fold, seed, "pooled"), (None,))[0]
                rows.append({"fold": fold, "seed": seed, "metric": metric, "class": name, "class_id": class_id,
                             "n": n, "n_nan": part.height - n, "mean": _f(mean), "pooled": _f(pooled)})
    return pl.DataFrame(rows, schema={"fold": pl.Int64, "seed": pl.Int64, "metric": pl.String, "class": pl.String,
                                      "class_id": pl.Int64, "n": pl.Int64, "n_nan": pl.Int64, "mean": pl.Float64,
                                      "pooled": pl.Float64})


def summarize(cv: CrossValidation, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0,
              resample: Literal["auto", "folds", "seeds"] = "auto") -> pl.DataFrame:
    """Per metric, class and aggregate (``"mean"``: per-case mean; ``"pooled"``: summed counts), over folds.

    Columns: ``n_folds, n_seeds, n_cases`` (distinct held-out cases); ``mean, sd, min, max`` of the
    fold values over every fold (of every seed; ``sd`` with ``ddof=1``, as the founding study
    reports mean ± sd over its 5 folds); ``sd_seeds``, the sd over seeds of each seed's mean over
    folds (null with one seed); ``held_out``, the statistic of every held-out case pooled (each case
    once per seed); ``ci_low, ci_high``, a percentile interval of the mean over folds from a
    two-stage bootstrap: ``n_boot`` resamples of the folds (``resample="folds"``; the default with
    one seed) or of the seeds (``"seeds"``, the default with several; every fold of a drawn seed
    kept), then of the cases within each drawn fold, drawn with ``seed``
    (:func:`medseg_eval.bootstrap.hierarchical_resamples`).

    Examples
    --------
    >>> import medseg_eval, numpy as np
    >>> gt = {f"c{i}": np.pad(np.ones((4, 4), np.uint8), 2) for i in range(4)}
    >>> cv = medseg_eval.cross_validation({k: medseg_eval.evaluate(
    ...     {c: gt[c] for c in ("c0", "c1")[k:k + 1] + ("c2", "c3")[k:k + 1]},
    ...     targets={c: gt[c] for c in ("c0", "c1")[k:k + 1] + ("c2", "c3")[k:k + 1]},
    ...     metrics=["hd95"], progress=False) for k in (0, 1)})
    >>> summarize(cv).select("metric", "n_folds", "n_cases", "mean", "ci_low", "ci_high").rows()
    [('hd95', 2, 4, 0.0, 0.0, 0.0)]
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must lie in (0, 1), got {confidence}.")
    seeds, folds = cv.seeds, cv.folds
    if resample == "auto":
        resample = "seeds" if len(seeds) > 1 else "folds"
    if resample not in ("folds", "seeds"):
        raise ValueError(f"`resample` must be 'auto', 'folds' or 'seeds', got {resample!r}.")
    if resample == "seeds" and len(seeds) < 2:
        raise ValueError(f"resample='seeds' needs several seeds; these folds have {len(seeds)}. Use 'folds'.")
    runs = [(f, s) for s in seeds for f in folds]
    # Units of the first stage, each a list of its strata (folds): runs, or seeds holding every fold.
    units = [[r] for r in runs] if resample == "folds" else [[(f, s) for f in folds] for s in seeds]
    rows = []
    metrics = list(dict.fromkeys(cv.per_case["metric"].to_list()))
    classes = cv.per_case.select("class_id", "class").unique().sort("class_id").rows()
    for metric in metrics:
        for class_id, name in classes:
            for aggregate in _aggregates(metric, cv.lesions):
                frame, statistic = _columns(cv, metric, class_id, aggregate)
                by_run = {key: _sums(part.sort("case_id")) for key, part in frame.group_by("fold", "seed")}
                fold_values = np.array([statistic(by_run[r].sum(0)) for r in runs], dtype=np.float64)
                seed_means = [_nanmean(fold_values[i * len(folds):(i + 1) * len(folds)]) for i in range(len(seeds))]
                boot = _hierarchical([[by_run[r] for r in unit] for unit in units], statistic, n_boot, seed)
                low, high = percentile_interval(boot, confidence, ignore_nan=True) if not np.isnan(boot).all() \
                    else (np.nan, np.nan)
                ok = fold_values[~np.isnan(fold_values)]
                rows.append({
                    "metric": metric, "class": name, "class_id": class_id, "aggregate": aggregate,
                    "n_folds": len(folds), "n_seeds": len(seeds), "n_cases": frame["case_id"].n_unique(),
                    "mean": _f(_nanmean(fold_values)), "sd": _f(ok.std(ddof=1)) if ok.size > 1 else None,
                    "min": _f(ok.min()) if ok.size else None, "max": _f(ok.max()) if ok.size else None,
                    "sd_seeds": _f(np.std(seed_means, ddof=1)) if len(seeds) > 1 else None,
                    "held_out": _f(statistic(_sums(frame).sum(0))), "ci_low": _f(low), "ci_high": _f(high),
                })
    return pl.DataFrame(rows, schema={
        "metric": pl.String, "class": pl.String, "class_id": pl.Int64, "aggregate": pl.String, "n_folds": pl.Int64,
        "n_seeds": pl.Int64, "n_cases": pl.Int64, "mean": pl.Float64, "sd": pl.Float64, "min": pl.Float64,
        "max": pl.Float64, "sd_seeds": pl.Float64, "held_out": pl.Float64, "ci_low": pl.Float64,
        "ci_high": pl.Float64})


def _hierarchical(units: list[list[np.ndarray]], statistic: Statistic, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` values of the mean over units of the mean over each unit's strata of ``statistic``.

    ``units[u][k]`` holds the summed columns ``[cases, q]`` of stratum (fold) ``k`` of unit ``u``.
    """
    strata = [[len(stratum) for stratum in unit] for unit in units]
    draws_units, draws_cases = hierarchical_resamples(strata, n_boot, seed)
    width, q, n_strata = draws_cases.shape[2], units[0][0].shape[1], max(len(u) for u in units)
    table = np.zeros((len(units), width, q))
    stratum_of = np.full((len(units), width), -1)
    for u, unit in enumerate(units):
        table[u, :sum(strata[u])] = np.concatenate(unit)
        stratum_of[u, :sum(strata[u])] = np.repeat(np.arange(len(unit)), strata[u])
    out = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        chosen, cases = draws_units[start:start + _CHUNK], draws_cases[start:start + _CHUNK]
        drawn = table[chosen[..., None], np.maximum(cases, 0)]  # [chunk, units, width, q]; -1 rows masked below
        strata_drawn = stratum_of[chosen]  # a case keeps its stratum
        per_stratum = np.stack([(drawn * (strata_drawn == k)[..., None]).sum(2) for k in range(n_strata)], 2)
        values = statistic(per_stratum)  # [chunk, units, strata]
        present = np.arange(n_strata) < np.array([len(s) for s in strata])[chosen][..., None]
        unit_values = _nanmean(np.where(present, values, np.nan), axis=2)
        out[start:start + _CHUNK] = _nanmean(unit_values, axis=1)
    return out


def _nanmean(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    count = ok.sum(axis)
    total = np.where(ok, x, 0.0).sum(axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _f(x: float | None) -> float | None:
    return None if x is None or np.isnan(x) else float(x)
