"""Fixtures shared by the tests: dataset homes."""

from __future__ import annotations

import pytest

from medseg_eval.cli import main
from medseg_eval.datasets import build as build_dataset

from .support.real_data import require


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A fresh, empty ``$MEDSEG_EVAL_HOME`` for one test."""
    path = tmp_path / "medseg-eval-home"
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def real_home(tmp_path_factory):
    """A home with Kvasir-SEG and DRIVE built from the real releases, through the CLI as README says."""
    kvasir, drive = require("kvasir-seg/Kvasir-SEG"), require("drive/DRIVE")
    path = tmp_path_factory.mktemp("real-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(path))
        assert main(["datasets", "build", "kvasir-seg", "--source", str(kvasir.parent), "--quiet"]) == 0
        assert main(["datasets", "build", "drive", "--source", str(drive.parent), "--quiet"]) == 0
    return path


@pytest.fixture(scope="session")
def synthetic_home(tmp_path_factory):
    """A home with synthetic-lesions built (generated offline), shared by the trainer and leaderboard tests."""
    path = tmp_path_factory.mktemp("synthetic-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(path))
        build_dataset("synthetic-lesions", progress=False)
    return path
