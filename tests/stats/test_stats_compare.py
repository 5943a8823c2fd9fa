"""compare(), the pairing of per-case tables, rankings, tables and the CLI: behaviour a paper relies on."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

import medseg_eval
from medseg_eval import stats
from medseg_eval.cli import main


def _long(values: dict[str, list[float]], metric: str = "dice", ids: list[str] | None = None) -> pl.DataFrame:
    rows = []
    for model, column in values.items():
        for i, v in enumerate(column):
            rows.append({"model": model, "case_id": (ids or [f"c{j:02d}" for j in range(len(column))])[i],
                         "metric": metric, "value": v})
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def three_models() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.9, 30)
    return pl.concat([
        _long({"unet": base, "segformer": base + 0.05 + rng.normal(0, 0.01, 30), "swin": base + rng.normal(0, .02, 30)}),
        _long({"unet": 10 - 10 * base, "segformer": 9 - 10 * base, "swin": 10 - 10 * base + rng.normal(0, .2, 30)},
              metric="hd95"),
    ])


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Results of two models on 12 generated cases: one exact, one with 10% of its pixels flipped."""
    rng = np.random.default_rng(0)
    truth = {f"case{i:02d}": (rng.random((24, 24)) > 0.6).astype(np.uint8) for i in range(12)}
    noisy = {k: np.where(rng.random(v.shape) < 0.1, 1 - v, v) for k, v in truth.items()}
    slightly = {k: np.where(rng.random(v.shape) < 0.05, 1 - v, v) for k, v in truth.items()}
    metrics = ["dice", "hd95"]
    out = {name: medseg_eval.evaluate(preds, targets=truth, metrics=metrics, progress=False)
           for name, preds in (("exact", truth), ("noisy", noisy), ("slightly", slightly))}
    folder = tmp_path_factory.mktemp("results")
    for name, res in out.items():
        res.save(folder / name)
    return out, folder


def test_contract_two_models_pairwise_columns_and_latex(evaluated):
    results, _ = evaluated
    cmp = medseg_eval.compare({"a": results["exact"], "b": results["noisy"]}, metric="dice")
    assert {"model_a", "model_b", "test", "statistic", "p_value", "p_adjusted"} <= set(cmp.pairwise.columns)
    row = cmp.pairwise.row(0, named=True)
    dice = results["exact"].wide()["dice"].to_numpy(), results["noisy"].wide()["dice"].to_numpy()
    assert (row["model_a"], row["model_b"], row["test"], row["better"]) == ("a", "b", "wilcoxon", "a")
    assert row["p_value"] == pytest.approx(sps.wilcoxon(*dice).pvalue)  # 12 cases, no ties: scipy is exact too
    assert row["p_adjusted"] == row["p_value"]  # one pair: nothing to correct
    latex = cmp.to_latex()
    assert latex.startswith(r"\begin{table}") and r"\textbf{" in latex and "Wilcoxon" in latex
    assert "Holm" in latex and r"\end{tabular}" in latex


def test_friedman_contract_on_a_long_table(three_models):
    statistic, p_value = stats.friedman(three_models, metric="dice")
    wide = three_models.filter(pl.col("metric") == "dice").pivot(on="model", index="case_id", values="value")
    ref = sps.friedmanchisquare(wide["unet"], wide["segformer"], wide["swin"])
    assert (statistic, p_value) == pytest.approx((ref.statistic, ref.pvalue))


def test_pairing_is_by_case_id_not_row_order(three_models):
    shuffled = three_models.sample(fraction=1.0, shuffle=True, seed=1)
    a = medseg_eval.compare(three_models, ["dice", "hd95"], n_boot=200, n_rank_boot=50)
    b = medseg_eval.compare(shuffled, ["dice", "hd95"], n_boot=200, n_rank_boot=50)
    for frame in ("pairwise", "posthoc"):  # the model order may differ, so a pair is a set
        left, right = ({(r["metric"], r["test"], frozenset((r["model_a"], r["model_b"]))): (r["statistic"], r["p_value"])
                        for r in getattr(c, frame).iter_rows(named=True)} for c in (a, b))
        assert left.keys() == right.keys()
        assert [v for k in left for v in left[k]] == pytest.approx([v for k in left for v in right[k]])
    assert stats.friedman(three_models, "dice") == stats.friedman(shuffled, "dice")


