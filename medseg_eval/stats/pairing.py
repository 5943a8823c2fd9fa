"""The long per-case table of several models, and its pairing by case id into a blocks x models matrix.

Everything in :mod:`medseg_eval.stats` starts here: results of several models become one long table
``model, [dataset,] case_id, class, class_id, metric, value``; :func:`paired_values` joins the
models on ``case_id`` (never on row order) and returns the values as a matrix whose rows are the
blocks (cases, or datasets) and whose columns are the models.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from ..errors import MedsegEvalError
from ..metrics.conventions import (
    AGREEMENT_METRICS,
    DISTANCE_METRICS,
    HIGHER_IS_BETTER,
    INSTANCE_METRICS,
    LESION_METRICS,
    METRIC_ALIASES,
    OVERLAP_METRICS,
    TOPOLOGY_METRICS,
)
from ..results import Results

MissingPolicy = Literal["error", "worst", "drop"]
Blocks = Literal["case", "dataset"]

#: Metrics on [0, 1] whose worst value is 0 (the ``"worst"`` missing-case policy).
BOUNDED_WORST_ZERO = frozenset(
    OVERLAP_METRICS + ("nsd", "cldice", "boundary_iou", "boundary_f1", "balanced_accuracy", "volume_similarity")
    + tuple(m for m in LESION_METRICS if m != "fp_objects")
    + tuple(m for m in INSTANCE_METRICS if m != "object_hausdorff")
)
#: Metrics the package computes; their direction is known.
KNOWN_METRICS = frozenset(OVERLAP_METRICS + DISTANCE_METRICS + AGREEMENT_METRICS + TOPOLOGY_METRICS + LESION_METRICS
                          + INSTANCE_METRICS)
ModelResults = Results | pl.DataFrame | str | Path


class PairingError(MedsegEvalError, ValueError):
    """The models' per-case tables cannot be paired case by case as asked."""


class DuplicateCaseError(PairingError):
    """A model has more than one value for one case, class and metric."""


class UnpairedCasesError(PairingError):
    """Some models have no value for cases that others have, and no missing-case policy was chosen."""


