"""GlaS (Sirinukunwattana et al., MedIA 2017): gland segmentation in colon histology, Warwick-QU.

Release layout: ``Warwick QU Dataset (Released 2016_07_08)/{train,testA,testB}_<n>.bmp`` with
``..._anno.bmp`` (one label per gland: the instance ids, kept in the ``instances`` column; any gland
is foreground in the mask) and ``Grade.csv`` (name, patient ID, grades; values padded with a space).
Test parts A and B form the test split.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..canonical import CaseRecord, CaseSource
from ..errors import SourceFormatError
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import find_folder, optional_image, read_mask, require

_FOLDER = "Warwick QU Dataset (Released 2016_07_08)"
_IMAGE = re.compile(r"^(train|testA|testB)_(\d+)$")


def _load(case_id: str, image: Path | None, annotation: Path) -> CaseRecord:
    mask = (read_mask(annotation) > 0).astype(np.uint8)
    # The ids are the bitmap's own values (palette indices where it has a palette), kept where the mask
    # is foreground; check_record refuses a gland pixel without an id.
    ids = _instance_ids(annotation)
    return CaseRecord(case_id=case_id, image=optional_image(image), mask=mask, instances=np.where(mask > 0, ids, 0))


def _instance_ids(annotation: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(annotation) as bitmap:
        if bitmap.mode not in ("L", "P", "I", "I;16"):
            raise SourceFormatError(f"{annotation}: expected a one-channel bitmap of gland ids, got mode {bitmap.mode}. "
                                    "Re-download the release.")
        return np.asarray(bitmap).astype(np.int64)


def _patients(grades: Path) -> dict[str, str]:
    with open(require(grades), newline="") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f) if row]
    header, body = rows[0], rows[1:]
    try:
        name, patient = header.index("name"), header.index("patient ID")
    except ValueError as err:
        raise SourceFormatError(f"{grades}: expected columns 'name' and 'patient ID', got {header}.") from err
    return {row[name]: f"patient-{row[patient]}" for row in body}


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    base = find_folder(roots, _FOLDER)
    patients = _patients(base / "Grade.csv")
    for image in sorted(base.glob("*.bmp")):
        match = _IMAGE.match(image.stem)
        if match is None:
            continue  # an annotation
        if image.stem not in patients:
            raise SourceFormatError(f"{image.name} is not listed in {base / 'Grade.csv'}.")
        split = "train" if match[1] == "train" else "test"
        annotation = require(base / f"{image.stem}_anno.bmp")
        yield CaseSource(image.stem, partial(_load, image.stem, want.image(image), annotation), group=patients[image.stem],
                         split=split)


SPEC = register(DatasetSpec(
    name="glas",
    title="GlaS: Gland Segmentation in Colon Histology Images (Warwick-QU)",
    description="165 H&E images (20x, 0.62 um/pixel, up to 775x522) of colorectal adenocarcinoma and benign "
                "tissue from 16 sections, with every gland outlined by a pathologist; used for the MICCAI 2015 "
                "GlaS challenge.",
    modality="histopathology",
    classes=("background", "gland"),
    splits={"train": 85, "test": 80},
    test_split="test",
    split_rule="The official challenge split: 85 training images, 80 test images (testA_* 60 and testB_* 20, "
               "told apart by the case id). Folds group the training images by the patient in Grade.csv.",
    resolution="original size of each image (567x430 to 775x522 width x height); gland instances merged into one "
               "class in the mask, kept apart in the instances",
    license="GlaS terms: research use only; commercial use not allowed",
    homepage="https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/",
    citation="""@article{sirinukunwattana2017gland,
  title={Gland segmentation in colon histology images: The GlaS challenge contest},
  author={Sirinukunwattana, Korsuk and Pluim, Josien P. W. and Chen, Hao and Qi, Xiaojuan and Heng, Pheng-Ann and Guo, Yun Bo and Wang, Li Yang and Matuszewski, Bogdan J. and Bruni, Elia and Sanchez, Urko and others},
  journal={Medical Image Analysis},
  volume={35},
  pages={489--502},
  year={2017},
  doi={10.1016/j.media.2016.08.008}
}""",
    sources=(SourceFile("warwick_qu_dataset_released_2016_07_08.zip",
                        "https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/download/warwick_qu_dataset_released_2016_07_08.zip",
                        note="sha256 unknown; one public loader pins md5 495b2a9f3d694545fbec06673fb3f40f.",
                        masks=("train", "test"), images=("train", "test")),),
    source_folder=_FOLDER,
    builder=cases,
    file_key=r"^((?:train|testA|testB)_\d+)",
    known_issues=(("The official split is not patient-disjoint: several patients have images in both training and test "
                  "(Grade.csv). It is kept because results are compared on it."),
                  "Annotations are gland instances: merged in the semantic mask, kept in the instances column."),
    instances="the release's gland ids (``*_anno.bmp``), one per gland.",
    literature_metrics=("object_f1", "object_dice", "object_hausdorff"),
    metric_references=(
        ("Sirinukunwattana et al. (2017), Gland segmentation in colon histology images: The GlaS challenge contest, "
        "Medical Image Analysis 35:489-502 (and the challenge's F1score.m, ObjectDice.m, ObjectHausdorff.m): object-level "
        "F1 (a detection covers more than 50% of its gland), object Dice, object Hausdorff."),
    ),
    builder_version=2,
))
