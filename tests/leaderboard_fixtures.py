"""Fixtures of the leaderboard tests: threshold "models" scored on synthetic-lesions, with their predictions.

Import ``scored`` and ``env`` into a test module to use them.
"""

from __future__ import annotations

import numpy as np
import pytest

import medseg_eval

THRESHOLDS = (100, 128, 160)


@pytest.fixture(scope="module")
def scored(synthetic_home):
    """Three threshold "models" scored on synthetic-lesions' test split (20 cases), saved, with their predictions:
    ``(home, {threshold: (results, results folder, predictions dict)})``."""
    home = synthetic_home
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(home))
        test = medseg_eval.load_dataset("synthetic-lesions", split="test")
        images = {row["case_id"]: np.asarray(row["image"]) for row in test}
        out = {}
        for t in THRESHOLDS:
            preds = {c: (im > t).astype(np.uint8) for c, im in images.items()}
            res = medseg_eval.evaluate(preds, "synthetic-lesions", metrics=["dice", "iou", "hd95"], progress=False)
            folder = home / "results" / f"t{t}"
            res.save(folder)
            np.savez(home / f"preds{t}.npz", **preds)
            out[t] = (res, folder, preds)
        yield home, out


@pytest.fixture()
def env(scored, monkeypatch):
    """``{threshold: (results, results folder, predictions)}`` with ``$MEDSEG_EVAL_HOME`` set to their home."""
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(scored[0]))
    return scored[1]
