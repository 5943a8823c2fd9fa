"""evaluate(): ground truth from a dataset (or the caller), predictions in any form, the engine, Results."""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
import torch

from . import metrics as engine
from .batching import plan, stack, windows
from .datasets import get_spec, manifest_sha256
from .datasets.errors import ManifestMismatchError
from .datasets.registry import STANDARD_METRICS
from .datasets.truth import split_truth
from .devices import resolve_device
from .errors import ArgumentError
from .instance_scoring import INSTANCE_ID_LIMIT, InstanceScoring, split_metrics
from .lesion_tables import lesion_detection
from .metrics._validation import as_policy, as_spacing, check_options
from .predictions import (
    CaseReader,
    PredictionLabelError,
    distinct_values,
    only_0_and_255,
    open_predictions,
    preview,
)
from .resolution import check_shapes, resized
from .results import Results

#: Scored on the caller's own targets when ``metrics`` is not given; on a dataset the default is the set
#: its literature reports (:attr:`~medseg_eval.datasets.DatasetSpec.literature_metrics`).
DEFAULT_METRICS: tuple[str, ...] = STANDARD_METRICS


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
    metrics: Sequence[str] | None = None,
    instances: bool = False,
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
    download: bool = True,
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
        A registered dataset (``medseg-eval datasets list``). Not built yet, its split's masks are
        fetched and built on first use where the release is public (see ``download``).
    split
        Default: the dataset's test split (e.g. ``"test"``; ``"validation"`` for Kvasir-SEG).
    targets, spacing, num_classes
        Instead of ``dataset``: the ground truth in any form ``preds`` accepts, the pixel size
        ``(sy, sx)`` (also as ``[1, 2]``; or a dict case id -> ``(sy, sx)`` with exactly the targets' case
        ids), and the number of classes with background (default: the largest label found + 1).
    metrics
        Names as :func:`medseg_eval.metrics.compute` takes them, and on a dataset that keeps instance
        ids (GlaS, MoNuSeg) the instance metrics of :func:`medseg_eval.metrics.instance_metrics`
        (``object_f1, object_dice, object_hausdorff, aji, pq, sq, rq``: one row per case, class 1).
        Default: the dataset's literature set (``get_spec(name).literature_metrics``; e.g. DRIVE's
        accuracy, recall, specificity, Dice, clDice and Betti errors inside the field of view), or
        :data:`DEFAULT_METRICS` with ``targets``. With a lesion metric the results also hold one row
        per ground-truth lesion (:attr:`Results.lesions`).
    instances
        ``True``: the predictions are instance label maps (0 = background, each object its own id;
        16-bit PNG, NPY, ... for ids above 255), scored against the dataset's instances, their
        foreground scored as class 1 by the other metrics. Default: semantic label maps, whose
        objects are the 8-connected components of class 1 (recorded in ``provenance["instances"]``).
    convention, empty, percentile, tolerance, lesions
        As in :func:`medseg_eval.metrics.compute`. Topology metrics use the default
        :class:`~medseg_eval.metrics.TopologyOptions`, recorded as ``provenance["topology_options"]``.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    batch_size
        Cases scored together at most; a batch also holds at most
        :data:`~medseg_eval.batching.PIXELS_PER_BATCH` pixels x foreground classes (one case at
        least), so that large images are scored a few at a time, and cases of similar sizes are
        padded into one batch (:mod:`medseg_eval.batching`). The numbers do not depend on it.
    resize
        ``"nearest"`` resizes predictions of another size to the ground truth's; default: an error.
    verify_ground_truth
        Check every ground-truth mask against the manifest's sha256 as it is decoded (default). Turning it
        off is recorded in the provenance.
    progress
        Show a progress bar counting the cases scored (and the download bar of a first-use fetch).
    download
        On first use of a public dataset, fetch just the files holding the split's masks
        (``$MEDSEG_EVAL_MIRROR`` when set) and build them; ``False`` (or ``MEDSEG_EVAL_OFFLINE=1``,
        ``HF_HUB_OFFLINE=1``) raises :class:`~medseg_eval.datasets.DatasetNotBuiltError` instead,
        without any request. Generated datasets build themselves either way.

    Notes
    -----
    Memory follows the batches, not the number of cases: case ids and sizes are read first (files:
    from their headers), then predictions and ground truth are decoded (in a few threads), checked
    and hashed a run of cases at a time, in case order, and dropped once their batch is scored.
    A dataset's stored masks are loaded once per process and reused by later calls on the same
    split while its files are unchanged; its decoded masks are kept too while they fit (see
    :mod:`medseg_eval.datasets.truth`). Targets given without ``num_classes`` are read twice: once
    to count their classes, once to score them.

    Raises
    ------
    MissingCasesError, UnknownCasesError, PredictionShapeError
        On bad case ids or sizes, before anything is scored; each names the cases.
    PredictionLabelError, PredictionFormatError
        On a prediction that cannot be read or holds no class ids, when its batch is read (no results
        are returned); the first such case in sorted order is named.
    GroundTruthMismatchError
        When the ground truth differs from the manifest, as it is decoded (names the cases).

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
        raise ArgumentError("give either `dataset` (a registered name) or `targets` (your own ground truth), not both.")
    # Options are checked before any file is read.
    spec = None if dataset is None else get_spec(dataset)
    if metrics is None:
        metrics = DEFAULT_METRICS if spec is None else spec.literature_metrics
    pixel_metrics, scoring = split_metrics(metrics, spec, instances)
    percentile, tolerance = check_options(pixel_metrics, convention, percentile, tolerance)
    engine_metrics = [str(m) for m in pixel_metrics]  # plain names for the provenance record
    empty = as_policy(empty, engine.EmptyPolicy, "empty")
    lesions = as_policy(lesions, engine.LesionCriteria, "lesions")
    if resize not in (None, "nearest"):
        raise ArgumentError(f'`resize` must be None or "nearest", got {resize!r}.')
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ArgumentError(f"`batch_size` must be a positive integer (cases scored together), got {batch_size!r}.")
    dev = resolve_device(device)
    provenance: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:  # unpacked zips live until every case is scored
        targets_read = None
        if dataset is not None:
            given = [k for k, v in (("spacing", spacing), ("num_classes", num_classes)) if v is not None]
            if given:
                raise ArgumentError(f"{dataset}: {' and '.join(f'`{k}`' for k in given)} come from the dataset's "
                                 "manifest; drop them, or score your own ground truth with `targets=`.")
            truth, class_names, provenance = _dataset_truth(dataset, split, verify_ground_truth, download, progress)
            ids = sorted(truth.shapes)
            predictions = stack.enter_context(open_predictions(
                preds, ids, num_classes=INSTANCE_ID_LIMIT if instances else len(class_names), match=spec.match_file(ids)))
        else:
            truth, class_names, provenance, targets_read = _own_truth(targets, spacing, num_classes, stack)
            predictions = stack.enter_context(open_predictions(preds, sorted(truth.shapes),
                                                               num_classes=len(class_names)))
        resized = check_shapes(predictions.shapes, truth.shapes, resize, predictions.shape_hint)
        with_lesions = any(m in engine.LESION_METRICS for m in engine_metrics)
        per_case, counts, lesion_rows = _score(
            predictions, truth, class_names, engine_metrics, dev, batch_size, progress, with_lesions,
            {"convention": convention, "percentile": percentile, "tolerance": tolerance, "empty": empty,
             "lesions": lesions}, scoring)
    if targets_read is not None:
        provenance["targets_sha256"] = targets_read.sha256
    from . import __version__

    provenance.update({
        "package": "medseg_eval", "package_version": __version__, "torch_version": torch.__version__,
        "python_version": platform.python_version(), "device": str(dev),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": [str(m) for m in metrics], "convention": convention,
        "convention_reproduces": engine.CONVENTION_SPECS[convention].reference,
        "empty_policy": empty.as_dict(),
        "topology_options": (engine.TopologyOptions().as_dict()
                             if set(engine_metrics) & set(engine.TOPOLOGY_METRICS) - {"boundary_f1"} else None),
        "instances": None if scoring is None else scoring.provenance(),
        "percentile": percentile, "tolerance": tolerance,
        "lesion_criteria": lesions.as_dict() if with_lesions else None, "resize": resize,
        "prediction_rules": {**predictions.rules, **resized},
        "predictions_source": predictions.source, "predictions_sha256": predictions.sha256,
        "num_cases": len(truth.shapes), "classes": list(class_names),
    })
    return Results(per_case, counts, provenance, lesion_rows)


