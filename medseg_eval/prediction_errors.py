"""The errors about predictions (or user-given targets), each naming the cases and the fix."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import MedsegEvalError


class PredictionError(MedsegEvalError, ValueError):
    """Base class of every error about predictions (or user-given targets)."""


class MissingCasesError(PredictionError):
    """Cases of the split have no prediction."""


class UnknownCasesError(PredictionError):
    """Predictions for case ids the split does not have."""


class PredictionShapeError(PredictionError):
    """A prediction's size differs from its ground truth's, or its array has an unusable shape."""


class PredictionLabelError(PredictionError):
    """A prediction holds values that are not class ids (negative, too large, fractional, NaN)."""


class PredictionFormatError(PredictionError):
    """A prediction file cannot be read, or the input type is not one of the accepted forms."""


def preview(ids: Sequence[str], shown: int = 5) -> str:
    """``a, b, c, ... (N in all)``: a few ids and the count."""
    ids = list(ids)
    head = ", ".join(ids[:shown])
    return f"{head}, ... ({len(ids)} in all)" if len(ids) > shown else head
