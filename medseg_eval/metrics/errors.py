"""The bad-input errors of :mod:`medseg_eval.metrics`, one per concern, all ``MetricInputError``s, and its
warning about input that is legal but most likely a slip."""

from __future__ import annotations

from ..errors import MedsegEvalError


class MetricInputError(MedsegEvalError, ValueError):
    """Base class of every bad-input error raised by :mod:`medseg_eval.metrics`."""


class ShapeMismatchError(MetricInputError):
    """Prediction, ground truth, region of interest or spacing do not have matching shapes."""


class LabelError(MetricInputError):
    """A label map holds values that are not class ids ``0..num_classes-1``."""


class SpacingError(MetricInputError):
    """The pixel spacing is not one positive ``(sy, sx)`` pair or one pair per case."""


class OptionError(MetricInputError):
    """An option (metric name, convention, percentile, tolerance, num_classes) is invalid."""


class PercentileWarning(UserWarning):
    """``percentile`` lies between 0 and 1 with ``hd95``: most likely a fraction given for a percent."""


class EmptyMaskError(MetricInputError):
    """A metric is undefined on an empty mask and the empty-mask policy (e.g. ``EmptyPolicy.medpy()``) raises."""
