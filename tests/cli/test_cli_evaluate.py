"""``medseg-eval evaluate --targets``: one's own ground truth scored as evaluate() scores it; user errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

import medseg_eval
from medseg_eval.cli import main
from medseg_eval.metrics import EmptyPolicy, LesionCriteria

KEY = ["case_id", "class", "metric"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Ground truth and predictions as PNG label maps (0/1) of non-square cases, one prediction empty."""
    root = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(7)
    for name in ("gt", "pred"):
        (root / name).mkdir()
    for i in range(5):
        gt = np.zeros((40, 56), np.uint8)
        gt[5 + i:25 + i, 8:30 + 3 * i] = 1
        gt[30:34, 40:44 + i] = 1  # a small second lesion
        pred = np.where(rng.random(gt.shape) < 0.04, 1 - gt, gt).astype(np.uint8)
        if i == 3:
            pred[:] = 0
        Image.fromarray(gt).save(root / "gt" / f"case{i}.png")
        Image.fromarray(pred).save(root / "pred" / f"case{i}.png")
    return root / "pred", root / "gt"


def _values(res: medseg_eval.Results) -> pl.DataFrame:
    return res.per_case.select(*KEY, "value").sort(KEY)


def test_evaluate_targets_matches_the_function(folders, tmp_path, capsys):
    pred, gt = folders
    out = tmp_path / "res"
    assert main(["evaluate", str(pred), "--targets", str(gt), "--spacing", "0.5,0.5", "--num-classes", "2",
                 "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "your ground truth" in printed and "results written to" in printed
    direct = medseg_eval.evaluate(str(pred), targets=str(gt), spacing=(0.5, 0.5), num_classes=2, progress=False)
    saved = medseg_eval.Results.load(out)
    assert set(saved.per_case["metric"].unique()) == set(direct.per_case["metric"].unique())
    assert _values(saved).equals(_values(direct))
    assert saved.provenance["num_cases"] == 5


def test_every_scoring_flag_reaches_evaluate(folders, tmp_path):
    pred, gt = folders
    out = tmp_path / "res"
    assert main(["evaluate", str(pred), "--targets", str(gt), "--spacing", "0.7,0.4", "--num-classes", "2",
                 "--metrics", "dice,hd95,nsd,lesion_recall", "--convention", "monai", "--empty", "monai",
                 "--percentile", "90", "--tolerance", "1.5", "--batch-size", "2", "--device", "cpu",
                 "--lesion-connectivity", "4", "--lesion-min-overlap", "0.5", "--quiet", "--out", str(out)]) == 0
    direct = medseg_eval.evaluate(str(pred), targets=str(gt), spacing=(0.7, 0.4), num_classes=2,
                                  metrics=["dice", "hd95", "nsd", "lesion_recall"], convention="monai",
                                  empty=EmptyPolicy.monai(), percentile=90, tolerance=1.5, batch_size=2, device="cpu",
                                  lesions=LesionCriteria(connectivity=4, min_overlap=0.5), progress=False)
    saved = medseg_eval.Results.load(out)
    assert _values(saved).equals(_values(direct))
    p = saved.provenance
    assert (p["convention"], p["percentile"], p["tolerance"]) == ("monai", 90, 1.5)
    assert p["empty_policy"] == EmptyPolicy.monai().as_dict()
    assert p["lesion_criteria"] == LesionCriteria(connectivity=4, min_overlap=0.5).as_dict()


def test_per_case_spacing_from_a_json_file(folders, tmp_path):
    pred, gt = folders
    spacing = {f"case{i}": [0.5 + 0.1 * i, 0.5] for i in range(5)}
    (tmp_path / "spacing.json").write_text(json.dumps(spacing))
    out = tmp_path / "res"
    assert main(["evaluate", str(pred), "--targets", str(gt), "--spacing", str(tmp_path / "spacing.json"),
                 "--metrics", "hd95", "--quiet", "--out", str(out)]) == 0
    direct = medseg_eval.evaluate(str(pred), targets=str(gt), spacing={k: tuple(v) for k, v in spacing.items()},
                                  metrics=["hd95"], progress=False)
    assert _values(medseg_eval.Results.load(out)).equals(_values(direct))


@pytest.mark.parametrize("preset", ["medseg_eval", "monai", "monai-keep-empty", "surface-distance", "medpy"])
def test_each_empty_preset_is_the_policy_of_its_name(folders, tmp_path, preset):
    from medseg_eval.cli.evaluate import _empty_policy

    policy = _empty_policy(preset, EmptyPolicy)
    assert policy.preset == preset
    pred, gt = folders
    out = tmp_path / "res"
    metrics = "dice,iou" if preset == "medpy" else "dice,hd95"  # MedPy's distances raise on the empty prediction
    assert main(["evaluate", str(pred), "--targets", str(gt), "--metrics", metrics, "--empty", preset, "--quiet",
                 "--out", str(out)]) == 0
    assert medseg_eval.Results.load(out).provenance["empty_policy"] == policy.as_dict()


def _console(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medseg_eval.cli", *args], capture_output=True, text=True,
                          check=False)


def _is_a_user_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_the_console_script_scores_own_ground_truth(folders):
    pred, gt = folders
    result = _console("evaluate", str(pred), "--targets", str(gt), "--spacing", "0.5,0.5", "--num-classes", "2",
                      "--metrics", "dice,hd95", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "dice" in result.stdout and "hd95" in result.stdout and "5 cases" in result.stdout


def test_a_missing_folder_is_a_user_error(folders, tmp_path):
    pred, gt = folders
    _is_a_user_error(_console("evaluate", str(tmp_path / "nowhere"), "--targets", str(gt)), "nowhere")
    _is_a_user_error(_console("evaluate", str(pred), "--targets", str(tmp_path / "no-gt")), "no-gt")


def test_an_error_of_the_package_is_a_user_error(folders, tmp_path):
    pred, gt = folders
    _is_a_user_error(_console("evaluate", str(pred), "--targets", str(gt), "--metrics", "dice,hd96"), "hd96")
    small = tmp_path / "small"
    small.mkdir()
    for i in range(5):
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(small / f"case{i}.png")
    _is_a_user_error(_console("evaluate", str(small), "--targets", str(gt), "--quiet"), "case0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_refused_before_any_work(folders, tmp_path):
    pred, gt = folders
    out = tmp_path / "res"
    _is_a_user_error(_console("evaluate", str(pred), "--targets", str(gt), "--device", "cuda", "--out", str(out)),
                     "CUDA")
    assert not out.exists()
    train_out = tmp_path / "run"
    assert main(["train", "unet", "--dataset", "synthetic-lesions", "--device", "cuda", "--out", str(train_out)]) == 2
    assert main(["zero-shot", "sam", "--dataset", "synthetic-lesions", "--device", "cuda", "--out",
                 str(train_out)]) == 2
    assert not train_out.exists()


def test_unknown_device_name_is_a_user_error(folders):
    pred, gt = folders
    _is_a_user_error(_console("evaluate", str(pred), "--targets", str(gt), "--device", "tpu"), "tpu")


@pytest.mark.parametrize("argv", [
    ["--dataset", "drive", "--spacing", "0.5,0.5"],
    ["--dataset", "drive", "--num-classes", "2"],
    ["--targets", "GT", "--split", "test"],
    ["--targets", "GT", "--dataset", "drive"],
    [],
    ["--targets", "GT", "--spacing", "a,b"],
    ["--targets", "GT", "--spacing", "0.5,0.5,0.5"],
    ["--targets", "GT", "--batch-size", "0"],
    ["--targets", "GT", "--empty", "none"],
])
def test_options_that_cannot_go_together_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "PRED", *argv])
    assert exit_.value.code == 2 and "usage: medseg-eval evaluate" in capsys.readouterr().err


def test_spacing_accepts_one_number_for_both_axes():
    from medseg_eval.cli.evaluate import _spacing

    assert _spacing("0.8") == (0.8, 0.8) and _spacing("0.5,0.25") == (0.5, 0.25) and _spacing("1 2") == (1.0, 2.0)