def test_a_missing_case_raises_unless_a_policy_is_set(three_models):
    table = three_models.filter(~((pl.col("model") == "swin") & (pl.col("case_id") == "c07")))
    with pytest.raises(stats.UnpairedCasesError, match=r"swin lacks 1 \(c07\).*missing='worst'"):
        medseg_eval.compare(table, "dice")
    worst = stats.paired_values(table, "dice", missing="worst")
    assert worst.values[7, worst.models.index("swin")] == 0.0
    assert worst.missing == {"policy": "worst", "worst_value": 0.0, "imputed": {"swin": 1}}
    hd = stats.paired_values(table, "hd95", missing="worst")
    assert hd.values[7, hd.models.index("swin")] == table.filter(pl.col("metric") == "hd95")["value"].max()
    assert stats.paired_values(table, "hd95", missing="worst", worst={"hd95": 99.0}).values[7, 2] == 99.0
    with pytest.warns(stats.DroppedCasesWarning, match="dropped 1 of 30 cases"):
        dropped = medseg_eval.compare(table, "dice", missing="drop", n_boot=100, n_rank_boot=20)
    assert dropped.settings["missing"]["dice/1"]["dropped_cases"] == ["c07"]
    assert set(dropped.pairwise["n"].to_list()) == {29}
    intersection = three_models.filter(pl.col("case_id") != "c07")
    with pytest.warns(stats.DroppedCasesWarning):
        after_drop = stats.friedman(table, "dice", missing="drop")
    assert tuple(stats.friedman(intersection, "dice")) == pytest.approx(tuple(after_drop))


def test_nan_values_count_as_missing():
    table = _long({"a": [0.9, float("nan"), 0.7], "b": [0.8, 0.7, 0.6]})
    with pytest.raises(stats.UnpairedCasesError, match="a lacks 1 \\(c01\\)"):
        stats.paired_values(table, "dice")


def test_duplicate_cases_are_an_error():
    table = _long({"a": [0.9, 0.8, 0.7], "b": [0.8, 0.7, 0.6]}, ids=None)
    table = pl.concat([table, table.head(1)])
    with pytest.raises(stats.DuplicateCaseError, match="model 'a' has more than one row for case 'c00'"):
        medseg_eval.compare(table)


def test_direction_comes_from_the_metric():
    table = _long({"a": [1.0, 2.0, 3.0, 1.5], "b": [5.0, 6.0, 7.0, 8.0]}, metric="hd95")
    cmp = medseg_eval.compare(table, "hd95", n_boot=100, n_rank_boot=20)
    assert cmp.summary.filter(pl.col("rank") == 1)["model"].to_list() == ["a"]
    assert cmp.pairwise["better"].to_list() == ["a"]
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        stats.paired_values(table.with_columns(metric=pl.lit("auc")), "auc")


def test_several_classes_are_compared_each_on_its_own():
    rows = []
    for model, shift in (("a", 0.0), ("b", 0.1)):
        for c in range(6):
            for class_id, name in ((1, "liver"), (2, "tumour")):
                rows.append({"model": model, "case_id": str(c), "class": name, "class_id": class_id,
                             "metric": "dice", "value": 0.5 + 0.05 * c + shift * class_id})
    table = pl.DataFrame(rows)
    with pytest.raises(ValueError, match="choose one with class_"):
        stats.paired_values(table, "dice")
    cmp = medseg_eval.compare(table, "dice", n_boot=100, n_rank_boot=20)
    assert sorted(cmp.pairwise["class"].to_list()) == ["liver", "tumour"]
    assert stats.paired_values(table, "dice", class_="tumour").values[:, 1].tolist() == pytest.approx(
        [0.7 + 0.05 * c for c in range(6)])
    assert stats.paired_values(table, "dice", class_="mean").values[0].tolist() == pytest.approx([0.5, 0.65])
    assert "Dice (liver)" in cmp.to_markdown() and "Dice (tumour)" in cmp.to_markdown()


