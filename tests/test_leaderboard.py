"""Leaderboards: submit -> validate -> build, the rejections, the reported seeds and the CLI contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import medseg_eval
from medseg_eval import leaderboard
from medseg_eval.cli import main
from medseg_eval.leaderboard.founding_study import REPORTED, seed_reported

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scored(synthetic_home):
    """Three threshold "models" scored on synthetic-lesions' test split (20 cases), saved, with their predictions."""
    home = synthetic_home
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(home))
        test = medseg_eval.load_dataset("synthetic-lesions", split="test")
        images = {row["case_id"]: np.asarray(row["image"]) for row in test}
        out = {}
        for t in (100, 128, 160):
            preds = {c: (im > t).astype(np.uint8) for c, im in images.items()}
            res = medseg_eval.evaluate(preds, "synthetic-lesions", metrics=["dice", "iou", "hd95"], progress=False)
            folder = home / "results" / f"t{t}"
            res.save(folder)
            np.savez(home / f"preds{t}.npz", **preds)
            out[t] = (res, folder, preds)
        yield home, out


@pytest.fixture()
def env(scored, monkeypatch):
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(scored[0]))
    return scored[1]


def test_submit_then_build_ranks_with_ci_and_marks_a_significantly_worse_entry(env, tmp_path):
    board_dir = tmp_path / "boards"
    for t in (128, 100):
        leaderboard.submit(env[t][0], f"threshold {t}", board_dir, parameters=0.0)
    leaderboard.build(board_dir)
    b = leaderboard.board(board_dir, "synthetic-lesions")
    assert b.ranked["model"].to_list() == ["threshold 128", "threshold 100"]
    top = b.ranked.row(0, named=True)
    dice = env[128][0].wide()["dice"].to_numpy()
    boot = dice[np.random.default_rng(0).integers(0, 20, (2000, 20))].mean(axis=1)
    assert top["dice"] == pytest.approx(dice.mean())
    assert (top["dice_ci_low"], top["dice_ci_high"]) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])))
    assert b.ranked.row(1, named=True)["worse_than_leader"] is True
    readme = (board_dir / "synthetic-lesions" / "README.md").read_text()
    assert "| 1 | threshold 128 | verified |" in readme and "worse (p < 0.001)" in readme
    before = {p: p.read_bytes() for p in (board_dir / "synthetic-lesions" / "README.md", board_dir / "index.html")}
    leaderboard.build(board_dir)
    assert all(p.read_bytes() == data for p, data in before.items())


def test_pooled_mdice_comes_from_the_pixel_counts(env, tmp_path):
    leaderboard.submit(env[160][0], "t160", tmp_path)
    counts = env[160][0].counts
    tp, fp, fn = (counts[c].sum() for c in ("tp", "fp", "fn"))
    assert leaderboard.board(tmp_path, "synthetic-lesions").ranked["mdice_pooled"][0] == pytest.approx(
        2 * tp / (2 * tp + fp + fn))


def test_an_edited_per_case_table_is_named_by_build_and_validate(env, tmp_path, capsys):
    bundle = leaderboard.submit(env[128][0], "threshold 128", tmp_path)
    table = pl.read_parquet(bundle / "per_case.parquet")
    table.with_columns(value=pl.when(pl.col("case_id") == table["case_id"][0]).then(pl.col("value") + 0.01)
                       .otherwise(pl.col("value"))).write_parquet(bundle / "per_case.parquet")
    with pytest.raises(leaderboard.TamperedSubmissionError, match="synthetic-lesions/threshold-128.*edited"):
        leaderboard.build(tmp_path)
    assert not (tmp_path / "index.html").exists()
    assert main(["leaderboard", "validate", "--board-dir", str(tmp_path)]) == 1
    assert main(["leaderboard", "build", "--board-dir", str(tmp_path)]) == 1
    assert "synthetic-lesions/threshold-128" in capsys.readouterr().err


