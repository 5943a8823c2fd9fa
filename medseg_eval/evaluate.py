"""evaluate(): ground truth from a dataset (or the caller), predictions in any form, the engine, Results."""

from __future__ import annotations

import datetime as dt
import platform
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
import torch

from . import metrics as engine
from .datasets import get_spec, manifest_sha256
from .datasets.errors import ManifestMismatchError
from .datasets.truth import split_truth
from .metrics._validation import as_policy, as_spacing, check_options
from .predictions import (
    PredictionLabelError,
    PredictionSet,
    PredictionShapeError,
    distinct_values,
    only_0_and_255,
    preview,
    read_predictions,
)
from .results import Results

#: Scored when ``metrics`` is not given.
DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "assd", "nsd", "lesion_recall")
#: Pixels (cases x foreground classes x height x width) in one batch at most, which bounds the memory
#: a batch takes: a 4439 x 6688 ISIC image is a batch of its own, 512 x 512 binary masks go 64 at a time
#: (as ``batch_size`` allows).
PIXELS_PER_BATCH = 1 << 24


class GroundTruthMismatchError(ManifestMismatchError):
    """The ground truth about to be scored differs from the dataset's manifest."""


def evaluate(
    preds: Any,
    dataset: str | None = None,
    *,
    split: str | None = None,
    targets: Any = None,
    spacing: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    num_classes: int | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    convention: engine.Convention = engine.DEFAULT_CONVENTION,
    empty: engine.EmptyPolicy | None = None,
    percentile: float = 95.0,
    tolerance: float = 2.0,
    lesions: engine.LesionCriteria | None = None,
    device: str = "auto",
    batch_size: int = 16,
    resize: Literal["nearest"] | None = None,
    verify_ground_truth: bool = True,
    progress: bool = True,
) -> Results:
    """Score predictions against a dataset's canonical ground truth (or the caller's own).

    Parameters
    ----------
    preds
        A dict ``case_id -> array``, a folder or zip of files named by case id (PNG, GIF, BMP, TIFF,
        NPY, NPZ, NIfTI; the dataset's own mask names work too), an array/tensor ``[N, H, W]`` in the
        split's order (sorted case ids), scores ``[N, C, H, W]`` (argmax; one channel of probabilities: > 0.5), or a
        ``datasets.Dataset`` with ``case_id`` and ``mask`` columns.
    dataset
        A registered dataset (``medseg-eval datasets list``), built or mirrored locally.
    split
        Default: the dataset's test split (e.g. ``"test"``; ``"validation"`` for Kvasir-SEG).
    targets, spacing, num_classes
        Instead of ``dataset``: the ground truth in any form ``preds`` accepts, the pixel size
        ``(sy, sx)`` (also as ``[1, 2]``; or a dict case id -> ``(sy, sx)`` with exactly the targets' case
        ids), and the number of classes with background (default: the largest label found + 1).
    metrics, convention, empty, percentile, tolerance, lesions
        As in :func:`medseg_eval.metrics.compute`. With a lesion metric among ``metrics`` the
        results also hold one row per ground-truth lesion (:attr:`Results.lesions`).
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    batch_size
        Cases of one shape scored together at most; a batch also holds at most
        :data:`PIXELS_PER_BATCH` pixels x foreground classes (one case at least), so that large
        images are scored a few at a time. The numbers do not depend on it.
    resize
        ``"nearest"`` resizes predictions of another size to the ground truth's; default: an error.
    verify_ground_truth
        Check every ground-truth mask against the manifest's sha256 first (default). Turning it
        off is recorded in the provenance.
    progress
        Show a progress bar counting the cases scored.

    Notes
    -----
    A dataset's ground truth is decoded once per process and reused by later calls on the same
    split while its files are unchanged (the last two splits used are kept; see
    :mod:`medseg_eval.datasets.truth`). Prediction files are read in a few threads.

    Raises
    ------
    MissingCasesError, UnknownCasesError, PredictionShapeError, PredictionLabelError, PredictionFormatError
        On bad predictions, before anything is scored; each names the cases.
    GroundTruthMismatchError
        When the ground truth differs from the manifest (names the cases).

    Examples
    --------
    >>> import numpy as np, medseg_eval
    >>> gt = {"case1": np.pad(np.ones((4, 4), np.uint8), 2), "case2": np.pad(np.ones((2, 6), np.uint8), 3)}
    >>> pred = {"case1": np.pad(np.ones((4, 5), np.uint8), ((2, 2), (2, 1))), "case2": gt["case2"]}
    >>> res = medseg_eval.evaluate(pred, targets=gt, metrics=["dice", "hd95"], progress=False)
    >>> res.per_case.filter(metric="dice").select("case_id", "value").rows()
    [('case1', 0.8888888888888888), ('case2', 1.0)]
    """
    if (dataset is None) == (targets is None):
        raise ValueError("give either `dataset` (a registered name) or `targets` (your own ground truth), not both.")
    # Options are checked before any file is read.
    percentile, tolerance = check_options(metrics, convention, percentile, tolerance)
    engine_metrics = [str(m) for m in metrics]  # plain names for the provenance record
    empty = as_policy(empty, engine.EmptyPolicy, "empty")
    lesions = as_policy(lesions, engine.LesionCriteria, "lesions")
    if resize not in (None, "nearest"):
        raise ValueError(f'`resize` must be None or "nearest", got {resize!r}.')
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer (cases scored together), got {batch_size!r}.")
    provenance: dict[str, Any] = {}
    if dataset is not None:
        given = [k for k, v in (("spacing", spacing), ("num_classes", num_classes)) if v is not None]
        if given:
            raise ValueError(f"{dataset}: {' and '.join(f'`{k}`' for k in given)} come from the dataset's manifest; "
                             "drop them, or score your own ground truth with `targets=`.")
        truth, class_names, provenance = _dataset_truth(dataset, split, verify_ground_truth)
        spec = get_spec(dataset)
        predictions = read_predictions(preds, sorted(truth), num_classes=len(class_names),
                                       match=spec.match_file(sorted(truth)))
    else:
        truth, class_names, provenance = _own_truth(targets, spacing, num_classes)
        predictions = read_predictions(preds, sorted(truth), num_classes=len(class_names))
    _check_shapes(predictions, truth, resize)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    with_lesions = any(m in engine.LESION_METRICS for m in engine_metrics)
    per_case, counts, lesion_rows = _score(
        predictions, truth, class_names, engine_metrics, dev, batch_size, progress, with_lesions,
        {"convention": convention, "percentile": percentile, "tolerance": tolerance, "empty": empty, "lesions": lesions})
    from . import __version__

    provenance.update({
        "package": "medseg_eval", "package_version": __version__, "torch_version": torch.__version__,
        "python_version": platform.python_version(), "device": str(dev),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": engine_metrics, "convention": convention,
        "convention_reproduces": engine.CONVENTION_SPECS[convention].reference,
        "empty_policy": empty.as_dict(), "percentile": percentile, "tolerance": tolerance,
        "lesion_criteria": lesions.as_dict() if with_lesions else None, "resize": resize, "prediction_rules": predictions.rules,
        "predictions_source": predictions.source, "predictions_sha256": predictions.sha256,
        "num_cases": len(truth), "classes": list(class_names),
    })
    return Results(per_case, counts, provenance, lesion_rows)


