"""Reference trainers: the founding study's models under one protocol, producing leaderboard entries.

A client of the public API (it trains, predicts, calls :func:`medseg_eval.evaluate` and submits
to a board); nothing else in the package imports it. The zoo, the config and the loop need only
torch; ``train_fold`` (which reads the canonical dataset and scores) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import LR_GRID, TrainConfig
from .loop import TrainReport, fit, rex_factor, seed_everything
from .trainer import Trained, train_and_predict
from .zoo import PretrainedUnavailableError, build_model, list_models, model_info

if TYPE_CHECKING:
    from .run import FoldRun, score_fold, train_fold

__all__ = [
    "LR_GRID",
    "FoldRun",
    "PretrainedUnavailableError",
    "TrainConfig",
    "TrainReport",
    "Trained",
    "build_model",
    "fit",
    "list_models",
    "model_info",
    "rex_factor",
    "score_fold",
    "seed_everything",
    "train_and_predict",
    "train_fold",
]


def __getattr__(name: str) -> Any:
    if name in ("FoldRun", "score_fold", "train_fold"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
