"""GlaS and MoNuSeg keep their instance ids: an ``instances`` column beside ``mask``, hashed in the manifest."""

from __future__ import annotations

import importlib
import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medseg_eval.datasets import (
    ManifestMismatchError,
    UnpinnedManifestWarning,
    build,
    get_spec,
    load_dataset,
    shipped_manifest,
    verify,
)
from medseg_eval.datasets.canonical import (
    INSTANCES_COLUMN,
    MANIFEST_COLUMNS,
    encode_instances,
    instances_sha256,
    manifest_csv,
    read_manifest,
)
from medseg_eval.datasets.catalog.monuseg import polygons_to_instances
from tests.support.dataset_layouts import MAKERS, _aperio_xml, photo, save

BUILD = importlib.import_module("medseg_eval.datasets.build")
LAYOUT = importlib.import_module("medseg_eval.datasets.layout")


def _build(name: str, tmp_path: Path):
    layout = MAKERS[name](tmp_path / "release")
    with pytest.warns(UnpinnedManifestWarning):
        report = build(name, tmp_path / "release", progress=False)
    return layout, report


@pytest.mark.parametrize("name", ["glas", "monuseg"])
def test_tiny_release_builds_with_its_instance_ids_and_their_hashes(name, tmp_path, home):
    layout, report = _build(name, tmp_path)
    found = {}
    for ds in load_dataset(name).values():
        assert ds.column_names[:4] == ["case_id", "image", "mask", "instances"]
        for row in ds:
            found[row["case_id"]] = np.asarray(row["instances"])
    assert sorted(found) == sorted(layout.instances)
    manifest = read_manifest(report.folder / "manifest.csv")
    assert manifest.columns == [*MANIFEST_COLUMNS, INSTANCES_COLUMN]
    hashes = dict(zip(manifest["case_id"], manifest[INSTANCES_COLUMN]))
    for case, expected in layout.instances.items():
        np.testing.assert_array_equal(found[case], expected, err_msg=case)
        assert hashes[case] == instances_sha256(expected)
        assert len(np.unique(expected)) > 2  # several objects, not a binary mask in disguise
    assert verify(name, progress=False).ok


def test_a_dataset_without_instances_keeps_its_four_column_manifest(tmp_path, home):
    _, report = _build("busi", tmp_path)
    assert (report.folder / "manifest.csv").read_text().splitlines()[0] == ",".join(MANIFEST_COLUMNS)
    assert "instances" not in load_dataset("busi", split="train").column_names


@pytest.mark.parametrize("name", ["drive", "kvasir-seg", "synthetic-lesions"])
def test_shipped_manifests_read_and_write_back_byte_for_byte(name):
    shipped = (Path(BUILD.__file__).parent / "splits" / f"{get_spec(name).name}.csv").read_bytes()
    assert manifest_csv(read_manifest(shipped)) == shipped
    assert INSTANCES_COLUMN not in shipped_manifest(name).columns


def test_ids_above_255_are_stored_as_16_bit_png():
    ids = np.arange(600, dtype=np.int64).reshape(20, 30)
    with Image.open(io.BytesIO(encode_instances(ids))) as png:
        assert png.format == "PNG" and png.mode in ("I;16", "I")
        np.testing.assert_array_equal(np.asarray(png), ids)
    with Image.open(io.BytesIO(encode_instances(ids % 200))) as png:
        assert png.mode == "L"


