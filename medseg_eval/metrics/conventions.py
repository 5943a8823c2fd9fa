"""Named metric conventions and the empty-mask policy.

A distance metric is only meaningful together with the convention that computed it: the three
established implementations disagree on what the boundary is, how its elements are weighted and how
a percentile is taken (HD95 differs by more than a pixel between them on a large share of random
cases). Each convention here reproduces one reference library exactly; the choice is recorded with
every result.

========================  =============================  ===========================  =========================
convention                boundary elements              weights                      HD95 (percentile p)
========================  =============================  ===========================  =========================
``"surface-distance"``    pixel corners whose 2x2        contour length of the        per direction, smallest d
(DeepMind, default)       neighbourhood is mixed          marching-squares segment     whose cumulative length
                          ((H+1) x (W+1) lattice)        (16-entry table, spacing)    share reaches p; max of
                                                                                      the two directions
``"monai"``               edge pixels: mask minus its    1 per pixel                  per direction, linear
(MONAI 1.6)               4-neighbour erosion                                         ``torch.quantile`` on
                          (image border counts)                                       float32 distances; max
``"medpy"``               edge pixels (as MONAI)         1 per pixel                  one linear percentile over
(MedPy 0.5.2)                                                                         both directions pooled
                                                                                      (float64)
========================  =============================  ===========================  =========================

ASSD is the mean over both directions pooled (MONAI ``symmetric=True`` = MedPy 0.5 ``assd``; for
``"surface-distance"`` the length-weighted pooled mean, which DeepMind's library does not offer).
MASD is the mean of the two directed means (DeepMind ``compute_average_surface_distance`` averaged,
MedPy < 0.5 ``assd``, MONAI ``symmetric=False`` averaged over both directions). NSD counts boundary
weight within the tolerance in both directions over the total weight: DeepMind's surface Dice
(= MONAI ``use_subvoxels=True``) for ``"surface-distance"``, MONAI's default edge-pixel count for
``"monai"``; MedPy has no NSD, so ``"medpy"`` uses the same edge-pixel count as ``"monai"``.

Why ``"surface-distance"`` is the default: its boundary elements are weighted by their length, so a
diagonal contour is not under-counted relative to an axis-aligned one (edge-pixel counts are, by up
to a factor of sqrt(2)); its NSD is the definition of the metric's authors (Nikolov et al. 2021)
and is reproduced independently by MONAI's sub-voxel mode; and it is the convention least affected
by how a boundary happens to align with the pixel grid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import torch

from .errors import OptionError

Convention = Literal["surface-distance", "monai", "medpy"]
CONVENTIONS: tuple[str, ...] = get_args(Convention)
DEFAULT_CONVENTION: Convention = "surface-distance"

#: Metric names understood by :func:`medseg_eval.metrics.compute`.
OVERLAP_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity")
DISTANCE_METRICS: tuple[str, ...] = ("hausdorff", "hd95", "assd", "masd", "nsd")
METRICS: tuple[str, ...] = OVERLAP_METRICS + DISTANCE_METRICS
#: Lesion-level metrics (see :mod:`medseg_eval.metrics.lesions`): per case, lesions found as connected
#: components; ``fp_objects`` counts predicted objects that touch no lesion.
LESION_METRICS: tuple[str, ...] = ("lesion_recall", "lesion_precision", "lesion_f1", "fp_objects")
#: Pixel counts :func:`~medseg_eval.metrics.compute` also returns on request: the sufficient
#: statistics of the overlap metrics, summed over cases for pooled (dataset-level) Dice and IoU.
COUNTS: tuple[str, ...] = ("tp", "fp", "fn", "tn")
#: Other accepted names: ``"hd"`` is the Hausdorff distance.
METRIC_ALIASES: dict[str, str] = {"hd": "hausdorff"}
#: Metrics where a larger value is better; the others (distances) are better when smaller.
HIGHER_IS_BETTER: frozenset[str] = frozenset(OVERLAP_METRICS + ("nsd", "lesion_recall", "lesion_precision", "lesion_f1"))


@dataclass(frozen=True)
class ConventionSpec:
    """What one convention does, spelled out (recorded with results).

    Examples
    --------
    >>> CONVENTION_SPECS["medpy"].percentile
    'pooled-linear'
    """

    name: str
    reference: str
    boundary: Literal["surfels", "edge-pixels"]
    percentile: Literal["per-direction-weighted", "per-direction-linear-float32", "pooled-linear"]
    distance_dtype: Literal["float64", "float32"]


CONVENTION_SPECS: dict[str, ConventionSpec] = {
    "surface-distance": ConventionSpec(
        "surface-distance", "DeepMind surface-distance 0.1 / GitHub 1f805ce", "surfels",
        "per-direction-weighted", "float64",
    ),
    "monai": ConventionSpec(
        "monai", "MONAI 1.6.1 monai.metrics", "edge-pixels", "per-direction-linear-float32", "float32"
    ),
    "medpy": ConventionSpec("medpy", "MedPy 0.5.2 medpy.metric.binary", "edge-pixels", "pooled-linear", "float64"),
}


@dataclass(frozen=True)
class EmptyPolicy:
    """What every metric returns when the prediction, the ground truth or both are empty.

    No reference library can be reproduced here (they return ``nan``, ``inf``, raise, or crash),
    so the choice is ours, explicit and recorded with every result.

    Parameters
    ----------
    both_empty
        ``"best"``: a correct "nothing there" scores perfectly (Dice, IoU, precision, recall,
        NSD = 1; HD, HD95, ASSD, MASD = 0). ``"nan"``: undefined, left out of means by the caller.
    one_empty
        ``"worst"``: Dice, IoU, NSD = 0 and distances = ``worst_distance``. ``"nan"``: undefined.
    worst_distance
        ``"diagonal"``: the image diagonal in spacing units, ``sqrt((H*sy)**2 + (W*sx)**2)``, an
        upper bound of every distance in every convention, so means stay finite and comparable.
        ``"inf"``: infinity (what MONAI and DeepMind return for HD).

    Notes
    -----
    Precision, recall and specificity follow the same rule through their denominators: a ratio
    whose denominator is empty is "best" when its numerator's counterpart is empty too (nothing to
    find, nothing wrongly found) and "worst" otherwise.

    Examples
    --------
    >>> EmptyPolicy().as_dict()
    {'both_empty': 'best', 'one_empty': 'worst', 'worst_distance': 'diagonal'}
    """

    both_empty: Literal["best", "nan"] = "best"
    one_empty: Literal["worst", "nan"] = "worst"
    worst_distance: Literal["diagonal", "inf"] = "diagonal"

    def __post_init__(self) -> None:
        for field, allowed in (
            ("both_empty", ("best", "nan")),
            ("one_empty", ("worst", "nan")),
            ("worst_distance", ("diagonal", "inf")),
        ):
            value = getattr(self, field)
            if value not in allowed:
                raise OptionError(f"EmptyPolicy.{field} must be one of {allowed}, but got {value!r}.")

    def as_dict(self) -> dict[str, str]:
        """The policy as plain strings, for provenance records."""
        return asdict(self)

    def apply(
        self,
        metric: str,
        values: torch.Tensor,
        pred_empty: torch.Tensor,
        target_empty: torch.Tensor,
        diagonal: torch.Tensor,
    ) -> torch.Tensor:
        """Overwrite ``values`` where the prediction and/or the ground truth is empty.

        Parameters
        ----------
        metric
            A name from :data:`METRICS`.
        values
            Float64 tensor ``[N]``; entries where a mask is empty are ignored and replaced.
        pred_empty, target_empty
            Bool tensors ``[N]``.
        diagonal
            Float64 tensor ``[N]``: the image diagonal in spacing units.
        """
        both = pred_empty & target_empty
        one = pred_empty ^ target_empty
        nan = torch.full_like(values, math.nan)
        if metric in HIGHER_IS_BETTER:
            best, worst = torch.ones_like(values), torch.zeros_like(values)
        else:
            best = torch.zeros_like(values)
            worst = diagonal if self.worst_distance == "diagonal" else torch.full_like(values, math.inf)
        values = torch.where(both, nan if self.both_empty == "nan" else best, values)
        return torch.where(one, nan if self.one_empty == "nan" else worst, values)
