"""medseg_eval: reproducible evaluation of 2D medical image segmentation.

Submodules load on first use (PEP 562), so ``from medseg_eval import metrics`` needs only torch and
numpy: the metrics engine and the training loop run where polars and Hugging Face ``datasets`` are
not installed (a GPU machine with nothing but torch, say).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import load, make_lazy

__version__ = "0.1.0"

#: Public name -> (submodule, attribute in it; None for the submodule itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "MedsegEvalError": ("errors", "MedsegEvalError"),
    "Results": ("results", "Results"),
    "compare": ("stats", "compare"),
    "cross_validation": ("stats", "cross_validation"),
    "datasets": ("datasets", None),
    "evaluate": ("evaluate", "evaluate"),
    "list_datasets": ("datasets", "list_datasets"),
    "load_dataset": ("datasets", "load_dataset"),
    "metrics": ("metrics", None),
    "report": ("stats", "report"),
    "stats": ("stats", None),
}

__all__ = ["MedsegEvalError", "Results", "__version__", "compare", "cross_validation", "datasets", "evaluate",
           "list_datasets", "load_dataset", "metrics", "report", "stats"]

if TYPE_CHECKING:
    from . import datasets, metrics, stats
    from .datasets import list_datasets, load_dataset
    from .errors import MedsegEvalError
    from .evaluate import evaluate
    from .results import Results
    from .stats import compare, cross_validation, report



def __getattr__(name: str) -> Any:
    return load(__name__, _LAZY, name)


make_lazy(__name__)
