"""A bundle's cross-validation: the held-out folds (and seeds) beside the test-split score, checked like it.

A bundle may carry ``cross_validation/``, a saved :class:`~medseg_eval.stats.CrossValidation`
(``per_case``, ``counts`` and ``per_fold`` parquet and ``cross_validation.json``), whose sha256s
``meta.json`` records under ``"cross_validation"``, and, where the submitter kept them, each fold's
held-out predictions (``predictions-fold<K>[-seed<S>].zip``, label maps as :mod:`.archive` writes them).

:func:`check_folds` holds the folds to what the test-split tables are held to: their hashes, their
overlap values against their own counts (per fold, exactly as :func:`~.rescore.check_counts`), the
board's settings; then it rebuilds one :class:`~medseg_eval.Results` per (fold, seed) and calls
:func:`~medseg_eval.cross_validation` with the bundle's dataset, so that overlap, coverage and the
manifest are checked again, and the stored ``per_fold`` must be what those counts give. Carried
predictions are scored again against the canonical training masks; without them the fold numbers
are the submitter's own computation from counts, and the board says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..datasets import get_spec
from ..results import Results
from ..stats.crossval import (
    RUN_RECORD,
    CrossValidation,
    CrossValidationError,
    MixedSettingsError,
    cross_validation,
)
from .archive import read_archive, write_archive
from .errors import (
    IncompleteSubmissionError,
    RevisionMismatchError,
    SettingsMismatchError,
    SubmissionError,
    TamperedSubmissionError,
)
from .rescore import BOARD_SETTINGS, check_counts, check_matches, check_settings

FOLDS_DIR = "cross_validation"
TABLES = ("per_case", "counts", "per_fold")
#: What a fold's numbers are checked to on the board: ``per_fold`` against its counts, to summation order.
RTOL = 1e-9


def archive_name(fold: int, seed: int | None) -> str:
    """The file of one fold's held-out predictions in ``cross_validation/``.

    Examples
    --------
    >>> archive_name(2, None), archive_name(2, 7)
    ('predictions-fold2.zip', 'predictions-fold2-seed7.zip')
    """
    return f"predictions-fold{fold}" + (f"-seed{seed}" if seed is not None else "") + ".zip"


def json_sha256(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (keys sorted), independent of how the file was indented."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def fold_record(cv: CrossValidation, archives: Mapping[str, bytes]) -> dict[str, Any]:
    """What ``meta.json`` records of a cross-validation: its folds, seeds and the sha256 of every part."""
    from .bundle import table_sha256

    return {"folds": cv.folds, "seeds": cv.seeds,
            **{f"{name}_sha256": table_sha256(getattr(cv, name)) for name in TABLES},
            "lesions_sha256": table_sha256(cv.lesions) if cv.lesions is not None else None,
            "provenance_sha256": json_sha256(cv.provenance),
            "predictions": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(archives.items())}}


def load_cross_validation(value: CrossValidation | str | Path) -> CrossValidation:
    """A :class:`CrossValidation`, or the one saved in the folder ``value`` (``cv.save(...)``)."""
    if isinstance(value, CrossValidation):
        return value
    if isinstance(value, str | Path):
        return CrossValidation.load(value)
    raise TypeError(f"cross_validation: expected a CrossValidation or its saved folder, got {type(value).__name__}.")


def parse_fold_predictions(values: Sequence[str]) -> dict[Any, str]:
    """``fold_predictions`` from the command line's ``FOLD=PATH`` or ``FOLD,SEED=PATH`` values.

    Examples
    --------
    >>> parse_fold_predictions(["0=runs/f0", "1=runs/f1"])
    {0: 'runs/f0', 1: 'runs/f1'}
    >>> parse_fold_predictions(["0,7=runs/f0-s7"])
    {(0, 7): 'runs/f0-s7'}
    """
    out: dict[Any, str] = {}
    for value in values:
        key, sep, path = value.partition("=")
        parts = key.split(",")
        if not sep or not path or len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
            raise SubmissionError(f"fold predictions {value!r}: expected FOLD=PATH or FOLD,SEED=PATH (e.g. 0=runs/f0).")
        numbers = tuple(int(p) for p in parts)
        out[numbers if len(numbers) == 2 else numbers[0]] = path
    return out


def fold_archives(cv: CrossValidation, predictions: Mapping[Any, Any], *, label: str) -> dict[str, bytes]:
    """The archives of each fold's held-out predictions, after checking they are those the folds were scored from.

    ``predictions`` is keyed as :func:`~medseg_eval.cross_validation` keys its results (fold, or
    ``(fold, seed)``); each value is anything :func:`medseg_eval.evaluate` reads, or a run folder of
    the reference trainers (its ``predictions/held-out.npz``).
    """
    from ..predictions import read_predictions

    runs = {(r["fold"], r["seed"]): r for r in cv.provenance["runs"]}
    classes = len(cv.provenance.get("classes") or ()) or None
    archives = {}
    for key, value in predictions.items():
        fold, seed = (key if isinstance(key, tuple) else (key, cv.seeds[0]))
        if (fold, seed) not in runs:
            raise SubmissionError(f"bundle {label}: predictions given for fold {fold}, seed {seed}, which the "
                                  f"cross-validation does not hold (folds {cv.folds}, seeds {cv.seeds}).")
        if isinstance(value, str | Path) and (Path(value) / RUN_RECORD).is_file():
            value = Path(value) / "predictions" / "held-out.npz"
        ids = _held_out(cv, fold, seed)
        read = read_predictions(value, ids, num_classes=classes or 256)
        if read.sha256 != runs[(fold, seed)].get("predictions_sha256"):
            raise TamperedSubmissionError(f"bundle {label}: the predictions given for fold {fold} are not those its "
                                          "held-out results were computed from (sha256 differs).")
        archives[archive_name(fold, seed)] = write_archive(read.masks)
    missing = sorted(archive_name(f, s) for f, s in runs if archive_name(f, s) not in archives)
    if archives and missing:
        raise IncompleteSubmissionError(f"bundle {label}: held-out predictions are given for some folds but not "
                                        f"{', '.join(missing)}; give every fold's, or none.")
    return archives


def check_folds(meta: dict[str, Any], cv: CrossValidation, archives: Mapping[str, bytes], *,
                label: str) -> CrossValidation:
    """Check a bundle's cross-validation (see the module docstring); return the one computed here.

    Raises
    ------
    TamperedSubmissionError
        A part's sha256 differs from ``meta.json``'s; a fold's overlap values disagree with its
        counts; ``per_fold`` is not what the counts give; a fold's carried predictions score otherwise.
    SettingsMismatchError, RevisionMismatchError, IncompleteSubmissionError
        The folds were scored with other settings or against another dataset or manifest, or do not
        hold the cases the manifest assigns them (or overlap).
    """
    from .bundle import table_sha256

    where = f"{label} (cross-validation)"
    record = meta.get("cross_validation") or {}
    parts = {name: getattr(cv, name) for name in TABLES}
    if cv.lesions is not None or record.get("lesions_sha256") is not None:
        parts["lesions"] = cv.lesions
    for name, table in parts.items():
        if table is None or table_sha256(table) != record.get(f"{name}_sha256"):
            raise TamperedSubmissionError(f"bundle {where}: {FOLDS_DIR}/{name}.parquet does not match the sha256 "
                                          "recorded at submission; it was edited. Resubmit the saved cross-validation.")
    if json_sha256(cv.provenance) != record.get("provenance_sha256"):
        raise TamperedSubmissionError(f"bundle {where}: {FOLDS_DIR}/cross_validation.json does not match the sha256 "
                                      "recorded at submission; it was edited.")
    recorded = dict(record.get("predictions") or {})
    if sorted(recorded) != sorted(archives) or any(hashlib.sha256(archives[n]).hexdigest() != recorded[n]
                                                   for n in archives):
        raise TamperedSubmissionError(f"bundle {where}: the held-out prediction archives are not those recorded in "
                                      "meta.json; they were replaced, added or removed.")
    check_settings(cv.provenance, label=where)
    results = {}
    for (fold, seed), per_case in cv.per_case.group_by("fold", "seed", maintain_order=True):
        counts = cv.counts.filter((pl.col("fold") == fold) & pl.col("seed").eq_missing(seed))
        run = f"{where} fold {fold}" + (f" seed {seed}" if seed is not None else "")
        check_counts(per_case, counts, label=run)
        results[(fold, seed)] = _fold_results(cv, fold, seed, per_case, counts)
        if archives:
            results[(fold, seed)] = _rescore(meta["dataset"], results[(fold, seed)],
                                             archives[archive_name(fold, seed)], label=run)
    again = _merge(results, meta["dataset"], label=where)
    if again.folds != record.get("folds") or again.seeds != record.get("seeds"):
        raise TamperedSubmissionError(f"bundle {where}: holds folds {again.folds} and seeds {again.seeds}, but "
                                      f"meta.json records {record.get('folds')} and {record.get('seeds')}.")
    _check_per_fold(cv.per_fold, again.per_fold, label=where)
    return again


def _held_out(cv: CrossValidation, fold: int, seed: int | None) -> list[str]:
    part = cv.per_case.filter((pl.col("fold") == fold) & pl.col("seed").eq_missing(seed))
    return sorted(part["case_id"].unique().to_list())


def _fold_results(cv: CrossValidation, fold: int, seed: int | None, per_case: pl.DataFrame,
                  counts: pl.DataFrame) -> Results:
    """One fold's Results, with the provenance the folds share and that run's own record."""
    p = cv.provenance
    run = next((r for r in p.get("runs", []) if (r["fold"], r["seed"]) == (fold, seed)), {})
    shared = {k: p.get(k) for k in ("convention", "convention_reproduces", "empty_policy", "percentile", "tolerance",
                                     "lesion_criteria", "metrics", "classes", "spacing_unit", "resize", "dataset",
                                     "manifest_sha256", "dataset_revision", "package_version")}
    provenance = {**shared, **{k: run.get(k) for k in ("predictions_sha256", "targets_sha256", "time")}}
    lesions = (cv.lesions.filter((pl.col("fold") == fold) & pl.col("seed").eq_missing(seed)).drop("fold", "seed")
               if cv.lesions is not None else None)
    return Results(per_case.drop("fold", "seed", strict=False), counts.drop("fold", "seed", strict=False),
                   provenance, lesions)


def _merge(results: dict[tuple[int, int | None], Results], dataset: str, *, label: str) -> CrossValidation:
    """:func:`~medseg_eval.cross_validation` of the rebuilt folds, its errors as the board's."""
    several = len({seed for _, seed in results}) > 1 or any(seed is not None for _, seed in results)
    keyed = {(key if several else key[0]): res for key, res in results.items()}
    try:
        return cross_validation(keyed, dataset=dataset)
    except MixedSettingsError as err:
        kind = RevisionMismatchError if "manifest" in str(err) or "dataset" in str(err) else SettingsMismatchError
        raise kind(f"bundle {label}: {err}") from None
    except CrossValidationError as err:
        raise IncompleteSubmissionError(f"bundle {label}: {err}") from None


