"""report(): the methods paragraph follows every provenance field; Markdown, LaTeX, HTML; the command line."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest

import medseg_eval
from medseg_eval.cli import main
from medseg_eval.stats.report import load_saved


def _results(**options) -> medseg_eval.Results:
    rng = np.random.default_rng(1)
    truth = {f"c{i}": np.pad(np.ones((6 + i % 3, 7), np.uint8), 4) for i in range(6)}
    pred = {k: np.where(rng.random(v.shape) < 0.05, 1 - v, v).astype(np.uint8) for k, v in truth.items()}
    return medseg_eval.evaluate(pred, targets=truth, progress=False,
                                metrics=options.pop("metrics", ["dice", "hd95", "nsd", "lesion_recall"]), **options)


@pytest.fixture(scope="module")
def results() -> medseg_eval.Results:
    return _results()


def _with(res: medseg_eval.Results, **fields) -> medseg_eval.Results:
    provenance = copy.deepcopy(res.provenance)
    provenance.update(fields)
    return medseg_eval.Results(res.per_case, res.counts, provenance, res.lesions)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"dataset": "kvasir-seg", "dataset_revision": "rev-7f3a", "manifest_sha256": "ab" * 32, "split": "validation"},
     ["kvasir-seg [@jha2020kvasir]", "revision rev-7f3a", "SHA-256 " + "ab" * 32, "validation split"]),
    ({"targets_sha256": "cd" * 32, "num_cases": 777}, ["777 cases", "SHA-256 " + "cd" * 32]),
    ({"package_version": "9.8.7"}, ["medseg_eval 9.8.7 [@medseg_eval]"]),
    ({"percentile": 93.5}, ["93.5th-percentile Hausdorff distance (HD93.5)", "percentile 93.5"]),
    ({"tolerance": 3.25}, ["tolerance of 3.25", "NSD tolerance 3.25"]),
    ({"spacing_unit": "mm"}, ["Distances are in mm units", "(mm units)"]),
    ({"convention": "monai", "convention_reproduces": "MONAI 7.7.7 monai.metrics"},
     ["monai convention, which reproduces MONAI 7.7.7 monai.metrics exactly [@cardoso2022monai]",
      "linearly interpolated percentile of the float32 distances", "are edge pixels"]),
    ({"convention": "medpy", "convention_reproduces": "MedPy 0.4.0"},
     ["reproduces MedPy 0.4.0 exactly [@medpy]", "one linearly interpolated percentile of the distances of both"]),
    ({"empty_policy": {"both_empty": "nan", "one_empty": "worst", "worst_distance": "inf"}},
     ["both prediction and ground truth is undefined (NaN)", "distances infinity"]),
    ({"empty_policy": {"both_empty": "best", "one_empty": "nan", "worst_distance": "diagonal", "preset": "monai",
                       "rules": [["dice", "target_empty", "nan"]]}},
     ["only one of them is undefined (NaN)", "the monai preset, with the rules dice with target empty: nan"]),
    ({"lesion_criteria": {"connectivity": 4, "min_overlap": 0.25, "criterion": "overlap", "iou_threshold": 0.5}},
     ["4-connected components", "covers at least 0.25 of its area"]),
    ({"lesion_criteria": {"connectivity": 8, "min_overlap": 0.0, "criterion": "iou", "iou_threshold": 0.75}},
     ["IoU of at least 0.75"]),
    ({"metrics": ["iou", "masd"]}, ["|P∩G| / |P∪G| [@jaccard1912]", "mean of the two directed mean boundary"]),
    ({"topology_options": {"foreground_connectivity": 4, "background_connectivity": 8, "boundary_dilation": 0.03,
                           "skeleton": "skimage.morphology.skeletonize (scikit-image 9.9)"}},
     ["4-connected foreground and 8-connected background", "band 0.03 of the image diagonal", "scikit-image 9.9"]),
    ({"metrics": ["cldice", "betti0_error", "betti1_error", "boundary_iou"],
      "topology_options": {"foreground_connectivity": 8, "background_connectivity": 4, "boundary_dilation": 0.02}},
     ["Tsens = |S(G)∩P| / |S(G)|", "[@shit2021cldice]", "8-connected foreground components [@hu2019topology]",
      "4-connected background components not reaching the image border", "r = 0.02", "[@cheng2021boundary]"]),
    ({"instances": {"instances_from": "predictions"}}, ["predictions, the predicted instance maps (each id one"]),
    ({"instances": {"instances_from": "connected_components", "connectivity": 4}},
     ["the 4-connected components of class 1 of the predicted label maps"]),
    ({"metrics": ["accuracy", "mcc", "kappa", "balanced_accuracy", "volume_similarity", "boundary_f1"]},
     ["(TP + TN) / (TP + FP + FN + TN) of the pixels scored [@staal2004ridge]", "[@matthews1975]", "[@cohen1960]",
      "(recall + specificity) / 2 [@brodersen2010]", "[@taha2015]", "[@csurka2013]"]),
    ({"metrics": ["object_f1", "object_dice", "object_hausdorff", "aji", "pq", "sq", "rq"],
      "instances": {"instances_from": "predictions"}},
     ["more than 50% of the ground-truth object it overlaps most [@sirinukunwattana2017gland]",
      "aggregated Jaccard index (AJI)", "[@kumar2017dataset]", "PQ = SQ x RQ", "[@kirillov2019panoptic]"]),
])
def test_methods_text_follows_every_provenance_field(results, fields, expected):
    before = medseg_eval.report(results, n_boot=50).methods
    after = medseg_eval.report(_with(results, **fields), n_boot=50).methods
    assert before != after
    for phrase in expected:
        assert phrase in after and phrase not in before


def test_methods_text_follows_the_bootstrap_settings(results):
    text = medseg_eval.report(results, confidence=0.9, n_boot=123, seed=17).methods
    assert "90% percentile-bootstrap intervals" in text and "123 resamples of the cases" in text and "seed 17" in text


def test_a_missing_field_is_said_to_be_not_recorded(results):
    provenance = {k: v for k, v in results.provenance.items() if k not in ("percentile", "convention_reproduces")}
    text = medseg_eval.report(medseg_eval.Results(results.per_case, results.counts, provenance, results.lesions),
                              n_boot=20).methods
    assert "reproduces not recorded exactly" in text and "percentile not recorded" in text


def test_bibliography_holds_the_package_dataset_and_metric_papers(results):
    rep = medseg_eval.report(_with(results, dataset="kvasir-seg", package_version="4.5.6"), n_boot=20)
    keys = [entry.split("{", 1)[1].split(",", 1)[0] for entry in rep.bibliography]
    assert keys[:2] == ["medseg_eval", "jha2020kvasir"]
    assert {"dice1945", "huttenlocher1993", "nikolov2021", "surface_distance", "efron1993"} <= set(keys)
    assert "version = {4.5.6}" in rep.bibliography[0]


def test_bibliography_holds_the_topology_agreement_and_instance_papers(results):
    metrics = ["accuracy", "cldice", "betti0_error", "boundary_iou", "boundary_f1", "mcc", "kappa",
               "balanced_accuracy", "volume_similarity", "object_f1", "aji", "pq"]
    rep = medseg_eval.report(_with(results, metrics=metrics), n_boot=20)
    keys = [entry.split("{", 1)[1].split(",", 1)[0] for entry in rep.bibliography]
    assert {"staal2004ridge", "shit2021cldice", "hu2019topology", "cheng2021boundary", "csurka2013", "matthews1975",
            "cohen1960", "brodersen2010", "taha2015", "sirinukunwattana2017gland", "kumar2017dataset",
            "kirillov2019panoptic"} <= set(keys)
    assert len(keys) == len(set(keys))


def test_every_metric_has_a_table_label_and_a_definition_with_its_paper():
    from medseg_eval.metrics.conventions import (
        AGREEMENT_METRICS,
        INSTANCE_METRICS,
        LESION_METRICS,
        METRICS,
        TOPOLOGY_METRICS,
    )
    from medseg_eval.stats.bibliography import METRIC_PAPERS
    from medseg_eval.stats.methods import metric_definition
    from medseg_eval.stats.tables import METRIC_LABELS

    for metric in (*METRICS, *AGREEMENT_METRICS, *TOPOLOGY_METRICS, *LESION_METRICS, *INSTANCE_METRICS):
        assert metric in METRIC_LABELS, metric
        assert "as defined in medseg_eval.metrics" not in metric_definition(metric, {}), metric
    for metric in ("accuracy", "cldice", "betti0_error", "betti1_error", "boundary_iou", "boundary_f1", "mcc", "kappa",
                   "balanced_accuracy", "volume_similarity", *INSTANCE_METRICS):
        assert metric_definition(metric, {}).endswith(f"[@{METRIC_PAPERS[metric]}]"), metric


def test_markdown_latex_and_html_carry_the_paragraph_tables_and_references(results):
    rep = medseg_eval.report(results, n_boot=50)
    summary = results.summary(n_boot=50)
    dice = summary.filter((pl.col("metric") == "dice") & (pl.col("aggregate") == "mean")).row(0, named=True)
    markdown = rep.to_markdown()
    assert rep.methods in markdown and f"{dice['mean']:.3f} ± {dice['sd']:.3f}" in markdown
    assert "```bibtex" in markdown and "@article{dice1945" in markdown
    latex = rep.to_latex()
    assert r"medseg\_eval" in latex and r"~\cite{dice1945}" in latex and "[@" not in latex
    assert r"\begin{tabular}" in latex and r"\begin{filecontents*}[overwrite]{medseg_eval_refs.bib}" in latex
    page = rep.to_html()
    assert page.startswith("<section") and "<table><caption>" in page and "[dice1945]" in page


def test_cross_validation_report_states_folds_coverage_and_the_two_stage_bootstrap():
    from tests.stats.test_stats_crossval import DATASET, _fold

    cv = medseg_eval.cross_validation({k: _fold(k) for k in range(5)}, dataset=DATASET)
    rep = medseg_eval.report(cv, n_boot=40, seed=3)
    assert "held-out folds 0, 1, 2, 3, 4" in rep.methods and "train split" in rep.methods
    assert "each fold holds exactly the cases synthetic-lesions's manifest assigns it" in rep.methods
    assert "two-stage bootstrap: folds drawn with replacement" in rep.methods and "seed 3" in rep.methods
    assert cv.provenance["manifest_sha256"] in rep.methods and "@davison1997" in rep.methods
    row = cv.summary(n_boot=40, seed=3).row(0, named=True)
    assert f"{row['mean']:.3f} ± {row['sd']:.3f}" in rep.to_markdown()


def test_comparison_report_states_tests_corrections_and_assumptions(results, tmp_path):
    worse = _results()
    worse = medseg_eval.Results(worse.per_case.with_columns(pl.col("value") * 0.9), worse.counts, worse.provenance,
                                worse.lesions)
    cmp = medseg_eval.compare({"a": results, "b": worse}, "dice", test=["t", "wilcoxon"], correction="fdr_bh",
                              alpha=0.01, n_boot=60, n_rank_boot=10, seed=5)
    rep = medseg_eval.report(cmp)
    for phrase in ("paired t-test [@student1908] and Wilcoxon signed-rank test", "normally distributed differences",
                   "Benjamini-Hochberg procedure [@benjamini1995]", "alpha = 0.01", "60 resamples of the blocks (seed 5)",
                   "tolerance of 2"):
        assert phrase in rep.methods
    saved = load_saved(cmp.save(tmp_path / "cmp"))
    assert medseg_eval.report(saved).methods == rep.methods


def test_report_command_prints_and_writes_each_format(results, tmp_path, capsys):
    folder = results.save(tmp_path / "res")
    assert main(["report", str(folder), "--format", "latex", "--n-boot", "30", "--out", str(tmp_path / "m.tex")]) == 0
    printed = capsys.readouterr().out
    assert r"\paragraph{Evaluation.}" in printed and (tmp_path / "m.tex").read_text().strip() == printed.strip()
    assert main(["report", str(tmp_path), "--format", "html"]) == 2
    assert "holds no saved results" in capsys.readouterr().err


def test_cv_command_summarises_run_folders(tmp_path, capsys):
    import json

    from tests.stats.test_stats_crossval import DATASET, _fold

    for k in range(5):
        run = tmp_path / "runs" / f"fold{k}"
        _fold(k).save(run / "results" / "held-out")
        (run / "run.json").write_text(json.dumps({"config": {"model": "unet", "dataset": DATASET, "fold": k,
                                                             "seed": 42}}))
    runs = sorted(str(p) for p in (tmp_path / "runs").iterdir())
    assert main(["cv", *runs, "--n-boot", "30", "--out", str(tmp_path / "cv")]) == 0
    printed = capsys.readouterr().out
    assert "| dice | 1 | mean |" in printed and "5 folds" in printed
    saved = load_saved(tmp_path / "cv")
    assert saved.folds == [0, 1, 2, 3, 4] and saved.provenance["models"] == ["unet"]
    assert main(["cv", runs[0], runs[0]]) == 2
    assert "both hold fold 0" in capsys.readouterr().err
