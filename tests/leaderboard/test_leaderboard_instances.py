"""Bundles of GlaS-like instance predictions: the archive keeps every object id, validation scores them again
as instance maps (``provenance["instances"]``), and a forged instance map or record is refused.

The dataset is the tiny GlaS release of :mod:`tests.dataset_layouts`, built offline (no shipped manifest:
bundles are checked against the local build's).
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

import medseg_eval
from medseg_eval import leaderboard
from medseg_eval.datasets import UnpinnedManifestWarning, build, load_dataset
from medseg_eval.datasets.canonical import encode_instances
from medseg_eval.instance_scoring import INSTANCE_ID_LIMIT
from medseg_eval.leaderboard.archive import read_archive, write_archive
from medseg_eval.leaderboard.errors import SettingsMismatchError, SubmissionError, TamperedSubmissionError
from medseg_eval.leaderboard.rescore import BOARD_SETTINGS, check_settings
from medseg_eval.metrics import INSTANCE_METRICS, TopologyOptions
from medseg_eval.predictions import read_predictions
from tests.support.dataset_layouts import MAKERS
from tests.support.leaderboard_fixtures import sign

METRICS = ["dice", *INSTANCE_METRICS]


@pytest.fixture(scope="module")
def glas(tmp_path_factory):
    """A home with tiny GlaS built, its test instance maps, instance predictions with ids above 255 (one object
    dropped, every other case shifted a pixel) and a board holding their bundle ``ids``:
    ``(home, truth, predictions, board folder)``."""
    root = tmp_path_factory.mktemp("glas-board")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(root / "home"))
        MAKERS["glas"](root / "release")
        with pytest.warns(UnpinnedManifestWarning):
            build("glas", root / "release", progress=False)
        truth = {r["case_id"]: np.asarray(r["instances"]).astype(np.int64) for r in load_dataset("glas", split="test")}
        preds = {}
        for i, (case, ids) in enumerate(sorted(truth.items())):
            pred = np.where(ids > 0, ids * 97 + 200, 0)
            pred[ids == ids.max()] = 0
            preds[case] = np.roll(pred, i % 2, axis=1)
        res = medseg_eval.evaluate(preds, "glas", instances=True, metrics=METRICS, progress=False)
        leaderboard.submit(res, "ids", root / "board", predictions=preds)
    return root / "home", truth, preds, root / "board"


@pytest.fixture()
def bundle(glas, tmp_path, monkeypatch):
    """A fresh copy of the board; the instance bundle's folder to forge."""
    home, _, _, board = glas
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(home))
    shutil.copytree(board, tmp_path / "board")
    return tmp_path / "board" / "glas" / "ids"


def _members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle / "predictions.zip") as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _replace_member(bundle: Path, case: str, data: bytes) -> None:
    members = {**_members(bundle), f"{case}.png": data}
    with zipfile.ZipFile(bundle / "predictions.zip", "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


def test_an_instance_bundle_keeps_its_ids_and_validates_as_instance_maps(glas, bundle):
    _, truth, preds, _ = glas
    archive = (bundle / "predictions.zip").read_bytes()
    stored = read_archive(archive, label="ids")
    assert sorted(stored) == sorted(truth)
    for case, pred in preds.items():
        np.testing.assert_array_equal(stored[case], pred, err_msg=case)
    modes = {Image.open(io.BytesIO(data)).mode for data in _members(bundle).values()}
    assert modes & {"I;16", "I;16B", "I"}  # ids above 255: 16-bit members
    checked = leaderboard.validate(bundle)
    assert checked.meta["provenance"]["instances"] == {"instances_from": "predictions"}
    values = checked.per_case.filter(pl.col("metric") == "object_f1")["value"].to_numpy()
    assert values.size == len(truth) and (values < 1).any()  # the dropped objects are seen


def test_semantic_predictions_of_an_instance_dataset_validate_as_components(glas, tmp_path, monkeypatch):
    home, truth, _, _ = glas
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(home))
    masks = {c: (ids > 0).astype(np.uint8) for c, ids in truth.items()}
    res = medseg_eval.evaluate(masks, "glas", metrics=METRICS, progress=False)
    path = leaderboard.submit(res, "semantic", tmp_path, predictions=masks)
    assert leaderboard.validate(path).meta["provenance"]["instances"] == {
        "instances_from": "connected_components", "connectivity": 8}