@dataclass(frozen=True)
class _GroundTruth:
    """What scoring needs of the ground truth before decoding it, and how to decode a few cases."""

    shapes: dict[str, tuple[int, int]]
    spacing: dict[str, tuple[float, float]]
    has_roi: bool
    read: Callable[[list[str]], list[tuple[np.ndarray, np.ndarray | None]]]
    read_instances: Callable[[list[str]], list[np.ndarray]] | None = None


def _dataset_truth(name: str, split: str | None, verify: bool, download: bool,
                   progress: bool) -> tuple[_GroundTruth, list[str], dict[str, Any]]:
    spec = get_spec(name)
    split = spec.check_split(split or spec.test_split)
    stored = split_truth(spec.name, split, download=download, progress=progress)

    def checked(read: Callable, kind: str) -> Callable[[list[str]], list]:
        def read_checked(ids: list[str]) -> list:
            cases, wrong = read(ids, verify=verify)  # each map checked against the manifest as it is decoded
            if wrong:
                raise GroundTruthMismatchError(
                    spec.name, **{kind: wrong},
                    hint=f"The ground truth in use is not the canonical one; rebuild it (medseg-eval datasets build "
                         f"{spec.name} ...) or pass verify_ground_truth=False to score it anyway (recorded).")
            return cases

        return read_checked

    provenance = {
        "dataset": spec.name, "split": split, "dataset_builder_version": spec.builder_version,
        "dataset_revision": spec.hub_revision or f"local build, builder v{spec.builder_version}",
        "manifest_sha256": manifest_sha256(stored.manifest), "manifest_pinned": stored.pinned,
        "ground_truth_verified": verify, "spacing_unit": spec.spacing_unit,
        "roi": spec.roi,
    }
    truth = _GroundTruth(stored.shapes, stored.spacing, stored.has_roi, checked(stored.read, "mismatched"),
                         checked(stored.read_instances, "mismatched_instances"))
    return truth, list(spec.classes), provenance


