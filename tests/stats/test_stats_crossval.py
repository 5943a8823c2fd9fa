"""cross_validation(): checks that folds belong together, numbers over folds, the hierarchical bootstrap, run folders."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import medseg_eval
from medseg_eval.bootstrap import hierarchical_resamples
from medseg_eval.datasets import manifest_sha256, shipped_manifest
from medseg_eval.stats import (
    CrossValidation,
    FoldCoverageError,
    MixedSettingsError,
    OverlappingFoldsError,
    load_runs,
)

DATASET = "synthetic-lesions"
MANIFEST = shipped_manifest(DATASET)
FOLDS = {k: sorted(MANIFEST.filter((pl.col("split") == "train") & (pl.col("fold") == k))["case_id"].to_list())
         for k in range(5)}


def _masks(ids: list[str], seed: int, noise: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Ground truth (a square per case) and a prediction with ``noise`` of its pixels flipped."""
    rng = np.random.default_rng(seed)
    truth, pred = {}, {}
    for i, case in enumerate(ids):
        mask = np.zeros((24, 24), np.uint8)
        mask[4 + i % 5:14 + i % 7, 5:15 + i % 4] = 1
        truth[case] = mask
        pred[case] = np.where(rng.random(mask.shape) < noise, 1 - mask, mask).astype(np.uint8)
    return pred, truth


def _fold(k: int, seed: int = 0, noise: float = 0.1, ids: list[str] | None = None, **options) -> medseg_eval.Results:
    pred, truth = _masks(ids or FOLDS[k], 100 * seed + k, noise)
    return medseg_eval.evaluate(pred, targets=truth, metrics=options.pop("metrics", ["dice", "hd95"]),
                                progress=False, **options)


@pytest.fixture(scope="module")
def folds() -> dict[int, medseg_eval.Results]:
    return {k: _fold(k, noise=0.05 + 0.03 * k) for k in range(5)}


@pytest.fixture(scope="module")
def cv(folds) -> CrossValidation:
    return medseg_eval.cross_validation(folds, dataset=DATASET)


def test_per_case_holds_every_held_out_case_once_with_its_fold(cv, folds):
    dice = cv.per_case.filter(pl.col("metric") == "dice")
    assert dice.height == 40 and dice["case_id"].n_unique() == 40
    for k, ids in FOLDS.items():
        assert sorted(dice.filter(pl.col("fold") == k)["case_id"].to_list()) == ids
    assert cv.folds == [0, 1, 2, 3, 4] and cv.seeds == [None]
    assert cv.provenance["manifest_sha256"] == manifest_sha256(MANIFEST)
    assert cv.provenance["coverage"].startswith("each fold holds exactly")


def test_per_fold_mean_and_pooled_match_numpy(cv, folds):
    for k, res in folds.items():
        row = cv.per_fold.filter((pl.col("fold") == k) & (pl.col("metric") == "dice")).row(0, named=True)
        values = res.per_case.filter(pl.col("metric") == "dice")["value"].to_numpy()
        tp, fp, fn = (res.counts[c].to_numpy().sum() for c in ("tp", "fp", "fn"))
        assert row["n"] == 8 and row["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert row["pooled"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    assert cv.per_fold.filter(pl.col("metric") == "hd95")["pooled"].is_null().all()


def test_summary_matches_a_direct_numpy_computation(cv, folds):
    summary = cv.summary(n_boot=200)
    assert {"metric", "class", "mean", "sd", "min", "max", "held_out", "ci_low", "ci_high"} <= set(summary.columns)
    for metric in ("dice", "hd95"):
        per_fold = np.array([r.per_case.filter(pl.col("metric") == metric)["value"].to_numpy().mean()
                             for r in folds.values()])
        every = np.concatenate([r.per_case.filter(pl.col("metric") == metric)["value"].to_numpy()
                                for r in folds.values()])
        row = summary.filter((pl.col("metric") == metric) & (pl.col("aggregate") == "mean")).row(0, named=True)
        assert row["mean"] == pytest.approx(per_fold.mean(), rel=1e-12)
        assert row["sd"] == pytest.approx(per_fold.std(ddof=1), rel=1e-12)
        assert (row["min"], row["max"]) == pytest.approx((per_fold.min(), per_fold.max()), rel=1e-12)
        assert row["held_out"] == pytest.approx(every.mean(), rel=1e-12)
        assert row["ci_low"] < row["mean"] < row["ci_high"]
    counts = pl.concat([r.counts for r in folds.values()])
    tp, fp, fn = (counts[c].to_numpy().sum() for c in ("tp", "fp", "fn"))
    pooled = summary.filter((pl.col("metric") == "dice") & (pl.col("aggregate") == "pooled")).row(0, named=True)
    assert pooled["held_out"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    fold_pooled = cv.per_fold.filter(pl.col("metric") == "dice")["pooled"].to_numpy()
    assert pooled["mean"] == pytest.approx(fold_pooled.mean()) and pooled["sd"] == pytest.approx(fold_pooled.std(ddof=1))


def test_hierarchical_bootstrap_is_seeded_and_resamples_folds_then_cases(cv, folds):
    one, again, other = (cv.summary(n_boot=300, seed=s) for s in (7, 7, 8))
    assert one.equals(again) and not one.equals(other)
    # The same interval by hand: folds drawn with replacement, then cases within each drawn fold.
    values = [folds[k].per_case.filter(pl.col("metric") == "dice").sort("case_id")["value"].to_numpy() for k in range(5)]
    units, cases = hierarchical_resamples([[8]] * 5, 300, seed=7)
    boot = np.array([np.mean([values[u][cases[b, j, :8]].mean() for j, u in enumerate(units[b])]) for b in range(300)])
    row = one.filter((pl.col("metric") == "dice") & (pl.col("aggregate") == "mean")).row(0, named=True)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])), rel=1e-12)


