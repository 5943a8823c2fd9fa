"""The engine's names the parser shows, mirrored so that building it imports no torch or polars.

``tests/cli/test_cli_startup.py`` checks every one against the module that owns it.
"""

from __future__ import annotations

#: :data:`medseg_eval.metrics.CONVENTIONS` and :data:`~medseg_eval.metrics.DEFAULT_CONVENTION`.
CONVENTIONS: tuple[str, ...] = ("surface-distance", "monai", "medpy")
DEFAULT_CONVENTION = "surface-distance"
#: ``"medseg_eval"`` (the default :class:`~medseg_eval.metrics.EmptyPolicy`) and the library presets of
#: :data:`medseg_eval.metrics.EMPTY_PRESETS`.
EMPTY_PRESETS: tuple[str, ...] = ("medseg_eval", "monai", "monai-keep-empty", "surface-distance", "medpy")
#: :data:`medseg_eval.evaluate.DEFAULT_METRICS` and the other defaults of :func:`medseg_eval.evaluate`.
DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "assd", "nsd", "lesion_recall")
EVALUATE_DEFAULTS: dict[str, object] = {"percentile": 95.0, "tolerance": 2.0, "batch_size": 16, "device": "auto"}
#: :data:`medseg_eval.stats.ranking.Scheme`.
RANKING_SCHEMES: tuple[str, ...] = ("aggregate-then-rank", "rank-then-aggregate", "test-then-rank")
