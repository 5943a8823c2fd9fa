"""compare() knows the direction and the worst value of every metric the engine computes."""

from __future__ import annotations

import numpy as np
import pytest

import medseg_eval
from medseg_eval.metrics.conventions import AGREEMENT_METRICS, INSTANCE_METRICS, METRICS, TOPOLOGY_METRICS
from medseg_eval.stats.pairing import KNOWN_METRICS, PairingError, higher_is_better


@pytest.mark.parametrize("metric", METRICS + AGREEMENT_METRICS + TOPOLOGY_METRICS + INSTANCE_METRICS)
def test_every_engine_metric_has_a_known_direction(metric) -> None:
    assert metric in KNOWN_METRICS
    lower = metric in ("hausdorff", "hd95", "assd", "masd", "betti0_error", "betti1_error", "object_hausdorff")
    assert higher_is_better(metric) is not lower


def test_an_unknown_metric_is_a_pairing_error() -> None:
    with pytest.raises(PairingError, match="unknown metric 'dcie'"):
        higher_is_better("dcie")


def test_models_scored_with_topology_and_agreement_metrics_compare() -> None:
    rng = np.random.default_rng(0)
    truth = {f"c{i}": (rng.random((32, 32)) > 0.5).astype(np.uint8) for i in range(8)}
    metrics = ["dice", "cldice", "mcc", "betti0_error", "boundary_iou"]
    results = {}
    for name, flip in (("good", 0.05), ("noisy", 0.3)):
        preds = {k: (v ^ (rng.random(v.shape) < flip)).astype(np.uint8) for k, v in truth.items()}
        results[name] = medseg_eval.evaluate(preds, targets=truth, metrics=metrics, progress=False)
    for metric in metrics:
        cmp = medseg_eval.compare(results, metric=metric, n_boot=200, n_rank_boot=50, n_permutations=199)
        ranked = cmp.summary.sort("rank")["model"].to_list()
        assert ranked == ["good", "noisy"], metric
