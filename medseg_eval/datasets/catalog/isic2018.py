"""ISIC 2018 Task 1 (Codella et al. 2019): dermoscopic images with lesion boundary masks.

Release layout: six zips, each unpacking to a folder of its own name:
``ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_<7 digits>.jpg`` and
``ISIC2018_Task1_{Training,Validation,Test}_GroundTruth/ISIC_<id>_segmentation.png`` (0/255).
Other files in those folders (licence, attribution) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

from ..canonical import CaseSource
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import binary_case, find_folder, require

_BASE = "https://isic-challenge-data.s3.amazonaws.com/2018/"
_PARTS = {"train": "Training", "validation": "Validation", "test": "Test"}


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    for split, part in _PARTS.items():
        if split not in want.splits:
            continue
        masks = find_folder(roots, f"ISIC2018_Task1_{part}_GroundTruth")
        if want.images:
            images = find_folder(roots, f"ISIC2018_Task1-2_{part}_Input")
            found = {p.stem: p for p in sorted(images.glob("ISIC_*.jpg"))}
        else:  # the masks' archive alone: the masks name the cases
            found = {p.name.removesuffix("_segmentation.png"): None for p in sorted(masks.glob("ISIC_*_segmentation.png"))}
        for case_id, image in found.items():
            mask = require(masks / f"{case_id}_segmentation.png")
            yield CaseSource(case_id, partial(binary_case, case_id, image, mask), split=split)


# sha256 as pinned by torch-em (constantinpape/torch-em, isic.py), not by the ISIC archive itself.
_SHA256 = {
    "ISIC2018_Task1-2_Training_Input.zip": "80f98572347a2d7a376227fa9eb2e4f7459d317cb619865b8b9910c81446675f",
    "ISIC2018_Task1_Training_GroundTruth.zip": "99f8b2bb3c4d6af483362010715f7e7d5d122d9f6c02cac0e0d15bef77c7604c",
    "ISIC2018_Task1-2_Validation_Input.zip": "0ea920fcfe512d12a6e620b50b50233c059f67b10146e1479c82be58ff15a797",
    "ISIC2018_Task1_Validation_GroundTruth.zip": "f6911e9c0a64e6d687dd3ca466ca927dd5e82145cb2163b7a1e5b37d7a716285",
    "ISIC2018_Task1-2_Test_Input.zip": "e59ae1f69f4ed16f09db2cb1d76c2a828487b63d28f6ab85997f5616869b127d",
    "ISIC2018_Task1_Test_GroundTruth.zip": "2e8f6edce454a5bdee52485e39f92bd6eddf357e81f39018d05512175238ef82",
}

SPEC = register(DatasetSpec(
    name="isic2018",
    title="ISIC 2018 Task 1: Lesion Boundary Segmentation",
    description="Dermoscopic images of pigmented skin lesions (HAM10000 and MSK collections) with one "
                "lesion mask each, from the ISIC 2018 challenge, Task 1.",
    modality="dermoscopy",
    classes=("background", "lesion"),
    splits={"train": 2594, "validation": 100, "test": 1000},
    test_split="test",
    split_rule="The official challenge split: 2594 training, 100 validation and 1000 test images, one archive "
               "pair per split. Patient identities are not published, so folds are drawn per image.",
    resolution="original size of each image (varies widely, up to several thousand pixels a side); masks 0/255, binarized at 128",
    license="CC0-1.0",
    homepage="https://challenge.isic-archive.com/data/#2018",
    citation="""@article{codella2019skin,
  title={Skin Lesion Analysis Toward Melanoma Detection 2018: A Challenge Hosted by the International Skin Imaging Collaboration (ISIC)},
  author={Codella, Noel and Rotemberg, Veronica and Tschandl, Philipp and Celebi, M. Emre and Dusza, Stephen and Gutman, David and Helba, Brian and Kalloo, Aadi and Liopyris, Konstantinos and Marchetti, Michael and Kittler, Harald and Halpern, Allan},
  journal={arXiv preprint arXiv:1902.03368},
  year={2019}
}
@article{tschandl2018ham10000,
  title={The HAM10000 dataset, a large collection of multi-source dermatoscopic images of common pigmented skin lesions},
  author={Tschandl, Philipp and Rosendahl, Cliff and Kittler, Harald},
  journal={Scientific Data},
  volume={5},
  pages={180161},
  year={2018},
  doi={10.1038/sdata.2018.161}
}""",
    sources=tuple(SourceFile(f, _BASE + f, h, note="sha256 as pinned by torch-em, not by the ISIC archive.",
                             **{"images" if "Input" in f else "masks": (split,)})
                  for f, h in _SHA256.items() for split, part in _PARTS.items() if f"_{part}_" in f),
    source_folder="ISIC2018_Task1-2_Training_Input",
    builder=cases,
    file_key=r"^(ISIC_\d{7})",
    known_issues=("The training input archive is 10.4 GB.",
                  "Some masks are coarse polygons rather than traced boundaries (noted by the challenge report)."),
))
