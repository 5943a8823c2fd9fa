"""MoNuSeg 2018 (Kumar et al., IEEE TMI 2017/2020): nuclei in H&E tissue images of several organs.

Release layout: training zip ``MoNuSeg 2018 Training Data/{Tissue Images/<id>.tif, Annotations/<id>.xml}``,
test zip ``MoNuSegTestData/<id>.tif`` with ``<id>.xml`` beside it. Annotations are Aperio XML
polygons (``Region/Vertices/Vertex X= Y=``, X the column); each polygon is filled (boundary
included, PIL's rule) into one nucleus class, and into the instance map with its own id (its
1-based place among the file's regions; a later polygon overwrites an earlier one where they overlap).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..canonical import CaseRecord, CaseSource, image_bytes, image_size
from ..errors import SourceFormatError
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import find_folder, require


def polygons_to_instances(xml: Path, height: int, width: int) -> np.ndarray:
    """Fill the ``k``-th ``Region`` polygon of an Aperio XML file with id ``k`` (1-based) into an int64
    ``[height, width]`` instance map, in file order; polygons of fewer than 3 vertices are skipped."""
    from PIL import Image, ImageDraw

    try:
        regions = ET.parse(require(xml)).getroot().iter("Region")
        polygons = [[(float(v.get("X")), float(v.get("Y"))) for v in region.iter("Vertex")] for region in regions]
    except (ET.ParseError, TypeError, ValueError) as err:
        raise SourceFormatError(f"cannot read annotations {xml}: {err}. Re-download the release.") from err
    canvas = Image.new("I", (width, height), 0)  # 32-bit ids: PIL fills each pixel as the "L" mask's rule does
    draw = ImageDraw.Draw(canvas)
    for number, polygon in enumerate(polygons, 1):
        if len(polygon) >= 3:
            draw.polygon(polygon, fill=number, outline=number)
    return np.asarray(canvas).astype(np.int64)


def polygons_to_mask(xml: Path, height: int, width: int) -> np.ndarray:
    """Fill every ``Region`` polygon of an Aperio XML file into a binary ``[height, width]`` mask."""
    return (polygons_to_instances(xml, height, width) > 0).astype(np.uint8)


def _load(image: Path, xml: Path, keep_image: bool) -> CaseRecord:
    # The mask's size is the image's, so a masks-only build still reads the image (not stored then).
    data = image_bytes(image)
    instances = polygons_to_instances(xml, *image_size(data))
    return CaseRecord(case_id=image.stem, image=data if keep_image else None,
                      mask=(instances > 0).astype(np.uint8), instances=instances)


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    parts = []
    if "train" in want.splits:
        train = find_folder(roots, "MoNuSeg 2018 Training Data")
        parts.append(("train", require(train / "Tissue Images"), require(train / "Annotations")))
    if "test" in want.splits:
        test = find_folder(roots, "MoNuSegTestData")
        parts.append(("test", test, test))
    for split, images, xml_folder in parts:
        for image in sorted(images.glob("*.tif")):
            # One slide per TCGA patient; the patient barcode is the first three fields of the id.
            patient = "-".join(image.stem.split("-")[:3])
            xml = require(xml_folder / f"{image.stem}.xml")
            yield CaseSource(image.stem, partial(_load, image, xml, want.images), group=patient, split=split)


SPEC = register(DatasetSpec(
    name="monuseg",
    title="MoNuSeg 2018: Multi-Organ Nucleus Segmentation",
    description="1000x1000 H&E tissue images at 40x from The Cancer Genome Atlas (breast, kidney, liver, prostate, "
                "bladder, colon, stomach; lung and brain in the test set), one slide per patient, with every "
                "nucleus outlined.",
    modality="histopathology",
    classes=("background", "nucleus"),
    splits={"train": 37, "test": 14},
    test_split="test",
    split_rule="The official challenge split: the training archive (37 images in the current release; the "
               "papers describe 30) and the 14 test images. Folds group by TCGA patient barcode.",
    resolution="1000x1000 (original); nucleus polygons filled into one class in the mask, one id each in the instances",
    license="CC-BY-NC-SA-4.0",
    homepage="https://monuseg.grand-challenge.org/Data/",
    citation="""@article{kumar2017dataset,
  title={A Dataset and a Technique for Generalized Nuclear Segmentation for Computational Pathology},
  author={Kumar, Neeraj and Verma, Ruchika and Sharma, Sanuj and Bhargava, Surabhi and Vahadane, Abhishek and Sethi, Amit},
  journal={IEEE Transactions on Medical Imaging},
  volume={36},
  number={7},
  pages={1550--1560},
  year={2017}
}
@article{kumar2020multi,
  title={A Multi-Organ Nucleus Segmentation Challenge},
  author={Kumar, Neeraj and others},
  journal={IEEE Transactions on Medical Imaging},
  volume={39},
  number={5},
  pages={1380--1391},
  year={2020}
}""",
    sources=(SourceFile("MoNuSeg 2018 Training Data.zip", "https://drive.google.com/file/d/1ZgqFJomqQGNnsx7w7QBzQQMVA16lbVCA",
                        "25d3d3185bb2970b397cafa72eb664c9b4d24294aee382e7e3df9885affce742",
                        note="Google Drive, linked from the challenge page; sha256 as pinned by torch-em.",
                        masks=("train",), images=("train",)),
             SourceFile("MoNuSegTestData.zip", "https://drive.google.com/file/d/1NKkSQ5T0ZNQ8aUhh0a8Dt2YKYCQXIViw",
                        "13e522387ae8b1bcc0530e13ff9c7b4d91ec74959ef6f6e57747368d7ee6f88a",
                        note="Google Drive, linked from the challenge page; sha256 as pinned by torch-em.",
                        masks=("test",), images=("test",))),
    source_folder="MoNuSeg 2018 Training Data",
    builder=cases,
    manual_download="download both archives from https://monuseg.grand-challenge.org/Data/ (Google Drive pages that "
                    "a script cannot pass) and give both zips, or the folder holding them unpacked, as --source.",
    known_issues=("Touching nuclei merge in the semantic mask; the instances column keeps them apart.",
                  "The training archive now holds 37 images, 7 more than the 30 of the original papers."),
    instances="one id per nucleus polygon of the XML (its 1-based place in the file), filled as the mask is.",
    literature_metrics=("aji", "pq", "dice"),
    metric_references=(
        ("Kumar et al. (2017), A dataset and a technique for generalized nuclear segmentation for computational "
        "pathology, IEEE TMI 36(7):1550-1560 (and MoNuSeg's Aggregated_Jaccard_Index_v1_0.m): AJI."),
        ("Kirillov et al. (2019), Panoptic segmentation, CVPR 2019:9404-9413: PQ (matches at IoU > 0.5); used for "
        "nuclei since Graham et al. (2019), HoVer-Net, Medical Image Analysis 58:101563."),
        ("Kumar et al. (2020), A multi-organ nucleus segmentation challenge, IEEE TMI 39(5):1380-1391: AJI and Dice "
        "as the challenge ranks them."),
    ),
    builder_version=2,
))