def test_datasets_as_blocks():
    rows = []
    for d, dataset in enumerate(["isic2018", "kvasir-seg", "camus", "busi", "glas"]):
        for model, shift in (("a", 0.02), ("b", 0.0), ("c", -0.03)):
            for c in range(4):
                rows.append({"model": model, "dataset": dataset, "case_id": f"x{c}", "metric": "dice",
                             "value": 0.6 + 0.05 * d + shift + 0.01 * c})
    table = pl.DataFrame(rows)
    paired = stats.paired_values(table, "dice", blocks="dataset")
    assert paired.blocks == ["busi", "camus", "glas", "isic2018", "kvasir-seg"]
    assert paired.values[0] == pytest.approx([0.6 + 0.15 + s + 0.015 for s in (0.02, 0.0, -0.03)])
    result = stats.friedman(table, "dice", blocks="dataset")
    assert result.mean_ranks == {"a": 1.0, "b": 2.0, "c": 3.0}
    # the same case id in two datasets is two cases
    assert stats.paired_values(table, "dice").values.shape == (20, 3)


def test_results_scored_differently_are_not_compared(evaluated):
    results, _ = evaluated
    other = medseg_eval.Results(results["noisy"].per_case, results["noisy"].counts,
                                {**results["noisy"].provenance, "convention": "monai"})
    with pytest.raises(stats.PairingError, match="differ in convention"):
        medseg_eval.compare({"a": results["exact"], "b": other})


def test_settings_record_seeds_policy_and_provenance(evaluated):
    results, folder = evaluated
    cmp = medseg_eval.compare({"exact": folder / "exact", "noisy": folder / "noisy"}, metric=["dice", "hd95"],
                              seed=5, n_boot=300, n_rank_boot=40)
    s = cmp.settings
    assert (s["seed"], s["n_boot"], s["n_rank_boot"], s["missing_policy"]) == (5, 300, 40, "error")
    assert s["tests"] == ["wilcoxon"] and s["correction"] == "holm" and s["zero_method"] == "wilcox"
    assert s["inputs"]["exact"][0]["predictions_sha256"] == results["exact"].provenance["predictions_sha256"]
    assert s["package_version"] == medseg_eval.__version__


def test_bootstrap_outputs_are_seeded(three_models):
    a = medseg_eval.compare(three_models, "dice", seed=1, n_boot=300, n_rank_boot=50)
    b = medseg_eval.compare(three_models, "dice", seed=1, n_boot=300, n_rank_boot=50)
    c = medseg_eval.compare(three_models, "dice", seed=2, n_boot=300, n_rank_boot=50)
    assert a.summary.equals(b.summary) and a.pairwise.equals(b.pairwise) and a.stability.equals(b.stability)
    assert not a.summary["ci_low"].equals(c.summary["ci_low"])


def test_summary_ci_and_difference_ci(three_models):
    cmp = medseg_eval.compare(three_models, "dice", n_boot=500, n_rank_boot=20)
    paired = stats.paired_values(three_models, "dice")
    unet = cmp.summary.filter(pl.col("model") == "unet").row(0, named=True)
    assert unet["mean"] == pytest.approx(paired.values[:, 0].mean())
    assert unet["ci_low"] < unet["mean"] < unet["ci_high"]
    pair = cmp.pairwise.filter((pl.col("model_a") == "unet") & (pl.col("model_b") == "segformer")).row(0, named=True)
    est, low, high = stats.bootstrap_ci(paired.values[:, 0], paired.values[:, 1], n_boot=500, seed=0)
    assert (pair["mean_diff"], pair["mean_diff_low"], pair["mean_diff_high"]) == pytest.approx((est, low, high))
    assert pair["better"] == "segformer" and pair["significant"] and pair["mean_diff_high"] < 0
    assert pair["rank_biserial"] == pytest.approx(-1.0) and pair["cohen_dz"] < -1