def test_missing_cases_are_rejected(env, tmp_path):
    res = env[128][0]
    partial = medseg_eval.Results(res.per_case.filter(pl.col("case_id") != res.per_case["case_id"][0]),
                                  res.counts, res.provenance)
    with pytest.raises(leaderboard.IncompleteSubmissionError, match="does not cover the 20 test cases.*missing 1"):
        leaderboard.submit(partial, "partial", tmp_path)
    assert not (tmp_path / "synthetic-lesions").exists()


def test_another_dataset_revision_is_rejected(env, tmp_path):
    res = env[128][0]
    other = medseg_eval.Results(res.per_case, res.counts, {**res.provenance, "manifest_sha256": "0" * 64})
    with pytest.raises(leaderboard.RevisionMismatchError, match="manifest 000000000000"):
        leaderboard.submit(other, "old", tmp_path)
    validation = medseg_eval.Results(res.per_case, res.counts, {**res.provenance, "split": "train"})
    with pytest.raises(leaderboard.RevisionMismatchError, match="split 'train'"):
        leaderboard.submit(validation, "on-train", tmp_path)


def test_duplicates_are_rejected(env, tmp_path):
    leaderboard.submit(env[128][0], "threshold 128", tmp_path)
    with pytest.raises(leaderboard.DuplicateSubmissionError, match="already has 'threshold-128'"):
        leaderboard.submit(env[100][0], "Threshold 128", tmp_path)
    with pytest.raises(leaderboard.DuplicateSubmissionError, match="already on the board as 'threshold-128'"):
        leaderboard.submit(env[128][0], "renamed", tmp_path)


def test_predictions_given_are_scored_again(env, tmp_path):
    res, _, preds = env[128]
    bundle = leaderboard.submit(res, "checked", tmp_path, predictions=preds)
    assert json.loads((bundle / "meta.json").read_text())["recomputed_from_predictions"] is True
    with pytest.raises(leaderboard.TamperedSubmissionError, match="not those the results were computed from"):
        leaderboard.submit(res, "other", tmp_path, predictions=env[100][2])


def test_reproduced_needs_its_config(env, tmp_path):
    with pytest.raises(leaderboard.IncompleteSubmissionError, match="records the trainer's config"):
        leaderboard.submit(env[128][0], "trained", tmp_path, badge="reproduced")
    bundle = leaderboard.submit(env[128][0], "trained", tmp_path, badge="reproduced", config={"lr": 1e-4})
    assert json.loads((bundle / "meta.json").read_text())["config"] == {"lr": 1e-4}


def test_reported_entries_are_listed_apart_and_never_ranked(env, tmp_path):
    leaderboard.submit(env[160][0], "t160", tmp_path)
    leaderboard.reported_submission("Paper net", "synthetic-lesions", metric="dice", mean=99.0, sd=0.1,
                                    citation="Doe 2026", aggregate="pooled", protocol="5-fold").write(tmp_path)
    b = leaderboard.board(tmp_path, "synthetic-lesions")
    assert b.ranked["model"].to_list() == ["t160"] and b.reported["model"].to_list() == ["Paper net"]
    with pytest.raises(leaderboard.IncompleteSubmissionError, match="needs a citation"):
        leaderboard.validate(leaderboard.reported_submission(
            "x", "synthetic-lesions", metric="dice", mean=1.0, sd=None, citation="", aggregate="a", protocol="p"))


def test_the_committed_boards_are_the_founding_study_and_rebuild_identically(tmp_path):
    seed_reported(tmp_path)
    committed = REPO / "leaderboards"
    for dataset in ("isic2018", "neopolyp", "camus"):
        ours = sorted(p.relative_to(tmp_path) for p in (tmp_path / dataset).glob("*/meta.json"))
        assert ours == sorted(p.relative_to(committed) for p in (committed / dataset).glob("*/meta.json"))
        assert len(ours) == len(REPORTED) == 11
        for rel in ours:
            assert json.loads((tmp_path / rel).read_text()) == json.loads((committed / rel).read_text())
    copy = tmp_path / "copy"
    shutil.copytree(committed, copy)
    leaderboard.build(copy)
    for rel in ("index.html", "isic2018/README.md", "neopolyp/README.md", "camus/README.md", "kvasir-seg/README.md"):
        assert (copy / rel).read_bytes() == (committed / rel).read_bytes(), f"{rel} is stale: rebuild the boards"
    isic = (committed / "isic2018" / "README.md").read_text()
    assert "| TransNeXt-Tiny + UPerHead | mDice (%) 91.9 ± 0.7 | 58 | arXiv 2603.13044" in isic


