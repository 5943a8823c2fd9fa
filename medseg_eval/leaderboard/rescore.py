"""What a board checks in a bundle's numbers: its settings, its own arithmetic, and its predictions scored again.

A bundle's tables are caches. :func:`check_counts` holds every bundle's per-case overlap values to
the confusion counts they derive from (Dice = 2TP / (2TP + FP + FN), ...), and its empty flags to
the same counts. :func:`rescore` scores the bundle's ``predictions.zip`` against the canonical
ground truth with the board's settings (:data:`BOARD_SETTINGS`) and the evaluate settings the
bundle records that change its numbers (its metrics; instance maps or semantic masks, from
``provenance["instances"]``) and returns what it computed; the stored tables must agree with it, counts exactly and values to :data:`RTOL` (what the engine's own
exactness to the references allows across versions), or the bundle is refused as tampered.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import polars as pl
import torch

from ..datasets import get_spec
from ..instance_scoring import INSTANCE_ID_LIMIT, InstanceScoring
from ..metrics import EmptyPolicy, LesionCriteria, TopologyOptions
from ..metrics.conventions import (
    DEFAULT_CONVENTION,
    INSTANCE_METRICS,
    LESION_METRICS,
    OVERLAP_METRICS,
    TOPOLOGY_METRICS,
)
from ..metrics.overlap import ConfusionCounts, overlap_metric
from ..prediction_errors import PredictionError
from .archive import ARCHIVE, read_archive
from .errors import SettingsMismatchError, TamperedSubmissionError

#: The settings every ranked number of a board is computed with (those of ``evaluate``'s defaults).
BOARD_SETTINGS: dict[str, Any] = {"convention": DEFAULT_CONVENTION, "empty_policy": EmptyPolicy().as_dict(),
                                  "percentile": 95.0, "tolerance": 2.0}
RTOL, ATOL = 1e-6, 1e-9
COUNTS = ("tp", "fp", "fn", "tn")
#: Topology metrics whose options ``evaluate`` records (``provenance["topology_options"]``).
_RECORDED_TOPOLOGY = tuple(m for m in TOPOLOGY_METRICS if m != "boundary_f1")


def instance_predictions(provenance: dict[str, Any]) -> bool:
    """Whether the results were scored from instance maps (``evaluate(..., instances=True)``), as recorded.

    Examples
    --------
    >>> instance_predictions({"instances": {"instances_from": "predictions"}}), instance_predictions({})
    (True, False)
    """
    return (provenance.get("instances") or {}).get("instances_from") == "predictions"


def prediction_classes(provenance: dict[str, Any]) -> int:
    """The ``num_classes`` the predictions were read with: instance maps take any id below
    :data:`~medseg_eval.instance_scoring.INSTANCE_ID_LIMIT`, label maps the recorded classes.

    Examples
    --------
    >>> prediction_classes({"classes": ["background", "polyp"]})
    2
    """
    return INSTANCE_ID_LIMIT if instance_predictions(provenance) else len(provenance.get("classes") or ())


def _recorded_settings(provenance: dict[str, Any]) -> dict[str, Any]:
    """The settings besides :data:`BOARD_SETTINGS` that evaluate records where its metrics need them."""
    metrics = provenance.get("metrics") or ()
    expected: dict[str, Any] = {}
    if any(m in LESION_METRICS for m in metrics):
        expected["lesion_criteria"] = LesionCriteria().as_dict()
    if any(m in _RECORDED_TOPOLOGY for m in metrics) or provenance.get("topology_options") is not None:
        expected["topology_options"] = _topology(TopologyOptions().as_dict())
    if any(m in INSTANCE_METRICS for m in metrics) or provenance.get("instances") is not None:
        expected["instances"] = InstanceScoring((), instance_predictions(provenance)).provenance()
    return expected


def _topology(options: Any) -> Any:
    """Topology options without the skeleton's library version, which changes with the board's environment
    (numbers that depend on it are checked when the predictions are scored again)."""
    return {k: v for k, v in options.items() if k != "skeleton"} if isinstance(options, dict) else options


def check_settings(provenance: dict[str, Any], *, label: str) -> None:
    """Raise :class:`SettingsMismatchError` unless ``provenance`` records the board's settings.

    A bundle scored with another empty-mask policy (``one_empty="nan"`` drops every missed case
    from the mean), convention, percentile, tolerance, lesion criterion or topology options, or
    whose objects come from another rule than evaluate's two (instance maps, or 8-connected
    components of semantic masks), is not comparable.

    Examples
    --------
    >>> check_settings({**BOARD_SETTINGS, "metrics": ["dice"]}, label="demo")
    >>> check_settings({**BOARD_SETTINGS, "metrics": ["dice"], "percentile": 90.0}, label="demo")
    Traceback (most recent call last):
    ...
    medseg_eval.leaderboard.errors.SettingsMismatchError: bundle demo: scored with percentile 90.0; boards score with 95.0. Evaluate again with evaluate()'s defaults.
    """
    expected = {**BOARD_SETTINGS, **_recorded_settings(provenance)}
    for key, value in expected.items():
        found = _topology(provenance.get(key)) if key == "topology_options" else provenance.get(key)
        if found != value:
            raise SettingsMismatchError(f"bundle {label}: scored with {key.replace('_', ' ')} {provenance.get(key)!r}; "
                                        f"boards score with {value!r}. Evaluate again with evaluate()'s defaults.")
    if "dice" not in (provenance.get("metrics") or ()):
        raise SettingsMismatchError(f"bundle {label}: has no Dice, the metric boards rank by; evaluate with it.")


def check_counts(per_case: pl.DataFrame, counts: pl.DataFrame, *, label: str) -> None:
    """Raise :class:`TamperedSubmissionError` where a per-case overlap value or empty flag disagrees with the
    bundle's own confusion counts (or a case x class has values without counts).

    Examples
    --------
    >>> import polars as pl
    >>> counts = pl.DataFrame({"case_id": ["a"], "class_id": [1], "tp": [2.0], "fp": [1.0], "fn": [0.0], "tn": [1.0]})
    >>> row = {"case_id": ["a"], "class_id": [1], "metric": ["dice"], "pred_empty": [False], "target_empty": [False]}
    >>> check_counts(pl.DataFrame({**row, "value": [0.8]}), counts, label="demo")
    >>> check_counts(pl.DataFrame({**row, "value": [0.9]}), counts, label="demo")
    Traceback (most recent call last):
    ...
    medseg_eval.leaderboard.errors.TamperedSubmissionError: bundle demo: per_case.parquet gives dice 0.9 for case a, class 1, but its counts (tp 2, fp 1, fn 0) give 0.8.
    """
    keys = ["case_id", "class_id"]
    unmatched = per_case.select(keys).unique().join(counts.select(keys), on=keys, how="anti")
    if not unmatched.is_empty() or (counts.select(COUNTS).to_numpy() < 0).any():
        raise TamperedSubmissionError(f"bundle {label}: per_case.parquet and counts.parquet do not describe the same "
                                      "cases and classes with non-negative counts.")
    joined = per_case.join(counts, on=keys, how="inner")
    tp, fp, fn, tn = (torch.from_numpy(joined[c].cast(pl.Float64).to_numpy().copy()).view(-1, 1) for c in COUNTS)
    flags = {"pred_empty": (tp + fp == 0).view(-1).numpy(), "target_empty": (tp + fn == 0).view(-1).numpy()}
    for flag, expected in flags.items():
        wrong = np.flatnonzero(joined[flag].to_numpy() != expected)
        if wrong.size:
            row = joined.row(int(wrong[0]), named=True)
            raise TamperedSubmissionError(f"bundle {label}: per_case.parquet marks case {row['case_id']}, class "
                                          f"{row['class_id']} {flag}={row[flag]}, but its counts say otherwise.")
    empty = EmptyPolicy()
    for metric in sorted(set(joined["metric"].to_list()) & set(OVERLAP_METRICS)):
        rows = np.flatnonzero(joined["metric"].to_numpy() == metric)
        derived = overlap_metric(metric, ConfusionCounts(tp[rows], fp[rows], fn[rows], tn[rows]), empty).view(-1).numpy()
        stored = joined["value"].to_numpy()[rows]
        wrong = np.flatnonzero(~np.isclose(stored, derived, rtol=1e-9, atol=1e-12, equal_nan=True))
        if wrong.size:
            row = joined.row(int(rows[wrong[0]]), named=True)
            raise TamperedSubmissionError(
                f"bundle {label}: per_case.parquet gives {metric} {row['value']:.6g} for case {row['case_id']}, class "
                f"{row['class_id']}, but its counts (tp {row['tp']:g}, fp {row['fp']:g}, fn {row['fn']:g}) give "
                f"{derived[wrong[0]]:.6g}.")


def rescore(meta: dict[str, Any], archive: bytes, case_ids: Collection[str], *,
            label: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The per-case and counts tables of the bundle's predictions, scored here against the canonical ground truth
    of its dataset's test split (``case_ids``) with :data:`BOARD_SETTINGS`.

    Raises
    ------
    TamperedSubmissionError
        When the predictions cannot be scored (missing cases, wrong sizes, ...) or are not those the
        bundle says its results came from (their sha256).
    """
    from ..evaluate import evaluate

    provenance = meta.get("provenance") or {}
    metrics = provenance.get("metrics") or ["dice"]
    lesions = LesionCriteria() if any(m in LESION_METRICS for m in metrics) else None
    masks = read_archive(archive, label=label, case_ids=case_ids)
    try:
        again = evaluate(masks, meta["dataset"], split=get_spec(meta["dataset"]).test_split, metrics=metrics,
                         instances=instance_predictions(provenance),
                         convention=BOARD_SETTINGS["convention"], empty=EmptyPolicy(),
                         percentile=BOARD_SETTINGS["percentile"], tolerance=BOARD_SETTINGS["tolerance"],
                         lesions=lesions, resize=provenance.get("resize"), progress=False)
    except PredictionError as err:
        raise TamperedSubmissionError(f"bundle {label}: its {ARCHIVE} cannot be scored: {err}") from None
    if again.provenance["predictions_sha256"] != meta.get("predictions_sha256"):
        raise TamperedSubmissionError(f"bundle {label}: the label maps in {ARCHIVE} are not the predictions its "
                                      "results were computed from (their sha256 differs from meta.json's).")
    return again.per_case, again.counts


