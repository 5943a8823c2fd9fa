"""Fixtures of the leaderboard tests: threshold "models" scored on synthetic-lesions, with their predictions.

Import ``scored`` and ``env`` into a test module to use them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import medseg_eval
from medseg_eval.leaderboard.bundle import table_sha256

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


def held_out_folds(threshold: int) -> tuple[dict, dict]:
    """synthetic-lesions' five folds of training cases, each thresholded at ``threshold`` and scored against its
    canonical masks as the reference trainers score a held-out fold: ``({fold: Results}, {fold: predictions})``.

    Needs ``$MEDSEG_EVAL_HOME`` set to a home where the dataset is built."""
    import polars as pl

    from medseg_eval.datasets import expected_manifest, get_spec

    train = medseg_eval.load_dataset("synthetic-lesions", split="train")
    rows = {r["case_id"]: (np.asarray(r["image"]), np.asarray(r["mask"], dtype=np.uint8)) for r in train}
    manifest = expected_manifest("synthetic-lesions").filter(pl.col("split") == "train")
    results, predictions = {}, {}
    for fold in sorted(manifest["fold"].unique().to_list()):
        ids = sorted(manifest.filter(pl.col("fold") == fold)["case_id"].to_list())
        predictions[fold] = {c: (rows[c][0] > threshold).astype(np.uint8) for c in ids}
        results[fold] = medseg_eval.evaluate(predictions[fold], targets={c: rows[c][1] for c in ids},
                                             num_classes=get_spec("synthetic-lesions").num_classes,
                                             metrics=["dice", "iou", "hd95"], progress=False)
    return results, predictions


def sign(bundle: Path, **changes) -> None:
    """Write the bundle's meta.json with ``changes`` and every hash recomputed from its files, as a forger would."""
    meta = {**json.loads((bundle / "meta.json").read_text()), **changes}
    meta["per_case_sha256"] = table_sha256(pl.read_parquet(bundle / "per_case.parquet"))
    meta["counts_sha256"] = table_sha256(pl.read_parquet(bundle / "counts.parquet"))
    if (bundle / "predictions.zip").is_file():
        meta["predictions_archive_sha256"] = hashlib.sha256((bundle / "predictions.zip").read_bytes()).hexdigest()
    (bundle / "meta.json").write_text(json.dumps(meta))