class DroppedCasesWarning(UserWarning):
    """The ``"drop"`` policy left cases out of a comparison."""


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better: the metric's own direction, never the user's.

    Examples
    --------
    >>> higher_is_better("dice"), higher_is_better("hd95")
    (True, False)
    """
    name = METRIC_ALIASES.get(metric, metric)
    if name not in KNOWN_METRICS:
        raise PairingError(f"unknown metric {metric!r}: its direction is not known; "
                         f"expected one of {', '.join(sorted(KNOWN_METRICS))}.")
    return name in HIGHER_IS_BETTER


def per_case_table(models: Mapping[str, ModelResults | Sequence[ModelResults]] | pl.DataFrame) -> pl.DataFrame:
    """One long table ``model, dataset, case_id, class, class_id, metric, value`` of several models.

    Parameters
    ----------
    models
        ``{name: results}`` where results are :class:`~medseg_eval.Results`, a saved results folder,
        a per-case table, or a list of those (one model on several datasets); or a long table that
        already has a ``model`` column. ``dataset`` comes from each result's provenance (``None``
        for results against one's own targets).

    Examples
    --------
    >>> import medseg_eval, numpy as np
    >>> gt = {"a": np.eye(8, dtype=np.uint8), "b": np.ones((8, 8), np.uint8)}
    >>> res = medseg_eval.evaluate(gt, targets=gt, metrics=["dice"], progress=False)
    >>> per_case_table({"m1": res, "m2": res}).select("model", "case_id", "value").rows()
    [('m1', 'a', 1.0), ('m1', 'b', 1.0), ('m2', 'a', 1.0), ('m2', 'b', 1.0)]
    """
    if isinstance(models, pl.DataFrame):
        return _normalise(models, None, None)
    if not isinstance(models, Mapping) or not models:
        raise TypeError("expected a non-empty mapping {model name: Results} or a long per-case table with a "
                        f"'model' column, got {type(models).__name__}.")
    parts = []
    for name, results in models.items():
        many = isinstance(results, Sequence) and not isinstance(results, str | Path)
        for one in (results if many else [results]):
            parts.append(_normalise(*_as_table(one), model=str(name)))
    return pl.concat(parts, how="vertical_relaxed")


def _as_table(results: ModelResults) -> tuple[pl.DataFrame, str | None]:
    if isinstance(results, str | Path):
        results = Results.load(results)
    if isinstance(results, Results):
        return results.per_case, results.provenance.get("dataset")
    if isinstance(results, pl.DataFrame):
        return results, None
    raise TypeError(f"expected Results, a saved results folder or a polars DataFrame, got {type(results).__name__}.")


def _normalise(table: pl.DataFrame, dataset: str | None, model: str | None) -> pl.DataFrame:
    required = {"case_id", "metric", "value"} | ({"model"} if model is None else set())
    missing = required - set(table.columns)
    if missing:
        raise ValueError(f"the per-case table lacks the column(s) {', '.join(sorted(missing))}; expected the long "
                         "table of Results.per_case (case_id, class, metric, value)"
                         + (" with a 'model' column" if model is None else "") + ".")
    if model is not None:
        table = table.with_columns(pl.lit(model).alias("model"))
    if "dataset" not in table.columns:
        table = table.with_columns(pl.lit(dataset, pl.String).alias("dataset"))
    if "class_id" not in table.columns:
        table = table.with_columns(pl.lit(1, pl.Int64).alias("class_id"))
    if "class" not in table.columns:
        table = table.with_columns(pl.col("class_id").cast(pl.String).alias("class"))
    return table.select(
        pl.col("model").cast(pl.String), pl.col("dataset").cast(pl.String), pl.col("case_id").cast(pl.String),
        pl.col("class").cast(pl.String), pl.col("class_id").cast(pl.Int64), pl.col("metric").cast(pl.String),
        pl.col("value").cast(pl.Float64),
    )


@dataclass
class PairedValues:
    """The values of one metric and class, paired by case: a blocks x models matrix.

    Attributes
    ----------
    values
        ``[n_blocks, n_models]`` float64; row ``i`` is block ``blocks[i]``, column ``j`` model ``models[j]``.
    higher_is_better
        The metric's direction.
    missing
        What the missing-case policy did: ``{"policy", "imputed": {model: n}, "worst_value", "dropped"}``.
    """

    metric: str
    class_name: str
    models: list[str]
    blocks: list[str]
    values: np.ndarray
    higher_is_better: bool
    missing: dict[str, Any] = field(default_factory=dict)

    def ranks(self) -> np.ndarray:
        """Ranks within each block, 1 = best, ties averaged (the Friedman ranks)."""
        from scipy.stats import rankdata

        return rankdata(-self.values if self.higher_is_better else self.values, axis=1, method="average")


def paired_values(table: pl.DataFrame, metric: str, *, class_: str | int | None = None,
                  models: Sequence[str] | None = None, blocks: Blocks = "case", missing: MissingPolicy = "error",
                  worst: Mapping[str, float] | None = None) -> PairedValues:
    """Pair the models' values of ``metric`` by ``case_id`` (and dataset) into a blocks x models matrix.

    Parameters
    ----------
    table
        Long per-case table (:func:`per_case_table`).
    metric
        Metric to compare; its direction comes from the metric.
    class_
        Foreground class, by name or id. ``None`` takes the only class (an error if there are
        several); ``"mean"`` averages the classes of each case (the macro mean).
    models
        Models and their order (default: order of first appearance).
    blocks
        ``"case"``: one row per case (cases of all datasets). ``"dataset"``: one row per dataset,
        each model's mean over that dataset's cases (after the missing-case policy).
    missing
        A case that some model lacks, or whose value is NaN: ``"error"`` raises
        :class:`UnpairedCasesError`; ``"worst"`` gives it the worst value (0 for overlap metrics,
        NSD and lesion rates; for distances and ``fp_objects`` the largest value any model has for
        this metric and class, unless ``worst`` says otherwise); ``"drop"`` leaves the case out for
        every model, with a :class:`DroppedCasesWarning` that counts them.
    worst
        Worst value per metric for the ``"worst"`` policy, overriding the defaults.

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a", "a", "b", "b"], "case_id": ["x", "y", "y", "x"],
    ...                   "metric": "dice", "value": [0.9, 0.8, 0.7, 0.6]})
    >>> paired_values(t, "dice").values.tolist()
    [[0.9, 0.6], [0.8, 0.7]]
    """
    if missing not in ("error", "worst", "drop"):
        raise ValueError(f"`missing` must be 'error', 'worst' or 'drop', got {missing!r}.")
    if blocks not in ("case", "dataset"):
        raise ValueError(f"`blocks` must be 'case' or 'dataset', got {blocks!r}.")
    direction = higher_is_better(metric)
    table = _normalise(table, None, None) if set(table.columns) != _COLUMNS else table
    rows = table.filter(pl.col("metric") == METRIC_ALIASES.get(metric, metric))
    if rows.is_empty():
        raise ValueError(f"no values of metric {metric!r}; the table has {sorted(table['metric'].unique().to_list())}.")
    rows, class_name = _select_class(rows, class_)
    order = list(dict.fromkeys(rows["model"].to_list())) if models is None else list(models)
    unknown = sorted(set(order) - set(rows["model"].unique().to_list()))
    if unknown:
        raise ValueError(f"no {metric} values for model(s) {', '.join(unknown)}.")
    rows = rows.filter(pl.col("model").is_in(order))
    duplicated = rows.filter(pl.struct("model", "dataset", "case_id").is_duplicated())
    if not duplicated.is_empty():
        model, dataset, case = duplicated.select("model", "dataset", "case_id").row(0)
        raise DuplicateCaseError(
            f"model {model!r} has more than one row for case {case!r}"
            + (f" of {dataset}" if dataset else "") + f" ({metric}, class {class_name}); each case must appear once "
            "per model: remove the duplicates or give the runs different model names.")
    wide = rows.pivot(on="model", index=["dataset", "case_id"], values="value").sort("dataset", "case_id",
                                                                                       nulls_last=True)
    values = wide.select(order).to_numpy().astype(np.float64)
    keys = [f"{d}/{c}" if d else c for d, c in wide.select("dataset", "case_id").rows()]
    absent = np.isnan(values)
    report: dict[str, Any] = {"policy": missing}
    if absent.any():
        lacking = {m: [keys[i] for i in np.flatnonzero(absent[:, j])] for j, m in enumerate(order) if absent[:, j].any()}
        if missing == "error":
            detail = "; ".join(f"{m} lacks {len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
                               for m, ids in lacking.items())
            raise UnpairedCasesError(
                f"{metric}, class {class_name}: cases missing or NaN for some models: {detail}. Evaluate every "
                "model on the same cases, or choose missing='worst' or missing='drop' (both recorded).")
        if missing == "worst":
            value = _worst_value(metric, values, worst)
            values = np.where(absent, value, values)
            report.update(worst_value=value, imputed={m: len(ids) for m, ids in lacking.items()})
        else:
            keep = ~absent.any(axis=1)
            report.update(dropped=int((~keep).sum()), dropped_cases=[k for k, ok in zip(keys, keep) if not ok])
            warnings.warn(f"{metric}, class {class_name}: dropped {int((~keep).sum())} of {len(keys)} cases that "
                          "some model lacks (missing='drop').", DroppedCasesWarning, stacklevel=2)
            values, keys = values[keep], [k for k, ok in zip(keys, keep) if ok]
            if not keys:
                raise UnpairedCasesError(f"{metric}, class {class_name}: no case is shared by all models.")
    if blocks == "dataset":
        datasets = [k.split("/", 1)[0] if "/" in k else "" for k in keys]
        names = list(dict.fromkeys(datasets))
        values = np.stack([values[[d == n for d in datasets]].mean(axis=0) for n in names])
        keys = names
    return PairedValues(METRIC_ALIASES.get(metric, metric), class_name, order, keys, values, direction, report)


_COLUMNS = {"model", "dataset", "case_id", "class", "class_id", "metric", "value"}


def _select_class(rows: pl.DataFrame, class_: str | int | None) -> tuple[pl.DataFrame, str]:
    classes = rows.select("class_id", "class").unique().sort("class_id").rows()
    if class_ == "mean":
        if len(classes) == 1:
            return rows, classes[0][1]
        rows = rows.group_by("model", "dataset", "case_id", maintain_order=True).agg(
            pl.col("value").mean(), pl.col("metric").first())
        return rows.with_columns(pl.lit("mean").alias("class"), pl.lit(0).alias("class_id")), "mean"
    if class_ is None:
        if len(classes) > 1:
            raise ValueError(f"the table has {len(classes)} classes ({', '.join(c for _, c in classes)}); choose one "
                             "with class_=<name or id>, or class_='mean' for the mean over classes per case.")
        return rows, classes[0][1]
    for class_id, name in classes:
        if class_ in (class_id, name, str(class_id)):
            return rows.filter(pl.col("class_id") == class_id), name
    raise ValueError(f"unknown class {class_!r}; the table has {', '.join(f'{i}={c}' for i, c in classes)}.")


def _worst_value(metric: str, values: np.ndarray, worst: Mapping[str, float] | None) -> float:
    name = METRIC_ALIASES.get(metric, metric)
    if worst and name in worst:
        return float(worst[name])
    if name in BOUNDED_WORST_ZERO:
        return 0.0
    observed = values[~np.isnan(values)]
    if observed.size == 0:
        raise UnpairedCasesError(f"no {name} value to take the worst from; pass worst={{'{name}': value}}.")
    return float(observed.max())
