"""First use: `evaluate(preds, name)` fetches just the ground truth it scores, through a mirror on 127.0.0.1.

Each public dataset's tiny release (its official layout and file names, tests/support/dataset_layouts.py)
is served by a real HTTP server that records every request; ``MEDSEG_EVAL_MIRROR`` points the
package at it. The registry's pinned sha256 are those of the real archives, so each test pins the
tiny archives' hashes in the registry instead (and, for Kvasir-SEG, whose split ships as a
manifest, a manifest of the tiny release): everything else, download, resume, extraction, build,
manifest check and scoring, is the package's own code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from medseg_eval import evaluate
from medseg_eval.cli import main
from medseg_eval.datasets import (
    ChecksumError,
    DatasetNotBuiltError,
    DownloadError,
    build,
    canonical_dir,
    get_spec,
    list_datasets,
    load_dataset,
    manifest_sha256,
    mask_sha256,
    verify,
)
from medseg_eval.datasets import registry as registry_module
from medseg_eval.datasets import truth as truth_module
from medseg_eval.datasets.canonical import CaseSource, manifest_csv, manifest_frame, read_manifest
from medseg_eval.datasets.download import human_size
from tests.support.dataset_layouts import MAKERS, PINNED
from tests.support.http_server import serve

# The tiny releases have no shipped manifest (but Kvasir-SEG's own here): their builds warn.
pytestmark = pytest.mark.filterwarnings("ignore::medseg_eval.datasets.UnpinnedManifestWarning")

PUBLIC = [n for n in list_datasets() if not get_spec(n).manual_download and not get_spec(n).generated]
REGISTRATION = [n for n in list_datasets() if get_spec(n).manual_download]


def test_every_public_dataset_has_a_tiny_release_here():
    assert set(PUBLIC) == {"isic2018", "kvasir-seg", "busi", "glas"}
    assert set(PUBLIC) <= set(MAKERS) | set(PINNED)
    assert set(REGISTRATION) == {"drive", "neopolyp", "cvc-clinicdb", "monuseg", "camus"}


@dataclasses.dataclass
class Mirror:
    name: str
    layout: object
    served: Path
    server: object
    home: Path
    test_ids: list[str]

    def requested(self) -> list[str]:
        return [path for path, _ in self.server.requests]

    def perfect(self) -> dict[str, np.ndarray]:
        return {c: self.layout.masks[c] for c in self.test_ids}


def _test_ids(name: str, layout) -> list[str]:
    spec = get_spec(name)
    if layout.splits:
        return sorted(c for c, s in layout.splits.items() if s == spec.test_split)
    from medseg_eval.datasets import assign_splits

    cases = [CaseSource(c, lambda: None, group=layout.groups.get(c)) for c in layout.masks]
    return sorted(c for c, (s, _) in assign_splits(spec, cases).items() if s == spec.test_split)


@pytest.fixture()
def online(home, monkeypatch):
    """A fresh home with first-use fetching allowed (the test session itself runs with HF_HUB_OFFLINE=1)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("MEDSEG_EVAL_OFFLINE", raising=False)
    truth_module.clear_cache()
    return home


def _mirror(name, tmp_path, monkeypatch, home):
    layout = (MAKERS | PINNED)[name](tmp_path / "release")
    served = tmp_path / "served"
    archives = layout.zip_into(tmp_path / "release", served)
    hashes = {a: hashlib.sha256((served / a).read_bytes()).hexdigest() for a in archives}
    spec = get_spec(name)
    assert {s.filename for s in spec.sources} == set(archives), "the tiny release must use the official file names"
    pinned = dataclasses.replace(spec, sources=tuple(dataclasses.replace(s, sha256=hashes[s.filename]) for s in spec.sources))
    monkeypatch.setitem(registry_module._REGISTRY, spec.name, pinned)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    if name in PINNED:  # the tiny release's own manifest takes the shipped one's place
        rows = [{"case_id": c, "split": s, "fold": i % 5 if s == "train" else None, "mask_sha256": mask_sha256(m)}
                for i, (c, m) in enumerate(sorted(layout.masks.items())) for s in [layout.splits[c]]]
        (manifests / f"{name}.csv").write_bytes(manifest_csv(manifest_frame(rows)))
    monkeypatch.setattr(importlib.import_module("medseg_eval.datasets.layout"), "MANIFESTS", manifests)
    return Mirror(name, layout, served, None, home, _test_ids(name, layout))


@pytest.fixture(params=PUBLIC)
def mirror(request, tmp_path, monkeypatch, online):
    """The tiny release of one public dataset, served on 127.0.0.1 and set as MEDSEG_EVAL_MIRROR."""
    mirror = _mirror(request.param, tmp_path, monkeypatch, online)
    with serve(mirror.served) as server:
        monkeypatch.setenv("MEDSEG_EVAL_MIRROR", server.url + "/")
        mirror.server = server
        yield mirror


def _masks_archives(name: str, splits: list[str], images: bool = False) -> list[str]:
    return sorted(s.filename for s in get_spec(name).sources_for(splits, images=images))


