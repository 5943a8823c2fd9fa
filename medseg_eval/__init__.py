"""medseg_eval: reproducible evaluation of 2D medical image segmentation."""

from . import datasets, metrics
from .datasets import list_datasets, load_dataset

__version__ = "0.1.0"

__all__ = ["__version__", "datasets", "list_datasets", "load_dataset", "metrics"]