def test_ids_beyond_16_bit_are_refused_when_the_archive_is_written():
    with pytest.raises(SubmissionError, match=r"0\.\.65535.*consecutively"):
        write_archive({"a": np.array([[0, 70000]])})


def _case(bundle: Path) -> str:
    return min(_members(bundle)).removesuffix(".png")


def forge_two_glands_merged(bundle: Path) -> None:
    case = _case(bundle)
    ids = read_archive((bundle / "predictions.zip").read_bytes(), label="x")[case].astype(np.int64)
    objects = [v for v in np.unique(ids) if v]
    _replace_member(bundle, case, encode_instances(np.where(ids == objects[-1], objects[0], ids)))
    sign(bundle)


def forge_two_glands_merged_and_the_hash(bundle: Path) -> None:
    forge_two_glands_merged(bundle)
    masks = read_archive((bundle / "predictions.zip").read_bytes(), label="x")
    digest = read_predictions(masks, sorted(masks), num_classes=INSTANCE_ID_LIMIT).sha256
    meta = leaderboard.Submission.read(bundle).meta
    sign(bundle, predictions_sha256=digest, provenance={**meta["provenance"], "predictions_sha256": digest})


def forge_ids_cut_to_8_bit(bundle: Path) -> None:
    case = _case(bundle)
    ids = read_archive((bundle / "predictions.zip").read_bytes(), label="x")[case]
    _replace_member(bundle, case, encode_instances((ids % 256).astype(np.uint8)))
    sign(bundle)


def forge_a_better_object_f1(bundle: Path) -> None:
    path = bundle / "per_case.parquet"
    table = pl.read_parquet(path)
    table.with_columns(value=pl.when(pl.col("metric") == "object_f1").then(1.0).otherwise(pl.col("value"))) \
        .write_parquet(path)
    sign(bundle)


def forge_record_says_components(bundle: Path) -> None:
    meta = leaderboard.Submission.read(bundle).meta
    sign(bundle, provenance={**meta["provenance"],
                             "instances": {"instances_from": "connected_components", "connectivity": 8}})


def forge_record_says_4_connected(bundle: Path) -> None:
    meta = leaderboard.Submission.read(bundle).meta
    sign(bundle, provenance={**meta["provenance"],
                             "instances": {"instances_from": "connected_components", "connectivity": 4}})


FORGERIES = {forge_two_glands_merged: TamperedSubmissionError,
             forge_two_glands_merged_and_the_hash: TamperedSubmissionError, forge_ids_cut_to_8_bit: TamperedSubmissionError,
             forge_a_better_object_f1: TamperedSubmissionError, forge_record_says_components: TamperedSubmissionError,
             forge_record_says_4_connected: SettingsMismatchError}


@pytest.mark.parametrize("forge", FORGERIES, ids=lambda f: f.__name__.removeprefix("forge_"))
def test_a_forged_instance_bundle_is_refused(forge, bundle):
    forge(bundle)
    with pytest.raises(FORGERIES[forge], match="bundle"):
        leaderboard.validate(bundle)


def test_other_topology_options_are_refused_but_another_skeleton_version_is_not():
    options = TopologyOptions().as_dict()
    record = {**BOARD_SETTINGS, "metrics": ["dice", "cldice"], "topology_options": options}
    check_settings({**record, "topology_options": {**options, "skeleton": "scikit-image 0.1"}}, label="demo")
    for changed in ({"foreground_connectivity": 4, "background_connectivity": 8}, {"boundary_dilation": 0.01}):
        with pytest.raises(SettingsMismatchError, match="topology options"):
            check_settings({**record, "topology_options": {**options, **changed}}, label="demo")
    with pytest.raises(SettingsMismatchError, match="topology options None"):
        check_settings({**record, "topology_options": None}, label="demo")