def _files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file()) if home.exists() else []


def test_first_use_fetches_only_the_test_masks_and_scores_them(mirror, capfd):
    spec = get_spec(mirror.name)
    res = evaluate(mirror.perfect(), mirror.name, metrics=["dice"], progress=False)

    needed = _masks_archives(mirror.name, [spec.test_split])
    assert sorted(mirror.requested()) == needed  # each once, and nothing else
    if mirror.name == "isic2018":
        assert needed == ["ISIC2018_Task1_Test_GroundTruth.zip"]  # not the 10.4 GB of training images
    dice = res.per_case.filter(metric="dice")
    assert sorted(dice["case_id"].unique()) == mirror.test_ids
    assert dice["value"].to_list() == [1.0] * dice.height
    err = capfd.readouterr().err
    for archive in needed:
        size = human_size((mirror.served / archive).stat().st_size)
        assert f"fetching {mirror.name} {spec.test_split} masks" in err
        assert f": {size} from {mirror.server.url}/{archive.replace(' ', '%20')}" in err

    info = json.loads((canonical_dir(mirror.name) / "build_info.json").read_text())
    assert info["masks_only"] == [spec.test_split] and list(info["splits"]) == [spec.test_split]
    assert f"Masks only: the split(s) {spec.test_split}" in (canonical_dir(mirror.name) / "README.md").read_text()
    stored = load_dataset(mirror.name, split=spec.test_split, data_dir=canonical_dir(mirror.name))  # as stored
    assert stored["image"] == [None] * stored.num_rows
    for row in stored:
        np.testing.assert_array_equal(np.asarray(row["mask"]), mirror.layout.masks[row["case_id"]])


def test_a_second_call_fetches_nothing(mirror):
    evaluate(mirror.perfect(), mirror.name, metrics=["dice"], progress=False)
    count = len(mirror.server.requests)
    truth_module.clear_cache()  # as a new process would
    res = evaluate(mirror.perfect(), mirror.name, metrics=["dice"], progress=False)
    assert len(mirror.server.requests) == count
    assert res.provenance["num_cases"] == len(mirror.test_ids)


def test_a_later_full_build_reuses_the_masks_and_fetches_only_what_is_missing(mirror):
    spec = get_spec(mirror.name)
    evaluate(mirror.perfect(), mirror.name, metrics=["dice"], progress=False)
    first = set(mirror.requested())
    report = build(mirror.name, progress=False)
    later = mirror.requested()[len(first):]
    assert sorted(later) == sorted({s.filename for s in spec.sources} - first)  # each missing file once
    assert report.masks_only == [] and report.splits == list(spec.splits)
    assert verify(mirror.name, progress=False).ok
    full = load_dataset(mirror.name, download=False)
    for split, ds in full.items():
        assert all(image is not None for image in ds["image"]), split
    assert sorted(c for ds in full.values() for c in ds["case_id"]) == sorted(mirror.layout.masks)


def test_an_interrupted_transfer_resumes_with_a_range_request(mirror):
    spec = get_spec(mirror.name)
    (archive,) = _masks_archives(mirror.name, [spec.test_split])
    mirror.server.interrupt.add(archive)
    with pytest.raises(DownloadError, match="rerun to resume"):
        evaluate(mirror.perfect(), mirror.name, metrics=["dice"], progress=False)
    assert not canonical_dir(mirror.name).exists()
    part = mirror.home / "downloads" / spec.name / f"{archive}.part"
    kept = part.stat().st_size
    assert 0 < kept < (mirror.served / archive).stat().st_size
    res = evaluate(mirror.perfect(), mirror.name, metrics=["dice"], progress=False)
    assert mirror.server.requests[-1] == (archive, f"bytes={kept}-")
    assert res.per_case["value"].to_list() == [1.0] * res.per_case.height


def test_a_wrong_checksum_is_refused_naming_the_archive_and_nothing_is_written(mirror):
    spec = get_spec(mirror.name)
    (archive,) = _masks_archives(mirror.name, [spec.test_split])
    data = bytearray((mirror.served / archive).read_bytes())
    data[len(data) // 2] ^= 0xFF  # a mirror serving something else than the pinned release
    (mirror.served / archive).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=f"^{archive} fetched from .*MEDSEG_EVAL_MIRROR"):
        evaluate(mirror.perfect(), mirror.name, metrics=["dice"], progress=False)
    assert mirror.requested() == [archive]
    assert _files(mirror.home) == []
    assert not (mirror.home / "datasets" / spec.name).exists() and not (mirror.home / "downloads" / spec.name).exists()


