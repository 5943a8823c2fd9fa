"""Fixtures shared by the dataset tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A fresh, empty ``$MEDSEG_EVAL_HOME`` for one test."""
    path = tmp_path / "medseg-eval-home"
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(path))
    return path
