"""The package's import contract: light parts load without the heavy ones, public names stay what they promise."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=300)
    return out.stdout.strip()


def test_the_metrics_engine_and_the_training_loop_need_neither_polars_nor_hf_datasets():
    # What a bare GPU machine has: torch, numpy, scipy (benchmarks/reduced_protocol.py trains there).
    code = ("import sys\n"
            "from medseg_eval import metrics\n"
            "from medseg_eval.train import build_model, fit, train_and_predict, TrainConfig\n"
            "print(sorted(m for m in ('polars', 'datasets', 'pyarrow') if m in sys.modules))")
    assert _run(code) == "[]"


def test_public_names_resolve_whatever_was_imported_first():
    code = ("import medseg_eval.evaluate, medseg_eval.results\n"
            "import medseg_eval\n"
            "from medseg_eval import evaluate, Results, compare, load_dataset\n"
            "print(callable(evaluate), evaluate is medseg_eval.evaluate, evaluate.__module__, Results.__name__,\n"
            "      sorted(set(medseg_eval.__all__) - set(dir(medseg_eval))))")
    assert _run(code) == "True True medseg_eval.evaluate Results []"


def test_public_functions_stay_functions_when_their_same_named_submodules_load() -> None:
    # medseg_eval.evaluate and medseg_eval.datasets.{build, download, verify} are both a function and a module.
    code = ("import importlib, medseg_eval, medseg_eval.datasets as d\n"
            "for m in ('medseg_eval.evaluate', 'medseg_eval.datasets.build', 'medseg_eval.datasets.download',"
            " 'medseg_eval.datasets.verify'):\n    importlib.import_module(m)\n"
            "from medseg_eval import evaluate\nfrom medseg_eval.datasets import build, download, verify\n"
            "print([type(f).__name__ for f in (evaluate, medseg_eval.evaluate, build, d.build, download, verify)])\n"
            "print(sorted(dir(d)) == sorted(d.__all__), hasattr(medseg_eval, 'no_such_name'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [str(["function"] * 6), "True False"]