def test_all_three_tests_can_be_reported(three_models):
    cmp = medseg_eval.compare(three_models, "dice", test=["wilcoxon", "t", "permutation"], n_boot=100,
                              n_rank_boot=20)
    assert cmp.pairwise.group_by("test").len().sort("test").rows() == [("permutation", 3), ("t", 3), ("wilcoxon", 3)]
    t_rows = cmp.pairwise.filter(pl.col("test") == "t")
    p = t_rows["p_value"].to_numpy()
    from statsmodels.stats.multitest import multipletests

    assert t_rows["p_adjusted"].to_numpy() == pytest.approx(multipletests(p, method="holm")[1])


def test_ranking_schemes_can_disagree_and_are_all_reported():
    # b has the best mean, a wins most cases, c is significantly better than nobody.
    table = _long({"a": [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1], "b": [0.85] * 7, "c": [0.5] * 7})
    cmp = medseg_eval.compare(table, "dice", n_boot=100, n_rank_boot=50)
    ranks = {(r["scheme"], r["model"]): r["rank"] for r in cmp.ranking.iter_rows(named=True)}
    assert (ranks[("aggregate-then-rank", "b")], ranks[("aggregate-then-rank", "a")]) == (1, 2)
    assert (ranks[("rank-then-aggregate", "a")], ranks[("rank-then-aggregate", "b")]) == (1, 2)
    # test-then-rank: one-sided Wilcoxon at 0.05 without correction; both a and b beat c (7 of 7 better
    # for b; 6 of 7 for a is not significant with n = 7 under the normal approximation), nobody else.
    wins = {r["model"]: r["score"] for r in cmp.ranking.filter(pl.col("scheme") == "test-then-rank").iter_rows(
        named=True)}
    expected = {}
    for m in ("a", "b", "c"):
        x = table.filter(pl.col("model") == m)["value"].to_numpy()
        expected[m] = sum(sps.wilcoxon(x, table.filter(pl.col("model") == o)["value"].to_numpy(),
                                       alternative="greater", method="asymptotic").pvalue < 0.05
                          for o in ("a", "b", "c") if o != m and not np.all(
                              x == table.filter(pl.col("model") == o)["value"].to_numpy()))
    assert wins == expected