def test_the_committed_kvasir_seg_runs_are_reproduced_bundles_that_say_how_they_were_made():
    # The reduced protocol on a lent H200 (benchmarks/reduced_protocol.py): ten models, each bundle valid and
    # carrying its command, device, wall time and full config; scored here against the pinned manifest.
    bundles = sorted((REPO / "leaderboards" / "kvasir-seg").glob("*/meta.json"))
    assert len(bundles) == 10
    for path in bundles:
        sub = leaderboard.validate(path.parent)
        meta, run = sub.meta, sub.meta["config"]
        assert meta["badge"] == "reproduced" and meta["split"] == "validation" and meta["provenance"]["manifest_pinned"]
        assert run["command"].startswith("python -m benchmarks.reduced_protocol train --cases")
        assert run["device"] == "NVIDIA H200" and run["wall_s"] > 0 and run["torch"].endswith("+cu130")
        config = run["config"]
        assert (config["dataset"], config["image_size"], config["max_epochs"], config["max_time_s"]) == (
            "kvasir-seg", 256, 10, 18.0)
        assert meta["model"] == (f"{config['model']} (reduced: fold 0, 256px, {run['report']['epochs_run']} epochs)")
        assert sub.per_case["case_id"].n_unique() == 120


def test_cli_contract_submit_then_build_lists_each_model(env, tmp_path, capsys):
    board_dir = tmp_path / "b"
    for t in (100, 160):
        assert main(["leaderboard", "submit", str(env[t][1]), "--model", f"thr-{t}", "--board-dir", str(board_dir),
                     "--predictions", str(Path(env[t][1]).parents[1] / f"preds{t}.npz")]) == 0
    assert sorted(p.name for p in (board_dir / "synthetic-lesions").iterdir()) == ["thr-100", "thr-160"]
    assert main(["leaderboard", "build", "--board-dir", str(board_dir)]) == 0
    readme = (board_dir / "synthetic-lesions" / "README.md").read_text()
    assert "thr-100" in readme and "thr-160" in readme
    assert main(["leaderboard", "submit", str(env[100][1]), "--model", "thr-100", "--board-dir", str(board_dir)]) == 1
    assert "already has 'thr-100'" in capsys.readouterr().err


def test_hub_pull_request_dry_run_writes_the_exact_files(env, tmp_path):
    board_dir = tmp_path / "boards"
    leaderboard.submit(env[128][0], "t128", board_dir)
    leaderboard.submit(env[160][0], "t160", board_dir)
    out = tmp_path / "pr"
    assert main(["leaderboard", "push", "synthetic-lesions", "--repo-id", "medseg-eval/leaderboards",
                 "--board-dir", str(board_dir), "--bundle", "t160", "--dry-run", str(out)]) == 0
    commit = json.loads((out / "commit.json").read_text())
    assert commit["create_pr"] is True and commit["commit_message"] == "synthetic-lesions: submit t160"
    assert commit["files"] == ["synthetic-lesions/README.md", "synthetic-lesions/t160/counts.parquet",
                               "synthetic-lesions/t160/meta.json", "synthetic-lesions/t160/per_case.parquet"]
    for path in commit["files"]:
        assert (out / path).read_bytes() == (board_dir / path).read_bytes()
    with pytest.raises(FileNotFoundError, match="no bundle t999"):
        leaderboard.hub.push(board_dir, "synthetic-lesions", "x/y", bundles=["t999"], dry_run=tmp_path / "no")