def test_hierarchical_resamples_keep_each_case_in_its_stratum():
    units, cases = hierarchical_resamples([[3, 2], [1, 4]], 500, seed=0)
    for b in range(500):
        for j, u in enumerate(units[b]):
            bounds = [(0, 3), (3, 5)] if u == 0 else [(0, 1), (1, 5)]
            for low, high in bounds:
                assert ((cases[b, j, low:high] >= low) & (cases[b, j, low:high] < high)).all()
    assert set(units.ravel()) == {0, 1} and (cases[units == 0][:, 5:] == -1).all()


def test_overlapping_folds_are_refused(folds):
    overlapping = {**folds, 1: _fold(1, ids=FOLDS[1][:-1] + [FOLDS[0][0]])}
    with pytest.raises(OverlappingFoldsError, match=f"case '{FOLDS[0][0]}' is held out by folds 0 and 1"):
        medseg_eval.cross_validation(overlapping)


def test_a_fold_with_other_cases_than_its_manifest_fold_is_refused(folds):
    with pytest.raises(FoldCoverageError, match="fold 2 should hold the 8 cases .* missing 1"):
        medseg_eval.cross_validation({**folds, 2: _fold(2, ids=FOLDS[2][:-1])}, dataset=DATASET)
    with pytest.raises(FoldCoverageError, match="fold 3 should hold .* 1 others"):
        medseg_eval.cross_validation({**folds, 3: _fold(3, ids=FOLDS[3] + ["synth-040"])}, dataset=DATASET)


@pytest.mark.parametrize(("options", "setting"), [
    ({"convention": "monai"}, "convention"),
    ({"empty": medseg_eval.metrics.EmptyPolicy(both_empty="nan")}, "empty_policy"),
    ({"percentile": 90.0}, "percentile"),
])
def test_folds_scored_differently_are_refused(folds, options, setting):
    with pytest.raises(MixedSettingsError, match=f"different {setting}"):
        medseg_eval.cross_validation({**folds, 4: _fold(4, **options)})


def test_folds_of_two_datasets_are_refused(folds):
    with pytest.raises(MixedSettingsError, match="differ in dataset"):
        medseg_eval.cross_validation({0: folds[0], 1: _with_run(folds[1], dataset="kvasir-seg", fold=1)},
                                     dataset=DATASET)


def _with_run(res, **run):
    return medseg_eval.Results(res.per_case, res.counts, {**res.provenance, "run": run}, res.lesions)


def test_seeds_pool_folds_and_the_bootstrap_resamples_seeds(folds):
    runs = {(k, s): _fold(k, seed=s, noise=0.05 + 0.02 * s) for s in (1, 2) for k in range(5)}
    cv = medseg_eval.cross_validation(runs, dataset=DATASET)
    assert cv.seeds == [1, 2] and cv.per_case.filter(pl.col("metric") == "dice").height == 80
    row = cv.summary(n_boot=200).filter((pl.col("metric") == "dice") & (pl.col("aggregate") == "mean")).row(
        0, named=True)
    fold_means = np.array([[runs[(k, s)].per_case.filter(pl.col("metric") == "dice")["value"].mean()
                            for k in range(5)] for s in (1, 2)])
    assert row["mean"] == pytest.approx(fold_means.mean()) and row["n_seeds"] == 2 and row["n_cases"] == 40
    assert row["sd"] == pytest.approx(fold_means.ravel().std(ddof=1))
    assert row["sd_seeds"] == pytest.approx(fold_means.mean(1).std(ddof=1))
    folds_ci = cv.summary(n_boot=200, resample="folds").filter(pl.col("metric") == "dice").row(0, named=True)
    assert (folds_ci["ci_low"], folds_ci["ci_high"]) != (row["ci_low"], row["ci_high"])
    with pytest.raises(FoldCoverageError, match="seed 2 holds folds"):
        medseg_eval.cross_validation({k: v for k, v in runs.items() if k != (4, 2)})