def _dataset_truth(name: str, split: str | None, verify: bool):
    spec = get_spec(name)
    split = spec.check_split(split or spec.test_split)
    decoded = split_truth(spec.name, split)
    if verify:
        wrong = decoded.mismatched
        if wrong:
            raise GroundTruthMismatchError(
                spec.name, mismatched=wrong,
                hint=f"The ground truth in use is not the canonical one; rebuild it (medseg-eval datasets build "
                     f"{spec.name} ...) or pass verify_ground_truth=False to score it anyway (recorded).")
    provenance = {
        "dataset": spec.name, "split": split, "dataset_builder_version": spec.builder_version,
        "dataset_revision": spec.hub_revision or f"local build, builder v{spec.builder_version}",
        "manifest_sha256": manifest_sha256(decoded.manifest), "manifest_pinned": decoded.pinned,
        "ground_truth_verified": verify, "spacing_unit": spec.spacing_unit,
        "roi": spec.roi,
    }
    return dict(decoded.cases), list(spec.classes), provenance


def _spacing_pair(value: Any, what: str, alternative: str = "") -> tuple[float, float]:
    """One ``(sy, sx)``, checked as :func:`medseg_eval.metrics.compute` checks spacing, or an error
    that says whose spacing is wrong (not a batch index)."""
    try:
        pair = as_spacing(value, 1)
    except engine.SpacingError as err:
        raise engine.SpacingError(f"{what} must be one (sy, sx) pair of positive, finite numbers (e.g. (0.5, 0.5) "
                                  f"for 0.5 mm pixels){alternative}, but got {value!r}.") from err
    return tuple(pair[0].tolist())


