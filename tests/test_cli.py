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
