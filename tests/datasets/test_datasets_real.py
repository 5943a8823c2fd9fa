"""Kvasir-SEG and DRIVE built from the real releases in ../shared/data, checked against the shipped manifests.

Skips with the reason where the shared data is absent (a user's clone); CI has it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import medseg_eval
from medseg_eval.cli import main
from medseg_eval.datasets import (
    ManifestMismatchError,
    Selection,
    SourceFileMissingError,
    SourceFormatError,
    assign_splits,
    build,
    canonical_dir,
    get_spec,
    load_dataset,
    shipped_manifest,
    verify,
)
from tests.support.canonical_edit import flip_mask_pixel
from tests.support.real_data import ROOT, require

ROOT_REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def at_real_home(real_home, monkeypatch):
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(real_home))
    return real_home


def test_kvasir_validation_loads_with_the_official_120_cases(at_real_home):
    ds = medseg_eval.load_dataset("kvasir-seg", split="validation")
    official = (ROOT / "kvasir-seg" / "official-split" / "val.txt").read_text().split()
    assert ds.num_rows == 120 and sorted(ds["case_id"]) == sorted(official)
    assert ds.column_names[:3] == ["case_id", "image", "mask"]
    row = ds[0]
    source = ROOT / "kvasir-seg" / "Kvasir-SEG"
    original = np.asarray(Image.open(source / "masks" / f"{row['case_id']}.jpg").convert("L"))
    np.testing.assert_array_equal(np.asarray(row["mask"]), (original >= 128).astype(np.uint8))
    assert row["image"].format == "JPEG"  # stored as released, not recompressed
    stored = pq.read_table(next((at_real_home / "datasets" / "kvasir-seg" / "data").glob("validation-*")),
                           columns=["case_id", "image"]).to_pylist()
    assert stored[0]["image"]["bytes"] == (source / "images" / f"{stored[0]['case_id']}.jpg").read_bytes()


def test_drive_keeps_the_field_of_view_as_region_of_interest(at_real_home):
    ds = load_dataset("drive", split="test")
    assert ds.num_rows == 20 and "roi" in ds.column_names
    row = next(r for r in ds if r["case_id"] == "03_test")
    test = ROOT / "drive" / "DRIVE" / "test"
    fov = np.asarray(Image.open(test / "mask" / "03_test_mask.gif").convert("L")) > 0
    vessels = np.asarray(Image.open(test / "1st_manual" / "03_manual1.gif").convert("L")) > 0
    np.testing.assert_array_equal(np.asarray(row["roi"]).astype(bool), fov)
    np.testing.assert_array_equal(np.asarray(row["mask"]).astype(bool), vessels)
    assert np.asarray(row["image"]).shape == (584, 565, 3)


def test_hugging_face_datasets_loads_the_built_folder(at_real_home, tmp_path):
    import datasets

    ds = datasets.load_dataset(str(canonical_dir("kvasir-seg")), split="validation", cache_dir=str(tmp_path))
    assert ds.num_rows == 120 and set(ds.column_names) >= {"case_id", "image", "mask"}
    ours = load_dataset("kvasir-seg", split="validation")
    np.testing.assert_array_equal(np.asarray(ds[5]["mask"]), np.asarray(ours[5]["mask"]))


@pytest.mark.parametrize("name", ["kvasir-seg", "drive"])
def test_verify_passes_and_cli_exits_zero(at_real_home, name, capsys):
    report = verify(name, progress=False)
    assert report.ok and report.pinned and report.checked == {"kvasir-seg": 1000, "drive": 40}[name]
    assert main(["datasets", "verify", name, "--quiet"]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["kvasir-seg", "drive"])
def test_built_readme_is_the_shipped_dataset_card(at_real_home, name):
    card = (ROOT_REPO / "dataset_cards" / f"{name}.md").read_text()
    assert (canonical_dir(name) / "README.md").read_text() == card


@pytest.mark.parametrize("name", ["kvasir-seg", "drive"])
def test_shipped_manifest_follows_the_documented_split_rule(name):
    """The manifest is what the rule gives on the real release (Kvasir-SEG: with the official lists beside it)."""
    spec = get_spec(name)
    roots = [require("kvasir-seg")] if name == "kvasir-seg" else [require("drive")]
    computed = assign_splits(spec, list(spec.builder(roots, Selection(frozenset(spec.splits)))))
    shipped = {r["case_id"]: (r["split"], r["fold"]) for r in shipped_manifest(name).iter_rows(named=True)}
    assert computed == shipped


def test_tampered_copy_fails_verify_naming_the_case(at_real_home, tmp_path, capsys):
    copy = tmp_path / "drive"
    shutil.copytree(canonical_dir("drive"), copy)
    flip_mask_pixel(copy, "test", "07_test", 100, 100)
    report = verify("drive", folder=copy, progress=False)
    assert report.mismatched == ["07_test"] and not report.ok

    shutil.rmtree(canonical_dir("drive"))
    shutil.copytree(copy, canonical_dir("drive"))
    try:
        assert main(["datasets", "verify", "drive", "--quiet"]) == 1
        assert "mask differs: 07_test" in capsys.readouterr().out
    finally:
        main(["datasets", "build", "drive", "--source", str(require("drive")), "--quiet"])


@pytest.fixture()
def drive_copy(tmp_path):
    copy = tmp_path / "release" / "DRIVE"
    shutil.copytree(require("drive/DRIVE"), copy)
    return copy


def test_modified_mask_in_the_release_is_a_manifest_mismatch_naming_the_case(drive_copy, home):
    path = drive_copy / "test" / "1st_manual" / "05_manual1.gif"
    vessels = np.asarray(Image.open(path).convert("L")).copy()
    vessels[:10, :10] = 255
    Image.fromarray(vessels).save(path, format="GIF")
    with pytest.raises(ManifestMismatchError, match="05_test") as err:
        build("drive", drive_copy.parent, progress=False)
    assert err.value.mismatched == ["05_test"]
    assert not canonical_dir("drive").exists()  # nothing half-written


def test_missing_file_names_the_file(drive_copy, home):
    (drive_copy / "training" / "mask" / "24_training_mask.gif").unlink()
    with pytest.raises(SourceFileMissingError, match="24_training_mask.gif"):
        build("drive", drive_copy.parent, progress=False)


def test_mask_of_the_wrong_size_names_the_case(drive_copy, home):
    path = drive_copy / "test" / "1st_manual" / "11_manual1.gif"
    Image.open(path).crop((0, 0, 500, 500)).save(path, format="GIF")
    with pytest.raises(SourceFormatError, match=r"11_test: mask 500x500 does not match its image 584x565"):
        build("drive", drive_copy.parent, progress=False)


def test_missing_case_is_a_manifest_mismatch(drive_copy, home):
    for folder in ("images", "1st_manual", "mask"):
        for path in (drive_copy / "training" / folder).glob("33_*"):
            path.unlink()
    with pytest.raises(ManifestMismatchError, match="missing: 33_training"):
        build("drive", drive_copy.parent, progress=False)


def test_previous_build_survives_a_failed_rebuild(drive_copy, home):
    build("drive", drive_copy.parent, progress=False)
    before = hashlib.sha256((canonical_dir("drive") / "manifest.csv").read_bytes()).hexdigest()
    (drive_copy / "test" / "mask" / "02_test_mask.gif").write_bytes(b"not a gif")
    with pytest.raises(SourceFormatError, match="02_test_mask.gif"):
        build("drive", drive_copy.parent, progress=False)
    assert hashlib.sha256((canonical_dir("drive") / "manifest.csv").read_bytes()).hexdigest() == before
    assert verify("drive", progress=False).ok


def test_push_dry_run_lists_the_files_of_the_verified_copy(at_real_home, capsys):
    assert main(["datasets", "push", "drive", "--repo-id", "medseg-eval/drive", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in ("README.md", "manifest.csv", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"):
        assert f"  {name}\n" in out


def test_console_script_lists_one_dataset_per_line(at_real_home):
    out = subprocess.run([sys.executable, "-m", "medseg_eval.cli", "datasets", "list"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    names = [line.split()[0] for line in out[1:]]
    assert "kvasir-seg" in names and "drive" in names and names == sorted(names)
