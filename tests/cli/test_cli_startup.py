"""The command line starts without torch, polars or Hugging Face datasets, and its mirrored names stay the engine's."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from typing import get_args

import pytest

from medseg_eval.cli import _names, build_parser

HEAVY = ("torch", "polars", "datasets", "scipy", "numpy", "pyarrow", "huggingface_hub", "rich")

PROBE = """
import sys
import medseg_eval.cli as cli
parser = cli.build_parser()
for argv in ([], *[[c] for c in cli.build_parser()._subparsers._group_actions[0].choices],
             ["datasets", "list"], ["leaderboard", "submit"]):
    try:
        parser.parse_args([*argv, "--help"])
    except SystemExit:
        pass
try:
    cli.main(["--version"])
except SystemExit:
    pass
print("heavy:", *[m for m in {heavy!r} if m in sys.modules])
"""


def test_building_the_parser_and_every_help_imports_no_heavy_library() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY)], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "heavy:", result.stdout.strip().splitlines()[-1]
    assert "usage: medseg-eval" in result.stdout


def test_the_console_script_prints_help_without_importing_torch() -> None:
    code = ("import runpy, sys; sys.argv = ['medseg-eval', '--help']\n"
            "try:\n    runpy.run_module('medseg_eval.cli', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert e.code == 0\n"
            "print('loaded:', [m for m in ('torch', 'polars', 'datasets') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("loaded: []")


def test_mirrored_names_are_the_engines() -> None:
    from medseg_eval import metrics
    from medseg_eval.stats.ranking import Scheme

    evaluate_module = importlib.import_module("medseg_eval.evaluate")
    assert _names.CONVENTIONS == metrics.CONVENTIONS
    assert _names.DEFAULT_CONVENTION == metrics.DEFAULT_CONVENTION
    assert _names.EMPTY_PRESETS == ("medseg_eval", *metrics.EMPTY_PRESETS)
    assert _names.DEFAULT_METRICS == tuple(evaluate_module.DEFAULT_METRICS)
    assert _names.RANKING_SCHEMES == get_args(Scheme)
    signature = inspect.signature(evaluate_module.evaluate).parameters
    if signature["metrics"].default is not None:  # else: the dataset's own set, DEFAULT_METRICS for targets
        assert _names.DEFAULT_METRICS == tuple(signature["metrics"].default)
    assert _names.DEFAULT_CONVENTION == signature["convention"].default
    for name, value in _names.EVALUATE_DEFAULTS.items():
        assert signature[name].default == value, name


#: evaluate() parameters whose flag is not ``--`` + the name with dashes.
IRREGULAR_FLAGS = {"preds": "predictions", "verify_ground_truth": "--no-verify", "progress": "--quiet",
                   "download": "--no-download", "lesions": "--lesion-criterion"}


@pytest.mark.parametrize("parameter", list(inspect.signature(
    importlib.import_module("medseg_eval.evaluate").evaluate).parameters))
def test_every_evaluate_option_has_its_flag(parameter: str) -> None:
    parser = build_parser()
    evaluate = parser._subparsers._group_actions[0].choices["evaluate"]
    flags = {s for action in evaluate._actions for s in action.option_strings} | {
        a.dest for a in evaluate._actions if not a.option_strings}
    assert IRREGULAR_FLAGS.get(parameter, "--" + parameter.replace("_", "-")) in flags


def test_metrics_help_states_evaluates_real_default() -> None:
    evaluate_module = importlib.import_module("medseg_eval.evaluate")
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    text = " ".join(evaluate.format_help().split())
    assert ",".join(evaluate_module.DEFAULT_METRICS) in text
    if inspect.signature(evaluate_module.evaluate).parameters["metrics"].default is None:
        assert "default: the dataset's literature set" in text


def test_datasets_list_reads_the_registry_without_polars_torch_or_datasets() -> None:
    code = ("import sys; from medseg_eval.cli import main; code = main(['datasets', 'list']); "
            "print(code, sorted(m for m in ('torch', 'polars', 'datasets', 'pyarrow', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "0 []"
    assert "kvasir-seg" in out and "isic2018" in out
