"""Test session setup: every test and doctest writes its caches under a fresh temporary folder.

Nothing lands in the user's ``~/.cache/medseg_eval`` or Hugging Face cache, and no test sees a copy
built by another run.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_HOME = tempfile.mkdtemp(prefix="medseg-eval-tests-")


def pytest_configure(config) -> None:
    os.environ["MEDSEG_EVAL_HOME"] = os.path.join(_HOME, "home")
    os.environ["HF_HOME"] = os.path.join(_HOME, "hf")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
