"""One function per metric; each is a thin call of :func:`~medseg_eval.metrics.engine.compute`.

Every function returns a float64 tensor ``[B, num_classes - 1]`` (one column per foreground class)
on the input's device. Use :func:`compute` when you need several metrics: it finds boundaries and
distances once for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._validation import ArrayLike
from .conventions import DEFAULT_CONVENTION, Convention, EmptyPolicy
from .engine import compute

Spacing = ArrayLike | Sequence[float] | None


def _overlap(name: str, pred: ArrayLike, target: ArrayLike, num_classes: int, roi: ArrayLike | None,
             empty: EmptyPolicy | None) -> torch.Tensor:
    return compute(pred, target, [name], num_classes=num_classes, roi=roi, empty=empty)[name]


def dice(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, roi: ArrayLike | None = None,
         empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Dice coefficient ``2|P∩G| / (|P| + |G|)`` per case and class.

    Examples
    --------
    >>> import torch
    >>> dice(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 2, 2]]), num_classes=3)
    tensor([[0.6667, 0.6667]], dtype=torch.float64)
    """
    return _overlap("dice", pred, target, num_classes, roi, empty)


def iou(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, roi: ArrayLike | None = None,
        empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Intersection over union (Jaccard index) ``|P∩G| / |P∪G|`` per case and class.

    Examples
    --------
    >>> import torch
    >>> iou(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
    tensor([[0.6667]], dtype=torch.float64)
    """
    return _overlap("iou", pred, target, num_classes, roi, empty)


def precision(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, roi: ArrayLike | None = None,
              empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Precision (positive predictive value) ``tp / (tp + fp)`` per case and class.

    Examples
    --------
    >>> import torch
    >>> precision(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
    tensor([[0.6667]], dtype=torch.float64)
    """
    return _overlap("precision", pred, target, num_classes, roi, empty)


def recall(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, roi: ArrayLike | None = None,
           empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Recall (sensitivity) ``tp / (tp + fn)`` per case and class.

    Examples
    --------
    >>> import torch
    >>> recall(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 1, 1, 1]]))
    tensor([[0.6667]], dtype=torch.float64)
    """
    return _overlap("recall", pred, target, num_classes, roi, empty)


def specificity(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, roi: ArrayLike | None = None,
                empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Specificity ``tn / (tn + fp)`` per case and class (``tn`` inside the region of interest).

    Examples
    --------
    >>> import torch
    >>> specificity(torch.tensor([[1, 0, 0, 1]]), torch.tensor([[0, 0, 0, 1]]))
    tensor([[0.6667]], dtype=torch.float64)
    """
    return _overlap("specificity", pred, target, num_classes, roi, empty)


def _distance(name: str, pred: ArrayLike, target: ArrayLike, **options: object) -> torch.Tensor:
    return compute(pred, target, [name], **options)[name]  # type: ignore[arg-type]