def _spacing_pair(value: Any, what: str, alternative: str = "") -> tuple[float, float]:
    """One ``(sy, sx)``, checked as :func:`medseg_eval.metrics.compute` checks spacing, or an error
    that says whose spacing is wrong (not a batch index)."""
    try:
        pair = as_spacing(value, 1)
    except engine.SpacingError as err:
        raise engine.SpacingError(f"{what} must be one (sy, sx) pair of positive, finite numbers (e.g. (0.5, 0.5) "
                                  f"for 0.5 mm pixels){alternative}, but got {value!r}.") from err
    return tuple(pair[0].tolist())


def _own_truth(targets: Any, spacing: Any, num_classes: int | None,
               stack: contextlib.ExitStack) -> tuple[_GroundTruth, list[str], dict[str, Any], CaseReader]:
    """The caller's ground truth, read as the predictions are; ``targets_sha256`` is known once it is scored."""
    inferred = num_classes is None
    if inferred:
        found = stack.enter_context(open_predictions(targets, None, num_classes=256, name="targets"))
        num_classes = _infer_classes(found)
        # The labels read are converted to num_classes' (e.g. {0, 255} -> {0, 1}) when they are scored.
        read = found.relabel(num_classes)
    else:
        read = stack.enter_context(open_predictions(targets, None, num_classes=num_classes, name="targets"))

    if isinstance(spacing, Mapping):
        given = {str(c) for c in spacing}
        missing, extra = sorted(set(read.ids) - given), sorted(given - set(read.ids))
        if missing:
            raise engine.SpacingError(f"`spacing` has no entry for {len(missing)} case(s): {preview(missing)}; "
                                      "give one (sy, sx) per case id, or one pair for all.")
        # A case id the targets lack is most often a misspelt one (an extension, a prefix): refused, not ignored.
        if extra:
            raise engine.SpacingError(f"`spacing` has entries for {len(extra)} case(s) the targets lack: "
                                      f"{preview(extra)} (targets' case ids look like {preview(read.ids, 3)}); "
                                      "give exactly one (sy, sx) per case id of the targets.")
        pairs = {str(c): _spacing_pair(v, f"`spacing` of case {str(c)!r}") for c, v in spacing.items()}
    else:
        every = (1.0, 1.0) if spacing is None else _spacing_pair(spacing, "`spacing`",
                                                                  ", or a dict case id -> (sy, sx)")
        pairs = dict.fromkeys(read.ids, every)
    truth = _GroundTruth(read.shapes, pairs, False, lambda ids: [(m, None) for m in read.read(ids)])
    provenance = {"dataset": None, "targets_sha256": None, "targets_source": read.source,
                  "num_classes_inferred": inferred, "spacing_unit": "as given" if spacing is not None else "pixel"}
    return truth, [str(c) for c in range(num_classes)], provenance, read


