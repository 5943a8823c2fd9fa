"""Reference trainers: the protocol's config, the zoo's contract, a smoke run to a board, and an exact resume after a kill."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medseg_eval import leaderboard
from medseg_eval.train import (
    LR_GRID,
    TrainConfig,
    TrainReport,
    build_model,
    fit,
    list_models,
    model_info,
    rex_factor,
    seed_everything,
    train_fold,
)
from medseg_eval.train.data import Cases, to_cases

STUDY_MODELS = ["unet", "hiformer-b", "missformer", "swin-umamba", "ukan-l", "segformer-b3", "segnext-l",
                "vwformer-mit-b3", "vwformer-convnext-s", "internimage-t-upernet", "transnext-tiny-upernet"]


def test_the_zoo_lists_the_eleven_models_of_the_study():
    assert list_models()[:11] == STUDY_MODELS
    families = {name: model_info(name).family for name in STUDY_MODELS}
    assert [n for n, f in families.items() if f == "specialized"] == STUDY_MODELS[:5]
    assert model_info("segnext-l").amp is False and model_info("unet").amp is True
    with pytest.raises(KeyError, match="did you mean unet"):
        model_info("unet2")


def test_config_has_the_study_defaults_and_rejects_unknown_keys(tmp_path):
    c = TrainConfig(model="unet", dataset="isic2018")
    assert (c.image_size, c.batch_size, c.max_epochs, c.lr, c.patience, c.min_delta, c.seed) == \
        (512, 8, 150, 1e-4, 20, 0.001, 42)
    assert c.lr_grid == LR_GRID == (1e-4, 5e-5, 1e-5) and c.schedule == "rex"
    assert c.deterministic is True and c.as_dict()["deterministic"] is True  # recorded with every run
    (tmp_path / "c.yaml").write_text("model: unet\ndataset: camus\nfold: 3\nlr: 5.0e-5\n")
    assert TrainConfig.from_file(tmp_path / "c.yaml", fold=2).as_dict()["fold"] == 2
    (tmp_path / "bad.json").write_text(json.dumps({"model": "unet", "dataset": "camus", "epochs": 3}))
    with pytest.raises(ValueError, match="unknown config keys \\['epochs'\\]"):
        TrainConfig.from_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="fold"):
        TrainConfig(model="unet", dataset="camus", fold=5)


@pytest.mark.parametrize("changes", [{"lr": 0.0}, {"lr_grid": ()}, {"lr_grid": (1e-4, -1e-5)}, {"max_time_s": -1.0},
                                     {"fold": 5}, {"image_size": 100}])
def test_config_rejects_values_that_would_fail_later(changes):
    with pytest.raises(ValueError, match="must"):
        TrainConfig(model="unet", dataset="synthetic-lesions", **changes)


@pytest.mark.parametrize("name", STUDY_MODELS)
@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_build_model_rejects_a_class_count_that_is_not_a_positive_integer(name, num_classes):
    with pytest.raises(ValueError, match=f"{name}: num_classes must be a positive integer"):
        build_model(name, num_classes)


def test_no_cases_is_a_clear_error():
    with pytest.raises(ValueError, match="no cases"):
        to_cases([], 32)


def test_rex_schedule():
    assert rex_factor(0, 10) == 1.0 and rex_factor(10, 10) == 0.0
    factors = [rex_factor(s, 10) for s in range(11)]
    assert all(a > b for a, b in itertools.pairwise(factors))
    assert rex_factor(5, 10) == pytest.approx(0.5 / 0.75)


def _train(out: Path, home: Path, epochs: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "medseg_eval.cli", "train", "unet", "--dataset", "synthetic-lesions",
               "--fold", "0", "--epochs", str(epochs), "--image-size", "32", "--device", "cpu", "--quiet",
               "--out", str(out)]
    return subprocess.Popen(command, env={**os.environ, "MEDSEG_EVAL_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def whole_run(synthetic_home, tmp_path_factory):
    """A 2-epoch U-Net run on synthetic-lesions at 32 px through the CLI, never interrupted."""
    out = tmp_path_factory.mktemp("runs") / "whole"
    run = _train(out, synthetic_home, epochs=2)
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output
    return out


def test_smoke_run_goes_end_to_end_to_a_bundle_the_board_accepts(whole_run, synthetic_home, monkeypatch):
    record = json.loads((whole_run / "run.json").read_text())
    assert record["config"]["max_epochs"] == 2 and record["report"]["epochs_run"] == 2
    assert record["command"].startswith("medseg-eval train unet") and record["device"] == "cpu"
    assert (whole_run / "results" / "test" / "per_case.parquet").is_file()
    assert (whole_run / "predictions" / "held-out.npz").is_file()
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(synthetic_home))
    board = whole_run / "board"
    (bundle,) = (board / "synthetic-lesions").iterdir()
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["badge"] == "reproduced" and meta["config"]["config"]["model"] == "unet"
    leaderboard.build(board)
    assert "unet (fold 0, medseg_eval) | reproduced" in (board / "synthetic-lesions" / "README.md").read_text()


def test_a_run_killed_mid_epoch_resumes_to_the_same_numbers(whole_run, synthetic_home, tmp_path):
    killed = _train(tmp_path / "killed", synthetic_home, epochs=2)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and killed.poll() is None:
        if last.is_file():  # written atomically after each epoch: the first one to appear is epoch 1's
            killed.send_signal(signal.SIGKILL)  # in epoch 2: after the checkpoint of epoch 1
            break
        time.sleep(0.02)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert torch.load(last, weights_only=False)["state"]["epoch"] == 1
    assert not (tmp_path / "killed" / "run.json").exists()
    resumed = _train(tmp_path / "killed", synthetic_home, epochs=2)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    a = torch.load(whole_run / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "last.pt", weights_only=False)
    assert a["state"]["history"] == b["state"]["history"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert json.loads((tmp_path / "killed" / "run.json").read_text())["report"]["resumed_from_epoch"] == 1


def test_the_learning_rate_sweep_keeps_the_best_rate_on_the_held_out_fold(synthetic_home, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(synthetic_home))
    config = TrainConfig(model="unet", dataset="synthetic-lesions", image_size=32, max_epochs=1, max_steps_per_epoch=3,
                         lr_grid=(3e-4, 1e-5))
    run = train_fold(config, tmp_path / "out", device="cpu", progress=False, sweep_lr=True)
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    sweep = record["lr_sweep"]
    assert [row["lr"] for row in sweep] == [3e-4, 1e-5]
    assert all((tmp_path / "out" / f"lr-{lr:g}" / "best.pt").is_file() for lr in (3e-4, 1e-5))
    best = max(sweep, key=lambda row: row["best_iou"])
    assert record["config"]["lr"] == best["lr"] and run.report.best_iou == best["best_iou"]
    assert [p.name for p in (tmp_path / "out" / "board" / "synthetic-lesions").iterdir()] == [run.bundle.name]
    assert json.loads((run.bundle / "meta.json").read_text())["config"]["config"]["lr"] == best["lr"]


def _tiny_cases(n: int, seed: int) -> Cases:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g)
    masks = (images.mean(1) > 0.5).long()
    return Cases([f"c{i:02d}" for i in range(n)], images, masks, [(32, 32)] * n)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_a_run_out_of_time_resumes_on_its_device_to_the_same_numbers(device, tmp_path):
    # max_time_s=0 stops after the first epoch (as a kill after its checkpoint would); the rerun resumes.
    # On CUDA the checkpoint's RNG states must come back as CPU tensors (a GPU session once failed here).
    train, val = _tiny_cases(16, 0), _tiny_cases(8, 1)
    config = TrainConfig(model="unet", dataset="synthetic-lesions", image_size=32, max_epochs=2, batch_size=4)

    def run(out: Path, **changes) -> TrainReport:
        seed_everything(config.seed)
        # A small network keeps the test fast; the loop is the same for every model.
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                    torch.nn.Dropout(0.2), torch.nn.Conv2d(8, 1, 3, padding=1))
        return fit(dataclasses.replace(config, **changes), model, train, val, out, device=torch.device(device),
                   num_classes=2, amp=False, progress=False)

    whole = run(tmp_path / "whole")
    first = run(tmp_path / "cut", max_time_s=0.0)
    assert (first.epochs_run, first.out_of_time, whole.out_of_time) == (1, True, False)
    resumed = run(tmp_path / "cut")
    assert (resumed.resumed_from_epoch, resumed.epochs_run) == (1, 2)
    assert resumed.history == whole.history
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_under_torchrun_share_each_batch(synthetic_home, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "medseg_eval.cli",
               "train", "unet", "--dataset", "synthetic-lesions", "--epochs", "1", "--image-size", "32",
               "--device", "cpu", "--quiet", "--out", str(tmp_path / "ddp")]
    done = subprocess.run(command, env={**os.environ, "MEDSEG_EVAL_HOME": str(synthetic_home)}, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert record["processes"] == 2 and record["report"]["epochs_run"] == 1
    assert len(list((tmp_path / "ddp" / "board" / "synthetic-lesions").iterdir())) == 1  # one bundle, one writer


@pytest.mark.parametrize("name", STUDY_MODELS)
def test_every_model_maps_512_inputs_to_512_logits(name):

    model = build_model(name, num_classes=2, pretrained=False).eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0)))
    assert logits.shape == (1, 2, 512, 512) and torch.isfinite(logits).all()
