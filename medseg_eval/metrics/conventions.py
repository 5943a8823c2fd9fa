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
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .errors import EmptyMaskError, OptionError

Convention = Literal["surface-distance", "monai", "medpy"]
CONVENTIONS: tuple[str, ...] = get_args(Convention)
DEFAULT_CONVENTION: Convention = "surface-distance"

#: Metric names understood by :func:`medseg_eval.metrics.compute`.
OVERLAP_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity", "accuracy")
DISTANCE_METRICS: tuple[str, ...] = ("hausdorff", "hd95", "assd", "masd", "nsd")
METRICS: tuple[str, ...] = OVERLAP_METRICS + DISTANCE_METRICS
#: Agreement metrics from the same confusion counts (:mod:`.overlap`); MCC and kappa lie in [-1, 1].
AGREEMENT_METRICS: tuple[str, ...] = ("mcc", "kappa", "balanced_accuracy", "volume_similarity")
#: Topology and boundary metrics (:mod:`.topology`); ``boundary_f1`` is computed from the convention's
#: boundary distances at ``tolerance`` (:mod:`.surface`).
TOPOLOGY_METRICS: tuple[str, ...] = ("cldice", "betti0_error", "betti1_error", "boundary_iou", "boundary_f1")
#: Lesion-level metrics (see :mod:`medseg_eval.metrics.lesions`): per case, lesions found as connected
#: components; ``fp_objects`` counts predicted objects that touch no lesion.
LESION_METRICS: tuple[str, ...] = ("lesion_recall", "lesion_precision", "lesion_f1", "fp_objects")
#: Instance metrics of :func:`medseg_eval.metrics.instance_metrics` (instance label maps, one value per case).
INSTANCE_METRICS: tuple[str, ...] = ("object_f1", "object_dice", "object_hausdorff", "aji", "pq", "sq", "rq")
#: Pixel counts :func:`~medseg_eval.metrics.compute` also returns on request: the sufficient
#: statistics of the overlap metrics, summed over cases for pooled (dataset-level) Dice and IoU.
COUNTS: tuple[str, ...] = ("tp", "fp", "fn", "tn")
#: Other accepted names: ``"hd"`` is the Hausdorff distance.
METRIC_ALIASES: dict[str, str] = {"hd": "hausdorff"}
#: Metrics where a larger value is better; the others (distances, Betti errors) are better when smaller.
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    OVERLAP_METRICS + AGREEMENT_METRICS + ("nsd", "cldice", "boundary_iou", "boundary_f1")
    + ("lesion_recall", "lesion_precision", "lesion_f1")
    + tuple(m for m in INSTANCE_METRICS if m != "object_hausdorff")
)


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


