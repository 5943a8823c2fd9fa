"""Lesion tables: one row per ground-truth lesion, and recall per lesion size, as polars frames.

The metrics engine finds and matches lesions on tensors (:func:`medseg_eval.metrics.lesions.lesion_records`);
the tables a user reads are built here, above it, as ``Results`` builds its own.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import polars as pl

from .errors import ArgumentError
from .metrics.lesions import DEFAULT_SIZE_BINS, LesionCriteria, lesion_records


def lesion_detection(pred, target, num_classes: int = 2, connectivity: int = 8, min_overlap: float = 0.0,
                     spacing=None, *, criterion: Literal["overlap", "iou"] = "overlap", iou_threshold: float = 0.5,
                     roi=None) -> pl.DataFrame:
    """One row per ground-truth lesion: where it is, how large, how much the prediction covers, detected or not.

    Parameters
    ----------
    pred, target, num_classes, spacing, roi
        As for :func:`~medseg_eval.metrics.lesions.lesion_records`, whose columns this table holds.
    connectivity, min_overlap, criterion, iou_threshold
        See :class:`~medseg_eval.metrics.LesionCriteria`.

    Returns
    -------
    polars.DataFrame
        The columns of :func:`~medseg_eval.metrics.lesions.lesion_records`, integers as Int64, sorted by
        ``case``, ``class``, ``lesion``.

    Examples
    --------
    >>> import torch
    >>> t = torch.zeros(1, 8, 8, dtype=torch.long); t[0, 1:3, 1:3] = 1; t[0, 5:8, 5:8] = 1
    >>> p = torch.zeros_like(t); p[0, 6:8, 6:8] = 1
    >>> lesion_detection(p, t).select("lesion", "area", "overlap", "detected").rows()
    [(1, 4, 0.0, False), (2, 9, 0.4444444444444444, True)]
    """
    criteria = LesionCriteria(connectivity, min_overlap, criterion, iou_threshold)
    columns = lesion_records(pred, target, num_classes, criteria, spacing, roi)
    frame = pl.DataFrame({name: (None if v is None else v.cpu().numpy()) for name, v in columns.items()},
                         schema_overrides={"area_mm2": pl.Float64})
    return frame.with_columns(pl.col("case", "class", "lesion", "area", "top", "left", "bottom", "right", "covered")
                              .cast(pl.Int64)).sort("case", "class", "lesion")


def small_lesion_recall(pred, target, num_classes: int = 2, size_bins: Sequence[float] = DEFAULT_SIZE_BINS,
                        connectivity: int = 8, min_overlap: float = 0.0, spacing=None, *,
                        criterion: Literal["overlap", "iou"] = "overlap", iou_threshold: float = 0.5,
                        roi=None) -> pl.DataFrame:
    """Lesion recall per size bin, pooled over the batch (each lesion counts once, whatever its case).

    Bins ``[bin_low, bin_high)`` are lesion areas in pixels, or in squared spacing units (mm^2)
    when ``spacing`` is given. A bin without lesions has recall NaN (not 0); ``n_lesions`` says so.
    Presets from the literature: COCO's small/medium/large ``[0, 32**2, 96**2, inf)`` px.

    Examples
    --------
    >>> import torch
    >>> t = torch.zeros(1, 40, 40, dtype=torch.long); t[0, 1:3, 1:3] = 1; t[0, 10:30, 10:30] = 1
    >>> p = torch.zeros_like(t); p[0, 12:20, 12:20] = 1
    >>> small_lesion_recall(p, t).select("bin_low", "n_lesions", "n_detected", "recall").rows()
    [(0.0, 1, 0, 0.0), (64.0, 0, 0, nan), (256.0, 1, 1, 1.0), (1024.0, 0, 0, nan)]
    """
    table = lesion_detection(pred, target, num_classes, connectivity, min_overlap, spacing, criterion=criterion,
                             iou_threshold=iou_threshold, roi=roi)
    out = recall_by_size(table, size_bins, size="area_mm2" if spacing is not None else "area",
                         classes=range(1, num_classes))
    return out.with_columns(unit=pl.lit("spacing units^2" if spacing is not None else "pixels"))


def recall_by_size(lesions: pl.DataFrame, size_bins: Sequence[float], *, size: str, classes: Sequence,
                   class_column: str = "class") -> pl.DataFrame:
    """Detected / total lesions per class and size bin ``[bin_low, bin_high)`` of a per-lesion table.

    Every class of ``classes`` gets every bin, so that an empty bin shows ``n_lesions = 0`` and
    recall NaN rather than disappearing.

    Examples
    --------
    >>> table = pl.DataFrame({"class": [1, 1], "area": [10, 500], "detected": [True, False]})
    >>> recall_by_size(table, [0, 100, 1000, 5000], size="area", classes=[1])["recall"].to_list()
    [1.0, 0.0, nan]
    """
    edges = [float(e) for e in size_bins]
    if len(edges) < 2 or any(a >= b for a, b in itertools.pairwise(edges)) or edges[0] < 0:
        raise ArgumentError(f"`size_bins` must be at least two increasing edges >= 0, but got {list(size_bins)}.")
    rows = []
    for cls in classes:
        of_class = lesions.filter(pl.col(class_column) == cls)
        for low, high in itertools.pairwise(edges):
            in_bin = of_class.filter((pl.col(size) >= low) & (pl.col(size) < high))
            n, hit = in_bin.height, int(in_bin["detected"].sum())
            rows.append({class_column: cls, "bin_low": low, "bin_high": high, "n_lesions": n, "n_detected": hit,
                         "recall": hit / n if n else math.nan})
    return pl.DataFrame(rows, schema={class_column: lesions.schema[class_column], "bin_low": pl.Float64,
                                      "bin_high": pl.Float64, "n_lesions": pl.Int64, "n_detected": pl.Int64,
                                      "recall": pl.Float64})