def test_monuseg_with_more_than_255_nuclei_builds_16_bit_instances(tmp_path, home):
    root = tmp_path / "release"
    train, test = root / "MoNuSeg 2018 Training Data", root / "MoNuSegTestData"
    rng = np.random.default_rng(0)
    # 300 disjoint 2x2 nuclei on a 60x80 grid: ids 1..300, the last ones above 255.
    squares = [(4 * (k % 20), 4 * (k // 20), 4 * (k % 20) + 1, 4 * (k // 20) + 1) for k in range(300)]
    for case, (images, xml) in {"TCGA-AA-0001-01Z-00-DX1": (train / "Tissue Images", train / "Annotations"),
                                "TCGA-AA-0002-01Z-00-DX1": (test, test)}.items():
        save(images / f"{case}.tif", photo(rng, 60, 80))
        xml.mkdir(parents=True, exist_ok=True)
        (xml / f"{case}.xml").write_text(_aperio_xml(squares))
    with pytest.warns(UnpinnedManifestWarning):
        report = build("monuseg", root, progress=False)
    shard = next((report.folder / "data").glob("test-*"))
    stored = pq.read_table(shard, columns=["instances"])["instances"][0].as_py()["bytes"]
    with Image.open(io.BytesIO(stored)) as png:
        assert png.mode in ("I;16", "I")
        ids = np.asarray(png)
    assert ids.max() == 300 and len(np.unique(ids)) == 301
    assert ids[4 * (299 // 20), 4 * (299 % 20)] == 300


def test_monuseg_instances_fill_exactly_the_mask_pixels_of_before(tmp_path):
    """The mask (and so its pinned hash) is what filling every polygon with 1 in an "L" image gave."""
    from PIL import ImageDraw

    rng = np.random.default_rng(3)
    polygons = [[(float(x), float(y)) for x, y in rng.uniform(-3, 45, size=(int(rng.integers(3, 9)), 2))]
                for _ in range(12)]
    xml = tmp_path / "a.xml"
    xml.write_text(_polygons_xml(polygons))
    canvas = Image.new("L", (41, 37), 0)
    for polygon in polygons:
        ImageDraw.Draw(canvas).polygon(polygon, fill=1, outline=1)
    ids = polygons_to_instances(xml, 37, 41)
    np.testing.assert_array_equal(ids > 0, np.asarray(canvas) > 0)
    assert set(np.unique(ids)) - {0} <= set(range(1, 13)) and ids.max() == 12  # the last polygon lies on top


def _polygons_xml(polygons) -> str:
    regions = "".join(f'<Region Id="{i}"><Vertices>' + "".join(f'<Vertex X="{x}" Y="{y}"/>' for x, y in p)
                      + "</Vertices></Region>" for i, p in enumerate(polygons, 1))
    return f"<Annotations><Annotation><Regions>{regions}</Regions></Annotation></Annotations>"


def _change_an_instance_id(folder: Path, split: str) -> str:
    """Give one object of one stored instance map another id (its mask stays the same)."""
    shard = next((folder / "data").glob(f"{split}-*"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    row = rows[0]
    ids = np.asarray(Image.open(io.BytesIO(row["instances"]["bytes"]))).astype(np.int64)
    ids[ids == ids.max()] = ids.max() + 7
    row["instances"]["bytes"] = encode_instances(ids)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    shutil.rmtree(folder / ".arrow", ignore_errors=True)
    return row["case_id"]


def test_verify_refuses_a_changed_instance_id(tmp_path, home):
    _, report = _build("glas", tmp_path)
    case = _change_an_instance_id(report.folder, "test")
    checked = verify("glas", progress=False)
    assert not checked.ok and checked.mismatched_instances == [case] and checked.mismatched == [case]


def test_a_release_whose_instance_ids_differ_from_the_pinned_manifest_is_refused(tmp_path, home, monkeypatch):
    _, report = _build("glas", tmp_path)
    pinned = tmp_path / "pinned"
    pinned.mkdir()
    shutil.copy(report.folder / "manifest.csv", pinned / "glas.csv")
    monkeypatch.setattr(LAYOUT, "MANIFESTS", pinned)
    assert build("glas", tmp_path / "release", progress=False).pinned  # the unchanged release passes
    case = "testA_2"
    anno = tmp_path / "release" / "Warwick QU Dataset (Released 2016_07_08)" / f"{case}_anno.bmp"
    ids = np.asarray(Image.open(anno)).copy()
    ids[ids == ids.max()] = 9  # same glands, same mask, another id
    Image.fromarray(ids).save(anno)
    with pytest.raises(ManifestMismatchError, match=r"1 instance map\(s\) differ.*testA_2") as err:
        build("glas", tmp_path / "release", progress=False)
    assert err.value.mismatched == [] and err.value.mismatched_instances == [case]


def test_an_annotation_without_one_channel_ids_is_refused(tmp_path, home):
    from medseg_eval.datasets import SourceFormatError

    MAKERS["glas"](tmp_path / "release")
    anno = tmp_path / "release" / "Warwick QU Dataset (Released 2016_07_08)" / "train_1_anno.bmp"
    rgb = np.repeat(np.asarray(Image.open(anno))[..., None], 3, axis=2)
    Image.fromarray(rgb).save(anno)  # an RGB bitmap: no ids to read
    with pytest.warns(UnpinnedManifestWarning), pytest.raises(SourceFormatError, match="gland ids"):
        build("glas", tmp_path / "release", progress=False)


def test_an_instance_map_must_cover_exactly_the_mask():
    from medseg_eval.datasets import CaseRecord, SourceFormatError
    from medseg_eval.datasets.canonical import check_record

    mask = np.zeros((6, 6), np.uint8)
    mask[1:4, 1:4] = 1
    check_record(CaseRecord("a", None, mask, instances=mask * 3), 2, "test")
    holed = mask.astype(np.int64) * 3
    holed[2, 2] = 0
    with pytest.raises(SourceFormatError, match="a: the instance map and the mask disagree on 1 pixel"):
        check_record(CaseRecord("a", None, mask, instances=holed), 2, "test")
