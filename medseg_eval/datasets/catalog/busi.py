"""BUSI (Al-Dhabyani et al., Data in Brief 2020): breast ultrasound images, benign / malignant / normal.

Release layout: ``Dataset_BUSI_with_GT/{benign,malignant,normal}/<category> (<n>).png`` with
``<category> (<n>)_mask.png`` and, for images with several lesions, ``..._mask_1.png``,
``..._mask_2.png``: the masks of one image are merged (logical or) into one lesion mask.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..canonical import CaseRecord, CaseSource
from ..errors import SourceFileMissingError, SourceFormatError
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import binarize, find_folder, optional_image, read_mask, require

_IMAGE = re.compile(r"^(benign|malignant|normal) \((\d+)\)$")


def _load(case_id: str, image: Path | None, masks: list[Path]) -> CaseRecord:
    merged = None
    for path in masks:
        mask = binarize(read_mask(path))
        if merged is not None and mask.shape != merged.shape:
            raise SourceFormatError(f"{path.name} is {mask.shape}, but {masks[0].name} is {merged.shape}.")
        merged = mask if merged is None else np.maximum(merged, mask)
    return CaseRecord(case_id=case_id, image=optional_image(image), mask=merged)


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    base = find_folder(roots, "Dataset_BUSI_with_GT")
    for category in ("benign", "malignant", "normal"):
        folder = require(base / category)
        for image in sorted(folder.glob("*.png")):
            if not _IMAGE.match(image.stem):
                continue  # a mask file
            masks = sorted(folder.glob(f"{glob_escape(image.stem)}_mask*.png"))
            if not masks:
                raise SourceFileMissingError(f"{folder / (image.stem + '_mask.png')} is missing from the release.")
            yield CaseSource(image.stem, partial(_load, image.stem, want.image(image), masks))


def glob_escape(text: str) -> str:
    """Escape glob's special characters (BUSI names hold parentheses, and glob treats ``[`` specially)."""
    return re.sub(r"([\[\]*?])", r"[\1]", text)


SPEC = register(DatasetSpec(
    name="busi",
    title="BUSI: Breast Ultrasound Images",
    description="780 breast ultrasound images (about 500x500, LOGIQ E9) of 600 women aged 25 to 75, in three "
                "categories: 437 benign, 210 malignant, 133 normal (no lesion, empty mask).",
    modality="ultrasound",
    classes=("background", "lesion"),
    splits={"train": 624, "test": 156},
    test_split="test",
    split_rule="No official split and no patient identities. A seeded permutation (seed 42) of the images "
               "holds out 20% as the test split; the category (benign, malignant, normal) is in the case id.",
    resolution="original size of each image; the masks of multi-lesion images merged into one",
    license="CC0-1.0",
    homepage="https://scholar.cu.edu.eg/?q=afahmy/pages/dataset",
    citation="""@article{aldhabyani2020dataset,
  title={Dataset of breast ultrasound images},
  author={Al-Dhabyani, Walid and Gomaa, Mohammed and Khaled, Hussien and Fahmy, Aly},
  journal={Data in Brief},
  volume={28},
  pages={104863},
  year={2020},
  doi={10.1016/j.dib.2019.104863}
}""",
    sources=(SourceFile("Dataset_BUSI.zip", "https://scholar.cu.edu.eg/Dataset_BUSI.zip",
                        "b2ce09f6063a31a73f628b6a6ee1245187cbaec225e93e563735691d68654de7",
                        note="sha256 as pinned by torch-em; the server's TLS certificate is often invalid, in which "
                             "case download by hand and pass the zip as --source.",
                        masks=("train", "test"), images=("train", "test")),),
    source_folder="Dataset_BUSI_with_GT",
    builder=cases,
    holdout={"test": 0.2},
    known_issues=(("About 235 images are duplicated, and 8 lesions appear in both the benign and the malignant folder "
                  "(Pawlowska et al., Data in Brief 2023): random image-level splits leak."),
                  "About 70 axilla images are filed as breast images; 295 images carry calipers or text overlays.",
                  "17 images have several masks (_mask_1, _mask_2), merged here."),
))
