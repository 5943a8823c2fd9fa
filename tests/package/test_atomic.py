"""Atomic writes leave files readable under the user's umask and recover what a crashed writer left."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from medseg_eval._atomic import atomic_directory, atomic_write_bytes, clean_leftovers, current_umask


@pytest.fixture
def umask():
    """Set the process umask for one test and put the previous one back."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask, mask) -> None:
    umask(mask)
    assert current_umask() == mask
    written = atomic_write_bytes(tmp_path / "figure.png", b"x")
    assert _mode(written) == 0o666 & ~mask
    with atomic_directory(tmp_path / "results") as staging:
        (staging / "per_case.parquet").write_bytes(b"y")
    assert _mode(tmp_path / "results") == 0o777 & ~mask
    assert _mode(tmp_path / "results" / "per_case.parquet") == 0o666 & ~mask


def test_results_saved_are_readable_by_others_under_umask_022(tmp_path, umask) -> None:
    import numpy as np

    import medseg_eval

    umask(0o022)
    target = np.zeros((1, 16, 16), np.uint8)
    target[0, 4:9, 4:9] = 1
    res = medseg_eval.evaluate(target.copy(), targets=target, progress=False)
    out = res.save(tmp_path / "run")
    assert _mode(out) == 0o755
    assert all(_mode(p) & 0o044 == 0o044 for p in out.iterdir())


def test_leftovers_of_a_crashed_writer_are_removed(tmp_path) -> None:
    pid = _dead_pid()
    (tmp_path / f".run.building-{pid}-abc").mkdir()
    (tmp_path / f".run.building-{pid}-abc" / "half.parquet").write_bytes(b"")
    (tmp_path / ".run.building-xyz").mkdir()  # a name from before pids were written
    (tmp_path / f".figure.png.tmp-{pid}-q").write_bytes(b"half")
    (tmp_path / "run").mkdir()
    with atomic_directory(tmp_path / "run") as staging:
        (staging / "a.txt").write_text("new")
    atomic_write_bytes(tmp_path / "figure.png", b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "run"]


def test_a_folder_moved_aside_by_a_crash_is_put_back(tmp_path) -> None:
    pid = _dead_pid()
    aside = tmp_path / f".run.old-{pid}-abc"
    (aside / "run").mkdir(parents=True)
    (aside / "run" / "per_case.parquet").write_text("previous")
    clean_leftovers(tmp_path / "run")
    assert (tmp_path / "run" / "per_case.parquet").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_live_writers_staging_folder_is_left_alone(tmp_path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        staging = tmp_path / f".run.building-{live.pid}-abc"
        staging.mkdir()
        clean_leftovers(tmp_path / "run")
        assert staging.exists()
    finally:
        live.kill()
        live.wait()


def test_a_failed_block_leaves_the_previous_folder(tmp_path) -> None:
    with atomic_directory(tmp_path / "run") as staging:
        (staging / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "run") as staging:
        (staging / "a.txt").write_text("second")
        raise RuntimeError("crash")
    assert (tmp_path / "run" / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
