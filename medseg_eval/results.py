"""Results: the per-case table and the provenance that produced it; summaries with bootstrap CIs; save / load."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ._atomic import atomic_directory
from .bootstrap import case_resamples, percentile_interval
from .errors import ArgumentError
from .lesion_tables import recall_by_size
from .metrics.lesions import DEFAULT_SIZE_BINS

#: Overlap metrics that also have a pooled (dataset-level) form, from pixel counts summed over cases.
POOLED = {"dice": lambda tp, fp, fn: 2 * tp / (2 * tp + fp + fn), "iou": lambda tp, fp, fn: tp / (tp + fp + fn)}
_FILES = ("per_case.parquet", "counts.parquet", "provenance.json")
#: Every file :meth:`Results.save` writes; a folder holding anything else is never replaced.
RESULT_FILES = (*_FILES, "lesions.parquet")


@dataclass
class Results:
    """What :func:`medseg_eval.evaluate` returns.

    Attributes
    ----------
    per_case
        Long table, one row per case x class x metric: ``case_id, class, metric, value, class_id,
        pred_empty, target_empty``.
    counts
        Pixel counts per case x class (``tp, fp, fn, tn``), from which pooled Dice and IoU come.
    provenance
        Everything that decided the numbers: package and torch versions, dataset, revision and
        manifest hash, split, convention, empty-mask policy, lesion criteria, rules applied to the
        predictions, device, time, sha256 of the predictions.
    lesions
        With lesion metrics: one row per ground-truth lesion (``case_id, class, class_id, lesion,
        area, area_mm2, top, left, bottom, right, covered, overlap, best_iou, detected``).
    """

    per_case: pl.DataFrame
    counts: pl.DataFrame
    provenance: dict[str, Any]
    lesions: pl.DataFrame | None = None

    def wide(self) -> pl.DataFrame:
        """One row per case x class, one column per metric.

        Examples
        --------
        >>> import medseg_eval, numpy as np
        >>> gt = {"a": np.eye(8, dtype=np.uint8), "b": np.ones((8, 8), np.uint8)}
        >>> res = medseg_eval.evaluate(gt, targets=gt, metrics=["dice", "hd95"], progress=False)
        >>> res.wide().columns
        ['case_id', 'class', 'class_id', 'dice', 'hd95']
        """
        return (self.per_case.pivot(on="metric", index=["case_id", "class", "class_id"], values="value")
                .sort("case_id", "class_id"))

    def summary(self, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> pl.DataFrame:
        """Per metric and class: mean, sd, median, IQR and a seeded percentile-bootstrap CI of the mean.

        Cases are resampled with replacement ``n_boot`` times (the same resamples for every metric).
        NaN values (a ``"nan"`` empty-mask policy) are left out and counted in ``n_nan``. Dice and
        IoU also get a row ``aggregate="pooled"``: the metric of the pixel counts summed over all
        cases (the founding study's "mDice"), with its bootstrap CI; lesion recall gets one too:
        detected lesions over all lesions, each lesion counted once whatever its case.

        Examples
        --------
        >>> import medseg_eval, numpy as np
        >>> gt = {f"c{i}": np.pad(np.ones((4, 4), np.uint8), i + 1) for i in range(5)}
        >>> res = medseg_eval.evaluate(gt, targets=gt, metrics=["dice"], progress=False)
        >>> res.summary().select("metric", "aggregate", "mean", "ci_low", "ci_high").rows()
        [('dice', 'mean', 1.0, 1.0, 1.0), ('dice', 'pooled', 1.0, 1.0, 1.0)]
        """
        if not 0 < confidence < 1:
            raise ArgumentError(f"`confidence` must lie in (0, 1), got {confidence}.")
        case_ids = sorted(self.per_case["case_id"].unique().to_list())
        index = {c: i for i, c in enumerate(case_ids)}
        resamples = case_resamples(len(case_ids), n_boot, seed)

        def interval(boot: np.ndarray) -> dict[str, float]:
            low, high = percentile_interval(boot, confidence, ignore_nan=True)
            return {"ci_low": _f(low), "ci_high": _f(high)}

        rows = []
        metrics = list(dict.fromkeys(self.per_case["metric"].to_list()))
        classes = self.per_case.select("class_id", "class").unique().sort("class_id").rows()
        for metric in metrics:
            for class_id, name in classes:
                part = self.per_case.filter((pl.col("metric") == metric) & (pl.col("class_id") == class_id))
                values = np.full(len(case_ids), np.nan)
                values[[index[c] for c in part["case_id"]]] = part["value"].to_numpy()
                ok = ~np.isnan(values)
                kept = values[ok]
                boot = _nanmean_rows(values[resamples])
                rows.append({
                    "metric": metric, "class": name, "class_id": class_id, "aggregate": "mean", "n": int(ok.sum()),
                    "n_nan": int((~ok).sum()), "mean": _f(kept.mean()) if kept.size else None,
                    "sd": _f(kept.std(ddof=1)) if kept.size > 1 else None,
                    "median": _f(np.median(kept)) if kept.size else None,
                    "q1": _f(np.percentile(kept, 25)) if kept.size else None,
                    "q3": _f(np.percentile(kept, 75)) if kept.size else None,
                    **(interval(boot) if kept.size else {"ci_low": None, "ci_high": None}),
                })
                if metric == "lesion_recall" and self.lesions is not None:
                    of_class = self.lesions.filter(pl.col("class_id") == class_id)
                    found, total = np.zeros(len(case_ids)), np.zeros(len(case_ids))
                    per_case_counts = of_class.group_by("case_id").agg(pl.len(), pl.col("detected").sum())
                    positions = [index[c] for c in per_case_counts["case_id"]]
                    total[positions] = per_case_counts["len"].to_numpy()
                    found[positions] = per_case_counts["detected"].to_numpy()
                    boot = np.array([found[r].sum() / total[r].sum() if total[r].sum() else np.nan for r in resamples])
                    rows.append({
                        "metric": metric, "class": name, "class_id": class_id, "aggregate": "pooled",
                        "n": int(total.sum()), "n_nan": 0, "mean": _f(found.sum() / total.sum()) if total.sum() else None,
                        "sd": None, "median": None, "q1": None, "q3": None,
                        **(interval(boot) if total.sum() else {"ci_low": None, "ci_high": None}),
                    })
                if metric in POOLED:
                    counts = self.counts.filter(pl.col("class_id") == class_id)
                    tp, fp, fn = (np.zeros(len(case_ids)) for _ in range(3))
                    for array, column in ((tp, "tp"), (fp, "fp"), (fn, "fn")):
                        array[[index[c] for c in counts["case_id"]]] = counts[column].to_numpy()
                    pooled = pooled_value(metric, tp.sum(), fp.sum(), fn.sum())
                    boot = np.array([pooled_value(metric, tp[r].sum(), fp[r].sum(), fn[r].sum()) for r in resamples])
                    rows.append({
                        "metric": metric, "class": name, "class_id": class_id, "aggregate": "pooled",
                        "n": len(case_ids), "n_nan": 0, "mean": _f(pooled), "sd": None, "median": None, "q1": None,
                        "q3": None, **interval(boot),
                    })
        return pl.DataFrame(rows, schema={
            "metric": pl.String, "class": pl.String, "class_id": pl.Int64, "aggregate": pl.String, "n": pl.Int64,
            "n_nan": pl.Int64, "mean": pl.Float64, "sd": pl.Float64, "median": pl.Float64, "q1": pl.Float64,
            "q3": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
        })

    def small_lesion_recall(self, size_bins: Sequence[float] = DEFAULT_SIZE_BINS, *,
                            in_mm2: bool = False) -> pl.DataFrame:
        """Lesion recall per size bin ``[bin_low, bin_high)`` and class, pooled over all cases.

        Areas in pixels, or in squared spacing units with ``in_mm2``. An empty bin has recall NaN.
        """
        if self.lesions is None:
            raise ArgumentError("these results hold no lesions; evaluate with a lesion metric such as 'lesion_recall'.")
        classes = self.lesions.select("class_id", "class").unique().sort("class_id")
        out = recall_by_size(self.lesions, size_bins, size="area_mm2" if in_mm2 else "area",
                             classes=classes["class_id"].to_list(), class_column="class_id")
        return out.join(classes, on="class_id").select("class", pl.exclude("class"))

    def save(self, path: str | Path) -> Path:
        """Write the results to the folder ``path`` (per-case and counts parquet, provenance JSON), atomically.

        The folder is replaced as a whole only once every file is written; a crash leaves the
        previous results intact. A folder that holds anything else is never replaced.
        """
        path = Path(path)
        with atomic_directory(path, owned=RESULT_FILES) as staging:
            self.per_case.write_parquet(staging / "per_case.parquet")
            self.counts.write_parquet(staging / "counts.parquet")
            if self.lesions is not None:
                self.lesions.write_parquet(staging / "lesions.parquet")
            (staging / "provenance.json").write_text(json.dumps(self.provenance, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Results:
        """Read results written by :meth:`save`.

        Examples
        --------
        >>> import medseg_eval, numpy as np, tempfile
        >>> gt = {"a": np.eye(6, dtype=np.uint8)}
        >>> res = medseg_eval.evaluate(gt, targets=gt, metrics=["dice"], progress=False)
        >>> again = Results.load(res.save(tempfile.mkdtemp() + "/run"))
        >>> again.per_case.equals(res.per_case) and again.provenance == res.provenance
        True
        """
        path = Path(path)
        missing = [f for f in _FILES if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} is not a saved Results folder (missing {', '.join(missing)}).")
        lesions = pl.read_parquet(path / "lesions.parquet") if (path / "lesions.parquet").is_file() else None
        return cls(pl.read_parquet(path / "per_case.parquet"), pl.read_parquet(path / "counts.parquet"),
                   json.loads((path / "provenance.json").read_text()), lesions)


def pooled_value(metric: str, tp: float, fp: float, fn: float) -> float:
    """Pooled Dice or IoU (:data:`POOLED`) of pixel counts summed over cases; 1.0 where nothing is anywhere.

    Nothing predicted and nothing to find, in any case, is perfect, as it is per case. Results'
    summaries and the leaderboards' pooled mDice both come from here (through :func:`pooled_values`).

    Examples
    --------
    >>> pooled_value("dice", 2, 1, 0), pooled_value("iou", 2, 1, 1), pooled_value("dice", 0, 0, 0)
    (0.8, 0.5, 1.0)
    """
    return float(pooled_values(metric, tp, fp, fn))


def pooled_values(metric: str, tp: np.ndarray | float, fp: np.ndarray | float, fn: np.ndarray | float) -> np.ndarray:
    """:func:`pooled_value` elementwise over arrays of summed counts (e.g. one per fold or bootstrap resample).

    The one definition of pooled Dice and IoU: cross-validation summaries take it on their resamples'
    sums, :func:`pooled_value` on one set of sums.

    Examples
    --------
    >>> import numpy as np
    >>> pooled_values("dice", np.array([2.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 0.0])).tolist()
    [0.8, 1.0]
    """
    tp, fp, fn = np.asarray(tp, dtype=np.float64), np.asarray(fp, dtype=np.float64), np.asarray(fn, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fp + fn > 0, POOLED[metric](tp, fp, fn), 1.0)


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(x)
    count = ok.sum(1)
    return np.where(count > 0, np.where(ok, x, 0).sum(1) / np.maximum(count, 1), np.nan)


def _f(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x