def _own_truth(targets: Any, spacing, num_classes: int | None):
    inferred = num_classes is None
    if inferred:
        found = read_predictions(targets, None, num_classes=256, name="targets")
        top = max((int(m.max()) for m in found.masks.values() if m.size), default=0)
        # Binary masks saved as {0, 255} are two classes (and are read as {0, 1}), not 256.
        if top == 255 and not all(only_0_and_255(m) for m in found.masks.values()):
            values = set().union(*(distinct_values(m).tolist() for m in found.masks.values()))
            mixed = sorted(c for c, m in found.masks.items() if not m.size or m.max() != 255)
            raise PredictionLabelError(
                f"targets: some masks hold 255 and others {sorted(values - {0, 255})[:5]} (e.g. {preview(mixed, 3)}): "
                "save every binary mask the same way ({0, 1} or {0, 255}), or give `num_classes`.")
        num_classes = 2 if top in (0, 255) else top + 1
        # The labels read are converted to num_classes' (e.g. {0, 255} -> {0, 1}); the files are not read twice.
        read, source = read_predictions(found.masks, None, num_classes=num_classes, name="targets"), found.source
    else:
        read = read_predictions(targets, None, num_classes=num_classes, name="targets")
        source = read.source

    if isinstance(spacing, Mapping):
        given = {str(c) for c in spacing}
        missing, extra = sorted(set(read.masks) - given), sorted(given - set(read.masks))
        if missing:
            raise engine.SpacingError(f"`spacing` has no entry for {len(missing)} case(s): {preview(missing)}; "
                                      "give one (sy, sx) per case id, or one pair for all.")
        # A case id the targets lack is most often a misspelt one (an extension, a prefix): refused, not ignored.
        if extra:
            raise engine.SpacingError(f"`spacing` has entries for {len(extra)} case(s) the targets lack: "
                                      f"{preview(extra)} (targets' case ids look like {preview(sorted(read.masks), 3)}); "
                                      "give exactly one (sy, sx) per case id of the targets.")
        pairs = {str(c): _spacing_pair(v, f"`spacing` of case {str(c)!r}") for c, v in spacing.items()}
    else:
        every = (1.0, 1.0) if spacing is None else _spacing_pair(spacing, "`spacing`",
                                                                  ", or a dict case id -> (sy, sx)")
        pairs = dict.fromkeys(read.masks, every)
    truth = {c: (m, pairs[c], None) for c, m in read.masks.items()}
    provenance = {"dataset": None, "targets_sha256": read.sha256, "targets_source": source,
                  "num_classes_inferred": inferred, "spacing_unit": "as given" if spacing is not None else "pixel"}
    return truth, [str(c) for c in range(num_classes)], provenance


def _check_shapes(predictions: PredictionSet, truth: dict, resize: str | None) -> None:
    wrong = sorted(c for c, m in predictions.masks.items() if m.shape != truth[c][0].shape)
    if not wrong:
        return
    if resize is None:
        examples = ", ".join(f"{c} ({predictions.masks[c].shape[0]}x{predictions.masks[c].shape[1]} vs "
                             f"{truth[c][0].shape[0]}x{truth[c][0].shape[1]})" for c in wrong[:3])
        raise PredictionShapeError(
            f"{len(wrong)} prediction(s) differ in size from their ground truth: {examples}"
            f"{', ...' if len(wrong) > 3 else ''}. Ground truth is scored at its canonical resolution: predict at "
            'that size, or pass resize="nearest" to resize the predictions (recorded).')
    from PIL import Image

    for c in wrong:
        h, w = truth[c][0].shape
        predictions.masks[c] = np.asarray(Image.fromarray(predictions.masks[c]).resize((w, h), Image.NEAREST))
    predictions.rules["resize"] = f"nearest-neighbour resize to the ground truth's size ({preview(wrong, 3)})"