@pytest.mark.parametrize("off", ["download=False", "MEDSEG_EVAL_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_makes_no_request_and_says_the_exact_command(mirror, monkeypatch, off):
    spec = get_spec(mirror.name)
    if off != "download=False":
        monkeypatch.setenv(off, "1")
    with pytest.raises(DatasetNotBuiltError) as raised:
        evaluate(mirror.perfect(), mirror.name, progress=False, download=off != "download=False")
    command = f"medseg-eval datasets build {spec.name} --split {spec.test_split} --masks-only"
    assert f"Run: {command} (fetches" in str(raised.value)
    assert "--source" not in str(raised.value)
    assert mirror.server.requests == [] and _files(mirror.home) == []


def test_load_dataset_fetches_the_split_with_its_images_only(mirror):
    spec = get_spec(mirror.name)
    ds = load_dataset(mirror.name, split=spec.test_split)
    assert sorted(mirror.requested()) == _masks_archives(mirror.name, [spec.test_split], images=True)
    assert sorted(ds["case_id"]) == mirror.test_ids and all(image is not None for image in ds["image"])


def test_cli_builds_one_split_masks_only_then_evaluate_fetches_nothing(tmp_path, monkeypatch, online, capsys):
    mirror = _mirror("isic2018", tmp_path, monkeypatch, online)
    with serve(mirror.served) as server:
        monkeypatch.setenv("MEDSEG_EVAL_MIRROR", server.url)
        assert main(["datasets", "build", "isic2018", "--split", "test", "--masks-only", "--quiet"]) == 0
        assert [path for path, _ in server.requests] == ["ISIC2018_Task1_Test_GroundTruth.zip"]
        assert "masks only (no images) for test" in capsys.readouterr().out
        assert main(["datasets", "list"]) == 0
        row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("isic2018"))
        assert row.endswith("built (masks only: test) (test of 3 splits)")
        preds = tmp_path / "preds"
        preds.mkdir()
        for case_id, mask in mirror.perfect().items():
            np.save(preds / f"{case_id}.npy", mask)
        assert main(["evaluate", str(preds), "--dataset", "isic2018", "--metrics", "dice", "--quiet", "--no-download"]) == 0
        assert len(server.requests) == 1
        assert main(["datasets", "build", "isic2018", "--split", "validation", "--quiet"]) == 0
        assert sorted(path for path, _ in server.requests[1:]) == ["ISIC2018_Task1-2_Validation_Input.zip",
                                                                  "ISIC2018_Task1_Validation_GroundTruth.zip"]
    info = json.loads((canonical_dir("isic2018") / "build_info.json").read_text())
    assert info["splits"] == {"validation": {"cases": 2, "images": True}, "test": {"cases": 2, "images": False}}
    assert info["masks_only"] == ["test"] and info["counts"] == {"test": 2, "validation": 2}
    manifest = (canonical_dir("isic2018") / "manifest.csv").read_text()
    assert info["manifest_sha256"] == manifest_sha256(read_manifest(manifest.encode()))
    assert verify("isic2018", progress=False).splits == ["validation", "test"]


@pytest.mark.parametrize("name", REGISTRATION)
def test_a_release_behind_a_registration_names_page_files_and_command(name, online, monkeypatch, tmp_path):
    spec = get_spec(name)
    tmp_path.joinpath("served").mkdir()
    with serve(tmp_path / "served") as server:
        monkeypatch.setenv("MEDSEG_EVAL_MIRROR", server.url)
        with pytest.raises(DatasetNotBuiltError) as raised:
            evaluate({}, name, progress=False)
        assert server.requests == []
    message = str(raised.value)
    assert spec.homepage in message
    for source in spec.sources_for([spec.test_split], images=False):
        assert repr(source.filename) in message
    assert f"medseg-eval datasets build {name} " in message and "--source ~/Downloads" in message
    assert _files(online) == []


def test_monuseg_message_names_just_the_test_archive():
    from medseg_eval.datasets.hints import manual_message

    message = manual_message(get_spec("monuseg"), ["test"], images=False)
    assert "'MoNuSegTestData.zip'" in message and "Training Data" not in message
    assert message.endswith("medseg-eval datasets build monuseg --split test --masks-only "
                            "--source ~/Downloads/MoNuSegTestData.zip")


def test_the_generated_dataset_builds_itself_everywhere_even_offline(online, monkeypatch):
    from medseg_eval.train.data import load_cases

    monkeypatch.setenv("MEDSEG_EVAL_OFFLINE", "1")
    ids = load_dataset("synthetic-lesions", split="test", download=False)["case_id"]
    res = evaluate({c: np.zeros((160, 192), np.uint8) for c in ids}, "synthetic-lesions", metrics=["dice"],
                   progress=False, download=False)
    assert res.provenance["num_cases"] == 20
    cases = load_cases("synthetic-lesions", "train", 32)  # what `medseg-eval train --dataset synthetic-lesions` reads
    assert len(cases.case_ids) == 40


def test_no_message_about_the_generated_dataset_mentions_source(online):
    from medseg_eval.datasets.fetch import not_built_hint
    from medseg_eval.datasets.hints import build_command

    spec = get_spec("synthetic-lesions")
    for text in (not_built_hint(spec), not_built_hint(spec, ["test"]), build_command(spec, ["test"], images=False)):
        assert "--source" not in text and "medseg-eval datasets build synthetic-lesions" in text