def check_matches(stored: pl.DataFrame, computed: pl.DataFrame, *, table: str, label: str) -> None:
    """Raise :class:`TamperedSubmissionError` unless the stored table has the rows of the computed one and its
    values (``value``, or the four counts) agree: counts exactly, values to ``RTOL``/``ATOL``, NaN with NaN.

    Examples
    --------
    >>> import polars as pl
    >>> t = pl.DataFrame({"case_id": ["a"], "class_id": [1], "metric": ["hd95"], "value": [3.0]})
    >>> check_matches(t, t.with_columns(value=pl.lit(3.0 + 1e-12)), table="per_case", label="demo")
    >>> check_matches(t.with_columns(value=pl.lit(2.0)), t, table="per_case", label="demo")
    Traceback (most recent call last):
    ...
    medseg_eval.leaderboard.errors.TamperedSubmissionError: bundle demo: per_case.parquet gives value 2 for case a, class 1, metric hd95; its predictions score 3.
    """
    keys = [k for k in ("case_id", "class_id", "metric") if k in computed.columns]
    values = [c for c in ("value", *COUNTS) if c in computed.columns]
    joined = computed.select(*keys, *values).join(stored.select(*keys, *values), on=keys, how="full",
                                                  suffix="_stored", coalesce=True)
    if joined.height != computed.height or joined.height != stored.height:
        raise TamperedSubmissionError(f"bundle {label}: {table}.parquet has {stored.height} rows where its "
                                      f"predictions give {computed.height} (cases, classes or metrics differ).")
    for column in values:
        ours, theirs = joined[column].to_numpy(), joined[f"{column}_stored"].to_numpy()
        close = ours == theirs if column in COUNTS else np.isclose(theirs, ours, rtol=RTOL, atol=ATOL, equal_nan=True)
        wrong = np.flatnonzero(~close)
        if wrong.size:
            row = joined.row(int(wrong[0]), named=True)
            where = ", ".join(f"{k.removesuffix('_id')} {row[k]}" for k in keys)
            raise TamperedSubmissionError(f"bundle {label}: {table}.parquet gives {column} {theirs[wrong[0]]:.6g} "
                                          f"for {where}; its predictions score {ours[wrong[0]]:.6g}.")