def _batches(truth: dict, num_classes: int, batch_size: int) -> list[tuple[bool, list[str]]]:
    """Case ids in batches of one shape (and region of interest or none), each of at most ``batch_size``
    cases and :data:`PIXELS_PER_BATCH` pixels x foreground classes (one case at least)."""
    by_shape: dict[tuple, list[str]] = defaultdict(list)
    for case_id in sorted(truth):
        by_shape[(truth[case_id][0].shape, truth[case_id][2] is not None)].append(case_id)
    batches = []
    for ((height, width), has_roi), ids in by_shape.items():
        per_batch = max(1, min(batch_size, PIXELS_PER_BATCH // max(1, height * width * (num_classes - 1))))
        batches += [(has_roi, ids[i:i + per_batch]) for i in range(0, len(ids), per_batch)]
    return batches


def _score(predictions: PredictionSet, truth: dict, class_names: list[str], metrics: list[str], device: torch.device,
           batch_size: int, progress: bool, with_lesions: bool, options: dict):
    from tqdm.auto import tqdm

    num_classes = len(class_names)
    names = metrics + list(engine.COUNTS)
    values: dict[str, dict[str, np.ndarray]] = {}
    lesion_parts = []
    with tqdm(total=len(truth), desc="scoring", unit="case", disable=not progress) as bar:
        for has_roi, ids in _batches(truth, num_classes, batch_size):
            pred = torch.from_numpy(np.stack([predictions.masks[c] for c in ids])).to(device)
            target = torch.from_numpy(np.stack([truth[c][0] for c in ids])).to(device)
            roi = torch.from_numpy(np.stack([truth[c][2] for c in ids])).to(device) if has_roi else None
            spacing = torch.tensor([truth[c][1] for c in ids], dtype=torch.float64, device="cpu")
            out = engine.compute(pred, target, names, num_classes=num_classes, spacing=spacing, roi=roi, **options)
            for i, case_id in enumerate(ids):
                values[case_id] = {m: out[m][i].cpu().numpy() for m in names}
            if with_lesions:
                criteria = options["lesions"]
                table = engine.lesion_detection(pred, target, num_classes, criteria.connectivity, criteria.min_overlap,
                                                spacing, criterion=criteria.criterion,
                                                iou_threshold=criteria.iou_threshold, roi=roi)
                lesion_parts.append(table.with_columns(case_id=pl.Series(ids)[table["case"]]).drop("case"))
            bar.update(len(ids))
    rows, count_rows = [], []
    for case_id in sorted(values):
        v = values[case_id]
        for k in range(num_classes - 1):
            tp, fp, fn, tn = (float(v[m][k]) for m in engine.COUNTS)
            flags = {"pred_empty": tp + fp == 0, "target_empty": tp + fn == 0}
            for m in metrics:
                rows.append({"case_id": case_id, "class": class_names[k + 1], "metric": m, "value": float(v[m][k]),
                             "class_id": k + 1, **flags})
            count_rows.append({"case_id": case_id, "class": class_names[k + 1], "class_id": k + 1,
                               "tp": tp, "fp": fp, "fn": fn, "tn": tn})
    schema = {"case_id": pl.String, "class": pl.String, "metric": pl.String, "value": pl.Float64, "class_id": pl.Int64,
              "pred_empty": pl.Boolean, "target_empty": pl.Boolean}
    count_schema = {"case_id": pl.String, "class": pl.String, "class_id": pl.Int64, "tp": pl.Float64, "fp": pl.Float64,
                    "fn": pl.Float64, "tn": pl.Float64}
    lesions = None
    if with_lesions:
        names_of = pl.DataFrame({"class": list(range(1, num_classes)), "class_name": class_names[1:]})
        lesions = (pl.concat(lesion_parts).rename({"class": "class_id"})
                   .join(names_of.rename({"class": "class_id", "class_name": "class"}), on="class_id")
                   .select("case_id", "class", "class_id", pl.exclude("case_id", "class", "class_id"))
                   .sort("case_id", "class_id", "lesion"))
    return pl.DataFrame(rows, schema=schema), pl.DataFrame(count_rows, schema=count_schema), lesions