def _infer_classes(found: CaseReader) -> int:
    """The number of classes of targets read with 256 (largest label + 1; {0, 255} masks are two classes),
    from one pass over them, a window at a time."""
    top, binary, values, mixed = 0, True, set(), []
    for window in windows(found.ids, found.shapes):
        for case_id, mask in zip(window, found.read(window)):
            top = max(top, int(mask.max())) if mask.size else top
            if not only_0_and_255(mask):
                binary = False
                values.update(distinct_values(mask).tolist())
            if not mask.size or mask.max() != 255:
                mixed.append(case_id)
    # Binary masks saved as {0, 255} are two classes (and are read as {0, 1}), not 256.
    if top == 255 and not binary:
        raise PredictionLabelError(
            f"targets: some masks hold 255 and others {sorted(values - {0, 255})[:5]} (e.g. {preview(mixed, 3)}): "
            "save every binary mask the same way ({0, 1} or {0, 255}), or give `num_classes`.")
    return 2 if top in (0, 255) else top + 1


def _score(predictions: CaseReader, truth: _GroundTruth, class_names: list[str], metrics: list[str],
           device: torch.device, batch_size: int, progress: bool, with_lesions: bool, options: dict,
           scoring: InstanceScoring | None):
    from tqdm.auto import tqdm

    num_classes = len(class_names)
    names = metrics + list(engine.COUNTS)
    values: dict[str, dict[str, np.ndarray]] = {}
    objects: dict[str, dict[str, float]] = {}  # instance metrics, case id -> metric -> value
    lesion_parts = []
    held: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}  # decoded, waiting for their batch
    with tqdm(total=len(truth.shapes), desc="scoring", unit="case", disable=not progress) as bar:
        for window, batches in plan(truth.shapes, num_classes, batch_size):
            masks, targets = predictions.read(window), truth.read(window)
            masks = [m if m.shape == t.shape else resized(m, t.shape) for m, (t, _) in zip(masks, targets)]
            if scoring is not None:
                if scoring.metrics:
                    objects.update(scoring.score(window, masks, truth.read_instances(window), truth.spacing,
                                                 options["empty"], device))
                masks = [scoring.semantic(m) for m in masks]
            predictions.check_orientation(window, masks, [t for t, _ in targets])
            for case_id, mask, (target, roi) in zip(window, masks, targets):
                held[case_id] = (mask, target, roi)
            del masks, targets
            for ids in batches:
                cases = [held.pop(c) for c in ids]
                # Cases of several sizes are padded into one batch and scored at their own sizes.
                pred, sizes = stack([m for m, _, _ in cases])
                pred = torch.from_numpy(pred).to(device)
                target = torch.from_numpy(stack([t for _, t, _ in cases])[0]).to(device)
                roi = torch.from_numpy(stack([r for _, _, r in cases])[0]).to(device) if truth.has_roi else None
                del cases
                spacing = torch.tensor([truth.spacing[c] for c in ids], dtype=torch.float64, device="cpu")
                out = engine.compute(pred, target, names, num_classes=num_classes, spacing=spacing, roi=roi,
                                     sizes=sizes, **options)
                for i, case_id in enumerate(ids):
                    values[case_id] = {m: out[m][i].cpu().numpy() for m in names}
                if with_lesions:
                    criteria = options["lesions"]
                    table = lesion_detection(pred, target, num_classes, criteria.connectivity,
                                                    criteria.min_overlap, spacing, criterion=criteria.criterion,
                                                    iou_threshold=criteria.iou_threshold, roi=roi)
                    lesion_parts.append(table.with_columns(case_id=pl.Series(ids)[table["case"]]).drop("case"))
                del pred, target, roi, out
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
            for m, value in objects.get(case_id, {}).items() if k == 0 else ():
                rows.append({"case_id": case_id, "class": class_names[1], "metric": m, "value": value, "class_id": 1,
                             **flags})
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