def test_rank_stability_is_certain_for_well_separated_models_and_not_for_close_ones():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.5, 0.9, 40)
    table = _long({"best": base + 0.2, "mid": base, "close": base + rng.normal(0, 0.02, 40)})
    stability = stats.rank_stability(table, "dice", n_boot=300, seed=0)
    summary = {r["model"]: r for r in stability.summary().iter_rows(named=True)}
    assert summary["best"]["at_full_rank"] == 1.0 and summary["best"]["rank_high"] == 1
    assert 0 < summary["mid"]["at_full_rank"] < 1 and summary["mid"]["rank_low"] == 2
    freq = stability.frequencies.group_by("model").agg(pl.col("frequency").sum())
    assert freq["frequency"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    taus = stability.taus
    full = stats.rank_models(table, "dice")
    assert np.nanmin(taus) >= -1 and np.nanmax(taus) == 1.0 and full["rank"].to_list() == [1, 2, 3]
    # tau against an explicit recomputation for one bootstrap sample
    paired = stats.paired_values(table, "dice")
    sample = np.random.default_rng(0).integers(0, 40, (300, 40))[0]
    boot_rank = sps.rankdata(-paired.values[sample].mean(axis=0), method="min")
    full_rank = sps.rankdata(-paired.values.mean(axis=0), method="min")
    assert taus[0] == pytest.approx(sps.kendalltau(full_rank, boot_rank).statistic)


def test_tables_mark_the_best_and_significance(three_models):
    cmp = medseg_eval.compare(three_models, ["dice", "hd95"], n_boot=200, n_rank_boot=20)
    markdown = cmp.to_markdown()
    lines = {line.split(" | ")[0].lstrip("| "): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "**" in lines["segformer"] and "†" in lines["unet"] and "**" not in lines["unet"]
    assert "Dice ↑" in markdown and "HD95 ↓" in markdown
    assert "Holm correction over the 3 pairwise comparisons" in markdown and "seed 0" in markdown
    median = cmp.to_markdown(statistic="median", ci=False)
    assert "Median [IQR]" in median and "±" not in median.split("\n\n")[0]
    latex = cmp.to_latex(label="tab:dice")
    assert r"\label{tab:dice}" in latex and r"$^{\dagger}$" in latex and r"$\downarrow$" in latex
    assert latex.count(r"\\") == 4  # header and three models
    assert stats.tables.latex_escape("unet_v2 & 50%") == r"unet\_v2 \& 50\%"


def test_friedman_and_posthoc_are_reported_for_three_models(three_models):
    cmp = medseg_eval.compare(three_models, "dice", n_boot=100, n_rank_boot=20)
    omnibus = cmp.omnibus.row(0, named=True)
    assert (omnibus["statistic"], omnibus["p_value"]) == pytest.approx(tuple(stats.friedman(three_models, "dice")))
    assert omnibus["critical_difference"] == pytest.approx(stats.critical_difference(3, 30))
    assert set(cmp.posthoc["test"].to_list()) == {"nemenyi", "conover"}
    two = medseg_eval.compare(three_models.filter(pl.col("model") != "swin"), "dice", n_boot=100, n_rank_boot=20)
    assert two.omnibus.is_empty() and two.posthoc.is_empty()


def test_figures_render(three_models, tmp_path):
    pytest.importorskip("matplotlib")
    cmp = medseg_eval.compare(three_models, ["dice", "hd95"], n_boot=100, n_rank_boot=50)
    for name in ("cd", "blobs", "significance", "cases"):
        path = tmp_path / f"{name}.png"
        getattr(cmp, f"plot_{name}")("hd95", path=path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_save_writes_every_frame_and_the_tables(three_models, tmp_path):
    cmp = medseg_eval.compare(three_models, "dice", n_boot=100, n_rank_boot=20)
    out = cmp.save(tmp_path / "cmp")
    assert pl.read_parquet(out / "pairwise.parquet").equals(cmp.pairwise)
    assert json.loads((out / "settings.json").read_text())["n_boot"] == 100
    assert (out / "table.tex").read_text().startswith(r"\begin{table}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp"]  # no staging folder left


def test_cli_compare_prints_a_table_and_writes_outputs(evaluated, tmp_path, capsys):
    _, folder = evaluated
    code = main(["compare", str(folder / "exact"), str(folder / "noisy"), f"slight={folder / 'slightly'}",
                 "--metric", "dice", "--metric", "hd95", "--format", "latex", "--out", str(tmp_path / "cmp"),
                 "--plots", str(tmp_path / "figures"), "--n-boot", "200", "--n-rank-boot", "20"])
    assert code == 0
    printed = capsys.readouterr().out
    assert r"\begin{table}" in printed and "slight" in printed and "noisy" in printed
    assert (tmp_path / "cmp" / "pairwise.parquet").is_file()
    if pytest.importorskip("matplotlib"):
        assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(
            f"{kind}-{metric}-{cls}.png" for kind in ("cd", "blobs", "significance", "cases")
            for metric in ("dice", "hd95") for cls in ("1",))


def test_cli_compare_reports_a_missing_case_as_a_usage_error(evaluated, tmp_path, capsys):
    results, _ = evaluated
    short = medseg_eval.Results(results["noisy"].per_case.filter(pl.col("case_id") != "case03"),
                                results["noisy"].counts, results["noisy"].provenance)
    short.save(tmp_path / "short")
    results["exact"].save(tmp_path / "exact")
    assert main(["compare", str(tmp_path / "exact"), str(tmp_path / "short")]) == 2
    assert "short lacks" in capsys.readouterr().err


def test_cli_compare_names_a_folder_that_is_not_saved_results(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), str(tmp_path / "empty2")]) == 2
    assert "is not a saved Results folder (missing per_case.parquet" in capsys.readouterr().err