#: Where a policy's rule applies: both masks empty, or only the prediction, or only the ground truth.
Situation = Literal["both_empty", "pred_empty", "target_empty"]
SITUATIONS: tuple[str, ...] = get_args(Situation)
#: What a rule returns: the metric's best or worst value, NaN, infinity, the metric's own formula
#: (``"value"``, where it is defined), or an :class:`~.errors.EmptyMaskError` (``"raise"``).
Outcome = Literal["best", "worst", "nan", "inf", "value", "raise"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
Rule = tuple[str, str, str]  # (metric, situation, outcome)

_DISTANCES_RAISE = tuple((m, s, "raise") for m in ("hausdorff", "hd95", "assd", "masd") for s in SITUATIONS)
_MONAI_RULES: tuple[Rule, ...] = (
    # DiceMetric / MeanIoU(ignore_empty=True) and the confusion-matrix metrics: an empty ground truth is NaN.
    ("dice", "target_empty", "nan"), ("iou", "target_empty", "nan"), ("recall", "target_empty", "nan"),
    ("precision", "pred_empty", "nan"), ("specificity", "target_empty", "nan"),
    ("specificity", "pred_empty", "value"),
    ("balanced_accuracy", "target_empty", "nan"), ("balanced_accuracy", "pred_empty", "value"),
    ("mcc", "pred_empty", "nan"), ("mcc", "target_empty", "nan"),
    # compute_hausdorff_distance(percentile=95): torch.quantile of all-inf distances is NaN (MONAI #9095).
    ("hd95", "pred_empty", "nan"), ("hd95", "target_empty", "nan"),
)
#: The named presets: ``(both_empty, one_empty, worst_distance, rules)``. Rules override the three
#: base fields for one metric and situation; metrics a library lacks follow the base fields.
EMPTY_PRESETS: dict[str, tuple[str, str, str, tuple[Rule, ...]]] = {
    # MONAI 1.6.1, DiceMetric(ignore_empty=True) (its default) and the compute_* functions.
    "monai": ("nan", "worst", "inf", _MONAI_RULES),
    # MONAI 1.6.1 with DiceMetric / MeanIoU(ignore_empty=False): both empty is 1, an empty ground truth 0.
    "monai-keep-empty": ("nan", "worst", "inf", tuple(r for r in _MONAI_RULES if r[0] not in ("dice", "iou"))
                         + (("dice", "both_empty", "best"), ("iou", "both_empty", "best"))),
    # DeepMind surface-distance (GitHub 1f805ce; PyPI 0.1 crashes on empty masks under NumPy 2): HD is inf
    # even for two empty masks, each directed mean of an empty boundary is NaN, so their mean is NaN.
    "surface-distance": ("nan", "worst", "inf", (
        ("hausdorff", "both_empty", "inf"), ("hd95", "both_empty", "inf"),
        ("masd", "pred_empty", "nan"), ("masd", "target_empty", "nan"),
    )),
    # MedPy 0.5.2: hd, hd95, asd and assd raise RuntimeError on any empty mask; dc(empty, empty) is NaN
    # under NumPy 2 but jc(empty, empty) is 1; precision and recall divide by zero to NaN.
    "medpy": ("nan", "worst", "inf", _DISTANCES_RAISE + (
        ("iou", "both_empty", "best"), ("precision", "pred_empty", "nan"), ("recall", "target_empty", "nan"),
        ("specificity", "pred_empty", "value"), ("specificity", "target_empty", "nan"),
    )),
}


@dataclass(frozen=True)
class EmptyPolicy:
    """What every metric returns when the prediction, the ground truth or both are empty.

    The default is ours, explicit and recorded with every result; each reference library's own
    rule is a named preset (:meth:`monai`, :meth:`surface_distance`, :meth:`medpy`), recorded by
    name, so that a convention can be reproduced including its empty cases.

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
    preset
        ``"medseg_eval"`` (the three fields above, no rules), a library preset's name (its fields
        and rules exactly, as its factory method makes them), or ``"custom"`` (any ``rules``).
    rules
        ``(metric, situation, outcome)`` triples overriding the three fields: situation from
        :data:`SITUATIONS`, outcome from :data:`OUTCOMES` (``"value"`` keeps the metric's own
        formula, ``"raise"`` raises :class:`~.errors.EmptyMaskError`).

    Notes
    -----
    Precision, recall and specificity follow the same rule through their denominators: a ratio
    whose denominator is empty is "best" when its numerator's counterpart is empty too (nothing to
    find, nothing wrongly found) and "worst" otherwise. For every higher-is-better metric "worst" is
    0 (for MCC and kappa: chance agreement, as scikit-learn's MCC returns for an undefined case).
    Betti errors are defined on empty masks (0 components) and take no policy.

    Examples
    --------
    >>> EmptyPolicy().as_dict()
    {'both_empty': 'best', 'one_empty': 'worst', 'worst_distance': 'diagonal'}
    >>> EmptyPolicy.monai().outcome("dice", "target_empty"), EmptyPolicy.monai().outcome("dice", "pred_empty")
    ('nan', 'worst')
    >>> EmptyPolicy(**EmptyPolicy.medpy().as_dict()) == EmptyPolicy.medpy()
    True
    """

    both_empty: Literal["best", "nan"] = "best"
    one_empty: Literal["worst", "nan"] = "worst"
    worst_distance: Literal["diagonal", "inf"] = "diagonal"
    preset: str = "medseg_eval"
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        for field, allowed in (
            ("both_empty", ("best", "nan")),
            ("one_empty", ("worst", "nan")),
            ("worst_distance", ("diagonal", "inf")),
        ):
            value = getattr(self, field)
            if value not in allowed:
                raise OptionError(f"EmptyPolicy.{field} must be one of {allowed}, but got {value!r}.")
        # Rules read back from JSON are lists: hold them as sorted tuples, so that equal policies compare equal.
        try:
            rules = tuple(sorted({tuple(str(x) for x in rule) for rule in self.rules}))
        except TypeError as err:
            raise OptionError(f"EmptyPolicy.rules must be (metric, situation, outcome) triples, but got "
                              f"{self.rules!r}.") from err
        for rule in rules:
            if len(rule) != 3 or rule[1] not in SITUATIONS or rule[2] not in OUTCOMES:
                raise OptionError(f"EmptyPolicy rule {rule!r} must be (metric, situation, outcome) with a situation "
                                  f"from {SITUATIONS} and an outcome from {OUTCOMES}.")
        if len({r[:2] for r in rules}) != len(rules):
            raise OptionError(f"EmptyPolicy.rules give one metric and situation two outcomes: {rules!r}.")
        object.__setattr__(self, "rules", rules)
        if self.preset == "medseg_eval" and rules:
            raise OptionError("EmptyPolicy.rules need preset='custom' (or a library preset's own name).")
        if self.preset in EMPTY_PRESETS:
            both, one, worst, preset_rules = EMPTY_PRESETS[self.preset]
            if (self.both_empty, self.one_empty, self.worst_distance, rules) != (
                    both, one, worst, tuple(sorted(preset_rules))):
                factory = self.preset.replace("-keep-empty", "").replace("-", "_")
                raise OptionError(f"EmptyPolicy(preset={self.preset!r}) must hold that preset's own rules; make it "
                                  f"with EmptyPolicy.{factory}(), or name changed rules preset='custom'.")
        elif self.preset not in ("medseg_eval", "custom"):
            raise OptionError(f"Unknown EmptyPolicy preset {self.preset!r}; choose from "
                              f"{['medseg_eval', 'custom', *EMPTY_PRESETS]}.")

    @classmethod
    def _preset(cls, name: str) -> EmptyPolicy:
        both, one, worst, rules = EMPTY_PRESETS[name]
        return cls(both, one, worst, name, rules)  # type: ignore[arg-type]

    @classmethod
    def monai(cls, *, ignore_empty: bool = True) -> EmptyPolicy:
        """MONAI 1.6.1's empty-mask results: ``DiceMetric(ignore_empty=...)``, ``MeanIoU``,
        ``compute_hausdorff_distance`` (HD ``inf`` for one empty mask, HD95 NaN), ASSD ``inf``,
        NSD 0, the confusion-matrix metrics; two empty masks give NaN.

        Examples
        --------
        >>> EmptyPolicy.monai().outcome("hd95", "pred_empty"), EmptyPolicy.monai().outcome("hausdorff", "pred_empty")
        ('nan', 'inf')
        """
        return cls._preset("monai" if ignore_empty else "monai-keep-empty")

    @classmethod
    def surface_distance(cls) -> EmptyPolicy:
        """DeepMind surface-distance's results: HD and HD95 ``inf`` whenever a mask is empty (both
        too), Dice, NSD and the directed means NaN for two empty masks, NSD and Dice 0 for one.

        Examples
        --------
        >>> EmptyPolicy.surface_distance().outcome("hausdorff", "both_empty")
        'inf'
        """
        return cls._preset("surface-distance")

    @classmethod
    def medpy(cls) -> EmptyPolicy:
        """MedPy 0.5.2's results: its distances raise (here :class:`~.errors.EmptyMaskError`), ``dc`` of
        two empty masks is NaN, ``jc`` 1, ``precision`` of an empty prediction NaN.

        Examples
        --------
        >>> EmptyPolicy.medpy().outcome("hd95", "pred_empty")
        'raise'
        """
        return cls._preset("medpy")

    def as_dict(self) -> dict[str, object]:
        """The policy as plain values, for provenance; ``EmptyPolicy(**policy.as_dict())`` rebuilds it.

        The default preset records its three fields only (as results written before presets did).
        """
        record: dict[str, object] = {"both_empty": self.both_empty, "one_empty": self.one_empty,
                                     "worst_distance": self.worst_distance}
        if self.preset != "medseg_eval":
            record.update(preset=self.preset, rules=[list(r) for r in self.rules])
        return record

    def outcome(self, metric: str, situation: Situation) -> str:
        """The outcome of ``metric`` in ``situation``: its rule's, else the base fields'."""
        for m, s, out in self.rules:
            if m == metric and s == situation:
                return out
        if situation == "both_empty":
            return self.both_empty
        if self.one_empty == "nan":
            return "nan"
        return "inf" if self.worst_distance == "inf" and metric not in HIGHER_IS_BETTER else "worst"

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
            A metric name, e.g. from :data:`METRICS`.
        values
            Float64 tensor ``[N]``; entries where a mask is empty are ignored and replaced.
        pred_empty, target_empty
            Bool tensors ``[N]``.
        diagonal
            Float64 tensor ``[N]``: the image diagonal in spacing units.

        Raises
        ------
        EmptyMaskError
            Where a rule says ``"raise"`` and a pair is in its situation.
        """
        higher = metric in HIGHER_IS_BETTER
        constants = {"nan": math.nan, "inf": math.inf, "best": 1.0 if higher else 0.0}
        for situation, where in (("both_empty", pred_empty & target_empty),
                                 ("pred_empty", pred_empty & ~target_empty),
                                 ("target_empty", target_empty & ~pred_empty)):
            outcome = self.outcome(metric, situation)  # type: ignore[arg-type]
            if outcome == "value" or not bool(where.any()):
                continue
            if outcome == "raise":
                raise EmptyMaskError(
                    f"{metric} is undefined where {situation.replace('_', ' ')} ({int(where.sum())} image pair(s), "
                    f"first at flat index {int(where.nonzero()[0])}), and the {self.preset!r} empty-mask preset "
                    "raises there as its library does; choose another EmptyPolicy to score these cases.")
            if outcome == "worst":
                fill = torch.zeros_like(values) if higher else diagonal.to(values.dtype).expand_as(values)
            else:
                fill = torch.full_like(values, constants[outcome])
            values = torch.where(where, fill, values)
        return values
