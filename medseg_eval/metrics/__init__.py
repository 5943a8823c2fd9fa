"""The metrics engine: batched, exact segmentation metrics in torch, on CPU and CUDA (on the CPU the steps
that loop over boundary elements run as compiled kernels: :mod:`.compiled`).

Examples
--------
>>> import torch
>>> from medseg_eval import metrics
>>> pred = torch.zeros(2, 64, 64, dtype=torch.long); pred[:, 10:40, 10:40] = 1
>>> gt = torch.zeros(2, 64, 64, dtype=torch.long); gt[:, 12:42, 10:40] = 1
>>> metrics.hd95(pred, gt, spacing=(0.5, 0.5), convention="monai")
tensor([[1.],
        [1.]], dtype=torch.float64)
"""

from .conventions import (
    AGREEMENT_METRICS,
    CONVENTION_SPECS,
    CONVENTIONS,
    COUNTS,
    DEFAULT_CONVENTION,
    EMPTY_PRESETS,
    HIGHER_IS_BETTER,
    INSTANCE_METRICS,
    LESION_METRICS,
    METRICS,
    TOPOLOGY_METRICS,
    Convention,
    ConventionSpec,
    EmptyPolicy,
)
from .engine import DEFAULT_METRICS, compute
from .errors import (
    EmptyMaskError,
    LabelError,
    MetricInputError,
    OptionError,
    PercentileWarning,
    ShapeMismatchError,
    SpacingError,
)
from .functional import assd, dice, hausdorff, hd95, iou, masd, nsd, precision, recall, specificity
from .instances import instance_metrics
from .lesions import DEFAULT_SIZE_BINS, LesionCriteria, label_components, lesion_records
from .topology import TopologyOptions, betti_numbers

__all__ = [
    "AGREEMENT_METRICS",
    "CONVENTIONS",
    "CONVENTION_SPECS",
    "COUNTS",
    "DEFAULT_CONVENTION",
    "DEFAULT_METRICS",
    "DEFAULT_SIZE_BINS",
    "EMPTY_PRESETS",
    "HIGHER_IS_BETTER",
    "INSTANCE_METRICS",
    "LESION_METRICS",
    "METRICS",
    "TOPOLOGY_METRICS",
    "Convention",
    "ConventionSpec",
    "EmptyMaskError",
    "EmptyPolicy",
    "LabelError",
    "LesionCriteria",
    "MetricInputError",
    "OptionError",
    "PercentileWarning",
    "ShapeMismatchError",
    "SpacingError",
    "TopologyOptions",
    "assd",
    "betti_numbers",
    "compute",
    "dice",
    "hausdorff",
    "hd95",
    "instance_metrics",
    "iou",
    "label_components",
    "lesion_records",
    "masd",
    "nsd",
    "precision",
    "recall",
    "specificity",
]
