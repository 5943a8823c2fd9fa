"""Leaderboard entries with folds: a bundle carries its cross-validation, every build checks it like the test split,
forged fold tables are refused, and the board shows mean ± sd over folds beside the test-split score."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import medseg_eval
from medseg_eval import leaderboard
from medseg_eval.leaderboard.archive import write_archive
from medseg_eval.leaderboard.bundle import table_sha256
from medseg_eval.leaderboard.folds import FOLDS_DIR, archive_name, json_sha256
from medseg_eval.leaderboard.render import FROM_COUNTS
from tests.support import leaderboard_fixtures

scored, env = leaderboard_fixtures.scored, leaderboard_fixtures.env
DATASET = "synthetic-lesions"


@pytest.fixture(scope="module")
def folds(scored):
    """Thresholds 128 and 100 on the five folds of the training cases: ``{t: (CrossValidation, {fold: preds})}``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(scored[0]))
        out = {}
        for t in (128, 100):
            results, predictions = leaderboard_fixtures.held_out_folds(t)
            out[t] = (medseg_eval.cross_validation(results, dataset=DATASET), predictions)
        return out


@pytest.fixture(scope="module")
def honest(scored, folds, tmp_path_factory):
    """A board with t128 carrying its folds and their held-out predictions, t100 its folds without predictions,
    and a paper's row with a spread over folds."""
    home, models = scored
    board_dir = tmp_path_factory.mktemp("folds-board")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(home))
        leaderboard.submit(models[128][0], "t128", board_dir, predictions=models[128][2],
                           cross_validation=folds[128][0], fold_predictions=folds[128][1])
        saved = folds[100][0].save(board_dir.parent / "cv-t100")
        leaderboard.submit(models[100][0], "t100", board_dir, predictions=models[100][2], cross_validation=saved)
        leaderboard.reported_submission("Paper net", DATASET, metric="mDice (%)", mean=55.5, sd=1.5,
                                        citation="Doe 2026", aggregate="pooled per fold",
                                        protocol="5-fold CV").write(board_dir)
        leaderboard.build(board_dir)
    return board_dir


@pytest.fixture()
def bundle(honest, env, tmp_path):
    """A fresh copy of the honest board; the t128 bundle folder (with fold predictions) to forge."""
    shutil.copytree(honest, tmp_path / "board")
    return tmp_path / "board" / DATASET / "t128"


def _fold_mdice(cv) -> np.ndarray:
    """Each fold's pooled Dice in %, from its counts summed by numpy (synthetic-lesions has one class)."""
    sums = cv.counts.group_by("fold").agg(pl.col("tp", "fp", "fn").sum()).sort("fold")
    tp, fp, fn = (sums[c].to_numpy().astype(float) for c in ("tp", "fp", "fn"))
    return 100 * 2 * tp / (2 * tp + fp + fn)


def test_a_bundle_stores_its_cross_validation_with_the_hashes_of_every_part(honest, folds):
    folder = honest / DATASET / "t128" / FOLDS_DIR
    meta = json.loads((honest / DATASET / "t128" / "meta.json").read_text())["cross_validation"]
    cv = folds[128][0]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["counts.parquet", "cross_validation.json", "per_case.parquet", "per_fold.parquet",
         *(archive_name(k, None) for k in range(5))])
    assert meta["folds"] == [0, 1, 2, 3, 4] and meta["seeds"] == [None]
    assert meta["per_fold_sha256"] == table_sha256(cv.per_fold) and meta["provenance_sha256"] == json_sha256(
        cv.provenance)
    assert meta["predictions"][archive_name(3, None)] == hashlib.sha256(
        (folder / archive_name(3, None)).read_bytes()).hexdigest()
    assert not (honest / DATASET / "t100" / FOLDS_DIR / archive_name(0, None)).exists()


def test_the_board_shows_mean_and_sd_over_folds_beside_the_test_split_score(honest, folds, env):
    b = leaderboard.board(honest, DATASET)
    row = b.folds.filter(pl.col("model") == "t128").row(0, named=True)
    per_fold = _fold_mdice(folds[128][0])
    assert row["mean"] == pytest.approx(per_fold.mean()) and row["sd"] == pytest.approx(per_fold.std(ddof=1))
    assert (row["min"], row["max"]) == pytest.approx((per_fold.min(), per_fold.max()))
    assert row["test"] == pytest.approx(100 * b.ranked.filter(pl.col("model") == "t128")["mdice_pooled"][0])
    assert row["rescored"] is True and b.folds.filter(pl.col("model") == "t100")["rescored"][0] is False
    assert b.folds.filter(pl.col("badge") == "reported")["model"].to_list() == ["Paper net"]
    readme = (honest / DATASET / "README.md").read_text()
    assert f"| t128 | verified | 5 folds | {per_fold.mean():.1f} ± {per_fold.std(ddof=1):.1f} | {row['test']:.1f} |" \
        in readme
    assert "| Paper net | reported | – | 55.5 ± 1.5 | – | Doe 2026 |" in readme


