"""README's Python examples run as written (the dataset example on the real Kvasir-SEG build)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(capsys, real_home, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(real_home))
    monkeypatch.chdir(tmp_path)  # examples write results/ into the working folder
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})  # noqa: S102 (README's own examples, run as a reader runs them)
    assert "'dice'" in capsys.readouterr().out
