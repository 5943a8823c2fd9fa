"""Every builder on a tiny release in its official layout, downloaded from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import csv
import hashlib
import json
from urllib.parse import quote

import numpy as np
import pytest

from medseg_eval.datasets import (
    ChecksumError,
    DownloadError,
    UnpinnedManifestWarning,
    build,
    canonical_dir,
    get_spec,
    load_dataset,
    verify,
)
from tests.support.dataset_layouts import MAKERS
from tests.support.http_server import serve


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _release(name, tmp_path):
    """Make a tiny release of ``name`` and zip it as its official archives: (folder served, names, sha256s)."""
    layout = MAKERS[name](tmp_path / "release")
    served = tmp_path / "served"
    archives = layout.zip_into(tmp_path / "release", served)
    return layout, served, archives, {a: _sha256(served / a) for a in archives}


@pytest.fixture(params=sorted(MAKERS))
def built(request, tmp_path, home):
    """Make the release, serve its archives, build the canonical copy from the URLs."""
    name = request.param
    layout, served, archives, hashes = _release(name, tmp_path)
    with serve(served) as server, pytest.warns(UnpinnedManifestWarning):
        report = build(name, [f"{server.url}/{quote(a)}" for a in archives], sha256=hashes, progress=False)
    return name, layout, report


def test_builder_reads_the_official_layout_into_label_maps(built):
    name, layout, report = built
    spec = get_spec(name)
    loaded = load_dataset(name)
    found = {}
    for split, ds in loaded.items():
        for row in ds:
            found[row["case_id"]] = (split, np.asarray(row["mask"]), tuple(row["spacing"]))
            assert np.asarray(row["image"]).shape[:2] == np.asarray(row["mask"]).shape
    assert sorted(found) == sorted(layout.masks)
    for case, expected in layout.masks.items():
        split, mask, spacing = found[case]
        np.testing.assert_array_equal(mask, expected, err_msg=f"{name} {case}")
        assert mask.max() < spec.num_classes
        if case in layout.splits:
            assert split == layout.splits[case], case
        assert spacing == pytest.approx(layout.spacing.get(case, (1.0, 1.0)))
    assert report.counts == {s: n for s, n in sorted({s: loaded[s].num_rows for s in loaded}.items()) if n}


def test_groups_never_straddle_splits_or_folds(built):
    name, layout, report = built
    manifest = {}
    for row in csv.DictReader((report.folder / "manifest.csv").read_text().splitlines()):
        manifest[row["case_id"]] = (row["split"], row["fold"])
    by_group = {}
    for case, group in layout.groups.items():
        by_group.setdefault(group, set()).add(manifest[case] if manifest[case][0] == "train" else manifest[case][0])
    if get_spec(name).holdout:  # where the split is drawn, whole groups are drawn
        assert all(len(v) == 1 for v in by_group.values()), by_group
    train_folds = {g: {v for v in vs if isinstance(v, tuple)} for g, vs in by_group.items()}
    assert all(len(v) <= 1 for v in train_folds.values()), train_folds
    assert all(fold == "" for split, fold in manifest.values() if split != "train")


def test_build_loads_with_hugging_face_datasets_from_the_folder(built, tmp_path):
    import datasets

    name, _, report = built
    split = next(s for s, n in report.counts.items() if n)
    ds = datasets.load_dataset(str(report.folder), split=split, cache_dir=str(tmp_path / "hf"))
    ours = load_dataset(name, split=split)
    assert ds["case_id"] == ours["case_id"]
    for a, b in zip(ds, ours):
        np.testing.assert_array_equal(np.asarray(a["mask"]), np.asarray(b["mask"]))


def test_a_verified_build_passes_verify_and_records_its_archives(built):
    name, layout, build_report = built
    report = verify(name, progress=False)
    assert report.ok and not report.pinned and report.checked > 0
    info = json.loads((build_report.folder / "build_info.json").read_text())
    assert sorted(s["archive"] for s in info["sources"]) == sorted(layout.archives)
    assert all(s["sha256_pinned"] and len(s["sha256"]) == 64 for s in info["sources"])
    assert info["manifest_sha256"] == build_report.manifest_sha256 and info["manifest_pinned"] is False


def test_official_archive_names_are_checked_against_the_pinned_hashes(tmp_path, home):
    _, served, (archive,), _ = _release("busi", tmp_path)
    pinned = next(s.sha256 for s in get_spec("busi").sources if s.filename == archive)
    with serve(served) as server, pytest.raises(ChecksumError, match=pinned):
        build("busi", f"{server.url}/{archive}", progress=False)
    assert not canonical_dir("busi").exists()


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_interrupted_archive_download_resumes_on_the_next_build(name, tmp_path, home):
    _, served, archives, hashes = _release(name, tmp_path)
    with serve(served) as server:
        urls = [f"{server.url}/{quote(a)}" for a in archives]
        server.interrupt.add(archives[-1])
        with pytest.raises(DownloadError, match="rerun to resume"):
            build(name, urls, sha256=hashes, progress=False)
        assert not canonical_dir(name).exists()
        fetched = len(server.requests)
        with pytest.warns(UnpinnedManifestWarning):
            build(name, urls, sha256=hashes, progress=False)
        resumed = server.requests[fetched:]
    # complete archives are not fetched again; the cut one continues where it stopped
    assert len(resumed) == 1 and resumed[0][0] == archives[-1] and resumed[0][1].startswith("bytes=")
    assert int(resumed[0][1][6:-1]) > 0
    assert verify(name, progress=False).ok


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_corrupted_archive_is_rejected_by_its_checksum(name, tmp_path, home):
    _, served, archives, hashes = _release(name, tmp_path)
    data = bytearray((served / archives[0]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (served / archives[0]).write_bytes(bytes(data))
    with serve(served) as server, pytest.raises(ChecksumError, match=f"expected {hashes[archives[0]]}"):
        build(name, [f"{server.url}/{quote(a)}" for a in archives], sha256=hashes, progress=False)
    assert not canonical_dir(name).exists()
