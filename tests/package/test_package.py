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