def _rescore(dataset: str, stored: Results, archive: bytes, *, label: str) -> Results:
    """One fold's held-out predictions scored again against the canonical training masks; the stored tables
    must agree (counts exactly, values to :data:`~.rescore.RTOL`), and what was computed here is returned."""
    from ..datasets.truth import split_truth
    from ..evaluate import evaluate
    from ..metrics import EmptyPolicy, LesionCriteria
    from ..metrics.conventions import LESION_METRICS

    ids = sorted(stored.per_case["case_id"].unique().to_list())
    masks = read_archive(archive, label=label, case_ids=ids)
    truth = split_truth(get_spec(dataset).name, "train", progress=False)
    cases, wrong = truth.read(ids, verify=True)
    if wrong:
        raise TamperedSubmissionError(f"bundle {label}: the canonical training masks here differ from the manifest "
                                      f"({', '.join(wrong[:3])}); rebuild the dataset to check this bundle.")
    p = stored.provenance
    metrics = p.get("metrics") or ["dice"]
    spacing = {c: truth.spacing[c] for c in ids} if p.get("spacing_unit") not in (None, "pixel") else None
    again = evaluate(masks, targets={c: np.asarray(m) for c, (m, _) in zip(ids, cases)}, spacing=spacing,
                     num_classes=len(p.get("classes") or ()) or None, metrics=metrics,
                     convention=BOARD_SETTINGS["convention"], empty=EmptyPolicy(),
                     percentile=BOARD_SETTINGS["percentile"], tolerance=BOARD_SETTINGS["tolerance"],
                     lesions=LesionCriteria() if any(m in LESION_METRICS for m in metrics) else None, progress=False)
    check_matches(stored.counts, again.counts, table=f"{FOLDS_DIR}/counts", label=label)
    check_matches(stored.per_case, again.per_case, table=f"{FOLDS_DIR}/per_case", label=label)
    if again.provenance.get("predictions_sha256") != p.get("predictions_sha256"):
        raise TamperedSubmissionError(f"bundle {label}: the label maps in its archive are not the predictions its "
                                      "held-out results were computed from (their sha256 differs).")
    return Results(again.per_case, again.counts, p, again.lesions)


