"""The speed suite keeps running: a quick pass over two small kinds with every reference (the suite
fails if a number differs from the reference's), the PNG round trip, and a peak-memory process."""

from __future__ import annotations

from benchmarks import speed_suite
from benchmarks.kinds import speckle
from benchmarks.runners import max_relative_difference, runner


def test_quick_suite_prints_a_row_per_kind_and_reference_and_the_summary(capsys):
    speed_suite.main(["--quick", "--kinds", "speckle-160x192,otsu-demo-160x192", "--repeats", "1", "--cases", "2",
                      "--skip-memory"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["kind", "size"]
    rows = lines[2:-2]
    assert sorted(c for row in rows for c in row.split() if c in speed_suite.ALL_REFERENCES) == sorted(
        speed_suite.ALL_REFERENCES * 2), lines
    assert sum("speckle-160x192" in row or "otsu-demo-160x192" in row for row in rows) == 2
    assert lines[-2].startswith("smallest ratio: ") and lines[-1].startswith("median kind ratio: ")


def test_evaluate_on_png_files_gives_the_reference_numbers():
    with runner(speckle((40, 48), 2, seed=1), files=True, batch=2, device="cpu") as run:
        assert max_relative_difference(run.ours("surface-distance"), run.reference("surface-distance")) <= 1e-6


def test_peak_memory_of_one_case_is_measured_in_a_fresh_process():
    args = speed_suite.parse_args(["--quick", "--cases", "1"])
    cell = speed_suite.memory_cell("speckle-160x192", ["medseg_eval"], args)
    megabytes, per_pixel = float(cell.split()[0]), float(cell.split("(")[1].split()[0])
    assert cell.endswith("B/px)") and 0 < per_pixel < 10_000 and megabytes < 1024, cell
