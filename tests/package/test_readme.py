"""README's Python examples run as written, in order (the dataset example on the real Kvasir-SEG build)."""

from tests.support.markdown_examples import ROOT, python_examples, run_examples

README = ROOT / "README.md"


def test_readme_python_examples_run(capsys, real_home, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(real_home))
    monkeypatch.setenv("MEDSEG_EVAL_OFFLINE", "1")  # what README runs must not need the network
    monkeypatch.chdir(tmp_path)  # examples write results/ into the working folder
    ran, not_run = run_examples(README)
    assert ran >= 4 and ran + len(not_run) == len(python_examples(README))
    out = capsys.readouterr().out
    assert "'dice'" in out  # the metrics example printed its numbers
    assert "threshold-100" in out and "Segmentations were scored with medseg_eval" in out  # compare, report
    assert (tmp_path / "results" / "threshold" / "provenance.json").is_file()


def test_readme_shell_outputs_do_not_collide_with_the_python_examples() -> None:
    """A shell example's --out is never a folder the Python examples fill (evaluate refuses a folder holding
    anything but its own results: `--out results/` after the Quickstart saved results/threshold)."""
    text = README.read_text()
    outs = {line.split("--out ")[1].split()[0].rstrip("/") for line in text.splitlines() if "--out " in line}
    saved = {"results/threshold"}  # res.save(...) in README's Quickstart
    assert outs and not any(out in saved or any(s.startswith(out + "/") for s in saved) for out in outs)