def test_fold_numbers_without_their_predictions_are_marked_as_the_submitters_own(honest, folds):
    readme = (honest / DATASET / "README.md").read_text()
    per_fold = _fold_mdice(folds[100][0])
    assert f"| t100 | verified | 5 folds | {per_fold.mean():.1f} ± {per_fold.std(ddof=1):.1f}† |" in readme
    assert "from counts†" in readme and FROM_COUNTS in readme
    assert "scored again from its held-out predictions" in readme  # t128's


def _sign(bundle: Path) -> None:
    """Recompute every hash meta.json records of the cross-validation, as a forger would."""
    meta = json.loads((bundle / "meta.json").read_text())
    folder = bundle / FOLDS_DIR
    record = meta["cross_validation"]
    for name in ("per_case", "counts", "per_fold"):
        record[f"{name}_sha256"] = table_sha256(pl.read_parquet(folder / f"{name}.parquet"))
    record["provenance_sha256"] = json_sha256(json.loads((folder / "cross_validation.json").read_text()))
    record["predictions"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.zip"))}
    (bundle / "meta.json").write_text(json.dumps(meta))


def _edit(bundle: Path, name: str, change) -> None:
    path = bundle / FOLDS_DIR / f"{name}.parquet"
    change(pl.read_parquet(path)).write_parquet(path)


def _first(frame: pl.DataFrame, metric: str = "dice") -> pl.Expr:
    return (pl.col("fold") == 2) & (pl.col("case_id") == frame.filter(pl.col("fold") == 2)["case_id"].min()) & \
        (pl.col("metric") == metric)


def forge_per_fold_mean(bundle):
    _edit(bundle, "per_fold", lambda t: t.with_columns(
        mean=pl.when((pl.col("fold") == 1) & (pl.col("metric") == "dice")).then(pl.col("mean") + 0.05)
        .otherwise(pl.col("mean"))))
    return leaderboard.TamperedSubmissionError, "per_fold.parquet gives dice mean .* fold 1"


def forge_per_case_value(bundle):
    _edit(bundle, "per_case", lambda t: t.with_columns(
        value=pl.when(_first(t)).then(pl.col("value") * 0.5 + 0.5).otherwise(pl.col("value"))))
    return leaderboard.TamperedSubmissionError, "fold 2: per_case.parquet gives dice"


def forge_counts_and_values_together(bundle):
    # Consistent with each other (a better case), so only scoring the carried predictions again can tell.
    per_case = pl.read_parquet(bundle / FOLDS_DIR / "per_case.parquet")
    case = per_case.filter(pl.col("fold") == 2)["case_id"].min()
    _edit(bundle, "counts", lambda t: t.with_columns(
        tp=pl.when(pl.col("case_id") == case).then(pl.col("tp") + pl.col("fp")).otherwise(pl.col("tp")),
        fp=pl.when(pl.col("case_id") == case).then(0).otherwise(pl.col("fp"))))
    counts = pl.read_parquet(bundle / FOLDS_DIR / "counts.parquet").filter(pl.col("case_id") == case).row(0, named=True)
    dice = 2 * counts["tp"] / (2 * counts["tp"] + counts["fp"] + counts["fn"])
    iou = counts["tp"] / (counts["tp"] + counts["fp"] + counts["fn"])
    _edit(bundle, "per_case", lambda t: t.with_columns(
        value=pl.when(_first(t)).then(dice).when(_first(t, "iou")).then(iou).otherwise(pl.col("value"))))
    return leaderboard.TamperedSubmissionError, "fold 2: cross_validation/counts.parquet gives tp .* predictions score"


def forge_a_fold_without_one_case(bundle):
    # Its predictions removed too, so that nothing is scored again: the manifest still catches it.
    case = pl.read_parquet(bundle / FOLDS_DIR / "counts.parquet").filter(pl.col("fold") == 0)["case_id"].min()
    for name in ("per_case", "counts"):
        _edit(bundle, name, lambda t: t.filter(pl.col("case_id") != case))
    for archive in (bundle / FOLDS_DIR).glob("*.zip"):
        archive.unlink()
    return leaderboard.IncompleteSubmissionError, r"fold 0 should hold the \d+ cases .* missing 1"


def forge_another_models_fold_predictions(bundle):
    other = leaderboard_fixtures.held_out_folds(100)[1][3]
    (bundle / FOLDS_DIR / archive_name(3, None)).write_bytes(write_archive(other))
    return leaderboard.TamperedSubmissionError, "fold 3: cross_validation/counts.parquet gives"


def forge_the_manifest_hash(bundle):
    path = bundle / FOLDS_DIR / "cross_validation.json"
    provenance = json.loads(path.read_text())
    path.write_text(json.dumps({**provenance, "manifest_sha256": "0" * 64}))
    return leaderboard.RevisionMismatchError, "manifest 000000000000"


def forge_unsigned_edit(bundle):
    forge_per_fold_mean(bundle)
    return leaderboard.TamperedSubmissionError, "per_fold.parquet does not match the sha256 .* edited"


FORGERIES = [forge_per_fold_mean, forge_per_case_value, forge_counts_and_values_together, forge_a_fold_without_one_case,
             forge_another_models_fold_predictions, forge_the_manifest_hash]


@pytest.mark.parametrize("forge", [*FORGERIES, forge_unsigned_edit], ids=lambda f: f.__name__.removeprefix("forge_"))
def test_a_forged_fold_table_is_refused_by_validate_and_build(forge, bundle):
    error, message = forge(bundle)
    if forge in FORGERIES:
        _sign(bundle)
    with pytest.raises(error, match=f"bundle {DATASET}/t128 \\(cross-validation\\).*{message}"):
        leaderboard.build(bundle.parents[1])
    with pytest.raises(error, match=message):
        leaderboard.validate(bundle)


def test_a_bundle_that_drops_its_recorded_folds_is_refused(bundle):
    shutil.rmtree(bundle / FOLDS_DIR)
    with pytest.raises(leaderboard.IncompleteSubmissionError, match="records a cross-validation but .* no"):
        leaderboard.validate(bundle)


def test_fold_predictions_must_be_those_the_folds_were_scored_from(env, folds, tmp_path):
    with pytest.raises(leaderboard.TamperedSubmissionError, match="fold 0 are not those its held-out results"):
        leaderboard.submit(env[128][0], "t128", tmp_path, predictions=env[128][2], cross_validation=folds[128][0],
                           fold_predictions=folds[100][1])
    with pytest.raises(leaderboard.IncompleteSubmissionError, match="not predictions-fold4.zip"):
        leaderboard.submit(env[128][0], "t128", tmp_path, predictions=env[128][2], cross_validation=folds[128][0],
                           fold_predictions={k: v for k, v in folds[128][1].items() if k < 4})
    assert not (tmp_path / DATASET).exists()


def test_cli_submit_takes_the_cross_validation_and_fold_predictions(scored, folds, env, tmp_path) -> None:
    from medseg_eval.cli import main

    def as_folder(predictions: dict, folder: Path) -> str:
        folder.mkdir(parents=True)
        for case_id, mask in predictions.items():
            np.save(folder / f"{case_id}.npy", np.asarray(mask))
        return str(folder)

    cv, fold_predictions = folds[128]
    cv_dir = cv.save(tmp_path / "cv")
    results_dir = env[128][1]
    args = ["leaderboard", "submit", str(results_dir), "--model", "cli-t128", "--board-dir", str(tmp_path / "board"),
            "--predictions", as_folder(env[128][2], tmp_path / "test-preds"), "--cv", str(cv_dir)]
    for fold, predictions in fold_predictions.items():
        args += ["--fold-predictions", f"{fold}={as_folder(predictions, tmp_path / f'fold{fold}')}"]
    assert main(args) == 0
    bundle = tmp_path / "board" / DATASET / "cli-t128"
    meta = json.loads((bundle / "meta.json").read_text())
    assert sorted(meta["cross_validation"]["folds"]) == sorted(fold_predictions)
    assert all((bundle / FOLDS_DIR / archive_name(fold, None)).is_file() for fold in fold_predictions)
    assert main(["leaderboard", "validate", "--board-dir", str(tmp_path / "board")]) == 0