def test_run_folders_of_the_trainers_feed_cross_validation(tmp_path, folds):
    """A run folder as medseg_eval.train.run writes it: run.json, results/held-out, results/test."""
    for k in (0, 1):
        run = tmp_path / f"unet-fold{k}"
        folds[k].save(run / "results" / "held-out")
        (run / "results" / "test").mkdir(parents=True)
        (run / "results" / "test" / "provenance.json").write_text(json.dumps(
            {"manifest_sha256": manifest_sha256(MANIFEST), "dataset_revision": "rev-abc"}))
        (run / "run.json").write_text(json.dumps({"config": {"model": "unet", "dataset": DATASET, "fold": k,
                                                             "seed": 42}}))
    runs = load_runs(sorted(tmp_path.iterdir()))
    assert sorted(runs) == [0, 1]
    cv = medseg_eval.cross_validation(runs)
    assert cv.provenance["dataset"] == DATASET and cv.provenance["dataset_revision"] == "rev-abc"
    assert cv.seeds == [42] and cv.provenance["models"] == ["unet"] and cv.provenance["split"] == "train"
    assert medseg_eval.cross_validation({1: tmp_path / "unet-fold1"}).folds == [1]
    with pytest.raises(FoldCoverageError, match="says fold 3, but its run"):
        medseg_eval.cross_validation({3: tmp_path / "unet-fold1"})
    again = CrossValidation.load(cv.save(tmp_path / "cv"))
    assert again.per_case.equals(cv.per_case) and again.provenance == cv.provenance


def test_compare_takes_cross_validations_with_folds_as_blocks(cv):
    from scipy import stats as sps

    worse = medseg_eval.cross_validation({k: _fold(k, seed=3, noise=0.2) for k in range(5)}, dataset=DATASET)
    cmp = medseg_eval.compare({"good": cv, "worse": worse}, "dice", n_boot=100, n_rank_boot=20)
    pair = cmp.pairwise.row(0, named=True)
    means = [c.per_fold.filter(pl.col("metric") == "dice").sort("fold")["mean"].to_numpy() for c in (cv, worse)]
    assert pair["n"] == 5 and pair["better"] == "good" and cmp.settings["blocks"] == "fold"
    assert pair["p_value"] == pytest.approx(sps.wilcoxon(means[0], means[1]).pvalue)
    good = cmp.summary.filter(pl.col("model") == "good").row(0, named=True)
    assert good["mean"] == pytest.approx(means[0].mean()) and good["sd"] == pytest.approx(means[0].std(ddof=1))
    caption = cmp.to_markdown().split("\n\n")[1]
    assert "over 5 folds" in caption and "treats the folds as independent pairs" in caption
    assert "Folds share training data" in caption
    by_case = medseg_eval.compare({"good": cv, "worse": worse}, "dice", blocks="case", test="t", n_boot=50,
                                  n_rank_boot=10)
    assert by_case.pairwise["n"][0] == 40
    assert "normally distributed differences" in by_case.to_markdown() and "optimistic" in by_case.to_markdown()


def test_compare_pairs_seeds_by_order_and_refuses_unlike_inputs(cv, folds):
    two = {name: medseg_eval.cross_validation({(k, s): _fold(k, seed=s, noise=noise) for s in seeds for k in (0, 1)})
           for name, seeds, noise in (("a", (1, 2), 0.05), ("b", (7, 9), 0.2))}
    assert medseg_eval.compare(two, "dice", n_boot=50, n_rank_boot=10).pairwise["n"][0] == 4
    by_seed = medseg_eval.compare(two, "dice", blocks="seed", n_boot=50, n_rank_boot=10)
    assert by_seed.pairwise["n"][0] == 2 and "over 2 seeds" in by_seed.to_markdown()
    with pytest.raises(medseg_eval.stats.PairingError, match="differ in folds"):
        medseg_eval.compare({"a": cv, "b": two["a"]}, "dice")
    with pytest.raises(medseg_eval.stats.PairingError, match="cross-validations with cross-validations"):
        medseg_eval.compare({"a": cv, "b": folds[0]}, "dice")
