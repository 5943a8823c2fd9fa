import json
import subprocess
import sys

import medseg_eval


def test_console_script_lists_conventions_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "medseg_eval.cli", "conventions"], capture_output=True, text=True,
                         check=True).stdout
    for name in ("surface-distance (default)", "monai", "medpy", "per-direction-weighted", "pooled-linear"):
        assert name in out
    version = subprocess.run([sys.executable, "-m", "medseg_eval.cli", "--version"], capture_output=True, text=True,
                             check=True).stdout
    assert medseg_eval.__version__ in version


def test_missing_command_exits_with_usage() -> None:
    result = subprocess.run([sys.executable, "-m", "medseg_eval.cli"], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "usage" in result.stderr


def test_help_lists_every_command_group() -> None:
    out = subprocess.run([sys.executable, "-m", "medseg_eval.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for command in ("conventions", "datasets", "evaluate", "compare", "leaderboard", "train", "zero-shot", "cv",
                    "report", "demo"):
        assert command in out


def test_datasets_info_prints_the_literature_metrics_when_the_spec_has_them(monkeypatch, capsys) -> None:
    import dataclasses

    from medseg_eval import datasets
    from medseg_eval.cli import main

    spec = datasets.get_spec("drive")
    assert main(["datasets", "info", "drive"]) == 0
    plain = capsys.readouterr().out
    assert "drive:" in plain and "classes:" in plain
    fields = {f.name for f in dataclasses.fields(spec)}
    if {"literature_metrics", "metric_references"} <= fields:
        spec = dataclasses.replace(spec, literature_metrics=("dice", "hd95"), metric_references=("Ref A (2020)",))
    else:  # before DatasetSpec has the fields: any object with them prints them
        spec = _WithLiterature(spec, ("dice", "hd95"), ("Ref A (2020)",))
    monkeypatch.setattr(datasets, "get_spec", lambda name: spec)
    assert main(["datasets", "info", "drive"]) == 0
    out = capsys.readouterr().out
    assert "metrics:   dice, hd95" in out and "reference: Ref A (2020)" in out


class _WithLiterature:
    def __init__(self, spec, metrics, references):
        self._spec, self.literature_metrics, self.metric_references = spec, metrics, references

    def __getattr__(self, name):
        return getattr(self._spec, name)


def test_compare_blocks_default_to_none_and_take_folds_and_seeds() -> None:
    from medseg_eval.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["compare", "a", "b"]).blocks is None
    for blocks in ("case", "dataset", "fold", "seed"):
        assert parser.parse_args(["compare", "a", "b", "--blocks", blocks]).blocks == blocks


def test_compare_takes_saved_cross_validations_with_their_blocks(tmp_path, capsys) -> None:
    import numpy as np
    import polars as pl

    from medseg_eval.cli import main
    from medseg_eval.datasets import shipped_manifest

    manifest = shipped_manifest("synthetic-lesions")
    rng = np.random.default_rng(0)

    def cross_validation(noise: float):
        folds = {}
        for k in range(5):
            ids = sorted(manifest.filter((pl.col("split") == "train") & (pl.col("fold") == k))["case_id"].to_list())
            truth = {c: np.pad(np.ones((8 + i % 5, 9), np.uint8), 6) for i, c in enumerate(ids)}
            pred = {c: np.where(rng.random(m.shape) < noise, 1 - m, m).astype(np.uint8) for c, m in truth.items()}
            folds[k] = medseg_eval.evaluate(pred, targets=truth, metrics=["dice"], progress=False)
        return medseg_eval.cross_validation(folds, dataset="synthetic-lesions")

    cross_validation(0.05).save(tmp_path / "good")
    cross_validation(0.25).save(tmp_path / "worse")
    models = [str(tmp_path / "good"), str(tmp_path / "worse")]
    assert main(["compare", *models, "--n-boot", "50", "--n-rank-boot", "10"]) == 0
    assert "over 5 folds" in capsys.readouterr().out
    assert main(["compare", *models, "--blocks", "case", "--test", "t", "--n-boot", "50", "--n-rank-boot", "10",
                 "--out", str(tmp_path / "cmp")]) == 0
    assert "optimistic" in capsys.readouterr().out
    assert json.loads((tmp_path / "cmp" / "settings.json").read_text())["blocks"] == "case"
