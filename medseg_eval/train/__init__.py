"""Reference trainers: the founding study's models under one protocol, producing leaderboard entries.

A client of the public API (it trains, predicts, calls :func:`medseg_eval.evaluate` and submits
to a board); nothing else in the package imports it.
"""

from .config import LR_GRID, TrainConfig
from .loop import TrainReport, fit, rex_factor, seed_everything
from .run import FoldRun, train_fold
from .zoo import PretrainedUnavailableError, build_model, list_models, model_info

__all__ = ["LR_GRID", "FoldRun", "PretrainedUnavailableError", "TrainConfig", "TrainReport", "build_model", "fit",
           "list_models", "model_info", "rex_factor", "seed_everything", "train_fold"]