def hausdorff(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, spacing: Spacing = None,
              roi: ArrayLike | None = None, convention: Convention = DEFAULT_CONVENTION,
              percentile: float | None = None, empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Symmetric Hausdorff distance between the boundaries, or its ``percentile`` variant.

    With ``percentile=None`` the maximum of both directed distances; otherwise the robust
    Hausdorff distance as the convention defines it (see :func:`hd95`).

    Examples
    --------
    >>> import torch
    >>> p = torch.zeros(1, 16, 16, dtype=torch.long); p[0, 2:6, 2:6] = 1
    >>> g = torch.zeros(1, 16, 16, dtype=torch.long); g[0, 2:6, 2:9] = 1
    >>> hausdorff(p, g, spacing=(1.0, 0.5), convention="medpy")
    tensor([[1.5000]], dtype=torch.float64)
    """
    if percentile is None:
        return _distance("hausdorff", pred, target, num_classes=num_classes, spacing=spacing, roi=roi,
                         convention=convention, empty=empty)
    return hd95(pred, target, num_classes=num_classes, spacing=spacing, roi=roi, convention=convention,
                percentile=percentile, empty=empty)


def hd95(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, spacing: Spacing = None,
         roi: ArrayLike | None = None, convention: Convention = DEFAULT_CONVENTION, percentile: float = 95.0,
         empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Robust Hausdorff distance at ``percentile`` (95 by default), as the convention defines it.

    ``"surface-distance"``: per direction, contour-length-weighted, no interpolation; ``"monai"``:
    per direction, linear interpolation over edge pixels; both then take the larger direction.
    ``"medpy"``: one linear percentile over both directions pooled.

    Examples
    --------
    >>> import torch
    >>> p = torch.zeros(1, 16, 16, dtype=torch.long); p[0, 2:6, 2:6] = 1
    >>> g = torch.zeros(1, 16, 16, dtype=torch.long); g[0, 2:6, 2:9] = 1
    >>> hd95(p, g, convention="monai")
    tensor([[3.]], dtype=torch.float64)
    """
    return _distance("hd95", pred, target, num_classes=num_classes, spacing=spacing, roi=roi,
                     convention=convention, percentile=percentile, empty=empty)


def assd(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, spacing: Spacing = None,
         roi: ArrayLike | None = None, convention: Convention = DEFAULT_CONVENTION,
         empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Average symmetric surface distance: the mean over both directions' distances pooled.

    Equals MONAI ``compute_average_surface_distance(symmetric=True)`` and MedPy 0.5 ``assd``.
    Not to be confused with :func:`masd`.

    Examples
    --------
    >>> import torch
    >>> p = torch.zeros(1, 16, 16, dtype=torch.long); p[0, 2:6, 2:6] = 1
    >>> g = torch.zeros(1, 16, 16, dtype=torch.long); g[0, 2:6, 2:9] = 1
    >>> assd(p, g, convention="medpy")
    tensor([[0.6667]], dtype=torch.float64)
    """
    return _distance("assd", pred, target, num_classes=num_classes, spacing=spacing, roi=roi,
                     convention=convention, empty=empty)


def masd(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, spacing: Spacing = None,
         roi: ArrayLike | None = None, convention: Convention = DEFAULT_CONVENTION,
         empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Mean average surface distance: the mean of the two directed mean distances.

    DeepMind's ``compute_average_surface_distance`` (averaged), MedPy < 0.5 ``assd``. Differs from
    :func:`assd` when the two boundaries have different lengths.

    Examples
    --------
    >>> import torch
    >>> p = torch.zeros(1, 16, 16, dtype=torch.long); p[0, 2:6, 2:6] = 1
    >>> g = torch.zeros(1, 16, 16, dtype=torch.long); g[0, 2:6, 2:9] = 1
    >>> masd(p, g, convention="medpy")
    tensor([[0.5833]], dtype=torch.float64)
    """
    return _distance("masd", pred, target, num_classes=num_classes, spacing=spacing, roi=roi,
                     convention=convention, empty=empty)


def nsd(pred: ArrayLike, target: ArrayLike, *, num_classes: int = 2, spacing: Spacing = None,
        roi: ArrayLike | None = None, convention: Convention = DEFAULT_CONVENTION, tolerance: float = 2.0,
        empty: EmptyPolicy | None = None) -> torch.Tensor:
    """Normalized surface distance (surface Dice) at ``tolerance`` (spacing units).

    The share of both boundaries lying within ``tolerance`` of the other boundary (Nikolov et al.,
    2021), weighted by contour length for ``"surface-distance"``, by edge-pixel count otherwise.

    Examples
    --------
    >>> import torch
    >>> p = torch.zeros(1, 16, 16, dtype=torch.long); p[0, 2:6, 2:6] = 1
    >>> g = torch.zeros(1, 16, 16, dtype=torch.long); g[0, 2:6, 2:9] = 1
    >>> nsd(p, g, tolerance=1.0)
    tensor([[0.7921]], dtype=torch.float64)
    """
    return _distance("nsd", pred, target, num_classes=num_classes, spacing=spacing, roi=roi,
                     convention=convention, tolerance=tolerance, empty=empty)
