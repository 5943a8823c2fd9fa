"""medseg_eval: reproducible evaluation of 2D medical image segmentation."""

from . import metrics

__version__ = "0.1.0"

__all__ = ["__version__", "metrics"]