def _check_per_fold(stored: pl.DataFrame, computed: pl.DataFrame, *, label: str) -> None:
    keys = ["fold", "seed", "metric", "class_id"]
    joined = computed.join(stored, on=keys, how="full", suffix="_stored", coalesce=True, nulls_equal=True)
    if joined.height != computed.height or stored.height != computed.height:
        raise TamperedSubmissionError(f"bundle {label}: {FOLDS_DIR}/per_fold.parquet has {stored.height} rows where "
                                      f"its per-case tables give {computed.height}.")
    for column in ("n", "n_nan", "mean", "pooled"):
        ours = joined[column].cast(pl.Float64).to_numpy()
        theirs = joined[f"{column}_stored"].cast(pl.Float64).to_numpy()
        wrong = np.flatnonzero(~np.isclose(theirs, ours, rtol=RTOL, atol=1e-12, equal_nan=True))
        if wrong.size:
            row = joined.row(int(wrong[0]), named=True)
            raise TamperedSubmissionError(
                f"bundle {label}: {FOLDS_DIR}/per_fold.parquet gives {row['metric']} {column} {theirs[wrong[0]]:.6g} "
                f"for fold {row['fold']}, class {row['class_id']}, but its per-case values and counts give "
                f"{ours[wrong[0]]:.6g}.")
