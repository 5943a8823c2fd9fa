"""medseg_eval: reproducible evaluation of 2D medical image segmentation."""

from . import datasets, metrics, stats
from .datasets import list_datasets, load_dataset
from .evaluate import evaluate
from .results import Results
from .stats import compare

__version__ = "0.1.0"

__all__ = ["Results", "__version__", "compare", "datasets", "evaluate", "list_datasets", "load_dataset", "metrics", "stats"]
